"""An S3-compatible server (moto's) on loopback, in a process of its own.

Its own process so that it does not share a GIL with the code it serves: a sync that uploads
while the server parses the uploads in the same interpreter would measure and behave as neither
does alone. The server binds a free port itself and prints it, so no port is guessed; it stops
when its standard input closes, which also happens when the process that started it dies.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# Credentials the server accepts (moto takes any): distinctive, so that a test can look for them
# in messages and files.
ACCESS_KEY = "AKIAHOOPSESSIONSTEST"
SECRET_KEY = "hoop-sessions-test-secret-9f3c1a7e5b"
REGION = "us-east-1"
START_SECONDS = 60.0

SERVE = r"""
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


@dataclass(frozen=True)
class S3Server:
    """A running server: its endpoint and a client for setting buckets up."""

    host: str
    port: int
    process: subprocess.Popen[str]

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        """The variables that point an S3 client (Arrow's, boto3) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            # No instance-metadata lookups for credentials or region on a machine outside EC2.
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self, prefix: str = "hoop") -> str:
        """Create an empty bucket; its ``s3://bucket/prefix`` URL."""
        bucket = f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=bucket)
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start the server, wait until it answers, stop it at the end."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the S3 server did not start (it printed {line!r})")
        server = S3Server("127.0.0.1", int(line), process)
        _wait_until_it_answers(server)
        yield server
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_it_answers(server: S3Server) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/data.json", timeout=5):
                return
        except (urllib.error.URLError, OSError):
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the S3 server on {server.endpoint} does not answer") from None
            time.sleep(0.05)
