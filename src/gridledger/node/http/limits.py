"""Request size limits and per-client rate limits, as plain ASGI middleware.

Both answer with a problem document before the app sees the request:

* :class:`BodyLimit`: a declared ``Content-Length`` above the limit is refused
  at once; a body streamed without one is counted and refused as soon as it
  passes the limit (so no request is ever buffered past ``max_bytes``). The
  413's headers and body go out at once, but the response is completed (and
  the connection closed) only after the rest of the request body has been read
  and thrown away, up to a bound in bytes and time (a "lingering close", as
  nginx does): a socket closed with unread input makes the kernel send a
  reset, which can destroy the 413 still in flight, and the client then sees a
  broken connection instead of the answer. The drain must come before the
  completion: once uvicorn has a complete response it answers every
  ``receive`` with a disconnect and closes the socket.
* :class:`RateLimit`: a token bucket per client address (``rate`` requests per
  second, bursts up to ``burst``); an exhausted bucket answers 429 with
  ``Retry-After``. The table of buckets is bounded: the least recently seen
  client is dropped first. The clock is injected (tests use a fake one).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gridledger.node.http.problems import PROBLEM_JSON, ProblemCode, compute_problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_CLIENTS = 10_000


async def send_problem(
    send: Send,
    scope: Scope,
    code: ProblemCode,
    detail: str,
    headers: dict[str, str] | None = None,
    *,
    complete: bool = True,
) -> None:
    """Send a problem document; with ``complete=False`` the server waits for an empty last part."""
    body = json.dumps(compute_problem(code, detail, str(scope.get("path", "")))).encode()
    raw_headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode(), value.encode()))
    status = compute_problem(code, detail, "")["status"]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": not complete})


async def complete_response(send: Send) -> None:
    """The empty last part of a response sent with ``complete=False``."""
    await send({"type": "http.response.body", "body": b"", "more_body": False})


LINGER_S = 2.0  # how long a refused body is read and thrown away, at most
LINGER_MIN_BYTES = 16 * 1024 * 1024  # and how much (or 4 x the limit if more)


async def drain_body(receive: Receive, max_bytes: int, max_s: float = LINGER_S) -> None:
    """Read and discard what is left of a request body, bounded in bytes and seconds."""

    async def drain() -> None:
        seen = 0
        while seen <= max_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    try:
        await asyncio.wait_for(drain(), max_s)
    except (TimeoutError, OSError):
        return


class BodyLimit:
    """Refuse request bodies above ``max_bytes`` with 413 ``payload-too-large``."""

    def __init__(self, app: Asgi, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_problem(send, scope, ProblemCode.BAD_REQUEST, "bad Content-Length")
                    return
                if declared > self.max_bytes:
                    await send_problem(
                        send,
                        scope,
                        ProblemCode.PAYLOAD_TOO_LARGE,
                        f"request body of {declared} bytes, at most {self.max_bytes}",
                        complete=False,
                    )
                    try:
                        await drain_body(receive, self._linger_bytes)
                    finally:
                        await complete_response(send)
                    return
        seen = 0
        started = False  # the app has begun its own response
        answered = False  # we have sent the 413 (not yet completed)

        async def counting_receive() -> Message:
            nonlocal seen, answered
            if seen > self.max_bytes:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if not started:
                        answered = True
                        await send_problem(
                            send,
                            scope,
                            ProblemCode.PAYLOAD_TOO_LARGE,
                            f"request body above {self.max_bytes} bytes",
                            complete=False,
                        )
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 413 is the answer; whatever the app says is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        finally:
            if answered:
                try:
                    await drain_body(receive, self._linger_bytes)
                finally:
                    await complete_response(send)

    @property
    def _linger_bytes(self) -> int:
        return max(LINGER_MIN_BYTES, 4 * self.max_bytes)


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimit:
    """A token bucket per client host: ``rate`` per second, at most ``burst`` at once."""

    def __init__(
        self,
        app: Asgi,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def is_allowed(self, client: str) -> tuple[bool, float]:
        """Take one token for ``client``; (allowed, seconds until the next token)."""
        now = self.clock()
        bucket = self._buckets.pop(client, None) or _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        self._buckets[client] = bucket
        while len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True, 0.0
        return False, (1.0 - bucket.tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0:
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("unknown", 0)
        allowed, wait_s = self.is_allowed(str(client[0]))
        if not allowed:
            await send_problem(
                send,
                scope,
                ProblemCode.RATE_LIMITED,
                f"too many requests from {client[0]}: at most {self.rate:g}/s "
                f"(bursts of {self.burst})",
                {"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Headers every answer carries: no sniffing, no referrer, the dashboard's script policy."""

    HEADERS = (
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (
            b"content-security-policy",
            b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
            b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    )

    def __init__(self, app: Asgi) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + list(self.HEADERS)
            await send(message)

        await self.app(scope, receive, with_headers)
