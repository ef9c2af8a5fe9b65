"""Client helpers: registration, scheduled MM requests, CA admission."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import RsaPrivateKey
from gridledger.errors import NodeError
from gridledger.identity.admission import RoleKey
from gridledger.identity.ca import CertificateAuthority, Role, compute_certificate_hash
from gridledger.identity.ca_register import read_ca_register
from gridledger.identity.client import (
    CaService,
    IdentityChainView,
    admit_member,
    deliver_due_requests,
    post_superseded_revocations,
    register_and_schedule,
)
from gridledger.identity.errors import CertificateRejected
from gridledger.identity.pseudonym_issuer import process_close_batch, process_open_batch
from gridledger.identity.schedule import BatchWindow
from gridledger.ledger.contracts import BlockContext
from gridledger.ledger.execution import apply_block
from gridledger.ledger.tx import Transaction

from .conftest import NOW, Member, World, register
from .helpers import Chain


def test_client_registers_then_submits_at_its_scheduled_time(world: World) -> None:
    rm, mm = world.new_rm(k=4), world.new_mm()
    window = BatchWindow(90, NOW + 60, NOW + 660)
    scheduled = []
    for i in range(4):
        user = world.users[i]
        _, item = register_and_schedule(
            rm, user.key, user.cert, world.roots, world.tc_key, world.mm.cert, window, NOW,
            DeterministicRng(f"user-{i}"), DeterministicRng(f"rm-{i}"),
            rm_blind_certificate=world.rm_blind.cert,
        )  # fmt: skip
        scheduled.append(item)
    process_open_batch(mm, 90)
    left = deliver_due_requests(mm, scheduled, window.opens - 1)
    assert len(left) == 4 and mm.pending == []
    middle = sorted(s.at for s in scheduled)[1]
    left = deliver_due_requests(mm, left, middle)
    assert len(mm.pending) == 2 and len(left) == 2
    assert [r.pseudonym_key for r in mm.pending] == [
        s.request.pseudonym_key for s in sorted(scheduled, key=lambda s: s.at)[:2]
    ]
    assert deliver_due_requests(mm, left, window.closes) == []
    assert len(process_close_batch(mm, NOW, NOW + 3600, DeterministicRng("mm")).certificates) == 4


# -- the CA at work: the register persisted, superseded certificates revoked on chain ----


class FakeConsortium:
    """What ``ConsortiumClient`` gives (agreed reads, submits), over one in-memory chain."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.fail = False

    async def call_agreed(self, method: str, params: dict[str, Any], timeout: float = 10.0) -> Any:
        assert method == "state"
        value = self.chain.state.get(bytes.fromhex(params["key"]))
        return {"value": None if value is None else value.hex()}

    async def submit(self, txs: list[bytes], *, timeout: float = 20.0) -> list[dict[str, Any]]:
        if self.fail:
            raise NodeError("no 2 replicas agreed on submit")
        receipts = []
        for raw in txs:
            self.chain.height += 1
            ctx = BlockContext("test-chain", self.chain.height, NOW * 1000, 0)
            tx = decode_as(Transaction, raw)
            [receipt] = apply_block(self.chain.state, self.chain.registry, [tx], ctx).receipts
            receipts.append({"status": "committed" if receipt.ok else "rejected"})
        return receipts


def _copy_ca(world: World) -> CertificateAuthority:
    ca = world.ca
    return dataclasses.replace(
        ca,
        revoked=dict(ca.revoked),
        issued=dict(ca.issued),
        admitted={k: list(v) for k, v in ca.admitted.items()},
        holders={k: list(v) for k, v in ca.holders.items()},
        superseded=[],
        blacklist=frozenset(),
    )


def test_renewal_posts_the_revocation_and_survives_a_crash(
    world: World, rsa_keys: list[RsaPrivateKey], tmp_path: Path
) -> None:
    """A household renews its certificate: the old one must be revoked on chain, not just in
    the CA's memory, or the household keeps registering with it. The CA crashes after
    issuing but before posting: the revocation must still be posted after the restart."""
    chain = Chain(world)
    fake = FakeConsortium(chain)
    view = IdentityChainView(fake)
    path = tmp_path / "register.bin"
    operator = RoleKey(world.revoker.key, world.revoker.cert)
    service = CaService(_copy_ca(world), path, operator, fake, "test-chain")
    rng, key = DeterministicRng("admit"), rsa_keys[13]

    async def admit(meter: str) -> RoleKey:
        return await admit_member(
            view, service, "house-95", Role.PRODUCER, NOW, rng, meter_id=meter, key=key
        )

    async def scenario() -> None:
        first = await admit("meter-95")
        assert path.is_file() and service.ca.superseded == []
        renewed = await admit("meter-96")
        first_hash = compute_certificate_hash(first.certificate)
        assert await view.is_revoked(first_hash)  # posted by the operator, on chain
        assert service.ca.superseded == []
        assert read_ca_register(path, service.ca.key, service.ca.certificate).superseded == []
        # the RM, reading the chain, refuses the superseded certificate
        rm = world.new_rm(k=2)
        rm.blacklist, rm.revoked = await view.get_member_lists([first.certificate])
        with pytest.raises(CertificateRejected, match="revoked"):
            register(world, rm, Member(key, first.certificate), 200, rng)
        # the chain is unreachable when the next renewal is posted: the CA "crashes"
        fake.fail = True
        with pytest.raises(NodeError):
            await admit("meter-97")
        renewed_hash = compute_certificate_hash(renewed.certificate)
        assert not await view.is_revoked(renewed_hash)
        restarted = read_ca_register(path, service.ca.key, service.ca.certificate)
        assert restarted.superseded == [renewed_hash]  # the queue reached the disk
        fake.fail = False
        again = CaService(restarted, path, operator, fake, "test-chain")
        assert await post_superseded_revocations(view, again, NOW, rng) == (renewed_hash,)
        assert await view.is_revoked(renewed_hash)
        assert read_ca_register(path, restarted.key, restarted.certificate).superseded == []
        # idempotent: a hash queued twice, already on chain, is dequeued without a post
        restarted.superseded.append(renewed_hash)
        assert await post_superseded_revocations(view, again, NOW, rng) == (renewed_hash,)
        assert restarted.superseded == []

    asyncio.run(asyncio.wait_for(scenario(), 30))
