"""The aggregation contract: registration, report batches, feedback and equipment events.

Transactions (kinds) and their checks, in order:

1. ``aggregation.register`` (sender: the CC's Ed25519 key pinned at genesis):
   a meter's or receiver's :class:`PublicKeyRecord`; the ID is new, the
   points decode (subgroup, not zero), a receiver names its Ed25519 tx key.
   The signing key PK = Y_S + α + η·Y_Pub1 is computed once here.
2. ``aggregation.revoke`` (sender: the CC): a registered ID stops counting.
3. ``aggregation.batch`` (any sender; every report authenticates itself):
   per report, named refusals that never block the rest of the batch —
   meter registered and not revoked; receivers exactly the schema's, each
   registered and not revoked; period = the block's period or one of the
   ``grace_periods`` before; T_t inside that period and not after the block;
   (meter, period) not yet recorded (replay); then the whole batch's
   signatures in one weighted check, one G1 multi-scalar multiplication
   (:func:`.verify.is_valid_batch` through :func:`.verify.find_invalid`),
   bisection naming the bad ones; then the first valid report per (meter,
   period) wins. Accepted reports go to each receiver's inbox
   (``inbox/<receiver>/<period>/<meter>``) with a count per receiver and
   period: accounting nodes group ciphertexts, they cannot add them (spec
   §6.11.4). The receipt lists accepted and refused reports with reasons.
4. ``aggregation.feedback`` (sender: a registered grid operator's tx key):
   Algorithm 1's notices for one (meter, period), once.
5. ``aggregation.equipment`` (sender: a registered equipment supplier's tx key):
   one event of a device's state machine (:mod:`.equipment`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gridledger.aggregation.curve import G1Point, decode_g1
from gridledger.aggregation.decrypt import InboxEntry, get_inbox_entry
from gridledger.aggregation.equipment import (
    EquipmentEvent,
    EquipmentRecord,
    create_record,
    process_equipment_event,
)
from gridledger.aggregation.errors import InvalidEncoding, ReportRejected
from gridledger.aggregation.feedback import FeedbackInput, Notice, compute_notices
from gridledger.aggregation.keys import (
    ROLE_ES,
    ROLE_GO,
    ROLE_METER,
    ROLES,
    PublicKeyRecord,
    check_identity,
    compute_signing_key,
)
from gridledger.aggregation.schema import ReceiverSchema
from gridledger.aggregation.signcrypt import Report
from gridledger.aggregation.verify import PreparedReport, find_invalid, prepare_report
from gridledger.crypto.encoding import decode_as, encode, wire_type
from gridledger.crypto.signatures import is_valid_ed25519_public_key
from gridledger.errors import GridledgerError
from gridledger.ledger.contracts import BlockContext, StateView
from gridledger.ledger.errors import ContractRejection
from gridledger.ledger.tx import Transaction

NAMESPACE = "aggregation"
REGISTER_KIND = "aggregation.register"
REVOKE_KIND = "aggregation.revoke"
BATCH_KIND = "aggregation.batch"
FEEDBACK_KIND = "aggregation.feedback"
EQUIPMENT_KIND = "aggregation.equipment"
MAX_CIPHERTEXT = 1024


@wire_type("aggregation.genesis/1")
@dataclass(frozen=True)
class AggregationGenesis:
    """The genesis section (``aggregation/genesis/config``): who the CC is, Y_Pub, rules."""

    cc_tx_key: bytes
    y_pub1: bytes
    y_pub2: bytes
    period_ms: int
    grace_periods: int
    max_batch: int
    schema: ReceiverSchema


@wire_type("aggregation.registration/1")
@dataclass(frozen=True)
class Registration:
    record: PublicKeyRecord


@wire_type("aggregation.revocation/1")
@dataclass(frozen=True)
class Revocation:
    identity: str


@wire_type("aggregation.stored-key/2")
@dataclass(frozen=True)
class StoredKey:
    """A registered key with its signing key PK = Y_S + α + η·Y_Pub1 (compressed)."""

    record: PublicKeyRecord
    signing_key: bytes


@wire_type("aggregation.batch/1")
@dataclass(frozen=True)
class ReportBatch:
    reports: tuple[Report, ...]


@wire_type("aggregation.refusal/1")
@dataclass(frozen=True)
class Refusal:
    """One refused report of a batch: position, meter, period, reason."""

    position: int
    meter_id: str
    period: int
    reason: str


@wire_type("aggregation.batch-receipt/1")
@dataclass(frozen=True)
class BatchReceipt:
    """Positions accepted, refusals with reasons."""

    accepted: tuple[int, ...]
    refused: tuple[Refusal, ...]


@wire_type("aggregation.feedback-record/1")
@dataclass(frozen=True)
class FeedbackRecord:
    feedback: FeedbackInput
    notices: tuple[Notice, ...]


def get_period_key(period: int) -> bytes:
    return f"{period:012x}".encode()


class AggregationContract:
    """Deterministic CBSG accounting (see the module docstring for the checks)."""

    namespace = NAMESPACE
    kinds = frozenset({REGISTER_KIND, REVOKE_KIND, BATCH_KIND, FEEDBACK_KIND, EQUIPMENT_KIND})

    def __init__(self, config: AggregationGenesis) -> None:
        self.config = config
        self.y_pub1 = decode_g1(config.y_pub1)

    def process(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        try:
            if tx.kind == REGISTER_KIND:
                return self.process_register(view, tx)
            if tx.kind == REVOKE_KIND:
                return self.process_revoke(view, tx)
            if tx.kind == BATCH_KIND:
                return self.process_batch(view, tx, ctx)
            if tx.kind == FEEDBACK_KIND:
                return self.process_feedback(view, tx)
            if tx.kind == EQUIPMENT_KIND:
                return self.process_equipment(view, tx, ctx)
        except ContractRejection:
            raise
        except GridledgerError as exc:
            raise ContractRejection(f"{tx.kind}: {exc.reason}") from None
        raise ContractRejection(f"unknown kind {tx.kind}")

    # -- registration -------------------------------------------------------------

    def process_register(self, view: StateView, tx: Transaction) -> bytes:
        if tx.sender != self.config.cc_tx_key:
            raise ContractRejection("registrations are signed by the control center")
        record = decode_as(Registration, tx.payload).record
        check_identity(record.identity)
        if record.role not in ROLES:
            raise ContractRejection(f"unknown role {record.role!r}")
        if view.get(b"key/" + record.identity.encode()) is not None:
            raise ContractRejection(f"{record.identity!r} is already registered")
        signing_key: G1Point = compute_signing_key(
            self.y_pub1, record.identity, record.y, record.alpha
        )
        if signing_key == G1Point.identity():
            raise ContractRejection("the signing key Y_S + K is the identity")
        if record.role == ROLE_METER:
            if record.tx_key:
                raise ContractRejection("meters have no transaction key here")
        else:
            if not is_valid_ed25519_public_key(record.tx_key):
                raise ContractRejection("a receiver needs an Ed25519 transaction key")
            if view.get(b"txkey/" + record.tx_key) is not None:
                raise ContractRejection("transaction key already registered")
            view.put(b"txkey/" + record.tx_key, record.identity.encode())
        stored = StoredKey(record, signing_key.to_compressed_bytes())
        view.put(b"key/" + record.identity.encode(), encode(stored))
        return b""

    def process_revoke(self, view: StateView, tx: Transaction) -> bytes:
        if tx.sender != self.config.cc_tx_key:
            raise ContractRejection("revocations are signed by the control center")
        identity = decode_as(Revocation, tx.payload).identity
        if view.get(b"key/" + identity.encode()) is None:
            raise ContractRejection(f"{identity!r} is not registered")
        if self.is_revoked(view, identity):
            raise ContractRejection(f"{identity!r} is already revoked")
        view.put(b"revoked/" + identity.encode(), b"\x01")
        return b""

    def get_key(self, view: StateView, identity: str) -> StoredKey | None:
        raw = view.get(b"key/" + identity.encode())
        return None if raw is None else decode_as(StoredKey, raw)

    def is_revoked(self, view: StateView, identity: str) -> bool:
        return view.get(b"revoked/" + identity.encode()) is not None

    def get_sender_identity(self, view: StateView, tx: Transaction, role: str) -> str:
        """The registered, unrevoked receiver of ``role`` whose tx key signed ``tx``."""
        raw = view.get(b"txkey/" + tx.sender)
        stored = None if raw is None else self.get_key(view, raw.decode())
        if stored is None or stored.record.role != role:
            raise ContractRejection(f"sender is not a registered {role} receiver")
        if self.is_revoked(view, stored.record.identity):
            raise ContractRejection(f"receiver {stored.record.identity!r} is revoked")
        return stored.record.identity

    # -- report batches -----------------------------------------------------------

    def process_batch(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        reports = decode_as(ReportBatch, tx.payload).reports
        if not 0 < len(reports) <= self.config.max_batch:
            raise ContractRejection(f"a batch holds 1..{self.config.max_batch} reports")
        self.check_receivers(view)
        refused: list[Refusal] = []
        candidates: list[tuple[int, PreparedReport]] = []
        for position, report in enumerate(reports):
            try:
                candidates.append((position, self.prepare(view, report, ctx)))
            except ReportRejected as exc:
                refused.append(Refusal(position, report.meter_id, report.period, exc.why))
        bad = find_invalid([p for _, p in candidates])
        positions = [position for position, _ in candidates]
        accepted = self.process_verified(view, reports, positions, set(bad), refused)
        refused.sort(key=lambda r: r.position)
        return encode(BatchReceipt(tuple(accepted), tuple(refused)))

    def process_verified(
        self,
        view: StateView,
        reports: Sequence[Report],
        positions: Sequence[int],
        bad: set[int],
        refused: list[Refusal],
    ) -> list[int]:
        """Record the first valid report per (meter, period); append refusals for the rest."""
        accepted: list[int] = []
        taken: set[tuple[str, int]] = set()
        for i, position in enumerate(positions):
            report = reports[position]
            slot = (report.meter_id, report.period)
            if i in bad:
                reason = "signature does not verify"
            elif slot in taken:
                reason = "replay: a report for this meter and period is already in the batch"
            else:
                taken.add(slot)
                accepted.append(position)
                self.record_report(view, report)
                continue
            refused.append(Refusal(position, report.meter_id, report.period, reason))
        return accepted

    def check_receivers(self, view: StateView) -> None:
        """Every receiver of the schema must be registered and not revoked."""
        for receiver_id in self.config.schema.receiver_ids:
            if self.get_key(view, receiver_id) is None or self.is_revoked(view, receiver_id):
                raise ContractRejection(f"receiver {receiver_id!r} is not registered or revoked")

    def prepare(self, view: StateView, report: Report, ctx: BlockContext) -> PreparedReport:
        """The cheap checks of one report, then decoding; raise :class:`ReportRejected`."""

        def refuse(reason: str) -> ReportRejected:
            return ReportRejected(report.meter_id, report.period, reason)

        stored = self.get_key(view, report.meter_id) if _is_key_text(report.meter_id) else None
        if stored is None or stored.record.role != ROLE_METER:
            raise refuse("meter is not registered")
        if self.is_revoked(view, report.meter_id):
            raise refuse("meter is revoked")
        if tuple(p.receiver_id for p in report.parts) != self.config.schema.receiver_ids:
            raise refuse("receivers differ from the published schema")
        if any(len(p.ciphertext) > MAX_CIPHERTEXT for p in report.parts):
            raise refuse("ciphertext too long")
        period_problem = self.get_period_problem(report, ctx)
        if period_problem:
            raise refuse(period_problem)
        if view.get(b"seen/" + get_period_key(report.period) + b"/" + report.meter_id.encode()):
            raise refuse("replay: this meter already reported for this period")
        try:
            return prepare_report(
                report,
                stored.record.y,
                stored.record.alpha,
                stored.signing_key,
                self.config.y_pub1,
            )
        except InvalidEncoding as exc:
            raise refuse(exc.reason) from None

    def get_period_problem(self, report: Report, ctx: BlockContext) -> str:
        """Why ``report``'s period or timestamp is unacceptable in this block ("" if fine)."""
        period_ms = self.config.period_ms
        current = ctx.timestamp_ms // period_ms
        if not current - self.config.grace_periods <= report.period <= current:
            return f"wrong period: the block is in period {current}"
        start = report.period * period_ms
        if not start <= report.timestamp_ms < start + period_ms:
            return "timestamp outside its period"
        if report.timestamp_ms > ctx.timestamp_ms:
            return "timestamp after the block"
        return ""

    def record_report(self, view: StateView, report: Report) -> None:
        period = get_period_key(report.period)
        view.put(b"seen/" + period + b"/" + report.meter_id.encode(), report.report_hash)
        for part in report.parts:
            entry: InboxEntry = get_inbox_entry(report, part.receiver_id)
            receiver = part.receiver_id.encode()
            view.put(
                b"inbox/" + receiver + b"/" + period + b"/" + report.meter_id.encode(),
                encode(entry),
            )
            count_key = b"count/" + receiver + b"/" + period
            count = int.from_bytes(view.get(count_key) or b"", "big") + 1
            view.put(count_key, count.to_bytes(8, "big"))

    # -- receivers' transactions --------------------------------------------------

    def process_feedback(self, view: StateView, tx: Transaction) -> bytes:
        self.get_sender_identity(view, tx, ROLE_GO)
        feedback = decode_as(FeedbackInput, tx.payload)
        stored = self.get_key(view, feedback.meter_id) if _is_key_text(feedback.meter_id) else None
        if stored is None or stored.record.role != ROLE_METER:
            raise ContractRejection("feedback for an unregistered meter")
        key = b"notice/" + feedback.meter_id.encode() + b"/" + get_period_key(feedback.period)
        if not 0 <= feedback.period < 2**48:
            raise ContractRejection("period out of range")
        if view.get(key) is not None:
            raise ContractRejection("feedback already posted for this meter and period")
        record = FeedbackRecord(feedback, compute_notices(feedback))
        view.put(key, encode(record))
        return encode(record)

    def process_equipment(self, view: StateView, tx: Transaction, ctx: BlockContext) -> bytes:
        self.get_sender_identity(view, tx, ROLE_ES)
        event = decode_as(EquipmentEvent, tx.payload)
        if not _is_key_text(event.equipment_id):
            raise ContractRejection("equipment id must be 1..128 characters, no '/'")
        if event.fault_time_ms > ctx.timestamp_ms:
            raise ContractRejection("fault time after the block")
        key = b"equipment/" + event.equipment_id.encode()
        raw = view.get(key)
        record = (
            create_record(event.equipment_id, min(event.fault_time_ms, ctx.timestamp_ms))
            if raw is None
            else decode_as(EquipmentRecord, raw)
        )
        updated = process_equipment_event(record, event)
        view.put(key, encode(updated))
        return encode(updated)


def _is_key_text(identity: str) -> bool:
    return 0 < len(identity) <= 128 and "/" not in identity and identity.isprintable()


def get_batch_receipt(data: bytes) -> BatchReceipt:
    """Decode a batch transaction's receipt data."""
    return decode_as(BatchReceipt, data)


def get_inbox(view_items: Sequence[tuple[bytes, bytes]]) -> list[InboxEntry]:
    """Inbox entries from ``scan`` results (a receiver's or a test's helper)."""
    return [decode_as(InboxEntry, value) for _, value in view_items]
