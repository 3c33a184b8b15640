"""Leader election through a database lease: exactly one worker holds a named role (such as the smart
robot's single WebSocket connection) at a time; another takes over within seconds if it dies.

The lease is one row in `leases`, taken or renewed by a conditional write (storage.channel_repo.try_lease), so
it works on SQLite and PostgreSQL without Redis. Lease times are real wall-clock time, never the app's
(possibly frozen or shifted) Clock: liveness is about real seconds.
"""
from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime

from storage import channel_repo
from storage.db import Database, utcnow

log = logging.getLogger(__name__)


def worker_id() -> str:
    """A name for this worker that no other process (or App in this process) shares."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """One named lease this worker may hold: `renew()` keeps (or takes) it, `release()` gives it up."""

    def __init__(self, db: Database, name: str, ttl: float = 10.0, holder: str | None = None,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.db, self.name, self.ttl = db, name, ttl
        self.holder = holder or worker_id()
        self._now = now
        self.held = False

    async def renew(self) -> bool:
        """Take the lease if it is free or expired, extend it if it is ours; True while we hold it."""
        try:
            async with self.db.transaction() as s:
                got = await channel_repo.try_lease(s, self.name, self.holder, self._now(), self.ttl)
        except Exception as exc:  # the database is unreachable: we cannot prove we still lead
            log.warning("lease %s: renew failed (%s)", self.name, type(exc).__name__)
            got = False
        if got != self.held:
            log.info("lease %s: %s", self.name, "taken" if got else "lost")
        self.held = got
        return got

    async def release(self) -> None:
        """Give the lease up (if we hold it) so another worker takes over at once."""
        self.held = False
        try:
            async with self.db.transaction() as s:
                await channel_repo.release_lease(s, self.name, self.holder)
        except Exception as exc:
            log.warning("lease %s: release failed (%s); it expires by itself", self.name, type(exc).__name__)

    async def holder_now(self) -> str | None:
        """Who holds the lease at this moment (None if nobody)."""
        async with self.db.transaction() as s:
            return await channel_repo.lease_holder(s, self.name, self._now())
