"""The payments contract: spent-coin registry, redeems bound to invoices, credits, bills.

Every replica runs these checks with the block time as "now" (kinds and
payloads in :mod:`gridledger.payments.messages`):

* ``pay``: the invoice exists in a trusted namespace, is unpaid and before its
  deadline; no coin lock it publishes is spent or held by another live lock;
  each lock is then held until the invoice's deadline, and the receipt hash,
  sender, tx hash and locks are recorded under the invoice
  (``pm/<ns>/<id>/<hash>``); the sealed coins stay in the block.
* ``redeem``, in order: (1) the invoice exists and is trusted; (2) block time
  <= deadline; (3) the sender *is* the invoice's ``payee_redeem_key`` (a payer
  racing the payee, or a thief holding a copy of the coins, fails here); (4) not
  paid yet; (5) the named payment was posted for this invoice and
  H(receipt) equals its receipt hash; the coins are exactly the ones it
  locked; the payee key holds no credit yet; (6) each coin: known denomination
  key, spendable now, signature valid, not spent, not twice in the redeem, not
  locked by another payment; (7) the coins sum to exactly the amount. Then:
  coins spent, ``paid/<ns>/<id>`` recorded, and ``credit/<payee key>`` opened
  for the anonymous reissue. Until the deadline no other transaction (a
  payer's refresh, deposit or second payment) may spend a locked coin.
* ``reveal`` (by the payee, while the invoice is unpaid): the payee's one-time X25519
  key and the posted message; every replica opens it and records it as bad only if
  it is (past the deadline :func:`get_leg_status` then says ``unpaid``); a good one
  is refused.
* ``refresh``: the coins as in (6); the sender's one-time key gets the credit.
* ``reissue`` / ``absorb`` (mint): the credit is open and, for reissue, the
  owner's signature covers the request hash and the amount matches; the
  credit is then closed (a one-time key authorises exactly one reissue).
* ``withdrawn``, ``deposit``, ``bill``, ``dso-mint``, ``dso-invoice``,
  ``denominations`` (mint): per-household totals per period (withdrawals
  never decrease; deposited coins are checked and spent like any coin), the
  bill ``withdrawn - deposited + grid_charge`` computed here, never claimed.

State keys (namespace ``payments``): ``spent/<coin lock>`` → tx hash,
``pm/<ns>/<id>/<hash>`` posted payment, ``lock/<lock>`` → deadline and payment hash,
``invalid/<ns>/<id>/<hash>`` revealed bad payment, ``paid/<ns>/<id>`` payment record,
``credit/<key>``, ``wd|dep|bill/<period:8>/<account>``, ``denom/<key_id>``,
``invoice/<id>`` (DSO invoices), ``dso-mint/<period:8>``, ``supply/<field>`` (sums).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import TypeVar

from gridledger.crypto.encoding import decode_as, encode
from gridledger.crypto.encryption import EncryptionPrivateKey, open_sealed
from gridledger.crypto.errors import (
    DecryptionError,
    EncodingError,
    InvalidSignature,
    KeyFormatError,
)
from gridledger.crypto.signatures import Ed25519PublicKey
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.tx import Transaction
from gridledger.payments.coins import Coin, DenominationKey, DenominationVerifier
from gridledger.payments.config import PaymentsConfig
from gridledger.payments.errors import (
    CoinLocked,
    DoubleSpent,
    NotAuthorised,
    PaymentError,
    PeriodClosed,
    RedeemRejected,
    UnknownDenomination,
)
from gridledger.payments.invoice import (
    NAMESPACE,
    Invoice,
    PaymentRecord,
    compute_invoice_key,
    compute_payment_key,
    get_invoice,
    get_payment,
)
from gridledger.payments.messages import (
    KIND_ABSORB,
    KIND_BILL,
    KIND_DENOMINATIONS,
    KIND_DEPOSIT,
    KIND_DSO_INVOICE,
    KIND_DSO_MINT,
    KIND_PAY,
    KIND_REDEEM,
    KIND_REFRESH,
    KIND_REISSUE,
    KIND_REVEAL,
    KIND_WITHDRAWN,
    REISSUE_TAG,
    Absorb,
    AccountTotals,
    Bill,
    BillRequest,
    Credit,
    DenominationUpdate,
    DepositRecord,
    DsoMint,
    PaymentContents,
    PaymentMessage,
    PostedPayment,
    Redeem,
    Refresh,
    ReissueRecord,
    Reveal,
    Supply,
    WithdrawalRecord,
    compute_payment_context,
    compute_receipt_hash,
)
from gridledger.payments.units import Money

T = TypeVar("T")

CREDIT_OPEN = "open"
CREDIT_REISSUED = "reissued"
CREDIT_ABSORBED = "absorbed"
MAX_ACCOUNT = 128
_SUPPLY_PREFIX = b"supply/"
_SUPPLY_FIELDS = tuple(f.name for f in fields(Supply))


# -- state keys and reads (also used by clients and tests) ------------------------------


def compute_spent_key(coin: Coin) -> bytes:
    return b"spent/" + coin.lock


def compute_lock_key(lock: bytes) -> bytes:
    return b"lock/" + lock


def compute_lock_value(payment_hash: bytes, until_ms: int) -> bytes:
    """``until_ms (8 bytes) || payment hash``: fixed-width raw bytes, not CBOR, because a
    redeem reads one per coin and decoding them was a third of its cost."""
    return until_ms.to_bytes(8, "big") + payment_hash


def is_locked_against(raw_lock: bytes | None, payment_hash: bytes, at_ms: int) -> bool:
    """Whether a lock value still holds a coin for a payment other than ``payment_hash``."""
    if raw_lock is None:
        return False
    return int.from_bytes(raw_lock[:8], "big") >= at_ms and raw_lock[8:] != payment_hash


def compute_invalid_key(namespace: str, invoice_id: bytes, payment_hash: bytes) -> bytes:
    """Where a reveal records that a posted payment did not open to valid coins."""
    return b"invalid/" + namespace.encode() + b"/" + invoice_id + b"/" + payment_hash


def compute_credit_key(owner_key: bytes) -> bytes:
    return b"credit/" + owner_key


def compute_period_key(table: str, period: int, account: str) -> bytes:
    """``wd``, ``dep`` or ``bill`` row of ``account`` in ``period``."""
    return table.encode() + b"/" + period.to_bytes(8, "big") + b"/" + account.encode()


def compute_posted_key(namespace: str, invoice_id: bytes, payment_hash: bytes) -> bytes:
    """``pm/<ns>/<invoice_id>/<payment hash>``: a payment posted for an invoice."""
    return b"pm/" + namespace.encode() + b"/" + invoice_id + b"/" + payment_hash


def get_posted_payments(
    view: StateView, namespace: str, invoice_id: bytes
) -> tuple[tuple[bytes, PostedPayment], ...]:
    """Every payment posted for an invoice, as (payment hash, record); the payee's recovery."""
    prefix = compute_posted_key(namespace, invoice_id, b"")
    return tuple(
        (key[len(prefix) :], decode_as(PostedPayment, raw))
        for key, raw in view.scan_in(NAMESPACE, prefix)
    )


