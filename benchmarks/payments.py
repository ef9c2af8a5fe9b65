"""E-coin costs (seed 003's payments) next to GNU Taler's published figures.

Measures, on one core unless said otherwise:

* the mint: one RFC 9474 blind signature (RSA-2048, CRT); identified
  withdrawals per second (X.509 + RSA-PSS check of the request, blind signing,
  the ``payments.withdrawn`` record), with 1 and with 16 coins per request;
* a replica: coin checks per second (RSABSSA-SHA384-PSS verification), and
  coins per second through the payments contract (redeem blocks on one ledger);
* latencies of one withdrawal and one deposit, household and mint together
  (Taler's 22.7 ms and 22.4 ms include its network and database);
* settled payments per second end to end through a 4-replica consortium in
  this process over TCP on 127.0.0.1: ``payments.pay`` then ``payments.redeem``
  for invoices already on chain (the DSO's invoices: the market publishes the
  same :class:`Invoice`), then the mint's ``payments.reissue`` of fresh coins.

Taler's figures (F. Dold, "The GNU Taler System", PhD thesis, 2019, ch. 6):
5.28 ms per blind signature, 640-743 coins/s on a 96-core machine, withdraw
22.7 ms, deposit 22.4 ms. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509

from _common import fmt_ms, machine_note, markdown_table, median_seconds
from gridledger.crypto import blind_rsa
from gridledger.crypto.encoding import encode
from gridledger.crypto.rng import DeterministicRng, Rng
from gridledger.crypto.signatures import Ed25519PrivateKey, RsaPrivateKey
from gridledger.identity.ca import MemberAttributes, create_authority, process_issue
from gridledger.ledger.block import GenesisConfig
from gridledger.ledger.certificate import Validator
from gridledger.ledger.chain import Ledger
from gridledger.ledger.contracts import ContractRegistry
from gridledger.ledger.contracts_builtin import KvContract
from gridledger.ledger.storage import MemoryBlockStore
from gridledger.ledger.tx import Transaction
from gridledger.node.client import ConsortiumClient
from gridledger.node.config import ConsensusParams, load_config
from gridledger.node.consortium import (
    ConsortiumLayout,
    ConsortiumProcesses,
    init_consortium,
    load_genesis,
)
from gridledger.payments.coins import DenominationKey
from gridledger.payments.config import PaymentsConfig, compute_genesis_state
from gridledger.payments.contract import PaymentsContract
from gridledger.payments.messages import Credit
from gridledger.payments.mint import (
    Mint,
    create_denomination_key,
    create_dso_invoice,
    create_mint,
    get_verifiers,
    process_deposit,
    process_reissue,
    process_withdrawal,
)
from gridledger.payments.units import Money
from gridledger.payments.wallet import (
    HeldCoin,
    build_deposit_request,
    build_pay_tx,
    build_redeem_tx,
    build_reissue_request,
    build_withdraw_request,
    choose_denomination_keys,
    create_payment,
    finalize_coins,
    open_payment,
    prepare_coins,
)

CHAIN = "bench-chain"
NOW_S = 1_750_000_000
NOW_MS = NOW_S * 1000
FAR_MS = 2**42
DENOMINATIONS = tuple(1 << i for i in range(8))  # 1..128: any price below 256
PAYMENTS = 600
TALER_BLIND_SIGN_MS = 5.28
TALER_COINS_PER_S = "640-743 (96 cores)"
TALER_WITHDRAW_MS = 22.7
TALER_DEPOSIT_MS = 22.4
TARGET_WITHDRAWALS = 500
TARGET_CHECKS = 5000
TARGET_SETTLED = 300
FAST = ConsensusParams(
    max_batch=400,
    batch_delay_ms=5,
    view_change_timeout_ms=5000,
    checkpoint_interval=8,
    watermark_window=16,
    tick_ms=20,
    status_log_s=60,
)


@dataclass
class Setup:
    mint: Mint
    keys: list[DenominationKey]
    cert: x509.Certificate
    household_key: RsaPrivateKey
    config: PaymentsConfig
    rng: Rng


def make_setup() -> Setup:
    rng = DeterministicRng("bench-payments")
    ca = create_authority("CA", Ed25519PrivateKey.generate(rng), NOW_S - 86400, 3650 * 86400, rng)
    household_key = RsaPrivateKey.generate(2048)
    attrs = MemberAttributes("prosumer", "house-1", "meter-1", ("trade",))
    cert = process_issue(
        ca, "house-1", household_key.public_key, attrs, NOW_S - 86400, 3000 * 86400, rng
    )
    pairs = []
    for value in DENOMINATIONS:
        k = RsaPrivateKey.generate(2048)
        pairs.append((create_denomination_key(k, value, 0, FAR_MS, FAR_MS), k))
    operator = Ed25519PrivateKey.generate(rng)
    mint = create_mint(CHAIN, operator, (ca.certificate,), pairs)
    keys = [d for d, _ in pairs]
    config = PaymentsConfig(operator.public_key.raw, tuple(keys), ())
    return Setup(mint, keys, cert, household_key, config, rng)


def withdraw(s: Setup, amount: int, now_ms: int = NOW_MS) -> tuple[HeldCoin, ...]:
    pending = prepare_coins(choose_denomination_keys(s.keys, amount, now_ms), s.rng)
    request = build_withdraw_request(CHAIN, s.cert, s.household_key, 0, pending, now_ms, s.rng)
    response, _ = process_withdrawal(s.mint, request, now_ms)
    return finalize_coins(pending, response.blind_signatures)


def bench_mint(s: Setup) -> list[list[object]]:
    """Blind signature, withdrawals/s at 1 and 16 coins per request, client latencies."""
    one = s.keys[0]
    signer = s.mint.keys[next(iter(s.mint.keys))].signer
    pending = prepare_coins([one] * 64, s.rng)
    blinded = [p.blinded.blinded_msg for p in pending]
    it = iter(range(10**9))
    sign_s = median_seconds(
        lambda: blind_rsa.blind_sign(signer, blinded[next(it) % 64]), repeat=300
    )
    rows: list[list[object]] = [
        [
            "blind signature, RSA-2048 (ms)",
            TALER_BLIND_SIGN_MS,
            fmt_ms(sign_s),
            f"{TALER_BLIND_SIGN_MS / 1000 / sign_s:.1f}x",
            "-",
        ]
    ]
    for batch in (1, 16):
        requests = []
        for _ in range(max(1, 800 // batch)):
            pend = prepare_coins([one] * batch, s.rng)
            requests.append(
                build_withdraw_request(CHAIN, s.cert, s.household_key, 0, pend, NOW_MS, s.rng)
            )
        t0, c0 = time.perf_counter(), time.process_time()
        done = 0
        for req in requests:
            process_withdrawal(s.mint, req, NOW_MS)
            done += batch
            if time.perf_counter() - t0 > 20:
                break
        cpu = done / (time.process_time() - c0)
        wall = done / (time.perf_counter() - t0)
        label = f"withdrawals/s, one core, {batch} coin{'s' if batch > 1 else ''} per request"
        met = "yes" if cpu >= TARGET_WITHDRAWALS else "no"
        rows.append([label, TALER_COINS_PER_S, f"{cpu:,.0f} (wall {wall:,.0f})", "-", met])
    withdraw_s = median_seconds(lambda: withdraw(s, 1), repeat=50)
    rows.append(
        [
            "withdraw one coin, household + mint (ms)",
            TALER_WITHDRAW_MS,
            fmt_ms(withdraw_s),
            f"{TALER_WITHDRAW_MS / 1000 / withdraw_s:.0f}x",
            "-",
        ]
    )
    return rows


def bench_replica(s: Setup) -> list[list[object]]:
    """Coin checks/s, and coins/s through the contract (redeem-like spends) on one ledger."""
    coins = [c for _ in range(100) for c in withdraw(s, 255)]  # 800 coins, 8 values
    verifiers = get_verifiers(s.mint)
    t0, c0 = time.perf_counter(), time.process_time()
    checked = 0
    for _ in range(5):
        for held in coins:
            verifiers[held.coin.key_id].verify_coin(held.coin, NOW_MS)
            checked += 1
        if time.perf_counter() - t0 > 10:
            break
    check_rate = checked / (time.process_time() - c0)
    check_wall = checked / (time.perf_counter() - t0)
    # Deposits spend coins through the same code as redeems; 16 coins per transaction.
    contract = PaymentsContract(s.config)
    registry = ContractRegistry((KvContract(), contract))
    v = Ed25519PrivateKey.generate(s.rng)
    genesis = GenesisConfig.create(CHAIN, (Validator(0, v.public_key.raw),), NOW_MS, {})
    ledger = Ledger(MemoryBlockStore(), registry, genesis)
    deposits = []
    for i in range(0, len(coins), 16):
        req = build_deposit_request(
            CHAIN, s.cert, s.household_key, 0, coins[i : i + 16], NOW_MS, s.rng
        )
        deposits.append(process_deposit(s.mint, req, NOW_MS))
    c0 = time.process_time()
    _, outcome = ledger.commit(deposits, NOW_MS + 1000, 0, 0)
    block_rate = len(coins) / (time.process_time() - c0)
    assert all(r.ok for r in outcome.receipts)
    dep_coins = withdraw(s, 1)
    dep_s = median_seconds(
        lambda: process_deposit(
            s.mint,
            build_deposit_request(CHAIN, s.cert, s.household_key, 0, dep_coins, NOW_MS, s.rng),
            NOW_MS,
        ),
        repeat=50,
    )
    return [
        [
            "coin checks/s in a replica (verify)",
            TALER_COINS_PER_S,
            f"{check_rate:,.0f} (wall {check_wall:,.0f})",
            "-",
            "yes" if check_rate >= TARGET_CHECKS else "no",
        ],
        ["coins/s spent through the contract (one ledger)", "-", f"{block_rate:,.0f}", "-", "-"],
        [
            "deposit one coin, household + mint (ms)",
            TALER_DEPOSIT_MS,
            fmt_ms(dep_s),
            f"{TALER_DEPOSIT_MS / 1000 / dep_s:.0f}x",
            "-",
        ],
    ]


async def _submit(client: ConsortiumClient, txs: list[Transaction]) -> float:
    t0 = time.perf_counter()
    chunks = [txs[i : i + 200] for i in range(0, len(txs), 200)]
    results = await asyncio.gather(
        *(client.submit([encode(t) for t in c], timeout=60) for c in chunks)
    )
    elapsed = time.perf_counter() - t0
    bad = [r for res in results for r in res if r["status"] != "committed"]
    if bad:
        raise RuntimeError(f"{len(bad)} rejected, e.g. {bad[0]['reason']}")
    return elapsed


def _add_payments_genesis(layout: ConsortiumLayout, config: PaymentsConfig) -> None:
    """Write the payments section into the consortium's genesis (before any replica starts)."""
    path = load_config(layout.configs[0]).genesis_file
    genesis = load_genesis(path)
    state = dict(genesis.state) | compute_genesis_state(config)
    path.write_bytes(encode(dataclasses.replace(genesis, state=tuple(sorted(state.items())))))


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the given processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def bench_consortium(s: Setup) -> tuple[list[list[object]], float]:
    """Settled payments per second through 4 replica processes (TCP on 127.0.0.1)."""
    now = int(time.time() * 1000)
    rng = s.rng
    invoices, pays, redeems, reissue_requests = [], [], [], []
    amounts = [1 + rng.randbelow(255) for _ in range(PAYMENTS)]
    for amount in amounts:
        coins = withdraw(s, amount)
        dso, tx = create_dso_invoice(s.mint, amount, now + 3_600_000, rng)
        invoices.append(tx)
        msg, _ = create_payment("payments", dso.invoice, coins, rng)
        pays.append(build_pay_tx(CHAIN, msg, Ed25519PrivateKey.generate(rng), 0))
        contents = open_payment(
            "payments", dso.invoice, msg, dso.enc_key, get_verifiers(s.mint), now
        )
        redeems.append(build_redeem_tx(CHAIN, msg, contents, dso.redeem_key))
        pending = prepare_coins(choose_denomination_keys(s.keys, amount, now), rng)
        reissue_requests.append((build_reissue_request(CHAIN, dso.redeem_key, pending), amount))
    coins_per_payment = statistics.mean(bin(a).count("1") for a in amounts)

    with tempfile.TemporaryDirectory() as tmp:
        layout = init_consortium(
            Path(tmp) / "c", 4, 47100, chain_id=CHAIN, consensus=FAST, identity=None
        )
        _add_payments_genesis(layout, s.config)
        procs = ConsortiumProcesses(layout)
        try:
            procs.start()
            procs.wait_ready(60)

            pids = [p.pid for p in procs.procs.values()]
            cpu: list[float] = []

            async def run() -> tuple[float, float, float, float]:
                client = ConsortiumClient(layout.get_api_addresses())
                try:
                    t_inv = await _submit(client, invoices)
                    cpu.append(_cpu_seconds(pids))
                    t_pay = await _submit(client, pays)
                    t_red = await _submit(client, redeems)
                    cpu.append(_cpu_seconds(pids))
                    t0 = time.perf_counter()
                    reissues = [
                        process_reissue(s.mint, req, Credit(Money(amount), "open"), now)[0]
                        for req, amount in reissue_requests
                    ]
                    t_sign = time.perf_counter() - t0
                    t_re = await _submit(client, reissues) + t_sign
                    return t_inv, t_pay, t_red, t_re
                finally:
                    await client.close()

            t_inv, t_pay, t_red, t_re = asyncio.run(asyncio.wait_for(run(), 300))
        finally:
            procs.stop()
    settled = PAYMENTS / (t_pay + t_red)
    cpu_per_payment = (cpu[1] - cpu[0]) / PAYMENTS
    cores = os.cpu_count() or 1
    rows: list[list[object]] = [
        ["invoices published (tx/s)", f"{PAYMENTS / t_inv:,.0f}"],
        ["payments posted, `payments.pay` (tx/s)", f"{PAYMENTS / t_pay:,.0f}"],
        ["redeems, `payments.redeem` (tx/s)", f"{PAYMENTS / t_red:,.0f}"],
        [
            f"**settled payments/s** (pay + redeem; target ≥ {TARGET_SETTLED})",
            f"**{settled:,.0f}**",
        ],
        [
            "with the mint's reissue of fresh coins (payments/s)",
            f"{PAYMENTS / (t_pay + t_red + t_re):,.0f}",
        ],
        ["coins per payment (mean)", f"{coins_per_payment:.1f}"],
        [
            "replica CPU per settled payment, 4 replicas together (ms)",
            f"{cpu_per_payment * 1000:.2f}",
        ],
        [
            f"capacity if the {cores} cores were ours: {cores} / that (payments/s)",
            f"{cores / cpu_per_payment:,.0f}",
        ],
    ]
    return rows, settled


