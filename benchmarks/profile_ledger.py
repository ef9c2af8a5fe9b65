"""Where a transaction's time goes in one replica, from the client's bytes to the stored receipt.

Runs four real :class:`~gridledger.node.core.NodeCore` replicas (default
:class:`~gridledger.consensus.params.ConsensusParams`, default
:class:`~gridledger.node.core.NodeLimits`, SQLite ``synchronous=FULL``) in this
one process, frames handed over in FIFO order instead of TCP, and clients
sending every ``test.kv-set`` transaction to every replica (the documented
rule) in batches of ``--batch`` every 25 ms of simulated time. Each stage is
timed with ``time.process_time`` (CPU, not wall: fsync waits do not count) by
wrapping the function that does it; the table gives CPU microseconds per
transaction per replica. A second table times what the asyncio shell adds per
transaction: the JSON-lines ``submit`` request and its receipts answer.

Then the sparse Merkle tree alone at larger states (``--smt-sizes``): what a
state of that many entries costs (the load benchmark's state stays near 5,000
entries: its 5,000 keys and one nonce window per sender).

Usage: ``python benchmarks/profile_ledger.py [--txs 6000] [--batch 300]
[--smt-sizes 10000,100000,200000]`` (``--smt-sizes ""`` skips that table).
Bounded: a fixed number of transactions, delivery loops capped.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_note, markdown_table
from gridledger.consensus import pbft_engine
from gridledger.consensus.params import ConsensusParams
from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger import block as block_mod
from gridledger.ledger import chain as chain_mod
from gridledger.ledger import execution as exec_mod
from gridledger.ledger import smt as smt_mod
from gridledger.ledger import state as state_mod
from gridledger.ledger import storage_sqlite
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvContract, KvSet
from gridledger.ledger.plugins import build_registry
from gridledger.ledger.tx import Transaction
from gridledger.node import core as core_mod
from gridledger.node.core import NodeCore, NodeEffect, Transmit, compute_receipt_json
from gridledger.node.json_lines import decode_line, encode_line

N = 4
CHAIN = "profile-chain"

# (label, parent label or "", owner, function name): the stages, nested as they run.
STAGES: list[tuple[str, str, Any, str]] = [
    ("intake: NodeCore.submit", "", core_mod.NodeCore, "submit"),
    (
        "decode + hash (decode_transaction)",
        "intake: NodeCore.submit",
        core_mod,
        "decode_transaction",
    ),
    ("engine: requests to PBFT", "intake: NodeCore.submit", pbft_engine.PbftEngine, "on_requests"),
    ("engine: peer frames (PBFT)", "", pbft_engine.PbftEngine, "on_frame"),
    ("engine: block vote (on_executed)", "", pbft_engine.PbftEngine, "on_executed"),
    ("engine: tick (timers, batching)", "", pbft_engine.PbftEngine, "on_tick"),
    ("store: vote log (update_meta, fsync)", "", storage_sqlite.SqliteBlockStore, "update_meta"),
    ("execute: Ledger.commit", "", chain_mod.Ledger, "commit"),
    (
        "signature check (ed25519-zebra)",
        "execute: Ledger.commit",
        exec_mod,
        "is_valid_transaction_signature",
    ),
    ("nonce window: check", "execute: Ledger.commit", exec_mod, "find_nonce_problem"),
    ("nonce window: spend", "execute: Ledger.commit", exec_mod, "spend_nonce"),
    ("contract (kv-set: decode payload, receipt)", "execute: Ledger.commit", KvContract, "process"),
    ("state writes + SMT leaves", "execute: Ledger.commit", state_mod.WorldState, "apply_writes"),
    ("SMT root (incremental)", "execute: Ledger.commit", smt_mod.SparseMerkleTree, "root"),
    ("tx root", "execute: Ledger.commit", block_mod, "compute_tx_root"),
    ("receipts root", "execute: Ledger.commit", block_mod, "compute_receipts_root"),
    (
        "store block (one SQLite tx, fsync)",
        "execute: Ledger.commit",
        storage_sqlite.SqliteBlockStore,
        "put_block",
    ),
    ("certificate: check + store", "", chain_mod.Ledger, "attach_certificate"),
]


_SIG = "signature check (ed25519-zebra)"
_CONTRACT = "contract (kv-set: decode payload, receipt)"


def _instrument(acc: dict[str, float]) -> Callable[[], None]:
    """Wrap every stage's function with a CPU timer; returns the undo."""
    undo: list[tuple[Any, str, Any]] = []
    for label, _parent, owner, name in STAGES:
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

        def make(f: Any, label: str) -> Any:
            @functools.wraps(f)
            def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = time.process_time()
                try:
                    return f(*args, **kwargs)
                finally:
                    acc[label] = acc.get(label, 0.0) + time.process_time() - t0

            return timed

        setattr(owner, name, make(original, label))
        undo.append((owner, name, original))

    def restore() -> None:
        for owner, name, original in undo:
            setattr(owner, name, original)

    return restore


