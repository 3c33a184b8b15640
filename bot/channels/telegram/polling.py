"""Long polling as our own loop over getUpdates: one poller across workers (a lease), the offset kept
in channel_state after every batch (a restart resumes there; a replay would be deduped anyway)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import Bot, Update
from telegram.error import Conflict, RetryAfter

from bot.channels.telegram.inbound import NAME
from bot.channels.telegram.outbound import retry_seconds
from bot.clock import Clock, wait_event
from bot.leader import Lease
from storage import channel_repo
from storage.db import Database

log = logging.getLogger(__name__)
ALLOWED_UPDATES = ["message", "callback_query", "my_chat_member"]
POLL_LEASE = "telegram:poll"  # one poller at a time across workers (Telegram answers 409 to a second)
# real seconds, renewed every LEASE_TTL / 3 beside the long poll: a killed poller is replaced within LEASE_TTL
LEASE_TTL = 6.0


async def release(db: Database, holder: str) -> None:
    """Give the poller lease up, so another worker takes over at once."""
    async with db.transaction() as s:
        await channel_repo.release_lease(s, POLL_LEASE, holder)


class Poller:
    """getUpdates in a loop; each batch is taken on (durably, see bot/inbox.py) before the next call confirms it."""

    def __init__(self, bot: Bot, db: Database, clock: Clock, timeout: int, holder: str,
                 take: Callable[[Update], Awaitable[bool]]) -> None:
        self.bot, self.db, self.clock, self.timeout, self.holder = bot, db, clock, timeout, holder
        self.take = take
        self.lease = Lease(db, POLL_LEASE, ttl=LEASE_TTL, holder=holder)
        self._lead_changed = asyncio.Event()

    async def run(self) -> None:
        """Poll until cancelled (while this worker holds the poller lease); errors are logged and retried."""
        heartbeat = asyncio.create_task(self._keep_lease(), name="telegram-poll-lease")
        try:
            await self._poll()
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)

    async def _keep_lease(self) -> None:
        while True:
            await self.lease.renew()
            self._lead_changed.set()
            await asyncio.sleep(LEASE_TTL / 3)

    async def _poll(self) -> None:
        offset: int | None = None
        leading = False
        while True:
            try:
                if not self.lease.held:
                    leading = False
                    self._lead_changed.clear()
                    await wait_event(self._lead_changed, LEASE_TTL)
                    continue
                if not leading:  # (re)gained the lead: go on where the last poller, maybe another worker, stopped
                    offset, leading = await self._load_offset(), True
                updates = await self.bot.get_updates(offset=offset, timeout=self.timeout,
                                                     allowed_updates=ALLOWED_UPDATES)
                if updates:
                    failed = await self.take_batch(list(updates))
                    offset = failed if failed is not None else updates[-1].update_id + 1
                    await self._save_offset(offset)
                    if failed is not None:  # comes again with the next getUpdates; the others wait in the inbox
                        await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
            except Conflict:
                log.warning("telegram: another getUpdates or a webhook is active; waiting")
                await asyncio.sleep(10.0)
            except Exception as exc:
                log.warning("telegram: polling failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(2.0)

    async def take_batch(self, updates: list[Update]) -> int | None:
        """Take a batch on (into the inbox, in one write, in order); the id of the first update that was not
        taken on (polling must not move past it), or None."""
        taken = await asyncio.gather(*(self.take(update) for update in updates))
        failed = [update.update_id for update, ok in zip(updates, taken, strict=True) if not ok]
        return min(failed) if failed else None

    async def _load_offset(self) -> int | None:
        async with self.db.transaction() as s:
            value = await channel_repo.get_channel_state(s, NAME, "offset")
        return int(value) if value else None

    async def _save_offset(self, offset: int) -> None:
        async with self.db.transaction() as s:
            await channel_repo.set_channel_state(s, NAME, "offset", str(offset), self.clock.now())
