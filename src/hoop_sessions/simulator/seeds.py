"""Deterministic random streams, one per named thing (a day, a session, a stream)."""

from __future__ import annotations

import random


def seeded(key: str | int) -> random.Random:
    """A generator fixed by `key`. String keys are hashed with SHA-512 by `random`, so they are
    stable across processes and Python runs (unlike `hash()`). Not for secrets: this is data."""
    return random.Random(key)  # noqa: S311
