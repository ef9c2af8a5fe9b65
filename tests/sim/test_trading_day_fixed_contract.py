"""The accountable piece request the fixed-piece day relies on (``market.signed-piece-request``),
on a one-replica ledger: it pairs like seed 003's request, an unpaid pairing leaves a default
naming exactly its pseudonym, a paid one or an anonymous one leaves none, and forged,
foreign-round, revoked or replayed requests are refused with a reason."""

from __future__ import annotations

import pytest

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.market import client, keys
from gridledger.market.messages import (
    LEG_MONEY,
    BoundPieceRequest,
    Pairing,
    SignedPieceRequest,
    compute_evidence_id,
)
from gridledger.market.pieces import get_bound_request
from gridledger.market.settlement import get_contract_default
from tests.market.helpers import (
    DENOMINATIONS,
    ROUND,
    Chain,
    Pseudonym,
    World,
    make_chain,
    make_world,
)

KIND = "market.signed-piece-request"


@pytest.fixture(scope="module")
def world() -> World:
    return make_world([RsaPrivateKey.generate(2048) for _ in range(3 + len(DENOMINATIONS))])


def signed_request(chain: Chain, who: Pseudonym, round_: int = ROUND) -> SignedPieceRequest:
    request = client.create_piece_request(chain.slot, chain.rng)
    return client.sign_piece_request(request, who.key, round_)


def pair(chain: Chain, signed: SignedPieceRequest) -> Pairing:
    (receipt,) = chain.commit_ok(chain.tx(KIND, signed))
    return decode_as(Pairing, receipt.data)


def past_deadline(chain: Chain, pairing: Pairing) -> None:
    chain.commit_ok(at_ms=pairing.deadline_ms + 1)  # an empty block: end-of-block judging


def test_an_accountable_request_pairs_in_arrival_order_and_is_kept(world: World) -> None:
    chain = make_chain(world)
    offer, secrets = client.create_piece_offer(chain.slot, chain.rng)
    chain.commit_ok(chain.tx("market.piece-offer", offer))
    signed = signed_request(chain, world.pseudonyms[0])
    pairing = pair(chain, signed)
    assert client.is_our_pairing(pairing, secrets) and pairing.amount == chain.config.piece_price
    assert get_bound_request(chain.view(), pairing.pairing_id) == signed
    dso = pair(chain, signed_request(chain, world.pseudonyms[1]))  # no offer left: the DSO
    assert dso.offer_id == b"" and dso.amount == chain.config.dso_import_price


def test_unpaid_accountable_pairing_accuses_exactly_its_pseudonym(world: World) -> None:
    chain = make_chain(world)
    who = world.pseudonyms[2]
    pairing = pair(chain, signed_request(chain, who))
    past_deadline(chain, pairing)
    assert chain.get(keys.VOID + pairing.pairing_id) is not None
    default = get_contract_default(chain.view(), compute_evidence_id(pairing.pairing_id, LEG_MONEY))
    assert default is not None
    assert default.accused == who.raw and default.round == ROUND
    assert default.found_ms > default.deadline_ms == pairing.deadline_ms


def test_paid_or_anonymous_pairings_accuse_nobody(world: World) -> None:
    chain = make_chain(world)
    paid = pair(chain, signed_request(chain, world.pseudonyms[3]))
    chain.commit_ok(chain.paid_stub(paid.pairing_id))
    (receipt,) = chain.commit_ok(
        chain.tx("market.piece-request", client.create_piece_request(chain.slot, chain.rng))
    )
    anonymous = decode_as(Pairing, receipt.data)
    past_deadline(chain, max(paid, anonymous, key=lambda p: p.deadline_ms))
    assert chain.get(keys.SETTLED + paid.pairing_id) is not None
    assert chain.get(keys.VOID + anonymous.pairing_id) is not None  # void, but untraceable
    for pairing in (paid, anonymous):
        evidence = compute_evidence_id(pairing.pairing_id, LEG_MONEY)
        assert get_contract_default(chain.view(), evidence) is None


def test_forged_foreign_revoked_and_replayed_requests_are_refused(world: World) -> None:
    chain = make_chain(world)
    victim = world.pseudonyms[4]
    honest = signed_request(chain, victim)
    # an attacker names the victim's pseudonym but cannot sign for it
    thief = Ed25519PrivateKey.generate(chain.rng)
    forged_body = BoundPieceRequest(honest.body.request, victim.raw, ROUND)
    forged = client.sign_piece_request(honest.body.request, thief, ROUND)
    forged = SignedPieceRequest(forged_body, forged.signature)
    cases = [
        (forged, "does not verify"),
        (signed_request(chain, world.other_round), "round"),
        (signed_request(chain, world.revoked), "revoked"),
        (signed_request(chain, world.expired), "validity"),
    ]
    for signed, reason in cases:
        (receipt,) = chain.commit(chain.tx(KIND, signed))
        assert not receipt.ok and reason in receipt.reason
    pair(chain, honest)
    (again,) = chain.commit(chain.tx(KIND, honest))  # the same request replayed
    assert not again.ok and "replay" in again.reason
    (junk,) = chain.commit(chain.tx(KIND, b"\x00not a request"))
    assert not junk.ok and "malformed" in junk.reason
