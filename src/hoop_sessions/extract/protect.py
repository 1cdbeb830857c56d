"""HOOP_STORE_OUTPUT: how output and error payloads (which can hold customer data) are stored.

``full`` keeps the exact bytes. ``hash`` keeps the SHA-256 and the length of each output payload,
``none`` only the length; in both the bytes are removed from the record before it is written to the
raw file, so they exist nowhere on disk. Output is every event type but ``i``: ``o`` and ``e``, the
RDP handshake ``h`` and screen updates ``b`` (screen content is customer data), and any type a newer
gateway adds. Input (``i``, what people typed) is always kept: it is the evidence of what was done. A record changed here carries the marker
``hoop_sessions_output`` that the flattening reads.
"""

from __future__ import annotations

import binascii
import hashlib
from typing import Any

import orjson

from hoop_sessions.extract.events import INPUT_TYPE
from hoop_sessions.extract.values import OUTPUT_MARKER

# How much of the output each mode keeps, from most to least.
STRICTNESS = {"full": 0, "hash": 1, "none": 2}


def stricter(mode: str, than: str) -> bool:
    """True when ``mode`` keeps less output than ``than`` (a body kept under ``than`` must be
    reduced again before it is written under ``mode``)."""
    return STRICTNESS.get(mode, 0) > STRICTNESS.get(than, 0)


def protect_output(body: bytes, mode: str) -> bytes:
    """The body with its output payloads reduced to what ``mode`` keeps."""
    if mode == "full":
        return body
    try:
        record = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body  # not JSON: the build rejects it, and there is no payload to find in it
    stream = record.get("event_stream") if isinstance(record, dict) else None
    if not isinstance(stream, list):
        return body
    earlier = record.get(OUTPUT_MARKER)
    if isinstance(earlier, dict) and isinstance(earlier.get("events"), dict):
        # Reduced before (a body copied forward from an older raw file): its payloads are gone,
        # only their digests and lengths remain; a stricter mode drops the digests too.
        if mode == "none":
            for kept in earlier["events"].values():
                if isinstance(kept, list) and kept:
                    kept[0] = None
            earlier["mode"] = mode
            return orjson.dumps(record)
        return body
    withheld: dict[str, list[Any]] = {}
    for seq, event in enumerate(stream):
        # An unknown type is withheld too: bytes of a kind not yet understood may hold anything.
        if not (isinstance(event, list) and len(event) == 3 and event[1] != INPUT_TYPE):
            continue
        data = event[2]
        if not isinstance(data, str):
            continue
        try:
            payload = binascii.a2b_base64(data, strict_mode=True) if data else b""
        except (binascii.Error, ValueError):
            payload = data.encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(payload).hexdigest() if mode == "hash" else None
        withheld[str(seq)] = [digest, len(payload)]
        event[2] = ""
    if not withheld:
        return body
    record[OUTPUT_MARKER] = {"mode": mode, "events": withheld}
    return orjson.dumps(record)
