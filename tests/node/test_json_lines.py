"""The client API's JSON-lines framing, and a client facing a replica that answers badly."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridledger.node.client import ApiConnection, ClientError
from gridledger.node.config import Address
from gridledger.node.json_lines import decode_line, encode_line, encode_sorted

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=25,
)


@given(json_values)
def test_lines_round_trip_and_read_like_the_standard_library(value: object) -> None:
    line = encode_line(value)
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert decode_line(line) == value == json.loads(line)


@given(st.dictionaries(st.text(max_size=8), st.integers(-5, 5), max_size=6))
def test_sorted_encoding_does_not_depend_on_key_order(value: dict[str, int]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert encode_sorted(reordered) == encode_sorted(value)


def test_what_orjson_cannot_encode_still_encodes() -> None:
    assert json.loads(encode_line({"big": 2**70})) == {"big": 2**70}
    assert json.loads(encode_line({1: "int key"})) == {"1": "int key"}
    assert json.loads(encode_sorted({"b": 2**70, "a": 1})) == {"a": 1, "b": 2**70}


@pytest.mark.parametrize("line", [b"{", b"[" * 2000 + b"]" * 2000, b"NaN", b'"\\ud800"', b""])
def test_malformed_lines_are_value_errors(line: bytes) -> None:
    with pytest.raises(ValueError):
        decode_line(line)


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

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            served.append(writer)
            await reader.readline()
            for answer in answers:
                writer.write(answer)
            await writer.drain()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = ApiConnection(Address("127.0.0.1", port))
        try:
            with pytest.raises(ClientError):
                await conn.call("status", {}, timeout=1.0)
        finally:
            await conn.close()
            for writer in served:
                writer.close()
                await writer.wait_closed()
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(scenario(), 20))
