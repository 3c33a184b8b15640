"""A backlog under Telegram's real limits: rows a limit holds back go back to the queue in one write per batch,
not one each, and the loop takes them again when they are due, not at its next poll."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, select

from bench.drain import drain_config
from bench.tg_stub import StubBotApi
from bot.app import App
from bot.clock import Clock
from bot.config import parse_config
from storage import repo
from storage.db import Database
from storage.models import OutboxMessage
from tests.conftest import Backend
from tests.simclient import MONDAY_10AM_UTC

CHATS = [str(5_000_000_000 + i) for i in range(150)]  # private chats, one message each: only 30/s go


@pytest.fixture
async def stub() -> AsyncIterator[StubBotApi]:
    api = await StubBotApi().start()
    try:
        yield api
    finally:
        await api.close()


async def backlog_app(backend: Backend, stub: StubBotApi, clock: Clock, chats: list[str],
                      then: list[str] = ()) -> App:  # type: ignore[assignment]
    """An App (not started) with Telegram at the stub, real limits, one message waiting for each chat (and after
    them one more for each chat of `then`)."""
    cfg = parse_config(drain_config(backend.database_url, backend.redis_url, stub.base_url))
    db = Database(backend.database_url)
    try:
        await db.upgrade()
        async with db.transaction() as s:
            await repo.enqueue_many(s, clock.now(), [repo.NewRow("telegram", c, "message", {"text": f"to {c}"})
                                                     for c in [*chats, *then]])
    finally:
        await db.dispose()
    return App(cfg, clock=clock, redis_prefix=backend.redis_prefix)


async def one_window(app: App, stub: StubBotApi) -> None:
    """Wait until the 30 messages of one global window went out, and the outbox settled (the clock is frozen)."""
    for _ in range(100):
        if stub.calls["sendMessage"] >= 30:
            break
        await asyncio.sleep(0.05)
    await app.settle()


async def test_rows_held_back_by_the_global_limit_are_given_back_together(backend: Backend,
                                                                          stub: StubBotApi) -> None:
    app = await backlog_app(backend, stub, Clock(frozen_at=MONDAY_10AM_UTC), CHATS)  # the window never ends
    writes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE OUTBOX") and "next_attempt_at" in statement:
            writes.append(statement)

    event.listen(app.db.engine.sync_engine, "before_cursor_execute", count)
    await app.start()
    try:
        await one_window(app, stub)
        async with app.db.read() as s:
            rows = (await s.execute(select(OutboxMessage).where(OutboxMessage.status == "pending"))).scalars().all()
    finally:
        await app.stop()
    assert stub.calls["sendMessage"] == 30  # the global limit: 30 a second
    assert len(rows) == 120  # the others wait, due when the window has room, free for any worker
    assert all(r.lease_until is None and r.next_attempt_at > MONDAY_10AM_UTC and r.error == "rate limited"
               for r in rows)
    assert 1 <= len(writes) and len(writes) * 10 <= len(rows)  # a few batches (SQLite 1-2, PostgreSQL ~5 as the
    # limiter's answers come from Redis one by one), not one UPDATE per row, which made a backlog's pass outlast the
    # window it waited for


async def test_a_row_held_back_is_sent_when_due_not_at_the_next_poll(backend: Backend, stub: StubBotApi) -> None:
    app = await backlog_app(backend, stub, Clock(), CHATS[:31])
    app.outbox.poll_seconds = 30.0  # the loop would sleep this long unless it wakes for the held row
    await app.start()
    try:
        start = time.monotonic()
        while stub.calls["sendMessage"] < 31 and time.monotonic() - start < 10:
            await asyncio.sleep(0.05)
    finally:
        await app.stop()
    assert stub.calls["sendMessage"] == 31
    first, last = stub.log[0][0], stub.log[-1][0]
    assert 0.9 <= last - first < 3.0  # the 31st went when the 1-second window let it (the stub logs arrivals)


async def test_a_group_with_a_queue_goes_before_chats_with_one_message(backend: Backend, stub: StubBotApi) -> None:
    """60 private chats with one message each were queued before a group's 4: the group, held by its own limit
    (20/min), takes its slots of the global 30/s first; the private messages only wait for the next second."""
    group = "-1001234567890"
    app = await backlog_app(backend, stub, Clock(frozen_at=MONDAY_10AM_UTC), CHATS[:60], then=[group] * 4)
    await app.start()
    try:
        await one_window(app, stub)
    finally:
        await app.stop()
    assert stub.calls["sendMessage"] == 30  # one window of the global limit (the clock is frozen)
    assert [text for _, chat, text in stub.log if str(chat) == group] == [f"to {group}"] * 4
