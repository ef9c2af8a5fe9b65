"""The dashboard in real headless chromium against four running replicas.

Each page loads from the node, a block and a trade committed while the page is
open show up within seconds (from the event stream, not a reload), a household
signs in with its key in the browser (WebCrypto Ed25519) without the key ever
leaving the page, and a screenshot of every page is taken: into a temporary
directory, or into docs/screenshots/ when GRIDLEDGER_UPDATE_SCREENSHOTS=1 (so that
a test run never changes tracked files unless asked to).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from gridledger.crypto.encoding import encode
from tests.browser.cdp import Browser
from tests.market.helpers import World
from tests.node.helpers import make_kv_txs
from tests.node.http.helpers import CHAIN_ID, RunningConsortium, make_crossing_orders

DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: docs/screenshots/ only when asked to update them."""
    if os.environ.get("GRIDLEDGER_UPDATE_SCREENSHOTS") == "1":
        return DOCS_SHOTS
    return tmp_path_factory.mktemp("screenshots")


LIVE_S = 5.0  # a committed block or trade must be on the page within this many seconds


def open_page(browser: Browser, consortium: RunningConsortium, page: str) -> None:
    browser.navigate(consortium.url(1) + "/#" + page)
    browser.wait_for(f"document.body.dataset.page === {page!r}", 10, f"the {page} page")
    browser.wait_for(
        "document.querySelector('#live').textContent === 'live'", 10, "the live stream"
    )


def test_chain_page_shows_a_new_block_live(
    browser: Browser, consortium: RunningConsortium, traded: list[dict[str, Any]], shots: Path
) -> None:
    open_page(browser, consortium, "chain")
    browser.wait_for("document.querySelectorAll('#blocks tr.block').length > 0", 10, "blocks")
    browser.wait_for(
        "document.querySelectorAll('#replicas tbody tr').length === 4", 10, "four replicas"
    )
    receipts = consortium.submit(make_kv_txs(2, chain_id=CHAIN_ID, seed=301))
    height = receipts[0]["height"]
    browser.wait_for(
        f"document.querySelector('#blocks tr.block[data-height=\"{height}\"]') !== null",
        LIVE_S,
        f"block {height} on the page",
    )
    assert browser.evaluate("document.querySelector('#st-height').textContent") >= str(height)
    browser.wait_for(
        "[...document.querySelectorAll('#replicas td')]"
        ".filter(t => t.textContent === 'connected').length === 4",
        10,
        "every replica connected",
    )
    browser.screenshot(shots / "chain.png")


def test_market_page_shows_a_new_trade_live(
    browser: Browser,
    consortium: RunningConsortium,
    live_world: World,
    traded: list[dict[str, Any]],
    shots: Path,
) -> None:
    open_page(browser, consortium, "market")
    browser.wait_for("document.querySelectorAll('#trades tr.trade').length > 0", 10, "trades")
    browser.wait_for("document.querySelector('#slot-chart .slot-bar') !== null", 10, "slot chart")
    orders = make_crossing_orders(live_world, 2, price=120)
    receipts: list[dict[str, Any]] = []
    sender = threading.Thread(target=lambda: receipts.extend(consortium.submit(orders)))
    sender.start()
    sender.join(30)
    height = receipts[-1]["height"]
    browser.wait_for(
        f"document.querySelector('#trades tr.trade[data-height=\"{height}\"]') !== null",
        LIVE_S,
        f"a trade of block {height}",
    )
    browser.wait_for(
        "document.querySelector('#depth-chart path, #depth-chart text') !== null", 5, "depth chart"
    )
    browser.screenshot(shots / "market.png")


def test_identity_page_lists_the_revoked_pseudonym(
    browser: Browser, consortium: RunningConsortium, live_world: World, shots: Path
) -> None:
    open_page(browser, consortium, "identity")
    revoked = live_world.revoked.raw.hex()
    browser.wait_for(
        f"document.querySelector('#id-revp').textContent.includes({revoked!r})",
        10,
        "the revoked pseudonym",
    )
    good = live_world.pseudonyms[0].raw.hex()
    browser.evaluate(
        f"document.querySelector('#pc-key').value = {good!r};"
        "document.querySelector('#pc-form').requestSubmit(); true"
    )
    browser.wait_for(
        f"document.querySelector('#pc-out').textContent.includes({good!r})", 10, "the certificate"
    )
    browser.screenshot(shots / "identity.png")


def test_a_household_signs_in_in_its_browser(
    browser: Browser,
    consortium: RunningConsortium,
    live_world: World,
    traded: list[dict[str, Any]],
    shots: Path,
) -> None:
    me = live_world.pseudonyms[0]
    seed = me.key._key.private_bytes_raw().hex()
    open_page(browser, consortium, "household")
    browser.requests.clear()
    browser.evaluate(
        f"document.querySelector('#signin-key').value = {seed!r};"
        "document.querySelector('#signin-form').requestSubmit(); true"
    )
    browser.wait_for(
        "document.querySelectorAll('#me-orders tr.my-order').length > 0", 10, "my orders"
    )
    assert browser.evaluate("document.querySelector('#me-key').textContent") == me.raw.hex()
    assert browser.evaluate("document.querySelector('#signin-key').value") == ""
    sent = encode(browser.requests)  # every URL, header and body the page sent
    assert seed.encode() not in sent and seed.upper().encode() not in sent
    assert any(r.get("url", "").endswith("/v1/auth/session") for r in browser.requests)
    browser.screenshot(shots / "household.png")


def test_a_wrong_key_is_refused_in_the_page(
    browser: Browser, consortium: RunningConsortium
) -> None:
    open_page(browser, consortium, "household")
    browser.evaluate(
        "document.querySelector('#signin-key').value = 'abcd';"
        "document.querySelector('#signin-form').requestSubmit(); true"
    )
    browser.wait_for(
        "document.querySelector('#signin-error').textContent.includes('32 bytes')", 5, "an error"
    )
