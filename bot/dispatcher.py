"""Every inbound event takes this road: dedupe → per-conversation lock → one transaction → outbox."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError

from bot.clock import Clock
from bot.config import Config
from flows.i18n import t
from flows.types import Message
from handlers import router
from handlers.context import Ctx
from handlers.events import Handled, InboundEvent
from storage import repo
from storage.db import Database
from storage.locks import Locks

log = logging.getLogger(__name__)


class Dispatcher:
    """Handles one event at a time per conversation, each in exactly one committed transaction."""

    def __init__(self, cfg: Config, db: Database, locks: Locks, clock: Clock,
                 on_outbox: Callable[[list[int]], Awaitable[None]] | None = None) -> None:
        self.cfg, self.db, self.locks, self.clock = cfg, db, locks, clock
        self.catalog = cfg.catalog()
        self.on_outbox = on_outbox

    def _ctx(self, session: object) -> Ctx:
        return Ctx(s=session, cfg=self.cfg, catalog=self.catalog, now=self.clock.now())  # type: ignore[arg-type]

    async def handle(self, ev: InboundEvent) -> Handled:
        """Handle an event once; a repeat of an already-handled event id does nothing."""
        key = f"{ev.channel}:{ev.chat_id}:{ev.user_id}"
        try:
            async with self.locks.lock(key):
                async with self.db.transaction() as session:
                    ctx = self._ctx(session)
                    if not await repo.mark_processed(session, ev.channel, ev.event_id, ctx.now):
                        return Handled(duplicate=True)
                    answer = await router.route(ctx, ev)
        except IntegrityError:
            # the same event handled concurrently by another worker: its twin won the dedupe row
            log.info("duplicate event on %s resolved by the database", ev.channel)
            return Handled(duplicate=True)
        except Exception:
            log.exception("handling an event on %s failed; the transaction was rolled back", ev.channel)
            await self._apologise(ev)
            return Handled(answer=t(self.cfg.locale, "error.sorry_short") if ev.kind == "press" else None)
        if ctx.outbox_ids and self.on_outbox is not None:
            await self.on_outbox(ctx.outbox_ids)
        return Handled(answer=answer, outbox_ids=ctx.outbox_ids)

    async def _apologise(self, ev: InboundEvent) -> None:
        """Tell the person something went wrong (in its own transaction), so nobody is left waiting."""
        if ev.kind == "timer" or ev.chat_type != "private":
            return
        try:
            async with self.db.transaction() as session:
                ctx = self._ctx(session)
                await ctx.say(ev.channel, ev.chat_id, Message(t(self.cfg.locale, "error.sorry")))
            if self.on_outbox is not None:
                await self.on_outbox(ctx.outbox_ids)
        except Exception:
            log.exception("could not even queue an apology on %s", ev.channel)

    async def card_undeliverable(self, request_id: int, ledger_kind: str, channel: str, chat_id: str) -> None:
        """The outbox gave up on a request card: let the handlers react (fall back, tell coordinators)."""
        from handlers import ops

        try:
            async with self.db.transaction() as session:
                ctx = self._ctx(session)
                await ops.card_undeliverable(ctx, request_id, ledger_kind, channel, chat_id)
            if ctx.outbox_ids and self.on_outbox is not None:
                await self.on_outbox(ctx.outbox_ids)
        except Exception:
            log.exception("reacting to an undeliverable card on %s failed", channel)
