"""The substation's pairing book and the message sequence of one pairing."""

from __future__ import annotations

from gridledger.sim.fixed_piece import DSO_FLOW, METER_FLOW
from gridledger.sim.pairing import DSO, OpenOffer, PairingBook


def test_first_come_first_served_within_a_slot_then_dso() -> None:
    book = PairingBook(threshold=0)
    assert book.process_offer(OpenOffer(1, household=5, slot=0)) is None
    assert book.process_offer(OpenOffer(2, household=6, slot=0)) is None
    assert book.process_offer(OpenOffer(3, household=7, slot=1)) is None
    assert book.process_request(9, slot=0).offerer == 5
    assert book.process_request(9, slot=0).offerer == 6
    fallback = book.process_request(9, slot=0)
    assert (fallback.offer_id, fallback.offerer, fallback.requester) == (DSO, DSO, 9)
    assert book.get_open_count() == 1


def test_an_offer_of_another_slot_is_never_paired() -> None:
    book = PairingBook(threshold=0)
    book.process_offer(OpenOffer(1, household=5, slot=1))
    assert book.process_request(9, slot=0).offerer == DSO


def test_threshold_makes_the_dso_buy_the_oldest_offer() -> None:
    book = PairingBook(threshold=2)
    book.process_offer(OpenOffer(1, 5, 0))
    book.process_offer(OpenOffer(2, 6, 0))
    decision = book.process_offer(OpenOffer(3, 7, 0))
    assert decision is not None and (decision.offerer, decision.requester) == (5, DSO)
    assert book.get_open_count() == 2


def test_expiry_returns_the_unpaired_offers_of_the_slot() -> None:
    book = PairingBook(threshold=0)
    book.process_offer(OpenOffer(1, 5, 0))
    book.process_offer(OpenOffer(2, 6, 1))
    assert [o.offer_id for o in book.process_expiry(0)] == [1]
    assert book.process_expiry(0) == ()
    assert book.get_open_count() == 1


def test_the_message_sequences_follow_the_spec() -> None:
    # papers_features.md §4.4-4.5: a meter offer needs Pa, Py, Ck, Ck', W1, W2, Rc;
    # the DSO as offerer checks the coin itself and withdraws nothing: Pa, Py, Rc.
    assert [k.label for k in METER_FLOW] == [
        "Pairing",
        "Payment",
        "CoinCheck",
        "CoinCheckAnswer",
        "WithdrawRequest",
        "WithdrawSignature",
        "Receipt",
    ]
    assert [k.label for k in DSO_FLOW] == ["Pairing", "Payment", "Receipt"]
