"""What building a day made, as the build worker sends it back to the process that reads hoop.

The one module of ``build`` that imports no Arrow: unpickling a result must not load Arrow in
the reading process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class BuildResult:
    """What building a day made: the build worker sends it back to the reading process."""

    day: date
    sessions_listed: int
    sessions_loaded: int
    sessions_rejected: int
    rows: dict[str, int]
    unknown_fields: dict[str, int]
    stream_status: dict[str, int]
    session_status: dict[str, int]
    # From when each loaded session's record is final (ISO time; None: not as it is).
    final_from: dict[str, str | None] = field(default_factory=dict)
    # The day's record_warnings by "kind field" ("unknown_value field=value" for a value outside
    # its known set): how many sessions had each. Empty when every record was as expected.
    warnings: dict[str, int] = field(default_factory=dict)


def warning_line(warnings: dict[str, int], *, limit: int = 5) -> str:
    """The most frequent warnings of a build as one line, e.g. for a run summary."""
    top = sorted(warnings.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    text = "; ".join(f"{key} x{count}" for key, count in top)
    more = len(warnings) - len(top)
    return text + (f"; and {more} more" if more > 0 else "")
