"""A card that is sent but cannot be brought up to date at once is never sent twice."""
from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from bot.channels.base import Dispatch, RetryLater
from flows.types import Message
from storage import repo
from tests.simclient import Sim


class ProbeChannel:
    """A platform that accepts sends, answers the first edit with "wait", and meanwhile the request is
    claimed (as when a claim lands while the card is on its way)."""

    name = "probe"

    def __init__(self, sim: Sim, request_id: int) -> None:
        self.sim, self.request_id = sim, request_id
        self.sent: list[str] = []
        self.edits: list[str] = []
        self.refused = 0

    def routes(self) -> list[web.RouteDef]:
        """No HTTP routes."""
        return []

    async def start(self, dispatch: Dispatch) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""

    async def send(self, chat_id: str, msg: Message, key: str | None = None) -> str:
        """Record the card and let the request be claimed meanwhile."""
        self.sent.append(msg.text)
        async with self.sim.app.db.transaction() as s:  # type: ignore[union-attr]
            await repo.update_request(s, self.request_id, status="claimed", volunteer_id="v-liming")
        return str(len(self.sent))

    async def edit(self, chat_id: str, message_id: str, msg: Message) -> None:
        """Rate-limited the first time, accepted afterwards."""
        if not self.refused:
            self.refused += 1
            raise RetryLater(5)
        self.edits.append(msg.text)


async def test_card_update_deferred_without_sending_it_again(sim: Sim) -> None:
    number = await sim.ask_for_help("r-probe", "为老服务", "陪同就医", "幸福社区")
    assert sim.app is not None
    async with sim.app.db.transaction() as s:
        req = await repo.request_by_number(s, number)
        assert req is not None
        probe = ProbeChannel(sim, req.id)
        sim.app.channels["probe"] = probe
        await repo.enqueue(s, sim.clock.now(), "probe", "grp-probe", "card", {}, request_id=req.id,
                           ledger_kind="group_card")
    await sim.app.settle()
    assert len(probe.sent) == 1 and probe.refused == 1 and number in probe.sent[0] and "李明" not in probe.sent[0]
    await sim.app.advance(timedelta(seconds=10))
    await sim.app.settle()
    assert len(probe.sent) == 1, "the card went out twice"
    assert probe.edits and "李明" in probe.edits[-1]
