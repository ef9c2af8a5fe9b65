"""The HTTP API of a node: a FastAPI app over :class:`~gridledger.node.service.NodeService`.

Every read answers from the node service (the same one the JSON-lines API and
the CLI use), so the three never disagree. Writes go through the replica
shell's ``submit`` and ``wait`` (passed in as callables: this package does not
import the replica). Routes are listed in ``docs/api.md`` and in the OpenAPI
document at ``/openapi.json``; every error is a problem document
(:mod:`.problems`). No interactive docs page is served (it would load scripts
from a CDN); the dashboard is served from ``/`` out of ``static/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from gridledger.node.http.auth import Session, SessionTable
from gridledger.node.http.limits import BodyLimit, RateLimit, SecurityHeaders
from gridledger.node.http.problems import HttpProblem, ProblemCode, install_problem_handlers
from gridledger.node.http.stream import TOPICS, Broadcaster
from gridledger.node.service import MAX_PAGE, BadParameter, NodeService, NotFound

STATIC_DIR = Path(__file__).parent / "static"
MAX_SUBMIT_TXS = 2_000
HEX32 = re.compile(r"^[0-9a-f]{64}$")

Call = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class HttpSettings:
    """Limits of one node's HTTP API (defaults suit a household-facing node)."""

    max_body_bytes: int = 4 * 1024 * 1024
    rate_per_s: float = 100.0  # per client address; 0 disables
    burst: int = 200
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are named
    max_subscribers: int = 1_000


class Problem(BaseModel):
    """RFC 9457 problem details (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": desc}
    for status, desc in (
        (400, "malformed-id, out-of-range or bad-request"),
        (404, "not-found"),
        (413, "payload-too-large"),
        (422, "validation-error: unknown fields, wrong types"),
        (429, "rate-limited"),
    )
}


class SubmitBody(BaseModel):
    """Transactions (hex of their canonical encoding) to submit, optionally waiting for receipts."""

    model_config = ConfigDict(extra="forbid", strict=True)
    txs: list[str] = Field(min_length=1)
    wait: bool = False
    timeout: float = Field(10.0, gt=0, le=120)


class WaitBody(BaseModel):
    """Transaction hashes to wait for (answered at once if already on chain)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    hashes: list[str] = Field(min_length=1)
    timeout: float = Field(10.0, gt=0, le=120)


class SignInBody(BaseModel):
    """A signed sign-in challenge (all hex)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    public_key: str
    challenge: str
    signature: str


def get_hex(text: str, name: str, size: int | None = 32) -> bytes:
    """``text`` as bytes: lowercase or uppercase hex of ``size`` bytes (``malformed-id``)."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise HttpProblem(ProblemCode.MALFORMED_ID, f"{name} is not hex: {text[:80]!r}") from None
    if size is not None and len(raw) != size:
        raise HttpProblem(
            ProblemCode.MALFORMED_ID, f"{name} must be {size} bytes ({2 * size} hex digits)"
        )
    return raw


