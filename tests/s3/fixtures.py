"""Fixtures for tests against a real S3 protocol server on loopback (registered for every folder).

``s3_server``: one moto server process per test process (per xdist worker), started on first use.
``s3_url``: a fresh bucket for one test, with the standard AWS variables pointing at the server;
it yields the ``s3://bucket/prefix`` URL to give as ``HOOP_DATA_DIR``.
``s3_proxy``: a fault-injecting proxy in front of the server, with ``AWS_ENDPOINT_URL`` pointed at
the proxy instead, so that every request of the code under test passes through it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3.proxy import FaultProxy
from tests.s3.server import S3Server
from tests.s3.server import s3_server as start_s3_server

# Variables of the developer's own AWS set-up that would take precedence over the test's.
FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with start_s3_server() as server:
        yield server


def _point_at(monkeypatch: pytest.MonkeyPatch, server: S3Server, endpoint: str) -> None:
    for name in FOREIGN_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.env(endpoint).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket; AWS_* variables point at the server. Yields ``s3://bucket/hoop``."""
    _point_at(monkeypatch, s3_server, s3_server.endpoint)
    return s3_server.new_bucket()


@pytest.fixture
def s3_proxy(
    s3_server: S3Server, s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the server; AWS_ENDPOINT_URL points at the proxy."""
    with FaultProxy((s3_server.host, s3_server.port)) as proxy:
        _point_at(monkeypatch, s3_server, proxy.url)
        yield proxy
