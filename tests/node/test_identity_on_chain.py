"""Identity on a running consortium: pseudonyms, evidence, tracing, blacklist, light client.

Four replicas in one process over TCP on 127.0.0.1, built by ``init_consortium``
with its identity material (CA, RM, MM, 3-of-5 TC trustees from the DKG).
"""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import pytest

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.identity.ca import (
    Permission,
    Role,
    compute_certificate_der,
    compute_certificate_hash,
    compute_member_key,
    get_attributes,
    get_ed25519_key,
    verify_member,
)
from gridledger.identity.client import (
    IdentityChainView,
    admit_member,
    build_light_client,
    deliver_due_requests,
    register_and_schedule,
    register_household,
)
from gridledger.identity.contracts import KIND_BATCH, KIND_EVIDENCE, KIND_SWEEP, KIND_TRACE
from gridledger.identity.errors import Blacklisted, CertificateRejected, MemberBlacklisted
from gridledger.identity.genesis import (
    GENESIS_MM_KEY,
    GENESIS_RM_PSEUDONYM_KEY,
    GENESIS_ROOTS_KEY,
    GENESIS_TC_KEY,
    get_identity_config,
    get_pinned_rm_blind_certificate,
)
from gridledger.identity.messages import (
    Obligation,
    ObligationEvidence,
    PseudonymSweep,
    TraceRecord,
)
from gridledger.identity.obligations import create_signed_obligation
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
from gridledger.identity.registration import process_open_round
from gridledger.identity.schedule import BatchWindow
from gridledger.identity.sweep import on_sweep_blind, on_sweep_decrypt
from gridledger.identity.trace_center import (
    TraceRequestRead,
    compute_evidence_id,
    compute_trace,
    on_trace_request,
)
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.merkle import MerkleProof
from gridledger.ledger.smt import StateProof
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.consortium import ConsortiumLayout, init_consortium, load_genesis
from gridledger.node.identity_material import issue_member, load_identity_material
from gridledger.node.keys import read_key
from gridledger.node.replica import Replica, build_registry

from .helpers import FAST, get_free_ports, wait_until

CHAIN = "test-chain"


def _init(root: Path) -> ConsortiumLayout:
    ports = get_free_ports(8)
    pairs = [(ports[2 * i], ports[2 * i + 1]) for i in range(4)]
    return init_consortium(
        root, 4, consensus=FAST, ports=pairs, chain_id=CHAIN, rng=DeterministicRng("ids")
    )


