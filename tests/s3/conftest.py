"""Stores over the loopback S3 server, directly and through the fault proxy.

The server, bucket and proxy fixtures themselves live in ``tests.s3.fixtures``, registered for
every test folder by the top-level conftest.
"""

from __future__ import annotations

import pytest

from hoop_sessions.store import ObjectStore
from tests.s3.proxy import FaultProxy


@pytest.fixture
def store(s3_url: str) -> ObjectStore:
    """The store of a fresh bucket, talking to the server directly."""
    return ObjectStore(s3_url)


@pytest.fixture
def proxied_store(s3_url: str, s3_proxy: FaultProxy) -> ObjectStore:
    """The store of a fresh bucket, every request passing through the fault proxy."""
    return ObjectStore(s3_url)
