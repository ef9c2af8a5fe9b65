"""The end-to-end demo behind ``gridledger demo`` (and ``make demo``).

Runs on an embedded default, with no server to install: a 4-replica consortium
(f = 1) in this process over loopback TCP, in a temporary directory.

1. ``init_consortium``: replica keys, the CA, replica certificates, the RM (identity
   key + pseudonym-signing key), the MM and 3-of-5 TC trustees (DKG), the genesis.
2. Six households are admitted with X.509 certificates (producer/consumer/prosumer).
3. Each registers for round 1 with the RM (cut and choose, K = 32); a seventh
   applicant cheats and is caught (escape probability 1/K), evidence on chain.
4. The households ask the MM anonymously; it publishes one shuffled batch on chain.
5. One pseudonym reneges; its counterparty files evidence on chain; 4 trustees
   answer, one with a bad share (named); 3 valid shares trace the identity; the
   trace record blacklists it and revokes its certificate; the RM refuses it.
6. The primary replica is killed; the others change view and keep committing.
7. A light client verifies the chain from genesis and inclusion proofs.

Every step prints what happened, what each party learned, and how long it took.
:func:`run_demo` returns a :class:`DemoSummary` (the tests assert on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.crypto.threshold import DecryptionShare
from gridledger.errors import GridledgerError, NodeError
from gridledger.identity.ca import Role, compute_certificate_der, compute_certificate_hash
from gridledger.identity.client import (
    IdentityChainView,
    build_light_client,
    register_household,
)
from gridledger.identity.contracts import KIND_BATCH, KIND_BLACKLIST, KIND_EVIDENCE, KIND_TRACE
from gridledger.identity.errors import (
    Blacklisted,
    CertificateRejected,
    CheatingDetected,
    TracingError,
)
from gridledger.identity.messages import (
    TRACE_SHARE_TAG,
    Obligation,
    ObligationEvidence,
    SignedTraceShare,
    TraceRecord,
    TraceResult,
    TraceShare,
)
from gridledger.identity.obligations import create_signed_obligation
from gridledger.identity.pseudonym_issuer import (
    compute_pseudonym_request,
    on_pseudonym_request,
    process_close_batch,
    process_open_batch,
)
from gridledger.identity.registration import (
    PseudonymCredential,
    RegistrationManager,
    check_challenge,
    create_candidate,
    on_blind_signature,
    on_commitments,
    on_hello,
    on_open_request,
    on_openings,
    process_open_round,
    sign_commitments,
    start_registration,
)
from gridledger.identity.trace_center import (
    TraceRequestRead,
    compute_evidence_id,
    compute_trace,
    on_trace_request,
)
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.execution import Receipt
from gridledger.ledger.merkle import MerkleProof
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import ConsensusParams, load_config
from gridledger.node.consortium import ConsortiumLayout, init_consortium, load_genesis
from gridledger.node.identity_material import (
    ConsortiumIdentity,
    IdentitySetup,
    RoleKey,
    issue_member,
    load_identity_material,
)
from gridledger.node.replica import Replica

CHAIN_ID = "gridledger-demo"
N_REPLICAS = 4
ROUND = 1
DEMO_PARAMS = ConsensusParams(
    max_batch=200,
    batch_delay_ms=10,
    view_change_timeout_ms=1500,
    checkpoint_interval=4,
    watermark_window=16,
    tick_ms=20,
    status_log_s=30,
)
TIME_LIMIT_S = 55.0
_ROLES = (Role.PRODUCER, Role.CONSUMER, Role.PROSUMER)


@dataclass(frozen=True)
class DemoSummary:
    """The demo's outcomes (what the tests and the final table check)."""

    seed: int
    k: int
    households: int
    pseudonyms_published: int
    cheater_caught: bool
    cheater_blacklisted: bool
    escape_probability: float
    reneger: str
    reneger_identity: bytes
    traced_identity: bytes
    bad_trustee: int
    bad_trustees_named: tuple[int, ...]
    trustees_used: int
    blacklisted: bool
    revoked: bool
    rm_refused: bool
    killed_replica: int
    view_before: int
    view_after: int
    committed_after_crash: int
    heights: dict[int, int]
    light_client_height: int
    light_client_verified: bool
    timings: dict[str, float] = field(default_factory=dict)
    duration_s: float = 0.0

    @property
    def traced_is_reneger(self) -> bool:
        return self.traced_identity == self.reneger_identity

    @property
    def heights_agree(self) -> bool:
        return len(set(self.heights.values())) == 1