LEG_PAID = "paid"
LEG_OPEN = "open"
LEG_PAYMENT_POSTED = "payment-posted"
LEG_UNPAID = "unpaid"


def get_leg_status(view: StateView, namespace: str, invoice_id: bytes, now_ms: int) -> str:
    """The money leg of an invoice as the chain proves it, for evidence and tracing.

    ``paid`` (a payment record), ``open`` (before the deadline), ``payment-posted``
    (past the deadline, but a posted payment was never shown to be bad: the payer
    is not accountable, the payee should have redeemed it) or ``unpaid`` (past
    the deadline, and every posted payment, if any, was proven bad by a reveal):
    only ``unpaid`` is evidence against the payer. The creditor's word counts
    for nothing here.
    """
    if get_payment(view, namespace, invoice_id) is not None:
        return LEG_PAID
    invoice = get_invoice(view, namespace, invoice_id)
    if invoice is None:
        raise RedeemRejected("no such invoice")
    if now_ms <= invoice.deadline_ms:
        return LEG_OPEN
    for payment_hash, _ in get_posted_payments(view, namespace, invoice_id):
        if view.get_in(NAMESPACE, compute_invalid_key(namespace, invoice_id, payment_hash)) is None:
            return LEG_PAYMENT_POSTED
    return LEG_UNPAID


