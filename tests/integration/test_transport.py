"""The client's HTTP layer against real servers on loopback: keep-alive lanes, gzip, proxies."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import orjson
import pytest

from hoop_sessions.extract.transport import Answer, Http, TransportFailure, proxy_for
from hoop_sessions.simulator import Dataset
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for
from tests.reliability.hostile import HostileGateway, Reply, json_reply


def _get(url: str, path: str) -> Answer:
    async def go() -> Answer:
        async with Http(
            url, {"Authorization": "Bearer t"}, lanes=2, timeout=5.0, connect_timeout=5.0
        ) as http:
            return await http.get(path, {})

    return asyncio.run(go())


def test_a_gzip_answer_is_decoded():
    doc = {"message": "x" * 5000}
    with HostileGateway(token="t") as gw:
        gw.bodies["0b9f6a3c-1111-4222-8333-000000000001"] = Reply(
            200, gzip.compress(orjson.dumps(doc)), headers={"Content-Encoding": "gzip"}
        )
        answer = _get(gw.url, "/api/sessions/0b9f6a3c-1111-4222-8333-000000000001")
        assert orjson.loads(answer.body) == doc
        assert gw.requests[-1].headers.get("accept-encoding") == "gzip"


def test_an_encoding_that_was_not_asked_for_is_a_clear_failure():
    with HostileGateway(token="t") as gw:
        gw.bodies["0b9f6a3c-1111-4222-8333-000000000001"] = Reply(
            200, b"{}", headers={"Content-Encoding": "br"}
        )
        with pytest.raises(TransportFailure, match="Content-Encoding 'br'"):
            _get(gw.url, "/api/sessions/0b9f6a3c-1111-4222-8333-000000000001")


def test_requests_reuse_their_connections_and_reopen_after_a_server_close(gateway_factory):
    gw = gateway_factory(sessions_per_day=5, days=1)
    sids = Dataset(gw.config).session_ids(FIRST_DAY, now=NOW)

    async def go() -> list[int]:
        statuses = []
        async with Http(
            gw.url,
            {"Authorization": f"Bearer {gw.token}"},
            lanes=2,
            timeout=5.0,
            connect_timeout=5.0,
        ) as http:
            for sid in sids * 4:
                statuses.append((await http.get(f"/api/sessions/{sid}", {})).status)
            # Both connections closed under the client, as an idle-timeout on the server would.
            for lane in http._lanes:
                await lane.aclose()
            statuses.append((await http.get(f"/api/sessions/{sids[0]}", {})).status)
        return statuses

    assert asyncio.run(go()) == [200] * (len(sids) * 4 + 1)


@contextmanager
def forward_proxy(upstream: tuple[str, int]) -> Iterator[tuple[str, list[str]]]:
    """An HTTP forward proxy on loopback that sends every request to ``upstream``.

    It records each request line as received (absolute-form, naming the host asked for), sends the
    request on in origin-form with ``Connection: close`` and relays the answer to the end.
    """
    seen: list[str] = []
    ready = threading.Event()
    state: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        seen.append(lines[0])
        path = "/" + target.split("://", 1)[1].split("/", 1)[1]
        headers = [
            h for h in lines[1:] if h and not h.lower().startswith(("connection:", "proxy-"))
        ]
        up_reader, up_writer = await asyncio.open_connection(*upstream)
        up_writer.write(
            (
                "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""])
            ).encode("latin-1")
        )
        await up_writer.drain()
        while chunk := await up_reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        up_writer.close()
        writer.close()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
        state["loop"], state["server"] = loop, server
        state["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}", seen
    finally:
        loop = state["loop"]
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_a_sync_goes_through_the_proxy_the_environment_names(
    gateway_factory, tmp_path, monkeypatch
):
    gw = gateway_factory(sessions_per_day=12, days=1)
    port = int(gw.url.rsplit(":", 1)[1])
    with forward_proxy(("127.0.0.1", port)) as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # A name only the proxy can reach: the client must not try to resolve or connect to it.
        settings = settings_for(
            gw, tmp_path, api_url=f"http://hoop.invalid:{port}", allow_insecure_http=True
        )
        assert proxy_for(settings.api_url) == proxy
        result = sync_days(settings, [FIRST_DAY], now=NOW)
    assert result.ok, result.failed
    assert seen and all(line.startswith(f"GET http://hoop.invalid:{port}/api/") for line in seen)
    expected = set(Dataset(gw.config).session_ids(FIRST_DAY, now=NOW))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        loaded = {r[0] for r in con.execute("SELECT session_id FROM sessions").fetchall()}
    assert loaded == expected
    assert sum("/api/sessions/" in line for line in seen) == len(expected)


def test_no_proxy_and_loopback_bypass_the_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.delenv("no_proxy", raising=False)
    assert proxy_for("https://hoop.example.com") == "http://proxy.example:3128"
    assert proxy_for("https://gw.internal.example") is None
    assert proxy_for("http://127.0.0.1:8009") is None
    assert proxy_for("http://localhost:8009") is None


def test_a_gateway_on_loopback_is_reached_directly_even_with_a_proxy_set(monkeypatch):
    # The proxy named here does not exist: going through it would fail to connect.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with HostileGateway(token="t") as gw:
        gw.bodies["0b9f6a3c-1111-4222-8333-000000000002"] = json_reply({"id": "x"})
        answer = _get(gw.url, "/api/sessions/0b9f6a3c-1111-4222-8333-000000000002")
        assert answer.status == 200 and orjson.loads(answer.body) == {"id": "x"}
