"""Errors as RFC 9457 problem details: ``application/problem+json`` with a typed ``code``.

Every error response of the HTTP API is one JSON object::

    {"type": "urn:gridledger:problem:not-found", "title": "Not found", "status": 404,
     "detail": "no block at height 99 (head is 12)", "code": "not-found",
     "instance": "/v1/blocks/99"}

``code`` is one of :class:`ProblemCode` (the list is published in ``docs/api.md``
and in the OpenAPI document); clients branch on it, never on ``detail``. A bug
in a handler is answered ``internal-error`` with no traceback and logged.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridledger.errors import GridledgerError, NodeError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemCode(StrEnum):
    """The typed codes a problem document carries, with their HTTP status."""

    BAD_REQUEST = "bad-request"  # 400: body is not JSON / not the expected shape
    VALIDATION = "validation-error"  # 422: unknown fields, wrong types, out-of-range values
    MALFORMED_ID = "malformed-id"  # 400: a hash, key or id is not hex of the right size
    OUT_OF_RANGE = "out-of-range"  # 400: a height, period or limit outside its range
    NOT_FOUND = "not-found"  # 404: a block, transaction, certificate that does not exist
    ROUTE_NOT_FOUND = "route-not-found"  # 404: no such path
    METHOD_NOT_ALLOWED = "method-not-allowed"  # 405
    UNAUTHORIZED = "unauthorized"  # 401: missing, expired or wrong session / signature
    PAYLOAD_TOO_LARGE = "payload-too-large"  # 413: request body above the limit
    TOO_MANY_TRANSACTIONS = "too-many-transactions"  # 413: more transactions than one call takes
    UNSUPPORTED_MEDIA = "unsupported-media-type"  # 415: a body that is not application/json
    RATE_LIMITED = "rate-limited"  # 429: this client sent too many requests
    UNAVAILABLE = "unavailable"  # 503: too many stream subscribers, node stopping
    INTERNAL = "internal-error"  # 500: a bug; logged on the node, no details sent


STATUS: dict[ProblemCode, int] = {
    ProblemCode.BAD_REQUEST: 400,
    ProblemCode.VALIDATION: 422,
    ProblemCode.MALFORMED_ID: 400,
    ProblemCode.OUT_OF_RANGE: 400,
    ProblemCode.NOT_FOUND: 404,
    ProblemCode.ROUTE_NOT_FOUND: 404,
    ProblemCode.METHOD_NOT_ALLOWED: 405,
    ProblemCode.UNAUTHORIZED: 401,
    ProblemCode.PAYLOAD_TOO_LARGE: 413,
    ProblemCode.TOO_MANY_TRANSACTIONS: 413,
    ProblemCode.UNSUPPORTED_MEDIA: 415,
    ProblemCode.RATE_LIMITED: 429,
    ProblemCode.UNAVAILABLE: 503,
    ProblemCode.INTERNAL: 500,
}


class HttpProblem(NodeError):
    """An HTTP request is refused; becomes one problem document (``code`` picks the status)."""

    def __init__(
        self, code: ProblemCode, reason: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.status = STATUS[code]
        self.headers = headers or {}


def compute_problem(code: ProblemCode, detail: str, instance: str) -> dict[str, Any]:
    """The RFC 9457 body for ``code``."""
    return {
        "type": f"urn:gridledger:problem:{code.value}",
        "title": code.value.replace("-", " ").capitalize(),
        "status": STATUS[code],
        "detail": detail,
        "code": code.value,
        "instance": instance,
    }


def get_problem_response(
    code: ProblemCode, detail: str, instance: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        compute_problem(code, detail, instance),
        status_code=STATUS[code],
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _describe_validation(exc: RequestValidationError) -> tuple[ProblemCode, str]:
    parts = []
    code = ProblemCode.VALIDATION
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        kind = str(err.get("type", ""))
        if kind == "json_invalid":
            code = ProblemCode.BAD_REQUEST
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return code, "; ".join(parts) or "invalid request"


def install_problem_handlers(app: FastAPI) -> None:
    """Route every error the app can meet to a problem document."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HttpProblem)
        return get_problem_response(exc.code, exc.reason, request.url.path, exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        code, detail = _describe_validation(exc)
        return get_problem_response(code, detail, request.url.path)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            404: ProblemCode.ROUTE_NOT_FOUND,
            405: ProblemCode.METHOD_NOT_ALLOWED,
            413: ProblemCode.PAYLOAD_TOO_LARGE,
            415: ProblemCode.UNSUPPORTED_MEDIA,
        }.get(exc.status_code, ProblemCode.BAD_REQUEST)
        detail = str(exc.detail) if exc.status_code != 404 else f"no route {request.url.path}"
        return get_problem_response(code, detail, request.url.path)

    async def on_gridledger(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GridledgerError)
        return get_problem_response(ProblemCode.BAD_REQUEST, exc.reason, request.url.path)

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("HTTP handler failed on %s", request.url.path, exc_info=exc)
        return get_problem_response(
            ProblemCode.INTERNAL, "internal error (logged on the node)", request.url.path
        )

    app.add_exception_handler(HttpProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(GridledgerError, on_gridledger)
    app.add_exception_handler(Exception, on_bug)
