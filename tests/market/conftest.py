"""One market world per session (RSA keys are the slow part)."""

from __future__ import annotations

import pytest

from gridledger.crypto.signatures import RsaPrivateKey

from .helpers import DENOMINATIONS, World, make_world


@pytest.fixture(scope="session")
def rsa_keys() -> list[RsaPrivateKey]:
    return [RsaPrivateKey.generate(2048) for _ in range(3 + len(DENOMINATIONS))]


@pytest.fixture(scope="session")
def world(rsa_keys: list[RsaPrivateKey]) -> World:
    return make_world(rsa_keys)
