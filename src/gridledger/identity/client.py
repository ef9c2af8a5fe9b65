"""Identity roles acting on a running consortium through any client of its API.

This module needs only what the Protocols below describe (node's
``ConsortiumClient`` satisfies them structurally), so identity never imports node:

* :class:`AgreedCaller` - ``call_agreed``: an answer that f+1 replicas gave;
* :class:`TransactionSubmitter` - ``submit``: receipts once f+1 replicas agree;
* :class:`ReplicaCaller` - ``call`` to one replica (headers for a light client).

What it offers:

* :class:`IdentityChainView` reads the identity contract's state with f+1-agreed
  ``state`` queries, e.g. for the RM's blacklist and revocation checks or a
  trustee's check that evidence is on chain (:meth:`~IdentityChainView.get_trace_request`
  reads everything a trustee needs, for either kind of evidence);
  :func:`create_contract_evidence_tx` points the identity contract at a default an
  evidence source (the market) recorded.
* :func:`register_household` runs the six registration steps between a household
  and the RM (in-process here; deployed parties exchange the same messages); the
  household pins the RM blind key named at genesis. :func:`register_and_schedule`
  then builds the anonymous MM request and draws its send time uniformly inside the
  round's MM batch window with the user's own rng (:mod:`gridledger.identity.schedule`);
  :func:`deliver_due_requests` hands the due ones to the MM.
* :func:`admit_member` is the CA's admission (:class:`CaService`): it refreshes the
  CA's view of the on-chain blacklist for the applicant's member id and meter,
  issues (refusing a blacklisted member with :class:`MemberBlacklisted`), persists
  the CA's register (:mod:`gridledger.identity.ca_register`), and posts the
  revocations of the certificates a renewal superseded
  (:func:`post_superseded_revocations`), keeping them queued, on disk, until the
  chain shows them.
* :func:`build_light_client` fetches headers and commit certificates from one
  replica and feeds them to a :class:`~gridledger.ledger.light.LightClient`,
  which trusts nothing but the genesis and the finality rule's signatures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from gridledger.crypto.encoding import decode, decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.errors import LedgerError, NodeError
from gridledger.identity.admission import (
    DEFAULT_VALIDITY_S,
    SUPERSEDED_REASON,
    RoleKey,
    create_signed_revocation,
    issue_member,
)
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    Permission,
    Role,
    compute_certificate_hash,
    compute_member_key,
    get_admitted_identities,
    get_attributes,
)
from gridledger.identity.ca_register import write_ca_register
from gridledger.identity.contracts import KIND_CONTRACT_EVIDENCE, KIND_REVOKE, NAMESPACE
from gridledger.identity.errors import RegistrationRejected
from gridledger.identity.genesis import GENESIS_EVIDENCE_SOURCES_KEY, compute_evidence_sources
from gridledger.identity.messages import (
    ContractDefault,
    ContractEvidence,
    ContractEvidenceRecord,
    EvidenceRecord,
    PseudonymCertificate,
    PseudonymRequest,
    SignedPseudonymCertificate,
    SweepResult,
    TraceResult,
    compute_contract_default_key,
    compute_contract_evidence_id,
)
from gridledger.identity.pseudonym_issuer import (
    MarketManager,
    compute_pseudonym_request,
    on_pseudonym_request,
)
from gridledger.identity.registration import (
    PseudonymCredential,
    RegistrationManager,
    on_blind_signature,
    on_challenge,
    on_commitments,
    on_hello,
    on_open_request,
    on_openings,
    start_registration,
)
from gridledger.identity.schedule import BatchWindow, compute_submission_time, is_due
from gridledger.identity.trace_center import TraceRequestRead
from gridledger.ledger.block import BlockHeader, GenesisConfig
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.light import LightClient
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.tx import Transaction

_STATE_ATTEMPTS = 5


class AgreedCaller(Protocol):
    """A client whose answers f+1 replicas agree on (node's ``ConsortiumClient``)."""

    async def call_agreed(
        self, method: str, params: dict[str, Any], timeout: float = ...
    ) -> Any: ...


class TransactionSubmitter(Protocol):
    """A client that submits encoded transactions and returns f+1-agreed receipts."""

    async def submit(self, txs: list[bytes], *, timeout: float = ...) -> list[dict[str, Any]]: ...


class ReplicaCaller(Protocol):
    """A client that can ask one replica (by id) directly."""

    @property
    def conns(self) -> Mapping[int, object]: ...

    async def call(
        self, replica: int, method: str, params: dict[str, Any], timeout: float = ...
    ) -> Any: ...


@dataclass(frozen=True)
class MemberStatus:
    """What the chain says about one member certificate: its member key blacklisted,
    the certificate (hash ``identity``) revoked."""

    identity: bytes
    member: bytes
    blacklisted: bool
    revoked: bool


class IdentityChainView:
    """Reads of the identity namespace, each agreed by f+1 replicas."""

    def __init__(self, client: AgreedCaller, timeout: float = 5.0) -> None:
        self.client = client
        self.timeout = timeout

    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` (inside the identity namespace) once f+1 replicas agree."""
        return await self.get_in(NAMESPACE, key)

    async def get_in(self, namespace: str, key: bytes) -> bytes | None:
        """The value of ``key`` inside ``namespace`` once f+1 replicas agree."""
        full = compute_state_key(namespace, key)
        last: NodeError | None = None
        for _ in range(_STATE_ATTEMPTS):  # a block may land between two replicas' answers
            try:
                result = await self.client.call_agreed(
                    "state", {"key": full.hex()}, timeout=self.timeout
                )
            except NodeError as exc:
                last = exc
                await asyncio.sleep(0.1)
                continue
            value = result.get("value") if isinstance(result, dict) else None
            if value is None:
                return None
            try:
                return bytes.fromhex(value)
            except (TypeError, ValueError):
                raise NodeError("replicas agreed on a malformed state value") from None
        assert last is not None
        raise last

    async def get_member_status(self, certificate: x509.Certificate) -> MemberStatus:
        identity = compute_certificate_hash(certificate)
        member = compute_member_key(get_attributes(certificate))
        blacklisted = await self.get(b"bl/" + member) is not None
        revoked = await self.is_revoked(identity)
        return MemberStatus(identity, member, blacklisted, revoked)

    async def is_revoked(self, certificate_hash: bytes) -> bool:
        """Whether the member certificate hashed ``certificate_hash`` is revoked on chain."""
        return await self.get(b"rev/" + certificate_hash) is not None

    async def get_member_lists(
        self, certificates: Iterable[x509.Certificate]
    ) -> tuple[frozenset[bytes], frozenset[bytes]]:
        """``(blacklisted member keys, revoked certificate hashes)`` for ``certificates``
        (the RM's checks)."""
        statuses = [await self.get_member_status(c) for c in certificates]
        return (
            frozenset(s.member for s in statuses if s.blacklisted),
            frozenset(s.identity for s in statuses if s.revoked),
        )

    async def get_blacklisted(self, members: Iterable[bytes]) -> frozenset[bytes]:
        """The member keys among ``members`` that are blacklisted on chain."""
        return frozenset([m for m in members if await self.get(b"bl/" + m) is not None])

    async def get_evidence(self, evidence_id: bytes) -> EvidenceRecord | None:
        raw = await self.get(b"ev/" + evidence_id)
        return None if raw is None else _decode(EvidenceRecord, raw)

    async def get_contract_evidence(self, evidence_id: bytes) -> ContractEvidenceRecord | None:
        """Contract evidence the identity contract recorded under ``evidence_id``."""
        raw = await self.get(b"cev/" + evidence_id)
        return None if raw is None else _decode(ContractEvidenceRecord, raw)

    async def get_contract_default(
        self, namespace: str, source_evidence_id: bytes
    ) -> ContractDefault | None:
        """The default a source contract wrote at ``<namespace>/default/<source id>``."""
        raw = await self.get_in(namespace, compute_contract_default_key(source_evidence_id))
        return None if raw is None else _decode(ContractDefault, raw)

    async def get_evidence_sources(self) -> tuple[str, ...]:
        """The evidence-source namespaces the identity genesis names (``()``: none)."""
        n = len(NAMESPACE) + 1
        return compute_evidence_sources(await self.get(GENESIS_EVIDENCE_SOURCES_KEY[n:]))

    async def get_trace_request(self, evidence_id: bytes) -> TraceRequestRead:
        """Everything a trustee reads before answering a trace request for ``evidence_id``
        (obligation or contract evidence; all ``None`` if neither is on chain)."""
        record = await self.get_evidence(evidence_id)
        trace = await self.get_trace(evidence_id)
        if record is not None:
            ev = record.evidence
            accused = await self.get_pseudonym_certificate(ev.accused)
            accuser = await self.get_pseudonym_certificate(ev.accuser)
            return TraceRequestRead(record, accused, accuser, trace)
        contract = await self.get_contract_evidence(evidence_id)
        if contract is None:
            return TraceRequestRead(None, None, None, trace)
        pointer = contract.evidence
        return TraceRequestRead(
            None,
            await self.get_pseudonym_certificate(contract.accused),
            None,
            trace,
            contract,
            await self.get_contract_default(pointer.namespace, pointer.evidence_id),
        )

    async def get_pseudonym_certificate(self, key: bytes) -> SignedPseudonymCertificate | None:
        raw = await self.get(b"pc/" + key)
        return None if raw is None else _decode(SignedPseudonymCertificate, raw)

    async def is_pseudonym_revoked(self, key: bytes) -> bool:
        return await self.get(b"revp/" + key) is not None

    async def get_trace(self, evidence_id: bytes) -> TraceResult | None:
        raw = await self.get(b"tr/" + evidence_id)
        return None if raw is None else _decode(TraceResult, raw)

    async def get_round_certificates(self, round_: int) -> tuple[PseudonymCertificate, ...]:
        """Round ``round_``'s certificates in on-chain order (what trustees sweep)."""
        raw = await self.get(b"round/" + str(round_).encode())
        if raw is None:
            return ()
        try:
            count = decode(raw)
        except EncodingError as exc:
            raise NodeError(f"replicas agreed on a malformed round size: {exc.reason}") from None
        if not isinstance(count, int) or count < 0:
            raise NodeError("replicas agreed on a malformed round size")
        out = []
        for i in range(count):
            key = await self.get(b"rpk/" + str(round_).encode() + b"/" + str(i).encode())
            signed = None if key is None else await self.get_pseudonym_certificate(key)
            if signed is None:
                raise NodeError(f"round {round_}'s certificate {i} is missing")
            out.append(signed.certificate)
        return tuple(out)

    async def get_sweep(self, evidence_id: bytes, round_: int) -> SweepResult | None:
        raw = await self.get(b"sw/" + evidence_id + b"/" + str(round_).encode())
        return None if raw is None else _decode(SweepResult, raw)


# -- the CA as a service ---------------------------------------------------------------


@dataclass
class CaService:
    """The CA at work: its state, its register file (``None``: in memory only, tests),
    the operator key that signs revocations, and where to post them."""

    ca: CertificateAuthority
    register_path: Path | None
    operator: RoleKey
    submitter: TransactionSubmitter
    chain_id: str

    def save(self) -> None:
        """Persist the register (crash-safe) if it has a file."""
        if self.register_path is not None:
            write_ca_register(self.register_path, self.ca)


async def admit_member(
    view: IdentityChainView,
    service: CaService,
    name: str,
    role: Role,
    now: int,
    rng: Rng,
    *,
    meter_id: str | None = None,
    permissions: tuple[Permission, ...] = (Permission.TRADE,),
    validity_s: int = DEFAULT_VALIDITY_S,
    key: RsaPrivateKey | None = None,
) -> RoleKey:
    """The CA admits ``name``: read the chain's blacklist for the member id's and meter's
    earlier certificates (f+1-agreed), issue, persist the register, then post the
    revocations of what the renewal superseded. Raises :class:`MemberBlacklisted`.
    ``key``: the applicant's own key (default: a fresh RSA-2048 key).

    The register is written before the certificate is handed out and before any
    revocation is posted, so a crash at any point leaves a register that knows the
    new certificate and still queues the revocations (retried by
    :func:`post_superseded_revocations`). Posting errors are raised as
    :class:`NodeError` after the certificate is safely recorded; the revocations
    then stay queued.
    """
    ca = service.ca
    attrs = MemberAttributes(role.value, name, meter_id, tuple(p.value for p in permissions))
    ca.blacklist = await view.get_blacklisted(get_admitted_identities(ca, attrs))
    member = issue_member(
        ca, name, role, now, rng, meter_id=meter_id, permissions=permissions,
        validity_s=validity_s, key=key,
    )  # fmt: skip
    service.save()
    await post_superseded_revocations(view, service, now, rng)
    return member


async def post_superseded_revocations(
    view: IdentityChainView, service: CaService, now: int, rng: Rng, *, timeout: float = 20.0
) -> tuple[bytes, ...]:
    """Post ``identity.revoke`` for every queued superseded certificate; return the hashes
    the chain now shows revoked (they leave the queue, and the register is saved).

    Idempotent: a hash already revoked on chain (an earlier post whose receipt was
    lost) is simply dequeued. Raises :class:`NodeError` if some stay unrevoked.
    """
    ca = service.ca
    queued = tuple(dict.fromkeys(ca.superseded))
    pending = [h for h in queued if not await view.is_revoked(h)]
    if pending:
        txs = [
            encode(
                Transaction.create(
                    service.chain_id,
                    KIND_REVOKE,
                    create_signed_revocation(service.operator, h, SUPERSEDED_REASON, now),
                    Ed25519PrivateKey.generate(rng),  # one-off sender: nonces never collide
                    0,
                )
            )
            for h in pending
        ]
        await service.submitter.submit(txs, timeout=timeout)
    done = tuple([h for h in queued if h not in pending or await view.is_revoked(h)])
    ca.superseded[:] = [h for h in ca.superseded if h not in done]
    if done:
        service.save()
    left = len(queued) - len(done)
    if left:
        raise NodeError(f"{left} superseded certificate(s) not yet revoked on chain (kept queued)")
    return done


# -- households ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduledRequest:
    """A pseudonym request and the time (s) its sender will hand it to the MM."""

    at: int
    request: PseudonymRequest


def schedule_pseudonym_request(
    credential: PseudonymCredential,
    mm_certificate: x509.Certificate,
    window: BatchWindow,
    now: int,
    rng: Rng,
) -> ScheduledRequest:
    """The anonymous MM request, to be sent at a time uniform in the batch window."""
    if credential.round != window.round:
        raise RegistrationRejected("credential and batch window are for different rounds")
    request = compute_pseudonym_request(credential, mm_certificate)
    return ScheduledRequest(compute_submission_time(window, now, rng), request)


def deliver_due_requests(
    mm: MarketManager, scheduled: Iterable[ScheduledRequest], now: int
) -> list[ScheduledRequest]:
    """Hand every request due at ``now`` to the MM (in time order); return the rest."""
    pending = sorted(scheduled, key=lambda s: s.at)
    for item in pending:
        if is_due(item.at, now):
            on_pseudonym_request(mm, item.request)
    return [item for item in pending if not is_due(item.at, now)]


def create_contract_evidence_tx(
    chain_id: str,
    namespace: str,
    source_evidence_id: bytes,
    signer: Ed25519PrivateKey,
    nonce: int,
) -> tuple[Transaction, bytes]:
    """``identity.contract-evidence`` pointing at ``<namespace>/default/<source id>``, and
    the identity evidence id the trustees' shares and the trace record will name.

    Any key may sign it (it carries no claim of its own)."""
    pointer = ContractEvidence(namespace, source_evidence_id)
    tx = Transaction.create(chain_id, KIND_CONTRACT_EVIDENCE, pointer, signer, nonce)
    return tx, compute_contract_evidence_id(pointer)


def _decode(cls: type[Any], raw: bytes) -> Any:
    try:
        return decode_as(cls, raw)
    except EncodingError as exc:
        raise NodeError(f"replicas agreed on a malformed {cls.__name__}: {exc.reason}") from None


def register_household(
    rm: RegistrationManager,
    key: RsaPrivateKey,
    certificate: x509.Certificate,
    roots: tuple[x509.Certificate, ...],
    tc_key: ThresholdPublicKey,
    round_: int,
    now: int,
    user_rng: Rng,
    rm_rng: Rng,
    *,
    rm_blind_certificate: x509.Certificate,
) -> PseudonymCredential:
    """Steps ① to ⑥ between a household and the RM; the household's credential.

    ``rm_blind_certificate`` is the household's pinned copy of the genesis's RM blind
    key (never the RM's own ``rm.blind_certificate``: that is what it checks).
    """
    st, hello = start_registration(
        key, certificate, roots, tc_key, rm.certificate, round_, now, user_rng,
        rm_blind_certificate=rm_blind_certificate,
    )  # fmt: skip
    challenge = on_hello(rm, hello, now, rm_rng)
    commitments = on_challenge(st, challenge, now, user_rng)
    request = on_commitments(rm, commitments, now, rm_rng)
    openings = on_open_request(st, request, now)
    signature = on_openings(rm, openings, now)
    return on_blind_signature(st, signature, now)


def register_and_schedule(
    rm: RegistrationManager,
    key: RsaPrivateKey,
    certificate: x509.Certificate,
    roots: tuple[x509.Certificate, ...],
    tc_key: ThresholdPublicKey,
    mm_certificate: x509.Certificate,
    window: BatchWindow,
    now: int,
    user_rng: Rng,
    rm_rng: Rng,
    *,
    rm_blind_certificate: x509.Certificate,
) -> tuple[PseudonymCredential, ScheduledRequest]:
    """Register for ``window.round``, then schedule the MM request inside the batch window.

    The send time comes from the user's rng only, so it is independent of when
    (or in which order) the RM saw the user.
    """
    credential = register_household(
        rm, key, certificate, roots, tc_key, window.round, now, user_rng, rm_rng,
        rm_blind_certificate=rm_blind_certificate,
    )  # fmt: skip
    return credential, schedule_pseudonym_request(credential, mm_certificate, window, now, user_rng)


async def build_light_client(
    client: ReplicaCaller,
    genesis: GenesisConfig,
    height: int,
    *,
    replica: int | None = None,
    timeout: float = 10.0,
) -> LightClient:
    """A light client holding certified headers 1..``height`` (bounded wait for certificates).

    Headers come from one replica (any: each is checked against the finality rule);
    a block's certificate may still be forming, so missing ones are asked again.
    A replica that sends malformed or uncertified headers is a :class:`NodeError`.
    """
    light = LightClient(genesis)
    source = replica if replica is not None else next(iter(client.conns))
    deadline = time.monotonic() + timeout
    while light.head.height < height:
        start = light.head.height + 1
        try:
            result = await client.call(source, "headers", {"from": start, "to": height}, 5.0)
        except NodeError:
            result = {"headers": []}
        try:
            for item in result.get("headers", []):
                if item.get("certificate") is None:
                    break
                header = decode_as(BlockHeader, bytes.fromhex(item["header"]))
                cert = decode_as(CommitCertificate, bytes.fromhex(item["certificate"]))
                light.add_header(header, cert)
        except (EncodingError, LedgerError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NodeError(f"replica {source} sent an unusable header: {exc}") from None
        if light.head.height >= height:
            break
        if time.monotonic() > deadline:
            raise NodeError(
                f"light client reached height {light.head.height}, not {height}, in {timeout}s"
            )
        await asyncio.sleep(0.1)
    return light
