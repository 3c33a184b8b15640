"""Deliver outbox rows through their channels: in order per chat, leased so several workers never
send a row twice, retried with backoff, and request cards recorded in the message ledger."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.base import Channel, PermanentSendError, RetryLater, WaitForInbound
from bot.clock import Clock, wait_event
from bot.config import Config
from flows.i18n import norm_locale, t
from flows.types import Button, Document, Message
from handlers.context import message_payload
from handlers.views import render
from storage import repo
from storage.db import Database, utcnow
from storage.models import HelpRequest, Identity, OutboxMessage, Person

log = logging.getLogger(__name__)
# A leased row is this worker's to send. Leases are short and renewed while the work goes on, so the rows of a
# worker that died (kill -9) are taken over within LEASE; they are real time, not the app's (maybe frozen) Clock.
LEASE = timedelta(seconds=3)
RENEW_SECONDS = 1.0
MAX_ATTEMPTS = 12
LANES = 32  # chats sent to at once in one pass
QUEUE_HEAD_START = 1.0  # seconds the chats with a queue send alone at the start of a pass (see _run_lanes)


def content_hash(msg: Message) -> str:
    """What a copy of a message shows (text, buttons, phone key): an unchanged copy is never edited again."""
    shown = json.dumps(message_payload(msg), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(shown.encode()).hexdigest()[:32]


@dataclass
class _Row:
    id: int
    channel: str
    chat_id: str
    kind: str
    request_id: int | None
    ledger_kind: str | None
    payload: dict[str, object]
    attempts: int

    @property
    def key(self) -> str:
        """This delivery's name for channels that recognise a repeat (a row sent again after a crash). Row ids
        are not reused while a chat log could still hold the key: both go after privacy.retention.outbox_days."""
        return f"outbox-{self.id}"


async def release_held(s: AsyncSession, channel: str, chat_id: str, now: datetime) -> int:
    """A person wrote again: their held rows (WaitForInbound) become due, in their original order."""
    stmt = (update(OutboxMessage).where(OutboxMessage.channel == channel, OutboxMessage.chat_id == chat_id,
                                        OutboxMessage.status == "held")
            .values(status="pending", next_attempt_at=now, lease_until=None, error=None))
    return await repo.rowcount(s, stmt)


def payload_message(payload: dict[str, object]) -> Message:
    """The Message stored in an outbox payload."""
    rows = cast(list[list[dict[str, str]]], payload.get("buttons") or [])
    buttons = tuple(tuple(Button(b["text"], b["data"]) for b in row) for row in rows)
    doc = cast(dict[str, str] | None, payload.get("document"))
    document = Document(doc["filename"], doc["content"], doc.get("mime") or "application/json") if doc else None
    return Message(str(payload.get("text", "")), buttons, str(payload.get("phone_button") or ""), document)


class Outbox:
    """The delivery loop of one worker."""

    def __init__(self, cfg: Config, db: Database, channels: dict[str, Channel], clock: Clock,
                 poll_seconds: float = 1.0) -> None:
        self.cfg, self.db, self.channels, self.clock = cfg, db, channels, clock
        self.poll_seconds = poll_seconds
        self._pass_lock = asyncio.Lock()
        self._lanes = asyncio.Semaphore(LANES)
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held: set[int] = set()  # rows leased by this worker and not done yet (the heartbeat renews them)
        self._inflight: dict[int, asyncio.Task[None]] = {}  # rows being sent from memory (deliver_now)
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._to_mark: set[int] = set()  # sent, to be marked sent with the next batch
        self._to_wait: dict[int, datetime] = {}  # held back by a rate limit: due again at, written with the next batch
        self._wake_at: float | None = None  # loop time at which a row given back to wait (rate limit) is due
        self._marking: asyncio.Task[None] | None = None
        # called when a request card is given up on (refused for good, or out of attempts): the app wires
        # it to Dispatcher.card_undeliverable (e.g. a WeCom group card falls back to 1:1 app cards)
        self.on_card_failed: Callable[[int, str, str, str], Awaitable[None]] | None = None

    # ---- loop ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background delivery loop and the lease heartbeat."""
        self._task = asyncio.create_task(self._run(), name="outbox")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="outbox-lease")

    async def stop(self) -> None:
        """Stop the loop (rows not yet sent stay in the database for the next start); sends in flight finish."""
        if self._inflight:
            await asyncio.wait(set(self._inflight.values()), timeout=5.0)
        await self.marked(timeout=5.0)  # unmarked rows are sent again after their lease: at least once
        for task in (self._task, self._heartbeat_task, self._marking):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def deliver_now(self, rows: list[repo.NewRow]) -> None:
        """Send rows an event just committed, leased to this worker, from memory: no lease transaction, no
        wait for the next pass. Each chat's rows go in order, chats side by side."""
        lanes: OrderedDict[tuple[str, str], list[_Row]] = OrderedDict()
        for r in rows:
            lanes.setdefault((r.channel, r.chat_id), []).append(
                _Row(r.id, r.channel, r.chat_id, r.kind, r.request_id, r.ledger_kind, r.payload, 0))
        for lane in lanes.values():
            self._held.update(row.id for row in lane)
            task = asyncio.create_task(self._fast_lane(lane), name="outbox-now")
            for row in lane:
                self._inflight[row.id] = task

    async def _fast_lane(self, rows: list[_Row]) -> None:
        try:
            await self._deliver_lane(rows)
        except Exception:
            log.exception("outbox: sending at once failed; the rows are retried by the loop")
            with contextlib.suppress(Exception):
                await self._release_leases(rows)
            self.kick()
        finally:
            for r in rows:
                self._inflight.pop(r.id, None)
                self._held.discard(r.id)

    def kick(self) -> None:
        """Wake the loop: new rows were committed."""
        self._kick.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("outbox pass failed; retrying")
            await wait_event(self._kick, self._sleep())
            self._kick.clear()

    def _sleep(self) -> float:
        """Until the next poll, or sooner when a row given back to wait becomes due: a rate-limited backlog
        takes each window's slots as they open, not at the next poll after them."""
        now = asyncio.get_running_loop().time()
        if self._wake_at is not None and self._wake_at <= now:
            self._wake_at = None  # this pass was the one it asked for
        if self._wake_at is None:
            return self.poll_seconds
        return min(self.poll_seconds, self._wake_at - now)

    async def flush(self, ids: list[int] | None = None, timeout: float = 30.0) -> None:
        """Deliver what is due now and wait until these rows (None: everything this worker can send now) are no
        longer waiting, whichever worker sends them (the simulator answers only after the messages an event
        caused are delivered)."""
        if ids is not None and not ids:
            return  # the event caused no message: nothing to wait for (the loop delivers whatever else is due)
        deadline = asyncio.get_running_loop().time() + timeout

        def left() -> float:
            return max(0.0, deadline - asyncio.get_running_loop().time())

        while True:
            inflight = self._inflight
            sending = set(inflight.values()) if ids is None else {inflight[i] for i in ids if i in inflight}
            if sending:
                await asyncio.wait(sending, timeout=left())
            waited = await self.marked(timeout=left())  # rows queued behind sent ones wait for their marks
            sent = await self.deliver_due()
            waited = await self.marked(timeout=left()) or waited
            if ids is None:
                if not sent and not waited and not self._inflight:  # nothing more this worker can send now
                    return
            elif not await self._still_due(ids):
                return
            if not left():
                log.warning("outbox rows still undelivered after %.0fs", timeout)
                return
            if not sent and not waited:
                await asyncio.sleep(0.02)  # another worker holds the lease: let it finish

    async def _still_due(self, ids: list[int]) -> bool:
        now = self.clock.now()
        async with self.db.read() as s:
            q = select(OutboxMessage.id).where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending",
                                               OutboxMessage.next_attempt_at <= now).limit(1)
            return (await s.execute(q)).first() is not None

    # ---- one pass ------------------------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """Lease due rows lane by lane (a lane is one chat, in id order) and deliver them."""
        async with self._pass_lock:
            lanes = await self._lease()
            if not lanes:
                return 0
            leased = {r.id for rows in lanes.values() for r in rows}
            self._held |= leased
            try:
                results = await self._run_lanes(list(lanes.values()))
            finally:
                self._held -= leased
            return sum(results)

    async def _run_lanes(self, lanes: list[list[_Row]]) -> list[int]:
        """Chats with a queue first, then the chats with one row: a chat with a queue is held by its own limit (a
        group's 20/min) and must take every global slot its limit lets it have, or the queue drains later than
        it could; a chat with one row only waits a moment for the next global slot. The head start is bounded
        (QUEUE_HEAD_START): a long queue on a slow platform does not hold everyone else up."""
        tasks = [asyncio.ensure_future(self._bounded_lane(rows)) for rows in lanes if len(rows) > 1]
        try:
            if tasks:
                await asyncio.wait(tasks, timeout=QUEUE_HEAD_START)
            tasks += [asyncio.ensure_future(self._bounded_lane(rows)) for rows in lanes if len(rows) == 1]
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    async def _heartbeat(self) -> None:
        """Keep this worker's leases while it works on them (a long rate-limited lane is not taken over)."""
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            ids = sorted(self._held)
            if not ids:
                continue
            try:
                async with self.db.transaction() as s:
                    await s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids),
                                                                OutboxMessage.lease_until.is_not(None))
                                    .values(lease_until=utcnow() + LEASE))
            except Exception as exc:
                log.warning("outbox: could not renew leases (%s)", type(exc).__name__)

    async def _lease(self) -> OrderedDict[tuple[str, str], list[_Row]]:
        now, real_now = self.clock.now(), utcnow()
        # look first without the write lock: most passes find nothing to take (rows sent from memory are leased)
        async with self.db.read() as s:
            q = select(OutboxMessage).where(OutboxMessage.status == "pending").order_by(OutboxMessage.id).limit(500)
            pending = list((await s.execute(q)).scalars())
        lanes: OrderedDict[tuple[str, str], list[OutboxMessage]] = OrderedDict()
        blocked: set[tuple[str, str]] = set()
        for row in pending:
            lane = (row.channel, row.chat_id)
            if lane in blocked:
                continue
            if row.next_attempt_at > now or (row.lease_until is not None and row.lease_until > real_now):
                blocked.add(lane)  # an earlier row of this chat waits: keep the order
                continue
            lanes.setdefault(lane, []).append(row)
        ids = [r.id for rows in lanes.values() for r in rows]
        if not ids:
            return OrderedDict()
        async with self.db.transaction() as s:
            # the lease is a conditional write: a row another worker leased meanwhile is not taken again
            free = or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= real_now)
            stmt = (update(OutboxMessage).where(OutboxMessage.id.in_(ids), OutboxMessage.status == "pending", free)
                    .values(lease_until=real_now + LEASE).returning(OutboxMessage.id))
            got = set((await s.execute(stmt)).scalars())
            out: OrderedDict[tuple[str, str], list[_Row]] = OrderedDict()
            for lane, rows in lanes.items():
                for r in rows:
                    if r.id not in got:
                        break
                    out.setdefault(lane, []).append(_Row(r.id, r.channel, r.chat_id, r.kind, r.request_id,
                                                         r.ledger_kind, dict(r.payload or {}), r.attempts))
            # rows behind one another worker took meanwhile are not sent by this pass: give them back at once,
            # or their chat would wait for their lease to run out
            behind = got - {r.id for rows in out.values() for r in rows}
            if behind:
                await s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(behind)).values(lease_until=None))
            return out

    async def _bounded_lane(self, rows: list[_Row]) -> int:
        """A lane of a pass, at most LANES at a time (the HTTP and Redis pools are finite; a backlog of hundreds
        of chats would otherwise queue on them or fail for want of a connection)."""
        async with self._lanes:
            return await self._deliver_lane(rows)

    async def _deliver_lane(self, rows: list[_Row]) -> int:
        done = 0
        for row in rows:
            if not await self._deliver(row):
                await self._release_leases(rows[done + 1:])
                break
            done += 1
        return done

    async def _release_leases(self, rows: list[_Row]) -> None:
        if not rows:
            return
        self._held.difference_update(r.id for r in rows)
        async with self.db.transaction() as s:
            await s.execute(update(OutboxMessage).where(OutboxMessage.id.in_([r.id for r in rows]))
                            .values(lease_until=None))

    async def _deliver(self, row: _Row) -> bool:
        """Send one row; True if it is done (sent or failed for good), False if it will be retried."""
        try:
            if row.kind == "message":
                await self._channel(row.channel).send(row.chat_id, payload_message(row.payload), key=row.key)
            elif row.kind == "card":
                await self._deliver_card(row)
            elif row.kind == "refresh":
                await self._deliver_refresh(row)
            else:
                raise PermanentSendError(f"unknown outbox kind {row.kind}")
        except RetryLater as exc:
            self._wait_soon(row.id, exc.delay)
            return False
        except WaitForInbound:
            await self._finish(row.id, "held", "held until the person writes again")
            return True  # later rows of this chat are tried too: each is held or sent on its own
        except PermanentSendError as exc:
            log.warning("outbox row %s failed for good: %s", row.id, exc)
            await self._finish(row.id, "failed", str(exc))
            if row.kind == "card" and row.ledger_kind == "detail":
                await self._detail_undeliverable(row)
            await self._card_failed(row)
            return True
        except Exception as exc:
            delay = min(2.0 ** row.attempts, 300.0)
            log.warning("outbox row %s: send failed (%s), retry in %.0fs", row.id, type(exc).__name__, delay)
            await self._retry(row, delay, count=True, error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        if row.kind != "card":  # a card is marked sent together with its ledger entry
            self._mark_sent_soon(row.id)
        return True

    async def _detail_undeliverable(self, row: _Row) -> None:
        """A claimer's private details could not be delivered (never started a private chat, blocked the
        bot): the claim stands, and their team's group on that channel asks them, without any details,
        to open a private chat with the bot."""
        assert row.request_id is not None
        async with self.db.transaction() as s:
            req = await repo.get_request(s, row.request_id)
            person = await repo.get_person(s, req.volunteer_id) if req and req.volunteer_id else None
            if req is None or person is None:
                return
            teams = set(await repo.routed_team_ids(s, req.id)) & await repo.team_ids_of(s, person.id)
            text = t(self.cfg.locale, "outbox.detail_undeliverable", name=person.name, number=req.number)
            for team_id in sorted(teams or {req.team_id}):
                for binding in await repo.group_bindings(s, team_id):
                    if binding.channel == row.channel:
                        await repo.enqueue(s, self.clock.now(), binding.channel, binding.chat_id, "message",
                                           message_payload(Message(text)))
        self.kick()

    def _channel(self, name: str) -> Channel:
        ch = self.channels.get(name)
        if ch is None:
            raise PermanentSendError(f"channel {name!r} is not enabled")
        return ch

    async def _deliver_card(self, row: _Row) -> None:
        """Send a request-bound message rendered from the request as it is now, and record it."""
        assert row.request_id is not None and row.ledger_kind is not None
        channel = self._channel(row.channel)
        msg = await self._render(row.request_id, row.ledger_kind, row.channel, row.chat_id)
        if msg is None:
            await self._finish(row.id, "sent", None)  # nothing to show any more
            return
        message_id = await channel.send(row.chat_id, msg, key=row.key)
        # recorded at once, in one transaction with the sent mark: a worker dying after this never sends it again
        async with self.db.transaction() as s:
            await repo.add_ledger(s, row.request_id, row.channel, row.chat_id, message_id, row.ledger_kind,
                                  self.clock.now(), content_hash(msg))
            await self._mark(s, row.id, "sent", None)
        # the request may have changed while we were sending: make this copy current
        latest = await self._render(row.request_id, row.ledger_kind, row.channel, row.chat_id)
        if latest is None or latest == msg:
            return
        try:
            await self._edit_copy(channel, row.request_id, row.chat_id, message_id, latest)
        except Exception as exc:  # the card is out and recorded: never send it again, bring it up to date later
            log.info("outbox row %s: card sent, its update deferred (%s)", row.id, type(exc).__name__)
            async with self.db.transaction() as s:
                await repo.enqueue(s, self.clock.now(), "*", f"request:{row.request_id}", "refresh", {},
                                   request_id=row.request_id)
            self.kick()

    async def _edit_copy(self, channel: Channel, request_id: int, chat_id: str, message_id: str,
                         msg: Message) -> None:
        """Edit one recorded copy and remember what it shows now."""
        await channel.edit(chat_id, message_id, msg)
        async with self.db.transaction() as s:
            await repo.set_ledger_hash(s, channel.name, chat_id, message_id, content_hash(msg))

    async def _deliver_refresh(self, row: _Row) -> None:
        """Re-render every recorded copy of a request's messages, on every enabled channel, in one read; edit
        only the copies whose content changed. Each edit is recorded as it is made, so a refresh that is
        interrupted (rate limit, a dead worker) resumes where it stopped."""
        assert row.request_id is not None
        stale: list[tuple[Channel, str, str, Message]] = []
        async with self.db.read() as s:
            req = await repo.get_request(s, row.request_id)
            if req is None:
                return
            entries = await repo.ledger_for(s, row.request_id, ["group_card", "nudge", "reminder", "detail"])
            for e in entries:
                channel = self.channels.get(e.channel)
                if channel is None:
                    continue
                msg = await self._render_in(s, req, e.kind, e.channel, e.chat_id)
                if e.content_hash != content_hash(msg):
                    stale.append((channel, e.chat_id, e.message_id, msg))
        for channel, chat_id, message_id, msg in stale:
            try:
                await self._edit_copy(channel, row.request_id, chat_id, message_id, msg)
            except PermanentSendError as exc:  # one copy gone (chat blocked, message deleted): update the rest
                log.info("a copy of request %s on %s cannot be updated: %s", row.request_id, channel.name, exc)

    async def _render(self, request_id: int, kind: str, channel: str, chat_id: str) -> Message | None:
        async with self.db.read() as s:
            req = await repo.get_request(s, request_id)
            if req is None:
                return None
            return await self._render_in(s, req, kind, channel, chat_id)

    async def _render_in(self, s: AsyncSession, req: HelpRequest, kind: str, channel: str, chat_id: str) -> Message:
        locale = self.cfg.locale if kind == "group_card" else await self._chat_locale(s, channel, chat_id)
        return await render(s, self.cfg, req, kind, channel, chat_id, locale)

    async def _chat_locale(self, s: object, channel: str, chat_id: str) -> str:
        q = select(Person.locale).join(Identity, Identity.person_id == Person.id).where(
            Identity.channel == channel, Identity.chat_id == chat_id)
        loc = (await s.execute(q.limit(1))).scalar_one_or_none()  # type: ignore[attr-defined]
        return norm_locale(loc or self.cfg.locale)

    async def _finish(self, row_id: int, status: str, error: str | None) -> None:
        async with self.db.transaction() as s:
            await self._mark(s, row_id, status, error)

    def _mark_sent_soon(self, row_id: int) -> None:
        """Sent rows are marked at once, and those sent while a mark is being written go together in the next
        write (a worker dying in between sends them again after their lease: at least once, and the window
        is one write: the kill -9 benchmark counts how often it happens)."""
        self._to_mark.add(row_id)
        self._start_marking()

    def _wait_soon(self, row_id: int, delay: float) -> None:
        """A row a rate limit holds back goes back to the queue, due in `delay` seconds, with the next batch
        of marks: a pass over a backlog holds back hundreds of rows at once, and one write each made the pass
        outlast the window it waited for. Until written the row stays leased to this worker (its chat waits
        behind it), and the loop wakes when it is due."""
        self._to_wait[row_id] = self.clock.now() + timedelta(seconds=delay)
        self._wake_for(delay)
        self._start_marking()

    def _wake_for(self, delay: float) -> None:
        wake = asyncio.get_running_loop().time() + delay  # read after the clock: by then the row is due
        self._wake_at = wake if self._wake_at is None else min(self._wake_at, wake)

    def _start_marking(self) -> None:
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._mark_batches(), name="outbox-mark-sent")

    async def _mark_batches(self) -> None:
        while self._to_mark or self._to_wait:
            ids = sorted(self._to_mark)
            waits = dict(self._to_wait)
            self._to_mark.clear()
            self._to_wait.clear()
            try:
                async with self.db.transaction() as s:
                    if ids:
                        await s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(
                            status="sent", error=None, lease_until=None, sent_at=self.clock.now()))
                    if waits:  # one statement, executed for each row (its own due time)
                        await s.execute(update(OutboxMessage), [
                            {"id": i, "next_attempt_at": due, "lease_until": None, "error": "rate limited"}
                            for i, due in waits.items()])
            except Exception as exc:
                log.warning("outbox: could not mark %d rows sent and give back %d (%s); trying again", len(ids),
                            len(waits), type(exc).__name__)
                self._to_mark.update(ids)
                self._to_wait = {**waits, **self._to_wait}
                await asyncio.sleep(1.0)
                continue
            self._held.difference_update(ids)
            self._held.difference_update(waits)
            self.kick()  # rows queued behind these in the same chats may go now

    async def marked(self, timeout: float = 30.0) -> bool:
        """Wait (at most `timeout` seconds) until every row sent so far is marked sent and every row held back
        so far is given back; True if there were any."""
        if self._marking is None or self._marking.done():
            return False
        await asyncio.wait({self._marking}, timeout=timeout)
        return True

    async def _mark(self, s: AsyncSession, row_id: int, status: str, error: str | None) -> None:
        self._held.discard(row_id)
        await s.execute(update(OutboxMessage).where(OutboxMessage.id == row_id).values(
            status=status, error=error, lease_until=None, sent_at=self.clock.now() if status == "sent" else None))

    async def _retry(self, row: _Row, delay: float, count: bool, error: str) -> None:
        attempts = row.attempts + (1 if count else 0)
        status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
        if status == "failed":
            log.error("outbox row %s gave up after %d attempts", row.id, attempts)
        self._held.discard(row.id)
        due = self.clock.now() + timedelta(seconds=delay)
        async with self.db.transaction() as s:
            await s.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(
                status=status, attempts=attempts, error=error, lease_until=None, next_attempt_at=due))
        if status == "pending":
            self._wake_for(delay)
        if status == "failed":
            await self._card_failed(row)

    async def _card_failed(self, row: _Row) -> None:
        if row.kind == "card" and row.request_id is not None and row.ledger_kind and self.on_card_failed:
            await self.on_card_failed(row.request_id, row.ledger_kind, row.channel, row.chat_id)
