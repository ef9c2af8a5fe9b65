"""Shared fixtures: one CA, households, denomination keys per session; a fresh chain per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gridledger.crypto.signatures import RsaPrivateKey
from tests.payments.helpers import DENOMINATION_VALUES, Harness, World, make_harness, make_world


@pytest.fixture(scope="session")
def world() -> World:
    # RSA key generation is not seedable (OpenSSL): generate once per session.
    coin_keys = [RsaPrivateKey.generate(2048) for _ in range(len(DENOMINATION_VALUES) + 2)]
    household_keys = [RsaPrivateKey.generate(2048) for _ in range(2)]
    return make_world(coin_keys, household_keys)


@pytest.fixture
def h(world: World) -> Iterator[Harness]:
    yield make_harness(world)
