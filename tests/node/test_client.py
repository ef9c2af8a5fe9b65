"""The client of the replicas' API facing replicas that answer badly (one may be byzantine)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridledger.node.api import ApiServer
from gridledger.node.client import ApiConnection, ClientError, ConsortiumClient
from gridledger.node.config import Address

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _fake_replica(answers: list[bytes], served: list[asyncio.StreamWriter]) -> asyncio.Server:
    """A server that reads one request line and writes ``answers`` as they are."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(writer)
        await reader.readline()
        for answer in answers:
            writer.write(answer)
        await writer.drain()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def _close(servers: list[asyncio.Server], served: list[asyncio.StreamWriter]) -> None:
    for writer in served:
        writer.close()
        await writer.wait_closed()
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    "answers",
    [
        [b"[1, 2, 3]\n"],  # not an object: the connection is dropped
        [b'{"id": "x", "result": 1}\n', b"not json\n"],  # a foreign id, then garbage
        [b'{"id": [1], "result": 1}\n'],  # an unhashable id
    ],
)
def test_a_replica_answering_garbage_gets_a_typed_client_error(answers: list[bytes]) -> None:
    """The client's reader must neither crash on such answers nor leave a call hanging."""

    async def scenario() -> None:
        served: list[asyncio.StreamWriter] = []
        server = await _fake_replica(answers, served)
        conn = ApiConnection(Address("127.0.0.1", server.sockets[0].getsockname()[1]))
        try:
            with pytest.raises(ClientError):
                await conn.call("status", {}, timeout=1.0)
        finally:
            await conn.close()
            await _close([server], served)

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_byzantine_answer_too_deep_to_compare_does_not_beat_f_plus_1_honest_ones() -> None:
    """One replica answers a value nested 1,000 deep (orjson reads it, cannot write it
    back): it counts as that replica's error, and the honest answer still wins."""

    async def scenario() -> None:
        served: list[asyncio.StreamWriter] = []
        deep = b'{"id":1,"result":' + b"[" * 1000 + b"]" * 1000 + b"}\n"
        honest = b'{"id":1,"result":{"x":1}}\n'
        servers = [await _fake_replica([deep], served)]
        servers += [await _fake_replica([honest], served) for _ in range(3)]
        client = ConsortiumClient(
            {i: Address("127.0.0.1", s.sockets[0].getsockname()[1]) for i, s in enumerate(servers)}
        )
        try:
            assert await client.call_agreed("status", {}, timeout=2.0) == {"x": 1}
        finally:
            await client.close()
            await _close(servers, served)

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_the_api_answers_a_request_whose_id_cannot_be_echoed() -> None:
    """An id nested too deeply to encode again gets an error line, not silence."""

    async def scenario() -> None:
        async def status(params: dict[str, object]) -> dict[str, object]:
            return {"ok": True}

        api = ApiServer("127.0.0.1", 0, {"status": status})
        await api.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        try:
            writer.write(b'{"id":' + b"[" * 1000 + b"]" * 1000 + b',"method":"status"}\n')
            writer.write(b'{"id":2,"method":"status"}\n')
            await writer.drain()
            first = await asyncio.wait_for(reader.readline(), 5)
            second = await asyncio.wait_for(reader.readline(), 5)
            assert b"cannot be encoded" in first
            assert second == b'{"id":2,"result":{"ok":true}}\n'
        finally:
            writer.close()
            await writer.wait_closed()
            await api.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
