"""Seed 001's Table 1 attack experiment on a running 4-replica consortium.

Seed 001 reports the share of 1,000 attempts per attack that got through its
protections (message tampering 0.3 %, DoS 0.5 %, identity forgery 0.2 %) but
not how the attacks were mounted. Here each is defined concretely (the
reproduction plan of ``papers_features.md`` §7.4) and run against four replicas
in this process over TCP on 127.0.0.1, with their client APIs:

- **Message tampering**, two halves. *At submission*: a signed transaction
  altered by an attacker (payload, nonce, kind, signature, or a raw bit of its
  encoding) and sent to every replica's API; success = a receipt with status
  ``committed``. *In flight*: a relay sits on the link from replica 0 to
  replica 1 and flips one random bit in one sealed frame per connection
  (after the handshake); success = a tampered frame that replica 1 did not
  refuse (it counts every refusal by reason).
- **DoS**: while flooders hit every replica's peer port (idle connections,
  garbage bytes, signed-looking hellos under a stranger's key) and API port
  (garbage lines, malformed and deeply nested JSON, well-formed submits of
  badly signed transactions), an honest client submits transactions; an
  attempt is one honest transaction, success = not committed within the
  deadline (seed 001's definition as read in §7.4). Committed throughput of
  the honest client during the flood is set against a quiet round.
- **Identity forgery**, two halves: a transaction naming a victim's key as
  sender, signed by the attacker (success = committed), and a peer handshake
  claiming a replica id under a key not in the validator set (success = the
  replica answers with a welcome).

Usage: ``python benchmarks/attacks.py [--attempts 1000] [--seconds 5]
[--verify-on-submit] [--floods peer,api]`` (the replicas' admission check of
signatures, off by default; ``--floods`` narrows the DoS round to one port).
Every loop is bounded by a count and a deadline. The attacker runs in the same
process and event loop as the replicas, so the DoS round also measures the
CPU the flood takes from them on this 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from tests.node.helpers import make_consortium

from _common import machine_note, markdown_table
from gridledger.consensus.tcp import (
    HelloBody,
    TcpChallenge,
    TcpTransport,
    compute_hello,
    encode_frame,
    read_frame,
)
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.contracts_builtin import KV_SET_KIND, KvSet
from gridledger.ledger.tx import TX_SIGNATURE_TAG, Transaction, TransactionBody
from gridledger.node.client import ClientError, ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.replica import Replica

PAPER = {"tampering": (39.6, 0.3), "dos": (29.2, 0.5), "forgery": (13.9, 0.2)}
BATCH = 100
VERIFY_ON_SUBMIT = [False]  # --verify-on-submit: replicas check signatures at admission
FLOODS = {"peer", "api"}  # --floods narrows the DoS round to one port, for diagnosis
DEADLINE_S = 10.0


@dataclass
class Outcome:
    attempts: int = 0
    successes: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, attempts: int, successes: int) -> None:
        self.attempts += attempts
        self.successes += successes

    @property
    def rate(self) -> float:
        return 100.0 * self.successes / max(self.attempts, 1)


def _key(label: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey(label.encode().ljust(32, b".")[:32])


def _signed(chain: str, key: Ed25519PrivateKey, nonce: int, k: bytes, v: bytes) -> Transaction:
    return Transaction.create(chain, KV_SET_KIND, KvSet(k, v), key, nonce)


def compute_tampered(tx: Transaction, i: int, rnd: random.Random) -> bytes:
    """One of five alterations of a signed transaction, chosen by ``i``."""
    op = i % 5
    if op == 0:
        payload = encode(KvSet(b"t%d" % i, b"tampered"))
        return encode(Transaction(tx.chain_id, tx.kind, payload, tx.sender, tx.nonce, tx.signature))
    if op == 1:
        nonce = tx.nonce + 1
        return encode(Transaction(tx.chain_id, tx.kind, tx.payload, tx.sender, nonce, tx.signature))
    if op == 2:
        return encode(Transaction(tx.chain_id, "x" + tx.kind, tx.payload, tx.sender, tx.nonce,
                                  tx.signature))  # fmt: skip
    if op == 3:
        sig = bytearray(tx.signature)
        sig[rnd.randrange(64)] ^= 1 << rnd.randrange(8)
        return encode(Transaction(tx.chain_id, tx.kind, tx.payload, tx.sender, tx.nonce,
                                  bytes(sig)))  # fmt: skip
    raw = bytearray(encode(tx))
    raw[rnd.randrange(len(raw))] ^= 1 << rnd.randrange(8)
    return bytes(raw)


async def _submit_count_committed(client: ConsortiumClient, payloads: list[bytes]) -> int:
    """Submit in batches; how many came back ``committed`` (f+1 agreed)."""
    committed = 0
    for start in range(0, len(payloads), BATCH):
        batch = payloads[start : start + BATCH]
        try:
            receipts = await client.submit(batch, timeout=DEADLINE_S)
        except ClientError:
            continue
        committed += sum(1 for r in receipts if r.get("status") == "committed")
    return committed


# -- tampering ---------------------------------------------------------------------------


class TamperingRelay:
    """Sits on one replica link; flips one bit of one sealed frame per connection."""

    def __init__(self, upstream_port: int, rnd: random.Random, budget: int) -> None:
        self.upstream_port = upstream_port
        self.rnd = rnd
        self.budget = budget
        self.tampered = 0
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _on_connection(self, c_reader: Any, c_writer: Any) -> None:
        try:
            a_reader, a_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.close()
            return

        async def back() -> None:  # acceptor -> connector, untouched
            with contextlib.suppress(Exception):
                while chunk := await a_reader.read(65536):
                    c_writer.write(chunk)
                    await c_writer.drain()
            c_writer.close()

        back_task = asyncio.create_task(back())
        skip = self.rnd.randrange(4)
        with contextlib.suppress(Exception):
            index = 0
            while True:
                header = await c_reader.readexactly(4)
                body = bytearray(await c_reader.readexactly(int.from_bytes(header, "big")))
                # frame 0 is the hello; frames 1.. are sealed
                if index == 1 + skip and self.tampered < self.budget and len(body) > 8:
                    bit = self.rnd.randrange(8 * len(body))
                    body[bit // 8] ^= 1 << (bit % 8)
                    self.tampered += 1
                    a_writer.write(header + bytes(body))
                    await a_writer.drain()
                    # refused = the acceptor hangs up; still open after 2 s = got through
                    try:
                        await asyncio.wait_for(asyncio.shield(back_task), 2.0)
                    except TimeoutError:
                        self.accepted += 1
                    break
                a_writer.write(header + bytes(body))
                await a_writer.drain()
                index += 1
        a_writer.close()
        c_writer.close()
        back_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await back_task


async def run_tampering(
    replicas: list[Replica], relay: TamperingRelay, client: ConsortiumClient, attempts: int
) -> tuple[Outcome, Outcome]:
    chain = replicas[0].config.chain_id
    rnd = random.Random(1)
    key = _key("tamper-victim")
    half = attempts // 2
    txs = [_signed(chain, key, i + 1, b"t%d" % i, b"honest") for i in range(half)]
    at_submission = Outcome()
    committed = await _submit_count_committed(
        client, [compute_tampered(tx, i, rnd) for i, tx in enumerate(txs)]
    )
    at_submission.add(half, committed)

    in_flight = Outcome()
    target = replicas[1].transport
    assert isinstance(target, TcpTransport)
    load_key = _key("tamper-load")
    nonce = 0
    deadline = time.monotonic() + 120
    while relay.tampered < attempts - half and time.monotonic() < deadline:
        batch = [_signed(chain, load_key, nonce + j + 1, b"l%d" % j, b"v") for j in range(20)]
        nonce += 20
        with contextlib.suppress(ClientError):
            await client.submit([encode(tx) for tx in batch], timeout=DEADLINE_S)
    await asyncio.sleep(2.5)  # the last tampered connection's verdict
    in_flight.add(relay.tampered, relay.accepted)
    in_flight.notes.append(f"refusals by reason at replica 1: {target.get_frame_failures()}")
    return at_submission, in_flight


# -- DoS -----------------------------------------------------------------------------------


async def _honest_load(
    client: ConsortiumClient, chain: str, label: str, count: int, seconds: float
) -> tuple[int, int, float]:
    """Submit up to ``count`` transactions for up to ``seconds``, in batches of 20 from 4
    tasks; returns (sent, committed, elapsed seconds)."""
    key = _key(label)
    txs = [_signed(chain, key, i + 1, b"%s%d" % (label.encode(), i), b"v") for i in range(count)]
    queue = [encode(tx) for tx in txs]
    sent = committed = 0
    start = time.monotonic()

    async def worker(w: int) -> None:
        nonlocal sent, committed
        for lo in range(w * 20, len(queue), 80):
            if time.monotonic() - start > seconds and sent > 0:
                return
            batch = queue[lo : lo + 20]
            sent += len(batch)
            try:
                receipts = await client.submit(batch, timeout=DEADLINE_S)
            except ClientError:
                continue
            committed += sum(1 for r in receipts if r.get("status") == "committed")

    await asyncio.gather(*(worker(w) for w in range(4)))
    return sent, committed, time.monotonic() - start


@dataclass
class FloodStats:
    peer_connections: int = 0
    api_requests: int = 0


async def _flood_peer(
    port: int, chain: str, claimed: int, stop: asyncio.Event, s: FloodStats
) -> None:
    stranger = _key("stranger")
    rnd = random.Random(port)
    idle: list[Any] = []
    while not stop.is_set() and s.peer_connections < 100_000:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        s.peer_connections += 1
        kind = s.peer_connections % 3
        with contextlib.suppress(Exception):
            if kind == 0:
                idle.append(writer)  # say nothing; the replica evicts or times it out
                if len(idle) > 200:
                    idle.pop(0).close()
            elif kind == 1:
                writer.write(rnd.randbytes(rnd.randrange(1, 300)))
                await writer.drain()
                writer.close()
            else:
                challenge = decode_as(TcpChallenge, await read_frame(reader, 1024))
                eph = X25519PrivateKey.generate().public_key().public_bytes_raw()
                body = HelloBody(chain, claimed, challenge.acceptor, challenge.challenge,
                                 bytes(32), challenge.ephemeral, eph)  # fmt: skip
                writer.write(encode_frame(compute_hello(stranger, body)))
                await writer.drain()
                writer.close()
        await asyncio.sleep(0.002)
    for w in idle:
        w.close()


async def _flood_api(port: int, chain: str, stop: asyncio.Event, s: FloodStats) -> None:
    rnd = random.Random(port)
    forger = _key("api-forger")
    lines = [
        b"\x00\xff garbage\n",
        b"{not json\n",
        b"[" * 5000 + b"\n",
        json.dumps({"id": 1, "method": ["status"], "params": {}}).encode() + b"\n",
        json.dumps({"id": 1, "method": "submit", "params": {"txs": "zz"}}).encode() + b"\n",
    ]
    while not stop.is_set() and s.api_requests < 200_000:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        with contextlib.suppress(Exception):
            for _ in range(20):
                if rnd.random() < 0.5:
                    line = rnd.choice(lines)
                else:  # valid-looking: a well-formed submit of a badly signed transaction
                    tx = _signed(chain, forger, rnd.randrange(1, 2**40), b"f", b"x")
                    bad = Transaction(tx.chain_id, tx.kind, tx.payload, tx.sender, tx.nonce,
                                      bytes(64))  # fmt: skip
                    params = {"txs": [encode(bad).hex()], "wait": False}
                    line = json.dumps({"id": 2, "method": "submit", "params": params}).encode()
                    line += b"\n"
                writer.write(line)
                s.api_requests += 1
            await writer.drain()
        writer.close()
        await asyncio.sleep(0.005)


async def run_dos(
    replicas: list[Replica], client: ConsortiumClient, attempts: int, seconds: float
) -> tuple[Outcome, dict[str, float], FloodStats]:
    chain = replicas[0].config.chain_id
    q_sent, q_committed, q_time = await _honest_load(client, chain, "quiet", 20_000, seconds)
    stop = asyncio.Event()
    stats = FloodStats()
    floods = []
    for i, r in enumerate(replicas):
        assert isinstance(r.transport, TcpTransport)
        if "peer" in FLOODS:
            floods.append(_flood_peer(r.transport.port, chain, (i + 1) % 4, stop, stats))
        if "api" in FLOODS:
            floods.append(_flood_api(r.api.port, chain, stop, stats))
    tasks = [asyncio.create_task(f) for f in floods]
    await asyncio.sleep(0.5)  # let the flood build up first
    d_sent, d_committed, d_time = await _honest_load(client, chain, "dos", attempts, 300)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    outcome = Outcome()
    outcome.add(d_sent, d_sent - d_committed)
    rates = {
        "quiet_tps": q_committed / q_time,
        "dos_tps": d_committed / d_time,
        "quiet_sent": q_sent,
        "dos_sent": d_sent,
    }
    return outcome, rates, stats


# -- identity forgery ----------------------------------------------------------------------


async def run_forgery(
    replicas: list[Replica], client: ConsortiumClient, attempts: int
) -> tuple[Outcome, Outcome]:
    chain = replicas[0].config.chain_id
    victim = _key("forgery-victim").public_key.raw
    attacker = _key("forgery-attacker")
    half = attempts // 2
    forged = []
    for i in range(half):
        body = TransactionBody(chain, KV_SET_KIND, encode(KvSet(b"v%d" % i, b"mine")), victim, i)
        sig = attacker.sign(TX_SIGNATURE_TAG, encode(body))
        forged.append(encode(Transaction(chain, KV_SET_KIND, body.payload, victim, i, sig)))
    as_sender = Outcome()
    as_sender.add(half, await _submit_count_committed(client, forged))

    as_replica = Outcome()
    for i in range(attempts - half):
        target = replicas[i % 4]
        claimed = (i + 1 + i // 4) % 4
        if claimed == i % 4:
            claimed = (claimed + 1) % 4
        assert isinstance(target.transport, TcpTransport)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", target.transport.port)
        except OSError:
            continue
        welcomed = False
        with contextlib.suppress(Exception):
            challenge = decode_as(TcpChallenge, await read_frame(reader, 1024))
            eph = X25519PrivateKey.generate().public_key().public_bytes_raw()
            hello = HelloBody(chain, claimed, challenge.acceptor, challenge.challenge,
                              bytes(32), challenge.ephemeral, eph)  # fmt: skip
            writer.write(encode_frame(compute_hello(attacker, hello)))
            await writer.drain()
            welcomed = bool(await asyncio.wait_for(reader.read(1), 5.0))
        writer.close()
        as_replica.add(1, int(welcomed))
    return as_sender, as_replica


# -- the run -------------------------------------------------------------------------------


async def run(attempts: int, seconds: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        layout = make_consortium(Path(tmp) / "c")
        replicas = [
            Replica(load_config(p), synchronous="NORMAL", verify_on_submit=VERIFY_ON_SUBMIT[0])
            for p in layout.configs
        ]
        relay_budget = attempts - attempts // 2
        link = replicas[1].transport
        assert isinstance(link, TcpTransport) and isinstance(replicas[0].transport, TcpTransport)
        relay = TamperingRelay(link.listen[1], random.Random(2), relay_budget)
        replicas[0].transport.set_peer_address(1, "127.0.0.1", await relay.start())
        for r in replicas:
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            await _honest_load(client, layout.chain_id, "warmup", 100, 10)
            t_sub, t_flight = await run_tampering(replicas, relay, client, attempts)
            forgery_tx, forgery_peer = await run_forgery(replicas, client, attempts)
            dos, rates, stats = await run_dos(replicas, client, attempts, seconds)
            heights = {r.ledger.height for r in replicas}
        finally:
            await client.close()
            for r in replicas:
                await r.stop()
            if relay.server is not None:
                relay.server.close()
    tampering = Outcome()
    tampering.add(t_sub.attempts + t_flight.attempts, t_sub.successes + t_flight.successes)
    forgery = Outcome()
    forgery.add(forgery_tx.attempts + forgery_peer.attempts,
                forgery_tx.successes + forgery_peer.successes)  # fmt: skip
    rows = [
        ["seed 001, without privacy protection", "39.6", "29.2", "13.9"],
        ["seed 001, with privacy protection", "0.3", "0.5", "0.2"],
        [
            f"gridledger ({tampering.attempts} / {dos.attempts} / {forgery.attempts} attempts)",
            f"{tampering.rate:.1f} ({tampering.successes})",
            f"{dos.rate:.1f} ({dos.successes})",
            f"{forgery.rate:.1f} ({forgery.successes})",
        ],
    ]
    detail = [
        ["tampering at submission (API)", t_sub.attempts, t_sub.successes],
        ["tampering in flight (replica link, one bit flipped)", t_flight.attempts,
         t_flight.successes],
        ["DoS: honest transactions not committed within 10 s", dos.attempts, dos.successes],
        ["forgery: transaction under a victim's key", forgery_tx.attempts, forgery_tx.successes],
        ["forgery: handshake claiming a replica id", forgery_peer.attempts,
         forgery_peer.successes],
    ]  # fmt: skip
    ratio = rates["dos_tps"] / max(rates["quiet_tps"], 1e-9)
    lines = [
        "## Attacks: seed 001 Table 1 (success rate %, successes in brackets)",
        "",
        f"Machine: {machine_note()}. Four replicas and the attacker in one process;",
        f"replicas verify signatures at admission: {VERIFY_ON_SUBMIT[0]}.",
        "",
        markdown_table(["experiment", "message tampering", "DoS", "identity forgery"], rows),
        "",
        markdown_table(["attack", "attempts", "successes"], detail),
        "",
        markdown_table(
            ["round", "honest committed tx/s", "ratio"],
            [
                ["quiet", f"{rates['quiet_tps']:.0f}", "1.00"],
                [
                    f"DoS ({stats.peer_connections:,} peer connections, "
                    f"{stats.api_requests:,} API requests)",
                    f"{rates['dos_tps']:.0f}",
                    f"{ratio:.2f}",
                ],
            ],
        ),
        "",
        f"Heights at the end: {sorted(heights)}. {t_flight.notes[0] if t_flight.notes else ''}.",
        f"API tracebacks logged during the run: {count_tracebacks()}.",
    ]
    return "\n".join(lines)


LOG_FILE = Path(tempfile.gettempdir()) / f"gridledger-attacks-{os.getpid()}.log"


def count_tracebacks() -> int:
    """Tracebacks the replicas logged (e.g. the API's on deeply nested JSON)."""
    try:
        return LOG_FILE.read_text(errors="replace").count("Traceback")
    except OSError:
        return 0


def main() -> int:
    logging.basicConfig(filename=LOG_FILE, level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--floods", default="peer,api")
    parser.add_argument("--verify-on-submit", action="store_true")
    args = parser.parse_args()
    VERIFY_ON_SUBMIT[0] = args.verify_on_submit
    FLOODS.intersection_update(args.floods.split(","))
    try:
        print(asyncio.run(asyncio.wait_for(run(args.attempts, args.seconds), 1200)))
    finally:
        LOG_FILE.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
