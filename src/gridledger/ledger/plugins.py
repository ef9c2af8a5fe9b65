"""Contract plugins: how a package adds its contracts to every replica without editing the node.

A plugin is an object with a ``name`` and ``build_contracts(genesis)``. Every
replica builds its :class:`~gridledger.ledger.contracts.ContractRegistry` as the
built-in KV contract plus the contracts of every known plugin, in the order of
their names, so replicas that share a genesis and an installed code base run
the same contracts. A plugin decides from the genesis whether it is enabled:
its *genesis section* is initial state under ``b"<namespace>/genesis/..."``
(role keys, parameters), and a chain whose genesis has no such section simply
does not run it. A corrupt section is a :class:`~gridledger.errors.ConfigError`,
raised before the replica starts rather than a divergence later.

Plugins are known two ways:

* installed packages name them under the entry-point group ``gridledger.plugins``
  (``pyproject.toml``), so the replica process finds them by itself;
* :func:`register_plugin` adds one at run time (tests, embedders). The in-process
  runtimes (simulator, demo) see it at once; a replica started as a separate
  process sees only entry points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

from gridledger.crypto.rng import Rng
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.contracts import Contract, ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract

ENTRY_POINT_GROUP = "gridledger.plugins"


class ContractPlugin(Protocol):
    """A package's contracts, enabled by its section of the genesis."""

    @property
    def name(self) -> str:
        """Unique plugin name (usually the namespace of its main contract)."""
        ...

    def build_contracts(self, genesis: GenesisConfig) -> tuple[Contract, ...]:
        """The contracts to run on a chain with ``genesis``; ``()`` if it does not enable them.

        Raise :class:`~gridledger.errors.ConfigError` if the genesis section is corrupt.
        """
        ...


@dataclass(frozen=True)
class GenesisSetup:
    """What a plugin gets when a consortium is created, to write its genesis section."""

    root: Path  # the consortium directory; role material goes under ``root/<plugin name>/``
    chain_id: str
    validators: tuple[Validator, ...]
    now_ms: int
    rng: Rng


@runtime_checkable
class GenesisSectionMaker(Protocol):
    """A plugin that creates its role material and genesis section at consortium init."""

    def make_genesis_section(self, setup: GenesisSetup) -> Mapping[bytes, bytes]:
        """Initial state (full keys under ``b"<namespace>/genesis/"``); may write files."""
        ...


def compute_plugin_genesis(
    setup: GenesisSetup, names: tuple[str, ...] | None = None
) -> dict[bytes, bytes]:
    """The genesis sections of the plugins named (all that make one, if ``None``)."""
    state: dict[bytes, bytes] = {}
    known = {p.name for p in get_plugins()}
    for name in names or ():
        if name not in known:
            raise ConfigError(f"unknown plugin {name!r} (known: {', '.join(sorted(known))})")
    for plugin in get_plugins():
        if names is not None and plugin.name not in names:
            continue
        if isinstance(plugin, GenesisSectionMaker):
            for key, value in plugin.make_genesis_section(setup).items():
                if key in state:
                    raise ConfigError(f"plugin {plugin.name!r} writes genesis key {key!r} twice")
                state[key] = value
    return state


_registered: dict[str, ContractPlugin] = {}
_entry_points: dict[str, ContractPlugin] | None = None


def register_plugin(plugin: ContractPlugin) -> None:
    """Make ``plugin`` known to every registry built in this process from now on."""
    if not plugin.name or not isinstance(plugin.name, str):
        raise ConfigError("a plugin needs a non-empty name")
    _registered[plugin.name] = plugin


def unregister_plugin(name: str) -> None:
    """Forget a plugin added with :func:`register_plugin` (tests)."""
    _registered.pop(name, None)


def _load_entry_points() -> dict[str, ContractPlugin]:
    global _entry_points
    if _entry_points is None:
        found: dict[str, ContractPlugin] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken install is a configuration error
                raise ConfigError(f"plugin {ep.name!r} ({ep.value}) does not load: {exc}") from exc
            found[plugin.name] = plugin
        _entry_points = found
    return _entry_points


def get_plugins() -> tuple[ContractPlugin, ...]:
    """Every known plugin (entry points, then run-time registrations), sorted by name."""
    merged = dict(_load_entry_points())
    merged.update(_registered)
    return tuple(merged[name] for name in sorted(merged))


def build_registry(genesis: GenesisConfig | None = None) -> ContractRegistry:
    """The contracts every replica of the chain with ``genesis`` runs.

    Always the KV contract; then each plugin's contracts, plugins in name
    order. Without a genesis (unit tests of the ledger) only the KV contract.
    """
    contracts: list[Contract] = [KvContract()]
    if genesis is not None:
        for plugin in get_plugins():
            contracts.extend(plugin.build_contracts(genesis))
    return ContractRegistry(tuple(contracts))
