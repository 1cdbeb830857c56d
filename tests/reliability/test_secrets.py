"""The API token never leaves the process: not in logs, errors, tracebacks or any file of the data
directory; it is only ever sent over a verified TLS connection or to loopback, and never follows
a redirect.

The token is a recognisable canary (``hpk_CANARY_<random>``), searched for in every form it could
take: the bytes of every file, decompressed raw files, the decoded values of every Parquet file
and of every warehouse table. A control test plants the canary as data to prove the search finds
it in each of these places.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import ssl
import subprocess
import traceback
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpcore
import orjson
import pyarrow.parquet as pq
import pytest

from hoop_sessions.config import Secret, Settings
from hoop_sessions.errors import (
    AuthenticationError,
    ConfigError,
    HoopSessionsError,
    PartialVisibilityError,
)
from hoop_sessions.simulator import Dataset, SimulatorConfig
from hoop_sessions.simulator.config import TokenIdentity
from hoop_sessions.sync.ingest import ingest_records
from hoop_sessions.sync.run import sync_days
from tests.conftest import FIRST_DAY, NOW, settings_for
from tests.records import session_record
from tests.reliability.conftest import backfill, cli_env, run_cli
from tests.reliability.hostile import ADMIN_USERINFO, HostileGateway, Reply

REVIEWER = TokenIdentity(email="rita@acme.example", name="Rita", subject="rita", groups=("sre",))
DAYS = [FIRST_DAY, FIRST_DAY + timedelta(days=1)]


@pytest.fixture
def canary() -> str:
    return f"hpk_CANARY_{secrets.token_hex(16)}"


def copies_in(data_dir: Path, secret: str) -> list[str]:
    """Every place under ``data_dir`` where ``secret`` is found, in any form it is stored in."""
    needle = secret.encode()
    found = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        name = str(path.relative_to(data_dir))
        data = path.read_bytes()
        if needle in data:
            found.append(f"{name} (bytes)")
        if data[:2] == b"\x1f\x8b" and needle in gunzip(data):
            found.append(f"{name} (decompressed)")
        if path.suffix == ".parquet" and secret in repr(pq.read_table(path).to_pylist()):
            found.append(f"{name} (values)")
    warehouse = data_dir / "warehouse.duckdb"
    if warehouse.exists():
        with duckdb.connect(str(warehouse), read_only=True) as con:
            for (table,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                if secret in repr(con.execute(f'SELECT * FROM "{table}"').fetchall()):
                    found.append(f"warehouse table {table} (values)")
    return found


def gunzip(data: bytes) -> bytes:
    """All the gzip members of ``data`` that decompress, even if the file was cut short."""
    out = b""
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data)
        except zlib.error:
            break
        data = inflater.unused_data
    return out


def exception_text(exc: BaseException) -> str:
    return repr(exc) + str(exc) + "".join(traceback.format_exception(exc))


def test_the_search_finds_a_planted_copy_in_every_kind_of_file(tmp_path, canary):
    record = session_record(metadata={"note": canary}, id="0b9f6a3c-1111-4222-8333-000000000001")
    ingest_records([record], data_dir=tmp_path, synced_at=datetime(2026, 11, 10, tzinfo=UTC))
    found = copies_in(tmp_path, canary)
    assert "raw/start_day=2026-11-01/sessions.ndjson.gz (decompressed)" in found
    assert "lake/sessions/start_day=2026-11-01/part-0.parquet (values)" in found
    assert "warehouse table sessions (values)" in found


def test_a_sync_through_faults_retries_and_a_failed_day_leaves_no_copy_of_the_token(
    gateway_factory, tmp_path, canary, caplog
):
    caplog.set_level(logging.DEBUG)
    shape = {"days": 2, "sessions_per_day": 20, "seed": 4}
    broken = Dataset(SimulatorConfig(start=FIRST_DAY, **shape)).session_ids(DAYS[1], now=NOW)[0]
    gateway = gateway_factory(
        **shape,
        token=canary,
        fault_rate=0.3,
        slow_response_s=1.5,
        failing_sessions=frozenset({broken}),
    )
    result = sync_days(
        settings_for(gateway, tmp_path, timeout_seconds=1.0, retry_attempts=4), DAYS, now=NOW
    )
    # The session whose get always fails is reported; the rest of its day loads.
    assert not result.failed
    assert [
        item for item in result.incomplete[DAYS[1]] if broken in item and "kept failing" in item
    ]
    assert sum(d.extract.retries for d in result.days if d.extract) > 0
    # There was text to leak into: retries and the failing session were reported.
    assert "retrying after attempt" in caplog.text and broken in repr(result)
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    assert canary not in logged + repr(result)
    assert copies_in(tmp_path, canary) == []


def test_the_command_with_verbose_logging_prints_no_copy_of_the_token(
    gateway_factory, tmp_path, canary
):
    gateway = gateway_factory(
        days=2, sessions_per_day=20, seed=4, token=canary, fault_rate=0.3, slow_response_s=1.5
    )
    done = run_cli(
        "-v",
        "backfill",
        "--start",
        str(DAYS[0]),
        "--end",
        str(DAYS[-1]),
        env=cli_env(gateway.url, canary, tmp_path, HOOP_TIMEOUT_SECONDS="1"),
    )
    assert done.returncode == 0, done.stderr
    assert "DEBUG" in done.stderr and "retrying after attempt" in done.stderr
    assert canary not in done.stdout + done.stderr
    assert copies_in(tmp_path, canary) == []


def test_a_refused_token_is_not_repeated_by_the_error_its_traceback_or_the_logs(
    gateway_factory, tmp_path, canary, caplog
):
    caplog.set_level(logging.DEBUG)
    gateway = gateway_factory(days=1, sessions_per_day=5)  # accepts its own token, not the canary
    with pytest.raises(AuthenticationError) as info:
        sync_days(settings_for(gateway, tmp_path, api_token=Secret(canary)), [FIRST_DAY], now=NOW)
    assert "401" in str(info.value)
    assert canary not in exception_text(info.value) + caplog.text
    done = run_cli(
        "-v",
        "backfill",
        "--start",
        str(FIRST_DAY),
        "--end",
        str(FIRST_DAY),
        env=cli_env(gateway.url, canary, tmp_path),
    )
    assert done.returncode == 1 and "401" in done.stderr
    assert canary not in done.stdout + done.stderr
    assert copies_in(tmp_path, canary) == []


def test_a_token_that_sees_only_part_of_the_sessions_is_refused_without_showing_it(
    gateway_factory, tmp_path, canary, caplog
):
    caplog.set_level(logging.DEBUG)
    gateway = gateway_factory(days=1, sessions_per_day=5, extra_tokens={canary: REVIEWER})
    with pytest.raises(PartialVisibilityError) as info:
        sync_days(settings_for(gateway, tmp_path, api_token=Secret(canary)), [FIRST_DAY], now=NOW)
    assert "rita@acme.example" in str(info.value)
    assert canary not in exception_text(info.value) + caplog.text
    done = run_cli(
        "-v",
        "backfill",
        "--start",
        str(FIRST_DAY),
        "--end",
        str(FIRST_DAY),
        env=cli_env(gateway.url, canary, tmp_path),
    )
    assert done.returncode == 1 and "neither 'admin' nor 'auditor'" in done.stderr
    assert canary not in done.stdout + done.stderr
    assert copies_in(tmp_path, canary) == []


def test_settings_and_clients_do_not_show_the_token_in_their_repr(canary):
    settings = Settings.from_env({"HOOP_API_URL": "https://hoop.example", "HOOP_API_TOKEN": canary})
    assert (
        canary
        not in repr(settings) + str(settings) + repr(settings.api_token) + f"{settings.api_token}"
    )


# -- a token as it is read from files and secrets --------------------------------------------


@pytest.mark.parametrize("around", ["\n", " ", "\r", "\r\n"])
def test_a_token_read_with_whitespace_around_it_syncs_and_is_never_shown(
    gateway_factory, tmp_path, canary, caplog, around
):
    caplog.set_level(logging.DEBUG)
    gateway = gateway_factory(days=1, sessions_per_day=3, token=canary)
    env = {
        "HOOP_API_URL": gateway.url,
        "HOOP_API_TOKEN": f"{around}{canary}{around}",
        "HOOP_DATA_DIR": str(tmp_path),
    }
    result = sync_days(Settings.from_env(env), [FIRST_DAY], now=NOW)
    assert result.ok and result.days[0].build.sessions_loaded == 3
    assert canary not in caplog.text + repr(result)
    assert copies_in(tmp_path, canary) == []


@pytest.mark.parametrize("inside", ["\x00", "\x1b", "\n", "\u2013", "\U0001f511"])
def test_a_token_with_a_character_http_cannot_carry_is_refused_without_showing_any_part_of_it(
    tmp_path, canary, caplog, inside
):
    caplog.set_level(logging.DEBUG)
    head, tail = canary[:20], canary[20:]
    env = {
        "HOOP_API_URL": "https://hoop.invalid",
        "HOOP_API_TOKEN": f"{head}{inside}{tail}",
        "HOOP_DATA_DIR": str(tmp_path),
    }
    with pytest.raises(ConfigError, match="HOOP_API_TOKEN holds") as info:
        Settings.from_env(env)
    shown = exception_text(info.value) + caplog.text
    assert head not in shown and tail not in shown


def test_the_command_refuses_a_token_with_a_control_character_without_showing_it(tmp_path, canary):
    head, tail = canary[:20], canary[20:]
    done = run_cli(
        "-v",
        "backfill",
        "--start",
        str(FIRST_DAY),
        "--end",
        str(FIRST_DAY),
        env=cli_env("https://hoop.invalid", f"{head}\x1b{tail}\n", tmp_path),
    )
    assert (
        done.returncode == 1 and "HOOP_API_TOKEN holds a control character (U+001B)" in done.stderr
    )
    assert head not in done.stdout + done.stderr and tail not in done.stdout + done.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_failures_and_a_proxy_echoing_the_request_leave_no_copy_of_the_token(
    gateway_factory, tmp_path, canary, caplog
):
    caplog.set_level(logging.DEBUG)
    plain = gateway_factory(days=1, sessions_per_day=1, token=canary)
    errors: list[BaseException] = []
    with HostileGateway(token=canary) as echoing:
        # A proxy whose error page quotes the request it could not pass on, headers and all,
        # the token straddling where an error message is cut (200 characters).
        echoing.userinfo = lambda request: Reply(
            520, f"origin error for {request.headers['authorization']:>210}".encode(), "text/html"
        )
        for url, expected in [
            (f"http://127.0.0.1:{closed_port()}", "connection refused"),
            (plain.url.replace("http://", "https://"), "not TLS"),
            (echoing.url, "HTTP 520 origin error"),
        ]:
            settings = Settings(
                api_url=url, api_token=Secret(f"{canary}\n"), data_dir=tmp_path, retry_attempts=2
            )
            with pytest.raises(HoopSessionsError, match=expected) as info:
                sync_days(settings, [FIRST_DAY], now=NOW)
            errors.append(info.value)
        assert len(echoing.requests) == 2 and canary in repr(echoing.requests[0].headers)
    assert "Bearer ****" in str(errors[-1])
    logged = caplog.text + "".join(repr(r.args) + repr(r.__dict__) for r in caplog.records)
    assert "retrying" in logged
    assert canary[:16] not in logged + "".join(exception_text(e) for e in errors)


# -- redirects ------------------------------------------------------------------------------


def test_a_redirect_to_another_host_does_not_take_the_token_along(tmp_path):
    day = date(2026, 11, 1)
    with HostileGateway() as gateway, HostileGateway(token="other") as elsewhere:
        gateway.add_day(
            day, [session_record(id="0b9f6a3c-1111-4222-8333-000000000001", review=None)]
        )
        gateway.bodies["0b9f6a3c-1111-4222-8333-000000000001"] = Reply(
            302,
            b"",
            headers={
                "Location": f"{elsewhere.url}/api/sessions/0b9f6a3c-1111-4222-8333-000000000001"
            },
        )
        settings = Settings(
            api_url=gateway.url,
            api_token=Secret(gateway.token),
            data_dir=tmp_path,
            retry_attempts=2,
        )
        result = sync_days(settings, [day], now=NOW)
        assert not result.failed and "302" in result.incomplete[day][0]
        gateway.userinfo = lambda request: Reply(
            307, b"", headers={"Location": f"{elsewhere.url}/api/userinfo"}
        )
        with pytest.raises(HoopSessionsError, match="307"):
            sync_days(settings, [day], now=NOW)
        assert elsewhere.requests == []


# -- plain HTTP ------------------------------------------------------------------------------


class Recorder:
    """A transport that answers like an empty gateway and records what would have been sent."""

    def __init__(self) -> None:
        self.requests: list[httpcore.Request] = []

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self.requests.append(request)
        if request.url.target.startswith(b"/api/userinfo"):
            return httpcore.Response(200, content=orjson.dumps(ADMIN_USERINFO))
        return httpcore.Response(
            200, content=orjson.dumps({"data": [], "total": 0, "has_next_page": False})
        )

    async def aclose(self) -> None:
        pass


def test_plain_http_to_a_host_that_is_not_loopback_is_refused_before_any_request(tmp_path, canary):
    env = {
        "HOOP_API_URL": "http://hoop.invalid",
        "HOOP_API_TOKEN": canary,
        "HOOP_DATA_DIR": str(tmp_path),
    }
    recorder = Recorder()
    with pytest.raises(ConfigError, match="HOOP_ALLOW_HTTP") as info:
        sync_days(Settings.from_env(env), [FIRST_DAY], now=NOW, transport=recorder)
    assert recorder.requests == []
    assert canary not in exception_text(info.value)
    done = backfill(FIRST_DAY, FIRST_DAY, env=env)
    assert done.returncode == 1 and "HOOP_ALLOW_HTTP" in done.stderr
    assert canary not in done.stdout + done.stderr


def test_plain_http_to_any_host_is_allowed_when_hoop_allow_http_is_set(tmp_path, canary):
    env = {
        "HOOP_API_URL": "http://hoop.invalid",
        "HOOP_API_TOKEN": canary,
        "HOOP_DATA_DIR": str(tmp_path),
        "HOOP_ALLOW_HTTP": "1",
    }
    recorder = Recorder()
    assert sync_days(Settings.from_env(env), [FIRST_DAY], now=NOW, transport=recorder).ok
    assert [r.url.target.split(b"?")[0] for r in recorder.requests][:2] == [
        b"/api/userinfo",
        b"/api/sessions",
    ]
    assert all(r.url.host == b"hoop.invalid" for r in recorder.requests)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8009", "http://localhost:8009", "http://[::1]:8009", "http://LOCALHOST"],
)
def test_plain_http_to_loopback_is_allowed(url):
    assert Settings(api_url=url, api_token=Secret("t")).require_api()[0] == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://hoop.invalid",
        "http://127.0.0.1.nip.io",
        "http://localhost.hoop.invalid",
        "http://127.0.0.1@hoop.invalid",
        "http://hoop.invalid#@127.0.0.1",
        "http://0.0.0.0:8009",
        "HTTP://hoop.invalid",
    ],
)
def test_plain_http_to_a_lookalike_of_loopback_is_refused(url):
    with pytest.raises(ConfigError, match="HOOP_ALLOW_HTTP"):
        Settings(api_url=url, api_token=Secret("t")).require_api()


# -- TLS ---------------------------------------------------------------------------------------


def self_signed(directory: Path, names: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key for the subjectAltName ``names``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509  # noqa: F401  # not a dependency: used when installed
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("neither the cryptography package nor the openssl command is available")
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=hoop-test",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-addext",
                f"subjectAltName={names}",
            ],
            check=True,
            capture_output=True,
        )
        return cert, key
    return _self_signed_with_cryptography(cert, key, names)


def _self_signed_with_cryptography(cert: Path, key: Path, names: str) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hoop-test")])
    alt: list[x509.GeneralName] = []
    for name in names.split(","):
        kind, value = name.split(":", 1)
        alt.append(
            x509.IPAddress(ipaddress.ip_address(value)) if kind == "IP" else x509.DNSName(value)
        )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def loopback_certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"), "DNS:localhost,IP:127.0.0.1")


def tls_gateway(cert: Path, key: Path) -> HostileGateway:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    gateway = HostileGateway(tls=context)
    gateway.add_day(
        FIRST_DAY, [session_record(id="0b9f6a3c-1111-4222-8333-000000000001", review=None)]
    )
    return gateway


def tls_env(gateway: HostileGateway, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "HOOP_API_URL": gateway.url,
        "HOOP_API_TOKEN": gateway.token,
        "HOOP_DATA_DIR": str(data_dir),
        "HOOP_RETRY_ATTEMPTS": "2",
        **extra,
    }


def test_tls_verification_is_on_by_default_and_a_self_signed_gateway_gets_no_token(
    loopback_certificate, tmp_path
):
    with tls_gateway(*loopback_certificate) as gateway:
        with pytest.raises(HoopSessionsError) as info:
            sync_days(Settings.from_env(tls_env(gateway, tmp_path)), [FIRST_DAY], now=NOW)
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and "/api/userinfo" in str(info.value)
        assert (
            gateway.handshakes >= 1 and gateway.requests == []
        )  # not one request, so not the token
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_with_hoop_ca_bundle_naming_its_certificate_the_gateway_syncs(
    loopback_certificate, tmp_path
):
    cert, _ = loopback_certificate
    with tls_gateway(*loopback_certificate) as gateway:
        settings = Settings.from_env(tls_env(gateway, tmp_path, HOOP_CA_BUNDLE=str(cert)))
        result = sync_days(settings, [FIRST_DAY], now=NOW)
    assert result.ok and result.days[0].build.sessions_loaded == 1


def test_a_certificate_for_another_name_is_refused_even_with_the_bundle(tmp_path):
    cert, key = self_signed(tmp_path / "tls", "DNS:hoop.invalid")
    with tls_gateway(cert, key) as gateway:
        with pytest.raises(HoopSessionsError, match="CERTIFICATE_VERIFY_FAILED") as info:
            sync_days(
                Settings.from_env(tls_env(gateway, tmp_path, HOOP_CA_BUNDLE=str(cert))),
                [FIRST_DAY],
                now=NOW,
            )
        assert "mismatch" in str(info.value)
        assert gateway.requests == []


def test_a_certificate_failure_is_not_retried_and_says_to_set_hoop_ca_bundle(
    loopback_certificate, tmp_path
):
    with tls_gateway(*loopback_certificate) as gateway:
        with pytest.raises(HoopSessionsError) as info:
            sync_days(
                Settings.from_env(tls_env(gateway, tmp_path, HOOP_RETRY_ATTEMPTS="3")),
                [FIRST_DAY],
                now=NOW,
            )
        handshakes = gateway.handshakes
    assert "HOOP_CA_BUNDLE" in str(info.value)
    assert handshakes == 1
