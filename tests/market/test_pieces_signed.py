"""The accountable piece request (``market.signed-piece-request``, ``market/pieces.py``) on a
one-replica ledger: it pairs like seed 003's request, an unpaid pairing leaves a default
naming exactly its pseudonym, a paid one, an anonymous one or one whose payment the seller
never redeemed leaves none, and forged, foreign-round, revoked or replayed requests and
offers nobody could pay are refused with a reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.ledger.execution import compute_nonce_key
from gridledger.market import client, keys
from gridledger.market.messages import (
    LEG_MONEY,
    PIECE_REQUEST_TAG,
    Pairing,
    SignedPieceRequest,
    compute_evidence_id,
)
from gridledger.market.pieces import get_bound_request
from gridledger.market.settlement import get_contract_default
from gridledger.payments.invoice import get_invoice
from gridledger.payments.wallet import build_pay_tx
from tests.ledger.helpers import CHAIN
from tests.market.helpers import (
    DENOMINATIONS,
    ROUND,
    Chain,
    Pseudonym,
    World,
    make_chain,
    make_world,
    withdraw,
)

KIND = "market.signed-piece-request"


@pytest.fixture(scope="module")
def world() -> World:
    return make_world([RsaPrivateKey.generate(2048) for _ in range(3 + len(DENOMINATIONS))])


def signed_request(
    chain: Chain,
    who: Pseudonym,
    round_: int = ROUND,
    *,
    max_amount: int | None = None,
    window_ms: int = 60_000,
) -> SignedPieceRequest:
    """Signed to accept the DSO's fallback price, within the next minute of block time."""
    request = client.create_piece_request(chain.slot, chain.rng)
    return client.sign_piece_request(
        request,
        who.key,
        round_,
        max_amount=chain.config.dso_import_price if max_amount is None else max_amount,
        not_after_ms=chain.now_ms + window_ms,
    )


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
    forged_body = replace(honest.body, pseudonym=victim.raw)
    forged = SignedPieceRequest(forged_body, thief.sign(PIECE_REQUEST_TAG, encode(forged_body)))
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


def test_a_seller_who_never_redeems_cannot_get_a_paying_requester_accused(world: World) -> None:
    """The seller's silence is not evidence: a posted payment is judged again at
    deadline + settle_ms, and if the seller never redeemed nor showed it bad, nobody
    is accused (the pairing is void and marked unredeemed)."""
    chain = make_chain(world, real_payments=True)
    mint = world.create_mint()
    offer, _secrets = client.create_piece_offer(chain.slot, chain.rng)  # the framing seller
    chain.commit_ok(chain.tx("market.piece-offer", offer))
    who = world.pseudonyms[0]
    pairing = pair(chain, signed_request(chain, who))
    invoice = get_invoice(chain.view(), "market", pairing.pairing_id)
    assert invoice is not None
    message, _ = client.create_trade_payment(
        invoice, withdraw(chain, mint, invoice.amount), chain.rng
    )
    chain.commit_ok(build_pay_tx(CHAIN, message, Ed25519PrivateKey.generate(chain.rng), 0))
    evidence = compute_evidence_id(pairing.pairing_id, LEG_MONEY)
    past_deadline(chain, pairing)  # the seller never redeems
    assert get_contract_default(chain.view(), evidence) is None
    assert chain.get(keys.VOID + pairing.pairing_id) is None  # judged again later
    chain.commit_ok(at_ms=pairing.deadline_ms + chain.config.settle_ms + 1)
    assert get_contract_default(chain.view(), evidence) is None
    assert chain.get(keys.UNREDEEMED + pairing.pairing_id) is not None
    assert chain.get(keys.VOID + pairing.pairing_id) is not None


def test_an_offer_nobody_could_pay_is_refused(world: World) -> None:
    """A low-order encryption key would make the paired requester's payment impossible
    (and get it accused): the offer is refused at once, with a reason."""
    chain = make_chain(world)
    offer, _ = client.create_piece_offer(chain.slot, chain.rng)
    for bad in (bytes(32), b"\x01" + bytes(31)):
        (receipt,) = chain.commit(chain.tx("market.piece-offer", replace(offer, enc_key=bad)))
        assert not receipt.ok and "low order" in receipt.reason


