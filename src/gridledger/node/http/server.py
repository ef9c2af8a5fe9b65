"""The HTTP server of a replica: uvicorn inside the replica's own event loop.

The replica owns the loop, the signals and the lifecycle; uvicorn only serves.
So signal capture is switched off, the listening socket is bound here (port 0
picks a free one; :attr:`HttpServer.port` tells which), and :meth:`close`
first ends every event stream, then asks uvicorn to stop, bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator
from typing import Any

import uvicorn

from gridledger.errors import NodeError

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the replica handles signals


class HttpServer:
    """Serves one ASGI app on ``host:port`` until :meth:`close`."""

    def __init__(self, app: Any, host: str, port: int, on_close: Any = None) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.on_close = on_close
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            return self.requested_port
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.requested_port))
            sock.listen(1024)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise NodeError(
                f"cannot listen for HTTP on {self.host}:{self.requested_port}: {exc.strerror}"
            ) from None
        self._sock = sock
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
            ws="none",
            http="httptools",  # the C parser: about a third less CPU per request than h11
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="http")
        for _ in range(200):  # bounded: at most ~2 s
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            failure = self._task.exception()
            raise NodeError(f"HTTP server did not start: {failure!r}")

    async def close(self) -> None:
        if self.on_close is not None:
            self.on_close()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)
            except (TimeoutError, Exception):
                if self._server is not None:
                    self._server.force_exit = True
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
        if self._sock is not None:
            self._sock.close()
