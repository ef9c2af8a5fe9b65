"""A small CBSG world for the aggregation tests: CC as KGC, three receivers, meters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache

from gridledger.aggregation.contract import AggregationGenesis
from gridledger.aggregation.curve import G1Point, G2Point
from gridledger.aggregation.keys import (
    ROLE_CC,
    ROLE_ES,
    ROLE_GO,
    ROLE_METER,
    KeyGenerationCenter,
    ParticipantKeys,
    PublicKeyRecord,
    create_participant_keys,
    decode_params,
)
from gridledger.aggregation.schema import DIMENSIONS, ReceiverSchema, create_default_schema
from gridledger.aggregation.signcrypt import Report, signcrypt
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey

PERIOD_MS = 540_000  # seed 002: a report every 9 minutes
RECEIVERS = {"cc-1": ROLE_CC, "go-1": ROLE_GO, "es-1": ROLE_ES}


def ed_key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey(hashlib.sha256(label.encode()).digest())


@dataclass
class World:
    kgc: KeyGenerationCenter
    y_pub1: G1Point
    y_pub2: G2Point
    schema: ReceiverSchema
    receivers: dict[str, ParticipantKeys]
    meters: dict[str, ParticipantKeys]
    rng: DeterministicRng
    tx_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)

    @property
    def y_pub1_bytes(self) -> bytes:
        return self.kgc.params.y_pub1

    @property
    def receiver_points(self) -> dict[str, G1Point]:
        return {rid: k.y for rid, k in self.receivers.items()}

    def record(self, identity: str) -> PublicKeyRecord:
        if identity in self.meters:
            return self.meters[identity].to_record(ROLE_METER)
        return self.receivers[identity].to_record(
            RECEIVERS[identity], self.tx_keys[identity].public_key.raw
        )

    def report(self, meter_id: str, period: int, reading: dict[str, int] | None = None) -> Report:
        return signcrypt(
            self.meters[meter_id],
            self.y_pub1_bytes,
            self.schema,
            self.receiver_points,
            reading or sample_reading(period),
            period,
            period * PERIOD_MS + 1_000,
            self.rng,
        )

    def genesis_config(self, cc_key: Ed25519PrivateKey, max_batch: int = 64) -> AggregationGenesis:
        params = self.kgc.params
        return AggregationGenesis(
            cc_key.public_key.raw,
            params.y_pub1,
            params.y_pub2,
            PERIOD_MS,
            1,
            max_batch,
            self.schema,
        )


def sample_reading(seed: int) -> dict[str, int]:
    base = {name: 100 + 7 * i + seed for i, name in enumerate(DIMENSIONS)}
    base["voltage_cv"] = 23_500
    base["current_da"] = 43
    base["active_power_w"] = 990
    base["reactive_power_var"] = 100
    return base


def make_world(n_meters: int = 6, seed: int = 2) -> World:
    rng = DeterministicRng(seed)
    kgc = KeyGenerationCenter.create(rng)
    y1, y2 = decode_params(kgc.params)
    receivers = {
        rid: create_participant_keys(y1, kgc.issue_partial_key(rid, rng), rng) for rid in RECEIVERS
    }
    meters = {
        f"meter-{i}": create_participant_keys(y1, kgc.issue_partial_key(f"meter-{i}", rng), rng)
        for i in range(n_meters)
    }
    schema = create_default_schema("cc-1", "go-1", "es-1")
    world = World(kgc, y1, y2, schema, receivers, meters, rng)
    world.tx_keys = {rid: ed_key(f"tx-{rid}") for rid in RECEIVERS}
    return world


@cache
def shared_world() -> World:
    """One world for read-only tests (keys only; each test signcrypts its own reports)."""
    return make_world(8)
