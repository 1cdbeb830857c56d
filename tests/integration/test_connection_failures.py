"""Failures of the connection and of the gateway, against real sockets on loopback: each is named
for its cause, with the URL and what to check, and retried only as far as retrying can help."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import pytest

from hoop_sessions.config import Secret, Settings
from hoop_sessions.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RetriesExhaustedError,
    TlsSetupError,
    UnreachableError,
)
from hoop_sessions.extract.client import HoopClient, status_verdict
from hoop_sessions.extract.transport import Http, _failure
from tests.reliability.hostile import (
    ADMIN_USERINFO,
    HostileGateway,
    Reply,
    Request,
    error_reply,
    json_reply,
)


def closed_port() -> int:
    """A loopback port where nothing listens: bound, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def userinfo(
    url: str, token: str = "t", **overrides: Any
) -> tuple[dict[str, Any] | BaseException, int]:
    """GET /api/userinfo through the client: the answer (or the error raised) and the attempts."""
    settings = Settings(api_url=url, api_token=Secret(token), **overrides)

    async def go() -> tuple[dict[str, Any] | BaseException, int]:
        async with HoopClient(settings) as client:
            try:
                return await client.userinfo(), client.totals.requests
            except Exception as exc:  # the error is what the tests look at
                return exc, client.totals.requests

    return asyncio.run(go())


def test_a_closed_port_is_reported_as_connection_refused_after_three_attempts():
    port = closed_port()
    error, attempts = userinfo(f"http://127.0.0.1:{port}")
    assert isinstance(error, UnreachableError)
    assert attempts == 3
    assert f"connection refused by 127.0.0.1:{port} (3 attempts)" in str(error)
    assert f"HOOP_API_URL (http://127.0.0.1:{port})" in str(error)
    assert "unhealthy" not in str(error)


def test_https_to_the_plain_http_simulator_fails_at_once_as_a_tls_mismatch(gateway_factory):
    gateway = gateway_factory(days=1, sessions_per_day=1)
    url = gateway.url.replace("http://", "https://")
    error, attempts = userinfo(url, gateway.token)
    assert isinstance(error, TlsSetupError)
    assert attempts == 1
    assert "got an answer that is not TLS" in str(error)
    assert f"HOOP_API_URL ({url}) says https but that port answers plain HTTP" in str(error)
    assert "Use http://" in str(error)
    # The simulator answered the ClientHello as Go's net/http does, once: no request was made.
    assert gateway.stats.statuses == {400: 1} and gateway.stats.requests == {}


def test_a_host_name_that_does_not_resolve_is_named_after_three_attempts():
    # .invalid never resolves (RFC 6761).
    error, attempts = userinfo("https://hoop.invalid")
    assert isinstance(error, UnreachableError)
    assert attempts == 3
    assert "hoop.invalid could not be resolved (DNS:" in str(error)
    assert "Check the host name in HOOP_API_URL (https://hoop.invalid)" in str(error)


def failing(status: int, times: int, *, body: bytes = b"<html>bad gateway</html>") -> Any:
    """A userinfo route that answers ``status`` ``times`` times, then the admin userinfo."""
    answered = []

    def route(_request: Request) -> Reply:
        answered.append(status)
        if len(answered) <= times:
            return Reply(status, body, "text/html")
        return json_reply(ADMIN_USERINFO)

    return route


@pytest.mark.parametrize("status", [502, 504, 520, 524, 530])
def test_statuses_of_proxies_and_cloudflare_are_retried_until_the_gateway_answers(status):
    with HostileGateway(token="t") as gateway:
        gateway.userinfo = failing(status, 2)
        info, attempts = userinfo(gateway.url, retry_attempts=4)
        assert info == ADMIN_USERINFO
        assert attempts == 3 and gateway.paths() == ["/api/userinfo"] * 3


def test_a_status_that_keeps_coming_is_reported_with_the_attempts_made():
    with HostileGateway(token="t") as gateway:
        gateway.userinfo = failing(521, 10)
        error, attempts = userinfo(gateway.url, retry_attempts=3)
    assert isinstance(error, RetriesExhaustedError) and not isinstance(error, UnreachableError)
    assert attempts == 3
    assert "GET /api/userinfo kept failing after 3 attempts (last: HTTP 521" in str(error)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (401, AuthenticationError),
        (422, InvalidRequestError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (400, ApiError),
        (501, ApiError),
    ],
)
def test_statuses_that_retrying_cannot_change_are_raised_after_one_attempt(status, error_type):
    with HostileGateway(token="t") as gateway:
        gateway.userinfo = lambda _request: error_reply(status, "no")
        error, attempts = userinfo(gateway.url)
    assert type(error) is error_type
    assert attempts == 1
    assert f"hoop answered {status} for GET /api/userinfo: 'no'" in str(error)


