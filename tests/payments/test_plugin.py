"""The plugin builds the contract from the genesis; corrupt sections are one ConfigError;
key rotation publishes new keys on chain and the old ones keep working in their window."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridledger.crypto.encoding import encode
from gridledger.errors import ConfigError
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.plugins import build_registry, register_plugin, unregister_plugin
from gridledger.ledger.state import compute_state_key
from gridledger.payments.config import GENESIS_KEY, compute_genesis_state, get_config
from gridledger.payments.contract import PaymentsContract
from gridledger.payments.messages import KIND_REDEEM, DenominationUpdate
from gridledger.payments.mint import create_denomination_key, process_add_keys, process_withdrawal
from gridledger.payments.plugin import PLUGIN
from gridledger.payments.wallet import Wallet, build_withdraw_request, finalize_coins, prepare_coins
from tests.ledger.helpers import CHAIN, VALIDATORS
from tests.payments.helpers import DAY_MS, NOW_MS, Harness, World, make_genesis


def test_plugin_enabled_by_genesis_section(world: World) -> None:
    (contract,) = PLUGIN.build_contracts(make_genesis(world))
    assert isinstance(contract, PaymentsContract) and KIND_REDEEM in contract.kinds
    bare = GenesisConfig.create(CHAIN, VALIDATORS, 0, {})
    assert PLUGIN.build_contracts(bare) == ()
    register_plugin(PLUGIN)
    try:
        assert KIND_REDEEM in build_registry(make_genesis(world)).kinds
    finally:
        unregister_plugin(PLUGIN.name)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda w: b"\x00garbage",
        lambda w: encode(replace(w.config(), mint_key=bytes(32))),
        lambda w: encode(replace(w.config(), invoice_namespaces=("a/b",))),
        lambda w: encode(
            replace(
                w.config(), denominations=(*w.config().denominations, w.config().denominations[0])
            )
        ),
        lambda w: encode(
            replace(
                w.config(),
                denominations=(replace(w.config().denominations[0], public_key_der=b"\x30\x00"),),
            )
        ),
    ],
)
def test_corrupt_section_is_config_error(world: World, corrupt) -> None:  # type: ignore[no-untyped-def]
    state = {compute_state_key("payments", GENESIS_KEY): corrupt(world)}
    with pytest.raises(ConfigError):
        get_config(state)
    with pytest.raises(ConfigError):
        PLUGIN.build_contracts(GenesisConfig.create(CHAIN, VALIDATORS, 0, state))


def test_genesis_state_round_trips(world: World) -> None:
    assert get_config(compute_genesis_state(world.config())) == world.config()


def test_key_rotation(h: Harness) -> None:
    start = h.now_ms + 5_000
    new = create_denomination_key(h.world.spare_key, 1, start, start + DAY_MS, start + 2 * DAY_MS)
    rogue = create_denomination_key(h.world.spare_key, 1, 0, NOW_MS + DAY_MS, NOW_MS + DAY_MS)
    # A key whose window started before its publication is refused (no back-dated keys).
    (r,) = h.commit(h.mint_tx("payments.denominations", DenominationUpdate((rogue,))))
    assert not r.ok and "start after" in r.reason
    h.commit_ok(process_add_keys(h.mint, [(new, h.world.spare_key)]))
    (r,) = h.commit(process_add_keys(h.mint, [(new, h.world.spare_key)]))
    assert not r.ok and "already published" in r.reason
    h.now_ms = start
    who = h.world.households[0]
    pending = prepare_coins([new], h.rng)
    request = build_withdraw_request(CHAIN, who.cert, who.key, 0, pending, h.now_ms, h.rng)
    response, tx = process_withdrawal(h.mint, request, h.now_ms)
    h.commit_ok(tx)
    wallet = Wallet(list(finalize_coins(pending, response.blind_signatures)))
    old = h.load_wallet(who, 1)
    seller = h.publish_invoice(2)
    msg, _ = h.pay(Wallet(wallet.coins + old.coins), seller)  # one new-key coin, one old
    h.commit_ok(h.redeem_tx(seller, msg))
