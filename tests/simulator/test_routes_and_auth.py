"""Routes, authentication and error bodies (HOOP_API.md: "Routes and auth")."""

from __future__ import annotations

import uuid

import httpx

from hoop_sessions.simulator import Gateway, SimulatorConfig

from .support import SMALL, gateway_for


def test_a_request_without_a_token_is_refused_with_401_access_denied(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + "/api/sessions")
    assert response.status_code == 401
    assert response.json() == {"message": "access denied"}


def test_a_wrong_bearer_token_is_refused_on_every_route(gateway: Gateway) -> None:
    headers = {"Authorization": "Bearer not-the-token"}
    for path in ("/api/sessions", "/api/userinfo", f"/api/sessions/{uuid.uuid4()}"):
        assert httpx.get(gateway.url + path, headers=headers).status_code == 401


def test_error_bodies_are_compact_json_without_a_trailing_newline(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + "/api/userinfo")
    assert response.content == b'{"message":"access denied"}'


def test_the_legacy_api_key_header_authenticates_as_admin(gateway: Gateway) -> None:
    response = httpx.get(gateway.url + "/api/userinfo", headers={"Api-Key": gateway.token})
    assert response.status_code == 200
    assert response.json()["is_admin"] is True
    listed = httpx.get(gateway.url + "/api/sessions", headers={"Api-Key": gateway.token})
    assert listed.status_code == 200


def test_a_multi_tenant_gateway_refuses_the_api_key_header() -> None:
    with gateway_for(SimulatorConfig(days=1, sessions_per_day=5, multi_tenant=True)) as (
        gw,
        client,
    ):
        assert httpx.get(gw.url + "/api/userinfo", headers={"Api-Key": gw.token}).status_code == 401
        assert client.get("/api/userinfo").status_code == 200


def test_userinfo_says_who_the_token_is(client: httpx.Client, gateway: Gateway) -> None:
    info = client.get("/api/userinfo").json()
    assert info["email"] == SMALL.identity.email
    assert info["groups"] == ["admin"]
    assert info["is_admin"] is True
    assert info["org_id"] == gateway.dataset.org_id
    assert {"id", "name", "email", "groups", "is_admin", "org_id"} <= info.keys()


def test_a_session_id_that_is_not_a_uuid_gives_500_not_404(client: httpx.Client) -> None:
    response = client.get("/api/sessions/not-a-uuid")
    assert response.status_code == 500
    assert response.json() == {"message": "failed fetching session"}


def test_an_unknown_session_id_gives_404_not_found(client: httpx.Client) -> None:
    response = client.get(f"/api/sessions/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"message": "not found"}


def test_a_session_id_in_upper_case_finds_the_session_as_postgres_would(
    client: httpx.Client, gateway: Gateway
) -> None:
    session_id = gateway.dataset.session_ids(SMALL.start)[0]
    response = client.get(f"/api/sessions/{session_id.upper()}")
    assert response.status_code == 200
    assert response.json()["id"] == session_id


def test_an_unknown_route_is_a_plain_404(client: httpx.Client) -> None:
    response = client.get("/api/connections")
    assert response.status_code == 404
    assert response.text == "404 page not found"


def test_keep_alive_serves_many_requests_on_one_connection(
    client: httpx.Client, gateway: Gateway
) -> None:
    before = gateway.stats.requests.get("userinfo", 0)
    for _ in range(20):
        assert client.get("/api/userinfo").status_code == 200
    assert gateway.stats.requests["userinfo"] == before + 20
