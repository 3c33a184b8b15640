"""Due timers re-enter the dispatcher as events, so time is just another input."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from bot.clock import Clock
from bot.config import RetentionConfig
from bot.dispatcher import Dispatcher
from handlers.events import InboundEvent
from storage import repo, retention
from storage.db import Database

log = logging.getLogger(__name__)
DEDUPE_KEEP = timedelta(days=7)
PURGE_EVERY = timedelta(hours=6)  # the retention purge: at start, then this often (by the bot's clock)


class Scheduler:
    """Polls the timers table every `tick_seconds` and fires what is due."""

    def __init__(self, db: Database, dispatcher: Dispatcher, clock: Clock, tick_seconds: float,
                 keep: RetentionConfig | None = None, transcripts: list[retention.Transcript] | None = None) -> None:
        self.db, self.dispatcher, self.clock, self.tick = db, dispatcher, clock, tick_seconds
        self.keep = keep or RetentionConfig()
        self.transcripts = transcripts or []  # the channels' copies of chats (from their traits)
        self._next_purge: datetime | None = None  # None: purge on the first pass
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Start the background loop."""
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop the loop; unfired timers stay in the database."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.fire_due()
                await self.prune()
            except Exception:
                log.exception("scheduler pass failed; retrying")
            await asyncio.sleep(self.tick)

    async def prune(self) -> None:
        """Drop dedupe ids past every platform's redelivery window (Telegram keeps updates 24 h); run the
        retention purge when it is due."""
        async with self.db.transaction() as s:
            await repo.prune_processed(s, self.clock.now() - DEDUPE_KEEP)
        await self.purge_if_due()

    async def purge_if_due(self) -> retention.Purged | None:
        """The retention purge (privacy.retention), at most every PURGE_EVERY; returns its counts if it ran."""
        now = self.clock.now()
        if self._next_purge is not None and now < self._next_purge:
            return None
        keep = self.keep
        async with self.db.transaction() as s:
            done = await retention.purge(s, retention.Horizons.at(now, keep.drafts_days, keep.requests_days,
                                                                  keep.outbox_days, keep.cases_days),
                                         self.transcripts)
        self._next_purge = now + PURGE_EVERY
        if done.total():
            log.info("retention purge: %s", done)  # counts only
        return done

    async def fire_due(self) -> int:
        """Fire every timer due now, each as its own event; returns how many fired."""
        async with self._lock:
            fired, seen = 0, set()
            while True:
                async with self.db.read() as s:
                    ids = [i for i in await repo.due_timer_ids(s, self.clock.now()) if i not in seen]
                if not ids:
                    return fired  # a timer whose handling failed is retried on the next tick
                seen.update(ids)
                for timer_id in ids:
                    ev = InboundEvent(channel="timer", event_id=f"timer:{timer_id}", chat_id="timers",
                                      user_id=f"timer-{timer_id}", kind="timer", extra={"timer_id": timer_id})
                    handled = await self.dispatcher.handle(ev)
                    fired += 0 if handled.duplicate else 1
                    if handled.duplicate:  # handled before but the timer row says otherwise: never loop
                        async with self.db.transaction() as s:
                            await repo.take_timer(s, timer_id, self.clock.now())
