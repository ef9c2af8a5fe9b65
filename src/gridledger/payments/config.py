"""The payments section of the genesis: the mint's transaction key, coin keys, invoice sources.

Stored as initial state at ``payments/genesis/config`` (the contract never
writes it). Every replica parses the same bytes, so every replica builds the
same contract; a corrupt section is one :class:`~gridledger.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.errors import EncodingError, KeyFormatError
from gridledger.crypto.signatures import is_valid_ed25519_public_key
from gridledger.errors import ConfigError
from gridledger.ledger.contracts import is_valid_namespace
from gridledger.ledger.state import compute_state_key
from gridledger.payments.coins import DenominationKey, DenominationVerifier
from gridledger.payments.invoice import NAMESPACE

GENESIS_KEY = b"genesis/config"


@wire_type("payments.config/1")
@dataclass(frozen=True)
class PaymentsConfig:
    """Who the mint is, its initial coin keys, and which namespaces may publish invoices.

    Only listed namespaces (plus ``payments`` itself, for the DSO's invoices) are
    trusted: a contract that lets anyone write ``invoice/...`` keys (the test KV
    contract) would let a payer invoice itself and redeem its own coin first.
    """

    mint_key: bytes
    denominations: tuple[DenominationKey, ...]
    invoice_namespaces: tuple[str, ...]


def compute_genesis_state(config: PaymentsConfig) -> dict[bytes, bytes]:
    """The genesis entries (full state keys) that enable payments on a chain."""
    return {compute_state_key(NAMESPACE, GENESIS_KEY): encode(config)}


def get_config(state: Mapping[bytes, bytes]) -> PaymentsConfig | None:
    """The config in a genesis state map, ``None`` if absent; :class:`ConfigError` if corrupt."""
    raw = state.get(compute_state_key(NAMESPACE, GENESIS_KEY))
    if raw is None:
        return None
    try:
        config = decode_as(PaymentsConfig, raw)
    except EncodingError as exc:
        raise ConfigError(f"payments genesis section: {exc.reason}") from None
    check_config(config)
    return config


def check_config(config: PaymentsConfig) -> None:
    """Raise :class:`ConfigError` for a bad mint key, coin key or namespace."""
    if not is_valid_ed25519_public_key(config.mint_key):
        raise ConfigError("payments: mint_key is not an Ed25519 public key")
    for ns in config.invoice_namespaces:
        if not is_valid_namespace(ns):
            raise ConfigError(f"payments: invoice namespace {ns!r} is not allowed")
    ids = set()
    for key in config.denominations:
        try:
            ids.add(DenominationVerifier.from_key(key).key_id)
        except KeyFormatError as exc:
            raise ConfigError(f"payments: denomination key: {exc.reason}") from None
    if len(ids) != len(config.denominations):
        raise ConfigError("payments: a denomination key is listed twice")
