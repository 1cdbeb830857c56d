"""``ordered_map``: an async map with bounded concurrency whose results come out in input order.

Gets of one day and the days of one run both go through it, so that bodies are written in a
fixed order while requests overlap, with a bound on the bytes held for in-order delivery.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import TypeVar

from hoop_sessions.extract.transport import request_priority

T = TypeVar("T")
R = TypeVar("R")


# Bytes of finished results that ordered_map holds for in-order delivery before it stops
# starting items: a few ordinary days' worth of bodies, a fraction of one huge stream.
HELD_RESULT_BYTES = 64 * 1024 * 1024


def result_bytes(result: object) -> int:
    """The bytes a result holds: a body, or the bodies in a tuple such as ``(sid, body)``."""
    if isinstance(result, bytes | bytearray):
        return len(result)
    if isinstance(result, tuple):
        return sum(len(part) for part in result if isinstance(part, bytes | bytearray))
    return 0


async def ordered_map(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[R]],
    *,
    limit: int,
    ready: Callable[[T], R | None] | None = None,
    held_bytes: int = HELD_RESULT_BYTES,
    size: Callable[[R], int] = result_bytes,
) -> AsyncGenerator[R, None]:
    """``fn`` over items, at most ``limit`` at a time, results yielded in input order.

    Close it (``contextlib.aclosing``) when done: closing cancels the items still running and
    waits until they have stopped, so a failed day has nothing in flight once its caller moves on.
    An item for which ``ready`` gives a result (not None) takes that result without running ``fn``
    and without a task (a nightly run reuses most sessions of the days it re-reads).

    Results that finish before the ones ahead of them wait to be delivered. Once those hold more
    than ``held_bytes`` (by ``size``), the next items wait before they start until earlier results
    are delivered; the next result to deliver always runs. Finished results therefore hold at most
    ``held_bytes`` plus the results of the items already running (fewer than ``limit``), however
    large the bodies of a day are.
    """
    pending: deque[asyncio.Future[R]] = deque()
    semaphore = asyncio.Semaphore(limit)
    loop = asyncio.get_running_loop()
    held = 0  # bytes of the finished results not delivered yet
    delivered = 0  # index of the next result to deliver
    room = asyncio.Condition()  # notified when a result is delivered

    async def run(index: int, item: T) -> R:
        nonlocal held
        # Among requests of equal priority, the earlier items first (connections, large
        # bodies: transport.request_priority), so results tend to finish in delivery order.
        request_priority.set((*request_priority.get(), index))
        async with semaphore:
            if held > held_bytes and index != delivered:
                async with room:
                    await room.wait_for(lambda: held <= held_bytes or index == delivered)
            result = await fn(item)
        held += size(result)
        return result

    async def deliver() -> R:
        nonlocal held, delivered
        result = await pending.popleft()
        held -= size(result)
        delivered += 1
        async with room:
            room.notify_all()
        return result

    try:
        for index, item in enumerate(items):
            result = ready(item) if ready is not None else None
            if result is None:
                pending.append(asyncio.ensure_future(run(index, item)))
            else:
                done = loop.create_future()
                done.set_result(result)
                held += size(result)
                pending.append(done)
            # Bound the results held for in-order delivery to a few per worker.
            if len(pending) >= limit * 4:
                yield await deliver()
        while pending:
            yield await deliver()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
