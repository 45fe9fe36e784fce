from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.moto_server import MotoServer

pytest_plugins = ["tests.support.services"]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto's server on a free loopback port, signature checking on."""
    server = MotoServer()
    try:
        yield server
    finally:
        server.stop()
