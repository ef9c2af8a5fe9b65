"""Sweeps after a trace: only the traced identity's open pseudonyms are revoked."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.identity.ca import (
    compute_certificate_der,
    compute_certificate_hash,
)
from gridledger.identity.contracts import (
    KIND_BATCH,
    KIND_EVIDENCE,
    KIND_SWEEP,
    KIND_TRACE,
    Reader,
)
from gridledger.identity.errors import (
    TracingError,
)
from gridledger.identity.messages import (
    SWEEP_BLINDINGS_TAG,
    PseudonymSweep,
    SignedSweepBlindings,
    SweepBlindings,
    TraceRecord,
    TraceResult,
)
from gridledger.identity.sweep import (
    compute_blinding_context,
    compute_blinding_with,
    on_sweep_blind,
    on_sweep_decrypt,
)
from gridledger.identity.tags import compute_handle_plaintext, decode_tag
from gridledger.identity.trace_center import (
    compute_evidence_id,
    compute_trace,
    on_trace_request,
)

from .conftest import NOW, World
from .helpers import (
    SENDER,
    Chain,
    K,
    Traced,
    batch_payload,
    evidence_on_chain,
    issue_round,
    make_evidence,
    submit_trace,
    trace_read,
)


def _sweep(
    world: World, t: Traced, round_: int, blind_by: Sequence[int], share_by: Sequence[int]
) -> tuple[PseudonymSweep, TraceResult]:
    reader = Reader(t.chain.get)
    trace = reader.trace(t.eid)
    assert trace is not None
    certs = reader.round_certificates(round_)
    rng = DeterministicRng(f"sweep-{round_}")
    tr = {x.index: x for x in world.trustees}
    blindings = tuple(on_sweep_blind(tr[i], trace, round_, certs, NOW, rng) for i in blind_by)
    shares = tuple(
        on_sweep_decrypt(tr[i], trace, round_, certs, blindings, world.roots, NOW, rng)
        for i in share_by
    )
    return PseudonymSweep(t.eid, round_, blindings, shares), trace


def test_sweep_revokes_only_the_traced_users_later_pseudonym(world: World) -> None:
    t = evidence_on_chain(world, "sweep", 80)
    reader = Reader(t.chain.get)
    later_keys = [c.pseudonym.public_key.raw for c in t.later]
    # Before any trace there is nothing to sweep.
    with pytest.raises(TracingError):
        certs = reader.round_certificates(81)
        on_sweep_blind(world.trustees[0], None, 81, certs, NOW, DeterministicRng("x"))
    assert submit_trace(t, t.record_entries).ok
    sweep, trace = _sweep(world, t, 81, (1, 2, 3), (2, 4, 5))
    receipt = t.chain.submit(KIND_SWEEP, sweep, SENDER)
    assert receipt.ok, receipt.reason
    assert reader.is_pseudonym_revoked(later_keys[0])
    assert not any(reader.is_pseudonym_revoked(k) for k in later_keys[1:])
    result = reader.sweep(t.eid, 81)
    assert result is not None and result.revoked == (later_keys[0],)
    assert result.identity == compute_certificate_hash(world.users[0].cert)
    assert not t.chain.submit(KIND_SWEEP, sweep, SENDER).ok  # once per (trace, round)
    # Honest users' handles: the transcript gives (M_J / M_I)^Z, never M_J / M_I, so a
    # dictionary over every member identity matches nothing.
    grp = world.tc_key.group
    m_i = compute_handle_plaintext(grp, trace.identity)
    ratios = {
        grp.mul(compute_handle_plaintext(grp, compute_certificate_hash(u.cert)), grp.inv(m_i))
        for u in world.users
    }
    certs = reader.round_certificates(81)
    for k, cert in enumerate(certs):
        a_k = grp.identity
        b_k = grp.identity
        for m in sweep.blindings:
            bl = m.body.blindings[k]
            a_k = grp.mul(a_k, grp.element_from_bytes(bl.a))
            b_k = grp.mul(b_k, grp.element_from_bytes(bl.b))
        assert a_k != decode_tag(world.tc_key, cert.tag).handle_a
        assert b_k not in ratios


def test_sweep_needs_t_contributors_valid_proofs_and_a_nontrivial_blinding(world: World) -> None:
    t = evidence_on_chain(world, "sweep-bad", 84)
    assert submit_trace(t, t.record_entries).ok
    reader = Reader(t.chain.get)
    certs = reader.round_certificates(85)
    trace = reader.trace(t.eid)
    assert trace is not None
    sweep, _ = _sweep(world, t, 85, (1, 2, 3), (1, 2, 3))
    rng = DeterministicRng("colluders")
    # Only t - 1 blinding contributors: they could unblind together.
    short = dataclasses.replace(sweep, blindings=sweep.blindings[:2])
    assert "needed" in t.chain.submit(KIND_SWEEP, short, SENDER).reason
    # Only t - 1 decryption share sets.
    assert not t.chain.submit(
        KIND_SWEEP, dataclasses.replace(sweep, shares=sweep.shares[:2]), SENDER
    ).ok
    # A trustee re-signs another's blindings under its own certificate.
    b1 = sweep.blindings[0]
    t4 = world.trustees[3]
    relayed = SignedSweepBlindings(
        b1.body, compute_certificate_der(t4.certificate),
        t4.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(b1.body)),
    )  # fmt: skip
    bad = dataclasses.replace(sweep, blindings=(relayed, *sweep.blindings[1:]))
    assert not t.chain.submit(KIND_SWEEP, bad, SENDER).ok
    # A blinding with a broken DLEQ proof (a^z and c^z' with z != z').
    grp = world.tc_key.group
    bl0 = b1.body.blindings[0]
    broken = dataclasses.replace(
        bl0, b=grp.element_to_bytes(grp.mul(grp.element_from_bytes(bl0.b), grp.g))
    )
    body = dataclasses.replace(b1.body, blindings=(broken, *b1.body.blindings[1:]))
    t1 = world.trustees[0]
    resigned = SignedSweepBlindings(
        body, b1.trustee_certificate, t1.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(body))
    )
    assert not t.chain.submit(
        KIND_SWEEP, dataclasses.replace(sweep, blindings=(resigned, *sweep.blindings[1:])), SENDER
    ).ok
    # Colluding trustees pick z_1 + z_2 + z_3 = 0: every handle would "match". Refused.
    cols = [world.trustees[i] for i in range(3)]
    zs = [grp.random_scalar(DeterministicRng(f"z{i}")) for i in range(2)]
    zs.append((-zs[0] - zs[1]) % grp.q)
    m_inv = grp.inv(compute_handle_plaintext(grp, trace.identity))
    colluding = []
    for tr, z in zip(cols, zs, strict=True):
        blindings = []
        for k, cert in enumerate(certs):
            tag = decode_tag(world.tc_key, cert.tag)
            ctx = compute_blinding_context(trace, 85, tr.index, k)
            c = grp.mul(tag.handle_b, m_inv)
            blindings.append(compute_blinding_with(grp, tag.handle_a, c, z, ctx, rng))
        body = SweepBlindings(t.eid, 85, tr.index, tuple(blindings))
        colluding.append(
            SignedSweepBlindings(
                body,
                compute_certificate_der(tr.certificate),
                tr.signing_key.sign(SWEEP_BLINDINGS_TAG, encode(body)),
            )
        )
    trivial = dataclasses.replace(sweep, blindings=tuple(colluding))
    assert "trivial" in t.chain.submit(KIND_SWEEP, trivial, SENDER).reason
    # A round without a batch; an expired round.
    assert not t.chain.submit(KIND_SWEEP, dataclasses.replace(sweep, round=99), SENDER).ok
    assert "expired" in t.chain.submit(KIND_SWEEP, sweep, SENDER, now=NOW + 7200).reason
    # The honest sweep still goes through.
    assert t.chain.submit(KIND_SWEEP, sweep, SENDER).ok


def test_expired_round_not_swept_offline(world: World) -> None:
    rm = world.new_rm(k=4)
    _, pb = issue_round(world, rm, range(12, 16), 340, "r-f5p", valid=(NOW - 7200, NOW - 3600))
    cur, cb = issue_round(world, rm, range(12, 16), 341, "r-f5c", valid=(NOW - 100, NOW + 3600))
    chain = Chain(world)
    assert chain.submit(KIND_BATCH, batch_payload(world, 340, pb), K, now=NOW - 7000).ok
    assert chain.submit(KIND_BATCH, batch_payload(world, 341, cb), K, now=NOW).ok
    ev = make_evidence(cur[0], cur[1], 341)
    assert chain.submit(KIND_EVIDENCE, ev, cur[1].pseudonym).ok
    reader, eid, rng = Reader(chain.get), compute_evidence_id(ev), DeterministicRng("r-f5tc")
    cert = reader.pseudonym_certificate(ev.accused)
    assert cert is not None
    msgs = [on_trace_request(tr, trace_read(chain, eid), rng) for tr in world.trustees[:3]]
    outcome = compute_trace(world.tc_key, cert.certificate, msgs, eid, world.roots, NOW)
    der = compute_certificate_der(world.users[12].cert)
    assert chain.submit(KIND_TRACE, TraceRecord(eid, outcome.entries, der), K).ok
    trace = reader.trace(eid)
    certs = reader.round_certificates(340)
    with pytest.raises(TracingError, match="expired"):
        on_sweep_blind(world.trustees[0], trace, 340, certs, NOW, rng)
    live = reader.round_certificates(341)
    blind = tuple(on_sweep_blind(t, trace, 341, live, NOW, rng) for t in world.trustees[:3])
    with pytest.raises(TracingError, match="expired"):  # a later read: the round expired
        on_sweep_decrypt(world.trustees[0], trace, 341, live, blind, world.roots, NOW + 3600, rng)
