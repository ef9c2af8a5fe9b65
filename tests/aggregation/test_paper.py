"""Paper mode: the printed equations work for honest reports and accept the §6.11.2 forgery."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.exceptions import InvalidTag

from gridledger.aggregation.curve import P1, Scalar, encode_scalar, get_random_scalar
from gridledger.aggregation.keys import compute_eta, compute_signing_key
from gridledger.aggregation.paper import (
    PaperKey,
    PaperReport,
    compute_paper_base,
    compute_paper_beta,
    decrypt_paper,
    is_valid_paper_aggregate,
    signcrypt_paper,
)
from gridledger.aggregation.schema import compute_projection
from gridledger.aggregation.signcrypt import compute_beta
from gridledger.aggregation.verify import is_valid_prepared, prepare_report
from tests.aggregation.helpers import World, sample_reading, shared_world


def paper_keys(world: World) -> dict[str, PaperKey]:
    return {
        mid: PaperKey(mid, k.y.to_compressed_bytes(), k.alpha.to_compressed_bytes())
        for mid, k in world.meters.items()
    }


def paper_report(world: World, meter_id: str) -> PaperReport:
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


def forge(world: World, meter_id: str, template: PaperReport) -> PaperReport:
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
    """§6.11.2 on a real report: the signature t with W = t·P1 − β·PK, β from public data."""
    world = shared_world()
    template = dataclasses.replace(world.report("meter-6", 50), meter_id="meter-7")
    pk = world.meters["meter-7"]
    y_s, alpha = pk.y.to_compressed_bytes(), pk.alpha.to_compressed_bytes()
    signing_key = compute_signing_key(world.y_pub1, "meter-7", y_s, alpha)
    t = Scalar(123456789)
    paper_key = paper_keys(world)["meter-7"]
    eta = compute_eta("meter-7", alpha)
    betas = {
        "real β of the template": compute_beta(template, y_s, alpha, world.y_pub1_bytes),
        "printed β (no W)": compute_paper_beta(
            PaperReport("meter-7", 0, template.d_point, b"", b"", template.parts),
            paper_key,
            world.y_pub1_bytes,
        ),
    }
    for label, beta in betas.items():
        for w in (
            P1 * t - signing_key * beta,
            P1 * t - (pk.y * beta + pk.alpha + world.y_pub1 * eta),
        ):
            forged = dataclasses.replace(
                template, w_point=w.to_compressed_bytes(), s_scalar=encode_scalar(t)
            )
            prepared = prepare_report(
                forged, y_s, alpha, signing_key.to_compressed_bytes(), world.y_pub1_bytes
            )
            assert not is_valid_prepared(prepared), label
    honest = world.report("meter-7", 50)
    prepared = prepare_report(
        honest, y_s, alpha, signing_key.to_compressed_bytes(), world.y_pub1_bytes
    )
    assert is_valid_prepared(prepared)  # the check refuses the forgeries, not every report
