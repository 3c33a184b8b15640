"""The inbox (bot/inbox.py): an update is acknowledged once durable, handled right after; a failed handling is
tried again by the worker; a dead worker's updates are taken over; lanes keep a conversation's order; the
updates of a moment are written in one transaction. On SQLite and on PostgreSQL + Redis."""
from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, func, select

from bot import inbox as inbox_mod
from bot.inbox import Inbox
from storage import inbox_repo
from storage.db import Database, WriteLock, utcnow
from storage.models import InboxEvent
from tests.conftest import Backend
from tests.fakes.telegram_sim import bots
from tests.test_engine import table_away


async def wait_for(check: Any, seconds: float = 15.0) -> None:
    """Poll an async condition until it holds (the inbox works in the background)."""
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


async def inbox_rows(db: Database) -> int:
    async with db.read() as s:
        return int((await s.execute(select(func.count()).select_from(InboxEvent))).scalar_one())


@pytest.fixture
async def db(backend: Backend) -> AsyncIterator[Database]:
    database = Database(backend.database_url)
    yield database
    await database.dispose()


# ---- through Telegram, as the platform sees it -------------------------------------------------------------

@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_an_update_that_cannot_be_stored_is_not_acknowledged(backend: Backend, mode: str) -> None:
    """Webhook: 503, so Telegram delivers it again; polling: the offset does not move past it. Handled once
    after recovery."""
    async with bots(backend) as start:
        tg = await start(mode)
        assert tg.fake is not None
        update = tg.text_update("r-tg-fail", "r-tg-fail", "你好")
        async with table_away(backend.database_url, "inbox"):
            if mode == "webhook":
                assert await tg.fake.deliver(update) == 503
            else:
                tg.fake.enqueue(update)
                await asyncio.sleep(1.5)  # the poller tried it (and will again)
                assert tg.fake.confirmed <= update["update_id"]
            assert await tg.bot_texts("r-tg-fail") == []
        if mode == "webhook":
            for _ in range(5):  # as Telegram does, with its own pauses
                if await tg.fake.deliver(update) == 200:
                    break
            assert await tg.fake.deliver(update) == 200  # a repeat is acknowledged and ignored
        else:
            await tg.fake.wait_confirmed(update["update_id"])
        await tg.settle_all()
        greetings = await tg.bot_texts("r-tg-fail")  # the first answer (the privacy notice), once
        assert len(greetings) == 1 and "隐私说明" in greetings[0], greetings


async def test_a_failed_handling_is_tried_again_by_the_worker(backend: Backend) -> None:
    """The update is durable, so it is acknowledged; handling it fails while a table is away and is tried again
    (with pauses) until it succeeds, once, with nothing from the platform."""
    async with bots(backend) as start:
        tg = await start("webhook")
        assert tg.fake is not None and tg.app is not None
        update = tg.text_update("r-tg-retry", "r-tg-retry", "你好")
        async with table_away(backend.database_url, "conversation_states"):
            assert await tg.fake.deliver(update) == 200
            await asyncio.sleep(1.0)  # tried and failed (at least once)
            assert await tg.bot_texts("r-tg-retry") == []
            assert await inbox_rows(tg.app.db) == 1
        app = tg.app

        async def answered() -> bool:
            await tg.settle_all()
            return len(await tg.bot_texts("r-tg-retry")) > 0

        await wait_for(answered)
        await wait_for(lambda: _none_left(app.db))
        greetings = await tg.bot_texts("r-tg-retry")
        assert len(greetings) == 1 and "隐私说明" in greetings[0], greetings


async def _none_left(db: Database) -> bool:
    return await inbox_rows(db) == 0


async def test_a_dead_workers_updates_are_taken_over(backend: Backend) -> None:
    """Rows a worker took on and never handled (it was killed: its lease is not renewed) are handled by a
    running worker within seconds, in their order."""
    async with bots(backend) as start:
        tg = await start("webhook")
        assert tg.app is not None
        first = tg.text_update("r-orphan", "r-orphan", "你好")
        rows = [{"channel": "telegram", "event_id": f"u{first['update_id']}", "lane": "telegram:orphan",
                 "payload": json.dumps(first), "received_at": utcnow(), "holder": "killed-worker:1:deadbeef"}]
        async with tg.app.db.transaction() as s:
            assert len(await inbox_repo.add(s, rows)) == 1
        app = tg.app

        async def answered() -> bool:
            await tg.settle_all()
            return len(await tg.bot_texts("r-orphan")) > 0

        await wait_for(answered, inbox_mod.SWEEP + 10)
        await wait_for(lambda: _none_left(app.db))
        texts = await tg.bot_texts("r-orphan")
        assert len(texts) == 1 and "隐私说明" in texts[0], texts


async def test_a_live_workers_updates_are_not_taken(db: Database) -> None:
    """Another worker that is alive keeps its rows."""
    other = Inbox(db, holder="alive-worker:2:cafebabe")
    await other.lease.renew()
    me = Inbox(db, holder="me:3:00000000")
    async with db.transaction() as s:
        await inbox_repo.add(s, [{"channel": "x", "event_id": "1", "lane": "a", "payload": "{}",
                                  "received_at": utcnow(), "holder": other.holder}])
    assert await me.take_over() == 0
    await other.lease.release()
    assert await me.take_over() == 1