def test_identity_material_files_and_genesis(tmp_path: Path) -> None:
    layout = _init(tmp_path / "c")
    root = layout.root
    # Private material: one 0700 directory per role, 0600 files.
    for rel in (
        "identity/ca/ca.key",
        "identity/ca/operator.key",
        "identity/ca/register.bin",
        "identity/rm/identity.key",
        "identity/rm/pseudonym.key",
        "identity/mm/mm.key",
        *(f"identity/tc/trustee-{i}/trustee.key" for i in range(1, 6)),
        *(f"identity/tc/trustee-{i}/share.bin" for i in range(1, 6)),
    ):
        mode = (root / rel).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600, rel
        assert stat.S_IMODE((root / rel).parent.stat().st_mode) == 0o700, rel
    material = load_identity_material(root, 4)
    assert material.tc_key.t == 3 and material.tc_key.n == 5
    assert material.tc_key.group.name == "ed25519"
    assert material.rm.key.public_key != material.rm_pseudonym.key.public_key
    for i, cert in enumerate(material.replica_certificates):
        attrs = verify_member(cert, material.roots, int(time.time()), Role.AGGREGATOR)
        assert attrs.member_id == f"replica-{i}" and attrs.has(Permission.VALIDATE)
        assert get_ed25519_key(cert) == read_key(root / "keys" / f"replica-{i}.pem").public_key
    genesis = load_genesis(root / "genesis.cbor")
    config = get_identity_config(genesis)
    assert config is not None
    assert config.roots == material.roots
    assert config.rm_blind_certificate == material.rm_pseudonym.certificate
    assert config.tc_key == material.tc_key
    assert config.mm_certificate == material.mm.certificate
    assert "identity.trace-record" in build_registry(genesis).kinds
    # Corrupt material in the genesis: one clear ConfigError; none at all: KV only.
    state = dict(genesis.state)
    bad_variants = [
        {k: v for k, v in state.items() if k != GENESIS_TC_KEY},
        {**state, GENESIS_TC_KEY: b"\x00garbage"},
        {**state, GENESIS_ROOTS_KEY: encode([b"not a cert"])},
        {**state, GENESIS_RM_PSEUDONYM_KEY: compute_certificate_der(material.mm.certificate)},
        {**state, GENESIS_MM_KEY: compute_certificate_der(material.rm.certificate)},
        {k: v for k, v in state.items() if k != GENESIS_MM_KEY},
    ]
    for variant in bad_variants:
        bad = GenesisConfig.create(CHAIN, genesis.validators, genesis.timestamp_ms, variant)
        with pytest.raises(ConfigError):
            build_registry(bad)
    plain = GenesisConfig.create(
        CHAIN, (Validator(0, Ed25519PrivateKey(bytes(32)).public_key.raw),), 0
    )
    assert build_registry(plain).kinds == build_registry().kinds
    assert not any(k.startswith("identity.") for k in build_registry(plain).kinds)
    # A corrupt key file on disk is a ConfigError too.
    (root / "identity/mm/mm.key").chmod(0o644)
    with pytest.raises(ConfigError):
        load_identity_material(root)


