"""The published OpenAPI document validates and lists exactly the routes the node serves."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi.openapi.models import OpenAPI
from fastapi.routing import APIRoute

from gridledger.node.http.problems import STATUS, ProblemCode
from tests.node.http.helpers import RunningConsortium


def test_openapi_validates_and_matches_the_routes(consortium: RunningConsortium) -> None:
    r = httpx.get(consortium.url() + "/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    assert doc["openapi"].startswith("3.")
    OpenAPI.model_validate(doc)  # the OpenAPI 3.1 object model (raises if invalid)
    app = consortium.replicas[0].http.app.fastapi  # type: ignore[union-attr]
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    assert len(served) >= 20
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") and op.get("description"), (path, method)
            assert "422" in op["responses"] and "400" in op["responses"], (path, method)
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "instance"}


def test_every_problem_code_has_a_client_error_or_server_status() -> None:
    assert set(STATUS) == set(ProblemCode)
    assert all(400 <= s < 600 for s in STATUS.values())
