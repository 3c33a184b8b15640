"""The inbox: an update is answered 2xx once it is durable, not once it is handled.

A platform that delivers by webhook (or a poller) hands each update to `Inbox.accept`. The updates of a few
milliseconds are written together (one multi-row INSERT, one commit: a group commit) and only then is each
caller told to acknowledge. The worker then handles them from memory, right away: one conversation's updates
(a *lane*) one after another in the order they came, different conversations side by side. A handled row is
deleted (in batches, riding along with the next insert). Handling itself is the dispatcher's road (dedupe
row, conversation lock, flows, outbox, one commit), so an update handled twice has one effect.

Nothing is lost when a worker dies: each worker holds a lease (`leases`, renewed every LEASE / 3 s); a worker
whose lease ran out is gone, and another takes its rows over within LEASE + SWEEP seconds. An update whose
handling fails stays, and is tried again after a pause that grows (the dispatcher gives a poison event up
after its bounded number of tries, with an apology); when the database itself is down, it waits for it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bot.leader import Lease, worker_id
from storage import channel_repo, inbox_repo
from storage.db import Database, utcnow

log = logging.getLogger(__name__)
LEASE = 5.0  # seconds a worker's rows stay its own without a renewal
SWEEP = 2.0  # how often a worker looks for rows of workers that are gone
DELETE_DELAY = 0.05  # handled rows wait this long for an insert to ride along with
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # pauses before trying a failed update again
GIVE_UP = 8  # a handler that raises (rather than saying "not handled") is given up after this many tries
STOP_GRACE = 5.0  # seconds a stopping worker lets the updates it is handling finish
CALM_WAIT = 3.0  # while updates are being taken on, handling waits for a calm moment, but never longer than this
KEEP_PARSED = 2000  # pending updates kept parsed in memory; beyond, as text (parsed again when their turn comes)
LEASE_PREFIX = "inbox:"

Parse = Callable[[str], Any]
# True: handled (or given up), False: not handled, try again later (for as long as it takes: the database may be
# down); an exception: tried again too, but given up after GIVE_UP tries
Handle = Callable[[Any], Awaitable[bool]]


@dataclass(slots=True)
class _Item:
    id: int
    channel: str
    lane: str
    payload: str
    update: Any = None
    tries: int = 0


@dataclass(slots=True)
class _Taking:
    row: dict[str, Any]
    update: Any
    future: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Inbox:
    """One worker's inbox: group-committed intake, ordered lanes, take-over of a dead worker's rows."""

    def __init__(self, db: Database, workers: int = 16, holder: str | None = None) -> None:
        self.db = db
        self.holder = holder or worker_id()
        self.workers = workers
        self.lease = Lease(db, LEASE_PREFIX + self.holder, ttl=LEASE, holder=self.holder)
        self._channels: dict[str, tuple[Parse, Handle]] = {}
        self._taking: list[_Taking] = []
        self._more = asyncio.Event()  # updates wait to be written
        self._done: list[int] = []
        self._known: set[int] = set()  # rows scheduled here and not yet deleted
        self._lanes: dict[str, deque[_Item]] = {}
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._writing = 0  # updates in the batch being written now
        self._intake = 0  # accept() calls not answered yet
        self._calm = asyncio.Event()  # set while there are none
        self._busy = 0  # lanes being handled right now
        self._handling = 0  # of them, inside their handler
        self._stopping = False
        self._waiting = 0  # lanes pausing after a failure
        self._writer: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def register(self, channel: str, parse: Parse, handle: Handle) -> None:
        """How a channel's stored updates are read back and handled."""
        self._channels[channel] = (parse, handle)

    # ---- taking updates on ---------------------------------------------------------------------------
    async def accept(self, channel: str, event_id: str, lane: str, payload: str, update: Any = None) -> bool:
        """Make an update durable, then queue it for handling. True: taken on; False: it was waiting here
        already (the platform sent it again). Raises when it could not be written: do not acknowledge it."""
        taking = _Taking({"channel": channel, "event_id": event_id, "lane": lane, "payload": payload,
                          "received_at": utcnow(), "holder": self.holder}, update)
        self._taking.append(taking)
        self._more.set()
        self._wake_writer()
        self._intake += 1
        self._calm.clear()
        try:
            return await asyncio.shield(taking.future)
        finally:
            self._intake -= 1
            if not self._intake:
                self._calm.set()

    def _wake_writer(self) -> None:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="inbox-writer")

    async def _write(self) -> None:
        """Write what waits, in one transaction per batch, until nothing does (a group commit: the updates
        that arrive while one batch commits go together in the next)."""
        while self._taking or self._done:
            if not self._taking:  # only deletes: give an insert a moment to come and carry them
                self._more.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._more.wait(), DELETE_DELAY)
            batch, self._taking = self._taking, []
            done, self._done = self._done, []
            self._writing = len(batch)
            try:
                async with self.db.transaction(urgent=True) as s:
                    ids = await inbox_repo.add(s, [t.row for t in batch]) if batch else {}
                    if done:
                        await inbox_repo.done(s, done)
            except Exception as exc:
                log.warning("inbox: writing %d update(s) failed (%s)", len(batch), type(exc).__name__)
                for t in batch:
                    if not t.future.done():
                        t.future.set_exception(exc)
                        t.future.exception()  # a caller that went away must not leave it unretrieved
                self._done = done + self._done
                self._writing = 0
                if not self._taking:
                    await asyncio.sleep(1.0)  # the database is away: the deletes can wait
                continue
            self._known.difference_update(done)
            for t in batch:
                id_ = ids.pop((t.row["channel"], t.row["event_id"]), None)  # (twice in one batch: the first)
                if id_ is not None:
                    self._schedule(_Item(id_, t.row["channel"], t.row["lane"], t.row["payload"], t.update))
                if not t.future.done():
                    t.future.set_result(id_ is not None)
            self._writing = 0

    # ---- handling --------------------------------------------------------------------------------------
    def _schedule(self, item: _Item) -> None:
        if item.id in self._known:
            return
        self._known.add(item.id)
        if len(self._known) > KEEP_PARSED:
            item.update = None  # a long queue: keep the text only
        lane = self._lanes.get(item.lane)
        if lane is not None:
            lane.append(item)  # the lane is queued, being handled or pausing: it comes to this item in turn
            return
        self._lanes[item.lane] = deque([item])
        self._ready.put_nowait(item.lane)

    async def _work(self) -> None:
        while True:
            name = await self._ready.get()
            lane = self._lanes[name]
            item = lane[0]
            self._busy += 1
            try:
                if self._intake:
                    # Taking updates on comes first: the platform waits for the answer (and retries, or gives up,
                    # when it is slow), while an update taken on is safe. So under a burst the answers stay fast
                    # and the updates are handled in the calm moments between, or after it (and at least one
                    # per worker every CALM_WAIT seconds).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._calm.wait(), CALM_WAIT)
                if self._stopping:
                    return  # (the update stays in the inbox)
                self._handling += 1
                try:
                    ok = await self._handle(item)
                finally:
                    self._handling -= 1
            finally:
                self._busy -= 1
            if ok:
                lane.popleft()
                self._done.append(item.id)
                self._wake_writer()
                if lane:
                    self._ready.put_nowait(name)
                else:
                    del self._lanes[name]
            else:
                item.tries += 1
                self._waiting += 1
                asyncio.get_running_loop().call_later(BACKOFF[min(item.tries, len(BACKOFF)) - 1], self._resume, name)

    def _resume(self, name: str) -> None:
        self._waiting -= 1
        self._ready.put_nowait(name)

    async def _handle(self, item: _Item) -> bool:
        channel = self._channels.get(item.channel)
        if channel is None:  # its channel is switched off here: another worker (or a later start) handles it
            log.warning("inbox: an update for %s, which does not run here, waits", item.channel)
            return False
        parse, handle = channel
        update = item.update
        if update is None:
            try:
                update = parse(item.payload)
            except Exception:
                log.exception("inbox: a stored update on %s cannot be read; dropped", item.channel)
                return True
        try:
            return await handle(update)
        except asyncio.CancelledError:
            raise
        except Exception:
            if item.tries + 1 >= GIVE_UP:
                log.exception("inbox: handling an update on %s failed %d times; given up", item.channel, GIVE_UP)
                return True
            log.warning("inbox: handling an update on %s failed; it will be tried again", item.channel,
                        exc_info=True)
            return False

    # ---- liveness and take-over ------------------------------------------------------------------------
    async def _keep_lease(self) -> None:
        while True:
            await self.lease.renew()
            await asyncio.sleep(LEASE / 3)

    async def _sweep(self) -> None:
        while True:
            try:
                await self.take_over()
            except Exception as exc:
                log.warning("inbox: looking for rows of stopped workers failed (%s)", type(exc).__name__)
            await asyncio.sleep(SWEEP)

    async def take_over(self) -> int:
        """Take and queue the rows of workers whose lease ran out; how many."""
        now = utcnow()
        async with self.db.read() as s:
            holders = await inbox_repo.holders(s)
            live = set(await channel_repo.live_lease_holders(s, LEASE_PREFIX, now)) if holders else set()
        dead = [h for h in holders if h != self.holder and h not in live]
        if not dead:
            return 0
        async with self.db.transaction() as s:
            rows = await inbox_repo.take_over(s, dead, self.holder)
        if rows:
            log.info("inbox: took over %d update(s) of %d stopped worker(s)", len(rows), len(dead))
        for row in rows:
            self._schedule(_Item(row.id, row.channel, row.lane, row.payload))
        return len(rows)

    # ---- life ------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Take the lease, start handling, and take over what stopped workers left."""
        await self.lease.renew()
        self._tasks = [asyncio.create_task(self._work(), name=f"inbox-{i}") for i in range(self.workers)]
        self._tasks += [asyncio.create_task(self._keep_lease(), name="inbox-lease"),
                        asyncio.create_task(self._sweep(), name="inbox-sweep")]

    async def stop(self) -> None:
        """Stop handling (the updates being handled get STOP_GRACE seconds to finish; one still running then is
        rolled back and stays), write what waits, and let the rest go: the lease is given up, so another worker
        (or the next start) takes the rows at once."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_GRACE
        while self._handling and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._done:
            self._wake_writer()
            await asyncio.gather(self._writer, return_exceptions=True)  # type: ignore[arg-type]
        await self.lease.release()

    async def drained(self, waiting: bool = False) -> None:
        """Wait until everything taken on has been handled, except updates pausing after a failure (with
        `waiting`, those too)."""
        while self._taking or self._writing or self._busy or self._ready.qsize() or (waiting and self._waiting):
            await asyncio.sleep(0.002)

    @property
    def pending(self) -> int:
        """Updates taken on here and not yet handled."""
        return sum(len(lane) for lane in self._lanes.values())
