"""World state and overlays: ordered prefix scans see committed and uncommitted writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gridledger.ledger.state import Overlay, WorldState, compute_prefix_end


def test_scan_returns_prefix_in_order() -> None:
    state = WorldState([(b"a/2", b"x"), (b"a/1", b"y"), (b"b/1", b"z"), (b"a", b"w")])
    assert list(state.scan(b"a/")) == [(b"a/1", b"y"), (b"a/2", b"x")]
    assert [k for k, _ in state.scan(b"")] == [b"a", b"a/1", b"a/2", b"b/1"]


def test_scan_after_writes_and_deletes() -> None:
    state = WorldState([(b"k/1", b"1"), (b"k/3", b"3")])
    state.apply_writes({b"k/2": b"2", b"k/3": None})
    assert list(state.scan(b"k/")) == [(b"k/1", b"1"), (b"k/2", b"2")]


def test_overlay_scan_folds_uncommitted_writes() -> None:
    state = WorldState([(b"k/1", b"1"), (b"k/3", b"3")])
    block = Overlay(state)
    block.put(b"k/0", b"0")
    block.delete(b"k/3")
    tx = Overlay(block)
    tx.put(b"k/2", b"2")
    tx.put(b"x/9", b"9")
    assert list(tx.scan(b"k/")) == [(b"k/0", b"0"), (b"k/1", b"1"), (b"k/2", b"2")]
    assert list(state.scan(b"k/")) == [(b"k/1", b"1"), (b"k/3", b"3")]


def test_prefix_end_handles_ff_bytes() -> None:
    assert compute_prefix_end(b"a") == b"b"
    assert compute_prefix_end(b"a\xff") == b"b"
    assert compute_prefix_end(b"\xff\xff") is None
    state = WorldState([(b"\xff\x01", b"1"), (b"\xff", b"0"), (b"\xfe", b"x")])
    assert [k for k, _ in state.scan(b"\xff")] == [b"\xff", b"\xff\x01"]


@given(
    st.dictionaries(st.binary(max_size=4), st.binary(min_size=1, max_size=2), max_size=20),
    st.dictionaries(
        st.binary(max_size=4), st.one_of(st.none(), st.binary(min_size=1, max_size=2)), max_size=20
    ),
    st.binary(max_size=2),
)
def test_overlay_scan_matches_a_plain_dict(
    base: dict[bytes, bytes], writes: dict[bytes, bytes | None], prefix: bytes
) -> None:
    state = WorldState(base.items())
    overlay = Overlay(state)
    expected = dict(base)
    for k, v in writes.items():
        if v is None:
            overlay.delete(k)
            expected.pop(k, None)
        else:
            overlay.put(k, v)
            expected[k] = v
    want = sorted((k, v) for k, v in expected.items() if k.startswith(prefix))
    assert list(overlay.scan(prefix)) == want
    state.apply_writes(overlay.writes)
    assert list(state.scan(prefix)) == want
