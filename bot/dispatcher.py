"""Every inbound event takes this road: conversation key → ordering → one transaction (dedupe row,
conversation lock, state, handlers, outbox rows) → commit → acknowledged. A failure is not acknowledged:
the platform (or the simulator's caller) retries it, up to a bounded number of tries."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from bot.clock import Clock
from bot.config import Config
from flows import callbacks
from flows.i18n import t
from flows.types import Message
from handlers import presses, router
from handlers.context import Ctx
from handlers.events import ChannelTraits, Handled, InboundEvent
from storage import repo
from storage.db import Database
from storage.locks import LocalLocks

log = logging.getLogger(__name__)
MAX_TRIES = 5  # a poison event (one that fails every time) is given up after this many tries, with an apology


def _claimed_card(ev: InboundEvent) -> str | None:
    """The request a 接单 press is for (None for any other event)."""
    if ev.kind != "press":
        return None
    cb = callbacks.parse(ev.data)
    return cb.target if cb is not None and cb.action == "claim" else None


class Dispatcher:
    """Handles one event at a time per conversation, each in exactly one committed transaction."""

    def __init__(self, cfg: Config, db: Database, clock: Clock,
                 on_outbox: Callable[[list[int], list[repo.NewRow]], Awaitable[None]] | None = None,
                 lease_seconds: float = 0.0, traits: Mapping[str, ChannelTraits] | None = None) -> None:
        self.cfg, self.db, self.clock = cfg, db, clock
        self.traits = traits if traits is not None else {}  # the running channels' traits (filled at start)
        # > 0: an event's messages to chats with nothing else waiting are written leased to this worker and
        # sent from memory right after the commit (the outbox's own lease time)
        self.lease_seconds = lease_seconds
        self.catalog = cfg.catalog()
        self.on_outbox = on_outbox
        # one conversation's events in this process in arrival order (the database lock taken inside the
        # transaction serialises them across workers, but is not first-come-first-served)
        self.ordering = LocalLocks()
        # 接单 presses on one card in this process, one at a time (see handle)
        self.cards = LocalLocks()

    def _ctx(self, session: object, ev: InboundEvent | None = None) -> Ctx:
        key = ev.key if ev is not None and ev.kind != "timer" else None
        return Ctx(s=session, cfg=self.cfg, catalog=self.catalog, now=self.clock.now(),  # type: ignore[arg-type]
                   traits=self.traits, key=key)

    async def handle(self, ev: InboundEvent) -> Handled:
        """Handle an event once; a repeat of an already-handled event id does nothing. When handling
        fails, nothing of it is kept and the result says `failed`: the caller must not acknowledge it."""
        card = _claimed_card(ev)
        if card is None:
            return await self._handle(ev)
        # A burst of 接单 on one card: in this process only the first press goes on to the claim's write; the
        # others wait for it and are then answered by a read (the card is taken), instead of each queueing
        # for the write lock (SQLite) or the row's lock (PostgreSQL) only to lose. Across workers the one
        # conditional write still decides.
        async with self.cards.lock(card):
            return await self._handle(ev)

    async def _handle(self, ev: InboundEvent) -> Handled:
        if ev.kind == "press" and (answer := await self._settled(ev)) is not None:
            return Handled(answer=answer)
        key = ev.key
        try:
            async with self.ordering.lock(str(key)):
                async with self.db.transaction() as session:
                    ctx = self._ctx(session, ev)
                    if not await repo.mark_processed(session, ev.channel, ev.event_id, ctx.now):
                        return Handled(duplicate=True)
                    await self.db.lock_conversation(session, str(key))
                    answer = await router.route(ctx, ev)
                    fast = await ctx.flush_outbox(self.lease_seconds)
        except Exception as exc:  # (a twin of this event on another worker waits for the dedupe row, then skips)
            log.exception("handling an event on %s failed; the transaction was rolled back", ev.channel)
            return await self._failed(ev, exc)
        await self._committed(ctx.outbox_ids, fast)
        return Handled(answer=answer, outbox_ids=ctx.outbox_ids)

    async def _settled(self, ev: InboundEvent) -> str | None:
        """A press whose answer a read alone gives (e.g. 接单 on a taken card): no transaction to write."""
        try:
            async with self.db.read() as session:
                return await presses.settled_answer(self._ctx(session, ev), ev)
        except Exception:
            log.warning("the read-only look at a press failed; handling it in full", exc_info=True)
            return None

    async def _committed(self, outbox_ids: list[int], leased: list[repo.NewRow] | None = None) -> None:
        """After the commit the event is done whatever happens next: a failure to hand the rows to the outbox
        (it polls anyway) must never be reported as a failed event, or the platform would deliver it again."""
        if outbox_ids and self.on_outbox is not None:
            try:
                await self.on_outbox(outbox_ids, leased or [])
            except Exception:
                log.exception("waking the outbox failed; it will find the rows on its next pass")

    async def _failed(self, ev: InboundEvent, exc: Exception) -> Handled:
        """Count the failure; below the bound the event is left for its platform to retry, at the bound it is
        given up: recorded as handled, and the person gets an apology so nobody is left waiting."""
        try:
            async with self.db.transaction() as session:
                tries = await repo.count_failure(session, ev.channel, ev.event_id, self.clock.now())
        except Exception:
            log.warning("could not even count the failure (%s): left for a retry", type(exc).__name__)
            return Handled(failed=True)
        if tries < MAX_TRIES:
            return Handled(failed=True)
        log.error("an event on %s failed %d times: given up", ev.channel, tries)
        try:
            async with self.db.transaction() as session:
                await repo.mark_processed(session, ev.channel, ev.event_id, self.clock.now())
                ctx = self._ctx(session)
                if ev.kind != "timer" and ev.chat_type == "private":
                    await ctx.say(ev.channel, ev.chat_id, Message(t(self.cfg.locale, "error.sorry")))
                await ctx.flush_outbox()
        except Exception:
            log.exception("could not record giving up an event on %s", ev.channel)
            return Handled(failed=True)
        await self._committed(ctx.outbox_ids)
        return Handled(answer=t(self.cfg.locale, "error.sorry_short") if ev.kind == "press" else None,
                       outbox_ids=ctx.outbox_ids, gave_up=True)

    async def card_undeliverable(self, request_id: int, ledger_kind: str, channel: str, chat_id: str) -> None:
        """The outbox gave up on a request card: let the handlers react (fall back, tell coordinators)."""
        from handlers import ops

        try:
            async with self.db.transaction() as session:
                ctx = self._ctx(session)
                await ops.card_undeliverable(ctx, request_id, ledger_kind, channel, chat_id)
                await ctx.flush_outbox()
        except Exception:
            log.exception("reacting to an undeliverable card on %s failed", channel)
            return
        await self._committed(ctx.outbox_ids)
