"""The simulated organisation: its people, machine identities, groups and connections.

Fixed, not drawn from the seed, so that tests and docs can name a person or a connection.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass

from .config import TokenIdentity

_NS = uuid.UUID("8f7c1f0e-3b7a-4f5e-9a51-5d6f0b6c2a10")


@dataclass(frozen=True)
class User:
    name: str
    email: str
    subject: str  # hoop's user_id: the login subject, or the API key id of a machine
    groups: tuple[str, ...]
    slack_id: str
    machine_identity_id: str | None = None

    @property
    def identity_type(self) -> str:
        return "user" if self.machine_identity_id is None else "machine"

    @property
    def reviewer_id(self) -> str:
        """Reviewers are referenced by their user record id (a UUID), not the subject."""
        return str(uuid.uuid5(_NS, "user:" + self.email))

    def identity(self) -> TokenIdentity:
        """A token that authenticates as this person (for visibility tests and demos)."""
        return TokenIdentity(
            email=self.email, name=self.name, subject=self.subject, groups=self.groups
        )


@dataclass(frozen=True)
class TimeWindow:
    # "H:MM" or "HH:MM", UTC: hoop checks them with Go's time.Parse("15:04", ...), which takes
    # an hour of one digit too. hoop: gateway/api/review/review.go
    start: str
    end: str

    @property
    def start_minute(self) -> int:
        return _minute_of(self.start)

    @property
    def end_minute(self) -> int:
        return _minute_of(self.end)


def _minute_of(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class ReviewPolicy:
    type: str  # "onetime" or "jit"
    groups: tuple[str, ...]
    min_approvals: int | None = None
    force_approval_groups: tuple[str, ...] = ()
    time_window: TimeWindow | None = None
    rule_name: str | None = None


@dataclass(frozen=True)
class Connection:
    name: str
    type: str
    subtype: str
    tags: tuple[tuple[str, str], ...] | None  # sorted; None renders as null
    resource_name: str
    stream: str  # the kind of event stream its sessions record
    weight: int
    review: ReviewPolicy | None = None
    masking: bool = False
    guardrails: bool = False
    jira: bool = False

    @property
    def environment(self) -> str | None:
        return dict(self.tags or ()).get("environment")


def _subject(email: str) -> str:
    # The shape of an IdP subject: 43 url-safe characters, stable per person.
    return base64.urlsafe_b64encode(hashlib.sha256(email.encode()).digest()).decode().rstrip("=")


def _human(name: str, *groups: str) -> User:
    email = name.lower().replace(" ", ".") + "@acme.example"
    slack = "U0" + hashlib.sha256(email.encode()).hexdigest()[:9].upper()
    return User(name=name, email=email, subject=_subject(email), groups=groups, slack_id=slack)


def _machine(name: str) -> User:
    email = f"{name}@machines.acme.example"
    key_id = "hpk_" + hashlib.sha256(email.encode()).hexdigest()[:20]
    return User(
        name=name,
        email=email,
        subject=key_id,
        groups=(),
        slack_id="",
        machine_identity_id=str(uuid.uuid5(_NS, "machine:" + name)),
    )


HUMANS: tuple[User, ...] = (
    _human("Ana Souza", "sre", "oncall"),
    _human("Ben Okafor", "dba"),
    _human("Chen Wei", "engineering"),
    _human("Dana Kowalski", "engineering", "data"),
    _human("Elif Yilmaz", "data"),
    _human("Farid Haddad", "security", "auditor"),
    _human("Grace Lee", "sre"),
    _human("Hugo Martins", "engineering"),
    _human("Ines Duarte", "support"),
    _human("Jonas Berg", "dba", "oncall"),
    _human("Kemi Adeyemi", "engineering", "dba"),
    _human("Lars Nilsson", "admin", "sre"),
    _human("Maya Patel", "data", "engineering"),
    _human("Nico Rossi", "support", "security"),
)
MACHINES: tuple[User, ...] = (_machine("svc-etl"), _machine("svc-deploy"), _machine("svc-backup"))
USERS: tuple[User, ...] = HUMANS + MACHINES
USERS_BY_EMAIL = {u.email: u for u in USERS}


def _tags(environment: str, team: str) -> tuple[tuple[str, str], ...]:
    return (("environment", environment), ("team", team))


CONNECTIONS: tuple[Connection, ...] = (
    Connection(
        "pg-prod-payments",
        "database",
        "postgres",
        _tags("prod", "payments"),
        "payments-db",
        stream="pgwire",
        weight=14,
        masking=True,
        jira=True,
        review=ReviewPolicy(
            "jit",
            ("dba", "sre"),
            min_approvals=2,
            force_approval_groups=("oncall",),
            rule_name="prod-database-jit",
        ),
    ),
    Connection(
        "pg-staging-payments",
        "database",
        "postgres",
        _tags("staging", "payments"),
        "payments-db",
        stream="pgwire",
        weight=12,
    ),
    Connection(
        "mysql-prod-orders",
        "database",
        "mysql",
        _tags("prod", "orders"),
        "orders-db",
        stream="sql",
        weight=12,
        masking=True,
        guardrails=True,
        jira=True,
        review=ReviewPolicy(
            "onetime",
            ("dba",),
            min_approvals=1,
            time_window=TimeWindow("08:00", "20:00"),
            rule_name="prod-writes",
        ),
    ),
    Connection(
        "mysql-dev-orders",
        "database",
        "mysql",
        _tags("dev", "orders"),
        "orders-db",
        stream="sql",
        weight=10,
    ),
    Connection(
        "mongo-prod-catalog",
        "database",
        "mongodb",
        _tags("prod", "catalog"),
        "catalog-db",
        stream="sql",
        weight=4,
        masking=True,
    ),
    Connection(
        "ssh-prod-bastion",
        "application",
        "ssh",
        _tags("prod", "platform"),
        "bastion",
        stream="shell",
        weight=9,
        review=ReviewPolicy("jit", ("sre",), min_approvals=1, force_approval_groups=("oncall",)),
    ),
    Connection(
        "k8s-prod-cluster",
        "custom",
        "kubernetes",
        _tags("prod", "platform"),
        "eks-prod",
        stream="shell",
        weight=8,
        guardrails=True,
        review=ReviewPolicy(
            "onetime",
            ("sre",),
            time_window=TimeWindow("6:30", "22:00"),
            rule_name="prod-cluster-changes",
        ),
    ),
    Connection(
        "k8s-staging-cluster",
        "custom",
        "kubernetes",
        _tags("staging", "platform"),
        "eks-staging",
        stream="shell",
        weight=9,
    ),
    Connection(
        "bash-dev-tools", "custom", "", _tags("dev", "tools"), "tools-vm", stream="shell", weight=8
    ),
    # The RDP proxy writes its own session rows: main type custom, verb connect, no review.
    # hoop: gateway/rdp/recorder.go (CreateSession)
    Connection(
        "rdp-prod-windows",
        "custom",
        "rdp",
        _tags("prod", "finance"),
        "finance-win",
        stream="rdp",
        weight=3,
    ),
    Connection(
        "http-staging-api",
        "application",
        "httpproxy",
        _tags("staging", "web"),
        "web-api",
        stream="http",
        weight=6,
    ),
    # A legacy connection: old main type, no subtype, no tags, deleted since (no resource).
    Connection("pg-legacy-reporting", "postgres", "", None, "", stream="sql", weight=5),
)
CONNECTIONS_BY_NAME = {c.name: c for c in CONNECTIONS}
# Where generated large streams live (a `kubectl logs` of a busy pod).
LARGE_STREAM_CONNECTION = CONNECTIONS_BY_NAME["k8s-staging-cluster"]
# Machine identities reach only these connections.
MACHINE_CONNECTIONS: dict[str, tuple[str, ...]] = {
    "svc-etl": ("pg-staging-payments", "mongo-prod-catalog"),
    "svc-deploy": ("k8s-staging-cluster", "k8s-prod-cluster"),
    "svc-backup": ("mysql-prod-orders", "mysql-dev-orders"),
}


# Newer gateways in control-plane mode: every statement held for approval becomes a session of
# this user, with an empty connection (HOOP_API.md, "Open sets").
CONTROL_PLANE_USER = User(
    name="hoop", email="hoop@hoop.dev", subject="hoop", groups=(), slack_id=""
)
CONTROL_PLANE_CONNECTION = Connection(
    "", "database", "postgres", None, "", stream="pgwire", weight=0
)


def members(group: str) -> tuple[User, ...]:
    return tuple(u for u in HUMANS if group in u.groups)
