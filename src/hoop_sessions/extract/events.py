"""Event stream decoding: ``[[elapsed_seconds, "<type>", "<base64>"], ...]`` into exact bytes.

The type is an open set: a type this version does not know is kept as it came (and counted by the
flattening), never refused. Terminal, database and HTTP sessions use ``i``/``o``/``e``; RDP sessions
(``recording_format`` ``rdp`` on newer gateways) use ``h`` and ``b``. The bytes are decoded the same
way whatever the type, so ``recording_format`` does not change how a stream is read.
"""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass
from typing import Any

UNDECODABLE_PREFIX = "An internal error occurred: unable to decode the event stream"
# hoop: gateway/api/openapi/types.go (i input, o output, e error of terminal/database/HTTP sessions)
# hoop: gateway/rdp/recorder.go (h: the handshake, once at 0; b: JSON of one screen bitmap update)
KNOWN_EVENT_TYPES = frozenset({"i", "o", "e", "h", "b"})
# The one type that is what a person typed; every other type is what came back (output).
INPUT_TYPE = "i"
# Ten years: no session lasts longer, and a larger offset would not fit a timestamp.
MAX_ELAPSED_SECONDS = 10 * 366 * 86_400

STREAM_OK = "ok"
STREAM_ABSENT = "absent"
STREAM_FORBIDDEN = "forbidden"
STREAM_UNREADABLE = "unreadable"


class StreamError(ValueError):
    """The stream is malformed: the session cannot be flattened."""


@dataclass(frozen=True)
class DecodedStream:
    status: str
    elapsed: list[float]
    types: list[str]
    payloads: list[bytes]
    message: str | None = None  # the gateway's error text when status is unreadable


def decode_stream(value: Any, *, present: bool, visible: bool = True) -> DecodedStream:
    """Decode the ``event_stream`` value of a session got with ``expand=event_stream``.

    ``present`` says whether the key was in the record at all; ``visible`` whether the token may
    see streams of this session (when the key is absent and it may not, the status is forbidden).
    """
    if not present or value is None:
        return DecodedStream(STREAM_ABSENT if visible else STREAM_FORBIDDEN, [], [], [])
    if not isinstance(value, list):
        raise StreamError(f"event_stream is a {type(value).__name__}, expected a list")
    if len(value) == 1 and isinstance(value[0], str):
        text = value[0]
        if text.startswith(UNDECODABLE_PREFIX):
            return DecodedStream(STREAM_UNREADABLE, [], [], [], message=text[:500])
        raise StreamError(
            "event_stream is a single string: asked for raw events, got encoded output"
        )
    elapsed: list[float] = []
    types: list[str] = []
    payloads: list[bytes] = []
    a2b = binascii.a2b_base64
    for seq, event in enumerate(value):
        if not isinstance(event, list) or len(event) != 3:
            raise StreamError(f"event {seq} is not a [elapsed, type, data] triple: {_short(event)}")
        when, kind, data = event
        if isinstance(when, bool) or not isinstance(when, int | float):
            raise StreamError(f"event {seq} has a non-numeric elapsed time: {_short(when)}")
        when = float(when)
        if not math.isfinite(when) or when < 0 or when > MAX_ELAPSED_SECONDS:
            raise StreamError(f"event {seq} has an invalid elapsed time {when!r}")
        if not isinstance(kind, str):
            raise StreamError(f"event {seq} has a type that is not a string: {_short(kind)}")
        if not isinstance(data, str):
            raise StreamError(f"event {seq} payload is not a base64 string: {_short(data)}")
        try:
            payload = a2b(data, strict_mode=True) if data else b""
        except (binascii.Error, ValueError) as exc:
            raise StreamError(f"event {seq} payload is not valid base64: {exc}") from None
        elapsed.append(when)
        types.append(kind)
        payloads.append(payload)
    return DecodedStream(STREAM_OK, elapsed, types, payloads)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