def test_pseudonyms_tracing_and_light_client_on_chain(tmp_path: Path) -> None:
    layout = _init(tmp_path / "c")
    material = load_identity_material(layout.root, 4)
    genesis = load_genesis(layout.root / "genesis.cbor")
    rng = DeterministicRng("e2e")
    now = int(time.time())
    homes = [
        issue_member(material.ca, f"house-{i}", role, now, rng, meter_id=f"meter-{i}")
        for i, role in enumerate((Role.PRODUCER, Role.CONSUMER, Role.PROSUMER))
    ]

    async def scenario() -> None:
        replicas = [Replica(load_config(p), synchronous="NORMAL") for p in layout.configs]
        for r in replicas:
            assert KIND_TRACE in r.ledger.registry.kinds
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        view = IdentityChainView(client)
        pinned = get_pinned_rm_blind_certificate(genesis)  # the household's pin: from genesis
        ca = material.ca_service(client, CHAIN)
        try:
            # Registration with the RM (K = 8), then anonymous requests to the MM.
            rm = material.create_rm(k=8)
            process_open_round(rm, 1)
            creds = [
                register_household(
                    rm,
                    h.key,
                    h.certificate,
                    material.roots,
                    material.tc_key,
                    1,
                    now,
                    rng.fork(f"user-{i}"),
                    rng.fork(f"rm-{i}"),
                    rm_blind_certificate=pinned,
                )
                for i, h in enumerate(homes)
            ]
            mm = material.create_mm(now)
            process_open_batch(mm, 1)
            for c in creds:
                on_pseudonym_request(mm, compute_pseudonym_request(c, material.mm.certificate))
            payload = process_close_batch(mm, now - 60, now + 3600, rng)
            mm_sender = Ed25519PrivateKey.generate(rng)
            tx = Transaction.create(CHAIN, KIND_BATCH, payload, mm_sender, 1)
            [receipt] = await client.submit([encode(tx)], timeout=15)
            assert receipt["status"] == "committed", receipt
            # Round 2, before anyone is traced: each household registers and sends its MM
            # request at a time drawn uniformly in the MM's batch window.
            process_open_round(rm, 2)
            window = BatchWindow(2, now + 1, now + 600)
            scheduled = [
                register_and_schedule(
                    rm,
                    h.key,
                    h.certificate,
                    material.roots,
                    material.tc_key,
                    material.mm.certificate,
                    window,
                    now,
                    rng.fork(f"user2-{i}"),
                    rng.fork(f"rm2-{i}"),
                    rm_blind_certificate=pinned,
                )
                for i, h in enumerate(homes)
            ]
            assert all(window.opens <= s.at < window.closes for _, s in scheduled)
            process_open_batch(mm, 2)
            assert deliver_due_requests(mm, [s for _, s in scheduled], window.closes) == []
            payload = process_close_batch(mm, now - 60, now + 3600, rng)
            tx = Transaction.create(CHAIN, KIND_BATCH, payload, mm_sender, 2)
            [receipt] = await client.submit([encode(tx)], timeout=15)
            assert receipt["status"] == "committed", receipt
            for c in creds:
                assert await view.get_pseudonym_certificate(c.pseudonym.public_key.raw)
            # A counterparty (pseudonym 1) files evidence against pseudonym 0.
            accused, accuser = creds[0], creds[1]
            obligation = Obligation(
                1,
                accused.pseudonym.public_key.raw,
                accuser.pseudonym.public_key.raw,
                b"trade-7",
                "1500 Wh in slot 12",
                now - 5,
            )
            evidence = ObligationEvidence(
                create_signed_obligation(obligation, accused.pseudonym, accuser.pseudonym),
                "no energy delivered in slot 12",
            )
            tx = Transaction.create(CHAIN, KIND_EVIDENCE, evidence, accuser.pseudonym, 1)
            [receipt] = await client.submit([encode(tx)], timeout=15)
            assert receipt["status"] == "committed", receipt
            eid = compute_evidence_id(evidence)
            assert bytes.fromhex(receipt["data"]) == eid
            # t trustees check the evidence on chain and return decryption shares.
            record = await view.get_evidence(eid)
            signed_cert = await view.get_pseudonym_certificate(evidence.accused)
            accuser_cert = await view.get_pseudonym_certificate(evidence.accuser)
            assert record is not None and signed_cert is not None
            read = TraceRequestRead(record, signed_cert, accuser_cert, await view.get_trace(eid))
            cert = signed_cert.certificate
            shares = [
                on_trace_request(tr, read, rng.fork(f"tc-{tr.index}"))
                for tr in material.trustees[:3]
            ]
            outcome = compute_trace(material.tc_key, cert, shares, eid, material.roots, now)
            house0 = compute_certificate_hash(homes[0].certificate)
            member0 = compute_member_key(get_attributes(homes[0].certificate))
            assert outcome.identity == house0 and outcome.bad_trustees == ()
            record_tx = TraceRecord(
                eid, outcome.entries, compute_certificate_der(homes[0].certificate)
            )
            trace_tx = Transaction.create(
                CHAIN, KIND_TRACE, record_tx, Ed25519PrivateKey.generate(rng), 1
            )
            [receipt] = await client.submit([encode(trace_tx)], timeout=15)
            assert receipt["status"] == "committed", receipt
            result = await view.get_trace(eid)
            assert result is not None and result.identity == house0 and result.accountable
            # Blacklisted and revoked on chain; the RM, reading the chain, refuses it.
            status = await view.get_member_status(homes[0].certificate)
            assert status.blacklisted and status.revoked
            other = await view.get_member_status(homes[1].certificate)
            assert not other.blacklisted and not other.revoked
            # The trustees sweep round 2: house-0's already issued pseudonym is revoked.
            trace = await view.get_trace(eid)
            round2 = await view.get_round_certificates(2)
            assert len(round2) == 3
            at = int(time.time())  # the block time of the f+1-agreed read
            blindings = tuple(
                on_sweep_blind(tr, trace, 2, round2, at, rng.fork(f"blind-{tr.index}"))
                for tr in material.trustees[:3]
            )
            sweep_shares = tuple(
                on_sweep_decrypt(
                    tr, trace, 2, round2, blindings, material.roots, now, rng.fork(f"sw-{tr.index}")
                )
                for tr in material.trustees[1:4]
            )
            sweep = PseudonymSweep(eid, 2, blindings, sweep_shares)
            tx = Transaction.create(CHAIN, KIND_SWEEP, sweep, Ed25519PrivateKey.generate(rng), 1)
            [receipt] = await client.submit([encode(tx)], timeout=15)
            assert receipt["status"] == "committed", receipt
            swept = await view.get_sweep(eid, 2)
            house0_next = scheduled[0][0].pseudonym.public_key.raw
            assert swept is not None and swept.revoked == (house0_next,)
            assert await view.get(b"revp/" + house0_next) is not None
            for cred, _ in scheduled[1:]:
                assert await view.get(b"revp/" + cred.pseudonym.public_key.raw) is None
            # The CA, reading the chain, refuses to re-admit house-0 (member id or meter).
            with pytest.raises(MemberBlacklisted):
                await admit_member(view, ca, "house-0", Role.PRODUCER, now, rng, meter_id="meter-0")
            with pytest.raises(MemberBlacklisted):
                await admit_member(
                    view, ca, "house-0b", Role.PRODUCER, now, rng, meter_id="meter-0"
                )
            house9 = await admit_member(
                view, ca, "house-9", Role.CONSUMER, now, rng, meter_id="meter-9"
            )
            # A renewal (new meter): the CA posts the old certificate's revocation itself,
            # and its register on disk (reloaded as after a restart) knows both.
            renewed = await admit_member(
                view, ca, "house-9", Role.CONSUMER, now, rng, meter_id="meter-9b",
                key=house9.key,
            )  # fmt: skip
            assert await view.is_revoked(compute_certificate_hash(house9.certificate))
            assert not await view.is_revoked(compute_certificate_hash(renewed.certificate))
            reloaded = load_identity_material(layout.root).ca
            assert reloaded.superseded == []
            assert house9.certificate.serial_number in reloaded.revoked
            assert renewed.certificate.serial_number in reloaded.issued
            blacklist, revoked = await view.get_member_lists([homes[0].certificate])
            assert blacklist == {member0} and revoked == {house0}
            process_open_round(rm, 3)

            def again(i: int) -> None:
                h = homes[i]
                register_household(
                    rm,
                    h.key,
                    h.certificate,
                    material.roots,
                    material.tc_key,
                    3,
                    now,
                    rng,
                    rng,
                    rm_blind_certificate=pinned,
                )

            rm.blacklist = blacklist
            with pytest.raises(Blacklisted):
                again(0)
            rm.revoked = revoked  # the X.509 certificate is revoked too
            with pytest.raises(CertificateRejected):
                again(0)
            again(1)  # an honest household still registers
            # A light client verifies the trace record's inclusion from genesis.
            proof = await client.call_agreed("tx_proof", {"hash": trace_tx.tx_hash.hex()})
            height = proof["height"]
            light = await build_light_client(client, genesis, height, timeout=10)
            assert light.head.height == height
            light.verify_tx_inclusion(
                height, trace_tx.tx_hash, decode_as(MerkleProof, bytes.fromhex(proof["proof"]))
            )
            # ... and the blacklist entry against the certified state root.
            key = compute_state_key("identity", b"bl/" + member0)
            state = await client.call_agreed("state", {"key": key.hex()})
            light2 = await build_light_client(client, genesis, state["height"], timeout=10)
            light2.verify_state_value(
                state["height"],
                key,
                bytes.fromhex(state["value"]),
                decode_as(StateProof, bytes.fromhex(state["proof"])),
            )
            # Every replica holds the same chain.
            top = max(r.ledger.height for r in replicas)
            await wait_until(
                lambda: all(r.ledger.height == top for r in replicas), 10, "equal heights"
            )
            assert len({r.ledger.head.header_hash for r in replicas}) == 1
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
