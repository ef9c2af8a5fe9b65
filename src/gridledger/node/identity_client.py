"""Identity roles acting on a running consortium through the client API.

* :class:`IdentityChainView` reads the identity contract's state through
  :meth:`ConsortiumClient.call_agreed` (``state``: f+1 replicas must give the same
  height, value and proof), e.g. for the RM's blacklist and revocation checks or a
  trustee's check that evidence is on chain.
* :func:`register_household` runs the six registration steps between a household
  and the RM (in-process here; deployed parties exchange the same messages);
  :func:`register_and_schedule` then builds the anonymous MM request and draws its
  send time uniformly inside the round's MM batch window with the user's own rng
  (:mod:`gridledger.identity.schedule`); :func:`deliver_due_requests` hands the
  due ones to the MM.
* :func:`admit_member` is the CA's admission: it refreshes the CA's view of the
  on-chain blacklist (member keys) for the applicant's member id and meter, then
  issues (and refuses a blacklisted member with :class:`MemberBlacklisted`). A
  renewal revokes the member's earlier household certificates in the CA's
  register; their hashes (``ca.superseded``) are for the operator to post.
* :func:`build_light_client` fetches headers and commit certificates from one
  replica and feeds them to a :class:`~gridledger.ledger.light.LightClient`,
  which trusts nothing but the genesis and 2f+1 signatures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gridledger.crypto.encoding import decode, decode_as
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.rng import Rng
from gridledger.crypto.signatures import RsaPrivateKey
from gridledger.crypto.threshold import ThresholdPublicKey
from gridledger.errors import NodeError
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
from gridledger.identity.contracts import NAMESPACE
from gridledger.identity.market_manager import (
    MarketManager,
    compute_pseudonym_request,
    on_pseudonym_request,
)
from gridledger.identity.messages import (
    EvidenceRecord,
    PseudonymCertificate,
    PseudonymRequest,
    SignedPseudonymCertificate,
    SweepResult,
    TraceResult,
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
from gridledger.ledger.block import BlockHeader, GenesisConfig
from gridledger.ledger.certificate import CommitCertificate
from gridledger.ledger.light import LightClient
from gridledger.ledger.state import compute_state_key
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.identity_material import DEFAULT_VALIDITY_S, RoleKey, issue_member

_STATE_ATTEMPTS = 5


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

    def __init__(self, client: ConsortiumClient, timeout: float = 5.0) -> None:
        self.client = client
        self.timeout = timeout

    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key`` (inside the identity namespace) once f+1 replicas agree."""
        full = compute_state_key(NAMESPACE, key)
        last: ClientError | None = None
        for _ in range(_STATE_ATTEMPTS):  # a block may land between two replicas' answers
            try:
                result = await self.client.call_agreed(
                    "state", {"key": full.hex()}, timeout=self.timeout
                )
            except ClientError as exc:
                last = exc
                await asyncio.sleep(0.1)
                continue
            value = result.get("value") if isinstance(result, dict) else None
            return None if value is None else bytes.fromhex(value)
        assert last is not None
        raise last

    async def get_member_status(self, certificate: x509.Certificate) -> MemberStatus:
        identity = compute_certificate_hash(certificate)
        member = compute_member_key(get_attributes(certificate))
        blacklisted = await self.get(b"bl/" + member) is not None
        revoked = await self.get(b"rev/" + identity) is not None
        return MemberStatus(identity, member, blacklisted, revoked)

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

    async def get_pseudonym_certificate(self, key: bytes) -> SignedPseudonymCertificate | None:
        raw = await self.get(b"pc/" + key)
        return None if raw is None else _decode(SignedPseudonymCertificate, raw)

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


async def admit_member(
    view: IdentityChainView,
    ca: CertificateAuthority,
    name: str,
    role: Role,
    now: int,
    rng: Rng,
    *,
    meter_id: str | None = None,
    permissions: tuple[Permission, ...] = (Permission.TRADE,),
    validity_s: int = DEFAULT_VALIDITY_S,
) -> RoleKey:
    """The CA admits ``name``: read the chain's blacklist for the member id's and meter's
    earlier certificates (f+1-agreed), then issue. Raises :class:`MemberBlacklisted`."""
    attrs = MemberAttributes(role.value, name, meter_id, tuple(p.value for p in permissions))
    ca.blacklist = await view.get_blacklisted(get_admitted_identities(ca, attrs))
    return issue_member(
        ca, name, role, now, rng, meter_id=meter_id, permissions=permissions,
        validity_s=validity_s,
    )  # fmt: skip


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
        raise ValueError("credential and batch window are for different rounds")
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
) -> PseudonymCredential:
    """Steps ① to ⑥ between a household and the RM; the household's credential."""
    st, hello = start_registration(
        key, certificate, roots, tc_key, rm.certificate, round_, now, user_rng
    )
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
) -> tuple[PseudonymCredential, ScheduledRequest]:
    """Register for ``window.round``, then schedule the MM request inside the batch window.

    The send time comes from the user's rng only, so it is independent of when
    (or in which order) the RM saw the user.
    """
    credential = register_household(
        rm, key, certificate, roots, tc_key, window.round, now, user_rng, rm_rng
    )
    return credential, schedule_pseudonym_request(credential, mm_certificate, window, now, user_rng)


async def build_light_client(
    client: ConsortiumClient,
    genesis: GenesisConfig,
    height: int,
    *,
    replica: int | None = None,
    timeout: float = 10.0,
) -> LightClient:
    """A light client holding certified headers 1..``height`` (bounded wait for certificates).

    Headers come from one replica (any: each is checked against 2f+1 signatures);
    a block's certificate may still be forming, so missing ones are asked again.
    """
    light = LightClient(genesis)
    source = replica if replica is not None else next(iter(client.conns))
    deadline = time.monotonic() + timeout
    while light.head.height < height:
        start = light.head.height + 1
        try:
            result = await client.call(source, "headers", {"from": start, "to": height}, 5.0)
        except ClientError:
            result = {"headers": []}
        for item in result.get("headers", []):
            if item.get("certificate") is None:
                break
            header = decode_as(BlockHeader, bytes.fromhex(item["header"]))
            cert = decode_as(CommitCertificate, bytes.fromhex(item["certificate"]))
            light.add_header(header, cert)
        if light.head.height >= height:
            break
        if time.monotonic() > deadline:
            raise NodeError(
                f"light client reached height {light.head.height}, not {height}, in {timeout}s"
            )
        await asyncio.sleep(0.1)
    return light
