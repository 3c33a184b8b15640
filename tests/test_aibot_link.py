"""The robot's one connection: leader election between workers, takeover, reconnects, being kicked by a
second connection (disconnected_event), and a wrong secret — the real SDK against the fake endpoint."""
from __future__ import annotations

import asyncio
import warnings

from bot.channels.wecom_bot.link import RobotLink
from bot.clock import Clock
from bot.leader import Lease
from storage.db import Database
from tests.conftest import Backend
from tests.fakes.aibot import FakeAibot, aibot_config, wecom_userid
from tests.simclient import MONDAY_10AM_UTC, Sim, demo_config
from tests.test_aibot import ELDERLY, GROUP, TEAM, card_text, close, fake, mention, new_card, start_sim

__all__ = ["fake"]  # the fixture


async def two_workers(backend: Backend, fake: FakeAibot) -> tuple[Sim, Sim]:
    """Worker A (holding the robot's connection) and worker B, on one database and clock."""
    cfg = demo_config(backend.database_url, backend.redis_url, aibot_config(fake))
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    a = await Sim(cfg, clock, redis_prefix=backend.redis_prefix).start()
    await fake.wait_for(lambda: fake.live(), what="worker A to subscribe")
    return a, await Sim(cfg, clock, redis_prefix=backend.redis_prefix).start()


