"""Which waiting request gets the next free connection: lowest priority first, then first come.

A sync reads several days at once; a later day must only use connections the earlier days leave
idle, and the halves of a split list window go before the windows above them.
"""

from __future__ import annotations

import asyncio

from hoop_sessions.extract.transport import _Lane, _LanePool, request_priority


def lanes(n: int) -> list[_Lane]:
    return [_Lane(lambda: None) for _ in range(n)]  # type: ignore[arg-type,return-value]


async def _waiter(
    pool: _LanePool, name: str, priority: tuple[int, ...], served: list[str]
) -> _Lane:
    request_priority.set(priority)
    lane = await pool.take()
    served.append(name)
    return lane


def test_waiters_are_served_by_priority_then_arrival():
    async def go() -> list[str]:
        pool = _LanePool(lanes(1))
        busy = await pool.take()
        served: list[str] = []
        tasks = []
        for name, priority in [
            ("day2-a", (2,)),
            ("day1-a", (1,)),
            ("day2-b", (2,)),
            ("day1-b", (1,)),
            ("day1-split", (1, -1)),
            ("preflight", ()),
        ]:
            tasks.append(asyncio.create_task(_waiter(pool, name, priority, served)))
            await asyncio.sleep(0)  # each one waits in turn
        lane = busy
        while tasks:  # the one lane goes round: each give() wakes exactly one waiter
            pool.give(lane)
            await asyncio.sleep(0)
            woken = [t for t in tasks if t.done()]
            assert len(woken) == 1 and woken[0].result() is lane
            tasks.remove(woken[0])
        return served

    assert asyncio.run(go()) == ["preflight", "day1-a", "day1-b", "day1-split", "day2-a", "day2-b"]


def test_a_free_lane_goes_straight_to_a_new_request():
    async def go() -> int:
        pool = _LanePool(lanes(2))
        first = await pool.take()
        second = await pool.take()
        assert first is not second
        pool.give(first)
        return len([await pool.take()])

    assert asyncio.run(go()) == 1


def test_a_cancelled_waiter_loses_no_lane():
    async def go() -> None:
        pool = _LanePool(lanes(1))
        lane = await pool.take()
        served: list[str] = []
        doomed = asyncio.create_task(_waiter(pool, "doomed", (1,), served))
        patient = asyncio.create_task(_waiter(pool, "patient", (2,), served))
        await asyncio.sleep(0)
        doomed.cancel()
        pool.give(
            lane
        )  # handed to the cancelled waiter or skipped: either way it must reach "patient"
        await asyncio.sleep(0)
        assert await asyncio.wait_for(patient, 1) is lane
        assert doomed.cancelled() and served == ["patient"]

    asyncio.run(go())


def test_a_waiter_cancelled_after_it_was_handed_a_lane_passes_it_on():
    async def go() -> None:
        pool = _LanePool(lanes(1))
        lane = await pool.take()
        served: list[str] = []
        doomed = asyncio.create_task(_waiter(pool, "doomed", (1,), served))
        await asyncio.sleep(0)
        patient = asyncio.create_task(_waiter(pool, "patient", (2,), served))
        await asyncio.sleep(0)
        pool.give(lane)  # doomed's future now holds the lane, but doomed has not run yet
        doomed.cancel()
        assert await asyncio.wait_for(patient, 1) is lane
        assert doomed.cancelled() and served == ["patient"]

    asyncio.run(go())
