"""Fuzz every decoder a remote peer or client can reach; only typed errors may come out.

Run ``.venv/bin/python tools/fuzz_decoders.py [--inputs 1000000] [--seed 1]``.

Inputs, in a fixed rotation, from one seeded ``random.Random``:

- random bytes (mostly short, some up to a few kilobytes);
- byte-level mutations (bit flips, interesting bytes, inserts, deletes,
  truncations, splices) of valid encodings: a generated value of *every*
  registered wire type, and real protocol frames (signed PBFT envelopes of
  every message type, a signed transaction, a block, the TCP handshake
  messages, sync messages);
- structural mutations, re-encoded canonically so that they get past the
  canonical-form check: the type tag replaced by a list, a map, an int, bytes,
  null or another type's name; a field dropped, added, or given a value of
  another type; a nested value swapped for a random one.

Each input goes through the generic targets (``decode``, the replica's frame
dispatch, envelope opening, transaction and block decoding) and ``decode_as``
for two wire types; every fourth input (a structural mutation) is also signed
by a byzantine member and fed to another replica's PBFT handlers
(``pbft.on_frame``), the path the issue's crash took. A target may return or
raise a ``GridledgerError`` (``EncodingError`` for the pure decoders); anything
else is a failure and is printed with its input. Memory is measured with
``tracemalloc`` after a warm-up and at the end: it must stay flat (growth below
``--max-growth-kb``).

The in-suite twin (``tests/crypto/test_decoder_fuzz.py``) imports this module
and runs a few thousand inputs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import importlib
import pkgutil
import random
import sys
import time
import tracemalloc
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gridledger
from gridledger.consensus import pbft
from gridledger.consensus.messages import (
    ENVELOPE_TAG,
    Authenticator,
    Checkpoint,
    ClientRequest,
    Commit,
    NewView,
    Prepare,
    PreparedProof,
    PrePrepare,
    Reply,
    SignedEnvelope,
    ViewChange,
    compute_batch_digest,
    decode_envelope,
    decode_message,
)
from gridledger.consensus.pbft import PbftConfig, ReplicaState, new_replica_state
from gridledger.crypto import encoding
from gridledger.crypto.encoding import TYPE_KEY, decode, decode_as, encode, from_value, wire_name
from gridledger.crypto.errors import EncodingError
from gridledger.crypto.hashing import hash_bytes
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import GridledgerError
from gridledger.ledger.block import Block, GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvContract, KvSet
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction, verify_transaction_signature
from gridledger.node.sync import BlocksReply, FetchBlocks, SyncStatus

CHAIN = "fuzz-chain"
INTERESTING_BYTES = (
    0x00, 0x01, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x20, 0x3F, 0x40, 0x5F, 0x60,
    0x7F, 0x80, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xD8, 0xD9, 0xF4, 0xF6, 0xF7, 0xF9,
    0xFB, 0xFF,
)  # fmt: skip
WRONG_TAGS: tuple[Any, ...] = ([], ["consensus.envelope/1"], {}, {"_t": "x"}, 0, -1, 2**64 - 1,
                               b"consensus.envelope/1", None, True, "")  # fmt: skip


def import_all_modules() -> list[str]:
    """Import every gridledger module, so that every wire type is registered.

    Returns the modules that failed to import (reported, not fatal: the tree
    is shared with work in progress).
    """
    failed: list[str] = []
    for info in pkgutil.walk_packages(gridledger.__path__, "gridledger.", onerror=failed.append):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:
            failed.append(info.name)
    return failed


def get_wire_types() -> dict[str, type[Any]]:
    """Every registered wire type, by wire name (after :func:`import_all_modules`)."""
    return dict(encoding._REGISTRY)


# -- generated values from type annotations ----------------------------------------------


def compute_random_value(rnd: random.Random, depth: int = 0) -> Any:
    """A random value of the data model (small, bounded depth)."""
    pick = rnd.randrange(9 if depth < 3 else 6)
    if pick == 0:
        return None
    if pick == 1:
        return rnd.random() < 0.5
    if pick == 2:
        return rnd.choice((0, 1, -1, 23, 24, 255, 256, 2**32, 2**63, 2**64 - 1, -(2**64)))
    if pick == 3:
        return rnd.randbytes(rnd.choice((0, 1, 31, 32, 33, 64)))
    if pick == 4:
        return rnd.choice(("", "a", "_t", "consensus.envelope/1", "é" * 3, "x" * 70))
    if pick == 5:
        return rnd.randrange(-1000, 1000)
    if pick == 6:
        return [compute_random_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    if pick == 7:
        return {
            rnd.choice(("a", "b", "body", "seq", "_u")): compute_random_value(rnd, depth + 1)
            for _ in range(rnd.randrange(3))
        }
    return {TYPE_KEY: copy.deepcopy(rnd.choice((*WRONG_TAGS[:2], "test")))}


def compute_value_for(tp: Any, rnd: random.Random, depth: int = 0) -> Any:
    """A plausible data-model value for the annotation ``tp`` (ignores __post_init__ rules)."""
    if depth > 6:
        return None
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return compute_value_for(rnd.choice(typing.get_args(tp)), rnd, depth)
    if origin is typing.Literal:
        return rnd.choice(typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return [compute_value_for(args[0], rnd, depth + 1) for _ in range(rnd.randrange(3))]
        return [compute_value_for(a, rnd, depth + 1) for a in args]
    if origin is list:
        (arg,) = typing.get_args(tp)
        return [compute_value_for(arg, rnd, depth + 1) for _ in range(rnd.randrange(3))]
    if origin is dict:
        _k, vt = typing.get_args(tp)
        return {f"k{i}": compute_value_for(vt, rnd, depth + 1) for i in range(rnd.randrange(3))}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return compute_dataclass_value(tp, rnd, depth + 1)
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return compute_value_for(supertype, rnd, depth)
    if tp is bool:
        return rnd.random() < 0.5
    if isinstance(tp, type) and issubclass(tp, int):
        return rnd.choice((0, 1, 2, 3, 7, 1000, 2**63))
    if tp is bytes:
        return rnd.randbytes(rnd.choice((0, 16, 32, 64)))
    if isinstance(tp, type) and issubclass(tp, str):
        return rnd.choice(("", CHAIN, "kv.set", "a"))
    if tp is type(None):
        return None
    return compute_random_value(rnd, depth)


def compute_dataclass_value(cls: type[Any], rnd: random.Random, depth: int = 0) -> Any:
    """The map a registered dataclass encodes to, with generated field values."""
    name = encoding._NAMES.get(cls)
    if name is None:
        return compute_random_value(rnd, depth)
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {TYPE_KEY: name}
    for f in dataclasses.fields(cls):
        out[f.name] = compute_value_for(hints[f.name], rnd, depth)
    return out


# -- real protocol frames ----------------------------------------------------------------


def compute_protocol_samples() -> list[bytes]:
    """Valid frames of the running protocol: envelopes, a transaction, a block, sync."""
    keys = [Ed25519PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
    validators = tuple(Validator(i, k.public_key.raw) for i, k in enumerate(keys))
    auth = Authenticator(CHAIN, validators, 0, keys[0])
    client = Ed25519PrivateKey(b"\x09" * 32)
    txs = [Transaction.create(CHAIN, KV_SET_KIND, KvSet(b"k", b"v%d" % i), client, i + 1)
           for i in range(2)]  # fmt: skip
    batch = tuple(ClientRequest(b"c", i, encode(tx)) for i, tx in enumerate(txs))
    pre = PrePrepare(0, 1, compute_batch_digest(5, batch), batch, 5)
    pre_env = auth.seal(pre)
    prep_env = auth.seal(Prepare(0, 1, pre.batch_digest))
    vc = ViewChange(1, 0, None, (PreparedProof(pre_env, (prep_env, prep_env)),))
    vc_env = auth.seal(vc)
    msgs: list[Any] = [pre, Prepare(0, 1, pre.batch_digest), Commit(0, 1, pre.batch_digest),
            Checkpoint(1, b"\x01" * 32, b"\x02" * 64), vc, NewView(1, (vc_env,), (pre_env,)),
            Reply(0, b"\x03" * 32, 0, b"r"), batch[0]]  # fmt: skip
    frames = [encode(auth.seal(m)) for m in msgs]
    genesis = GenesisConfig.create(CHAIN, validators, 1_000, {b"a": b"b"})
    ledger = Ledger(MemoryBlockStore(), ContractRegistry((KvContract(),)), genesis)
    block, _ = ledger.commit(txs, 2_000, proposer=0, view=0)
    frames += [encode(tx) for tx in txs]
    frames += [encode(block), encode(BlocksReply(1, (block,), (None,)))]
    frames += [encode(SyncStatus(1, b"\x04" * 32, 0)), encode(FetchBlocks(1, 1, 2))]
    return frames


# -- targets -----------------------------------------------------------------------------


@dataclass
class Targets:
    """The decoders under test, as a remote peer or client reaches them."""

    authenticator: Authenticator
    wire_types: dict[str, type[Any]]
    member_keys: list[Ed25519PrivateKey]
    sync_types: dict[str, type[Any]] = field(
        default_factory=lambda: {wire_name(c): c for c in (SyncStatus, FetchBlocks, BlocksReply)}
    )
    replica: ReplicaState | None = None
    member_frames: int = 0

    def process_member_body(self, body: bytes) -> None:
        """A byzantine member (replica 0) signs ``body`` and sends it to replica 1's PBFT.

        The signature is genuine, so the body reaches the consensus handlers; the
        replica state is renewed every 500 frames to keep memory bounded.
        """
        if self.replica is None or self.member_frames % 500 == 0:
            config = PbftConfig(CHAIN, self.authenticator_validators())
            self.replica = new_replica_state(config, 1, self.member_keys[1])
        self.member_frames += 1
        digest = hash_bytes(ENVELOPE_TAG, body)
        sig = self.member_keys[0].sign(ENVELOPE_TAG, encode([CHAIN, digest]))
        pbft.on_frame(self.replica, encode(SignedEnvelope(0, body, sig)), 10_000)

    def authenticator_validators(self) -> tuple[Validator, ...]:
        return tuple(Validator(i, k.public_key.raw) for i, k in enumerate(self.member_keys))

    def process_frame(self, frame: bytes) -> None:
        """The replica's frame dispatch: envelope -> PBFT message, or a sync message."""
        value = decode(frame)
        kind = value.get(TYPE_KEY) if isinstance(value, dict) else None
        if kind == wire_name(SignedEnvelope):
            self.authenticator.open(from_value(SignedEnvelope, value))
        elif kind in self.sync_types:
            from_value(self.sync_types[kind], value)

    def process_envelope_body(self, frame: bytes) -> None:
        """A body as if it had been signed by a member: the tagged-union message decoder."""
        decode_message(frame)

    def process_envelope(self, frame: bytes) -> None:
        self.authenticator.open(decode_envelope(frame))

    def process_transaction(self, frame: bytes) -> None:
        verify_transaction_signature(decode_as(Transaction, frame))

    def process_block(self, frame: bytes) -> None:
        decode_as(Block, frame)