async def test_holder_stops_another_worker_takes_over(backend: Backend, fake: FakeAibot) -> None:
    a, b = await two_workers(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        first = await b.ask_for_help("r-take1", *ELDERLY)  # B queues the card; A, the holder, pushes it
        task1, key1 = await new_card(fake, first)
        assert [c.id for c in fake.conns] == [1]  # B never connected while A held the robot
        await a.stop()  # the holder goes away (it releases the lease on its way out)
        second = await b.ask_for_help("r-take2", *ELDERLY)  # queued at once, pushed when B holds the robot
        task2, _ = await new_card(fake, second)
        assert [c.id for c in fake.live()] == [2] and fake.conns[0].closed
        assert len(fake.cards_in(GROUP)) == 2  # no card lost, none doubled
        # the new holder answers clicks on a card the old one pushed
        await fake.click(GROUP, wecom_userid("v-liming"), task1, key1)
        await fake.wait_for(lambda: fake.updates, what="the update from worker B")
        assert "userids" not in fake.updates[0] and "已由 李明 接单" in card_text(fake.cards[task1].card)
        assert task2 != task1
    finally:
        await a.close()
        await close(b, fake)


async def test_killed_connection_reconnects(backend: Backend, fake: FakeAibot) -> None:
    sim = await start_sim(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        await fake.kill()
        await fake.wait_for(lambda: [c for c in fake.live() if c.id == 2], what="a new connection")
        number = await sim.ask_for_help("r-kill", *ELDERLY)
        await new_card(fake, number)
    finally:
        await close(sim, fake)


async def test_second_connection_kicks_the_holder_who_stands_down(backend: Backend, fake: FakeAibot) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from aibot import WSClient, WSClientOptions

    sim = await start_sim(backend, fake)
    rogue = WSClient(WSClientOptions(bot_id=fake.bot_id, secret=fake.secret, ws_url=fake.url,
                                     max_reconnect_attempts=0, logger=_Quiet()))
    rogue.on("error", lambda e: None)
    try:
        holder = fake.active
        assert holder is not None
        await rogue.connect()
        await fake.wait_for(lambda: holder.closed, what="the holder to be kicked")
        kicked = [f for cid, way, f in fake.frames if cid == holder.id and way == "out"
                  and (f.get("body") or {}).get("event", {}).get("eventtype") == "disconnected_event"]
        assert len(kicked) == 1
        rogue_conn = fake.active
        assert rogue_conn is not None and rogue_conn.id == holder.id + 1
        await asyncio.sleep(1.5)  # the SDK alone would reconnect now and kick back; our worker stands down
        assert not rogue_conn.closed and len(fake.conns) == 2
        rogue.disconnect()
        await fake.wait_for(lambda: [c for c in fake.live() if c.id == 3], what="the worker to come back")
    finally:
        rogue.disconnect()
        await close(sim, fake)


class _Quiet:
    """An SDK logger that says nothing."""

    def debug(self, message: str, *args: object) -> None:
        """Nothing."""

    info = warn = error = debug


async def test_wrong_secret_is_retried_with_backoff_never_subscribed(backend: Backend, fake: FakeAibot) -> None:
    cfg = demo_config(backend.database_url, backend.redis_url, aibot_config(fake, secret="not-the-secret"))
    sim = await Sim(cfg, Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix).start()
    try:
        await fake.wait_for(lambda: len(fake.conns) >= 2, what="a second attempt")
        assert not fake.live() and all(c.closed for c in fake.conns[:1])
        assert not any(f.get("body", {}).get("secret") == fake.secret for _, _, f in fake.frames)
    finally:
        await sim.close()


async def test_heartbeats_and_a_silent_connection_is_replaced(backend: Backend, fake: FakeAibot) -> None:
    db = Database(backend.database_url)
    await db.upgrade()

    async def ignore(frame: dict[str, object]) -> None:
        """Frames are not the point here."""

    link = RobotLink(fake.bot_id, fake.secret, fake.url, Lease(db, "robot-test", ttl=10), ignore, ignore,
                     tick=0.1, heartbeat_ms=100)
    link.start()
    try:
        await fake.wait_for(lambda: fake.live(), what="the link to subscribe")
        pings = lambda: sum(f.get("cmd") == "ping" for _, way, f in fake.frames if way == "in")  # noqa: E731
        await fake.wait_for(lambda: pings() >= 3, what="heartbeats")
        assert link.ready
        fake.answer_pings = False  # the connection goes quiet: the SDK gives it up, the link replaces it
        await fake.wait_for(lambda: len(fake.conns) >= 2, what="a new connection")
        fake.answer_pings = True
        await fake.wait_for(lambda: [c for c in fake.live() if c.id >= 2], what="the new subscription")
    finally:
        await link.stop()
        await db.dispose()


async def test_killed_holder_is_replaced_when_its_lease_runs_out(backend: Backend, fake: FakeAibot) -> None:
    a, b = await two_workers(backend, fake)
    try:
        await mention(fake, f"/bind {TEAM}")
        first = await b.ask_for_help("r-kill1", *ELDERLY)
        await new_card(fake, first)
        # worker A dies: nothing of it runs any more, its connection drops, its lease is NOT released
        assert a.app is not None
        link_a = a.app.channels["wecom_bot"].link  # type: ignore[attr-defined]
        assert link_a._task is not None
        link_a._task.cancel()
        await a.app.outbox.stop()
        await fake.kill()
        second = await b.ask_for_help("r-kill2", *ELDERLY)  # queued while nobody holds the robot
        await fake.wait_for(lambda: [c for c in fake.live() if c.id == 2], timeout=30, what="B to take over")
        task2, _ = await new_card(fake, second)
        assert len(fake.cards_in(GROUP)) == 2 and fake.cards[task2].chatid == GROUP  # none lost, none doubled
        assert [c.id for c in fake.live()] == [2]
    finally:
        await a.close()
        await close(b, fake)


async def test_a_new_leaders_grace_runs_from_when_it_took_the_lease(backend: Backend, fake: FakeAibot) -> None:
    """A worker that has run for long without the robot becomes the leader: until its connection is up (or
    sending.GRACE has passed since it took over) its sends wait uncounted (RetryLater), they do not count as
    failures and back off — the grace is measured from the takeover, not from the worker's start."""
    from bot.channels.wecom_bot.sending import GRACE

    db = Database(backend.database_url)
    await db.upgrade()

    async def ignore(frame: dict[str, object]) -> None:
        """Frames are not the point here."""

    async def not_yet() -> None:
        """The connection is still being made."""

    link = RobotLink(fake.bot_id, fake.secret, fake.url, Lease(db, "robot-grace", ttl=10), ignore, ignore)
    link._last_ready -= 10 * GRACE  # the worker started long ago and never held the robot
    link._connect = not_yet  # type: ignore[method-assign]
    try:
        await link._step()  # takes the free lease, starts connecting
        assert link.lease.held and not link.ready
        assert link.down_for() < GRACE
    finally:
        await link.lease.release()
        await db.dispose()
