"""Benchmark of pseudonym registration and tracing; prints a markdown table (< 2 min).

Per registration round: wall time of the user's, the RM's and the MM's work
(one core, gmpy2), and the bytes each party sends; RM throughput = 1 / RM time.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from cryptography import x509

from gridledger.crypto.encoding import encode
from gridledger.crypto.groups import EDWARDS25519
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.identity.ca import MemberAttributes, create_authority, process_issue
from gridledger.identity.genesis import compute_identity_genesis_state
from gridledger.identity.messages import (
    EvidenceRecord,
    Obligation,
    ObligationEvidence,
    SignedPseudonymCertificate,
)
from gridledger.identity.obligations import create_signed_obligation
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    create_market_manager,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
from gridledger.identity.registration import (
    RmConfig,
    create_registration_manager,
    on_blind_signature,
    on_challenge,
    on_commitments,
    on_hello,
    on_open_request,
    on_openings,
    process_open_round,
    start_registration,
)
from gridledger.identity.trace_center import (
    TraceRequestRead,
    Trustee,
    compute_evidence_id,
    compute_trace,
    deal_trustee_keys,
    on_trace_request,
)
from gridledger.identity.verification import (
    check_pseudonym_for_round,
    get_identity_reader,
    verify_pseudonym_on_chain,
)
from gridledger.ledger.contracts import StateView
from gridledger.ledger.state import Overlay, WorldState

NOW = 1_750_000_000
DAY = 86_400
ROUNDS = {8: 30, 32: 30, 128: 8}  # registrations per K; medians reported


def main() -> None:
    rng = DeterministicRng("bench")
    ca = create_authority("CA", Ed25519PrivateKey.generate(rng), NOW - DAY, 9 * DAY, rng)
    keys = [RsaPrivateKey.generate(2048) for _ in range(5)]

    def issue(name: str, key: RsaPrivateKey, role: str, perms: tuple[str, ...]):  # type: ignore[no-untyped-def]
        attrs = MemberAttributes(role, name, None, perms)
        return process_issue(ca, name, key.public_key, attrs, NOW - DAY, 5 * DAY, rng)

    rm_c = issue("rm", keys[0], "rm", ())
    blind_c = issue("rm", keys[1], "rm", ("sign-pseudonyms",))
    mm_c = issue("mm", keys[2], "mm", ("issue-pseudonym-certs",))
    tc_certs = {i: issue(f"tc-{i}", keys[4], "tc-trustee", ("trace",)) for i in range(1, 6)}
    user_c = [issue(f"u{i}", keys[3], "prosumer", ("trade",)) for i in range(max(ROUNDS.values()))]
    roots = (ca.certificate,)
    tc_key, shares = deal_trustee_keys(3, 5, EDWARDS25519, rng)
    print(
        "| K | user ms | RM ms | MM ms | RM reg/s | user→RM bytes | RM→user bytes | user→MM bytes |"
    )
    print("|---|---|---|---|---|---|---|---|")
    last_cert = None
    for k, rounds in ROUNDS.items():
        rm = create_registration_manager(
            RmConfig(k=k), keys[0], rm_c, keys[1], blind_c, roots, tc_key
        )
        mm = create_market_manager(keys[2], mm_c, blind_c, roots, tc_key, NOW)
        t_users: list[float] = []
        t_rms: list[float] = []
        t_mms: list[float] = []
        up = down = to_mm = 0
        for r in range(rounds):
            process_open_round(rm, r)
            process_open_batch(mm, r)
            u = user_c[r]
            a = time.perf_counter()
            st, hello = start_registration(
                keys[3], u, roots, tc_key, rm_c, r, NOW, rng, rm_blind_certificate=blind_c
            )
            b = time.perf_counter()
            ch = on_hello(rm, hello, NOW, rng)
            c = time.perf_counter()
            com = on_challenge(st, ch, NOW, rng)
            d = time.perf_counter()
            req = on_commitments(rm, com, NOW, rng)
            e = time.perf_counter()
            op = on_open_request(st, req, NOW)
            f = time.perf_counter()
            bs = on_openings(rm, op, NOW)
            g = time.perf_counter()
            cred = on_blind_signature(st, bs, NOW)
            pr = compute_pseudonym_request(cred, mm_c)
            h = time.perf_counter()
            on_pseudonym_request(mm, pr)
            (last,) = process_close_batch(mm, NOW, NOW + 3600, rng).certificates
            i = time.perf_counter()
            last_cert = last.certificate
            last_signed, last_cred = last, cred
            t_users.append((b - a) + (d - c) + (f - e) + (h - g))
            t_rms.append((c - b) + (e - d) + (g - f))
            t_mms.append(i - h)
            up += len(encode(hello)) + len(encode(com)) + len(encode(op))
            down += len(encode(ch)) + len(encode(req)) + len(encode(bs))
            to_mm += len(encode(pr))
        n = rounds
        t_user, t_rm, t_mm = (statistics.median(x) for x in (t_users, t_rms, t_mms))
        print(
            f"| {k} | {1e3 * t_user:.1f} | {1e3 * t_rm:.1f} | {1e3 * t_mm:.1f} "
            f"| {1 / t_rm:.0f} | {up // n} | {down // n} | {to_mm // n} |"
        )
    assert last_cert is not None
    trustees = [Trustee(s.index, s, tc_key, keys[4], tc_certs[s.index]) for s in shares]
    accuser = Ed25519PrivateKey.generate(rng)
    accuser_cert = dataclasses.replace(
        last_signed,
        certificate=dataclasses.replace(last_cert, pseudonym_key=accuser.public_key.raw),
    )
    ob = Obligation(
        last_cert.round, last_cert.pseudonym_key, accuser.public_key.raw, b"o", "x", NOW
    )
    ev = ObligationEvidence(create_signed_obligation(ob, last_cred.pseudonym, accuser), "x")
    read = TraceRequestRead(EvidenceRecord(ev, 1, (NOW + 1) * 1000), last_signed, accuser_cert)
    a = time.perf_counter()
    msgs = [on_trace_request(t, read, rng) for t in trustees[:3]]
    b = time.perf_counter()
    compute_trace(tc_key, last_cert, msgs, compute_evidence_id(ev), roots, NOW)
    c = time.perf_counter()
    print()
    print("| tracing (t=3, n=5, ed25519 group) | ms |")
    print("|---|---|")
    print(f"| per trustee share (incl. proof, signature) | {1e3 * (b - a) / 3:.1f} |")
    print(f"| combine: verify 3 shares + decrypt | {1e3 * (c - b):.1f} |")
    print()
    bench_pseudonym_checks(roots, blind_c, mm_c, tc_key, last_signed)


def bench_pseudonym_checks(
    roots: tuple[x509.Certificate, ...],
    blind_c: x509.Certificate,
    mm_c: x509.Certificate,
    tc_key: ThresholdPublicKey,
    signed: SignedPseudonymCertificate,
    runs: int = 200,
) -> None:
    """What a market contract pays per order to check its pseudonym against chain state."""
    state = WorldState(compute_identity_genesis_state(roots, blind_c, tc_key, mm_c).items())
    overlay = Overlay(state)
    StateView(overlay, "identity").put(b"pc/" + signed.certificate.pseudonym_key, encode(signed))
    market = StateView(overlay, "market")  # the caller: another namespace's contract
    read = get_identity_reader(market)
    round_, at = signed.certificate.round, NOW * 1000
    times: dict[str, list[float]] = {"cheap": [], "full": []}
    for _ in range(runs):
        a = time.perf_counter()
        check_pseudonym_for_round(read, signed, round_, at)
        b = time.perf_counter()
        verify_pseudonym_on_chain(read, signed, NOW)
        c = time.perf_counter()
        times["cheap"].append(b - a)
        times["full"].append(c - b)
    cheap, full = (statistics.median(times[k]) for k in ("cheap", "full"))
    print("| pseudonym check per order (market contract, chain state) | ms |")
    print("|---|---|")
    print(
        f"| check_pseudonym_for_round (published copy, revocations, window) | {1e3 * cheap:.2f} |"
    )
    print(f"| verify_pseudonym_on_chain (full: MM, RM blind sig, tag) | {1e3 * full:.2f} |")


if __name__ == "__main__":
    main()