def presign(count: int) -> list[bytes]:
    keys = [Ed25519PrivateKey((i + 1).to_bytes(32, "big")) for i in range(64)]
    return [
        encode(
            Transaction.create(
                CHAIN,
                KV_SET_KIND,
                KvSet(b"meter-%d" % (i % 5000), b"%d" % i),
                keys[i % 64],
                i // 64 + 1,
            )
        )
        for i in range(count)
    ]


def run_cores(payloads: list[bytes], batch: int, tmp: Path) -> tuple[float, list[NodeCore]]:
    """Four cores, every batch to every replica; returns total CPU seconds."""
    keys = [Ed25519PrivateKey(bytes([i + 1]) * 32) for i in range(N)]
    genesis = GenesisConfig.create(
        CHAIN, [Validator(i, k.public_key.raw) for i, k in enumerate(keys)], 1_000
    )
    cores = [
        NodeCore(
            replica_id=i,
            key=keys[i],
            genesis=genesis,
            store=storage_sqlite.SqliteBlockStore(tmp / f"r{i}.sqlite"),
            registry=build_registry(genesis),
            params=ConsensusParams(),
            rng=DeterministicRng(f"profile/{i}"),
        )
        for i in range(N)
    ]
    queue: deque[tuple[int, int, bytes]] = deque()
    now = 2_000_000

    def carry(i: int, effects: list[NodeEffect]) -> None:
        for e in effects:
            if isinstance(e, Transmit):
                for j in [e.to] if e.to is not None else [k for k in range(N) if k != i]:
                    queue.append((j, i, e.frame))

    def pump() -> None:
        for _ in range(10_000_000):
            if not queue:
                return
            j, i, frame = queue.popleft()
            carry(j, cores[j].on_frame(i, frame, now))

    def tick() -> None:
        nonlocal now
        now += 25
        for i in range(N):
            carry(i, cores[i].on_tick(now))
        pump()

    t0 = time.process_time()
    for start in range(0, len(payloads), batch):
        for i in range(N):
            _, effects = cores[i].submit(payloads[start : start + batch], now)
            carry(i, effects)
        pump()
        tick()
    for _ in range(400):
        if all(c.executed_txs >= len(payloads) for c in cores):
            break
        tick()
    return time.process_time() - t0, cores


def profile_api(payloads: list[bytes], cores: list[NodeCore], batch: int) -> dict[str, float]:
    """CPU per transaction of the JSON-lines shell around ``submit`` (one replica)."""
    core = cores[0]
    chunk = payloads[:batch]
    line = json.dumps(
        {"id": 1, "method": "submit", "params": {"txs": [p.hex() for p in chunk], "wait": True}}
    ).encode()
    blocks = [core.store.get_block(h) for h in range(1, core.ledger.height + 1)]
    rounds = 20
    t0 = time.process_time()
    for _ in range(rounds):
        request = decode_line(line)
        [bytes.fromhex(t) for t in request["params"]["txs"]]
    parse = (time.process_time() - t0) / rounds / len(chunk)
    stored = []
    for b in blocks:
        if b is not None:
            stored.append((b.height, b.header.header_hash, core.store.get_receipts(b.height) or ()))
    receipts: list[dict[str, Any]] = []
    t0 = time.process_time()
    for height, block_hash, rs in stored:
        receipts.extend(compute_receipt_json(r, height, i, block_hash) for i, r in enumerate(rs))
    build = (time.process_time() - t0) / max(len(receipts), 1)
    t0 = time.process_time()
    for start in range(0, len(receipts), batch):
        encode_line({"id": 1, "result": {"receipts": receipts[start : start + batch]}})
    dump = (time.process_time() - t0) / max(len(receipts), 1)
    return {
        "parse the submit line (orjson + hex)": parse,
        "receipt to its JSON form (compute_receipt_json)": build,
        "answer line (orjson)": dump,
    }


