"""``gridledger api``: the CLI reads the same node service as the API and the dashboard."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gridledger.cli.main import main
from tests.node.http.helpers import RunningConsortium


def test_cli_and_api_agree(
    consortium: RunningConsortium, traded: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(consortium.layout.root)
    assert main(["api", "get", root, "/v1/market/slots", "--replica", "1"]) == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli == httpx.get(consortium.url(1) + "/v1/market/slots").json()
    assert main(["api", "trades", root, "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("block ") for line in lines)
    assert main(["api", "dashboard", root]) == 0
    urls = capsys.readouterr().out.strip().splitlines()
    assert urls[1] == f"replica 1: {consortium.url(1)}/"


def test_cli_prints_the_problem_code(
    consortium: RunningConsortium, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(consortium.layout.root)
    assert main(["api", "get", root, "/v1/blocks/99999"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: not-found: no block at height 99999")
    assert "Traceback" not in err
    assert main(["api", "get", root, "v1/status"]) == 2
    assert main(["api", "get", root, "/v1/status", "--replica", "9"]) == 2
    assert "no HTTP address" in capsys.readouterr().err
