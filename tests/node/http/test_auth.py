"""Household sign-in (Ed25519 challenge) and the signed-in views, attacked as a stranger would."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.node.http.auth import SIGN_IN_TAG, SessionTable, compute_sign_in_message
from gridledger.node.http.problems import HttpProblem
from tests.market.helpers import World
from tests.node.http.helpers import CHAIN_ID, RunningConsortium
from tests.node.http.test_api import assert_problem


def sign_in(c: RunningConsortium, key: Ed25519PrivateKey) -> str:
    ch = httpx.post(c.url() + "/v1/auth/challenge").json()
    message = bytes.fromhex(ch["message"])
    assert message.startswith(SIGN_IN_TAG.prefix)
    signed = message[len(SIGN_IN_TAG.prefix) :]
    body = {
        "public_key": key.public_key.raw.hex(),
        "challenge": ch["challenge"],
        "signature": key.sign(SIGN_IN_TAG, signed).hex(),
    }
    r = httpx.post(c.url() + "/v1/auth/session", json=body)
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_household_sees_its_own_orders(
    consortium: RunningConsortium, live_world: World, traded: list[dict[str, Any]]
) -> None:
    me = live_world.pseudonyms[0]
    token = sign_in(consortium, me.key)
    orders = httpx.get(consortium.url() + "/v1/me/orders", headers=auth(token)).json()["orders"]
    assert orders, "the first pseudonym signed every eighth order"
    assert all(o["pseudonym"] == me.raw.hex() for o in orders)
    for o in orders:
        assert o["filled"] + o["cancelled"] + o["open"] == abs(o["quantity"])
    other = sign_in(consortium, live_world.pseudonyms[1].key)
    theirs = httpx.get(consortium.url() + "/v1/me/orders", headers=auth(other)).json()["orders"]
    assert {o["order_id"] for o in theirs}.isdisjoint({o["order_id"] for o in orders})


def test_wallet_and_bill_of_the_signed_in_key(
    consortium: RunningConsortium, live_world: World
) -> None:
    token = sign_in(consortium, live_world.pseudonyms[2].key)
    bill = httpx.get(consortium.url() + "/v1/me/bills/7", headers=auth(token)).json()
    assert bill["account"] == live_world.pseudonyms[2].raw.hex()
    assert bill["period"] == 7 and bill["bill"] is None
    assert bill["withdrawn"] == {"count": 0, "value": 0}
    wallet = httpx.get(consortium.url() + "/v1/me/wallet", headers=auth(token)).json()
    assert wallet["open_credit"] is None and wallet["key"] == live_world.pseudonyms[2].raw.hex()
    r = httpx.get(consortium.url() + "/v1/me/bills/-1", headers=auth(token))
    assert_problem(r, 422, "validation-error")


@pytest.mark.parametrize("path", ["/v1/me/orders", "/v1/me/wallet", "/v1/me/bills/1"])
def test_personal_views_need_a_session(consortium: RunningConsortium, path: str) -> None:
    url = consortium.url() + path
    assert_problem(httpx.get(url), 401, "unauthorized")
    assert_problem(httpx.get(url, headers=auth("00" * 32)), 401, "unauthorized")
    assert_problem(httpx.get(url, headers={"Authorization": "Basic eDp5"}), 401, "unauthorized")


def test_forged_and_replayed_sign_ins_fail(
    consortium: RunningConsortium, live_world: World
) -> None:
    victim = live_world.pseudonyms[0]
    attacker = Ed25519PrivateKey(b"\x66" * 32)
    url = consortium.url()
    ch = httpx.post(url + "/v1/auth/challenge").json()
    signed = bytes.fromhex(ch["message"])[len(SIGN_IN_TAG.prefix) :]
    forged = {  # the victim's key, the attacker's signature
        "public_key": victim.raw.hex(),
        "challenge": ch["challenge"],
        "signature": attacker.sign(SIGN_IN_TAG, signed).hex(),
    }
    assert_problem(httpx.post(url + "/v1/auth/session", json=forged), 401, "unauthorized")
    # the challenge was consumed by the failed try: even a good signature is refused now
    good = dict(forged, signature=victim.key.sign(SIGN_IN_TAG, signed).hex())
    assert_problem(httpx.post(url + "/v1/auth/session", json=good), 401, "unauthorized")
    # a made-up challenge
    made_up = dict(good, challenge="11" * 32)
    assert_problem(httpx.post(url + "/v1/auth/session", json=made_up), 401, "unauthorized")
    # a signature under another domain tag (e.g. lifted from a transaction) does not count
    ch = httpx.post(url + "/v1/auth/challenge").json()
    raw = bytes.fromhex(ch["challenge"])
    other_tag = dict(
        good,
        challenge=ch["challenge"],
        signature=victim.key._key.sign(CHAIN_ID.encode() + b"\x00" + raw).hex(),
    )
    assert_problem(httpx.post(url + "/v1/auth/session", json=other_tag), 401, "unauthorized")
    bad_shapes = [
        dict(good, signature="00" * 63),
        dict(good, public_key="zz"),
        dict(good, extra="x"),
    ]
    for body in bad_shapes:
        r = httpx.post(url + "/v1/auth/session", json=body)
        assert r.status_code in {400, 422}
        assert r.json()["code"] in {"malformed-id", "validation-error"}


def test_sessions_and_challenges_expire() -> None:
    now = [1000.0]
    table = SessionTable("c", clock=lambda: now[0])
    key = Ed25519PrivateKey(b"\x01" * 32)
    challenge, message, valid_s = table.create_challenge()
    assert message == compute_sign_in_message("c", challenge)
    now[0] += valid_s + 1
    sig = key.sign(SIGN_IN_TAG, b"c\x00" + challenge)
    with pytest.raises(HttpProblem):
        table.process_sign_in(key.public_key.raw, challenge, sig)
    challenge, _, _ = table.create_challenge()
    token = table.process_sign_in(
        key.public_key.raw, challenge, key.sign(SIGN_IN_TAG, b"c\x00" + challenge)
    )
    assert table.get_session(f"Bearer {token}").public_key == key.public_key.raw
    now[0] += 3601
    with pytest.raises(HttpProblem):
        table.get_session(f"Bearer {token}")


def test_a_closed_bill_is_shown_to_its_household_only(
    consortium: RunningConsortium, live_world: World
) -> None:
    from gridledger.ledger.tx import Transaction
    from gridledger.payments.messages import (
        KIND_BILL,
        KIND_WITHDRAWN,
        BillRequest,
        WithdrawalRecord,
    )
    from gridledger.payments.units import Money

    me = live_world.pseudonyms[3]
    account = me.raw.hex()
    mint = live_world.mint_operator
    txs = [
        Transaction.create(
            CHAIN_ID, KIND_WITHDRAWN, WithdrawalRecord(account, 5, 2, Money(300)), mint, 901
        ),
        Transaction.create(CHAIN_ID, KIND_BILL, BillRequest(account, 5, Money(40)), mint, 902),
    ]
    receipts = consortium.submit(txs)
    assert [r["status"] for r in receipts] == ["committed", "committed"], receipts
    token = sign_in(consortium, me.key)
    bill = httpx.get(consortium.url() + "/v1/me/bills/5", headers=auth(token)).json()
    assert bill["withdrawn"] == {"count": 2, "value": 300}
    assert bill["bill"] == {
        "account": account,
        "period": 5,
        "withdrawn": 300,
        "deposited": 0,
        "grid_charge": 40,
        "total": 340,
    }
    neighbour = sign_in(consortium, live_world.pseudonyms[4].key)
    theirs = httpx.get(consortium.url() + "/v1/me/bills/5", headers=auth(neighbour)).json()
    assert theirs["account"] != account and theirs["bill"] is None
