"""CLI and configuration: init writes a usable directory; user mistakes are one line, exit 2."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gridledger.cli.consortium import consortium_app, explorer_app, node_app
from gridledger.errors import ConfigError
from gridledger.node.config import load_config
from gridledger.node.consortium import load_genesis, load_layout
from gridledger.node.keys import read_key

runner = CliRunner()


def _one_error_line(output: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: ")
    assert "Traceback" not in output


def test_init_writes_keys_genesis_and_configs(tmp_path: Path) -> None:
    root = tmp_path / "c"
    res = runner.invoke(
        consortium_app, ["init", "--nodes", "4", "--dir", str(root), "--base-port", "17300"]
    )
    assert res.exit_code == 0, res.output
    assert "initialised 4 replicas (f=1)" in res.output
    layout = load_layout(root)
    genesis = load_genesis(root / "genesis.cbor")
    assert [v.replica_id for v in genesis.validators] == [0, 1, 2, 3]
    for i, path in enumerate(layout.configs):
        cfg = load_config(path)
        assert cfg.replica_id == i and cfg.n == 4 and cfg.listen.port == 17300 + i
        assert cfg.api.port == 17400 + i
        assert stat.S_IMODE(cfg.key_file.stat().st_mode) == 0o600
        assert read_key(cfg.key_file).public_key.raw == genesis.validators[i].public_key
    # a second init into the same directory is refused
    res = runner.invoke(consortium_app, ["init", "--nodes", "4", "--dir", str(root)])
    assert res.exit_code == 2
    _one_error_line(res.output)


@pytest.mark.parametrize(
    ("app", "args"),
    [
        (consortium_app, ["status", "{missing}"]),
        (consortium_app, ["up", "{missing}"]),
        (consortium_app, ["submit", "{missing}", "--key", "k", "--value", "v"]),
        (explorer_app, ["block", "{missing}", "--height", "1"]),
        (explorer_app, ["tx", "{missing}", "--hash", "00"]),
        (node_app, ["run", "{missing}/node-0.json"]),
    ],
)
def test_missing_directory_is_one_line_and_exit_2(
    tmp_path: Path, app: object, args: list[str]
) -> None:
    argv = [a.replace("{missing}", str(tmp_path / "nope")) for a in args]
    res = runner.invoke(app, argv)  # type: ignore[arg-type]
    assert res.exit_code == 2, res.output
    _one_error_line(res.output)


def test_corrupt_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    root = tmp_path / "c"
    runner.invoke(consortium_app, ["init", "--nodes", "4", "--dir", str(root)])
    (root / "node-1.json").write_text("{ not json")
    res = runner.invoke(node_app, ["run", str(root / "node-1.json")])
    assert res.exit_code == 2
    _one_error_line(res.output)
    assert "node-1.json" in res.output
    res = runner.invoke(consortium_app, ["up", str(root), "--duration", "1"])
    assert res.exit_code == 2
    _one_error_line(res.output)
    (root / "consortium.json").write_text("[]")
    res = runner.invoke(consortium_app, ["status", str(root)])
    assert res.exit_code == 2
    _one_error_line(res.output)


def test_config_validation_names_the_problem(tmp_path: Path) -> None:
    root = tmp_path / "c"
    runner.invoke(consortium_app, ["init", "--nodes", "4", "--dir", str(root)])
    path = root / "node-0.json"
    good = json.loads(path.read_text())
    cases = {
        "replica_id": ("x", "replica_id"),
        "listen": ("localhost", "listen"),
        "peers": (
            {"0": {"replica": "h:1", "api": "h:2"}, "5": {"replica": "h:3", "api": "h:4"}},
            "0..n-1",
        ),
        "consensus": ({"max_batch": 0}, "max_batch"),
    }
    for field, (value, needle) in cases.items():
        path.write_text(json.dumps({**good, field: value}))
        with pytest.raises(ConfigError, match=needle):
            load_config(path)
    toml = root / "node-0.toml"
    toml.write_text('replica_id = 0\nchain_id = "x"\n')
    with pytest.raises(ConfigError, match="missing field"):
        load_config(toml)


def test_key_file_too_open_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "c"
    runner.invoke(consortium_app, ["init", "--nodes", "1", "--dir", str(root)])
    key = root / "keys" / "replica-0.pem"
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        read_key(key)


def test_every_command_has_help() -> None:
    for app, commands in [
        (consortium_app, ["init", "up", "status", "submit"]),
        (node_app, ["run"]),
        (explorer_app, ["block", "tx"]),
    ]:
        for command in commands:
            res = runner.invoke(app, [command, "--help"])
            assert res.exit_code == 0 and "Usage" in res.output, (command, res.output)


def test_unusable_directories_are_one_line_and_exit_2(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    for target in (afile / "sub", afile, Path("/proc/gridledger-x")):
        res = runner.invoke(consortium_app, ["init", "--dir", str(target), "--no-identity"])
        assert res.exit_code == 2, res.output
        _one_error_line(res.output)
    root = tmp_path / "c"
    res = runner.invoke(consortium_app, ["init", "--dir", str(root), "--no-identity"])
    assert res.exit_code == 0, res.output
    cfg_path = root / "node-0.json"
    data = json.loads(cfg_path.read_text())
    data["data_dir"] = str(afile)
    cfg_path.write_text(json.dumps(data))
    res = runner.invoke(node_app, ["run", str(cfg_path), "--duration", "1"])
    assert res.exit_code == 2, res.output
    _one_error_line(res.output)
