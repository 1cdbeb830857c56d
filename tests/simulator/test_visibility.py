"""What a token sees depends on its groups (HOOP_API.md: "Visibility")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hoop_sessions.simulator import USERS_BY_EMAIL, Gateway, SimulatorConfig, serve

from .support import START, client_for, list_all

REVIEWER = USERS_BY_EMAIL["ben.okafor@acme.example"]  # dba: reviews the prod databases
AUDITOR = USERS_BY_EMAIL["farid.haddad@acme.example"]  # security, auditor
CFG = SimulatorConfig(
    seed=7,
    start=START,
    days=4,
    sessions_per_day=120,
    extra_tokens={"reviewer-token": REVIEWER.identity(), "auditor-token": AUDITOR.identity()},
)


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    with serve(CFG) as gateway:
        yield gateway


def _reviewable(row: dict[str, object]) -> bool:
    review = row["review"]
    return isinstance(review, dict) and bool(
        {g["group"] for g in review["review_groups_data"]} & set(REVIEWER.groups)
    )


def test_a_non_auditor_token_sees_only_its_own_sessions_and_those_it_may_review(
    gw: Gateway,
) -> None:
    with client_for(gw) as admin, client_for(gw, "reviewer-token") as reviewer:
        everything = list_all(admin, {})
        mine = list_all(reviewer, {})
    expected = {r["id"] for r in everything if r["user_id"] == REVIEWER.subject or _reviewable(r)}
    assert {r["id"] for r in mine} == expected
    assert 0 < len(mine) < len(everything)
    assert any(r["user_id"] != REVIEWER.subject for r in mine)  # reviewable sessions of others


def test_userinfo_shows_the_groups_that_explain_an_incomplete_view(gw: Gateway) -> None:
    with client_for(gw, "reviewer-token") as reviewer:
        info = reviewer.get("/api/userinfo").json()
    assert info["email"] == REVIEWER.email and info["is_admin"] is False
    assert set(info["groups"]) == set(REVIEWER.groups)


def test_an_auditor_sees_every_session(gw: Gateway) -> None:
    with client_for(gw) as admin, client_for(gw, "auditor-token") as auditor:
        assert len(list_all(auditor, {})) == len(list_all(admin, {})) == 4 * 120


def test_getting_a_session_one_may_not_see_is_403(gw: Gateway) -> None:
    with client_for(gw) as admin, client_for(gw, "reviewer-token") as reviewer:
        hidden = next(
            r
            for r in list_all(admin, {})
            if r["user_id"] != REVIEWER.subject and not _reviewable(r)
        )
        response = reviewer.get(f"/api/sessions/{hidden['id']}")
    assert response.status_code == 403
    assert response.json() == {"message": "user is not allowed to access this session"}


def test_a_reviewer_gets_the_record_but_not_the_stream_nor_a_download_link(gw: Gateway) -> None:
    with client_for(gw) as admin, client_for(gw, "reviewer-token") as reviewer:
        other = next(
            r
            for r in list_all(admin, {})
            if r["user_id"] != REVIEWER.subject
            and _reviewable(r)
            and r["status"] == "done"
            and r["metrics"] is not None
        )
        as_admin = admin.get(
            f"/api/sessions/{other['id']}", params={"expand": "event_stream"}
        ).json()
        as_reviewer = reviewer.get(
            f"/api/sessions/{other['id']}", params={"expand": "event_stream"}
        )
        download = reviewer.get(f"/api/sessions/{other['id']}", params={"extension": "txt"})
    assert "event_stream" in as_admin
    assert as_reviewer.status_code == 200 and "event_stream" not in as_reviewer.json()
    assert download.status_code == 403
    assert download.json() == {
        "message": "user is not allowed to download this session",
        "status": 403,
    }


def test_an_owner_sees_the_stream_of_their_own_session(gw: Gateway) -> None:
    with client_for(gw, "reviewer-token") as reviewer:
        own = next(
            r
            for r in list_all(reviewer, {})
            if r["user_id"] == REVIEWER.subject and r["metrics"] and r["metrics"]["event_size"] > 2
        )
        record = reviewer.get(
            f"/api/sessions/{own['id']}", params={"expand": "event_stream"}
        ).json()
    assert record["event_stream"]


def test_a_configured_non_admin_identity_is_what_the_main_token_is() -> None:
    cfg = SimulatorConfig(start=START, days=1, sessions_per_day=30, identity=REVIEWER.identity())
    with serve(cfg) as gateway, client_for(gateway) as client:
        info = client.get("/api/userinfo").json()
        assert info["email"] == REVIEWER.email and info["is_admin"] is False
        assert len(list_all(client, {})) < 30