async def reject_unknown_query(request: Request) -> None:
    """Unknown query parameters are a ``validation-error``, not silently ignored."""
    if request.url.path == "/":
        return  # the dashboard page: its own hash routes, any query is the browser's
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known: set[str] = set()
    if dependant is not None:
        known = {p.alias for p in dependant.query_params}
        for sub in dependant.dependencies:
            known |= {p.alias for p in sub.query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise HttpProblem(ProblemCode.VALIDATION, f"unknown query parameter(s): {unknown}")


async def get_current_session(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Session:
    """The signed-in household of this request (401 ``unauthorized`` otherwise)."""
    table: SessionTable = request.app.state.sessions
    return table.get_session(authorization)


Me = Annotated[Session, Depends(get_current_session)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _service_call(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except NotFound as exc:
        raise HttpProblem(ProblemCode.NOT_FOUND, exc.reason) from None
    except BadParameter as exc:
        raise HttpProblem(ProblemCode.OUT_OF_RANGE, exc.reason) from None


def create_app(
    service: NodeService,
    *,
    submit: Call,
    wait: Call,
    status: Call,
    broadcaster: Broadcaster,
    sessions: SessionTable,
    settings: HttpSettings | None = None,
) -> Any:
    """The ASGI app of one node: the API under ``/v1``, the dashboard at ``/``."""
    settings = settings or HttpSettings()
    app = FastAPI(
        title="gridledger node API",
        version="1",
        summary="Chain, market, identity and billing reads; submit and wait; live streams.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        dependencies=[Depends(reject_unknown_query)],
    )
    install_problem_handlers(app)

    app.state.sessions = sessions

    def answer(key: tuple[Any, ...], read: Callable[[], dict[str, Any]]) -> Response:
        """A chain read as JSON, encoded once per head height for everyone who asks."""

        def encode() -> bytes:
            return json.dumps(_service_call(read), separators=(",", ":")).encode()

        return Response(service.get_cached(key, encode), media_type="application/json")

    # -- chain --------------------------------------------------------------------------

    @app.get("/v1/status", tags=["chain"], responses=PROBLEMS)
    async def get_status() -> dict[str, Any]:
        """Height, head, view and primary, replicas' health as this node sees them."""
        answer = await status({})
        answer["stream_subscribers"] = broadcaster.count
        answer["replicas"] = service.get_replicas(list(answer.get("peers", [])))
        return answer

    @app.get("/v1/blocks", tags=["chain"], responses=PROBLEMS)
    async def get_blocks(
        limit: Limit = 20, before: Annotated[int | None, Query(ge=0)] = None
    ) -> Response:
        """The newest blocks (summaries, newest first); page with ``before``."""
        return answer(("blocks", limit, before), lambda: service.get_blocks(limit, before))

    @app.get("/v1/blocks/{height}", tags=["chain"], responses=PROBLEMS)
    async def get_block(height: Annotated[int, PathParam(ge=0)]) -> Response:
        """One block decoded: header, transactions with receipts, finality proof (hex)."""
        return answer(("block", height), lambda: service.get_block_view(height))

    @app.get("/v1/blocks/{height}/raw", tags=["chain"], responses=PROBLEMS)
    async def get_block_raw(height: Annotated[int, PathParam(ge=0)]) -> Response:
        """The block, its receipts and certificate as canonical encodings (hex)."""
        return answer(("raw", height), lambda: service.get_block(height))

    @app.get("/v1/headers", tags=["chain"], responses=PROBLEMS)
    async def get_headers(
        start: Annotated[int, Query(alias="from", ge=0)],
        end: Annotated[int, Query(alias="to", ge=0)],
    ) -> Response:
        """Headers ``from..to`` with their finality proofs, for light clients (at most 1,000)."""
        if end < start:
            raise HttpProblem(ProblemCode.OUT_OF_RANGE, "'to' must be >= 'from'")
        return answer(("headers", start, end), lambda: service.get_headers(start, end))

    @app.get("/v1/transactions/{tx_hash}", tags=["chain"], responses=PROBLEMS)
    async def get_transaction(tx_hash: str) -> Response:
        """A committed transaction with its receipt and inclusion proofs."""
        raw = get_hex(tx_hash, "tx_hash")
        return answer(("tx", raw), lambda: service.get_transaction(raw))

    @app.get("/v1/state/{key}", tags=["chain"], responses=PROBLEMS)
    async def get_state(key: str) -> Response:
        """A state value (full key, hex) with its proof against the head's state root."""
        raw = get_hex(key, "key", None)
        if not raw or len(raw) > 1024:
            raise HttpProblem(ProblemCode.MALFORMED_ID, "key must be 1..1024 bytes")
        return answer(("state", raw), lambda: service.get_state(raw))

    @app.post("/v1/transactions", tags=["chain"], responses=PROBLEMS)
    async def post_transactions(body: SubmitBody) -> dict[str, Any]:
        """Submit transactions; with ``wait``, answer once they are executed (or at timeout)."""
        if len(body.txs) > MAX_SUBMIT_TXS:
            raise HttpProblem(
                ProblemCode.TOO_MANY_TRANSACTIONS,
                f"{len(body.txs)} transactions in one submit, at most {MAX_SUBMIT_TXS}",
            )
        return await submit({"txs": body.txs, "wait": body.wait, "timeout": body.timeout})

    @app.post("/v1/wait", tags=["chain"], responses=PROBLEMS)
    async def post_wait(body: WaitBody) -> dict[str, Any]:
        """Receipts of transactions submitted anywhere, when they are executed (or at timeout)."""
        if len(body.hashes) > MAX_SUBMIT_TXS:
            raise HttpProblem(ProblemCode.TOO_MANY_TRANSACTIONS, "too many hashes")
        hashes = [get_hex(h, "hash").hex() for h in body.hashes]
        return await wait({"hashes": hashes, "timeout": body.timeout})

    # -- market -------------------------------------------------------------------------

    @app.get("/v1/market/book", tags=["market"], responses=PROBLEMS)
    async def get_book() -> Response:
        """The public order book (price levels per open slot, no pseudonyms)."""
        return answer(("book",), service.get_order_book)

    @app.get("/v1/market/trades", tags=["market"], responses=PROBLEMS)
    async def get_trades(
        limit: Limit = 50, slot: Annotated[int | None, Query(ge=0)] = None
    ) -> Response:
        """The newest public trades: slot, price, quantity and block."""
        return answer(("trades", limit, slot), lambda: service.get_trades(limit, slot))

    @app.get("/v1/market/slots", tags=["market"], responses=PROBLEMS)
    async def get_slots(limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 24) -> Response:
        """Price (low, high, volume-weighted) and volume per delivery slot."""
        return answer(("slots", limit), lambda: service.get_slots(limit))

    @app.get("/v1/market/trades/{trade_id}", tags=["market"], responses=PROBLEMS)
    async def get_trade(trade_id: str) -> Response:
        """One trade as the chain records it (pseudonyms, obligations, settlement)."""
        raw = get_hex(trade_id, "trade_id", None)
        if not 1 <= len(raw) <= 64:
            raise HttpProblem(ProblemCode.MALFORMED_ID, "trade_id must be 1..64 bytes")
        return answer(("trade", raw), lambda: service.get_market_trade(raw))

    # -- identity -----------------------------------------------------------------------

    @app.get("/v1/identity/pseudonyms/{key}", tags=["identity"], responses=PROBLEMS)
    async def get_pseudonym(key: str) -> Response:
        """A pseudonym certificate and whether it is revoked."""
        raw = get_hex(key, "key")
        return answer(("pseudonym", raw), lambda: service.get_pseudonym(raw))

    @app.get("/v1/identity/revocations", tags=["identity"], responses=PROBLEMS)
    async def get_revocations(limit: Limit = MAX_PAGE) -> Response:
        """Revoked member certificates (hashes) and revoked pseudonyms."""
        return answer(("revocations", limit), lambda: service.get_revocations(limit))

    @app.get("/v1/identity/traces", tags=["identity"], responses=PROBLEMS)
    async def get_traces(limit: Limit = MAX_PAGE) -> Response:
        """Tracing records."""
        return answer(("traces", limit), lambda: service.get_traces(limit))

    @app.get("/v1/identity/events", tags=["identity"], responses=PROBLEMS)
    async def get_identity_events(limit: Limit = 50) -> Response:
        """The newest identity transactions: batches, revocations, evidence, traces."""
        return answer(("identity-events", limit), lambda: service.get_identity_events(limit))

    # -- a household, signed in ---------------------------------------------------------

    @app.post("/v1/auth/challenge", tags=["household"], responses=PROBLEMS)
    async def post_challenge() -> dict[str, Any]:
        """A single-use challenge and the exact message to sign with the household's key."""
        challenge, message, valid_s = sessions.create_challenge()
        return {"challenge": challenge.hex(), "message": message.hex(), "valid_s": valid_s}

    @app.post("/v1/auth/session", tags=["household"], responses=PROBLEMS)
    async def post_session(body: SignInBody) -> dict[str, Any]:
        """Trade a signed challenge for a bearer token bound to the public key."""
        key = get_hex(body.public_key, "public_key")
        challenge = get_hex(body.challenge, "challenge")
        signature = get_hex(body.signature, "signature", 64)
        token = sessions.process_sign_in(key, challenge, signature)
        return {"token": token, "public_key": key.hex(), "account": key.hex()}

    @app.get("/v1/me/orders", tags=["household"], responses=PROBLEMS)
    async def get_my_orders(me: Me, limit: Limit = MAX_PAGE) -> dict[str, Any]:
        """Orders signed by the signed-in key, with their fills."""
        return _service_call(lambda: service.get_orders_of(me.public_key, limit))

    @app.get("/v1/me/bills/{period}", tags=["household"], responses=PROBLEMS)
    async def get_my_bill(
        me: Me, period: Annotated[int, PathParam(ge=0, lt=2**63)]
    ) -> dict[str, Any]:
        """The signed-in household's withdrawals, deposits and bill for ``period``."""
        return _service_call(lambda: service.get_bill(me.public_key.hex(), period))

    @app.get("/v1/me/wallet", tags=["household"], responses=PROBLEMS)
    async def get_my_wallet(
        me: Me, period: Annotated[int, Query(ge=0, lt=2**63)] = 0
    ) -> dict[str, Any]:
        """Open credit of the key and the period's running totals."""
        answer = _service_call(lambda: service.get_bill(me.public_key.hex(), period))
        answer.update(service.get_credit(me.public_key))
        return answer

    # -- streams ------------------------------------------------------------------------

    @app.get(
        "/v1/stream",
        tags=["stream"],
        responses={**PROBLEMS, 200: {"content": {"text/event-stream": {}}}},
        response_class=StreamingResponse,
    )
    async def get_stream(topics: str = "blocks,trades") -> StreamingResponse:
        """Server-sent events: ``block`` per committed block, ``trade`` per public trade."""
        wanted = frozenset(t.strip() for t in topics.split(",") if t.strip())
        if not wanted or not wanted <= TOPICS:
            raise HttpProblem(
                ProblemCode.VALIDATION, f"topics must be a comma list of {sorted(TOPICS)}"
            )
        if broadcaster.is_full():
            raise HttpProblem(ProblemCode.UNAVAILABLE, "too many stream subscribers")
        sub = broadcaster.subscribe(wanted)
        return StreamingResponse(
            broadcaster.iter_events(sub),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- the dashboard ------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def get_index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    wrapped: Any = app
    if settings.cors_origins:
        wrapped = CORSMiddleware(
            wrapped, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"]
        )
    wrapped = SecurityHeaders(wrapped)
    wrapped = BodyLimit(wrapped, settings.max_body_bytes)
    wrapped = RateLimit(wrapped, settings.rate_per_s, settings.burst)
    wrapped.fastapi = app  # the inner app, for tests and the OpenAPI document
    return wrapped
