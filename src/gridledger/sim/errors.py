"""Errors of the simulator::

    ConfigError (gridledger.errors)
    ├── ScenarioError     a scenario file is unreadable, has an unknown key, a bad value
    │                     or names a data file that does not exist
    └── DataError         a data file (UCI readings, TMY profile) cannot be read or parsed
    GridledgerError
    └── SimulationError   a run cannot proceed (e.g. the data do not cover the period)

A bad scenario or data file is a user mistake, hence a ``ConfigError``: the CLI
prints its ``reason`` as one line. Every error names the file (and the key or
line) so that the line alone says what to fix.
"""

from __future__ import annotations

from gridledger.errors import ConfigError, GridledgerError

__all__ = ["DataError", "ScenarioError", "SimulationError"]


class ScenarioError(ConfigError):
    """A scenario file cannot be used; ``key`` is the dotted TOML key at fault (or "")."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        where = f"{source}: {key}: " if key else f"{source}: "
        super().__init__(where + problem)
        self.source = source
        self.key = key
        self.problem = problem


class DataError(ConfigError):
    """A data file cannot be read; ``line`` is the 1-based line at fault (0 if none)."""

    def __init__(self, source: str, problem: str, line: int = 0) -> None:
        where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(where + problem)
        self.source = source
        self.line = line
        self.problem = problem


class SimulationError(GridledgerError):
    """A simulation run cannot proceed with the scenario and data it was given."""