def get_published_verifiers(
    view: StateView, config: PaymentsConfig
) -> dict[bytes, DenominationVerifier]:
    """Every coin key on chain (genesis and rotations): what a payee checks coins against."""
    keys = list(config.denominations)
    keys += [decode_as(DenominationKey, raw) for _, raw in view.scan_in(NAMESPACE, b"denom/")]
    verifiers = (DenominationVerifier.from_key(k) for k in keys)
    return {v.key_id: v for v in verifiers}


def get_supply(view: StateView) -> Supply:
    """The chain-wide sums (each a signed 16-byte counter at ``supply/<field>``)."""
    values = {}
    for name in _SUPPLY_FIELDS:
        raw = view.get_in(NAMESPACE, _SUPPLY_PREFIX + name.encode())
        values[name] = 0 if raw is None else int.from_bytes(raw, "big", signed=True)
    return Supply(**values)


def get_credit(view: StateView, owner_key: bytes) -> Credit | None:
    raw = view.get_in(NAMESPACE, compute_credit_key(owner_key))
    return None if raw is None else decode_as(Credit, raw)


def get_totals(view: StateView, table: str, period: int, account: str) -> AccountTotals:
    raw = view.get_in(NAMESPACE, compute_period_key(table, period, account))
    return AccountTotals(0, Money(0)) if raw is None else decode_as(AccountTotals, raw)


def get_bill(view: StateView, period: int, account: str) -> Bill | None:
    raw = view.get_in(NAMESPACE, compute_period_key("bill", period, account))
    return None if raw is None else decode_as(Bill, raw)


def is_spent(view: StateView, coin: Coin) -> bool:
    return view.get_in(NAMESPACE, compute_spent_key(coin)) is not None


def _decode(cls: type[T], payload: bytes) -> T:
    try:
        return decode_as(cls, payload)
    except EncodingError as exc:
        raise PaymentError(f"malformed payload: {exc.reason}") from None


def _check_account(account: str, period: int) -> None:
    if not account or len(account) > MAX_ACCOUNT or not account.isprintable():
        raise PaymentError("account must be 1..128 printable characters")
    if not 0 <= period < 2**63:
        raise PaymentError("period out of range")


def _add_supply(view: StateView, **deltas: int) -> None:
    """Add to the chain-wide sums (raw counters: one small write, no decoding)."""
    for name, delta in deltas.items():
        key = _SUPPLY_PREFIX + name.encode()
        raw = view.get(key)
        old = 0 if raw is None else int.from_bytes(raw, "big", signed=True)
        view.put(key, (old + delta).to_bytes(16, "big", signed=True))


