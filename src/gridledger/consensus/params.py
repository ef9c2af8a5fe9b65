"""The consensus knobs of a replica, named once, with one set of defaults.

The CLI, the configuration files, the benchmarks and the simulator all pass a
:class:`ConsensusParams`; each engine maps it onto its own internal settings
(PBFT: :func:`gridledger.consensus.pbft_engine.compute_pbft_config`). Times are
integer milliseconds throughout the consensus layer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NewType

Milliseconds = NewType("Milliseconds", int)


@dataclass(frozen=True)
class ConsensusParams:
    """Tunables of the replica runtime and of its consensus engine."""

    max_batch: int = 1000
    max_batch_bytes: int = 0  # 0: the largest that keeps a NEW-VIEW under the frame limit
    batch_delay_ms: int = 20
    # The primary holds a batch that is not full while this many are proposed and not
    # executed (0: never), so that blocks grow with the load (see pbft._is_holding_batch).
    max_inflight_batches: int = 2
    view_change_timeout_ms: int = 4000
    # A window of 16 slots keeps ~16 batches in flight and, for n = 4, leaves a
    # NEW-VIEW byte budget of ~220 KiB per batch (64 slots: ~55 KiB), so batches
    # of several hundred transactions fit; measured in benchmarks/ledger_load.py.
    checkpoint_interval: int = 8
    watermark_window: int = 16
    tick_ms: int = 20
    status_log_s: int = 10
    retransmit_interval_ms: int = 1000
    timestamp_tolerance_ms: int = 30_000
    max_pending_requests: int = 100_000

    @classmethod
    def get_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))
