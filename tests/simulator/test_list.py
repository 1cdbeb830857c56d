"""`GET /api/sessions`: options, exact 422 texts, counting, paging, order and filters."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from hoop_sessions.simulator import USERS_BY_EMAIL, Gateway, SimulatorConfig

from .support import START, day_window, gateway_for, list_all

PREFIX = "failed listing sessions, invalid "


def _list(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get("/api/sessions", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in rows]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"start_date": "2026-11-01"},
            PREFIX + '"start_date" option: start_date or end_date in wrong format',
        ),
        (
            {"start_date": "2026-11-01T00:00:00Z", "end_date": "yesterday"},
            PREFIX + '"end_date" option: start_date or end_date in wrong format',
        ),
        (
            {"start_date": "2026-11-01t00:00:00z"},
            PREFIX + '"start_date" option: start_date or end_date in wrong format',
        ),
        ({"limit": "abc"}, PREFIX + '"limit" option: "abc" is not a number'),
        ({"limit": "0"}, PREFIX + '"limit" option: must be at least 1, got 0'),
        ({"limit": "-5"}, PREFIX + '"limit" option: must be at least 1, got -5'),
        ({"offset": "1.5"}, PREFIX + '"offset" option: "1.5" is not a number'),
        ({"offset": "-1"}, PREFIX + '"offset" option: must not be negative, got -1'),
        (
            {"offset": "10001"},
            PREFIX + '"offset" option: must not be greater than 10000, got 10001; '
            "narrow the result set with a filter instead of paginating deeper",
        ),
        (
            {"count": "approximate"},
            PREFIX + '"count" option: unknown count mode "approximate", '
            "want one of capped, exact, none",
        ),
    ],
)
def test_bad_list_options_get_422_with_the_gateways_exact_message(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    response = client.get("/api/sessions", params=params)
    assert response.status_code == 422
    assert response.json() == {"message": message}


def test_an_offset_of_exactly_10000_is_accepted(client: httpx.Client) -> None:
    assert _list(client, offset=10_000)["data"] == []


def test_limit_defaults_to_20_and_is_cut_to_100(client: httpx.Client) -> None:
    assert len(_list(client)["data"]) == 20
    assert len(_list(client, limit=500)["data"]) == 100


def test_the_response_has_total_capping_flag_and_next_page(
    client: httpx.Client, gateway: Gateway
) -> None:
    page = _list(client, **day_window(START), limit=5)
    assert list(page) == ["data", "total", "total_is_capped", "has_next_page"]
    expected = len(gateway.dataset.session_ids(START)) + 1  # the next day's 00:00:00 session
    assert page["total"] == expected
    assert page["total_is_capped"] is False
    assert page["has_next_page"] is True


def test_count_none_gives_a_null_total_and_count_exact_a_number(client: httpx.Client) -> None:
    assert _list(client, count="none")["total"] is None
    assert _list(client, count="none")["total_is_capped"] is False
    assert _list(client, count="exact")["total"] == _list(client)["total"]


def test_has_next_page_is_false_on_an_exactly_full_last_page(client: httpx.Client) -> None:
    window = day_window(START)
    total = _list(client, **window)["total"]
    last = _list(client, **window, limit=10, offset=total - 10)
    assert len(last["data"]) == 10
    assert last["has_next_page"] is False
    assert _list(client, **window, limit=10, offset=total - 11)["has_next_page"] is True


def test_rows_are_ordered_by_start_date_then_id_descending(client: httpx.Client) -> None:
    rows = list_all(client, {})
    # Lexical order of the trimmed RFC3339 strings is not time order, so compare real times.
    parsed = [
        (datetime.fromisoformat(r["start_date"].replace("Z", "+00:00")), r["id"]) for r in rows
    ]
    assert parsed == sorted(parsed, reverse=True)
    assert len(rows) == 3 * 80


def test_paging_with_offsets_reads_every_session_of_a_closed_window_once(
    client: httpx.Client, gateway: Gateway
) -> None:
    rows = list_all(client, day_window(START))
    day_ids = set(gateway.dataset.session_ids(START))
    assert len(rows) == len(set(_ids(rows)))
    assert {r["id"] for r in rows if r["start_date"].startswith("2026-11-01")} == day_ids


def test_both_bounds_are_inclusive(client: httpx.Client, gateway: Gateway) -> None:
    midnight = "2026-11-02T00:00:00Z"
    on_bound = [r for r in _list(client, start_date=midnight, end_date=midnight)["data"]]
    assert len(on_bound) == 1
    assert on_bound[0]["start_date"] == midnight
    first_window = _ids(list_all(client, day_window(START)))
    second_window = _ids(list_all(client, day_window(START + timedelta(days=1))))
    assert on_bound[0]["id"] in first_window
    assert on_bound[0]["id"] in second_window


def test_a_window_ending_at_23_59_59_misses_the_sessions_of_the_last_fraction_of_a_second(
    client: httpx.Client,
) -> None:
    until_last_second = list_all(
        client, {"start_date": "2026-11-01T00:00:00Z", "end_date": "2026-11-01T23:59:59Z"}
    )
    whole_day = list_all(client, day_window(START))
    seen = set(_ids(until_last_second))
    missed = {r["start_date"] for r in whole_day if r["id"] not in seen}
    assert {
        "2026-11-01T23:59:59.7Z",
        "2026-11-01T23:59:59.999999Z",
        "2026-11-02T00:00:00Z",
    } <= missed
    assert all(s.startswith("2026-11-01T23:59:59.") or s == "2026-11-02T00:00:00Z" for s in missed)


def test_fractional_seconds_of_the_bounds_are_truncated(client: httpx.Client) -> None:
    exact = _list(
        client, start_date="2026-11-01T12:00:00Z", end_date="2026-11-01T13:00:00Z", count="exact"
    )
    fractional = _list(
        client,
        start_date="2026-11-01T12:00:00.999Z",
        end_date="2026-11-01T13:00:00.5Z",
        count="exact",
    )
    assert fractional["total"] == exact["total"]
    assert fractional["data"] == exact["data"]


def test_a_utc_offset_in_a_bound_is_dropped_and_the_wall_clock_time_compared_as_utc(
    client: httpx.Client,
) -> None:
    as_utc = _list(client, start_date="2026-11-01T09:00:00Z", end_date="2026-11-01T17:00:00Z")
    with_offset = _list(
        client, start_date="2026-11-01T09:00:00+05:00", end_date="2026-11-01T17:00:00-03:00"
    )
    assert with_offset["total"] == as_utc["total"]
    assert with_offset["data"] == as_utc["data"]


def test_start_date_alone_means_until_now(client: httpx.Client, gateway: Gateway) -> None:
    alone = _list(client, start_date="2026-11-02T00:00:00Z", count="exact")
    until_now = _list(
        client,
        start_date="2026-11-02T00:00:00Z",
        end_date=f"{gateway.now:%Y-%m-%dT%H:%M:%SZ}",
        count="exact",
    )
    assert alone["total"] == until_now["total"] > 0


def test_end_date_alone_is_ignored(client: httpx.Client) -> None:
    everything = _list(client, count="exact")["total"]
    assert (
        _list(client, end_date="2026-11-01T06:00:00Z", count="exact")["total"] == everything == 240
    )


def test_user_is_a_like_match_on_the_login_subject(client: httpx.Client) -> None:
    sample = _list(client, limit=1)["data"][0]
    subject = sample["user_id"]
    exact = list_all(client, {"user": subject})
    assert exact and all(r["user_id"] == subject for r in exact)
    prefixed = list_all(client, {"user": subject[:6] + "%"})
    assert {r["id"] for r in exact} <= {r["id"] for r in prefixed}
    assert list_all(client, {"user": sample["user"]}) == []  # the email is not the subject


def test_connection_and_type_are_like_matches_with_percent_and_underscore(
    client: httpx.Client,
) -> None:
    prod_pg = list_all(client, {"connection": "pg-prod-%"})
    assert prod_pg and {r["connection"] for r in prod_pg} == {"pg-prod-payments"}
    one_char = list_all(client, {"connection": "k8s-____-cluster"})
    assert {r["connection"] for r in one_char} == {"k8s-prod-cluster"}
    databases = list_all(client, {"type": "data%"})
    assert databases and {r["type"] for r in databases} == {"database"}


def test_review_status_is_exact_and_empty_means_sessions_without_a_review(
    client: httpx.Client,
) -> None:
    approved = list_all(client, {"review.status": "APPROVED"})
    assert approved and {r["review"]["status"] for r in approved} == {"APPROVED"}
    assert list_all(client, {"review.status": "approved"}) == []
    unreviewed = list_all(client, {"review.status": ""})
    assert unreviewed and all(r["review"] is None for r in unreviewed)
    statuses = {"APPROVED", "EXECUTED", "REJECTED", "REVOKED", "PENDING", "PROCESSING"}
    reviewed = sum(len(list_all(client, {"review.status": s})) for s in statuses)
    assert reviewed + len(unreviewed) == 240


def test_review_approver_selects_sessions_the_person_is_eligible_to_review(
    client: httpx.Client,
) -> None:
    reviewer = USERS_BY_EMAIL["ben.okafor@acme.example"]  # group: dba
    rows = list_all(client, {"review.approver": reviewer.email})
    assert rows
    for row in rows:
        assert {g["group"] for g in row["review"]["review_groups_data"]} & set(reviewer.groups)
    assert list_all(client, {"review.approver": "nobody@acme.example"}) == []


def test_jira_batch_and_correlation_filters_are_exact(client: httpx.Client) -> None:
    rows = list_all(client, {})
    with_jira = next(r for r in rows if r["integrations_metadata"])
    key = with_jira["integrations_metadata"]["jira_issue_key"]
    by_key = list_all(client, {"jira_issue_key": key.lower()})  # compared case-insensitively
    assert with_jira["id"] in _ids(by_key)
    assert all(r["integrations_metadata"]["jira_issue_key"] == key for r in by_key)
    assert list_all(client, {"jira_issue_key": key[:-1]}) == []  # no prefix match

    batched = next(r for r in rows if "session_batch_id" in r)
    by_batch = list_all(client, {"batch_id": batched["session_batch_id"]})
    assert {r.get("session_batch_id") for r in by_batch} == {batched["session_batch_id"]}
    assert len(by_batch) == sum(
        r.get("session_batch_id") == batched["session_batch_id"] for r in rows
    )

    correlated = next(r for r in rows if "correlation_id" in r)
    by_correlation = list_all(client, {"correlation_id": correlated["correlation_id"]})
    assert len(by_correlation) == sum(
        r.get("correlation_id") == correlated["correlation_id"] for r in rows
    )


def test_a_day_with_more_sessions_than_the_offset_cap_reports_a_capped_total() -> None:
    big_day = START + timedelta(days=1)
    cfg = SimulatorConfig(start=START, days=2, sessions_per_day=10, day_sizes={big_day: 10_150})
    with gateway_for(cfg) as (_, client):
        window = day_window(big_day)
        capped = _list(client, **window, limit=1)
        assert capped["total"] == 10_000
        assert capped["total_is_capped"] is True
        assert _list(client, **window, limit=1, count="exact")["total"] == 10_150
        last = _list(client, **window, offset=10_000, limit=100)
        assert len(last["data"]) == 100 and last["has_next_page"] is True
        assert client.get("/api/sessions", params={**window, "offset": 10_100}).status_code == 422