@dataclass
class PaymentsContract:
    """Namespace ``payments``: every kind in :mod:`gridledger.payments.messages`.

    ``_verifiers`` caches parsed RSA keys by key id (a pure function of the key
    record, which its id hashes); whether a key id is *published* is always read
    from the genesis config or from state, never from the cache.
    """

    config: PaymentsConfig
    namespace: str = NAMESPACE
    kinds: frozenset[str] = frozenset(
        {
            KIND_PAY,
            KIND_REDEEM,
            KIND_REVEAL,
            KIND_REFRESH,
            KIND_REISSUE,
            KIND_ABSORB,
            KIND_WITHDRAWN,
            KIND_DEPOSIT,
            KIND_BILL,
            KIND_DSO_MINT,
            KIND_DSO_INVOICE,
            KIND_DENOMINATIONS,
        }
    )
    _genesis_keys: dict[bytes, DenominationKey] = field(default_factory=dict, repr=False)
    _verifiers: dict[bytes, DenominationVerifier] = field(default_factory=dict, repr=False)
    _dispatch: dict[str, Callable[[StateView, Transaction, BlockContext], bytes]] = field(
        default_factory=dict, repr=False
    )

    def __post_init__(self) -> None:
        self._dispatch = self._handlers()
        for key in self.config.denominations:
            verifier = DenominationVerifier.from_key(key)
            self._genesis_keys[verifier.key_id] = key
            self._verifiers[verifier.key_id] = verifier

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        return self._dispatch[tx.kind](view, tx, ctx)

    def _handlers(self) -> dict[str, Callable[[StateView, Transaction, BlockContext], bytes]]:
        return {
            KIND_PAY: self.process_pay,
            KIND_REDEEM: self.process_redeem,
            KIND_REVEAL: self.process_reveal,
            KIND_REFRESH: self.process_refresh,
            KIND_REISSUE: self.process_reissue,
            KIND_ABSORB: self.process_absorb,
            KIND_WITHDRAWN: self.process_withdrawn,
            KIND_DEPOSIT: self.process_deposit,
            KIND_BILL: self.process_bill,
            KIND_DSO_MINT: self.process_dso_mint,
            KIND_DSO_INVOICE: self.process_dso_invoice,
            KIND_DENOMINATIONS: self.process_denominations,
        }

    # -- coins -------------------------------------------------------------------------

    def get_verifier(self, view: StateView, coin: Coin) -> DenominationVerifier:
        """The published key ``coin`` names; :class:`UnknownDenomination` if none."""
        if coin.key_id not in self._genesis_keys:
            raw = view.get(b"denom/" + coin.key_id)
            if raw is None:
                raise UnknownDenomination(coin.serial, coin.key_id)
            if coin.key_id not in self._verifiers:
                key = decode_as(DenominationKey, raw)
                self._verifiers[coin.key_id] = DenominationVerifier.from_key(key)
        return self._verifiers[coin.key_id]

    def process_spend_coins(
        self,
        view: StateView,
        coins: Iterable[Coin],
        tx: Transaction,
        ctx: BlockContext,
        payment_hash: bytes = b"",
    ) -> Money:
        """Check every coin (all before any write), mark them spent; return their value.

        A coin locked by a posted payment (until its invoice's deadline) may be
        spent only by the redeem of that payment (``payment_hash``).
        """
        seen: set[bytes] = set()
        total = 0
        checked = []
        for coin in coins:
            verifier = self.get_verifier(view, coin)
            verifier.verify_coin(coin, ctx.timestamp_ms)
            if coin.coin_id in seen or view.get(compute_spent_key(coin)) is not None:
                raise DoubleSpent(coin.serial)
            raw_lock = view.get(compute_lock_key(coin.lock))
            if is_locked_against(raw_lock, payment_hash, ctx.timestamp_ms):
                raise CoinLocked(coin.serial)
            seen.add(coin.coin_id)
            total += verifier.denomination.value
            checked.append(coin)
        for coin in checked:
            view.put(compute_spent_key(coin), tx.tx_hash)
        return Money(total)

    # -- anonymous kinds ---------------------------------------------------------------

    def get_open_invoice(
        self, view: StateView, namespace: str, invoice_id: bytes, ctx: BlockContext
    ) -> Invoice:
        """The invoice, if trusted, published, unpaid and before its deadline."""
        if namespace != NAMESPACE and namespace not in self.config.invoice_namespaces:
            raise RedeemRejected(f"namespace {namespace!r} may not publish invoices")
        invoice = get_invoice(view, namespace, invoice_id)
        if invoice is None:
            raise RedeemRejected("no such invoice")
        if ctx.timestamp_ms > invoice.deadline_ms:
            raise RedeemRejected("invoice is past its deadline")
        if view.get(compute_payment_key(namespace, invoice_id)) is not None:
            raise RedeemRejected("invoice already paid")
        return invoice

    def process_pay(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        msg = _decode(PaymentMessage, tx.payload)
        invoice = self.get_open_invoice(view, msg.namespace, msg.invoice_id, ctx)
        key = compute_posted_key(msg.namespace, msg.invoice_id, msg.payment_hash)
        if view.get(key) is not None:
            raise RedeemRejected("payment message already posted")
        for lock in msg.locks:
            if view.get(b"spent/" + lock) is not None:
                raise RedeemRejected("a locked coin is already spent")
            if is_locked_against(view.get(compute_lock_key(lock)), b"", ctx.timestamp_ms):
                raise RedeemRejected("a locked coin is locked by another payment")
        record = compute_lock_value(msg.payment_hash, invoice.deadline_ms)
        for lock in msg.locks:
            view.put(compute_lock_key(lock), record)
        posted = PostedPayment(msg.receipt_hash, tx.sender, ctx.timestamp_ms, tx.tx_hash, msg.locks)
        view.put(key, encode(posted))
        return msg.payment_hash

    def process_redeem(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        op = _decode(Redeem, tx.payload)
        invoice = self.get_open_invoice(view, op.namespace, op.invoice_id, ctx)
        if tx.sender != invoice.payee_redeem_key:
            raise NotAuthorised(tx.sender, "only the invoice's payee key may redeem")
        raw = view.get(compute_posted_key(op.namespace, op.invoice_id, op.payment_hash))
        if raw is None:
            raise RedeemRejected("no such payment message for this invoice")
        posted = decode_as(PostedPayment, raw)
        receipt_hash = compute_receipt_hash(op.receipt)
        if receipt_hash != posted.receipt_hash:
            raise RedeemRejected("wrong receipt")
        if sorted(c.lock for c in op.coins) != sorted(posted.locks):
            raise RedeemRejected("the coins are not the ones the payment locked")
        # One sell order is one payee key but may be filled by several trades: their
        # redeems add up in one open credit, closed by the key's single reissue.
        earlier = self._get_open_credit_amount(view, tx.sender)
        total = self.process_spend_coins(view, op.coins, tx, ctx, op.payment_hash)
        if total != invoice.amount:
            raise RedeemRejected(f"coins sum to {total}, invoice asks {invoice.amount}")
        record = PaymentRecord(
            op.namespace,
            op.invoice_id,
            invoice.amount,
            op.payment_hash,
            receipt_hash,
            posted.payer,
            ctx.height,
            ctx.timestamp_ms,
        )
        view.put(compute_payment_key(op.namespace, op.invoice_id), encode(record))
        view.put(compute_credit_key(tx.sender), encode(Credit(Money(earlier + total), CREDIT_OPEN)))
        _add_supply(view, redeemed=total)
        return encode(record)

    def process_reveal(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        """The payee opens a posted payment for all to see (best before the deadline, so
        that the leg's status is final when the deadline passes).

        Recorded only if the payment is bad (does not open, wrong receipt, coins
        not the locked ones, forged, or not summing to the amount): a payment
        that was good could have been redeemed, so the payee cannot use a reveal
        to make an honest payer look unpaid.
        """
        op = _decode(Reveal, tx.payload)
        msg = op.message
        if msg.namespace != NAMESPACE and msg.namespace not in self.config.invoice_namespaces:
            raise RedeemRejected(f"namespace {msg.namespace!r} may not publish invoices")
        invoice = get_invoice(view, msg.namespace, msg.invoice_id)
        if invoice is None:
            raise RedeemRejected("no such invoice")
        if tx.sender != invoice.payee_redeem_key:
            raise NotAuthorised(tx.sender, "only the invoice's payee key may reveal")
        if view.get(compute_payment_key(msg.namespace, msg.invoice_id)) is not None:
            raise RedeemRejected("invoice already paid")
        raw = view.get(compute_posted_key(msg.namespace, msg.invoice_id, msg.payment_hash))
        if raw is None:
            raise RedeemRejected("no such payment message for this invoice")
        posted = decode_as(PostedPayment, raw)
        try:
            enc_key = EncryptionPrivateKey(op.enc_private_key)
        except KeyFormatError:
            raise RedeemRejected("not an X25519 private key") from None
        if enc_key.public_key.raw != invoice.payee_enc_key:
            raise NotAuthorised(tx.sender, "not the invoice's encryption key")
        flaw = self.compute_payment_flaw(view, invoice, msg, enc_key, posted.timestamp_ms)
        if flaw is None:
            raise RedeemRejected("the payment was valid: it could have been redeemed")
        view.put(
            compute_invalid_key(msg.namespace, msg.invoice_id, msg.payment_hash), flaw.encode()
        )
        return flaw.encode()

    def compute_payment_flaw(
        self,
        view: StateView,
        invoice: Invoice,
        msg: PaymentMessage,
        enc_key: EncryptionPrivateKey,
        posted_ms: int,
    ) -> str | None:
        """What is wrong with a posted payment (as it was when posted), ``None`` if nothing."""
        context = compute_payment_context(msg.namespace, msg.invoice_id, msg.receipt_hash)
        try:
            contents = decode_as(PaymentContents, open_sealed(enc_key, msg.ciphertext, context))
        except (DecryptionError, EncodingError):
            return "does not open to coins"
        if compute_receipt_hash(contents.receipt) != msg.receipt_hash:
            return "wrong receipt"
        if sorted(c.lock for c in contents.coins) != sorted(msg.locks):
            return "coins are not the locked ones"
        total = 0
        for coin in contents.coins:
            try:
                verifier = self.get_verifier(view, coin)
                verifier.verify_coin(coin, posted_ms)
            except PaymentError as exc:
                return exc.reason
            total += verifier.denomination.value
        if total != invoice.amount:
            return f"coins sum to {total}, invoice asks {invoice.amount}"
        return None

    def _get_open_credit_amount(self, view: StateView, owner_key: bytes) -> int:
        """What an open credit of ``owner_key`` already holds (0: none); a closed one refuses."""
        credit = get_credit(view, owner_key)
        if credit is None:
            return 0
        if credit.status != CREDIT_OPEN:
            raise NotAuthorised(owner_key, f"this one-time key's credit is already {credit.status}")
        return int(credit.amount)

    def _check_credit_unused(self, view: StateView, owner_key: bytes) -> None:
        if view.get(compute_credit_key(owner_key)) is not None:
            raise NotAuthorised(owner_key, "this one-time key already holds a credit")

    def process_refresh(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        op = _decode(Refresh, tx.payload)
        self._check_credit_unused(view, tx.sender)
        total = self.process_spend_coins(view, op.coins, tx, ctx)
        view.put(compute_credit_key(tx.sender), encode(Credit(total, CREDIT_OPEN)))
        _add_supply(view, refreshed=total)
        return encode(Credit(total, CREDIT_OPEN))

    # -- mint kinds --------------------------------------------------------------------

    def _require_mint(self, tx: Transaction) -> None:
        if tx.sender != self.config.mint_key:
            raise NotAuthorised(tx.sender, "only the mint may send this")

    def get_open_credit(self, view: StateView, owner_key: bytes) -> Credit:
        credit = get_credit(view, owner_key)
        if credit is None:
            raise PaymentError("no credit for this key")
        if credit.status != CREDIT_OPEN:
            raise PaymentError(f"credit already {credit.status}")
        return credit

    def process_reissue(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(ReissueRecord, tx.payload)
        credit = self.get_open_credit(view, op.owner_key)
        try:
            Ed25519PublicKey(op.owner_key).verify(REISSUE_TAG, op.request_hash, op.owner_signature)
        except (InvalidSignature, KeyFormatError):
            raise NotAuthorised(op.owner_key, "reissue not signed by the credit's key") from None
        if op.amount != credit.amount:
            raise PaymentError(f"reissue of {op.amount}, credit is {credit.amount}")
        view.put(compute_credit_key(op.owner_key), encode(Credit(credit.amount, CREDIT_REISSUED)))
        _add_supply(view, reissued=credit.amount)
        return b""

    def process_absorb(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(Absorb, tx.payload)
        credit = self.get_open_credit(view, op.owner_key)
        view.put(compute_credit_key(op.owner_key), encode(Credit(credit.amount, CREDIT_ABSORBED)))
        _add_supply(view, absorbed=credit.amount)
        return b""

    def _check_open_period(self, view: StateView, account: str, period: int) -> None:
        _check_account(account, period)
        if view.get(compute_period_key("bill", period, account)) is not None:
            raise PeriodClosed(account, period)

    def process_withdrawn(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(WithdrawalRecord, tx.payload)
        self._check_open_period(view, op.account, op.period)
        old = get_totals(view, "wd", op.period, op.account)
        if op.count < old.count or op.value < old.value:
            raise PaymentError("withdrawal totals never decrease")
        view.put(
            compute_period_key("wd", op.period, op.account),
            encode(AccountTotals(op.count, op.value)),
        )
        _add_supply(view, withdrawn=op.value - old.value)
        return b""

    def process_deposit(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(DepositRecord, tx.payload)
        self._check_open_period(view, op.account, op.period)
        value = self.process_spend_coins(view, op.coins, tx, ctx)
        old = get_totals(view, "dep", op.period, op.account)
        view.put(
            compute_period_key("dep", op.period, op.account),
            encode(AccountTotals(old.count + len(op.coins), Money(old.value + value))),
        )
        _add_supply(view, deposited=value)
        return encode(AccountTotals(len(op.coins), value))

    def process_bill(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(BillRequest, tx.payload)
        self._check_open_period(view, op.account, op.period)
        withdrawn = get_totals(view, "wd", op.period, op.account).value
        deposited = get_totals(view, "dep", op.period, op.account).value
        bill = Bill(
            op.account,
            op.period,
            withdrawn,
            deposited,
            op.grid_charge,
            Money(withdrawn - deposited + op.grid_charge),
        )
        view.put(compute_period_key("bill", op.period, op.account), encode(bill))
        return encode(bill)

    def process_dso_mint(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(DsoMint, tx.payload)
        if op.count <= 0 or op.value <= 0 or not 0 <= op.period < 2**63:
            raise PaymentError("a DSO mint record needs a positive count and value")
        key = b"dso-mint/" + op.period.to_bytes(8, "big")
        raw = view.get(key)
        old = AccountTotals(0, Money(0)) if raw is None else decode_as(AccountTotals, raw)
        view.put(key, encode(AccountTotals(old.count + op.count, Money(old.value + op.value))))
        _add_supply(view, dso_minted=op.value)
        return b""

    def process_dso_invoice(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        invoice = _decode(Invoice, tx.payload)
        key = compute_invoice_key(invoice.invoice_id)
        if view.get(key) is not None:
            raise RedeemRejected("invoice id already used")
        view.put(key, encode(invoice))
        return b""

    def process_denominations(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self._require_mint(tx)
        op = _decode(DenominationUpdate, tx.payload)
        if not 0 < len(op.keys) <= 64:
            raise PaymentError("1..64 keys per update")
        verifiers = []
        for key in op.keys:
            try:
                verifier = DenominationVerifier.from_key(key)
            except KeyFormatError as exc:
                raise PaymentError(f"denomination key: {exc.reason}") from None
            if verifier.key_id in self._genesis_keys or view.get(b"denom/" + verifier.key_id):
                raise PaymentError("denomination key already published")
            if key.valid_from_ms < ctx.timestamp_ms:
                raise PaymentError("a new key's window must start after its publication")
            verifiers.append(verifier)
        if len({v.key_id for v in verifiers}) != len(verifiers):
            raise PaymentError("a key is listed twice")
        for verifier in verifiers:
            view.put(b"denom/" + verifier.key_id, encode(verifier.denomination))
        return b""