# ---- the inbox itself, with a channel of its own -----------------------------------------------------------

class Recorder:
    """A channel's handler: records the order it handles updates in and how many run at once."""

    def __init__(self, fail: dict[str, int] | None = None) -> None:
        self.handled: list[dict[str, Any]] = []
        self.running = self.most = 0
        self.fail = fail or {}

    async def handle(self, update: dict[str, Any]) -> bool:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(random.uniform(0, 0.01))
            if self.fail.get(update["id"], 0) > 0:
                self.fail[update["id"]] -= 1
                return False
            self.handled.append(update)
            return True
        finally:
            self.running -= 1


async def test_lanes_keep_their_order_and_run_side_by_side(db: Database) -> None:
    inbox = Inbox(db, workers=8)
    rec = Recorder(fail={"a2": 2})  # a failing update holds its own lane back, not the others
    inbox.register("x", json.loads, rec.handle)
    await inbox.start()
    try:
        ups = [{"id": f"{lane}{i}", "lane": lane} for i in range(6) for lane in "abcdef"]
        taken = await asyncio.gather(*(inbox.accept("x", u["id"], u["lane"], json.dumps(u), u) for u in ups))
        assert all(taken)
        await wait_for(lambda: _count(rec, len(ups)))
    finally:
        await inbox.stop()
    for lane in "abcdef":
        assert [u["id"] for u in rec.handled if u["lane"] == lane] == [f"{lane}{i}" for i in range(6)]
    assert rec.most > 1  # different lanes at once
    await wait_for(lambda: _none_left(db))


async def _count(rec: Recorder, n: int) -> bool:
    return len(rec.handled) == n


async def test_a_burst_is_written_in_one_transaction(db: Database) -> None:
    """50 updates taken on at once: one INSERT for all of them (a group commit), and a repeat is refused."""
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INBOX"):
            inserts.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    inbox = Inbox(db)
    rec = Recorder()
    inbox.register("x", json.loads, rec.handle)
    await inbox.start()
    try:
        ups = [{"id": str(i), "lane": str(i)} for i in range(50)]
        assert all(await asyncio.gather(*(inbox.accept("x", u["id"], u["lane"], json.dumps(u)) for u in ups)))
        assert len(inserts) == 1
        await wait_for(lambda: _count(rec, 50))
    finally:
        await inbox.stop()
    assert sorted(u["id"] for u in rec.handled) == sorted(u["id"] for u in ups)


async def test_a_repeat_while_waiting_is_not_taken_twice(db: Database) -> None:
    inbox = Inbox(db)  # not started: nothing is handled, the row waits
    first, again = await asyncio.gather(inbox.accept("x", "7", "a", "{}"), inbox.accept("x", "7", "a", "{}"))
    assert (first, again) == (True, False)
    assert await inbox.accept("x", "7", "a", "{}") is False
    assert await inbox_rows(db) == 1


async def test_stopping_leaves_the_rest_for_the_next_start(db: Database) -> None:
    inbox = Inbox(db)
    rec = Recorder()
    inbox.register("x", json.loads, rec.handle)
    for i in range(3):  # taken on, never handled (no workers)
        await inbox.accept("x", str(i), "a", json.dumps({"id": str(i), "lane": "a"}))
    await inbox.stop()
    later = Inbox(db)
    later.register("x", json.loads, rec.handle)
    await later.start()
    try:
        await wait_for(lambda: _count(rec, 3), inbox_mod.SWEEP + 5)
    finally:
        await later.stop()
    assert [u["id"] for u in rec.handled] == ["0", "1", "2"]


async def test_an_urgent_writer_goes_ahead_of_the_queue() -> None:
    lock = WriteLock()
    order: list[str] = []
    await lock.acquire()

    async def take(name: str, urgent: bool) -> None:
        await lock.acquire(urgent)
        order.append(name)
        lock.release()

    tasks = [asyncio.create_task(take("n1", False)), asyncio.create_task(take("n2", False))]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(take("u", True)))
    cancelled = asyncio.create_task(take("gone", False))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["u", "n1", "n2"]
    await lock.acquire()  # free again: a cancelled waiter left nothing behind
    lock.release()


async def test_stopping_lets_the_update_being_handled_finish(db: Database) -> None:
    """A stop (SIGTERM) waits for the update a worker is in the middle of, records it as handled, and leaves the
    next one of its lane for the next start."""
    gate = asyncio.Event()
    handled: list[str] = []

    async def slow(update: dict[str, Any]) -> bool:
        gate.set()
        await asyncio.sleep(0.3)
        handled.append(update["id"])
        return True

    inbox = Inbox(db)
    inbox.register("x", json.loads, slow)
    await inbox.start()
    for i in range(2):
        await inbox.accept("x", str(i), "a", json.dumps({"id": str(i)}))
    await asyncio.wait_for(gate.wait(), 5)
    await inbox.stop()
    assert handled == ["0"]
    async with db.read() as s:
        left = (await s.execute(select(InboxEvent.event_id))).scalars().all()
    assert left == ["1"]
