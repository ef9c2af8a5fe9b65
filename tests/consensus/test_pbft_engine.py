"""PBFT behind the engine seam: how the vote log and its prepared proofs reach the disk."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridledger.consensus.effects import (
    PHASE_COMMIT,
    PHASE_PREPARE,
    PHASE_PREPARED,
    PHASE_VIEW_CHANGE,
    PersistVotes,
    VoteRecord,
)
from gridledger.consensus.engine import PersistStates
from gridledger.consensus.pbft import compute_live_votes, decode_vote_log, encode_vote_log
from gridledger.consensus.pbft_engine import (
    VOTES_KEY,
    compute_vote_log_write,
    get_proof_key,
    read_vote_log,
)
from gridledger.errors import ConfigError

D = b"\x07" * 32


def _proof(view: int, seq: int) -> bytes:
    return b"proof %d/%d " % (view, seq) + b"\xab" * 1000  # a signed batch stands in


def _apply(disk: dict[str, bytes], write: PersistStates) -> None:
    for key in write.deletes:
        disk.pop(key, None)
    for key, value in write.puts:
        disk[key] = value


def test_each_prepared_proof_is_written_once_and_removed_with_its_slot() -> None:
    disk: dict[str, bytes] = {}
    p3 = VoteRecord(0, 3, PHASE_PREPARED, _proof(0, 3))
    first = (VoteRecord(0, 3, PHASE_COMMIT, D), p3)
    write = compute_vote_log_write((), first)
    _apply(disk, write)
    assert dict(write.puts)[get_proof_key(p3)] == p3.digest
    assert read_vote_log(disk.get).votes == first
    # The log row of the proof is small: the proof lives under its own key only.
    assert p3.digest not in disk[VOTES_KEY]
    assert len(disk[VOTES_KEY]) < 200

    # A later vote rewrites the small log, not the proof.
    p4 = VoteRecord(0, 4, PHASE_PREPARED, _proof(0, 4))
    second = (*first, VoteRecord(0, 4, PHASE_PREPARE, D), p4)
    write = compute_vote_log_write(first, second)
    keys = [key for key, _ in write.puts]
    assert get_proof_key(p3) not in keys
    assert keys == [get_proof_key(p4), VOTES_KEY]
    _apply(disk, write)
    assert read_vote_log(disk.get).votes == second

    # Slot 3 becomes stable: its proof leaves the disk in the same write.
    third = compute_live_votes(second, PersistVotes((), low_watermark=3, view=0))
    write = compute_vote_log_write(second, third)
    assert write.deletes == (get_proof_key(p3),)
    _apply(disk, write)
    assert get_proof_key(p3) not in disk
    assert read_vote_log(disk.get).votes == third


def test_a_proof_of_a_higher_view_replaces_the_lower_one() -> None:
    low = VoteRecord(0, 5, PHASE_PREPARED, _proof(0, 5))
    high = VoteRecord(2, 5, PHASE_PREPARED, _proof(2, 5))
    before = (low,)
    after = compute_live_votes(before, PersistVotes((high,), low_watermark=0, view=2))
    assert after == (high,)
    write = compute_vote_log_write(before, after)
    assert write.deletes == (get_proof_key(low),)
    assert get_proof_key(high) in dict(write.puts)


def test_a_log_naming_a_missing_proof_refuses_to_start() -> None:
    disk: dict[str, bytes] = {}
    votes = (VoteRecord(1, 2, PHASE_PREPARED, _proof(1, 2)),)
    _apply(disk, compute_vote_log_write((), votes))
    del disk[get_proof_key(votes[0])]
    with pytest.raises(ConfigError, match="not on disk"):
        read_vote_log(disk.get)


def test_a_corrupt_log_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="corrupt"):
        read_vote_log({VOTES_KEY: b"\xa1\x00"}.get)


def test_a_log_with_proofs_inline_reads_and_is_moved_to_keys_by_the_next_write() -> None:
    """The log as written before proofs had their own keys: one blob, proofs inside.

    The first write after the upgrade must store those proofs under their keys,
    or it would leave rows naming proofs that are on no disk (a replica that
    cannot restart)."""
    inline = VoteRecord(0, 1, PHASE_PREPARED, _proof(0, 1))
    votes = (VoteRecord(0, 0, PHASE_VIEW_CHANGE, b""), VoteRecord(0, 1, PHASE_COMMIT, D), inline)
    disk = {VOTES_KEY: encode_vote_log(votes)}
    stored = read_vote_log(disk.get)
    assert stored.votes == votes
    assert inline not in stored.keyed and len(stored.keyed) == 2
    # one more vote, written as the engine writes it: from what the disk holds
    live = compute_live_votes(
        stored.votes, PersistVotes((VoteRecord(0, 2, PHASE_PREPARE, D),), low_watermark=0, view=0)
    )
    write = compute_vote_log_write(stored.keyed, live)
    assert get_proof_key(inline) in dict(write.puts)
    _apply(disk, write)
    assert read_vote_log(disk.get).votes == live
    assert read_vote_log({}.get).votes == ()


_votes = st.builds(
    VoteRecord,
    view=st.integers(0, 3),
    seq=st.integers(1, 12),
    phase=st.sampled_from((PHASE_PREPARE, PHASE_COMMIT, PHASE_PREPARED)),
    digest=st.just(D),
).map(
    lambda v: (
        VoteRecord(v.view, v.seq, v.phase, _proof(v.view, v.seq))
        if v.phase == PHASE_PREPARED
        else v
    )
)
_steps = st.lists(
    st.tuples(st.lists(_votes, max_size=4), st.integers(0, 12), st.integers(0, 3)),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(_steps)
def test_the_disk_always_reads_back_the_live_votes_and_holds_no_stale_proof(
    steps: list[tuple[list[VoteRecord], int, int]],
) -> None:
    disk: dict[str, bytes] = {}
    live: tuple[VoteRecord, ...] = ()
    low, view = 0, 0
    for votes, low_step, view_step in steps:
        low, view = max(low, low_step), max(view, view_step)  # both only grow
        new = compute_live_votes(live, PersistVotes(tuple(votes), low_watermark=low, view=view))
        _apply(disk, compute_vote_log_write(live, new))
        live = new
        assert read_vote_log(disk.get).votes == live
        proofs = {get_proof_key(v) for v in live if v.phase == PHASE_PREPARED}
        assert {k for k in disk if k != VOTES_KEY} == proofs
        assert all(
            not r.digest for r in decode_vote_log(disk[VOTES_KEY]) if r.phase == PHASE_PREPARED
        )
