"""Session plans: everything about a session that does not depend on the clock.

A plan says who did what, when each step happens (review decisions, connect, end) and how to
re-create the stream. `lifecycle.state_at` turns a plan and a clock into what the gateway shows.
Each day is generated on its own from (seed, profile, day), and each session from its own random
stream, so a day's sessions never depend on which other days are simulated.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from . import catalog
from .catalog import Connection, ReviewPolicy, User
from .config import MAX_LARGE_STREAM_BYTES, SimulatorConfig
from .seeds import seeded
from .streams import SCALABLE_KINDS, StreamSpec, draw_event_count, scaled_script, script_for
from .timefmt import US, day_start_us, format_s, format_us

MINUTE = 60 * US
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# The low 20 bits of a session id carry its day (XOR a per-seed mask), so that a get by id
# generates only that day. The id still reads as a random version-4 UUID.
_DAY_BITS = 20
# Open sessions have their stream appended about every 50 seconds.
# hoop: gateway/transport/plugins/audit/wal.go (the session's WAL, flushed to the store)
_FLUSH_US = 50 * US
_FLUSHED_KINDS = frozenset({"shell", "sql", "pgwire", "http", "latin1", "nul"})


@dataclass(frozen=True, slots=True)
class GroupPlan:
    id: str
    group: str
    decision: str | None  # APPROVED or REJECTED; None: never decided
    reviewer: User | None
    decided_us: int | None
    forced: bool = False
    revoked_by: User | None = None  # an approval later revoked by this person...
    revoked_us: int | None = None  # ...at this time


@dataclass(frozen=True, slots=True)
class ReviewPlan:
    id: str
    type: str  # onetime or jit
    policy: ReviewPolicy
    access_duration_s: int
    outcome: str  # approved, rejected, revoked, pending, expired (newer gateways)
    decided_us: int | None  # when the review stopped being PENDING
    revoked_us: int | None
    groups: tuple[GroupPlan, ...]
    rejection_reason: str | None


@dataclass(frozen=True, slots=True)
class SessionPlan:
    id: str
    day: date
    start_us: int
    user: User
    connection: Connection
    verb: str
    script: str
    stream: StreamSpec
    connect_us: int | None  # when the client connected: the stream's time zero; None: never ran
    end_us: int | None
    exit_code: int | None
    review: ReviewPlan | None
    labels: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None
    metadata_edit: tuple[int, dict[str, Any]] | None = None  # an owner's later edit
    integrations: dict[str, Any] | None = None
    batch_id: str | None = None
    correlation_id: str | None = None
    ai_analysis: dict[str, Any] | None = None
    guardrails: list[dict[str, Any]] | None = None
    masking: dict[str, Any] | None = None
    truncated: bool = False
    # How the session was closed, when not by its client: "credentials" (the credential sweeper
    # ended it: no exit code) or "restart" (a gateway restart: event_size 0, a partial stream).
    ending: str | None = None
    # The session whose JIT grant let this one through without a review of its own.
    covered_by: str | None = None
    # Newer gateways only (`newer_gateway`): when the row shows up in the list (a sidecar sends
    # back-dated sessions late; None: at its start), and the shapes below.
    appears_us: int | None = None
    recording_format: str | None = None
    identity_type: str | None = None  # overrides the user's (sidecar)
    reaped_us: int | None = None  # a silent sidecar session closed by the gateway

    @property
    def visible_from_us(self) -> int:
        """When the session exists for the API: its start, or later for a late sidecar row."""
        return self.start_us if self.appears_us is None else self.appears_us


def day_mask(seed: int) -> int:
    return seeded(f"hoop-sim/day-mask/{seed}").getrandbits(_DAY_BITS)


def day_of_id(session_id: str, mask: int) -> date | None:
    """The day a session id was generated for (None if it cannot be one of ours)."""
    try:
        value = uuid.UUID(session_id).int
    except ValueError:
        return None
    ordinal = (value & ((1 << _DAY_BITS) - 1)) ^ mask
    return date.fromordinal(ordinal + date(1970, 1, 1).toordinal()) if ordinal < 200_000 else None


def generate_day(cfg: SimulatorConfig, day: date) -> list[SessionPlan]:
    """Every session started on `day`, in no particular order."""
    count = cfg.day_size(day)
    day_rng = seeded(f"hoop-sim/{cfg.seed}/{cfg.profile}/{day.isoformat()}")
    base = day_start_us(day)
    starts = [base + _time_of_day(day_rng) for _ in range(count)]
    if cfg.boundary_sessions and count >= 3:
        # Exactly on the day's lower bound, and inside the last second of the day.
        starts[0] = base
        starts[1] = base + DAY - US + 700_000
        starts[2] = base + DAY - 1
    if cfg.burst_size:
        first = 3 if cfg.boundary_sessions else 0
        second = base + day_rng.randrange(9 * 3600, 17 * 3600) * US
        shared = second + day_rng.randrange(US)
        for i in range(first, min(count, first + cfg.burst_size)):
            # Some sessions of a burst share the very same microsecond: only the id orders them.
            starts[i] = shared if day_rng.random() < 0.1 else second + day_rng.randrange(US)
    batches = [f"batch-{day_rng.getrandbits(32):08x}" for _ in range(3)]
    mask = day_mask(cfg.seed)
    ordinal = (day - date(1970, 1, 1)).days
    day_index = (day - cfg.start).days
    plans = []
    for index, start_us in enumerate(starts):
        rng = seeded(f"hoop-sim/{cfg.seed}/{cfg.profile}/{day.isoformat()}/{index}")
        raw_id = (rng.getrandbits(128) & ~((1 << _DAY_BITS) - 1)) | (ordinal ^ mask)
        session_id = str(uuid.UUID(int=raw_id, version=4))
        large = index == min(3, count - 1) and 0 <= day_index < cfg.large_streams
        builder = _Builder(cfg, rng, session_id, day, start_us, batches)
        if large:
            plans.append(builder.large(cfg.large_stream_bytes))
        elif cfg.profile == "plain":
            plans.append(builder.plain())
        else:
            plans.append(builder.realistic())
    if cfg.profile == "realistic":
        # The boundary, large and burst sessions keep their start times.
        _cover_with_grants(cfg, day, plans, batches, first_donor=max(4, 3 + cfg.burst_size))
    if cfg.newer_gateway:
        _newer_shapes(cfg, day, plans, first_donor=max(4, 3 + cfg.burst_size))
    return plans


def _recording_format(plan: SessionPlan) -> str:
    # Newer gateways only: hoop 1.148 sends no recording_format (HOOP_API.md, "Open sets").
    if plan.stream.kind == "rdp":
        return "rdp"
    if plan.verb == "exec":
        return "exec"
    return "pty" if plan.connection.stream == "shell" else "raw"


def _newer_shapes(
    cfg: SimulatorConfig, day: date, plans: list[SessionPlan], *, first_donor: int
) -> None:
    """What a gateway newer than 1.148 shows (HOOP_API.md, "Open sets"; modelled as that page
    describes them): a `recording_format` on every session, undecided reviews that end EXPIRED,
    control-plane sessions (empty connection, user hoop@hoop.dev), and sessions recorded by an
    inspection sidecar (identity_type `sidecar`) whose rows arrive hours after their day, some
    closed by the gateway after 24 silent hours (`metadata.sidecar.reaped_at`)."""
    rng = seeded(f"hoop-sim/{cfg.seed}/{cfg.profile}/{day.isoformat()}/newer")
    day_end = day_start_us(day) + DAY
    for i, plan in enumerate(plans):
        plan = replace(plan, recording_format=_recording_format(plan))
        review = plan.review
        if review is not None and review.outcome == "pending":
            # An undecided review expires (after a day, in this simulator).
            plan = replace(
                plan, review=replace(review, outcome="expired", decided_us=plan.start_us + DAY)
            )
        elif (
            review is not None
            and review.type == "onetime"
            and plan.verb == "exec"
            and plan.connection.stream in ("sql", "pgwire")
            and i >= first_donor
            and rng.random() < 0.15
        ):
            plan = replace(
                plan,
                user=catalog.CONTROL_PLANE_USER,
                connection=catalog.CONTROL_PLANE_CONNECTION,
                integrations=None,
                batch_id=None,
            )
        elif (
            i >= first_donor
            and review is None
            and plan.covered_by is None
            and plan.ending is None
            and plan.user.machine_identity_id is None
            and plan.connect_us is not None
            and plan.end_us is not None
            and plan.stream.kind in ("shell", "sql")
            and rng.random() < 0.1
        ):
            appears = max(plan.start_us, day_end) + rng.randrange(HOUR, 26 * HOUR)
            plan = replace(
                plan, identity_type="sidecar", recording_format="raw", appears_us=appears
            )
            if rng.random() < 0.3:
                reaped = plan.end_us + DAY  # type: ignore[operator]
                plan = replace(
                    plan,
                    end_us=reaped,
                    exit_code=None,
                    metadata=None,
                    metadata_edit=(reaped, {"sidecar": {"reaped_at": format_us(reaped)}}),
                    reaped_us=reaped,
                )
        plans[i] = plan


def _cover_with_grants(
    cfg: SimulatorConfig,
    day: date,
    plans: list[SessionPlan],
    batches: list[str],
    *,
    first_donor: int,
) -> None:
    """Turn some unreviewed sessions of the day into later sessions of a JIT grant's owner on
    the grant's connection, started while the grant is valid: the gateway lets them through
    without a review of their own (`review: null`). The latest APPROVED JIT review of the same
    owner and connection is looked up at connect and must not have reached its revoke_at.
    hoop: gateway/models/reviews.go (GetApprovedReviewJit)
    hoop: gateway/transport/plugins/review/review.go (validateJit)"""
    rng = seeded(f"hoop-sim/{cfg.seed}/{cfg.profile}/{day.isoformat()}/jit-covered")
    day_end = day_start_us(day) + DAY
    donors = [
        i
        for i, p in enumerate(plans)
        if i >= first_donor
        and p.review is None
        and p.connection.review is None
        and p.user.machine_identity_id is None
        and p.ending is None
    ]
    grants = [
        p
        for p in plans
        if p.review is not None
        and p.review.type == "jit"
        and p.review.outcome == "approved"
        and p.review.decided_us is not None
        and p.connect_us is not None
    ]
    for grant in grants:
        if not donors or rng.random() >= 0.3:
            continue
        assert grant.review is not None and grant.review.decided_us is not None
        approved = grant.review.decided_us
        grant_end = approved + grant.review.access_duration_s * US
        low = max(approved, grant.start_us) + MINUTE
        high = min(grant_end, day_end) - MINUTE
        for _ in range(rng.choice((1, 1, 2))):
            if low >= high or not donors:
                break
            start = rng.randrange(low, high)
            if _other_grant_valid(plans, grant, start):
                continue  # keep every covered session's grant unambiguous
            index = donors.pop(rng.randrange(len(donors)))
            donor = plans[index]
            builder = _Builder(
                cfg, seeded(f"hoop-sim/covered/{donor.id}"), donor.id, day, start, batches
            )
            plans[index] = builder.covered(grant, grant_end, late=rng.random() < 0.3)


def _other_grant_valid(plans: list[SessionPlan], grant: SessionPlan, start: int) -> bool:
    for p in plans:
        review = p.review
        if (
            p is grant
            or review is None
            or review.type != "jit"
            or review.decided_us is None
            or p.user != grant.user
            or p.connection != grant.connection
        ):
            continue
        asked_meanwhile = grant.start_us <= p.start_us <= start
        end = review.decided_us + review.access_duration_s * US
        if asked_meanwhile or review.decided_us <= start < end:
            return True
    return False


def _time_of_day(rng: random.Random) -> int:
    """Mostly office hours (UTC), with a long tail of night-time work."""
    if rng.random() < 0.7:
        seconds = min(max(rng.gauss(13.5 * 3600, 2.6 * 3600), 0), 86_399)
    else:
        seconds = rng.uniform(0, 86_399)
    return int(seconds) * US + rng.randrange(US)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _lognormal_us(
    rng: random.Random, median_s: float, sigma: float, low_s: float, high_s: float
) -> int:
    value = math.exp(rng.gauss(math.log(median_s), sigma))
    return int(min(max(value, low_s), high_s) * US)


_REJECTION_REASONS = (
    "This command is not allowed in production.",
    "Use the read replica for reporting queries.",
    "No ticket referenced; please open a change request.",
)
_AI = (
    ("low", "Read-only query", "The script only reads aggregated data.", "allow_execution"),
    (
        "medium",
        "Bulk update",
        "The statement updates rows without a narrow filter.",
        "allow_execution",
    ),
    (
        "high",
        "Potential data exfiltration",
        "The script selects personal data in bulk.",
        "block_execution",
    ),
)


class _Builder:
    """Draws one session. Probabilities are per session, from the session's own random stream."""

    def __init__(
        self,
        cfg: SimulatorConfig,
        rng: random.Random,
        session_id: str,
        day: date,
        start_us: int,
        batches: list[str],
    ) -> None:
        self.cfg = cfg
        self.rng = rng
        self.id = session_id
        self.day = day
        self.start_us = start_us
        self.batches = batches

    def _stream(self, kind: str, run_us: int, size: int = 0) -> StreamSpec:
        return StreamSpec(kind=kind, seed=self.rng.getrandbits(63), run_us=run_us, size=size)

    def _recorded(self, kind: str, run_us: int, script: str) -> tuple[StreamSpec, str]:
        """The stream, and the script that goes with it. With `events_per_session`, the stream
        gets its own length around that mean, and an exec script is lengthened to match; both
        are drawn from a generator of their own (keyed by the stream seed), so that every other
        draw, and with them the rest of the session, stays as without the knob."""
        stream = self._stream(kind, run_us)
        mean = self.cfg.events_per_session
        if mean is None or kind not in SCALABLE_KINDS:
            return stream, script
        rng = seeded(f"hoop-sim/events/{stream.seed}")
        count = draw_event_count(rng, mean)
        stream = StreamSpec(kind=kind, seed=stream.seed, run_us=run_us, events=count)
        return stream, scaled_script(kind, script, count, rng)  # only exec sessions have one

    def large(self, size: int) -> SessionPlan:
        rng = self.rng
        connect = self.start_us + rng.randrange(50_000, 900_000)
        run = rng.randrange(10 * MINUTE, 40 * MINUTE)
        return SessionPlan(
            id=self.id,
            day=self.day,
            start_us=self.start_us,
            user=rng.choice(catalog.members("sre")),
            connection=catalog.LARGE_STREAM_CONNECTION,
            verb="exec",
            script="kubectl logs -f deploy/api --since=24h",
            stream=self._stream("large", run, size),
            connect_us=connect,
            end_us=connect + run,
            exit_code=0,
            review=None,
            truncated=size >= MAX_LARGE_STREAM_BYTES,
        )

    def covered(self, grant: SessionPlan, grant_end: int, *, late: bool) -> SessionPlan:
        """A session let through by `grant`. It runs under a timeout of the grant's whole access
        duration counted from its own connect, so it can outlive the grant (`late`).
        hoop: gateway/transport/plugins/review/review.go (context.WithTimeout in OnReceive)"""
        rng = self.rng
        assert grant.review is not None
        connect = self.start_us + rng.randrange(50_000, 1_500_000)
        timeout = connect + grant.review.access_duration_s * US
        if late and timeout > grant_end + 10 * MINUTE:
            end = rng.randrange(grant_end + 5 * MINUTE, timeout)
        else:
            end = connect + min(self._run_us("connect"), max(grant_end - connect, MINUTE))
        connection = grant.connection
        stream, _ = self._recorded(connection.stream, end - connect, "")
        return SessionPlan(
            id=self.id,
            day=self.day,
            start_us=self.start_us,
            user=grant.user,
            connection=connection,
            verb="connect",
            script="",
            stream=stream,
            connect_us=connect,
            end_us=end,
            exit_code=self._exit_code("connect"),
            review=None,
            masking=self._masking(connection),
            covered_by=grant.id,
        )

    def plain(self) -> SessionPlan:
        rng = self.rng
        # Short unreviewed terminal, database and HTTP work: no RDP (its sessions are connects).
        connection = rng.choice(
            [c for c in catalog.CONNECTIONS if c.review is None and c.stream != "rdp"]
        )
        user = rng.choice(catalog.HUMANS)
        verb = "exec" if rng.random() < 0.6 else "connect"
        run = rng.randrange(US, 20 * US) if verb == "exec" else rng.randrange(MINUTE, 10 * MINUTE)
        connect = self.start_us + rng.randrange(50_000, 900_000)
        script = script_for(connection.stream, rng) if verb == "exec" else ""
        stream, script = self._recorded(connection.stream, run, script)
        return SessionPlan(
            id=self.id,
            day=self.day,
            start_us=self.start_us,
            user=user,
            connection=connection,
            verb=verb,
            script=script,
            stream=stream,
            connect_us=connect,
            end_us=connect + run,
            exit_code=0,
            review=None,
        )

    def realistic(self) -> SessionPlan:
        rng = self.rng
        if rng.random() < 0.1:
            user = rng.choice(catalog.MACHINES)
            connection = catalog.CONNECTIONS_BY_NAME[
                rng.choice(catalog.MACHINE_CONNECTIONS[user.name])
            ]
        else:
            connection = rng.choices(catalog.CONNECTIONS, [c.weight for c in catalog.CONNECTIONS])[
                0
            ]
            user = rng.choice(catalog.HUMANS)
        policy = connection.review
        self_approval = (
            policy is not None and user.machine_identity_id is None and rng.random() < 0.03
        )
        if self_approval and policy is not None:
            user = rng.choice(catalog.members(policy.groups[0]))
        verb = self._verb(connection, user)
        script = script_for(connection.stream, rng) if verb == "exec" else ""

        review, connect, end = self._timeline(connection, user, verb, self_approval)
        if connection.stream == "rdp" and connect is not None:
            # The recorder's clock starts when it creates the row: elapsed counts from start.
            # hoop: gateway/rdp/recorder.go (NewRDPSessionRecorder, CreateSession)
            connect, end = self.start_us, None if end is None else end - connect + self.start_us
        exit_code = self._exit_code(verb) if connect is not None else None
        guardrails = None
        if connection.guardrails and rng.random() < 0.06:
            guardrails = [_guardrail_match(rng)]
            exit_code = 1
        ending, metadata = None, self._metadata()
        kind = self._stream_kind(connection)
        if (
            review is None
            and verb == "connect"
            and connection.stream != "rdp"
            and connect is not None
            and rng.random() < 0.04
        ):
            # Native-client access through issued credentials: the background sweeper ends the
            # session within 15 s of the credential's expiry, setting only status and end date.
            # hoop: gateway/models/connection_credentials.go (CloseExpiredCredentialSessions)
            expire_s = (connect + rng.randrange(15 * MINUTE, 2 * HOUR)) // US
            end = expire_s * US + rng.randrange(15 * US)
            ending, exit_code = "credentials", None
            # hoop: gateway/models/session.go (credentials_expire_at in metadata)
            metadata = {**(metadata or {}), "credentials_expire_at": format_s(expire_s * US)}
        elif (
            connect is not None
            and end is not None
            and end - connect > 2 * _FLUSH_US
            and kind in _FLUSHED_KINDS
            and rng.random() < 0.03
        ):
            # A gateway restart: the row is marked done with event_size 0, and the events after
            # the last 50 s flush are lost. hoop: gateway/transport/plugins/audit/wal.go
            ending = "restart"
        run = 0 if connect is None or end is None else end - connect
        stream, script = self._recorded(kind, run, script)
        return SessionPlan(
            id=self.id,
            day=self.day,
            start_us=self.start_us,
            user=user,
            connection=connection,
            verb=verb,
            script=script,
            stream=stream,
            connect_us=connect,
            end_us=end,
            exit_code=exit_code,
            review=review,
            labels=self._labels(),
            metadata=metadata,
            metadata_edit=self._metadata_edit(end),
            integrations=self._jira(connection),
            batch_id=self._batch(user),
            correlation_id=f"task-{rng.randint(10_000, 10_040)}" if rng.random() < 0.08 else None,
            ai_analysis=self._ai(review is not None),
            guardrails=guardrails,
            masking=self._masking(connection),
            truncated=rng.random() < 0.012 and connection.stream != "rdp" and ending is None,
            ending=ending,
        )

    def _verb(self, connection: Connection, user: User) -> str:
        if user.machine_identity_id is not None or (
            connection.review and connection.review.type == "onetime"
        ):
            return "exec"
        if connection.review and connection.review.type == "jit":
            return "connect"
        if connection.stream == "rdp":  # hoop: gateway/rdp/recorder.go (CreateSession)
            return "connect"
        share = 0.3 if connection.stream in ("shell", "rdp") else 0.6
        return "exec" if self.rng.random() < share else "connect"

    def _run_us(self, verb: str) -> int:
        rng = self.rng
        if verb == "exec":
            return _lognormal_us(rng, 4, 1.2, 0.2, 600)
        if rng.random() < 0.04:  # long interactive sessions, some well past a working day
            return rng.randrange(5 * HOUR, 14 * HOUR)
        return _lognormal_us(rng, 900, 1.1, 20, 3 * 3600)

    def _timeline(
        self, connection: Connection, user: User, verb: str, self_approval: bool
    ) -> tuple[ReviewPlan | None, int | None, int | None]:
        """The review (if the connection asks for one), and when the client connects and ends."""
        rng = self.rng
        policy = connection.review
        if policy is None:
            connected = self.start_us + rng.randrange(50_000, 1_500_000)
            return None, connected, connected + self._run_us(verb)
        decision = self.start_us + _lognormal_us(rng, 600, 1.3, 20, 4 * 3600)
        duration_s = rng.choice((1800, 3600, 7200, 14_400)) if policy.type == "jit" else 0
        draw = rng.random()
        if draw < 0.09:
            return self._rejected(policy, user, decision, duration_s, verb)
        if draw < 0.12:
            return self._pending(policy, duration_s, verb)
        # A JIT grant is used within its first half; a one-time run starts soon after approval.
        wait_limit_s = duration_s / 2 if duration_s else 1800
        connected = decision + _lognormal_us(rng, 60, 1.5, 1, wait_limit_s)
        run = self._run_us(verb)
        revoked_us = None
        if policy.type == "jit":
            revoke_at = decision + duration_s * US
            if rng.random() < 0.05:  # kept running well past the end of the granted access
                run = revoke_at - connected + rng.randrange(10 * MINUTE, 60 * MINUTE)
            elif rng.random() < 0.07:  # an approver revokes the access while the session runs
                run = rng.randrange(MINUTE, 20 * MINUTE)
                revoked_us = connected + run
            else:
                run = min(run, revoke_at - connected - rng.randrange(US, MINUTE))
            used = rng.random() >= 0.04  # some approved access is never used
        else:
            used = rng.random() >= 0.04  # some approved one-time executions nobody runs
        groups = self._approvals(policy, user, decision, self_approval)
        if revoked_us is not None:
            first = groups[0]
            groups = (
                GroupPlan(
                    first.id,
                    first.group,
                    first.decision,
                    first.reviewer,
                    first.decided_us,
                    first.forced,
                    revoked_by=rng.choice(catalog.members(first.group)),
                    revoked_us=revoked_us,
                ),
                *groups[1:],
            )
        review = ReviewPlan(
            id=_uuid(rng),
            type=policy.type,
            policy=policy,
            access_duration_s=duration_s,
            outcome="revoked" if revoked_us is not None else "approved",
            decided_us=decision,
            revoked_us=revoked_us,
            groups=groups,
            rejection_reason=None,
        )
        if not used:
            return review, None, None
        return review, connected, connected + max(run, 100_000)

    def _approvals(
        self, policy: ReviewPolicy, user: User, decision: int, self_approval: bool
    ) -> tuple[GroupPlan, ...]:
        rng = self.rng
        if policy.force_approval_groups and rng.random() < 0.04:
            # Break-glass: someone of a force-approval group approves alone, the others never do.
            forcing = policy.force_approval_groups[0]
            approver = rng.choice([u for u in catalog.members(forcing) if u != user])
            pending = tuple(GroupPlan(_uuid(rng), g, None, None, None) for g in policy.groups)
            return (
                *pending,
                GroupPlan(_uuid(rng), forcing, "APPROVED", approver, decision, forced=True),
            )
        short = (policy.min_approvals or 1) > 1 and rng.random() < 0.04
        groups = []
        for i, group in enumerate(policy.groups):
            if short and i > 0:  # approved although fewer groups approved than required
                groups.append(GroupPlan(_uuid(rng), group, None, None, None))
                continue
            if self_approval and i == 0:
                reviewer = user
            else:
                reviewer = rng.choice([u for u in catalog.members(group) if u != user])
            when = (
                decision if i == len(policy.groups) - 1 else decision - rng.randrange(0, 5 * MINUTE)
            )
            groups.append(
                GroupPlan(_uuid(rng), group, "APPROVED", reviewer, max(when, self.start_us + US))
            )
        return tuple(groups)

    def _rejected(
        self, policy: ReviewPolicy, user: User, decision: int, duration_s: int, verb: str
    ) -> tuple[ReviewPlan, int | None, int | None]:
        rng = self.rng
        reviewer = rng.choice([u for u in catalog.members(policy.groups[0]) if u != user])
        groups = (
            GroupPlan(_uuid(rng), policy.groups[0], "REJECTED", reviewer, decision),
            *(GroupPlan(_uuid(rng), g, None, None, None) for g in policy.groups[1:]),
        )
        review = ReviewPlan(
            id=_uuid(rng),
            type=policy.type,
            policy=policy,
            access_duration_s=duration_s,
            outcome="rejected",
            decided_us=decision,
            revoked_us=None,
            groups=groups,
            rejection_reason=rng.choice(_REJECTION_REASONS) if rng.random() < 0.8 else None,
        )
        return review, *self._ran_anyway(verb, decision)

    def _pending(
        self, policy: ReviewPolicy, duration_s: int, verb: str
    ) -> tuple[ReviewPlan, int | None, int | None]:
        rng = self.rng
        groups = tuple(GroupPlan(_uuid(rng), g, None, None, None) for g in policy.groups)
        review = ReviewPlan(
            id=_uuid(rng),
            type=policy.type,
            policy=policy,
            access_duration_s=duration_s,
            outcome="pending",
            decided_us=None,
            revoked_us=None,
            groups=groups,
            rejection_reason=None,
        )
        return review, *self._ran_anyway(verb, self.start_us + 4 * HOUR)

    def _ran_anyway(self, verb: str, deadline: int) -> tuple[int | None, int | None]:
        """A session whose review never approved it rarely records events all the same."""
        if self.rng.random() >= 0.2:
            return None, None
        connect = self.start_us + self.rng.randrange(US, 10 * US)
        return connect, min(connect + self._run_us(verb), max(deadline - US, connect + US))

    def _exit_code(self, verb: str) -> int:
        draw = self.rng.random()
        if draw < 0.025:
            return 254
        if draw < 0.11:
            return 1
        if draw < 0.14:
            return 130 if verb == "connect" else 2
        return 0

    def _stream_kind(self, connection: Connection) -> str:
        draw = self.rng.random()
        if connection.stream == "rdp":  # the recorder always writes its log at close
            return "rdp"
        if draw < 0.012:
            return "undecodable"
        if draw < 0.03:
            return "empty"
        if draw < 0.05:
            return "none"
        if connection.stream == "sql" and draw < 0.09:
            return "latin1" if draw < 0.08 else "nul"
        return connection.stream

    def _labels(self) -> dict[str, str] | None:
        if self.rng.random() >= 0.05:
            return None
        return {
            "runbookFile": "ops/cleanup.runbook.sql",
            "runbookRepository": "github.com/acme/runbooks",
        }

    def _metadata(self) -> dict[str, Any] | None:
        if self.rng.random() >= 0.1:
            return None
        ticket = f"INC-{self.rng.randint(2000, 2999)}"
        return {"reason": f"{ticket} customer escalation & refund <urgent>", "ticket": ticket}

    def _metadata_edit(self, end: int | None) -> tuple[int, dict[str, Any]] | None:
        if end is None or self.rng.random() >= 0.03:
            return None
        return end + self.rng.randrange(HOUR, 2 * DAY), {
            "postmortem": "done",
            "reason": "edited by owner",
        }

    def _jira(self, connection: Connection) -> dict[str, Any] | None:
        if not connection.jira or self.rng.random() >= 0.5:
            return None
        key = f"OPS-{self.rng.randint(1000, 1400)}"
        return {"jira_issue_key": key, "jira_issue_url": f"https://acme.atlassian.net/browse/{key}"}

    def _batch(self, user: User) -> str | None:
        if user.name == "svc-deploy" or self.rng.random() < 0.03:
            return self.rng.choice(self.batches)
        return None

    def _ai(self, reviewed: bool) -> dict[str, Any] | None:
        if self.rng.random() >= (0.3 if reviewed else 0.03):
            return None
        risk, title, explanation, action = self.rng.choice(_AI)
        return {"risk_level": risk, "title": title, "explanation": explanation, "action": action}

    def _masking(self, connection: Connection) -> dict[str, Any] | None:
        if not connection.masking:
            return None
        rng = self.rng
        emails, phones = rng.randint(0, 40), rng.randint(0, 10)
        info_types = {k: v for k, v in (("EMAIL_ADDRESS", emails), ("PHONE_NUMBER", phones)) if v}
        return {
            "err_count": rng.randint(1, 3) if rng.random() < 0.05 else 0,
            "info_types": info_types,
            "total_redact_count": emails + phones,
            "transformed_bytes": (emails + phones) * rng.randint(8, 20),
        }


def _guardrail_match(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        return {
            "rule_name": "block-destructive-sql",
            "rule": {"type": "deny_words_list", "words": ["drop", "truncate"]},
            "direction": "input",
            "matched_words": ["drop"],
            "message": "Destructive statements need a change request",
        }
    return {
        "rule_name": "no-card-numbers",
        "rule": {"type": "pattern_match", "pattern_regex": "\\b4[0-9]{12}(?:[0-9]{3})?\\b"},
        "direction": "output",
        "matched_words": ["4111111111111111"],
        "message": "",
    }
