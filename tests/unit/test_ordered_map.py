"""ordered_map: results in input order, a bounded number in flight, and nothing left running
once the caller stops reading (a failed day must not keep requesting while the next one runs)."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from hoop_sessions.extract.ordered import ordered_map


def test_results_come_in_input_order_with_at_most_limit_running() -> None:
    running = 0
    most = 0

    async def slow(i: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.001 * (i % 5))  # later items often finish first
        running -= 1
        return i * 10

    async def main() -> list[int]:
        async with aclosing(ordered_map(range(50), slow, limit=4)) as results:
            return [r async for r in results]

    assert asyncio.run(main()) == [i * 10 for i in range(50)]
    assert most == 4


def test_items_with_a_ready_result_keep_their_place_and_do_not_run() -> None:
    ran: list[int] = []

    async def work(i: int) -> str:
        ran.append(i)
        await asyncio.sleep(0.001 * (7 - i % 7))
        return f"ran {i}"

    def ready(i: int) -> str | None:
        return f"ready {i}" if i % 3 else None

    async def main() -> list[str]:
        async with aclosing(ordered_map(range(30), work, limit=3, ready=ready)) as results:
            return [r async for r in results]

    assert asyncio.run(main()) == [f"ready {i}" if i % 3 else f"ran {i}" for i in range(30)]
    assert sorted(ran) == list(range(0, 30, 3))


@pytest.mark.parametrize("where", ["caller", "item"])
def test_nothing_is_left_running_once_reading_stops_on_an_error(where: str) -> None:
    running = 0
    started = 0

    async def item(i: int) -> int:
        nonlocal running, started
        started += 1
        running += 1
        try:
            if where == "item" and i == 3:
                raise ValueError("item 3 failed")
            await asyncio.sleep(0.05)
            return i
        finally:
            running -= 1

    async def consume() -> None:
        async with aclosing(ordered_map(range(100), item, limit=4)) as results:
            async for i in results:
                if where == "caller" and i == 2:
                    raise ValueError("the caller failed on item 2")

    async def main() -> tuple[int, int, int]:
        with pytest.raises(ValueError, match=r"item \d failed|failed on item"):
            await consume()
        left_running, started_then = running, started
        await asyncio.sleep(0.2)  # long enough for any task left behind to start another item
        return left_running, started_then, started

    left_running, started_then, started_later = asyncio.run(main())
    assert left_running == 0
    assert started_later == started_then
    assert started_then < 100


def test_finished_results_past_the_byte_budget_hold_back_later_items_until_delivered() -> None:
    started: list[int] = []
    first = asyncio.Event()

    async def body(i: int) -> tuple[int, bytes]:
        started.append(i)
        if i == 0:
            await first.wait()  # the first result is late: the others finish before it
        return i, b"x" * 100

    async def settle() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    async def main() -> tuple[list[int], list[int], list[int]]:
        async with aclosing(ordered_map(range(12), body, limit=4, held_bytes=250)) as results:
            reader = asyncio.ensure_future(anext(results))
            await settle()
            before = sorted(started)
            first.set()
            assert (await reader)[0] == 0
            rest = [i async for i, _ in results]
        return before, rest, started

    before, rest, order = asyncio.run(main())
    # Items 1-3 finished (300 bytes > 250) while 0 ran: item 4 took the free slot but waited.
    assert before == [0, 1, 2, 3]
    assert rest == list(range(1, 12))
    assert sorted(order) == list(range(12))


def test_the_next_result_to_deliver_runs_even_when_the_budget_is_spent() -> None:
    async def body(i: int) -> bytes:
        await asyncio.sleep(0.001 * (5 - i % 5))  # later items often finish first
        return b"y" * 1000

    async def main() -> int:
        async with aclosing(ordered_map(range(40), body, limit=4, held_bytes=10)) as results:
            return len([r async for r in results])

    assert asyncio.run(main()) == 40