def test_the_status_table_retries_429_and_5xx_and_takes_403_and_404_as_answers():
    assert status_verdict(200) == "ok"
    assert {s for s in range(100, 600) if status_verdict(s) == "retry"} == (
        {408, 425, 429} | set(range(500, 600)) - {501, 505}
    )
    assert [status_verdict(s) for s in (403, 404)] == ["answer", "answer"]
    assert [status_verdict(s) for s in (301, 400, 401, 407, 422, 501, 505)] == ["refused"] * 7


def test_a_404_hints_at_a_trailing_api_only_when_the_url_ends_in_api():
    with HostileGateway(token="t") as gateway:
        doubled, _ = userinfo(f"{gateway.url}/api")
        prefixed, _ = userinfo(f"{gateway.url}/hoop")
    assert isinstance(doubled, NotFoundError) and isinstance(prefixed, NotFoundError)
    assert (
        f"HOOP_API_URL ({gateway.url}/api) ends in /api: give the gateway's base URL without it"
        in str(doubled)
    )
    assert "ends in /api" not in str(prefixed) and "without" not in str(prefixed)
    assert f"HOOP_API_URL ({gateway.url}/hoop) does not lead to hoop's API" in str(prefixed)


def test_a_web_page_answered_for_userinfo_says_the_url_does_not_lead_to_the_api_at_once():
    # hoop answers its web app's index.html, 200, for any path outside <base path>/api.
    with HostileGateway(token="t") as gateway:
        gateway.userinfo = lambda _request: Reply(
            200, b"<!DOCTYPE html><html><body>hoop</body></html>", "text/html"
        )
        error, attempts = userinfo(gateway.url)
    assert isinstance(error, ApiError) and attempts == 1
    assert "an HTML page, not JSON" in str(error) and "does not lead to hoop's API" in str(error)


def test_plain_http_to_the_tls_port_of_a_go_server_says_to_use_https():
    # What Go's net/http answers to plain HTTP on a TLS port.
    with HostileGateway(token="t") as gateway:
        gateway.userinfo = lambda _request: Reply(
            400, b"Client sent an HTTP request to an HTTPS server.\n", "text/plain"
        )
        error, attempts = userinfo(gateway.url)
    assert isinstance(error, ApiError) and attempts == 1
    assert "says http but that port serves TLS: use https://" in str(error)


def test_a_header_value_http_cannot_carry_is_refused_before_connecting_without_showing_it():
    with pytest.raises(
        ConfigError, match="the Authorization header cannot be sent: it holds U\\+000A"
    ) as info:
        Http(
            "http://127.0.0.1:9",
            {"Authorization": "Bearer hpk_secret\nmore"},
            lanes=1,
            timeout=1.0,
            connect_timeout=1.0,
        )
    assert "hpk_secret" not in str(info.value)


def test_the_error_h11_raises_for_an_illegal_header_is_reported_without_its_text():
    # h11 quotes the header in its error: the transport must describe it in its own words.
    async def send() -> BaseException:
        async with httpcore.AsyncConnectionPool() as pool:
            try:
                await pool.request(
                    "GET",
                    f"{gateway.url}/api/userinfo",
                    headers={"Authorization": "Bearer hpk_x\n"},
                )
            except httpcore.LocalProtocolError as exc:
                return exc
        raise AssertionError("h11 sent an illegal header")

    with HostileGateway(token="t") as gateway:
        raised = asyncio.run(send())
    assert "hpk_x" in repr(raised.args)  # the reason this matters
    failure = _failure(raised, "127.0.0.1:1")
    assert failure.kind == "invalid-request" and "hpk_x" not in str(failure)


@contextmanager
def proxy_answering(status_line: bytes) -> Iterator[str]:
    """An HTTP proxy on loopback that answers every request, CONNECT included, with ``status_line``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(status_line + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_a_proxy_that_wants_credentials_is_named_at_once(monkeypatch):
    with proxy_answering(b"HTTP/1.1 407 Proxy Authentication Required") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        error, attempts = userinfo("https://hoop.invalid")
    assert type(error) is ConfigError and attempts == 1
    port = proxy.rsplit(":", 1)[1]
    assert (
        f"the proxy 127.0.0.1:{port} did not open a tunnel to the gateway (it answered 407)"
        in str(error)
    )
    assert "http://user:password@host:port" in str(error)


def test_a_proxy_that_cannot_reach_the_gateway_is_retried_as_a_failure_in_front_of_it(monkeypatch):
    with proxy_answering(b"HTTP/1.1 502 Bad Gateway") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        error, attempts = userinfo("https://hoop.invalid", retry_attempts=2)
    assert isinstance(error, RetriesExhaustedError) and attempts == 2
    assert "did not open a tunnel to the gateway (it answered 502)); the gateway or a proxy" in str(
        error
    )
