"""Hostile input: every malformed or out-of-range message is refused with a typed reason
(never "contract failed", the ledger's catch-all for an untyped exception)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridledger.market import client
from gridledger.market.messages import (
    Cancel,
    DeliveryAttestation,
    Order,
    PieceOffer,
    PieceRequest,
    SignedAttestation,
    SignedCancel,
)

from .helpers import SLOT, World, make_chain

ints = st.one_of(
    st.integers(-(2**63), 2**63),
    st.integers(-5, 5),
    st.sampled_from([SLOT, SLOT + 1, 2**40, -1, 0]),
)
blobs = st.one_of(st.binary(max_size=40), st.sampled_from([b"", b"\x00" * 32, b"\xff" * 32]))

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_refused_cleanly(world: World, kind: str, payload: object) -> None:
    chain = make_chain(world)
    (r,) = chain.commit(chain.tx(kind, payload))
    if not r.ok:
        assert not r.reason.startswith("contract failed"), r.reason
        assert r.reason


@SETTINGS
@given(
    ints,
    ints,
    st.integers(-(2**40), 2**40),
    ints,
    blobs,
    blobs,
    blobs,
    st.booleans(),
)
def test_random_orders_are_refused_with_reasons(
    world: World,
    round_: int,
    slot: int,
    quantity: int,
    price: int,
    redeem: bytes,
    enc: bytes,
    nonce: bytes,
    sign: bool,
) -> None:
    p = world.pseudonyms[0]
    order = Order(p.raw, round_, slot, quantity, price, redeem, enc, nonce)
    signed = client.sign_order(order, p.key)
    if not sign:
        signed = type(signed)(order, b"\x00" * 64)
    assert_refused_cleanly(world, "market.order", signed)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_payload_bytes(world: World, payload: bytes) -> None:
    for kind in ("market.order", "market.cancel", "market.attest", "market.piece-offer"):
        assert_refused_cleanly(world, kind, payload)


@SETTINGS
@given(ints, blobs, blobs, blobs, ints)
def test_random_pieces_attestations_cancels(
    world: World, slot: int, a: bytes, b: bytes, c: bytes, qty: int
) -> None:
    assert_refused_cleanly(world, "market.piece-offer", PieceOffer(slot, a, b, c))
    assert_refused_cleanly(world, "market.piece-request", PieceRequest(slot, c))
    att = DeliveryAttestation(a, slot, qty, world.attester.public_key.raw)
    assert_refused_cleanly(world, "market.attest", SignedAttestation(att, b))
    assert_refused_cleanly(world, "market.cancel", SignedCancel(Cancel(a), b))
