"""The read service's raw state scan: ordered pages under a prefix, bounded, resumable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.node.service import MAX_SCAN_PAGE, BadParameter, NodeService
from gridledger.node.simnet import SimNetwork

ENTRIES = {b"book/%03d" % i: b"v%d" % i for i in range(0, 250, 2)}
OTHER = {b"booking": b"x", b"boo": b"y", b"cook/1": b"z"}


@pytest.fixture(scope="module")
def service() -> NodeService:
    sim = SimNetwork(4, seed=5, genesis_state={**ENTRIES, **OTHER})
    return NodeService(sim.replicas[0].core)


def _all_pages(service: NodeService, prefix: bytes, limit: int) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    after: bytes | None = None
    for _ in range(1_000):  # bounded: each page makes progress
        page = service.get_scan(prefix, after, limit)
        assert page["height"] == 0 and len(page["entries"]) <= limit
        out.extend((bytes.fromhex(k), bytes.fromhex(v)) for k, v in page["entries"])
        if page["resume_after"] is None:
            return out
        after = bytes.fromhex(page["resume_after"])
    raise AssertionError("the scan did not end")


@settings(max_examples=30, deadline=None)
@given(limit=st.integers(min_value=1, max_value=150))
def test_pages_join_to_the_ordered_prefix(service: NodeService, limit: int) -> None:
    assert _all_pages(service, b"book/", limit) == sorted(ENTRIES.items())


def test_only_keys_under_the_prefix_and_after_the_cursor(service: NodeService) -> None:
    page = service.get_scan(b"book/", b"book/100", 3)
    assert [bytes.fromhex(k) for k, _ in page["entries"]] == [b"book/102", b"book/104", b"book/106"]
    assert service.get_scan(b"nothing/", None, 10)["entries"] == []


@pytest.mark.parametrize("limit", [0, -1, MAX_SCAN_PAGE + 1])
def test_a_limit_out_of_range_is_refused(service: NodeService, limit: int) -> None:
    with pytest.raises(BadParameter, match="limit"):
        service.get_scan(b"book/", None, limit)


def test_a_cursor_outside_the_prefix_is_refused(service: NodeService) -> None:
    # an attacker's cursor cannot walk the scan out of the prefix it asked for
    with pytest.raises(BadParameter, match="after"):
        service.get_scan(b"book/", b"cook/1", 10)


def test_paging_through_a_large_prefix_reaches_its_end() -> None:
    """Each page seeks to its cursor: page 13 of 1,000 costs what page 1 does."""
    many = {b"meter/%06d" % i: b"r" for i in range(12_500)}
    sim = SimNetwork(4, seed=6, genesis_state={**many, b"other": b"x"})
    pages = _all_pages(NodeService(sim.replicas[0].core), b"meter/", MAX_SCAN_PAGE)
    assert len(pages) == 12_500 and pages == sorted(many.items())