@dataclass
class _Household:
    name: str
    role: Role
    member: RoleKey
    credential: PseudonymCredential | None = None

    @property
    def identity(self) -> bytes:
        return compute_certificate_hash(self.member.certificate)


def _short(data: bytes) -> str:
    return data.hex()[:12] + "…"


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def _quiet_replica_logs() -> Iterator[None]:
    """Replica logs (e.g. a refused connection to the killed primary) stay out of the show."""
    logger = logging.getLogger("gridledger")
    old = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(old)


class _Demo:
    def __init__(self, seed: int, out: Console, k: int, households: int, workdir: Path) -> None:
        self.seed = seed
        self.out = out
        self.k = k
        self.n_households = households
        self.workdir = workdir
        self.rng = DeterministicRng(seed)
        self.timings: dict[str, float] = {}
        self.replicas: dict[int, Replica] = {}
        self.client: ConsortiumClient | None = None
        self.nonces: dict[bytes, int] = {}
        self.tx_key = Ed25519PrivateKey.generate(self.rng.fork("submitter"))

    # -- helpers ----------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start

    def say(self, text: str) -> None:
        self.out.print(text)

    def learned(self, party: str, text: str) -> None:
        self.out.print(f"  [bold cyan]{party}[/] learned: {text}")

    async def submit(self, kind: str, payload: Any, signer: Ed25519PrivateKey) -> dict[str, Any]:
        assert self.client is not None
        nonce = self.nonces.get(signer.public_key.raw, 0) + 1
        self.nonces[signer.public_key.raw] = nonce
        tx = Transaction.create(CHAIN_ID, kind, payload, signer, nonce)
        [receipt] = await self.client.submit([encode(tx)], timeout=20)
        receipt["tx"] = tx
        if receipt.get("status") != "committed":
            raise NodeError(f"{kind} was not committed: {receipt.get('reason')}")
        return receipt

    async def status(self) -> dict[int, Any]:
        assert self.client is not None
        statuses = await self.client.call_all("status", {}, timeout=3.0)
        return {r: s for r, s in statuses.items() if isinstance(s, dict)}

    # -- the run ------------------------------------------------------------------------

    async def run(self) -> DemoSummary:
        t0 = time.perf_counter()
        layout, material = self.setup_consortium()
        await self.start_replicas(layout)
        try:
            return await self.scenario(layout, material, t0)
        finally:
            if self.client is not None:
                await self.client.close()
            for replica in self.replicas.values():
                with contextlib.suppress(Exception):
                    await replica.stop()

    def setup_consortium(self) -> tuple[ConsortiumLayout, ConsortiumIdentity]:
        out = self.out
        out.rule("[bold]1. The consortium")
        with self.step("consortium init"):
            ports = _free_ports(2 * N_REPLICAS)
            layout = init_consortium(
                self.workdir / "consortium",
                N_REPLICAS,
                consensus=DEMO_PARAMS,
                ports=[(ports[2 * i], ports[2 * i + 1]) for i in range(N_REPLICAS)],
                chain_id=CHAIN_ID,
                identity=IdentitySetup(tc_threshold=3, tc_trustees=5),
                rng=self.rng.fork("consortium"),
            )
            material = load_identity_material(layout.root, N_REPLICAS)
        tc = material.tc_key
        self.say(
            f"{N_REPLICAS} aggregator replicas (n = 3f+1, f = 1) of chain [bold]{CHAIN_ID}[/] "
            f"in {layout.root}"
        )
        self.say(
            "CA (Ed25519 root) certified every replica (role aggregator), the RM (identity key "
            "and a [italic]separate[/] pseudonym-signing key), the MM, and the trustees"
        )
        self.say(
            f"TC key: {tc.t}-of-{tc.n} threshold ElGamal over {tc.group.name}, from a "
            "joint-Feldman DKG — no party ever held the whole key"
        )
        self.say(
            "genesis carries the CA root, the RM's pseudonym-key certificate and the TC key; "
            "every replica builds the same identity contract from it "
            f"({self.timings['consortium init']:.2f} s)"
        )
        return layout, material

    async def start_replicas(self, layout: ConsortiumLayout) -> None:
        with self.step("replicas start"):
            for i, path in enumerate(layout.configs):
                replica = Replica(load_config(path), synchronous="NORMAL")
                await replica.start()
                self.replicas[i] = replica
            self.client = ConsortiumClient(layout.get_api_addresses())
            deadline = time.monotonic() + 10
            while len(await self.status()) < N_REPLICAS:
                if time.monotonic() > deadline:
                    raise NodeError("replicas did not answer within 10 s")
                await asyncio.sleep(0.1)
        self.say(f"replicas listening on 127.0.0.1 ({self.timings['replicas start']:.2f} s)")

    async def scenario(
        self, layout: ConsortiumLayout, material: ConsortiumIdentity, t0: float
    ) -> DemoSummary:
        now = int(time.time())
        homes = self.admit(material, now)
        rm = material.create_rm(k=self.k)
        process_open_round(rm, ROUND)
        self.register_all(rm, material, homes, now)
        caught, cheater_blacklisted = await self.cheat(rm, material, homes, now)
        published = await self.publish_batch(material, homes, now)
        reneger, traced, bad_trustee, named, used = await self.renege_and_trace(
            material, homes, now
        )
        blacklisted, revoked, refused = await self.refuse(rm, material, reneger, now)
        killed, view_before, view_after, committed, heights = await self.crash_primary()
        lc_height, verified = await self.light_client(layout)
        summary = DemoSummary(
            seed=self.seed,
            k=self.k,
            households=len(homes),
            pseudonyms_published=published,
            cheater_caught=caught,
            cheater_blacklisted=cheater_blacklisted,
            escape_probability=1 / self.k,
            reneger=reneger.name,
            reneger_identity=reneger.identity,
            traced_identity=traced,
            bad_trustee=bad_trustee,
            bad_trustees_named=named,
            trustees_used=used,
            blacklisted=blacklisted,
            revoked=revoked,
            rm_refused=refused,
            killed_replica=killed,
            view_before=view_before,
            view_after=view_after,
            committed_after_crash=committed,
            heights=heights,
            light_client_height=lc_height,
            light_client_verified=verified,
            timings=dict(self.timings),
        )
        summary = dataclasses.replace(summary, duration_s=time.perf_counter() - t0)
        self.report(summary)
        failed = [name for name, ok in _check_outcomes(summary) if not ok]
        if failed:
            raise NodeError(f"the demo did not show: {', '.join(failed)}")
        return summary

    def admit(self, material: ConsortiumIdentity, now: int) -> list[_Household]:
        self.out.rule("[bold]2. Admission: the CA certifies the households")
        homes: list[_Household] = []
        table = Table("household", "role", "meter", "permission", "identity (cert hash)")
        with self.step("admission"):
            for i in range(self.n_households):
                role = _ROLES[i % 3]
                name = f"house-{i + 1}"
                member = issue_member(
                    material.ca, name, role, now, self.rng, meter_id=f"meter-{i + 1:03d}"
                )
                homes.append(_Household(name, role, member))
                table.add_row(
                    name, role.value, f"meter-{i + 1:03d}", "trade", _short(homes[-1].identity)
                )
        self.out.print(table)
        self.say(f"X.509 certificates with attribute sets ({self.timings['admission']:.2f} s)")
        return homes

    def register_all(
        self, rm: RegistrationManager, material: ConsortiumIdentity, homes: list[_Household],
        now: int,
    ) -> None:  # fmt: skip
        self.out.rule(f"[bold]3. Registration for round {ROUND} with the RM (K = {self.k})")
        times = []
        with self.step("registration"):
            for h in homes:
                start = time.perf_counter()
                h.credential = register_household(
                    rm,
                    h.member.key,
                    h.member.certificate,
                    material.roots,
                    material.tc_key,
                    ROUND,
                    now,
                    self.rng.fork(f"user-{h.name}"),
                    self.rng.fork(f"rm-{h.name}"),
                    rm_blind_certificate=material.rm_pseudonym.certificate,
                )
                times.append(time.perf_counter() - start)
        self.say(
            f"{len(homes)} households registered: each committed to {self.k} candidates, "
            f"opened {self.k - 1}, and got one blind signature "
            f"({1000 * sum(times) / len(times):.0f} ms each, user + RM)"
        )
        self.learned(
            "RM",
            f"who registered for round {ROUND} ({len(homes)} identities) and {self.k - 1} "
            "discarded candidates each — [italic]not[/] the kept pseudonym key or its tag "
            "(RSA blinding hides it perfectly)",
        )

    async def cheat(
        self, rm: RegistrationManager, material: ConsortiumIdentity, homes: list[_Household],
        now: int,
    ) -> tuple[bool, bool]:  # fmt: skip
        out = self.out
        out.rule("[bold]3b. A cheating applicant")
        rng = self.rng.fork("mallory")
        mallory = issue_member(
            material.ca, "mallory", Role.PROSUMER, now, rng, meter_id="meter-666"
        )
        framed = homes[0]
        st, hello = start_registration(
            mallory.key, mallory.certificate, material.roots, material.tc_key, rm.certificate,
            ROUND, now, rng, rm_blind_certificate=material.rm_pseudonym.certificate,
        )  # fmt: skip
        challenge = on_hello(rm, hello, now, self.rng.fork("rm-mallory"))
        blind_key = check_challenge(st, challenge, now)
        st.challenge, st.blind_key = challenge, blind_key
        bad = rng.randbelow(self.k)
        st.candidates = [
            create_candidate(st, blind_key, j, rng, identity=framed.identity if j == bad else None)
            for j in range(challenge.challenge.k)
        ]
        request = on_commitments(rm, sign_commitments(st, now), now, self.rng.fork("rm-mallory"))
        self.say(
            f"mallory hides a tag naming {framed.name} in candidate {bad} of {self.k}; "
            f"the RM keeps candidate {request.request.keep} closed"
        )
        self.say(
            f"escape probability = 1/K = 1/{self.k} = {100 / self.k:.1f} % "
            "(the slot is consumed at step ④, so retrying does not help)"
        )
        try:
            signature = on_openings(rm, on_open_request(st, request, now), now)
        except CheatingDetected as exc:
            self.say(
                f"[bold red]caught[/]: opening {exc.index} does not match ({exc.reason}); "
                "mallory's own signed messages are the evidence"
            )
            receipt = await self.submit(KIND_BLACKLIST, exc.evidence, self.tx_key)
            self.say(
                f"identity.blacklist committed in block {receipt['height']}: every replica "
                "re-ran the cut and choose and blacklisted mallory"
            )
            view = IdentityChainView(self._client())
            status = await view.get_member_status(mallory.certificate)
            return True, status.blacklisted
        on_blind_signature(st, signature, now)
        self.say(
            "[yellow]mallory escaped this time (probability 1/K)[/]: its pseudonym is "
            f"unaccountable, but {framed.name} never signed its consent, so it cannot be framed"
        )
        return False, False

    def _client(self) -> ConsortiumClient:
        assert self.client is not None
        return self.client

    async def publish_batch(
        self, material: ConsortiumIdentity, homes: list[_Household], now: int
    ) -> int:
        self.out.rule("[bold]4. Pseudonym certificates from the MM (anonymous channel)")
        with self.step("MM batch"):
            mm = material.create_mm(now)
            process_open_batch(mm, ROUND)
            for h in homes:
                assert h.credential is not None
                on_pseudonym_request(
                    mm, compute_pseudonym_request(h.credential, material.mm.certificate)
                )
            payload = process_close_batch(mm, now - 60, now + 3600, self.rng.fork("mm-shuffle"))
            batch = payload.certificates
            receipt = await self.submit(KIND_BATCH, payload, self.tx_key)
        self.say(
            f"the MM checked {len(batch)} RM signatures and proofs of possession, shuffled the "
            f"batch, signed it whole and published it: identity.pseudonym-batch in block "
            f"{receipt['height']} ({self.timings['MM batch']:.2f} s)"
        )
        order = ", ".join(_short(s.certificate.pseudonym_key) for s in batch)
        self.say(f"on chain, in shuffled order: {order}")
        self.learned(
            "MM",
            f"{len(batch)} pseudonym keys and their encrypted tags — [italic]not[/] who owns them",
        )
        return len(batch)

    async def renege_and_trace(
        self, material: ConsortiumIdentity, homes: list[_Household], now: int
    ) -> tuple[_Household, bytes, int, tuple[int, ...], int]:
        out = self.out
        out.rule("[bold]5. A reneged trade, evidence, and tracing by 3 of 5 trustees")
        rng = self.rng.fork("trace")
        i = 1 + rng.randbelow(len(homes) - 1)  # not house-1, whom mallory tried to frame
        reneger, victim = homes[i], homes[(i + 1) % len(homes)]
        assert reneger.credential is not None and victim.credential is not None
        obligation = create_signed_obligation(
            Obligation(
                ROUND,
                reneger.credential.pseudonym.public_key.raw,
                victim.credential.pseudonym.public_key.raw,
                b"trade-0042",
                "1500 Wh for slot 12",
                now - 1,  # the delivery deadline, already past
            ),
            reneger.credential.pseudonym,
            victim.credential.pseudonym,
        )
        evidence = ObligationEvidence(obligation, "1500 Wh for slot 12 were never delivered")
        receipt = await self.submit(KIND_EVIDENCE, evidence, victim.credential.pseudonym)
        eid = compute_evidence_id(evidence)
        self.say(
            f"pseudonym {_short(evidence.accused)} signed a trade with pseudonym "
            f"{_short(evidence.accuser)} (1500 Wh by a deadline) and never delivered; the buyer "
            f"files the obligation signed by both as identity.evidence in block "
            f"{receipt['height']}"
        )
        view = IdentityChainView(self._client())
        with self.step("tracing"):
            record = await view.get_evidence(eid)
            signed_cert = await view.get_pseudonym_certificate(evidence.accused)
            accuser_cert = await view.get_pseudonym_certificate(evidence.accuser)
            if record is None or signed_cert is None:
                raise NodeError("evidence or certificate missing on chain")
            read = TraceRequestRead(record, signed_cert, accuser_cert, await view.get_trace(eid))
            cert = signed_cert.certificate
            responding = material.trustees[:4]
            bad_index = responding[1 + rng.randbelow(3)].index
            messages = []
            for tr in responding:
                msg = on_trace_request(tr, read, rng.fork(f"tc-{tr.index}"))
                if tr.index == bad_index:
                    msg = _corrupt_share(msg, tr, material)
                messages.append(msg)
            try:
                compute_trace(material.tc_key, cert, messages[:2], eid, material.roots, now)
                early = "[red]decrypted?![/]"
            except TracingError:
                early = "nothing: too few shares"
            outcome = compute_trace(material.tc_key, cert, messages, eid, material.roots, now)
            identity, bad, valid = outcome.identity, outcome.bad_trustees, outcome.entries
            bad_share = next(encode(m) for m in messages if m.share.trustee == bad_index)
            # the combiner fetches the X.509 certificate the tag names (CA register / directory)
            traced_der = compute_certificate_der(reneger.member.certificate)
            receipt = await self.submit(
                KIND_TRACE, TraceRecord(eid, (bad_share, *valid), traced_der), self.tx_key
            )
            self.trace_tx: Transaction = receipt["tx"]
        result = decode_as(TraceResult, bytes.fromhex(receipt["data"]))
        self.say(
            f"trustees {', '.join(str(t.index) for t in responding)} checked the evidence on "
            f"chain (f+1-agreed reads) and returned Chaum-Pedersen-proven decryption shares"
        )
        self.learned("trustees 1-2 together", early)
        self.say(
            f"[bold red]trustee {bad_index}[/] sent a bad share: its proof fails and it is named "
            f"(combiner: {list(bad)}, on chain: {list(result.bad_trustees)})"
        )
        self.say(
            f"{len(valid)} valid shares decrypt the tag: identity {_short(identity)} = "
            f"[bold]{reneger.name}[/], whose consent signature inside the tag verifies under "
            f"its certificate (accountable = {result.accountable}); identity.trace-record "
            f"committed in block {receipt['height']} ({self.timings['tracing']:.2f} s)"
        )
        self.learned(
            f"{material.tc_key.t} trustees", f"exactly one identity, {reneger.name}'s, and only "
            "because evidence was on chain",
        )  # fmt: skip
        return reneger, result.identity, bad_index, result.bad_trustees, len(valid)

    async def refuse(
        self, rm: RegistrationManager, material: ConsortiumIdentity, reneger: _Household, now: int
    ) -> tuple[bool, bool, bool]:
        view = IdentityChainView(self._client())
        status = await view.get_member_status(reneger.member.certificate)
        assert reneger.credential is not None
        pseudonym = reneger.credential.pseudonym.public_key.raw
        pseudonym_revoked = await view.get(b"revp/" + pseudonym) is not None
        self.say(
            f"on chain: {reneger.name} blacklisted = {status.blacklisted}, X.509 certificate "
            f"revoked = {status.revoked}, pseudonym certificate revoked = {pseudonym_revoked}"
        )
        rm.blacklist, rm.revoked = await view.get_member_lists([reneger.member.certificate])
        process_open_round(rm, ROUND + 1)
        refused = False
        try:
            register_household(
                rm, reneger.member.key, reneger.member.certificate, material.roots,
                material.tc_key, ROUND + 1, now, self.rng, self.rng,
                rm_blind_certificate=material.rm_pseudonym.certificate,
            )  # fmt: skip
        except (Blacklisted, CertificateRejected) as exc:
            refused = True
            self.say(f"round {ROUND + 1}: the RM, reading the chain, refuses {reneger.name}: {exc}")
        return status.blacklisted, status.revoked, refused

    async def crash_primary(self) -> tuple[int, int, int, int, dict[int, int]]:
        self.out.rule("[bold]6. The primary crashes")
        statuses = await self.status()
        first = statuses[min(statuses)]
        primary, view_before = int(first["primary"]), int(first["view"])
        self.say(
            f"view {view_before}, primary = replica {primary}, height {first['height']}: "
            f"killing replica {primary}"
        )
        with self.step("view change"):
            await self.replicas.pop(primary).stop()
            key = Ed25519PrivateKey.generate(self.rng.fork("meter"))
            txs = [
                Transaction.create(
                    CHAIN_ID, KV_SET_KIND, KvSet(b"meter-%d" % j, b"%d Wh" % (100 * j)), key, j
                )
                for j in range(1, 6)
            ]
            receipts = await self._client().submit([encode(tx) for tx in txs], timeout=20)
            committed = sum(r.get("status") == "committed" for r in receipts)
            survivors = list(self.replicas.values())
            deadline = time.monotonic() + 10
            while len({r.ledger.height for r in survivors}) != 1:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        statuses = await self.status()
        after = statuses[min(statuses)]
        heights = {r.id: r.ledger.height for r in survivors}
        self.say(
            f"{committed} meter readings committed by the 3 survivors after a view change "
            f"({self.timings['view change']:.2f} s): view {after['view']}, primary = replica "
            f"{after['primary']}, heights {heights}"
        )
        return primary, view_before, int(after["view"]), committed, heights

    async def light_client(self, layout: ConsortiumLayout) -> tuple[int, bool]:
        self.out.rule("[bold]7. A light client")
        client = self._client()
        genesis = load_genesis(layout.root / "genesis.cbor")
        source = min(self.replicas)
        with self.step("light client"):
            height = max(r.ledger.height for r in self.replicas.values())
            tx_hash = self.trace_tx.tx_hash
            proof = await client.call_agreed("tx_proof", {"hash": tx_hash.hex()})
            light = await build_light_client(client, genesis, height, replica=source, timeout=10)
            at = int(proof["height"])
            light.verify_tx_inclusion(at, tx_hash, decode_as(MerkleProof, _hex(proof["proof"])))
            receipt = decode_as(Receipt, _hex(proof["receipt"]))
            light.verify_receipt(at, receipt, decode_as(MerkleProof, _hex(proof["receipt_proof"])))
        self.say(
            f"from the genesis alone: {light.head.height} headers, each with a commit certificate "
            f"(2f+1 = 3 validator signatures) — verified ({self.timings['light client']:.2f} s)"
        )
        self.say(
            f"the trace record {_short(tx_hash)} is in block {at} (Merkle inclusion proof) and "
            f"its receipt says ok = {receipt.ok} — verified without a block body"
        )
        return light.head.height, receipt.ok

    def report(self, s: DemoSummary) -> None:
        out = self.out
        out.rule("[bold]Who learned what")
        table = Table("party", "saw", "learned")
        table.add_row("RM", "identities, K−1 opened candidates", "who registered; no pseudonym")
        table.add_row("MM", "pseudonym keys, tags, RM signatures", "no identity")
        table.add_row(
            "replicas / public", "shuffled certificates, evidence", "only traced identities"
        )
        table.add_row("< t trustees", "public data", "nothing")
        table.add_row("t = 3 trustees + evidence", "one tag", f"{s.reneger} (only)")
        out.print(table)
        out.rule("[bold]Summary")
        summary = Table("outcome", "value")
        summary.add_row("pseudonyms published", str(s.pseudonyms_published))
        summary.add_row(
            "cheater caught (escape 1/K)",
            f"{s.cheater_caught} ({100 * s.escape_probability:.1f} %)",
        )
        summary.add_row("traced identity = reneger", f"{s.traced_is_reneger} ({s.reneger})")
        summary.add_row("bad trustee named", f"{s.bad_trustees_named} (was {s.bad_trustee})")
        summary.add_row(
            "blacklisted / revoked / RM refuses", f"{s.blacklisted} / {s.revoked} / {s.rm_refused}"
        )
        summary.add_row(
            "primary killed → view", f"replica {s.killed_replica}: {s.view_before} → {s.view_after}"
        )
        summary.add_row("chain heights (survivors)", f"{s.heights} agree = {s.heights_agree}")
        summary.add_row(
            "light client", f"height {s.light_client_height}, verified = {s.light_client_verified}"
        )
        for name, secs in s.timings.items():
            summary.add_row(f"time: {name}", f"{secs:.2f} s")
        summary.add_row("total", f"{s.duration_s:.1f} s")
        out.print(summary)


