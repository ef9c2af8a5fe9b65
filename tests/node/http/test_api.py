"""Every route over real HTTP on loopback against four replicas: happy paths and bad inputs.

Bad inputs must come back as documented problem documents (RFC 9457) with a typed
code, never a traceback or an HTML page.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gridledger.crypto.encoding import decode_as, encode
from gridledger.ledger.block import BlockHeader
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.state import compute_state_key
from gridledger.ledger.tx import Transaction
from tests.market.helpers import World
from tests.node.helpers import make_kv_txs
from tests.node.http.helpers import CHAIN_ID, RunningConsortium

PROBLEM = "application/problem+json"


def get(c: RunningConsortium, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(c.url() + path, timeout=10, **kw)


def post(c: RunningConsortium, path: str, **kw: Any) -> httpx.Response:
    return httpx.post(c.url() + path, timeout=30, **kw)


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["type"] == f"urn:gridledger:problem:{code}"
    assert set(body) == {"type", "title", "status", "detail", "code", "instance"}
    assert "Traceback" not in r.text
    return body


# -- chain ------------------------------------------------------------------------------


def test_status_names_the_chain_and_replicas(consortium: RunningConsortium) -> None:
    body = get(consortium, "/v1/status").json()
    assert body["chain_id"] == CHAIN_ID
    assert body["n"] == 4 and body["f"] == 1
    assert sorted(body["peers"]) == [1, 2, 3]
    assert body["height"] >= 0 and len(body["head_hash"]) == 64


def test_blocks_list_and_one_block(
    consortium: RunningConsortium, traded: list[dict[str, Any]]
) -> None:
    height = int(traded[0]["height"])
    listing = get(consortium, "/v1/blocks", params={"limit": 5}).json()
    assert listing["blocks"][0]["height"] == listing["head"]
    assert [b["height"] for b in listing["blocks"]] == sorted(
        (b["height"] for b in listing["blocks"]), reverse=True
    )
    block = get(consortium, f"/v1/blocks/{height}").json()
    assert block["height"] == height
    hashes = {t["tx_hash"] for t in block["transactions"]}
    assert traded[0]["tx_hash"] in hashes
    assert all(t["kind"] == "market.order" for t in block["transactions"])
    header = decode_as(BlockHeader, bytes.fromhex(block["header"]))
    assert header.header_hash.hex() == block["hash"]
    raw = get(consortium, f"/v1/blocks/{height}/raw").json()
    assert raw["header_hash"] == block["hash"]
    paged = get(consortium, "/v1/blocks", params={"limit": 1, "before": height}).json()
    assert paged["blocks"][0]["height"] == height - 1


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/v1/blocks/999999", 404, "not-found"),
        ("/v1/blocks/-1", 422, "validation-error"),
        ("/v1/blocks/abc", 422, "validation-error"),
        ("/v1/blocks/999999/raw", 404, "not-found"),
        ("/v1/blocks?limit=0", 422, "validation-error"),
        ("/v1/blocks?limit=101", 422, "validation-error"),
        ("/v1/blocks?before=-5", 422, "validation-error"),
        ("/v1/blocks?colour=red", 422, "validation-error"),
        ("/v1/headers?from=5&to=2", 400, "out-of-range"),
        ("/v1/headers?from=0", 422, "validation-error"),
        ("/v1/transactions/zz", 400, "malformed-id"),
        ("/v1/transactions/" + "ab" * 31, 400, "malformed-id"),
        ("/v1/transactions/" + "00" * 32, 404, "not-found"),
        ("/v1/state/xyz", 400, "malformed-id"),
        ("/v1/state/" + "00" * 1025, 400, "malformed-id"),
        ("/v1/market/trades?limit=1000", 422, "validation-error"),
        ("/v1/market/trades?slot=-1", 422, "validation-error"),
        ("/v1/market/trades/nothex", 400, "malformed-id"),
        ("/v1/market/trades/" + "00" * 32, 404, "not-found"),
        ("/v1/identity/pseudonyms/12", 400, "malformed-id"),
        ("/v1/identity/pseudonyms/" + "00" * 32, 404, "not-found"),
        ("/v1/identity/events?limit=0", 422, "validation-error"),
        ("/v1/no/such/route", 404, "route-not-found"),
        ("/v1/stream?topics=gossip", 422, "validation-error"),
    ],
)
def test_bad_reads_are_problems(
    consortium: RunningConsortium, path: str, status: int, code: str
) -> None:
    body = assert_problem(get(consortium, path), status, code)
    assert body["instance"] == path.split("?")[0]


def test_headers_carry_finality_proofs(
    consortium: RunningConsortium, traded: list[dict[str, Any]]
) -> None:
    height = int(traded[0]["height"])
    consortium.wait_height(height)
    body = get(consortium, "/v1/headers", params={"from": 0, "to": height}).json()
    assert len(body["headers"]) == height + 1
    assert body["headers"][height]["certificate"] is not None
    clipped = get(consortium, "/v1/headers", params={"from": 0, "to": 10**9}).json()
    assert len(clipped["headers"]) >= height + 1


def test_transaction_with_inclusion_proof(
    consortium: RunningConsortium, traded: list[dict[str, Any]]
) -> None:
    tx_hash = str(traded[3]["tx_hash"])
    body = get(consortium, f"/v1/transactions/{tx_hash}").json()
    assert body["tx_hash"] == tx_hash
    assert body["kind"] == "market.order"
    assert body["receipt"]["status"] == "committed"
    assert body["height"] == traded[3]["height"]
    assert body["proof"] and body["receipt_proof"]
    upper = get(consortium, f"/v1/transactions/{tx_hash.upper()}").json()
    assert upper["tx_hash"] == tx_hash


def test_state_value_and_proof(consortium: RunningConsortium, live_world: World) -> None:
    key = compute_state_key("identity", b"pc/" + live_world.pseudonyms[0].raw)
    body = get(consortium, f"/v1/state/{key.hex()}").json()
    assert body["value"] == encode(live_world.pseudonyms[0].certificate).hex()
    absent = get(consortium, f"/v1/state/{b'nothing/here'.hex()}").json()
    assert absent["value"] is None and absent["proof"]


# -- submit and wait ----------------------------------------------------------------------


def test_submit_and_wait(consortium: RunningConsortium) -> None:
    txs = make_kv_txs(3, chain_id=CHAIN_ID, seed=77)
    body = {"txs": [encode(tx).hex() for tx in txs], "wait": True, "timeout": 15}
    receipts = post(consortium, "/v1/transactions", json=body).json()["receipts"]
    assert [r["status"] for r in receipts] == ["committed"] * 3
    waited = post(
        consortium, "/v1/wait", json={"hashes": [r["tx_hash"] for r in receipts], "timeout": 1}
    ).json()["receipts"]
    assert waited == receipts


def test_submit_without_wait_then_wait(consortium: RunningConsortium) -> None:
    key_tx = make_kv_txs(1, chain_id=CHAIN_ID, seed=78)[0]
    answer = post(consortium, "/v1/transactions", json={"txs": [encode(key_tx).hex()]}).json()
    assert answer["receipts"][0]["status"] in {"pending", "committed"}
    done = post(
        consortium, "/v1/wait", json={"hashes": [key_tx.tx_hash.hex()], "timeout": 15}
    ).json()
    assert done["receipts"][0]["status"] == "committed"


def test_a_bad_transaction_is_answered_per_transaction(consortium: RunningConsortium) -> None:
    wrong_chain = Transaction.create(
        "other-chain", KV_SET_KIND, KvSet(b"a", b"b"), make_kv_key(), 1
    )
    body = {"txs": ["zz", encode(wrong_chain).hex()], "wait": False}
    receipts = post(consortium, "/v1/transactions", json=body).json()["receipts"]
    assert receipts[0]["status"] == "invalid"
    assert receipts[1]["status"] in {"invalid", "rejected"}


def make_kv_key() -> Any:
    from gridledger.crypto.signatures import Ed25519PrivateKey

    return Ed25519PrivateKey(b"\x05" * 32)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"txs": ["00"], "colour": "red"}, 422, "validation-error"),  # unknown field
        ({"txs": []}, 422, "validation-error"),
        ({"txs": "00"}, 422, "validation-error"),
        ({"txs": [1, 2]}, 422, "validation-error"),
        ({"txs": ["00"], "timeout": 0}, 422, "validation-error"),
        ({"txs": ["00"], "timeout": 121}, 422, "validation-error"),
        ({"txs": ["00"], "wait": "yes"}, 422, "validation-error"),
        ({"tx": "00"}, 422, "validation-error"),
        ({"txs": ["00"] * 2001}, 413, "too-many-transactions"),
    ],
)
def test_bad_submits_are_problems(
    consortium: RunningConsortium, body: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(post(consortium, "/v1/transactions", json=body), status, code)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"hashes": ["zz"]}, 400, "malformed-id"),
        ({"hashes": ["00" * 31]}, 400, "malformed-id"),
        ({"hashes": ["00" * 32], "extra": 1}, 422, "validation-error"),
        ({"hashes": []}, 422, "validation-error"),
    ],
)
def test_bad_waits_are_problems(
    consortium: RunningConsortium, body: dict[str, Any], status: int, code: str
) -> None:
    assert_problem(post(consortium, "/v1/wait", json=body), status, code)


def test_malformed_json_and_wrong_method(consortium: RunningConsortium) -> None:
    r = post(
        consortium,
        "/v1/transactions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert_problem(r, 400, "bad-request")
    assert_problem(httpx.delete(consortium.url() + "/v1/blocks"), 405, "method-not-allowed")
    assert_problem(post(consortium, "/v1/status"), 405, "method-not-allowed")


def test_oversized_bodies_are_refused(consortium: RunningConsortium) -> None:
    big = b'{"txs": ["' + b"00" * (3 * 1024 * 1024) + b'"]}'
    r = post(
        consortium, "/v1/transactions", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(r, 413, "payload-too-large")

    def chunks() -> Any:  # no Content-Length: counted as it streams
        yield b'{"txs": ["'
        for _ in range(600):
            yield b"00" * 4096
        yield b'"]}'

    r = post(
        consortium,
        "/v1/transactions",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert_problem(r, 413, "payload-too-large")


# -- market -------------------------------------------------------------------------------


def test_market_book_trades_and_slots(
    consortium: RunningConsortium, traded: list[dict[str, Any]]
) -> None:
    trades = get(consortium, "/v1/market/trades", params={"limit": 100}).json()["trades"]
    assert trades, "sixty crossing orders make trades"
    assert all(set(t) == {"height", "timestamp_ms", "slot", "price", "quantity"} for t in trades)
    slot = trades[0]["slot"]
    only = get(consortium, "/v1/market/trades", params={"slot": slot}).json()["trades"]
    assert only and all(t["slot"] == slot for t in only)
    assert get(consortium, "/v1/market/trades", params={"slot": slot + 99}).json()["trades"] == []
    slots = get(consortium, "/v1/market/slots").json()["slots"]
    row = next(s for s in slots if s["slot"] == slot)
    mine = [t for t in trades if t["slot"] == slot]
    assert row["volume"] == sum(t["quantity"] for t in mine)
    assert row["low"] <= row["vwap"] <= row["high"]
    book = get(consortium, "/v1/market/book").json()
    assert book["slots"], "what did not cross rests in the book"
    for s in book["slots"]:
        if s["bids"] and s["asks"]:
            assert s["bids"][0]["price"] < s["asks"][0]["price"]  # a crossed book would be a bug
    # the public view never names a pseudonym
    text = get(consortium, "/v1/market/book").text + str(trades)
    assert "pseudonym" not in text


def test_one_trade_as_recorded(consortium: RunningConsortium, traded: list[dict[str, Any]]) -> None:
    replica = consortium.replicas[0]
    trade_keys = [k for k, _ in replica.ledger.state.scan(b"market/t/")]
    assert trade_keys
    trade_id = trade_keys[0][len(b"market/t/") :]
    body = get(consortium, f"/v1/market/trades/{trade_id.hex()}").json()
    assert body["trade_id"] == trade_id.hex()
    assert body["settled"] is False


# -- identity -----------------------------------------------------------------------------


def test_pseudonym_certificates_and_revocations(
    consortium: RunningConsortium, live_world: World
) -> None:
    good = live_world.pseudonyms[1]
    body = get(consortium, f"/v1/identity/pseudonyms/{good.raw.hex()}").json()
    assert body["certificate"]["pseudonym_key"] == good.raw.hex()
    assert body["revoked"] is False
    bad = live_world.revoked
    body = get(consortium, f"/v1/identity/pseudonyms/{bad.raw.hex()}").json()
    assert body["revoked"] is True
    revs = get(consortium, "/v1/identity/revocations").json()
    assert bad.raw.hex() in {p["pseudonym_key"] for p in revs["pseudonyms"]}
    assert get(consortium, "/v1/identity/traces").json() == {"traces": []}
    assert get(consortium, "/v1/identity/events").json() == {"events": []}


# -- the node's pages ---------------------------------------------------------------------


def test_dashboard_and_security_headers(consortium: RunningConsortium) -> None:
    r = get(consortium, "/")
    assert r.status_code == 200 and "<title>gridledger" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert get(consortium, "/static/app.js").status_code == 200
    assert_problem(get(consortium, "/static/../../etc/passwd"), 404, "route-not-found")
    assert get(consortium, "/docs").status_code == 404  # no CDN-backed docs page


def test_cors_is_off_by_default(consortium: RunningConsortium) -> None:
    r = get(consortium, "/v1/status", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = httpx.options(
        consortium.url() + "/v1/transactions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in pre.headers