def measure_smt(size: int, blocks: int = 10, per_block: int = 300) -> tuple[float, float]:
    """µs per transaction of ``SparseMerkleTree.set`` and ``root`` on a tree of ``size``
    entries, blocks of ``per_block`` transactions each adding one entry (a new key) and
    updating its sender's nonce window (64 senders): median over ``blocks``."""
    tree = smt_mod.SparseMerkleTree()
    for i in range(size):
        tree.set(b"preload/%d" % i, b"v%d" % i)
    tree.root()
    sets: list[float] = []
    roots: list[float] = []
    for b in range(blocks):
        t0 = time.process_time()
        for i in range(per_block):
            tree.set(b"test/%d-%d" % (b, i), b"x" * 16)
            tree.set(b"sys/nonce/%d" % (i % 64), b"w%d" % (b * per_block + i))
        t1 = time.process_time()
        tree.root()
        t2 = time.process_time()
        sets.append((t1 - t0) / per_block * 1e6)
        roots.append((t2 - t1) / per_block * 1e6)
    return statistics.median(sets), statistics.median(roots)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=300)
    parser.add_argument("--smt-sizes", default="10000,100000,200000")
    args = parser.parse_args()
    smt_sizes = [int(x) for x in args.smt_sizes.split(",") if x.strip()]
    payloads = presign(args.txs)
    load = psutil.getloadavg()
    acc: dict[str, float] = {}
    restore = _instrument(acc)
    try:
        with tempfile.TemporaryDirectory(prefix="gridledger-profile-") as tmp:
            total, cores = run_cores(payloads, args.batch, Path(tmp))
            api = profile_api(payloads, cores, args.batch)
            heights = [c.ledger.height for c in cores]
            for c in cores:
                c.store.close()
    finally:
        restore()
    per = 1e6 / (args.txs * N)
    rows = []
    covered = 0.0
    for label, parent, _o, _n in STAGES:
        if label not in acc:
            continue
        if not parent:
            covered += acc[label]
        children = sum(acc.get(lb, 0.0) for lb, p, _a, _b in STAGES if p == label)
        name = f"&nbsp;&nbsp;↳ {label}" if parent else f"**{label}**"
        rows.append([name, f"{acc[label] * per:.1f}", f"{acc[label] / total * 100:.0f}%"])
        if children and not parent:
            rest = acc[label] - children
            rows.append(
                ["&nbsp;&nbsp;↳ the rest of it", f"{rest * per:.1f}", f"{rest / total * 100:.0f}%"]
            )
    rows.append(
        [
            "everything else (node core, effects)",
            f"{(total - covered) * per:.1f}",
            f"{(total - covered) / total * 100:.0f}%",
        ]
    )
    rows.append(["**total, one replica**", f"**{total * per:.1f}**", "100%"])
    shell = [[k, f"{v * 1e6:.1f}"] for k, v in api.items()]
    budget = 2 * 1e6 / (3000 * N)
    print(
        "\n".join(
            [
                f"Machine: {machine_note()}; load average before: {load[0]:.2f} / {load[1]:.2f} / "
                f"{load[2]:.2f}. {args.txs} `test.kv-set` transactions, {args.batch} per client "
                f"batch, sent to all four replicas; {max(heights)} blocks (about "
                f"{args.txs // max(max(heights), 1)} transactions each). CPU time per transaction "
                "per replica, default settings, SQLite synchronous=FULL.",
                "",
                markdown_table(["Stage", "µs / tx / replica", "share"], rows),
                "",
                "What the asyncio shell adds per transaction and replica (JSON lines, hex):",
                "",
                markdown_table(["Shell step", "µs / tx"], shell),
                "",
                f"Budget for 3,000 tx/s with four replicas on two cores: {budget:.0f} µs per "
                "transaction per replica, everything included (the load generator too). "
                f"Measured here: {total * per:.0f} µs in the node core alone, of which "
                f"{acc.get(_SIG, 0.0) * per:.0f} µs is the one signature check per replica "
                f"and {acc.get(_CONTRACT, 0.0) * per:.0f} µs the contract.",
            ]
        )
    )
    if smt_sizes:
        smt_rows = []
        for size in smt_sizes:
            set_us, root_us = measure_smt(size)
            smt_rows.append(
                [f"{size:,}", f"{set_us:.1f}", f"{root_us:.1f}", f"{set_us + root_us:.1f}"]
            )
        print()
        print(
            "The sparse Merkle tree alone at larger states (blocks of 300 transactions, each "
            "adding one entry and updating its sender's nonce window, 64 senders; CPU µs "
            "per transaction, median of 10 blocks):"
        )
        print()
        print(markdown_table(["entries", "set", "root", "total"], smt_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
