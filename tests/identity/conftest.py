"""Shared fixtures: one consortium (CA, RM, MM, TC trustees, households) per session."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography import x509

from gridledger.crypto.groups import EDWARDS25519
from gridledger.crypto.rng import DeterministicRng, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.crypto.threshold import KeyShare, ThresholdPublicKey
from gridledger.identity.ca import (
    CertificateAuthority,
    MemberAttributes,
    create_authority,
    process_issue,
)
from gridledger.identity.pseudonym_issuer import MarketManager, create_market_manager
from gridledger.identity.registration import (
    PseudonymCredential,
    RegistrationManager,
    RmConfig,
    SignedHello,
    UserRegistration,
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
from gridledger.identity.trace_center import Trustee, deal_trustee_keys

NOW = 1_750_000_000
DAY = 86_400


@dataclass
class Member:
    key: RsaPrivateKey
    cert: x509.Certificate


@dataclass
class World:
    ca: CertificateAuthority
    rm: Member
    rm_blind: Member
    mm: Member
    mint_blind: Member
    revoker: Member
    users: list[Member]
    tc_key: ThresholdPublicKey
    key_shares: tuple[KeyShare, ...]
    trustees: list[Trustee]

    @property
    def roots(self) -> tuple[x509.Certificate, ...]:
        return (self.ca.certificate,)

    def new_rm(self, k: int = 4) -> RegistrationManager:
        rm = create_registration_manager(
            RmConfig(k=k),
            self.rm.key,
            self.rm.cert,
            self.rm_blind.key,
            self.rm_blind.cert,
            self.roots,
            self.tc_key,
        )
        for r in range(0, 400):
            process_open_round(rm, r)
        return rm

    def new_mm(self) -> MarketManager:
        return create_market_manager(
            self.mm.key, self.mm.cert, self.rm_blind.cert, self.roots, self.tc_key, NOW
        )


def issue(
    ca: CertificateAuthority, name: str, key: RsaPrivateKey, attrs: MemberAttributes, rng: Rng
) -> Member:
    return Member(key, process_issue(ca, name, key.public_key, attrs, NOW - DAY, 365 * DAY, rng))


@pytest.fixture(scope="session")
def rsa_keys() -> list[RsaPrivateKey]:
    return [RsaPrivateKey.generate(2048) for _ in range(14)]


@pytest.fixture(scope="session")
def world(rsa_keys: list[RsaPrivateKey]) -> World:
    rng = DeterministicRng("identity-world")
    ca = create_authority(
        "gridledger CA", Ed25519PrivateKey.generate(rng), NOW - DAY, 3650 * DAY, rng
    )
    k = iter(rsa_keys)
    rm_key = next(k)
    rm = issue(ca, "rm", rm_key, MemberAttributes("rm", "rm-1", None, ()), rng)
    rm_blind = issue(
        ca,
        "rm-pseudonyms",
        next(k),
        MemberAttributes("rm", "rm-1", None, ("sign-pseudonyms",)),
        rng,
    )
    mm = issue(
        ca, "mm", next(k), MemberAttributes("mm", "mm-1", None, ("issue-pseudonym-certs",)), rng
    )
    mint_blind = issue(ca, "mint-coins", next(k), MemberAttributes("mint", "dso", None, ()), rng)
    revoker = issue(
        ca, "ca-operator", next(k), MemberAttributes("aggregator", "op", None, ("revoke",)), rng
    )
    tc_key, shares = deal_trustee_keys(3, 5, EDWARDS25519, rng)
    trustees = []
    for s in shares:
        tk = rsa_keys[s.index + 4]  # one key per trustee: signatures bind trustees
        m = issue(
            ca,
            f"tc-{s.index}",
            tk,
            MemberAttributes("tc-trustee", f"tc-{s.index}", None, ("trace",)),
            rng,
        )
        trustees.append(Trustee(s.index, s, tc_key, m.key, m.cert))
    users = []
    for i in range(24):
        uk = rsa_keys[10 + i % 4]  # keys may be reused across household certificates
        role = ("producer", "consumer", "prosumer")[i % 3]
        users.append(
            issue(
                ca,
                f"house-{i}",
                uk,
                MemberAttributes(role, f"house-{i}", f"meter-{i}", ("trade",)),
                rng,
            )
        )
    return World(ca, rm, rm_blind, mm, mint_blind, revoker, users, tc_key, shares, trustees)


def start(
    world: World, member: Member, rng: Rng, round_: int = 1, now: int = NOW
) -> tuple[UserRegistration, SignedHello]:
    """Step 1 for ``member`` towards the world's RM, pinning the genesis RM blind key."""
    return start_registration(
        member.key,
        member.cert,
        world.roots,
        world.tc_key,
        world.rm.cert,
        round_,
        now,
        rng,
        rm_blind_certificate=world.rm_blind.cert,
    )


def register(
    world: World, rm: RegistrationManager, user: Member, round_: int, rng: Rng, now: int = NOW
) -> PseudonymCredential:
    st, hello = start(world, user, rng, round_, now)
    ch = on_hello(rm, hello, now, rng)
    com = on_challenge(st, ch, now, rng)
    req = on_commitments(rm, com, now, rng)
    op = on_open_request(st, req, now)
    bs = on_openings(rm, op, now)
    return on_blind_signature(st, bs, now)