def _check_outcomes(s: DemoSummary) -> list[tuple[str, bool]]:
    """What the demo must show (a cheater escaping with probability 1/K is not a failure)."""
    return [
        ("every household certified", s.pseudonyms_published == s.households),
        ("caught cheater blacklisted", s.cheater_blacklisted or not s.cheater_caught),
        ("the reneger traced", s.traced_is_reneger),
        ("the bad trustee named", s.bad_trustees_named == (s.bad_trustee,)),
        ("blacklist and revocation", s.blacklisted and s.revoked and s.rm_refused),
        ("a view change", s.view_after > s.view_before and s.committed_after_crash > 0),
        ("agreeing survivors", s.heights_agree),
        ("a verified light client", s.light_client_verified),
    ]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text)


def _corrupt_share(
    msg: SignedTraceShare, trustee: Any, material: ConsortiumIdentity
) -> SignedTraceShare:
    """A trustee that lies: a wrong share, correctly signed (so only the proof catches it)."""
    group = material.tc_key.group
    share = DecryptionShare.from_bytes(msg.share.share, group)
    wrong = dataclasses.replace(share, d=group.mul(share.d, group.g))
    body = TraceShare(msg.share.evidence_id, msg.share.trustee, wrong.to_bytes(group))
    return SignedTraceShare(
        body, msg.trustee_certificate, trustee.signing_key.sign(TRACE_SHARE_TAG, encode(body))
    )


def run_demo(
    seed: int = 7,
    console: Console | None = None,
    *,
    k: int = 32,
    households: int = 6,
    workdir: Path | None = None,
) -> DemoSummary:
    """Run the whole scenario (bounded by :data:`TIME_LIMIT_S`) and return its outcomes."""
    out = console or Console()
    out.rule(f"[bold]gridledger demo[/] (seed {seed})")
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_replica_logs())
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gridledger-")))
        demo = _Demo(seed, out, k, households, workdir)
        try:
            return asyncio.run(asyncio.wait_for(demo.run(), TIME_LIMIT_S))
        except TimeoutError:
            raise NodeError(f"the demo did not finish within {TIME_LIMIT_S:.0f} s") from None
        except ClientError as exc:
            raise NodeError(f"the consortium did not answer: {exc.reason}") from None
        except GridledgerError:
            raise