def main() -> None:
    s = make_setup()
    rows = bench_mint(s) + bench_replica(s)
    print("### Payments: e-coins (seed 003) next to GNU Taler")
    print()
    print(f"Machine: {machine_note()}. Medians unless a rate; ratio = Taler / ours.")
    print("One-core rates divide by this process's CPU time (the machine is shared; wall-clock")
    print(
        "rates in brackets). Load average at start: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
        + "."
    )
    print("Taler: Dold's thesis (2019), exchange on a 96-core machine with PostgreSQL;")
    print("its latencies include the network and the database, ours are in-process CPU.")
    print()
    print(markdown_table(["measure", "GNU Taler", "ours", "ratio", "target met"], rows))
    print()
    cons_rows, settled = bench_consortium(s)
    print(f"End to end through a 4-replica PBFT consortium ({PAYMENTS} payments; four replica")
    print("processes on this machine over TCP on 127.0.0.1, SQLite synchronous=FULL as deployed;")
    print("invoices on chain first, 200 transactions per client submit):")
    print()
    print(markdown_table(["measure", "ours"], cons_rows))
    print()
    print("A settled payment is two transactions (`pay`: the sealed coins and their locks;")
    print("`redeem`: the coins spent, the payment recorded, a credit opened), each executed")
    print("by all four replicas, which share this machine's cores with each other and with")
    print("whatever else runs on it. The capacity row divides the cores by the replicas' own")
    print("CPU time per settled payment (from /proc), which does not depend on that load.")
    verdict = "met" if settled >= TARGET_SETTLED else "not met at this load"
    print(f"Settled-payments target (≥ {TARGET_SETTLED}/s): {verdict}.")


if __name__ == "__main__":
    main()
