"""The client API of a replica: newline-delimited JSON over TCP on loopback.

Each request is one line ``{"id": 7, "method": "status", "params": {...}}``; the
answer is one line ``{"id": 7, "result": ...}`` or ``{"id": 7, "error": "..."}``.
Requests on one connection may be pipelined; answers can come back out of
order (a ``submit`` with ``wait`` is answered once its block executes), so the
client matches them by ``id``. Binary values (transactions, headers, proofs)
travel as lowercase hex of their canonical encoding.

Methods (served by :class:`~gridledger.node.replica.Replica`): ``status``,
``submit`` (one or a batch of transactions, optionally waiting for their
receipts), ``wait`` (receipts by transaction hash), ``block``, ``headers``
(with certificates, for light clients), ``tx_proof``, ``state`` (value + proof).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gridledger.errors import GridledgerError, NodeError
from gridledger.node.json_lines import decode_line, encode_line

log = logging.getLogger(__name__)

MAX_LINE = 8 * 1024 * 1024  # one request line; longer ones close the connection
MAX_CONNECTIONS = 256  # open client connections; more are closed at once
MAX_INFLIGHT_PER_CONNECTION = 64  # pipelined calls being served; more wait to be read

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class ApiError(NodeError):
    """A client API request was malformed or could not be served."""


class TooManyTransactions(ApiError):
    """A submit carried more transactions than one call may."""


class ApiServer:
    """Serves ``methods`` (name → async handler taking the params dict)."""

    def __init__(self, host: str, port: int, methods: dict[str, Handler]) -> None:
        self.host = host
        self.requested_port = port
        self.methods = methods
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._on_connection, self.host, self.requested_port, limit=MAX_LINE
            )
        except OSError as exc:
            raise NodeError(
                f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror}"
            ) from None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        for task in list(self._conns):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if len(self._conns) >= MAX_CONNECTIONS:
            writer.close()  # at capacity: the client retries elsewhere or later
            return
        if task is not None:
            self._conns.add(task)
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                while len(inflight) >= MAX_INFLIGHT_PER_CONNECTION:
                    await asyncio.wait(set(inflight), return_when=asyncio.FIRST_COMPLETED)
                try:
                    line = await reader.readline()
                except ValueError:  # line above MAX_LINE
                    break
                if not line:
                    break
                call = asyncio.create_task(self._serve_line(line, writer))
                inflight.add(call)
                call.add_done_callback(inflight.discard)
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            for call in inflight:
                call.cancel()
            if task is not None:
                self._conns.discard(task)
            writer.close()

    async def _serve_line(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        request_id: Any = None
        try:
            request = decode_line(line)
            if not isinstance(request, dict):
                raise ApiError("request must be a JSON object")
            request_id = request.get("id")
            method = request.get("method")
            params = request.get("params", {})
            if not isinstance(params, dict):
                raise ApiError("params must be a JSON object")
            handler = self.methods.get(method) if isinstance(method, str) else None
            if handler is None:
                shown = method[:64] if isinstance(method, str) else type(method).__name__
                raise ApiError(f"unknown method {shown!r}")
            answer: dict[str, Any] = {"id": request_id, "result": await handler(params)}
        except GridledgerError as exc:
            answer = {"id": request_id, "error": exc.reason}
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"id": request_id, "error": f"bad request: {str(exc)[:200]}"}
        except RecursionError:  # JSON nested too deep: the client's mistake, not a bug
            answer = {"id": request_id, "error": "bad request: nested too deeply"}
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: answer, log, keep serving
            log.exception("API method failed")
            answer = {"id": request_id, "error": f"internal error: {type(exc).__name__}"}
        if writer.is_closing():
            return
        try:
            line = encode_line(answer)
        except (TypeError, ValueError):  # e.g. an id nested too deeply to echo
            line = encode_line({"id": None, "error": "bad request: the answer cannot be encoded"})
        writer.write(line)
        with contextlib.suppress(ConnectionError, OSError):
            await writer.drain()


def get_param(params: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    """``params[name]`` checked against ``kind`` (``default`` when absent and not None)."""
    if name not in params:
        if default is not None:
            return default
        raise ApiError(f"missing parameter {name!r}")
    value = params[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(f"parameter {name!r} must be {kind.__name__}")
    return value


def get_hex_param(params: dict[str, Any], name: str) -> bytes:
    text = get_param(params, name, str)
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ApiError(f"parameter {name!r} is not hex") from None
