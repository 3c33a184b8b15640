"""A pass leases only rows it is going to send: rows queued behind a row another worker took meanwhile stay free."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from bot import outbox as outbox_module
from bot.clock import Clock
from bot.outbox import Outbox
from storage import repo
from storage.db import Database
from storage.models import OutboxMessage
from tests.conftest import Backend
from tests.simclient import demo_config


async def test_rows_behind_a_row_taken_meanwhile_are_not_held(backend: Backend,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(backend.database_url)
    await db.upgrade()
    clock = Clock()
    try:
        async with db.transaction() as s:
            ids = [await repo.enqueue(s, clock.now(), "simulator", "chat-1", "message", {"text": f"m{i}"})
                   for i in range(3)]
        outbox = Outbox(demo_config(backend.database_url, backend.redis_url), db, {}, clock)
        execute = AsyncSession.execute
        taken: list[int] = []

        async def execute_racing(self: AsyncSession, stmt: Any, *args: Any, **kwargs: Any) -> Any:
            # between this pass's look at the rows and its lease, another worker sends the chat's first row
            if isinstance(stmt, Update) and not taken:
                taken.append(ids[0])
                await execute(self, update(OutboxMessage).where(OutboxMessage.id == ids[0])
                              .values(status="sent", lease_until=None))
            return await execute(self, stmt, *args, **kwargs)

        monkeypatch.setattr(AsyncSession, "execute", execute_racing)
        first = await outbox._lease()
        monkeypatch.setattr(AsyncSession, "execute", execute)
        assert taken == [ids[0]] and not first  # the chat's order was broken: nothing of it is sent now...
        async with db.read() as s:
            held = (await s.execute(select(OutboxMessage.id).where(OutboxMessage.lease_until.is_not(None)))).all()
        assert held == []  # ...and nothing of it is held: before, rows 2 and 3 stayed leased for LEASE, unsent
        again = await outbox._lease()
        assert [r.id for rows in again.values() for r in rows] == ids[1:]  # the next pass sends them at once
    finally:
        await db.dispose()


class _SlowChannel:
    """A channel whose sends to one chat hang until released (a slow platform); other chats are instant."""

    name = "slow"

    def __init__(self, slow_chat: str) -> None:
        self.slow_chat, self.release, self.sent = slow_chat, asyncio.Event(), []  # type: ignore[var-annotated]

    async def send(self, chat_id: str, msg: Any, key: str | None = None) -> str:
        if chat_id == self.slow_chat:
            await self.release.wait()
        self.sent.append(chat_id)
        return str(len(self.sent))


async def test_a_queue_on_a_slow_platform_does_not_hold_up_other_chats(backend: Backend,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Chats with a queue start a pass alone, but only for QUEUE_HEAD_START: then the chats with one row go
    too, even while the queue's send still hangs."""
    monkeypatch.setattr(outbox_module, "QUEUE_HEAD_START", 0.2)
    db = Database(backend.database_url)
    await db.upgrade()
    clock = Clock()
    channel = _SlowChannel("queue")
    try:
        async with db.transaction() as s:
            for chat in ("queue", "queue", "a", "b"):
                await repo.enqueue(s, clock.now(), "slow", chat, "message", {"text": "hi"})
        outbox = Outbox(demo_config(backend.database_url, backend.redis_url), db,
                        {"slow": channel}, clock)  # type: ignore[dict-item]
        passing = asyncio.create_task(outbox.deliver_due())
        for _ in range(100):
            if sorted(channel.sent) == ["a", "b"]:
                break
            await asyncio.sleep(0.05)
        assert sorted(channel.sent) == ["a", "b"] and not passing.done()  # the queue's first send still hangs
        channel.release.set()
        assert await asyncio.wait_for(passing, 10) == 4
        assert channel.sent[2:] == ["queue", "queue"]
        await outbox.marked(timeout=5)
    finally:
        await db.dispose()
