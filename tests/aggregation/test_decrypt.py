"""Receivers: each opens only its own dimensions; the CC's master key opens nothing."""

from __future__ import annotations

import dataclasses

import pytest

from gridledger.aggregation.decrypt import decrypt_entry, decrypt_report, get_inbox_entry
from gridledger.aggregation.errors import DecryptionFailed
from gridledger.aggregation.keys import ParticipantKeys
from gridledger.aggregation.schema import compute_projection
from tests.aggregation.helpers import sample_reading, shared_world


def test_each_receiver_gets_exactly_its_schema_dimensions() -> None:
    world = shared_world()
    report = world.report("meter-0", 60)
    reading = sample_reading(60)
    for rid, keys in world.receivers.items():
        dims = world.schema.get_dimensions(rid)
        assert decrypt_report(keys, world.schema, report) == {d: reading[d] for d in dims}
    assert set(decrypt_report(world.receivers["go-1"], world.schema, report)) == {
        "energy_wh",
        "prepaid_balance_millicent",
    }


def test_a_receiver_cannot_open_another_receivers_part() -> None:
    world = shared_world()
    report = world.report("meter-1", 61)
    go_entry = get_inbox_entry(report, "go-1")
    for rid in ("cc-1", "es-1"):
        with pytest.raises(DecryptionFailed):
            decrypt_entry(world.receivers[rid], world.schema, dataclasses.replace(go_entry))


def test_the_control_center_cannot_read_the_grid_operators_data() -> None:
    """Neither the CC's receiver key nor the KGC master key x opens the GO's part (no escrow)."""
    world = shared_world()
    report = world.report("meter-2", 62)
    go_entry = get_inbox_entry(report, "go-1")
    cc = world.receivers["cc-1"]
    as_go_with_cc_key = dataclasses.replace(cc, identity="go-1")
    as_go_with_master = dataclasses.replace(cc, identity="go-1", secret=world.kgc.master)
    go = world.receivers["go-1"]
    as_go_with_partial_key = ParticipantKeys("go-1", go.h, go.h, go.y, go.alpha)
    for impostor in (as_go_with_cc_key, as_go_with_master, as_go_with_partial_key):
        with pytest.raises(DecryptionFailed):
            decrypt_entry(impostor, world.schema, go_entry)
    assert decrypt_entry(go, world.schema, go_entry)["energy_wh"] == sample_reading(62)["energy_wh"]


def test_tampered_or_moved_ciphertexts_do_not_open() -> None:
    world = shared_world()
    a = world.report("meter-3", 63)
    b = world.report("meter-4", 63)
    go = world.receivers["go-1"]
    entry = get_inbox_entry(a, "go-1")
    flipped = entry.ciphertext[:-1] + bytes([entry.ciphertext[-1] ^ 1])
    for bad in (
        dataclasses.replace(entry, ciphertext=flipped),
        dataclasses.replace(entry, meter_id="meter-4"),
        dataclasses.replace(entry, timestamp_ms=entry.timestamp_ms + 1),
        dataclasses.replace(entry, d_point=b.d_point),
        dataclasses.replace(entry, d_point=b"\x00" * 48),
    ):
        with pytest.raises(DecryptionFailed):
            decrypt_entry(go, world.schema, bad)


def test_projection_follows_the_schema_order() -> None:
    world = shared_world()
    dims = world.schema.get_dimensions("cc-1")
    assert compute_projection(sample_reading(0), dims)[0] == 23_500
