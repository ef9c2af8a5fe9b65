"""The identity genesis section and plugin: enabled by the section, refused if corrupt."""

from __future__ import annotations

import pytest

from gridledger.crypto.encoding import encode
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.errors import ConfigError
from gridledger.identity.ca import compute_certificate_der
from gridledger.identity.contracts import KIND_TRACE, IdentityContract
from gridledger.identity.genesis import (
    GENESIS_MM_KEY,
    GENESIS_RM_PSEUDONYM_KEY,
    GENESIS_ROOTS_KEY,
    GENESIS_TC_KEY,
    GenesisRoots,
    compute_identity_genesis_state,
    get_identity_config,
    get_pinned_rm_blind_certificate,
    is_identity_genesis,
    read_identity_config,
)
from gridledger.identity.plugin import PLUGIN
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.plugins import build_registry, register_plugin, unregister_plugin

from .conftest import NOW, World
from .helpers import Chain, corrupt_certificates

VALIDATORS = (Validator(0, Ed25519PrivateKey(bytes(32)).public_key.raw),)


def _genesis(state: dict[bytes, bytes]) -> GenesisConfig:
    return GenesisConfig.create("test-chain", VALIDATORS, NOW * 1000, state)


def _section(world: World) -> dict[bytes, bytes]:
    return compute_identity_genesis_state(
        world.roots, world.rm_blind.cert, world.tc_key, world.mm.cert
    )


def test_plugin_builds_the_contract_from_the_genesis_section(world: World) -> None:
    genesis = _genesis(_section(world))
    assert PLUGIN.name == "identity" and is_identity_genesis(genesis)
    [contract] = PLUGIN.build_contracts(genesis)
    assert isinstance(contract, IdentityContract)
    assert contract.config == get_identity_config(genesis)
    assert contract.config.rm_blind_certificate == world.rm_blind.cert
    assert get_pinned_rm_blind_certificate(genesis) == world.rm_blind.cert
    plain = _genesis({})
    assert PLUGIN.build_contracts(plain) == () and not is_identity_genesis(plain)
    with pytest.raises(ConfigError, match="no identity material"):
        get_pinned_rm_blind_certificate(plain)
    # what other contracts read back from state is the same configuration
    assert read_identity_config(Chain(world).get) == contract.config
    # the ledger's plugin registry picks it up
    register_plugin(PLUGIN)
    try:
        assert KIND_TRACE in build_registry(genesis).kinds
        assert KIND_TRACE not in build_registry(plain).kinds
    finally:
        unregister_plugin(PLUGIN.name)


def test_corrupt_or_partial_section_is_one_config_error(world: World) -> None:
    """A genesis whose identity section is partial, swapped or corrupted (including
    certificates that make the X.509 parser raise InvalidVersion or warn) is refused
    before a replica starts, with a ConfigError, never another exception."""
    state = _section(world)
    mm_der = compute_certificate_der(world.mm.cert)
    rm_der = compute_certificate_der(world.rm_blind.cert)
    variants = [
        {k: v for k, v in state.items() if k != key}
        for key in (GENESIS_ROOTS_KEY, GENESIS_RM_PSEUDONYM_KEY, GENESIS_TC_KEY, GENESIS_MM_KEY)
    ]
    variants += [
        {**state, GENESIS_TC_KEY: b"\x00garbage"},
        {**state, GENESIS_ROOTS_KEY: encode(GenesisRoots(()))},
        {**state, GENESIS_ROOTS_KEY: encode(GenesisRoots((mm_der,)))},  # not a CA
        {**state, GENESIS_RM_PSEUDONYM_KEY: mm_der},  # the MM as the RM's blind key
        {**state, GENESIS_MM_KEY: compute_certificate_der(world.rm.cert)},
    ]
    root_der = compute_certificate_der(world.roots[0])
    for bad in corrupt_certificates(root_der, "genesis-root", flips=15):
        variants.append({**state, GENESIS_ROOTS_KEY: encode(GenesisRoots((bad,)))})
    for bad in corrupt_certificates(rm_der, "genesis-rm", flips=15):
        variants.append({**state, GENESIS_RM_PSEUDONYM_KEY: bad})
    for variant in variants:
        with pytest.raises(ConfigError):
            PLUGIN.build_contracts(_genesis(variant))
