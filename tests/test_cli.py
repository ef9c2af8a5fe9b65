"""The command line: help everywhere, the demo runs, user mistakes are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gridledger.cli import main as cli
from gridledger.errors import ConfigError


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridledger.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_commands() -> None:
    res = _run("--help")
    assert res.returncode == 0
    assert "demo" in res.stdout


def test_demo_runs_a_trading_day(tmp_path: Path) -> None:
    res = _run("demo", "--households", "4", "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())  # the console wraps long lines
    assert "a trading day in the microgrid" in text
    assert "trustees traced the pseudonym" in text and "replicas agree: True" in text
    assert (tmp_path / "out" / "report.html").is_file()


def test_unknown_command_is_a_usage_error() -> None:
    res = _run("no-such-command")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr


def test_gridledger_errors_become_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(**_kwargs: object) -> None:
        raise ConfigError("no such directory: /nowhere")

    monkeypatch.setattr("gridledger.sim.day_demo.run_day_demo", broken)
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "error: no such directory: /nowhere" in err
    assert "Traceback" not in err
    assert cli.main(["demo", "no-such-demo"]) == 2
    assert "unknown demo 'no-such-demo'" in capsys.readouterr().err
