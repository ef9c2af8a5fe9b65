"""Which receiver gets which dimensions of a reading (the published schema).

Seed 002 gives each receiver "corresponding data from the multidimensional
data" but never says which (spec §6.12). The schema is public, on chain in the
aggregation genesis: a meter encrypts to each receiver exactly its
dimensions, so a receiver learns nothing else about the household from a
report. All values are integers in the unit their name ends with.

The default (v = 10 dimensions, m = 3 receivers) follows the UCI columns:

=====  ===========================================================
CC     voltage_cv, current_da, active_power_w, reactive_power_var
       (consistency and theft detection)
GO     energy_wh, prepaid_balance_millicent (feedback contract)
ES     sub_metering_1_wh .. sub_metering_3_wh, equipment_state (equipment)
=====  ===========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gridledger.aggregation.errors import SchemaError
from gridledger.crypto.encoding import wire_type

DIMENSIONS: tuple[str, ...] = (
    "voltage_cv",
    "current_da",
    "active_power_w",
    "reactive_power_var",
    "energy_wh",
    "prepaid_balance_millicent",
    "sub_metering_1_wh",
    "sub_metering_2_wh",
    "sub_metering_3_wh",
    "equipment_state",
)
MAX_VALUE = 2**63 - 1


@wire_type("aggregation.schema-entry/1")
@dataclass(frozen=True)
class SchemaEntry:
    """One receiver and the dimensions it may read, in the order they are encrypted."""

    receiver_id: str
    dimensions: tuple[str, ...]


@wire_type("aggregation.schema/1")
@dataclass(frozen=True)
class ReceiverSchema:
    """Receivers in report order (the index J of seed 002's f_Index is the position)."""

    entries: tuple[SchemaEntry, ...]

    @property
    def receiver_ids(self) -> tuple[str, ...]:
        return tuple(e.receiver_id for e in self.entries)

    def get_dimensions(self, receiver_id: str) -> tuple[str, ...]:
        """The dimensions of ``receiver_id``; raise :class:`SchemaError` if it has none."""
        for entry in self.entries:
            if entry.receiver_id == receiver_id:
                return entry.dimensions
        raise SchemaError(f"receiver {receiver_id!r} is not in the schema")

    def get_index(self, receiver_id: str) -> int:
        """f_Index: the position of ``receiver_id`` in every report."""
        for index, entry in enumerate(self.entries):
            if entry.receiver_id == receiver_id:
                return index
        raise SchemaError(f"receiver {receiver_id!r} is not in the schema")


def check_schema(schema: ReceiverSchema) -> None:
    """Raise :class:`SchemaError` unless receivers and their dimensions are known and distinct."""
    ids = schema.receiver_ids
    if not ids or len(set(ids)) != len(ids):
        raise SchemaError("a schema names at least one receiver, each once")
    for entry in schema.entries:
        dims = entry.dimensions
        if not dims or len(set(dims)) != len(dims):
            raise SchemaError(f"receiver {entry.receiver_id!r}: dimensions must be distinct")
        unknown = sorted(set(dims) - set(DIMENSIONS))
        if unknown:
            raise SchemaError(f"receiver {entry.receiver_id!r}: unknown dimensions {unknown}")


def create_default_schema(cc_id: str, go_id: str, es_id: str) -> ReceiverSchema:
    """The m = 3, v = 10 schema of the module docstring."""
    return ReceiverSchema(
        (
            SchemaEntry(cc_id, DIMENSIONS[0:4]),
            SchemaEntry(go_id, DIMENSIONS[4:6]),
            SchemaEntry(es_id, DIMENSIONS[6:10]),
        )
    )


def compute_projection(reading: Mapping[str, int], dimensions: tuple[str, ...]) -> tuple[int, ...]:
    """The values of ``dimensions`` in order; raise :class:`SchemaError` if one is missing."""
    values = []
    for name in dimensions:
        value = reading.get(name)
        if type(value) is not int or not -MAX_VALUE <= value <= MAX_VALUE:
            raise SchemaError(f"dimension {name!r} must be a 64-bit integer")
        values.append(value)
    return tuple(values)
