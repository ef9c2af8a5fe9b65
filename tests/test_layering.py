"""Each layer imports only the layers below it (DEVELOPERS.md)."""

from __future__ import annotations

import ast
from pathlib import Path

LAYERS = [
    "crypto",
    "ledger",
    "consensus",
    "identity",
    "payments",
    "market",
    "aggregation",
    "node",
    "sim",
    "cli",
]
SRC = Path(__file__).resolve().parents[1] / "src" / "gridledger"


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "gridledger" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def test_layers_import_only_lower_layers() -> None:
    violations = []
    for rank, layer in enumerate(LAYERS):
        allowed = set(LAYERS[: rank + 1])
        for path in sorted((SRC / layer).rglob("*.py")):
            bad = _imported_layers(path) - allowed
            if bad:
                violations.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_the_check_itself_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from gridledger.cli.main import app\nimport gridledger.ledger.tx\n")
    assert _imported_layers(probe) == {"cli", "ledger"}
