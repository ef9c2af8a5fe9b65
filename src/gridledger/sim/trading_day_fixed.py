"""The trading day on seed 003's fixed-piece market, on the real stack.

Same set-up, households, registration, wallets, deposits and bills as the
double-auction day (:mod:`gridledger.sim.trading_day`); only the hour differs.
45 minutes before each delivery hour:

1. every household with a surplus offers it in pieces (``market.piece-offer``:
   fresh one-time keys and a nonce per piece, nothing else), and once they are
   pooled every household with a deficit requests its pieces
   (``market.signed-piece-request``, see below); the contract pairs each request
   with the oldest live offer of the hour, or with the DSO (grid energy at the
   import tariff) when none is open; past the surplus threshold the DSO buys the
   oldest offers itself (export tariff);
2. each pairing is paid like a trade: the requester seals coins worth the pairing's
   amount to the offer's one-time key (refreshing coins into exact change first when
   its wallet has none); a household seller opens and redeems the payment and withdraws
   fresh coins for it anonymously; the DSO, paid, redeems into its one key's credit and
   keeps it (``absorb``, end of day); the DSO, buying, pays with coins it mints for
   itself (``dso-mint``);
3. the requester of the day's first local pairing never pays it: at the pairing's
   deadline every replica voids it (the seller does not deliver: it was not paid)
   and, the request being accountable, records a default against its pseudonym;
   t of n trustees trace it as in the double-auction day.

A piece is the scenario's piece power for one whole slot (an hour): 100 W gives
100 Wh. What is left of a surplus or deficit below one piece, and offers nobody
requested before they expired, are metered against the grid at the tariffs and
land on the bill (as in the fast model, :mod:`gridledger.sim.fixed_piece`).

Deviations from seed 003, and why (``docs/simulator.md``): requests are signed under
the round's pseudonym (accountable), because an anonymous request that is never paid
leaves nothing to trace; pieces last the hourly slot instead of 10 minutes, because
every piece is five or six transactions on the ledger; a meter announces an hour's
pieces at once, so the surplus threshold is scaled to the pieces of an hour; there
is no delivery leg on chain (seed 003 trusts semi-honest meters).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from gridledger.crypto.encoding import decode_as
from gridledger.crypto.signatures import Ed25519PrivateKey
from gridledger.identity.messages import ContractDefault
from gridledger.ledger.tx import Transaction
from gridledger.market import keys as market_keys
from gridledger.market.client import (
    OrderSecrets,
    build_piece_tx,
    build_signed_piece_tx,
    build_trade_redeem,
    create_piece_offer,
    create_piece_request,
    create_trade_payment,
    sign_piece_request,
)
from gridledger.market.messages import LEG_MONEY, MarketConfig, Pairing, compute_evidence_id
from gridledger.market.settlement import get_contract_default
from gridledger.node.simnet import SIM_CHAIN
from gridledger.payments.contract import get_published_verifiers
from gridledger.payments.invoice import Invoice, get_invoice
from gridledger.payments.messages import MAX_COINS, PaymentMessage
from gridledger.payments.mint import (
    MAX_COINS_PER_REQUEST,
    build_absorb_tx,
    process_dso_withdrawal,
)
from gridledger.payments.wallet import (
    HeldCoin,
    Wallet,
    build_pay_tx,
    build_refresh_tx,
    choose_coins,
    choose_denomination_keys,
    process_remove_coins,
)
from gridledger.sim.trading_day import (
    HOUR_MS,
    ORDER_LEAD_MS,
    DayResult,
    Home,
    TradeRecord,
    TradingDay,
    TradingDayError,
    check_ledger_and_bills,
)

PAY_WINDOW_MS = 10 * 60_000  # a pairing must be paid within 10 minutes of block time
REQUEST_WINDOW_MS = 10 * 60_000  # a signed request pairs within 10 minutes of asking, or never
OFFER_VALIDITY_MS = 30 * 60_000  # an hour's offers wait out its requests, not its gate
DSO = "DSO"


@dataclass
class PieceBook:
    """What one household did in the piece market (pieces and money)."""

    offered: int = 0
    requested: int = 0
    sold_local: int = 0
    bought_local: int = 0
    sold_dso: int = 0
    bought_dso: int = 0
    paid_dso_mc: int = 0
    earned_dso_mc: int = 0


@dataclass
class _Due:
    """One pairing to pay: who pays (``None``: the DSO) and who is paid."""

    pairing: Pairing
    invoice: Invoice
    hour: int
    buyer: Home | None
    seller: Home | None
    secret: OrderSecrets


@dataclass
class PieceDay(TradingDay):
    """A :class:`TradingDay` whose hours trade in seed 003's fixed-piece market.

    ``accountable=False`` sends seed 003's bare requests instead: the reneged pairing
    is then only void, and nobody can be traced (``result.traced`` stays ``None``).
    """

    accountable: bool = True
    books: dict[str, PieceBook] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        spec = self.scenario.fixed_piece
        self.piece_wh = int(spec.piece_power)  # the piece power for one hourly slot
        if self.piece_wh <= 0:
            raise TradingDayError("the fixed-piece market needs a piece power above 0 W")
        self.piece_price = self.local_price * self.piece_wh
        self.dso_sell_price = self.import_price * self.piece_wh
        self.dso_buy_price = self.export_price * self.piece_wh
        self.offer_secrets: dict[bytes, tuple[Home, OrderSecrets]] = {}  # by offer id
        self.requesters: dict[bytes, Home] = {}  # by pairing id
        self.seen_pairings: set[bytes] = set()
        self.reneged_pairing: Pairing | None = None
        self.reneging_home: Home | None = None
        self.dso_redeems = 0
        self.dso_received_mc = 0
        self.dso_paid_mc = 0
        self.dso_pairings = 0
        self.dso_hourly: dict[int, list[int]] = {}  # hour -> [Wh the DSO sold, Wh it bought]

    def compute_market_config(self, config: MarketConfig) -> MarketConfig:
        spec = self.scenario.fixed_piece
        homes = self.households if self.households is not None else self.scenario.household_count
        per_hour = max(1, 60 // max(1, spec.piece_minutes))
        threshold = spec.surplus_threshold or 2 * max(1, homes) * per_hour
        return dataclasses.replace(
            config,
            piece_power_w=self.piece_wh,
            piece_ms=(HOUR_MS,),
            piece_price=self.piece_price,
            dso_import_price=self.dso_sell_price,
            dso_export_price=self.dso_buy_price,
            surplus_threshold=threshold,
            offer_validity_ms=OFFER_VALIDITY_MS,
            pay_window_ms=PAY_WINDOW_MS,
        )

    def _book(self, home: Home) -> PieceBook:
        return self.books.setdefault(home.name, PieceBook())

    # -- an hour ------------------------------------------------------------------------

    hour_steps = "offers, requests, pairing, payments"

    def trade_hour(self, hour: int) -> list[TradeRecord]:
        """Offers, then requests, for ``hour``; then every new pairing is paid."""
        slot = (self.day_start_ms + hour * HOUR_MS) // HOUR_MS
        asked_at_ms = self.day_start_ms + hour * HOUR_MS - ORDER_LEAD_MS
        self.chain.at(asked_at_ms)
        offers: list[Transaction] = []
        pending: list[tuple[Home, OrderSecrets]] = []
        for home in self.homes:
            pieces = max(0, home.net_wh[hour]) // self.piece_wh
            self._book(home).offered += pieces
            for _ in range(pieces):
                offer, secret = create_piece_offer(slot, self.rng)
                offers.append(build_piece_tx(SIM_CHAIN, offer, self._one_time_key()))
                pending.append((home, secret))
        if offers:
            for receipt, owner in zip(self.chain.submit(offers), pending, strict=True):
                self.offer_secrets[bytes.fromhex(receipt["data"])] = owner
        requests: list[Transaction] = []
        askers: list[Home] = []
        for home in self.homes:
            pieces = max(0, -home.net_wh[hour]) // self.piece_wh
            self._book(home).requested += pieces
            if self.accountable and home.credential is None:  # traced: no pseudonym
                self.refused_orders += pieces
                continue
            for _ in range(pieces):
                requests.append(self._request_tx(home, slot, asked_at_ms))
                askers.append(home)
        if requests:
            # a traced household's pseudonym is revoked: its requests are refused, with reason
            receipts = self.chain.submit(requests, must_commit=False)
            for receipt, home in zip(receipts, askers, strict=True):
                if receipt["status"] != "committed":
                    if "revoked" not in receipt.get("reason", ""):  # only a traced household's
                        raise TradingDayError(f"a piece request was refused: {receipt}")
                    self.refused_orders += 1
                    continue
                pairing = decode_as(Pairing, bytes.fromhex(receipt["data"]))
                self.requesters[pairing.pairing_id] = home
        return self._settle_pairings()

    def _request_tx(self, home: Home, slot: int, asked_at_ms: int) -> Transaction:
        request = create_piece_request(slot, self.rng)
        if not self.accountable:
            return build_piece_tx(SIM_CHAIN, request, self._one_time_key())
        assert home.credential is not None
        # the household accepts the DSO's fallback price, and only in the next blocks; the
        # bound is counted from the schedule, not the clock, so that a day over replica
        # processes (wall clock) signs the same requests as one in simulated time
        signed = sign_piece_request(
            request,
            home.credential.pseudonym,
            self.round,
            max_amount=self.dso_sell_price,
            not_after_ms=asked_at_ms + REQUEST_WINDOW_MS,
        )
        return build_signed_piece_tx(SIM_CHAIN, signed, self._one_time_key())

    def _new_pairings(self) -> list[Pairing]:
        view = self.chain.view("market")
        out = []
        for _, raw in view.scan(market_keys.PAIRING):
            pairing = decode_as(Pairing, raw)
            if pairing.pairing_id not in self.seen_pairings:
                self.seen_pairings.add(pairing.pairing_id)
                out.append(pairing)
        return sorted(out, key=lambda p: (p.height, p.pairing_id))

    def _settle_pairings(self) -> list[TradeRecord]:
        """Pay every pairing made since the last call (requests' and the DSO's)."""
        market = self.chain.view("market")
        dso_secret = OrderSecrets(self.dso_redeem, self.dso_enc)
        dues: list[_Due] = []
        for pairing in self._new_pairings():
            invoice = get_invoice(market, "market", pairing.pairing_id)
            if invoice is None:
                raise TradingDayError("a pairing has no invoice on chain")
            buyer = self.requesters.get(pairing.pairing_id)
            seller, secret = self.offer_secrets.get(pairing.offer_id, (None, dso_secret))
            if buyer is None and pairing.request_id:
                raise TradingDayError("a pairing names a request no household made")
            if seller is None and pairing.offer_id:
                raise TradingDayError("a pairing names an offer no household made")
            local = buyer is not None and seller is not None
            if local and self.renege and self.reneged_pairing is None:
                self.reneged_pairing, self.reneging_home = pairing, buyer
                continue  # the requester never pays: the pairing goes void at its deadline
            slot_hour = pairing.slot - self.day_start_ms // HOUR_MS
            dues.append(_Due(pairing, invoice, slot_hour, buyer, seller, secret))
        if not dues:
            return []
        self._make_change(dues)
        return self._pay(dues)

    def _make_change(self, dues: list[_Due]) -> None:
        """Refresh coins into exact change for every payment a household makes now (a
        household that cannot pay them all exactly refreshes its largest coins, in chunks
        that respect the payments layer's bounds; every refresh in one batch)."""
        amounts: dict[str, list[int]] = {}
        homes: dict[str, Home] = {}
        for due in dues:
            if due.buyer is not None:
                amounts.setdefault(due.buyer.name, []).append(due.invoice.amount)
                homes[due.buyer.name] = due.buyer
        refreshes: list[Transaction] = []
        owners: list[tuple[Home, Ed25519PrivateKey, list[int]]] = []
        for name, wanted in amounts.items():
            home = homes[name]
            if _can_pay(home.wallet, wanted):
                continue
            for chunk in _chunk_amounts(wanted):
                spend = _choose_large_coins(home.wallet, sum(chunk))
                owner = self._one_time_key()
                refreshes.append(build_refresh_tx(SIM_CHAIN, spend, owner))
                process_remove_coins(home.wallet, spend)
                change = sum(c.value for c in spend) - sum(chunk)
                owners.append((home, owner, [*chunk, change]))
        if not refreshes:
            return
        self.chain.submit(refreshes)
        fresh = self._reissue_many([(owner, amounts) for _, owner, amounts in owners])
        for (home, _, _), coins in zip(owners, fresh, strict=True):
            home.wallet.coins.extend(coins)

    def _choose_refresh(self, wallet: Wallet, amount: int) -> tuple[HeldCoin, ...]:
        """If the change made for the hour went elsewhere, refresh the largest coins
        (rare: one more refresh and reissue)."""
        return _choose_large_coins(wallet, amount)

    def _pay(self, dues: list[_Due]) -> list[TradeRecord]:
        """Requesters (or the DSO) pay; sellers (or the DSO) redeem; sellers reissue."""
        mints: list[Transaction] = []
        pays: list[Transaction] = []
        paid: list[tuple[_Due, PaymentMessage]] = []
        for due in dues:
            amount = due.invoice.amount
            if due.buyer is None:  # the DSO buys a surplus piece with coins of its own
                denominations = choose_denomination_keys(
                    (d for d, _ in self.coin_keys), amount, self.chain.now_ms
                )
                coins, mint_tx = process_dso_withdrawal(
                    self.mint, denominations, self.period, self.chain.now_ms, self.rng
                )
                mints.append(mint_tx)
                self.dso_paid_mc += amount
            else:
                coins = self._coins_for(due.buyer, amount)
                process_remove_coins(due.buyer.wallet, coins)
            message, _ = create_trade_payment(due.invoice, coins, self.rng)
            pays.append(build_pay_tx(SIM_CHAIN, message, self._one_time_key(), 0))
            paid.append((due, message))
        self.chain.submit(mints + pays)
        verifiers = get_published_verifiers(self.chain.view("payments"), self.mint_config)
        redeems = []
        for due, message in paid:
            nonce = 0
            if due.seller is None:  # the DSO's one payee key collects every grid piece
                nonce, self.dso_redeems = self.dso_redeems, self.dso_redeems + 1
            redeems.append(
                build_trade_redeem(
                    SIM_CHAIN, due.invoice, message, due.secret, verifiers,
                    self.chain.now_ms, nonce,
                )
            )  # fmt: skip
        self.chain.submit(redeems)
        sellers = [d for d, _ in paid if d.seller is not None]
        owners = []
        for due in sellers:
            assert due.secret.redeem_key is not None and due.seller is not None
            owners.append((due.seller, due.secret.redeem_key, [int(due.invoice.amount)]))
        if owners:
            fresh = self._reissue_many([(owner, amounts) for _, owner, amounts in owners])
            for (home, _, _), coins in zip(owners, fresh, strict=True):
                home.wallet.coins.extend(coins)
        return self._record(dues)

    def _record(self, dues: list[_Due]) -> list[TradeRecord]:
        records = []
        for due in dues:
            amount = due.invoice.amount
            buyer, seller = due.buyer, due.seller
            if buyer is not None and seller is not None:
                self._book(buyer).bought_local += 1
                self._book(seller).sold_local += 1
                buyer.paid_mc += amount
                seller.earned_mc += amount
                buyer.bought_wh += self.piece_wh
                seller.sold_wh += self.piece_wh
                records.append(
                    TradeRecord(
                        due.hour, amount // self.piece_wh, self.piece_wh, buyer.name,
                        seller.name, True,
                    )
                )  # fmt: skip
                continue
            self.dso_pairings += 1
            per_hour = self.dso_hourly.setdefault(due.hour, [0, 0])
            per_hour[0 if buyer is not None else 1] += self.piece_wh
            if buyer is not None:  # grid energy from the DSO, paid in coins
                self._book(buyer).bought_dso += 1
                self._book(buyer).paid_dso_mc += amount
                self.dso_received_mc += amount
            elif seller is not None:  # the DSO bought a surplus piece
                self._book(seller).sold_dso += 1
                self._book(seller).earned_dso_mc += amount
        return records

    # -- end of day ---------------------------------------------------------------------

    def find_default(self) -> ContractDefault | None:
        """The default the chain recorded against the reneged pairing's requester."""
        if self.reneged_pairing is None or not self.accountable:
            return None
        evidence_id = compute_evidence_id(self.reneged_pairing.pairing_id, LEG_MONEY)
        return get_contract_default(self.chain.view("market"), evidence_id)

    def is_voided(self) -> bool:
        """Whether every replica voided the reneged pairing at its deadline."""
        if self.reneged_pairing is None:
            return False
        view = self.chain.view("market")
        return view.get(market_keys.VOID + self.reneged_pairing.pairing_id) is not None

    def settle_grid(self) -> None:
        """Residues below a piece, and unrequested offers, go to and come from the grid
        (on the bill); pieces the DSO sold or bought were paid in coins."""
        for home in self.homes:
            book = self._book(home)
            wanted = sum(-n for n in home.net_wh if n < 0)
            offered = sum(n for n in home.net_wh if n > 0)
            coin_import = book.bought_dso * self.piece_wh
            coin_export = book.sold_dso * self.piece_wh
            home.grid_import_wh = max(0, wanted - home.bought_wh - coin_import)
            home.grid_export_wh = max(0, offered - home.sold_wh - coin_export)

    def deposit_and_bill(self) -> None:
        """The DSO keeps what it was paid (absorb); then deposits and bills as in the day.
        Afterwards grid energy counts both the metered residue and the DSO's pieces."""
        if self.dso_redeems:
            self.chain.submit([build_absorb_tx(self.mint, self.dso_redeem.public_key.raw)])
        super().deposit_and_bill()
        for home in self.homes:
            book = self._book(home)
            home.grid_import_wh += book.bought_dso * self.piece_wh
            home.grid_export_wh += book.sold_dso * self.piece_wh

    def compute_result(self, result: DayResult) -> DayResult:
        """The day's figures plus the piece market's own (DSO pieces, voided pairings)."""
        result = super().compute_result(result)
        rows = []
        for row in result.households:
            book = self.books.get(str(row["household"]), PieceBook())
            rows.append(
                {
                    **row,
                    "pieces_offered": book.offered,
                    "pieces_requested": book.requested,
                    "dso_bought_wh": book.bought_dso * self.piece_wh,
                    "dso_sold_wh": book.sold_dso * self.piece_wh,
                    "paid_dso_mc": book.paid_dso_mc,
                    "earned_dso_mc": book.earned_dso_mc,
                }
            )
        conservation = {
            **result.conservation,
            "paid_to_dso_mc": self.dso_received_mc,
            "paid_by_dso_mc": self.dso_paid_mc,
            "voided_pairings": 1 if self.is_voided() else 0,
        }
        kpis = {
            **result.kpis,
            "piece_wh": float(self.piece_wh),
            "dso_pairings": float(self.dso_pairings),
            "local_pairings": float(len(result.trades)),
        }
        hourly = []
        for row in result.hourly:
            sold, bought = self.dso_hourly.get(int(row["hour"]), [0, 0])
            local = int(row["volume_wh"])
            hourly.append(
                {
                    **row,
                    "dso_sold_wh": sold,
                    "dso_bought_wh": bought,
                    # below a piece, refused or reneged: metered against the grid
                    "metered_import_wh": int(row["wanted_wh"]) - local - sold,
                    "metered_export_wh": int(row["offered_wh"]) - local - bought,
                }
            )
        reneger = result.reneger
        if reneger is None and self.reneging_home is not None:
            reneger = self.reneging_home.name  # anonymous requests: void, nobody traced
        return dataclasses.replace(
            result, households=tuple(rows), hourly=tuple(hourly), conservation=conservation,
            kpis=kpis, reneger=reneger, market="fixed-piece",
        )  # fmt: skip


def _chunk_amounts(amounts: list[int]) -> list[list[int]]:
    """Amounts in groups whose fresh coins (one per bit, plus up to 40 of change) stay
    within a reissue request's bound."""
    chunks: list[list[int]] = [[]]
    coins = 0
    for amount in amounts:
        bits = amount.bit_count()
        if chunks[-1] and coins + bits > MAX_COINS_PER_REQUEST - 48:
            chunks.append([])
            coins = 0
        chunks[-1].append(amount)
        coins += bits
    return chunks


def _choose_large_coins(wallet: Wallet, total: int) -> tuple[HeldCoin, ...]:
    """The fewest coins worth at least ``total``, largest first (a refresh spends at most
    ``MAX_COINS``)."""
    chosen: list[HeldCoin] = []
    for held in sorted(wallet.coins, key=lambda c: -c.value):
        if sum(c.value for c in chosen) >= total:
            break
        chosen.append(held)
    if sum(c.value for c in chosen) < total or len(chosen) > MAX_COINS:
        raise TradingDayError(f"a wallet cannot make change for {total} mc")
    return tuple(chosen)


def _can_pay(wallet: Wallet, amounts: list[int]) -> bool:
    """Whether ``wallet`` pays every amount exactly, one after the other (no change)."""
    trial = Wallet(list(wallet.coins))
    for amount in amounts:
        if trial.balance < amount:
            return False
        coins = choose_coins(trial, amount)
        if coins is None:
            return False
        process_remove_coins(trial, coins)
    return True


def check_piece_day(result: DayResult) -> list[str]:
    """The properties the fixed-piece day must show; the names of those that do not hold."""
    c = result.conservation
    failed = check_ledger_and_bills(result)
    if c["withdrawn_mc"] - c["deposited_mc"] != c["paid_to_dso_mc"] - c["paid_by_dso_mc"]:
        failed.append("withdrawn − deposited = paid to the DSO − paid by the DSO")
    for h in result.households:
        if h["bought_local_wh"] + h["grid_import_wh"] != h["wanted_wh"]:
            failed.append(f"{h['household']}'s energy bought = wanted")
        if h["sold_local_wh"] + h["grid_export_wh"] != h["offered_wh"]:
            failed.append(f"{h['household']}'s energy sold = offered")
    for row in result.hourly:
        if min(int(row["metered_import_wh"]), int(row["metered_export_wh"])) < 0:
            failed.append(f"hour {row['hour']}: no more bought or sold than wanted or offered")
    for column, total in (
        (
            "metered_import_wh",
            sum(h["grid_import_wh"] - h["dso_bought_wh"] for h in result.households),
        ),
        (
            "metered_export_wh",
            sum(h["grid_export_wh"] - h["dso_sold_wh"] for h in result.households),
        ),
        ("dso_sold_wh", sum(h["dso_bought_wh"] for h in result.households)),
    ):
        if sum(int(row[column]) for row in result.hourly) != total:
            failed.append(f"hours' {column} = households' {column}")
    return failed
