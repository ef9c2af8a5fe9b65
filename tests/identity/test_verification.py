"""Checking a pseudonym against chain state (the market's check), revocations included."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.crypto.encoding import encode
from gridledger.identity.ca import compute_certificate_hash
from gridledger.identity.contracts import OnChainSet, Reader
from gridledger.identity.errors import CertificateRejected, PseudonymRefused
from gridledger.identity.messages import SignedPseudonymCertificate
from gridledger.identity.pseudonym_issuer import verify_pseudonym_certificate
from gridledger.identity.verification import (
    check_pseudonym_for_round,
    check_pseudonym_key_for_round,
    get_identity_reader,
    verify_pseudonym_on_chain,
)
from gridledger.ledger.contracts import StateView
from gridledger.ledger.state import Overlay, WorldState

from .conftest import NOW, World
from .helpers import Chain, evidence_on_chain, issue_round, revoke, submit_trace

MS = 1000


def _published(chain: Chain, key: bytes) -> SignedPseudonymCertificate:
    signed = Reader(chain.get).pseudonym_certificate(key)
    assert signed is not None
    return signed


def _verify_with_chain_lists(
    world: World, chain: Chain, signed: SignedPseudonymCertificate
) -> None:
    verify_pseudonym_certificate(
        signed, world.mm.cert, world.rm_blind.cert, world.roots, world.tc_key, NOW,
        revoked=OnChainSet(chain.get, b"rev/"), revoked_pseudonyms=OnChainSet(chain.get, b"revp/"),
    )  # fmt: skip


def test_pseudonym_revoked_after_a_trace_is_refused_by_every_path(world: World) -> None:
    """A household is traced for reneging; its pseudonym is revoked on chain. The market,
    checking an order under that pseudonym, must refuse it whichever check it calls."""
    t = evidence_on_chain(world, "verify-trace", 120)
    accused = t.creds[0].pseudonym.public_key.raw
    signed = _published(t.chain, accused)
    # before the trace: every path accepts it
    _verify_with_chain_lists(world, t.chain, signed)
    assert verify_pseudonym_on_chain(t.chain.get, signed, NOW) == signed.certificate
    assert check_pseudonym_for_round(t.chain.get, signed, 120, NOW * MS) == signed.certificate
    assert submit_trace(t, t.record_entries).ok
    assert t.chain.get(b"revp/" + accused) is not None
    with pytest.raises(CertificateRejected, match="revoked"):
        _verify_with_chain_lists(world, t.chain, signed)
    with pytest.raises(PseudonymRefused, match="revoked"):
        verify_pseudonym_on_chain(t.chain.get, signed, NOW)
    with pytest.raises(PseudonymRefused, match="revoked") as info:
        check_pseudonym_for_round(t.chain.get, signed, 120, NOW * MS)
    assert info.value.pseudonym_key == accused and info.value.round == 120
    with pytest.raises(PseudonymRefused, match="revoked"):
        check_pseudonym_key_for_round(t.chain.get, accused, 120, NOW * MS)
    # the counterparty's pseudonym is untouched
    other = _published(t.chain, t.creds[1].pseudonym.public_key.raw)
    check_pseudonym_for_round(t.chain.get, other, 120, NOW * MS)


def test_check_pseudonym_for_round_refuses_what_an_attacker_would_try(world: World) -> None:
    _, batch = issue_round(world, world.new_rm(k=2), range(2), 121, "verify-attacks")
    chain = Chain(world)
    assert chain.publish(world, 121, batch[:1]).ok
    published = batch[0]
    key = published.certificate.pseudonym_key
    read = chain.get
    assert check_pseudonym_for_round(read, published, 121, NOW * MS).pseudonym_key == key
    # another round
    with pytest.raises(PseudonymRefused, match="round 121, not 122"):
        check_pseudonym_for_round(read, published, 122, NOW * MS)
    # a certificate the MM signed but that was never published (the second of the batch)
    with pytest.raises(PseudonymRefused, match="not the one published"):
        check_pseudonym_for_round(read, batch[1], 121, NOW * MS)
    with pytest.raises(PseudonymRefused, match="no published certificate"):
        check_pseudonym_key_for_round(read, batch[1].certificate.pseudonym_key, 121, NOW * MS)
    # the published certificate with a stretched window (no longer the published bytes)
    stretched = dataclasses.replace(
        published,
        certificate=dataclasses.replace(published.certificate, valid_until=NOW + 10**6),
    )
    with pytest.raises(PseudonymRefused, match="not the one published"):
        check_pseudonym_for_round(read, stretched, 121, NOW * MS)
    # outside its window: before it opens, at and after its end
    cert = published.certificate
    for at in (cert.valid_from - 1, cert.valid_until, cert.valid_until + 3600):
        with pytest.raises(PseudonymRefused, match="window"):
            check_pseudonym_for_round(read, published, 121, at * MS)
    # garbage signature bytes in an otherwise identical certificate
    resigned = dataclasses.replace(published, signature=b"\0" * len(published.signature))
    with pytest.raises(PseudonymRefused):
        check_pseudonym_for_round(read, resigned, 121, NOW * MS)
    # the MM's certificate revoked on chain after publication: its pseudonyms stop
    revoke(world, chain, world.mm.cert)
    with pytest.raises(PseudonymRefused, match="issuer no longer valid"):
        check_pseudonym_for_round(read, published, 121, NOW * MS)
    with pytest.raises(PseudonymRefused):
        verify_pseudonym_on_chain(read, published, NOW)
    assert chain.get(b"rev/" + compute_certificate_hash(world.mm.cert)) is not None


def test_a_market_contract_reads_identity_from_its_own_view(world: World) -> None:
    """Another namespace's contract (the market) checks through its StateView."""
    _, batch = issue_round(world, world.new_rm(k=2), range(1), 122, "verify-view")
    chain = Chain(world)
    assert chain.publish(world, 122, batch).ok
    market_view = StateView(Overlay(chain.state), "market")
    read = get_identity_reader(market_view)
    signed = batch[0]
    assert check_pseudonym_for_round(read, signed, 122, NOW * MS) == signed.certificate
    identity_view = StateView(Overlay(chain.state), "identity")
    assert get_identity_reader(identity_view)(b"pc/" + signed.certificate.pseudonym_key) == (
        encode(signed)
    )
    # a chain without the identity section refuses every pseudonym, with a reason
    bare = StateView(Overlay(WorldState()), "market")
    with pytest.raises(PseudonymRefused, match="no identity section"):
        check_pseudonym_for_round(get_identity_reader(bare), signed, 122, NOW * MS)
