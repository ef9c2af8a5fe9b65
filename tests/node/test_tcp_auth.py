"""The TCP transport under attack: spoofed handshakes, handshake floods, forged frames.

Each attack is played by hand over 127.0.0.1 as an outsider (no replica key)
or as an on-path attacker would; the transport must refuse it with a counted
reason, drop the connection, and keep serving the genuine peers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gridledger.consensus.messages import ENVELOPE_TAG, SignedEnvelope
from gridledger.consensus.tcp import (
    FrameError,
    FrameOpener,
    FrameSealer,
    TcpChallenge,
    TcpHello,
    TcpTransport,
    WelcomeBody,
    compute_challenge,
    compute_connector_hello,
    compute_welcome,
    encode_frame,
    process_hello,
    process_welcome,
    read_frame,
)
from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.hashing import hash_bytes
from gridledger.crypto.rng import DeterministicRng
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import load_config
from gridledger.node.core import ENGINE_CHANNEL, NODE_CHANNEL
from gridledger.node.keys import read_key
from gridledger.node.replica import Replica
from tests.node.helpers import make_consortium, make_kv_txs, wait_until
from tests.node.test_transport import (
    CHAIN,
    make_keys,
    make_tcp_cluster,
    new_tcp,
    raw_connect,
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


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() and r.levelno >= 30 for r in caplog.records)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 30))


async def _assert_genuine_peer_still_served(b: TcpTransport, got: Got, tag: bytes) -> None:
    """Replica 0 (hand-driven, genuine) connects afresh and its sealed frame arrives."""
    _, writer, session = await raw_connect(b.port, make_keys(2))
    await _send_frames(writer, [session.sealer.seal(tag)])
    await _wait_for(lambda: (0, tag) in got)
    writer.close()


# -- the handshake --------------------------------------------------------------------------


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
            assert a.get_frame_failures() == {} and b.get_frame_failures() == {}
        finally:
            await a.close()
            await b.close()

    run(scenario)


def test_sans_io_handshake_agrees_on_one_key_per_direction() -> None:
    keys = make_keys(2)
    peers = {0: keys[0].public_key}
    challenge, acceptor = compute_challenge(CHAIN, 1, DeterministicRng("a"))
    hello, connector = compute_connector_hello(
        challenge, keys[0], CHAIN, 0, 1, DeterministicRng("c")
    )
    welcome, at_acceptor = process_hello(acceptor, hello, keys[1], peers)
    at_connector = process_welcome(connector, welcome, keys[1].public_key)
    assert at_acceptor.peer == 0 and at_connector.peer == 1
    sealed = at_connector.sealer.seal(b"to the acceptor")
    assert b"to the acceptor" not in sealed
    assert at_acceptor.opener.open(sealed) == b"to the acceptor"
    back = at_acceptor.sealer.seal(b"to the connector")
    assert at_connector.opener.open(back) == b"to the connector"
    # the two directions use different keys: a frame cannot be bounced back to its sender
    reflected = at_connector.sealer.seal(b"reflect me")  # counter 1, the opener's next
    with pytest.raises(FrameError) as info:
        at_connector.opener.open(reflected)
    assert info.value.kind == "forged"


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
            assert got == []
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
            captured, state = await raw_handshake(reader, writer, keys[0], sender=0, receiver=1)
            session = process_welcome(state, await read_frame(reader, 1024), keys[1].public_key)
            await _send_frames(writer, [session.sealer.seal(b"genuine")])
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
                eph = X25519PrivateKey.generate().public_key().public_bytes_raw()
                writer.write(encode_frame(encode(TcpChallenge(CHAIN, 1, mine, eph))))
                hello = decode_as(TcpHello, await read_frame(reader, 1024))
                hellos.append(hello)
                h = hello.body
                body = WelcomeBody(
                    CHAIN, 1, 0, h.connector_challenge, mine, h.connector_ephemeral, eph
                )
                writer.write(encode_frame(compute_welcome(impostor_key, body)))
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
            assert b.get_pending_handshakes() == 0
        finally:
            await b.close()

    run(scenario)


# -- handshake floods -------------------------------------------------------------------------


async def _open_idle(port: int, count: int, source: str = "127.0.0.1") -> list[Any]:
    """``count`` connections that read the challenge and then say nothing."""
    conns = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        conns.append((reader, writer))
    return conns


def test_idle_connection_flood_never_locks_a_member_out() -> None:
    """The issue's lock-out: idle unauthenticated connections beyond the limit used to
    refuse every newcomer, the reconnecting member included."""

    async def scenario() -> None:
        a, b = await make_tcp_cluster(2, max_pending=16, max_pending_per_source=4)
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        await a.close()  # the member is away while the flood arrives
        flood: list[Any] = []
        try:
            for i in range(2, 12):  # 10 source addresses x 6 idle connections
                flood += await _open_idle(b.port, 6, f"127.0.0.{i}")
            flood += await _open_idle(b.port, 40)  # and 40 from the member's own address
            await _wait_for(lambda: b.get_auth_failures().get("evicted", 0) >= 100 - 16)
            assert b.get_pending_handshakes() <= 16
            # the member comes back and exchanges frames through the standing flood
            a2 = new_tcp(0, make_keys(2))
            a2.set_peer_address(1, "127.0.0.1", b.port)
            await a2.start()
            try:
                a2.send(1, b"back")
                await _wait_for(lambda: (0, b"back") in got)
            finally:
                await a2.close()
            assert b.get_pending_handshakes() <= 16
        finally:
            for _, w in flood:
                w.close()
            await b.close()

    run(scenario)


def test_a_flood_from_other_sources_evicts_its_own_handshakes() -> None:
    """While one address keeps opening idle connections, a member elsewhere still gets in."""

    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys, max_pending=8, max_pending_per_source=8, handshake_timeout=10.0)
        await b.start()
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        flood: list[Any] = []
        stop = asyncio.Event()

        async def keep_flooding() -> None:
            for _ in range(400):
                if stop.is_set():
                    return
                flood.extend(await _open_idle(b.port, 1, "127.0.0.9"))
                await asyncio.sleep(0.002)

        flooder = asyncio.create_task(keep_flooding())
        try:
            await _wait_for(lambda: b.get_auth_failures().get("evicted", 0) >= 5)
            for i in range(5):  # members reconnect again and again during the flood
                _, writer, session = await raw_connect(b.port, keys)
                await _send_frames(writer, [session.sealer.seal(b"m%d" % i)])
                await _wait_for(lambda i=i: (0, b"m%d" % i) in got)
                writer.close()
            assert not flooder.done(), "the flood must still be running"
            assert b.get_pending_handshakes() <= 8
        finally:
            stop.set()
            await flooder
            for _, w in flood:
                w.close()
            await b.close()

    run(scenario)


def test_per_source_limit_evicts_the_oldest_of_that_source() -> None:
    async def scenario() -> None:
        b = new_tcp(1, make_keys(2), max_pending=100, max_pending_per_source=3)
        await b.start()
        try:
            conns = await _open_idle(b.port, 5, "127.0.0.5")
            other = await _open_idle(b.port, 2, "127.0.0.6")
            for reader, _ in conns[:2]:  # the two oldest of 127.0.0.5 were evicted
                assert await _is_closed_by_peer(reader)
            await _wait_for(lambda: b.get_pending_handshakes() == 5)
            assert b.get_auth_failures() == {"evicted": 2}
            for _, w in conns + other:
                w.close()
        finally:
            await b.close()

    run(scenario)


# -- frames after the handshake ---------------------------------------------------------------


async def _attack_after_handshake(
    attack: Callable[[FrameSealer, FrameOpener, FrameSealer], list[bytes]],
) -> tuple[TcpTransport, Got, bool]:
    """A genuine session from replica 0 to a fresh replica 1; send ``attack``'s raw frames.

    ``attack`` gets the session's sealer, a twin sealer with the same key (to
    make valid frames out of order) and a sealer with the acceptor's own
    direction key (a reflected frame). Returns b, what b delivered, and
    whether b closed the connection.
    """
    keys = make_keys(2)
    b = new_tcp(1, keys)
    await b.start()
    got: Got = []
    b.set_receiver(lambda s, f: got.append((s, f)))
    reader, writer, session = await raw_connect(b.port, keys)
    twin = FrameSealer(session.sealer.key)
    frames = attack(session.sealer, session.opener, twin)
    await _send_frames(writer, frames)
    closed = await _is_closed_by_peer(reader)
    writer.close()
    await asyncio.sleep(0.05)
    return b, got, closed


def _run_attack(
    attack: Callable[[FrameSealer, FrameOpener, FrameSealer], list[bytes]],
    expected_reason: str,
    delivered: list[bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        b, got, closed = await _attack_after_handshake(attack)
        try:
            assert closed
            assert [f for _, f in got] == delivered
            assert b.get_frame_failures() == {expected_reason: 1}
            assert b.get_auth_failures() == {}
            assert _logged(caplog, f"connection from replica 0 dropped ({expected_reason}")
            await _assert_genuine_peer_still_served(b, got, b"still up")
        finally:
            await b.close()

    run(scenario)


def test_tampered_frame_is_dropped_and_the_connection_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def attack(sealer: FrameSealer, _o: FrameOpener, _t: FrameSealer) -> list[bytes]:
        good = sealer.seal(b"ok")
        bad = bytearray(sealer.seal(b"pay 10 to me"))
        bad[12] ^= 0x01
        return [good, bytes(bad), sealer.seal(b"after")]

    _run_attack(attack, "forged", [b"ok"], caplog)


def test_replayed_frame_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    def attack(sealer: FrameSealer, _o: FrameOpener, _t: FrameSealer) -> list[bytes]:
        first = sealer.seal(b"vote")
        return [first, sealer.seal(b"second"), first]

    _run_attack(attack, "replayed", [b"vote", b"second"], caplog)


def test_reordered_frame_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    def attack(sealer: FrameSealer, _o: FrameOpener, twin: FrameSealer) -> list[bytes]:
        twin.counter = 1
        later = twin.seal(b"second")  # sent before frame 0
        return [later, sealer.seal(b"first")]

    _run_attack(attack, "out-of-order", [], caplog)


def test_reflected_frame_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """A frame sealed for the acceptor-to-connector direction, bounced back at the acceptor."""

    def attack(_s: FrameSealer, opener: FrameOpener, _t: FrameSealer) -> list[bytes]:
        reflector = FrameSealer(opener.key)  # the other direction's key
        return [reflector.seal(b"your own words")]

    _run_attack(attack, "forged", [], caplog)


def test_frame_from_an_unauthenticated_peer_is_never_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        b = new_tcp(1, make_keys(2))
        await b.start()
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", b.port)
            await read_frame(reader, 1024)  # the challenge, ignored
            await _send_frames(writer, [encode({"_t": "node.sync-status/1"}), b"\x00" * 40])
            assert await _is_closed_by_peer(reader)
            writer.close()
            await asyncio.sleep(0.05)
            assert got == []
            assert b.get_auth_failures() == {"malformed": 1}
            assert _logged(caplog, "incoming handshake refused (malformed")
            await _assert_genuine_peer_still_served(b, got, b"still up")
        finally:
            await b.close()

    run(scenario)


def test_oversize_and_truncated_frames_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys, max_frame=1000)
        await b.start()
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        try:
            reader, writer, _ = await raw_connect(b.port, keys)
            writer.write((5000).to_bytes(4, "big") + bytes(100))
            await writer.drain()
            assert await _is_closed_by_peer(reader)
            writer.close()
            reader, writer, _ = await raw_connect(b.port, keys)
            await _send_frames(writer, [bytes(10)])
            assert await _is_closed_by_peer(reader)
            writer.close()
            assert b.get_frame_failures() == {"oversize": 1, "truncated": 1}
            assert _logged(caplog, "dropped (oversize") and _logged(caplog, "dropped (truncated")
            await _assert_genuine_peer_still_served(b, got, b"still up")
        finally:
            await b.close()

    run(scenario)


def test_a_frame_of_an_earlier_session_does_not_open_in_a_new_one() -> None:
    async def scenario() -> None:
        keys = make_keys(2)
        b = new_tcp(1, keys)
        await b.start()
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        try:
            reader, writer, old = await raw_connect(b.port, keys)
            captured = old.sealer.seal(b"once")
            await _send_frames(writer, [captured])
            await _wait_for(lambda: got == [(0, b"once")])
            writer.close()
            reader, writer, _ = await raw_connect(b.port, keys)
            await _send_frames(writer, [captured])  # counter 0 again, but another key
            assert await _is_closed_by_peer(reader)
            writer.close()
            assert got == [(0, b"once")]
            assert b.get_frame_failures() == {"forged": 1}
        finally:
            await b.close()

    run(scenario)


def test_on_path_observer_sees_no_plaintext_and_a_flipped_bit_drops_the_link() -> None:
    """A relay between two transports: it records the bytes and, once, flips one in flight."""

    async def scenario() -> None:
        a, b = await make_tcp_cluster(2)
        got: Got = []
        b.set_receiver(lambda s, f: got.append((s, f)))
        seen = bytearray()
        tamper = {"armed": False, "done": False}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            with contextlib.suppress(Exception):
                while chunk := await src.read(65536):
                    if record:
                        seen.extend(chunk)
                        if tamper["armed"] and not tamper["done"] and len(chunk) > 40:
                            chunk = chunk[:-5] + bytes([chunk[-5] ^ 1]) + chunk[-4:]
                            tamper["done"] = True
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", b.port)
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

        proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
        a.set_peer_address(1, "127.0.0.1", int(proxy.sockets[0].getsockname()[1]))
        try:
            secret = b"meter 17 sold 2500 Wh at 31 mct" * 4
            a.send(1, secret)
            await _wait_for(lambda: (0, secret) in got)
            assert secret[:16] not in seen
            tamper["armed"] = True
            a.send(1, b"tampered in flight" * 4)
            await _wait_for(lambda: b.get_frame_failures().get("forged", 0) == 1)
            assert all(f != b"tampered in flight" * 4 for _, f in got)

            async def resend() -> None:  # the connector redials; fresh keys, fresh counters
                while (0, b"after") not in got:
                    a.send(1, b"after")
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(resend(), 10)
        finally:
            await a.close()
            await b.close()
            proxy.close()

    run(scenario)


# -- a live consortium ------------------------------------------------------------------------


def _count_refused(replica: Replica) -> int:
    """Frames the node core and the consensus engine refused (from the replica's status)."""
    status = replica.core.get_status()
    rejected = status.get("consensus", {}).get("rejected", {})
    return sum(status["bad_frames"].values()) + sum(rejected.values())


def test_a_member_sending_non_text_type_tags_cannot_stop_a_live_replica(tmp_path: Path) -> None:
    """The issue's crash: after its handshake, a member sends frames whose type tag is a
    list or a map (bare, and inside an envelope it signs). The replica used to die in its
    dispatch; now it counts them and the consortium keeps committing."""
    layout = make_consortium(tmp_path / "c")

    async def scenario() -> None:
        configs = [load_config(p) for p in layout.configs]
        replicas = [Replica(c, synchronous="NORMAL") for c in configs]
        for r in replicas:
            await r.start()
        client = ConsortiumClient(layout.get_api_addresses())
        try:
            txs = make_kv_txs(40)
            receipts = await client.submit([encode(tx) for tx in txs[:20]], timeout=15)
            assert all(r["status"] == "committed" for r in receipts)
            member = read_key(configs[0].key_file)  # replica 0 turns byzantine
            target = replicas[1]
            acceptor_key = read_key(configs[1].key_file).public_key
            reader, writer = await asyncio.open_connection("127.0.0.1", configs[1].listen.port)
            frame = await read_frame(reader, 1024)
            hello, state = compute_connector_hello(
                frame, member, configs[0].chain_id, 0, 1, DeterministicRng("byz")
            )
            writer.write(encode_frame(hello))
            session = process_welcome(state, await read_frame(reader, 1024), acceptor_key)
            bad_values: list[Any] = [{"_t": ["consensus.prepare/1"]}, {"_t": {"_t": "x"}}]
            bad_bodies = [cbor2.dumps(v, canonical=True) for v in bad_values]
            signed = []
            for body in bad_bodies:
                digest = hash_bytes(ENVELOPE_TAG, body)
                sig = member.sign(ENVELOPE_TAG, encode([configs[0].chain_id, digest]))
                signed.append(encode(SignedEnvelope(0, body, sig)))
            frames = [bytes([ch]) + b for ch in (ENGINE_CHANNEL, NODE_CHANNEL) for b in bad_bodies]
            frames += [bytes([ENGINE_CHANNEL]) + e for e in signed]
            await _send_frames(writer, [session.sealer.seal(f) for f in frames])
            await wait_until(lambda: _count_refused(target) >= len(frames), 10, "refused frames")
            writer.close()
            receipts = await client.submit([encode(tx) for tx in txs[20:]], timeout=15)
            assert all(r["status"] == "committed" for r in receipts)
            height = max(r.ledger.height for r in replicas)
            await wait_until(
                lambda: all(r.ledger.height == height for r in replicas), 10, "equal heights"
            )
        finally:
            await client.close()
            for r in replicas:
                await r.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_receiver_that_raises_is_reported_and_the_connection_stays() -> None:
    async def scenario() -> None:
        a, b = await make_tcp_cluster(2)
        got: Got = []

        def receiver(sender: int, frame: bytes) -> None:
            if frame == b"boom":
                raise RuntimeError("a bug above the transport")
            got.append((sender, frame))

        b.set_receiver(receiver)
        try:
            for frame in (b"before", b"boom", b"after"):
                a.send(1, frame)
            await _wait_for(lambda: got == [(0, b"before"), (0, b"after")])
            assert b.get_frame_failures() == {"receiver-error": 1}
            assert b.get_auth_failures() == {}
        finally:
            await a.close()
            await b.close()

    run(scenario)
