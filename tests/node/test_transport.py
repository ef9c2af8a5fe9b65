"""The transport contract, run against the in-memory hub and asyncio TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridledger.consensus.tcp import (
    ConnectorState,
    HelloBody,
    Session,
    TcpChallenge,
    TcpTransport,
    compute_hello,
    encode_frame,
    process_welcome,
    read_frame,
)
from gridledger.consensus.transport import MemoryHub, Transport, TransportError
from gridledger.crypto.encoding import decode_as
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.ledger.certificate import Validator

Received = dict[int, list[tuple[int, bytes]]]


CHAIN = "test-chain"


def make_keys(n: int) -> list[Ed25519PrivateKey]:
    """Deterministic replica keys 0..n-1."""
    rng = DeterministicRng("test-transport")
    return [Ed25519PrivateKey.generate(rng) for _ in range(n)]


def make_validators(keys: list[Ed25519PrivateKey]) -> tuple[Validator, ...]:
    return tuple(Validator(i, k.public_key.raw) for i, k in enumerate(keys))


def new_tcp(i: int, keys: list[Ed25519PrivateKey], port: int = 0, **kwargs: Any) -> TcpTransport:
    """Replica ``i`` of ``len(keys)`` on 127.0.0.1 (peer addresses set later)."""
    return TcpTransport(
        i,
        kwargs.pop("chain_id", CHAIN),
        ("127.0.0.1", port),
        {j: ("127.0.0.1", 1) for j in range(len(keys))},
        key=keys[i],
        validators=make_validators(keys),
        **kwargs,
    )


async def make_tcp_cluster(n: int, **kwargs: Any) -> list[TcpTransport]:
    keys = make_keys(n)
    transports = [new_tcp(i, keys, **kwargs) for i in range(n)]
    for t in transports:
        await t.start()
    for t in transports:
        for other in transports:
            if other is not t:
                t.set_peer_address(other.node_id, "127.0.0.1", other.port)
    return transports


async def _make_tcp(n: int) -> list[Transport]:
    return list(await make_tcp_cluster(n))


async def raw_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    key: Ed25519PrivateKey,
    *,
    sender: int,
    receiver: int,
    chain_id: str = CHAIN,
) -> tuple[bytes, ConnectorState]:
    """Play the connector's side by hand (any key, any claimed id); the hello sent and state."""
    challenge = decode_as(TcpChallenge, await read_frame(reader, 1024))
    ephemeral = X25519PrivateKey.generate()
    body = HelloBody(
        chain_id,
        sender,
        receiver,
        challenge.challenge,
        bytes(32),
        challenge.ephemeral,
        ephemeral.public_key().public_bytes_raw(),
    )
    hello = compute_hello(key, body)
    writer.write(encode_frame(hello))
    await writer.drain()
    return hello, ConnectorState(body, ephemeral)


async def raw_connect(
    port: int, keys: list[Ed25519PrivateKey], *, sender: int = 0, receiver: int = 1, **kw: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, Session]:
    """A hand-driven genuine connector: the socket and the session keys it agreed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, **kw)
    _, state = await raw_handshake(reader, writer, keys[sender], sender=sender, receiver=receiver)
    welcome = await read_frame(reader, 1024)
    return reader, writer, process_welcome(state, welcome, keys[receiver].public_key)


async def _make_memory(n: int) -> list[Transport]:
    hub = MemoryHub()
    transports: list[Transport] = [hub.attach(i) for i in range(n)]
    for t in transports:
        await t.start()
    return transports


FACTORIES: dict[str, Callable[[int], Awaitable[list[Transport]]]] = {
    "memory": _make_memory,
    "tcp": _make_tcp,
}


async def _wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_send_and_broadcast_arrive_in_order(kind: str) -> None:
    async def scenario() -> None:
        transports = await FACTORIES[kind](4)
        got: Received = {t.node_id: [] for t in transports}
        for t in transports:
            t.set_receiver(lambda s, f, me=t.node_id: got[me].append((s, f)))
        try:
            for i in range(100):
                transports[0].send(1, b"m%d" % i)
            transports[2].broadcast(b"hello")
            await _wait_for(lambda: len(got[1]) == 101 and len(got[0]) == 1 and len(got[3]) == 1)
            assert [f for s, f in got[1] if s == 0] == [b"m%d" % i for i in range(100)]
            assert (2, b"hello") in got[1]
            assert got[2] == []
        finally:
            for t in transports:
                await t.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_tcp_reconnects_after_peer_restart() -> None:
    async def scenario() -> None:
        a, b = await make_tcp_cluster(2)
        got: list[bytes] = []
        b.set_receiver(lambda s, f: got.append(f))
        port_b = b.port
        a.send(1, b"first")
        await _wait_for(lambda: got == [b"first"])
        await b.close()
        b2 = new_tcp(1, make_keys(2), port_b)
        b2.set_receiver(lambda s, f: got.append(f))
        await b2.start()

        async def keep_sending() -> None:
            while b"again" not in got:
                a.send(1, b"again")
                await asyncio.sleep(0.05)

        await asyncio.wait_for(keep_sending(), 10)
        await a.close()
        await b2.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_tcp_refuses_oversized_frames() -> None:
    async def scenario() -> None:
        a, b = await make_tcp_cluster(2)
        with pytest.raises(TransportError):
            a.send(1, bytes(a.max_frame + 1))
        # an authenticated raw client that announces a huge frame is disconnected
        reader, writer, _ = await raw_connect(b.port, make_keys(2))
        writer.write((b.max_frame + 100).to_bytes(4, "big"))
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert b.get_frame_failures() == {"oversize": 1}
        await a.close()
        await b.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