GENERIC_TARGETS: tuple[str, ...] = (
    "process_frame",
    "process_envelope_body",
    "process_envelope",
    "process_transaction",
    "process_block",
)
ENCODING_ONLY = frozenset({"process_envelope_body", "process_block", "decode_as"})


def make_targets() -> Targets:
    import_all_modules()
    keys = [Ed25519PrivateKey(bytes([i + 1]) * 32) for i in range(4)]
    validators = tuple(Validator(i, k.public_key.raw) for i, k in enumerate(keys))
    return Targets(Authenticator(CHAIN, validators), get_wire_types(), keys)


# -- mutations ---------------------------------------------------------------------------


def compute_byte_mutation(data: bytes, rnd: random.Random, samples: list[bytes]) -> bytes:
    """One to four byte-level edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(7)
        pos = rnd.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[pos % len(buf)] ^= 1 << rnd.randrange(8)
        elif op == 1 and buf:
            buf[pos % len(buf)] = rnd.choice(INTERESTING_BYTES)
        elif op == 2:
            buf[pos:pos] = bytes([rnd.choice(INTERESTING_BYTES)]) * rnd.randint(1, 3)
        elif op == 3 and buf:
            del buf[pos : pos + rnd.randint(1, 8)]
        elif op == 4:
            del buf[pos:]
        elif op == 5:
            other = rnd.choice(samples)
            start = rnd.randrange(len(other) + 1)
            buf[pos:pos] = other[start : start + rnd.randint(1, 64)]
        else:
            width = rnd.choice((1, 2, 4, 8))
            buf[pos : pos + width] = rnd.randbytes(width)
    return bytes(buf)


def _paths(value: Any, depth: int = 0) -> Iterator[tuple[Any, Any]]:
    """(container, key) pairs of every nested slot in a decoded value (bounded)."""
    if depth > 8:
        return
    if isinstance(value, dict):
        for k in list(value):
            yield value, k
            yield from _paths(value[k], depth + 1)
    elif isinstance(value, list):
        for i in range(min(len(value), 8)):
            yield value, i
            yield from _paths(value[i], depth + 1)


def compute_structural_mutation(value: Any, rnd: random.Random, names: list[str]) -> Any:
    """A copy of a decoded value with one or two slots changed (type tags above all)."""
    value = copy.deepcopy(value)
    for _ in range(rnd.randint(1, 2)):
        slots = list(_paths(value))
        if not slots:
            return compute_random_value(rnd)
        tagged = [(c, k) for c, k in slots if k == TYPE_KEY]
        op = rnd.randrange(6)
        if op <= 1 and tagged:
            container, key = rnd.choice(tagged)
            container[key] = copy.deepcopy(rnd.choice(WRONG_TAGS)) if op == 0 else rnd.choice(names)
            continue
        container, key = rnd.choice(slots)
        if op == 2 and isinstance(container, dict):
            del container[key]
        elif op == 3 and isinstance(container, dict):
            container[rnd.choice(("extra", "_t2", "signature"))] = compute_random_value(rnd)
        else:
            container[key] = compute_random_value(rnd)
    return value


def _to_bytes(value: Any) -> bytes:
    try:
        return encode(value)
    except EncodingError:
        return cbor_dumps_raw(value)


def cbor_dumps_raw(value: Any) -> bytes:
    """Plain (canonical) CBOR without the data-model checks: feeds e.g. a list as ``_t``."""
    import cbor2

    return bytes(cbor2.dumps(value, canonical=True))


@dataclass
class Corpus:
    """Seeds for mutation: encodings of every wire type plus real protocol frames."""

    samples: list[bytes]
    values: list[Any]
    names: list[str]

    @classmethod
    def build(cls, targets: Targets, rnd: random.Random) -> Corpus:
        names = sorted(targets.wire_types)
        values = [compute_dataclass_value(targets.wire_types[n], rnd) for n in names]
        values = [v for v in values if _encodable(v)]
        protocol = compute_protocol_samples()
        values += [decode(f) for f in protocol]
        samples = [encode(v) for v in values]
        return cls(samples, values, names)

    def get_input(self, i: int, rnd: random.Random) -> bytes:
        kind = i % 4
        if kind == 0:
            size = rnd.choice((0, 1, 2, 3, 5, 9, 17, 40, 100, rnd.randrange(4096)))
            return rnd.randbytes(size)
        if kind == 1:
            return compute_byte_mutation(rnd.choice(self.samples), rnd, self.samples)
        return _to_bytes(compute_structural_mutation(rnd.choice(self.values), rnd, self.names))


def _encodable(value: Any) -> bool:
    try:
        encode(value)
    except EncodingError:
        return False
    return True


# -- the run -----------------------------------------------------------------------------


@dataclass
class Report:
    inputs: int = 0
    calls: int = 0
    accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, bytes, str]] = field(default_factory=list)
    seconds: float = 0.0
    memory_growth: int = 0
    peak_memory: int = 0


def _call(report: Report, name: str, fn: Callable[[bytes], object], data: bytes) -> None:
    report.calls += 1
    try:
        fn(data)
    except EncodingError:
        report.errors["EncodingError"] += 1
        return
    except GridledgerError as exc:
        if name in ENCODING_ONLY:
            report.failures.append((name, data, f"{type(exc).__name__}: {exc.reason}"))
        report.errors[type(exc).__name__] += 1
        return
    except Exception as exc:  # the bug class this script exists to find
        report.failures.append((name, data, f"{type(exc).__name__}: {exc}"))
        return
    report.accepted += 1


def run_fuzz(
    inputs: int, seed: int = 1, *, max_seconds: float = 3600.0, progress: bool = False
) -> Report:
    """Feed ``inputs`` generated inputs to every target; stop early after ``max_seconds``."""
    rnd = random.Random(seed)
    targets = make_targets()
    corpus = Corpus.build(targets, rnd)
    classes = [targets.wire_types[n] for n in corpus.names]
    report = Report()
    start = time.monotonic()
    warmup = max(1, min(inputs // 10, 20_000))
    baseline = 0
    tracemalloc.start()
    try:
        for i in range(inputs):
            if i == warmup:
                baseline = tracemalloc.get_traced_memory()[0]
            data = corpus.get_input(i, rnd)
            report.inputs += 1
            for name in GENERIC_TARGETS:
                _call(report, name, getattr(targets, name), data)
            for cls in (classes[i % len(classes)], rnd.choice(classes)):
                _call(report, "decode_as", functools.partial(decode_as, cls), data)
            if i % 4 == 3:  # structural mutations: decodable bodies, signed by a member
                _call(report, "process_member_body", targets.process_member_body, data)
            if len(report.failures) >= 20 or time.monotonic() - start > max_seconds:
                break
            if progress and i and i % 100_000 == 0:
                rate = i / (time.monotonic() - start)
                print(f"  {i:>9,} inputs, {rate:,.0f}/s, failures {len(report.failures)}")
        current, report.peak_memory = tracemalloc.get_traced_memory()
        report.memory_growth = current - baseline if report.inputs > warmup else 0
    finally:
        tracemalloc.stop()
    report.seconds = time.monotonic() - start
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("--max-growth-kb", type=int, default=2048)
    args = parser.parse_args(argv)
    print(f"fuzzing decoders: {args.inputs:,} inputs, seed {args.seed}")
    report = run_fuzz(args.inputs, args.seed, max_seconds=args.max_seconds, progress=True)
    print(f"inputs          {report.inputs:,} in {report.seconds:.1f} s "
          f"({report.inputs / max(report.seconds, 1e-9):,.0f}/s)")  # fmt: skip
    print(f"decoder calls   {report.calls:,} ({report.accepted:,} accepted)")
    for name, count in report.errors.most_common():
        print(f"  typed {name:<20} {count:,}")
    print(f"memory          growth after warm-up {report.memory_growth / 1024:,.0f} KiB, "
          f"peak {report.peak_memory / 1024:,.0f} KiB (tracemalloc)")  # fmt: skip
    for name, data, what in report.failures:
        print(f"UNTYPED in {name}: {what}\n  input {data[:200].hex()}")
    ok = not report.failures and report.memory_growth < args.max_growth_kb * 1024
    print("result          " + ("OK: only typed errors, memory flat" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
