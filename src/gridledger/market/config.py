"""The market's genesis section: one :class:`MarketConfig` under ``market/genesis/config``.

A chain without the key runs no market; a key that does not decode, or whose
values are inconsistent (a tick that does not divide the bounds, a gate after
the slot start, keys of the wrong size), is a :class:`MarketConfigError`
before any replica starts.
"""

from __future__ import annotations

import functools

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.errors import EncodingError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.state import compute_state_key
from gridledger.market import keys
from gridledger.market.errors import MarketConfigError
from gridledger.market.messages import MarketConfig
from gridledger.payments.invoice import MAX_AMOUNT

NAMESPACE = "market"
CLEARING_MODES = ("cda", "pay-as-bid", "uniform")
GENESIS_CONFIG_KEY = compute_state_key(NAMESPACE, keys.CONFIG)
_YEAR_MS = 366 * 86_400_000


def check_config(config: MarketConfig) -> None:
    """Raise :class:`MarketConfigError` unless the parameters are consistent."""
    if config.tick <= 0 or config.lot <= 0:
        raise MarketConfigError("market: tick and lot must be positive")
    if not 0 < config.min_price <= config.max_price:
        raise MarketConfigError("market: price bounds must satisfy 0 < min <= max")
    if config.min_price % config.tick or config.max_price % config.tick:
        raise MarketConfigError("market: price bounds must be on the tick")
    if config.max_quantity < config.lot:
        raise MarketConfigError("market: max_quantity below one lot")
    if config.max_price * config.max_quantity > MAX_AMOUNT:
        raise MarketConfigError("market: max_price * max_quantity exceeds the largest invoice")
    if not 0 < config.horizon_ms <= _YEAR_MS:
        raise MarketConfigError("market: horizon_ms must be positive and at most a year")
    if config.slot_ms <= 0 or not 0 <= config.gate_lead_ms < config.slot_ms:
        raise MarketConfigError("market: slot_ms > gate_lead_ms >= 0 required")
    windows = (config.slot_ms, config.settle_ms, config.pay_window_ms, config.offer_validity_ms)
    if any(not 0 < w <= _YEAR_MS for w in windows):
        raise MarketConfigError("market: slot, settle, pay and offer windows must be 1 ms..1 year")
    if config.clearing not in CLEARING_MODES:
        raise MarketConfigError(f"market: clearing must be one of {CLEARING_MODES}")
    if any(len(k) != 32 for k in config.attesters):
        raise MarketConfigError("market: attester keys are 32-byte Ed25519 keys")
    if len(config.dso_redeem_key) != 32 or len(config.dso_enc_key) != 32:
        raise MarketConfigError("market: DSO keys are 32 bytes")
    if not config.piece_ms or any(ms <= 0 for ms in config.piece_ms):
        raise MarketConfigError("market: piece durations must be positive")
    if config.piece_power_w <= 0 or config.surplus_threshold < 0 or config.depth_levels < 0:
        raise MarketConfigError("market: piece power, threshold and depth must be >= 0")
    prices = (config.piece_price, config.dso_import_price, config.dso_export_price)
    if any(not 0 < p <= MAX_AMOUNT for p in prices):
        raise MarketConfigError("market: piece prices must be positive invoice amounts")


def compute_genesis_state(config: MarketConfig) -> dict[bytes, bytes]:
    """The genesis entries (full keys) that enable the market with ``config``."""
    check_config(config)
    return {GENESIS_CONFIG_KEY: encode(config)}


@functools.lru_cache(maxsize=16)
def parse_config(raw: bytes) -> MarketConfig:
    """Decode and check the section (cached: it never changes after genesis)."""
    try:
        config = decode_as(MarketConfig, raw)
    except EncodingError as exc:
        raise MarketConfigError(f"market: malformed config ({exc.reason})") from None
    check_config(config)
    return config


def get_market_config(genesis: GenesisConfig) -> MarketConfig | None:
    """The market's config from the genesis, ``None`` if the chain has no market."""
    raw = dict(genesis.state).get(GENESIS_CONFIG_KEY)
    return None if raw is None else parse_config(raw)
