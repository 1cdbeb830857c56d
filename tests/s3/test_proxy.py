"""The fault proxy itself: it relays requests and answers without changing a byte, and breaks
exactly the requests its rules name.

Both ends are raw sockets on loopback, so that what arrives can be compared byte for byte with
what was sent.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.s3.proxy import FaultProxy

CHUNKED_ANSWER = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-amz-request-id: R1\r\n\r\n"
    b"5;ext=1\r\nhello\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n"
)


class Upstream:
    """A server that records the raw bytes it receives, and answers ``answer`` each time they
    reach the end of one of the requests the test will send (their sizes, in order)."""

    def __init__(self, answer: bytes) -> None:
        self.received = bytearray()
        self.requests = 0
        self.ends: list[int] = []
        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while data := self.request.recv(65536):
                    upstream.received += data
                    while upstream.requests < len(upstream.ends) and (
                        len(upstream.received) >= upstream.ends[upstream.requests]
                    ):
                        upstream.requests += 1
                        self.request.sendall(answer)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def expect(self, *requests: bytes) -> None:
        for request in requests:
            self.ends.append((self.ends[-1] if self.ends else 0) + len(request))

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream(CHUNKED_ANSWER)
    yield server
    server.close()


def exchange(proxy: FaultProxy, request: bytes, expect: int) -> bytes:
    """Send ``request`` through the proxy; the first ``expect`` bytes of what comes back."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(request)
        got = b""
        while len(got) < expect:
            piece = sock.recv(65536)
            if not piece:
                break
            got += piece
        return got


def test_a_chunked_request_and_a_chunked_answer_pass_unchanged(upstream: Upstream) -> None:
    # An aws-chunked upload as S3 clients send it: chunk extensions, then trailers.
    request = (
        b"PUT /bucket/key HTTP/1.1\r\nHost: s3\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Encoding: aws-chunked\r\nx-amz-trailer: x-amz-checksum-crc32\r\n\r\n"
        b"8;chunk-signature=abc\r\n\x00\x01\r\n\xff\r\n\r\n"
        b"4\r\n\x00\x00\x00\x00\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n"
    )
    upstream.expect(request)
    with FaultProxy(upstream.address) as proxy:
        answer = exchange(proxy, request, len(CHUNKED_ANSWER))
    assert bytes(upstream.received) == request
    assert answer == CHUNKED_ANSWER
    assert proxy.counts.forwarded["PUT"] == 1


def test_requests_with_a_length_on_one_connection_each_pass_unchanged(upstream: Upstream) -> None:
    first = b"PUT /b/k1 HTTP/1.1\r\nHost: s3\r\nContent-Length: 12\r\n\r\nab\r\n\r\n\x00\xffcdef"
    second = b"PUT /b/k2 HTTP/1.1\r\nHost: s3\r\nContent-Length: 3\r\n\r\nxyz"
    upstream.expect(first, second)
    with FaultProxy(upstream.address) as proxy:
        answers = exchange(proxy, first + second, 2 * len(CHUNKED_ANSWER))
    assert bytes(upstream.received) == first + second
    assert answers == CHUNKED_ANSWER * 2
    assert proxy.counts.forwarded["PUT"] == 2


def test_the_nth_put_is_answered_slow_down_without_reaching_the_store(upstream: Upstream) -> None:
    put = b"PUT /b/k HTTP/1.1\r\nHost: s3\r\nContent-Length: 8\r\n\r\n12345678"
    upstream.expect(put, put)
    with FaultProxy(upstream.address) as proxy:
        proxy.inject("PUT", "slowdown", nth={2})
        first = exchange(proxy, put, len(CHUNKED_ANSWER))
        second = exchange(proxy, put, 12)
        third = exchange(proxy, put, len(CHUNKED_ANSWER))
    assert first == third == CHUNKED_ANSWER
    assert second.startswith(b"HTTP/1.1 503")
    assert upstream.requests == 2
    assert proxy.counts.forwarded["PUT"] == 2
    assert proxy.counts.broken[("PUT", "slowdown")] == 1


def test_a_dropped_request_gets_no_answer_and_reaches_nothing(upstream: Upstream) -> None:
    put = b"PUT /b/k HTTP/1.1\r\nHost: s3\r\nContent-Length: 8\r\n\r\n12345678"
    with FaultProxy(upstream.address) as proxy:
        proxy.inject("PUT", "drop", every=1)
        assert exchange(proxy, put, 1) == b""
    assert upstream.requests == 0
    assert proxy.counts.broken[("PUT", "drop")] == 1


def test_rules_pick_their_method_and_target_only(upstream: Upstream) -> None:
    get = b"GET /b/k HTTP/1.1\r\nHost: s3\r\n\r\n"
    upstream.expect(get)
    with FaultProxy(upstream.address) as proxy:
        proxy.inject("PUT", "internal", every=1)
        proxy.inject("GET", "internal", every=1, target="uploadId=")
        answer = exchange(proxy, get, len(CHUNKED_ANSWER))
    assert answer == CHUNKED_ANSWER
    assert bytes(upstream.received) == get
    assert proxy.counts.broken_total() == 0
