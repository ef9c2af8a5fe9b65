"""The authenticated TCP handshake: genuine peers get through, spoofers and replays do not."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from gridledger.consensus.tcp import (
    TcpChallenge,
    TcpHello,
    compute_welcome,
    encode_frame,
    read_frame,
)
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from tests.node.test_transport import (
    CHAIN,
    make_keys,
    make_tcp_cluster,
    new_tcp,
    raw_handshake,
)

Got = list[tuple[int, bytes]]


async def _wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _is_closed_by_peer(reader: asyncio.StreamReader, timeout: float = 5.0) -> bool:
    """True once the other side closes the connection (EOF or reset), within ``timeout``."""
    try:
        while await asyncio.wait_for(reader.read(65536), timeout):
            pass
    except (ConnectionError, OSError):
        pass
    return True


async def _send_frames(writer: asyncio.StreamWriter, frames: list[bytes]) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        writer.writelines(encode_frame(f) for f in frames)
        await writer.drain()


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_genuine_peers_authenticate_and_exchange_frames() -> None:
    async def scenario() -> None:
        a, b = await make_tcp_cluster(2)
        got_a: Got = []
        got_b: Got = []
        a.set_receiver(lambda s, f: got_a.append((s, f)))
        b.set_receiver(lambda s, f: got_b.append((s, f)))
        try:
            a.send(1, b"ping")
            b.send(0, b"pong")
            await _wait_for(lambda: got_b == [(0, b"ping")] and got_a == [(1, b"pong")])
            assert a.get_connected_peers() == [1] and b.get_connected_peers() == [0]
            assert a.get_auth_failures() == {} and b.get_auth_failures() == {}
        finally:
            await a.close()
            await b.close()

    run(scenario)


def test_claiming_another_replicas_id_without_its_key_is_refused() -> None:
    async def scenario() -> None:
        b = new_tcp(1, make_keys(3))
        await b.start()
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        attacker = Ed25519PrivateKey.generate(DeterministicRng("attacker"))
        try:
            for claimed in (0, 2, 7):
                reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
                await raw_handshake(reader, writer, attacker, sender=claimed, receiver=1)
                await _send_frames(writer, [b"SyncStatus height=10^12"] * 3)
                assert await _is_closed_by_peer(reader)
                writer.close()
            await asyncio.sleep(0.1)
            assert all(f != b"SyncStatus height=10^12" for _, f in got)
            failures = b.get_auth_failures()
            assert failures.get("bad-signature") == 2
            assert failures.get("unknown-replica") == 1
        finally:
            await b.close()

    run(scenario)


def test_replayed_hello_is_refused_on_a_new_connection() -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys)
        await b.start()
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        try:
            # a genuine handshake by replica 0, whose hello an eavesdropper records
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            captured = await raw_handshake(reader, writer, keys[0], sender=0, receiver=1)
            await read_frame(reader, 1024)  # the welcome
            await _send_frames(writer, [b"genuine"])
            await _wait_for(lambda: got == [(0, b"genuine")])
            writer.close()
            # the replay: a fresh connection gets a fresh challenge, the old hello fails it
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            challenge = decode_as(TcpChallenge, await read_frame(reader, 1024))
            assert challenge.challenge != decode_as(TcpHello, captured).body.acceptor_challenge
            writer.write(encode_frame(captured))
            await _send_frames(writer, [b"replayed"])
            assert await _is_closed_by_peer(reader)
            writer.close()
            await asyncio.sleep(0.1)
            assert got == [(0, b"genuine")]
            assert b.get_auth_failures() == {"wrong-challenge": 1}
        finally:
            await b.close()

    run(scenario)


def test_wrong_chain_id_is_refused() -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys)
        other = new_tcp(0, keys, chain_id="other-chain")  # same keys, another consortium
        await b.start()
        await other.start()
        other.set_peer_address(1, "127.0.0.1", b.port)
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        try:
            # a hand-made hello for another chain, correctly signed, is refused by b
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            await raw_handshake(
                reader, writer, keys[0], sender=0, receiver=1, chain_id="other-chain"
            )
            await _send_frames(writer, [b"cross-chain"])
            assert await _is_closed_by_peer(reader)
            writer.close()
            assert b.get_auth_failures() == {"wrong-chain": 1}
            # a whole transport of the other chain never connects (it refuses b's challenge)
            other.send(1, b"cross-chain")
            await _wait_for(lambda: other.get_auth_failures().get("wrong-chain", 0) >= 1)
            assert other.get_connected_peers() == []
            assert got == []
        finally:
            await other.close()
            await b.close()

    run(scenario)


def test_connector_refuses_an_impostor_acceptor() -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        a = new_tcp(0, keys)
        impostor_key = Ed25519PrivateKey.generate(DeterministicRng("impostor"))
        hellos: list[TcpHello] = []

        async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            """Pretends to be replica 1 but signs the welcome with its own key."""
            with contextlib.suppress(Exception):
                mine = bytes(range(32))
                writer.write(encode_frame(encode(TcpChallenge(CHAIN, 1, mine))))
                hello = decode_as(TcpHello, await read_frame(reader, 1024))
                hellos.append(hello)
                welcome = compute_welcome(
                    impostor_key, CHAIN, 1, 0, hello.body.connector_challenge, mine
                )
                writer.write(encode_frame(welcome))
                await reader.read()
            writer.close()

        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        a.set_peer_address(1, "127.0.0.1", int(server.sockets[0].getsockname()[1]))
        await a.start()
        try:
            a.send(1, b"secret")
            await _wait_for(lambda: a.get_auth_failures().get("bad-signature", 0) >= 1)
            assert a.get_connected_peers() == []
            assert hellos and hellos[0].body.receiver == 1
        finally:
            await a.close()
            server.close()

    run(scenario)


def test_silent_connection_is_dropped_after_the_timeout() -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys, handshake_timeout=0.3)
        await b.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            decode_as(TcpChallenge, await read_frame(reader, 1024))
            start = asyncio.get_running_loop().time()
            assert await _is_closed_by_peer(reader, timeout=5.0)
            assert asyncio.get_running_loop().time() - start < 3.0
            writer.close()
            assert b.get_auth_failures() == {"timeout": 1}
        finally:
            await b.close()

    run(scenario)


def test_unauthenticated_connections_are_bounded() -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys, max_pending=2, handshake_timeout=10.0)
        await b.start()
        try:
            silent = [await asyncio.open_connection("127.0.0.1", b.port) for _ in range(2)]
            for reader, _ in silent:
                await read_frame(reader, 1024)  # both got a challenge and sit on it
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            assert await _is_closed_by_peer(reader, timeout=5.0)
            writer.close()
            assert b.get_auth_failures() == {"too-many-pending": 1}
            # a genuine peer gets in once a slot is free
            for _, w in silent:
                w.close()
            await _wait_for(lambda: b._pending == 0)  # the acceptor saw both go away
            got: Got = []
            b.set_receiver(lambda s, f: got.append((s, f)))
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            await raw_handshake(reader, writer, keys[0], sender=0, receiver=1)
            await read_frame(reader, 1024)  # the welcome
            await _send_frames(writer, [b"in"])
            await _wait_for(lambda: got == [(0, b"in")])
            writer.close()
        finally:
            await b.close()

    run(scenario)