def test_a_lifted_inner_request_neither_burns_nor_collides_with_the_signed_one(
    world: World,
) -> None:
    """Whoever sees a signed request can send its inner anonymous request first: that
    pairs anonymously (nobody owes it), and the signed one still pairs, once."""
    chain = make_chain(world)
    who = world.pseudonyms[4]
    signed = signed_request(chain, who)
    (lifted,) = chain.commit_ok(chain.tx("market.piece-request", signed.body.request))
    pairing = pair(chain, signed)
    assert decode_as(Pairing, lifted.data).pairing_id != pairing.pairing_id
    assert get_bound_request(chain.view(), pairing.pairing_id) == signed
    (again,) = chain.commit(chain.tx(KIND, signed))
    assert not again.ok and "replay" in again.reason


def test_a_request_pairs_only_up_to_the_cost_it_signed_and_leaves_nothing_when_refused(
    world: World,
) -> None:
    """Signed for a peer's piece only: with no offer open the DSO's pairing would cost
    more, so the request is refused and leaves no pairing, no invoice, no debt; the same
    signed request pairs once an offer is there (its nonce was not burnt)."""
    chain = make_chain(world)
    assert chain.config.dso_import_price > chain.config.piece_price
    who = world.pseudonyms[1]
    peers_only = signed_request(chain, who, max_amount=chain.config.piece_price)
    before = len(list(chain.view().scan(keys.PAIRING)))
    (refused,) = chain.commit(chain.tx(KIND, peers_only))
    assert not refused.ok and "at most" in refused.reason
    assert len(list(chain.view().scan(keys.PAIRING))) == before
    offer, secrets = client.create_piece_offer(chain.slot, chain.rng)
    chain.commit_ok(chain.tx("market.piece-offer", offer))
    pairing = pair(chain, peers_only)
    assert client.is_our_pairing(pairing, secrets) and pairing.amount == chain.config.piece_price


def test_a_request_held_back_past_its_window_cannot_pair_nor_get_its_signer_accused(
    world: World,
) -> None:
    """A relay that holds a signed request and submits it after the requester stopped
    watching (or after it asked again) gets a refusal: no pairing, so no default."""
    chain = make_chain(world)
    who = world.pseudonyms[2]
    held = signed_request(chain, who, window_ms=5_000)
    chain.commit_ok(at_ms=chain.now_ms + 10_000)  # time passes: the requester gave up
    before = len(list(chain.view().scan(keys.PAIRING)))
    (late,) = chain.commit(chain.tx(KIND, held))
    assert not late.ok and "expired" in late.reason
    assert len(list(chain.view().scan(keys.PAIRING))) == before
    # the bounds are signed: raising them breaks the signature
    for raised in (
        replace(held.body, not_after_ms=held.body.not_after_ms + 60_000),
        replace(held.body, max_amount=held.body.max_amount + 1),
    ):
        (forged,) = chain.commit(chain.tx(KIND, SignedPieceRequest(raised, held.signature)))
        assert not forged.ok and "does not verify" in forged.reason


def _all_but_nonces(chain: Chain) -> dict[bytes, bytes]:
    nonce_prefix = compute_nonce_key(b"")
    return {k: v for k, v in chain.ledger.state.items() if not k.startswith(nonce_prefix)}


def test_a_refused_request_writes_no_state_key_but_its_senders_nonce(world: World) -> None:
    """Refused for its cost or its time, a signed request leaves the whole state as an
    empty block at the same time would (only the transaction's sender nonce moves): no
    pairing, invoice, due entry, bound request or burnt nonce; an offer past its
    validity that the refused pairing scanned over is dropped by end of block alone."""
    for bounds in ({"max_amount": 0}, {"window_ms": -1}):
        refused, empty = make_chain(world), make_chain(world)
        for chain in (refused, empty):
            stale, _ = client.create_piece_offer(chain.slot, chain.rng)
            chain.commit_ok(chain.tx("market.piece-offer", stale))
        at_ms = refused.now_ms + refused.config.offer_validity_ms + 1_000
        refused.now_ms = at_ms - 1_000
        held = signed_request(refused, world.pseudonyms[1], **bounds)  # type: ignore[arg-type]
        (receipt,) = refused.commit(refused.tx(KIND, held), at_ms=at_ms)
        empty.commit_ok(at_ms=at_ms)
        assert not receipt.ok, bounds
        assert _all_but_nonces(refused) == _all_but_nonces(empty), bounds


