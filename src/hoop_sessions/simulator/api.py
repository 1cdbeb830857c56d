"""The gateway's routes: authentication, visibility, list, get and userinfo.

Transport-free: `App.handle` takes a request line and headers and returns a `Response`, which
the HTTP server writes (or, for injected faults, mangles).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote

from .config import API_KEY_IDENTITY, SimulatorConfig, TokenIdentity
from .dataset import Dataset
from .plan import SessionPlan
from .query import COUNT_CAP, ListQuery, OptionError, parse_list_query, select, visible_to
from .render import Body, StreamFormatError, go_json
from .timefmt import US, day_of, format_us

JSON = "application/json; charset=utf-8"
DOWNLOAD_LINK_US = 5 * 60 * US


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes | Body
    route: str  # list, get, userinfo or other: for the stats
    permanent_failure: bool = False


def _error(status: int, message: str, route: str, *, with_status: bool = False) -> Response:
    # gin's c.JSON: json.Marshal of a map (sorted keys, HTML escaped, no trailing newline).
    payload: dict[str, object] = (
        {"message": message, "status": status} if with_status else {"message": message}
    )
    return Response(status, JSON, go_json(payload, escape_html=True, newline=False), route)


class App:
    """One simulated gateway. `now_us` is its clock; the server thread reads it per request."""

    def __init__(self, cfg: SimulatorConfig, dataset: Dataset | None = None) -> None:
        self.cfg = cfg
        self.dataset = dataset or Dataset(cfg)
        self.now_us = self.dataset.now_us()
        self.base_url = f"http://{cfg.host}:{cfg.port}"
        self._tokens = cfg.tokens()

    def handle(self, method: str, target: str, headers: Mapping[str, str]) -> Response:
        path, _, query = target.partition("?")
        path = unquote(path)
        if path == "/api/sessions":
            route = "list"
        elif path.startswith("/api/sessions/") and "/" not in path[len("/api/sessions/") :]:
            route = "get"
        elif path == "/api/userinfo":
            route = "userinfo"
        else:
            route = "other"
        if route == "other" or method != "GET":
            return Response(404, "text/plain", b"404 page not found", "other")
        identity = self._authenticate(headers)
        if identity is None:
            return _error(401, "access denied", route)
        params = parse_qs(query, keep_blank_values=True)
        if route == "list":
            return self._list(params, identity)
        if route == "get":
            return self._get(path[len("/api/sessions/") :], params, identity)
        return self._userinfo(identity)

    def _authenticate(self, headers: Mapping[str, str]) -> TokenIdentity | None:
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self._tokens:
            return self._tokens[token.strip()]
        api_key = headers.get("api-key")
        if api_key is not None and not self.cfg.multi_tenant and api_key in self._tokens:
            return API_KEY_IDENTITY
        return None

    # --- routes ---------------------------------------------------------------------------

    def _list(self, params: Mapping[str, list[str]], identity: TokenIdentity) -> Response:
        legacy = self.cfg.legacy_gateway
        try:
            q = parse_list_query(params, legacy=legacy, now_us=self.now_us)
        except OptionError as exc:
            return _error(exc.status, exc.message, "list")
        if self._window_fails(q):
            return replace(
                _error(500, "failed listing sessions (v2)", "list"), permanent_failure=True
            )
        page = select(self.dataset, q, identity, self.now_us, legacy=legacy)
        rows = b",".join(self.dataset.list_row(p, self.now_us) for p in page.rows)
        if legacy:
            tail = b',"total":%d,"has_next_page":%s}\n' % (
                page.matched or 0,
                b"true" if len(page.rows) == q.limit else b"false",
            )
        else:
            if q.count == "none" or page.matched is None:
                total, capped = b"null", False
            elif q.count == "capped" and page.matched > COUNT_CAP:
                total, capped = b"%d" % COUNT_CAP, True
            else:
                total, capped = b"%d" % page.matched, False
            tail = b',"total":%s,"total_is_capped":%s,"has_next_page":%s}\n' % (
                total,
                b"true" if capped else b"false",
                b"true" if page.has_more else b"false",
            )
        return Response(200, JSON, b'{"data":[' + rows + b"]" + tail, "list")

    def _window_fails(self, q: ListQuery) -> bool:
        if not self.cfg.failing_days:
            return False
        low = day_of(q.start_us) if q.start_us is not None else self.cfg.start
        high = day_of(min(q.end_us, self.now_us)) if q.end_us is not None else day_of(self.now_us)
        return any(low <= day <= high for day in self.cfg.failing_days)

    def _get(
        self, raw_id: str, params: Mapping[str, list[str]], identity: TokenIdentity
    ) -> Response:
        try:
            session_id = str(uuid.UUID(raw_id))
        except ValueError:  # Postgres refuses to cast it to uuid: a database error
            return _error(500, "failed fetching session", "get")
        plan = self.dataset.plan(session_id)
        if session_id in self.cfg.failing_sessions or (
            plan is not None and plan.day in self.cfg.failing_days
        ):
            return replace(_error(500, "failed fetching session", "get"), permanent_failure=True)
        if plan is None or plan.visible_from_us > self.now_us:
            return _error(404, "not found", "get")
        if not visible_to(identity)(plan):
            return _error(403, "user is not allowed to access this session", "get")
        # Only the owner, admins and auditors see (or download) the stream; reviewers do not.
        stream_allowed = identity.sees_everything or plan.user.subject == identity.subject
        first = {k: v[0] for k, v in params.items() if v}
        if first.get("extension"):
            if not stream_allowed:
                return _error(
                    403, "user is not allowed to download this session", "get", with_status=True
                )
            return self._download_link(raw_id, plan, first)
        try:
            body = self.dataset.get_body(
                plan,
                self.now_us,
                expand=first.get("expand", ""),
                event_stream=first.get("event_stream", ""),
                stream_allowed=stream_allowed,
            )
        except StreamFormatError as exc:
            return _error(exc.status, exc.message, "get")
        return Response(200, "application/json", body, "get")

    def _download_link(self, raw_id: str, plan: SessionPlan, first: Mapping[str, str]) -> Response:
        # A one-time token; derived rather than random so that responses stay reproducible.
        token = hashlib.sha256(
            f"{self.cfg.seed}/{plan.id}/{self.now_us}/{sorted(first.items())}".encode()
        ).hexdigest()
        url = (
            f"{self.base_url}/api/sessions/{raw_id}/download?token={token}"
            f"&extension={first['extension']}&newline={first.get('newline', '')}"
            f"&event-time={first.get('event-time', '')}&events={first.get('events', '')}"
        )
        payload = {"download_url": url, "expire_at": format_us(self.now_us + DOWNLOAD_LINK_US)}
        return Response(200, JSON, go_json(payload, escape_html=True, newline=False), "get")

    def _userinfo(self, identity: TokenIdentity) -> Response:
        role = (
            "admin" if identity.is_admin else "auditor" if identity.sees_everything else "standard"
        )
        payload = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "hoop-sim:" + identity.email)),
            "name": identity.name,
            "email": identity.email,
            "status": "active",
            "verified": True,
            "slack_id": "",
            "picture": "",
            "groups": list(identity.groups),
            "is_admin": identity.is_admin,
            "is_auditor": "auditor" in identity.groups,
            "is_multitenant": self.cfg.multi_tenant,
            "role": role,
            "org_id": self.dataset.org_id,
            "org_name": "Acme",
        }
        return Response(200, JSON, go_json(payload, escape_html=True, newline=False), "userinfo")
