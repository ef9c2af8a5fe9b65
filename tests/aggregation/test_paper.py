"""Paper mode: the printed equations work for honest reports and accept the §6.11.2 forgery."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.exceptions import InvalidTag

from gridledger.aggregation.curve import P1, Scalar, get_random_scalar
from gridledger.aggregation.keys import compute_eta, compute_partial_public_key
from gridledger.aggregation.paper import (
    PaperKey,
    compute_paper_base,
    compute_paper_beta,
    decrypt_paper,
    is_valid_paper_aggregate,
    signcrypt_paper,
)
from gridledger.aggregation.schema import compute_projection
from gridledger.aggregation.signcrypt import Report
from gridledger.aggregation.verify import is_valid_prepared, prepare_report
from tests.aggregation.helpers import World, sample_reading, shared_world


def paper_keys(world: World) -> dict[str, PaperKey]:
    return {
        mid: PaperKey(mid, k.y.to_compressed_bytes(), k.alpha.to_compressed_bytes())
        for mid, k in world.meters.items()
    }


def paper_report(world: World, meter_id: str) -> Report:
    return signcrypt_paper(
        world.meters[meter_id],
        world.y_pub1_bytes,
        world.y_pub2,
        world.schema,
        world.receiver_points,
        sample_reading(1),
        1_000,
        get_random_scalar(world.rng),
        get_random_scalar(world.rng),
    )


def forge(world: World, meter_id: str, template: Report) -> Report:
    """§6.11.2 from public data only: T = t·Q, W = t·P − (β·Y_S + α + η·Y_Pub)."""
    key = paper_keys(world)[meter_id]
    beta = compute_paper_beta(template, key, world.y_pub1_bytes)
    pk = world.meters[meter_id]
    eta = compute_eta(meter_id, key.alpha)
    t = Scalar(123456789)
    w = P1 * t - (pk.y * beta + pk.alpha + world.y_pub1 * eta)
    q = compute_paper_base(world.y_pub1_bytes)
    return dataclasses.replace(
        template, w_point=w.to_compressed_bytes(), t_point=(q * t).to_compressed_bytes()
    )


def test_honest_paper_reports_verify_and_decrypt() -> None:
    world = shared_world()
    reports = [paper_report(world, m) for m in ("meter-0", "meter-1", "meter-2")]
    assert is_valid_paper_aggregate(reports, paper_keys(world), world.y_pub1_bytes)
    values = decrypt_paper(world.receivers["go-1"], world.y_pub2, world.schema, reports[0])
    assert values == compute_projection(sample_reading(1), world.schema.get_dimensions("go-1"))


def test_paper_mode_other_receiver_cannot_open_a_part() -> None:
    world = shared_world()
    report = paper_report(world, "meter-0")
    swapped = dataclasses.replace(report, parts=(report.parts[1], report.parts[0], report.parts[2]))
    with pytest.raises(InvalidTag):
        decrypt_paper(world.receivers["cc-1"], world.y_pub2, world.schema, swapped)


def test_forgery_succeeds_against_paper_mode() -> None:
    world = shared_world()
    template = paper_report(world, "meter-6")  # any ω and D: the attacker may pick its own
    forged = forge(world, "meter-7", dataclasses.replace(template, meter_id="meter-7"))
    honest = [paper_report(world, "meter-0"), paper_report(world, "meter-1")]
    keys = paper_keys(world)
    assert is_valid_paper_aggregate([forged], keys, world.y_pub1_bytes)
    assert is_valid_paper_aggregate([*honest, forged], keys, world.y_pub1_bytes)


def test_the_same_forgery_fails_against_the_real_scheme() -> None:
    world = shared_world()
    template = dataclasses.replace(world.report("meter-6", 50), meter_id="meter-7")
    forged = forge(world, "meter-7", template)
    pk = world.meters["meter-7"]
    alpha = pk.alpha.to_compressed_bytes()
    k = compute_partial_public_key(world.y_pub1, "meter-7", alpha)
    prepared = prepare_report(forged, pk.y.to_compressed_bytes(), alpha, k, world.y_pub1_bytes)
    assert not is_valid_prepared(prepared, world.y_pub1_bytes)
