"""Fixtures: one small simulated gateway shared by the read-only tests, and its client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hoop_sessions.simulator import Gateway, serve

from .support import RICH, SMALL, client_for


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    with serve(SMALL) as gw:
        yield gw


@pytest.fixture(scope="session")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with client_for(gateway) as c:
        yield c


@pytest.fixture(scope="session")
def rich_gateway() -> Iterator[Gateway]:
    with serve(RICH) as gw:
        yield gw


@pytest.fixture(scope="session")
def rich(rich_gateway: Gateway) -> Iterator[httpx.Client]:
    with client_for(rich_gateway) as c:
        yield c