def test_extreme_bounds_are_the_signers_own_choice(world: World) -> None:
    """Negative bounds can never pair; the largest encodable ones pair like any other
    (the amount is the contract's, never the request's); block time equal to
    ``not_after_ms`` still pairs; a far-future ``not_after_ms`` does not outlive the
    slot's gate, so no cap is needed."""
    chain = make_chain(world)
    who = world.pseudonyms[3]
    top = 2**64 - 1
    for signed, reason in (
        (signed_request(chain, who, max_amount=-(2**64)), "at most"),
        (signed_request(chain, who, max_amount=-1), "at most"),
        (signed_request(chain, who, window_ms=-chain.now_ms - 2**64), "expired"),
    ):
        assert signed.body.max_amount < 0 or signed.body.not_after_ms == -(2**64)
        (receipt,) = chain.commit(chain.tx(KIND, signed))
        assert not receipt.ok and reason in receipt.reason
    huge = signed_request(chain, who, max_amount=top, window_ms=top - chain.now_ms)
    assert pair(chain, huge).amount == chain.config.dso_import_price
    exact = signed_request(chain, who, window_ms=1_000)  # the next block is at +1 s
    assert pair(chain, exact).amount == chain.config.dso_import_price
    late = signed_request(chain, who, window_ms=top - chain.now_ms)
    gate = (chain.slot + 1) * chain.config.slot_ms - chain.config.gate_lead_ms
    chain.commit_ok(at_ms=gate)
    (closed,) = chain.commit(chain.tx(KIND, late))
    assert not closed.ok and "closed" in closed.reason


def test_max_amount_bounds_cost_and_is_no_peers_only_flag(world: World) -> None:
    """When the grid's import price is not above a peer's piece price, a request signed
    for ``piece_price`` pairs with the DSO too: ``max_amount`` caps what the signer owes,
    it cannot say who sells."""
    config = world.market_config(piece_price=2, dso_import_price=2)
    chain = make_chain(world, config)
    signed = signed_request(chain, world.pseudonyms[2], max_amount=config.piece_price)
    dso = pair(chain, signed)
    assert dso.offer_id == b"" and dso.amount == config.dso_import_price


def test_a_refused_request_is_public_and_anyone_may_pair_it_within_its_window(
    world: World,
) -> None:
    """A refusal is not final: the refused transaction (and so the signed body) is in a
    block, and any relay may send it again before ``not_after_ms``, for instance right
    after pooling an offer of its own, so that it is the seller. The signer owes that
    pairing: it can count a request dead only once a committed block is past its
    ``not_after_ms``."""
    chain = make_chain(world)
    who = world.pseudonyms[1]
    peers_only = signed_request(chain, who, max_amount=chain.config.piece_price)
    (refused,) = chain.commit(chain.tx(KIND, peers_only))
    assert not refused.ok
    stranger = Ed25519PrivateKey.generate(chain.rng)
    offer, secrets = client.create_piece_offer(chain.slot, chain.rng)
    (_, paired) = chain.commit_ok(
        chain.tx("market.piece-offer", offer, stranger), chain.tx(KIND, peers_only, stranger)
    )
    pairing = decode_as(Pairing, paired.data)
    assert client.is_our_pairing(pairing, secrets)
    assert get_bound_request(chain.view(), pairing.pairing_id) == peers_only


def test_a_void_pairing_re_pools_its_offer_but_never_re_pairs_its_request(
    world: World,
) -> None:
    """Only offers go back to the pool; a request pairs at submission or never: its
    voided pairing leaves its nonce spent, so within its window it is a replay."""
    chain = make_chain(world)
    offer, secrets = client.create_piece_offer(chain.slot, chain.rng)
    chain.commit_ok(chain.tx("market.piece-offer", offer))
    who = world.pseudonyms[0]
    signed = signed_request(chain, who, window_ms=chain.config.pay_window_ms * 2)
    pairing = pair(chain, signed)
    past_deadline(chain, pairing)
    assert chain.get(keys.VOID + pairing.pairing_id) is not None
    (again,) = chain.commit(chain.tx(KIND, signed))
    assert not again.ok and "replay" in again.reason
    (anonymous,) = chain.commit_ok(
        chain.tx("market.piece-request", client.create_piece_request(chain.slot, chain.rng))
    )
    assert client.is_our_pairing(decode_as(Pairing, anonymous.data), secrets)
