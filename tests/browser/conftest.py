"""The browser tests share the HTTP tests' consortium; ``make test`` installs chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.cdp import CHROMIUM, Browser
from tests.node.http.conftest import consortium, live_world, traded

__all__ = ["browser", "consortium", "live_world", "traded"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian chromium is not at /usr/bin/chromium and could not be installed "
            "(`make test` runs `make chromium`: apt-get install -y chromium)"
        )
    b = Browser()
    try:
        yield b
    finally:
        b.close()
