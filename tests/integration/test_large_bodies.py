"""Large bodies are received one at a time past an allowance, and arrive whole."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from hoop_sessions.extract import transport
from hoop_sessions.extract.transport import Answer, Http
from tests.reliability.hostile import HostileGateway, Reply

IDS = [f"0b9f6a3c-1111-4222-8333-00000000000{n}" for n in range(1, 5)]


class CountingSlots(transport._BodySlots):
    """The transport's own slots, counting how many bodies hold one at once."""

    holding = 0
    most = 0

    async def take(self) -> None:
        await super().take()
        CountingSlots.holding += 1
        CountingSlots.most = max(CountingSlots.most, CountingSlots.holding)

    def give(self) -> None:
        CountingSlots.holding -= 1
        super().give()


@pytest.fixture
def small_allowance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "BODY_ALLOWANCE", 64 * 1024)
    monkeypatch.setattr(transport, "_BodySlots", CountingSlots)
    CountingSlots.holding = CountingSlots.most = 0


def test_bodies_past_the_allowance_are_received_one_at_a_time_and_arrive_whole(small_allowance):
    docs = {
        sid: {"id": sid, "event_stream": [[0.1, "o", chr(65 + n) * (1 << 20)]]}
        for n, sid in enumerate(IDS)
    }
    with HostileGateway(token="t") as gw:
        for sid, doc in docs.items():
            gw.bodies[sid] = Reply(200, orjson.dumps(doc) + b"\n")

        async def go() -> list[Answer]:
            async with Http(
                gw.url, {"Authorization": "Bearer t"}, lanes=4, timeout=30.0, connect_timeout=5.0
            ) as http:
                return await asyncio.gather(*(http.get(f"/api/sessions/{sid}", {}) for sid in IDS))

        answers = asyncio.run(go())
    assert [orjson.loads(a.body) for a in answers] == list(docs.values())
    assert CountingSlots.most == 1
    assert CountingSlots.holding == 0  # every slot was given back


def test_a_body_within_the_allowance_takes_no_slot(small_allowance):
    with HostileGateway(token="t") as gw:
        gw.bodies[IDS[0]] = Reply(200, b'{"id": "small"}\n')

        async def go() -> Answer:
            async with Http(
                gw.url, {"Authorization": "Bearer t"}, lanes=1, timeout=5.0, connect_timeout=5.0
            ) as http:
                return await http.get(f"/api/sessions/{IDS[0]}", {})

        assert asyncio.run(go()).body == b'{"id": "small"}\n'
    assert CountingSlots.most == 0
