"""The object-store seam against a real S3 protocol server on loopback (moto, its own process).

Every request goes over HTTP through Arrow's S3 client, as with a real bucket; the fault proxy in
front of the server answers some of them with S3's throttling and internal errors, or cuts the
connection, and counts what it did so that each test knows its faults happened.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from hoop_sessions.config import Settings
from hoop_sessions.errors import ConfigError, StoreError
from hoop_sessions.store import CLIENT_RETRIES, ObjectStore
from tests.s3.proxy import FAULTS, Fault, FaultProxy
from tests.s3.server import ACCESS_KEY, SECRET_KEY, S3Server

MIB = 1024 * 1024
# Arrow uploads a stream in parts of 10 MiB (its S3 output stream's part size): 12 MiB takes two.
LARGER_THAN_A_PART = 12 * MIB


def bucket_and_prefix(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def all_keys(server: S3Server, url: str) -> list[str]:
    """Every key of the bucket, read with another client (boto3) than the code under test."""
    bucket, _ = bucket_and_prefix(url)
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5 * 1024, 300 * 1024])
def test_bytes_put_into_the_store_come_back_byte_for_byte(store: ObjectStore, size: int) -> None:
    data = os.urandom(size)
    store.put_bytes("docs/blob.bin", data)
    assert store.get_bytes("docs/blob.bin") == data
    info = store.info("docs/blob.bin")
    assert info is not None
    assert info.size == size


def test_putting_bytes_again_replaces_the_object(store: ObjectStore) -> None:
    store.put_bytes("commit.json", b'{"version": 1}')
    store.put_bytes("commit.json", b'{"version": 2}')
    assert store.get_bytes("commit.json") == b'{"version": 2}'


def test_a_file_larger_than_one_upload_part_comes_back_identical(
    proxied_store: ObjectStore, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    local = tmp_path / "part-0.parquet"
    local.write_bytes(os.urandom(LARGER_THAN_A_PART))
    proxied_store.put_file(local, "lake/sessions/start_day=2026-11-01/part-0.parquet")
    # It really went up as a multipart upload: started and completed (POST), two parts (PUT).
    assert s3_proxy.counts.forwarded["POST"] >= 2
    assert s3_proxy.counts.forwarded["PUT"] >= 2

    back = tmp_path / "back" / "part-0.parquet"
    assert proxied_store.get_file("lake/sessions/start_day=2026-11-01/part-0.parquet", back)
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(local.read_bytes()).digest()
    assert not [p.name for p in back.parent.iterdir() if p.name != back.name]  # no temporary left


def test_a_key_ending_in_gz_holds_exactly_the_bytes_given(
    store: ObjectStore, s3_server: S3Server, s3_url: str, tmp_path: Path
) -> None:
    # Arrow compresses or decompresses by the key's extension unless told not to: a raw file
    # (already gzipped) must arrive as it is, for other readers of the store as for this one.
    data = b"\x1f\x8b" + os.urandom(2000)
    local = tmp_path / "sessions.ndjson.gz"
    local.write_bytes(data)
    store.put_file(local, "raw/start_day=2026-11-01/sessions-0123456789abcdef.ndjson.gz")
    store.put_bytes("raw/other.ndjson.gz", data)
    bucket, prefix = bucket_and_prefix(s3_url)
    client = s3_server.client()
    for key in (
        "raw/start_day=2026-11-01/sessions-0123456789abcdef.ndjson.gz",
        "raw/other.ndjson.gz",
    ):
        assert client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read() == data
        assert store.get_bytes(key) == data
    back = tmp_path / "back.gz"
    assert store.get_file("raw/other.ndjson.gz", back)
    assert back.read_bytes() == data


def test_a_downloaded_file_replaces_an_older_local_copy(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("warehouse.duckdb", b"new content")
    local = tmp_path / "work" / "warehouse.duckdb"
    local.parent.mkdir()
    local.write_bytes(b"an older and longer content")
    assert store.get_file("warehouse.duckdb", local)
    assert local.read_bytes() == b"new content"


# -- listing, missing keys, deletes ---------------------------------------------------------------


def test_list_gives_every_nested_key_under_the_prefix_with_its_size(store: ObjectStore) -> None:
    objects = {
        "lake/sessions/start_day=2026-11-01/a.parquet": b"1",
        "lake/sessions/start_day=2026-11-02/b.parquet": b"22",
        "lake/session_events/start_day=2026-11-01/c.parquet": b"333",
        "lake/_commits/start_day=2026-11-01.json": b"{}",
        "raw/start_day=2026-11-01/sessions.ndjson.gz": b"4444",
    }
    for key, data in objects.items():
        store.put_bytes(key, data)

    lake = store.list("lake")
    assert {k: v.size for k, v in lake.items()} == {
        k: len(v) for k, v in objects.items() if k.startswith("lake/")
    }
    assert all(info.key == key for key, info in lake.items())
    assert set(store.list("lake/sessions/")) == {
        "lake/sessions/start_day=2026-11-01/a.parquet",
        "lake/sessions/start_day=2026-11-02/b.parquet",
    }
    assert set(store.list("")) == set(objects)


def test_list_of_a_prefix_does_not_reach_a_sibling_that_shares_its_first_letters(
    store: ObjectStore,
) -> None:
    store.put_bytes("lake/sessions/start_day=2026-11-01/a.parquet", b"1")
    store.put_bytes("lake/sessions_old/start_day=2026-11-01/a.parquet", b"2")
    assert set(store.list("lake/sessions")) == {"lake/sessions/start_day=2026-11-01/a.parquet"}


def test_list_of_a_missing_prefix_is_empty(store: ObjectStore) -> None:
    store.put_bytes("lake/sessions/x.parquet", b"1")
    assert store.list("lake/reviews") == {}
    assert store.list("nothing/here/") == {}


def test_a_missing_key_reads_as_absent_and_leaves_no_local_file(
    store: ObjectStore, tmp_path: Path
) -> None:
    local = tmp_path / "warehouse.duckdb"
    assert store.get_bytes("lake/_commits/start_day=2026-11-01.json") is None
    assert store.get_file("warehouse.duckdb", local) is False
    assert store.info("warehouse.duckdb") is None
    assert list(tmp_path.iterdir()) == []


def test_delete_removes_the_keys_it_names_and_passes_over_missing_ones(
    store: ObjectStore, s3_server: S3Server, s3_url: str
) -> None:
    for name in ("a", "b", "c"):
        store.put_bytes(f"lake/t/{name}.parquet", name.encode())
    store.delete(["lake/t/a.parquet", "lake/t/never-written.parquet", "lake/t/b.parquet"])
    assert set(store.list("lake")) == {"lake/t/c.parquet"}
    _, prefix = bucket_and_prefix(s3_url)
    assert f"{prefix}/lake/t/c.parquet" in all_keys(s3_server, s3_url)
    assert f"{prefix}/lake/t/a.parquet" not in all_keys(s3_server, s3_url)


def test_an_upload_replaces_the_object_and_leaves_no_other_object(
    store: ObjectStore, s3_server: S3Server, s3_url: str, tmp_path: Path
) -> None:
    local = tmp_path / "warehouse.duckdb"
    local.write_bytes(b"old")
    store.put_file(local, "warehouse.duckdb")
    local.write_bytes(b"new, longer")
    store.put_file(local, "warehouse.duckdb")

    assert store.get_bytes("warehouse.duckdb") == b"new, longer"
    _, prefix = bucket_and_prefix(s3_url)
    assert all_keys(s3_server, s3_url) == [f"{prefix}/warehouse.duckdb"]


def test_an_upload_leaves_exactly_its_object(
    store: ObjectStore, s3_server: S3Server, s3_url: str, tmp_path: Path
) -> None:
    local = tmp_path / "warehouse.duckdb"
    local.write_bytes(b"x" * 1000)
    store.put_file(local, "warehouse.duckdb")
    _, prefix = bucket_and_prefix(s3_url)
    assert all_keys(s3_server, s3_url) == [f"{prefix}/warehouse.duckdb"]


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_put_goes_through_when_some_requests_fail(
    proxied_store: ObjectStore, s3_proxy: FaultProxy, tmp_path: Path, fault: Fault
) -> None:
    s3_proxy.inject("PUT", fault, nth={1, 3})
    local = tmp_path / "part-0.parquet"
    local.write_bytes(os.urandom(64 * 1024))

    proxied_store.put_bytes("lake/_commits/start_day=2026-11-01.json", b'{"objects": []}')
    proxied_store.put_file(local, "lake/sessions/start_day=2026-11-01/part-0.parquet")
    proxied_store.put_file(local, "warehouse.duckdb")

    assert s3_proxy.counts.broken[("PUT", fault)] == 2
    s3_proxy.clear()
    assert proxied_store.get_bytes("lake/_commits/start_day=2026-11-01.json") == b'{"objects": []}'
    assert (
        proxied_store.get_bytes("lake/sessions/start_day=2026-11-01/part-0.parquet")
        == local.read_bytes()
    )
    assert proxied_store.get_bytes("warehouse.duckdb") == local.read_bytes()


def test_a_large_upload_goes_through_when_a_part_and_its_completion_fail(
    proxied_store: ObjectStore, s3_proxy: FaultProxy, tmp_path: Path
) -> None:
    s3_proxy.inject("PUT", "drop-half", nth={2}, target="partNumber=")
    s3_proxy.inject("POST", "slowdown", nth={1}, target="uploadId=")  # the completion
    local = tmp_path / "part-0.parquet"
    local.write_bytes(os.urandom(LARGER_THAN_A_PART))

    proxied_store.put_file(local, "lake/session_events/start_day=2026-11-01/part-0.parquet")

    assert s3_proxy.counts.broken_total() == 2
    back = tmp_path / "back.parquet"
    assert proxied_store.get_file("lake/session_events/start_day=2026-11-01/part-0.parquet", back)
    assert back.read_bytes() == local.read_bytes()


@pytest.mark.parametrize("fault", ["internal", "slowdown"])
def test_reads_go_through_when_the_first_answers_are_errors(
    proxied_store: ObjectStore, s3_proxy: FaultProxy, tmp_path: Path, fault: Fault
) -> None:
    proxied_store.put_bytes("lake/_commits/start_day=2026-11-01.json", b"{}")
    s3_proxy.inject("GET", fault, nth={1, 2})
    assert proxied_store.get_bytes("lake/_commits/start_day=2026-11-01.json") == b"{}"
    assert s3_proxy.counts.broken[("GET", fault)] == 2


def test_a_store_that_keeps_failing_raises_store_error_naming_the_url_and_no_credential(
    s3_url: str, s3_proxy: FaultProxy
) -> None:
    store = ObjectStore(s3_url, attempts=3)
    store.put_bytes("lake/_commits/start_day=2026-11-01.json", b"{}")
    s3_proxy.inject("GET", "internal", every=1)

    with pytest.raises(StoreError) as caught:
        store.get_bytes("lake/_commits/start_day=2026-11-01.json")

    message = str(caught.value)
    assert s3_url in message
    assert "failed 3 times" in message
    assert SECRET_KEY not in message
    assert ACCESS_KEY not in message
    # Each of our attempts reached the store, each with the client's own retries under it.
    assert s3_proxy.counts.broken[("GET", "internal")] == 3 * (1 + CLIENT_RETRIES)


def test_credentials_written_into_the_url_appear_in_no_message(s3_url: str) -> None:
    bucket, prefix = bucket_and_prefix(s3_url)
    store = ObjectStore(f"s3://{ACCESS_KEY}:{SECRET_KEY}@{bucket}/{prefix}")
    for text in (repr(store), store.url):
        assert SECRET_KEY not in text
        assert ACCESS_KEY not in text
    assert bucket in store.url


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/hoop",
        "http://bucket/hoop",
        f"sftp://{ACCESS_KEY}:{SECRET_KEY}@host/x",
    ],
)
def test_a_url_with_a_scheme_no_store_serves_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ObjectStore(url)
    assert "scheme" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


# -- HOOP_DATA_DIR=s3://... -----------------------------------------------------------------------


def test_an_s3_data_dir_works_in_a_directory_under_hoop_work_dir(
    s3_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    settings = Settings.from_env({"HOOP_DATA_DIR": s3_url, "HOOP_WORK_DIR": str(work)})

    assert settings.data_url == s3_url
    assert settings.data_dir == work or work in settings.data_dir.parents
    assert settings.warehouse_path.is_relative_to(work)
    assert settings.data_location == s3_url
    store = settings.store
    assert store is not None
    store.put_bytes("probe", b"reached")
    assert ObjectStore(s3_url).get_bytes("probe") == b"reached"


def test_without_hoop_work_dir_two_stores_get_two_working_directories(s3_url: str) -> None:
    one = Settings.from_env({"HOOP_DATA_DIR": s3_url})
    other = Settings.from_env({"HOOP_DATA_DIR": s3_url + "-other"})
    assert one.data_dir != other.data_dir
    assert Settings.from_env({"HOOP_DATA_DIR": s3_url}).data_dir == one.data_dir


def test_a_local_data_dir_has_no_store(tmp_path: Path) -> None:
    settings = Settings.from_env({"HOOP_DATA_DIR": str(tmp_path)})
    assert settings.data_url is None
    assert settings.store is None
    assert settings.data_dir == tmp_path
