"""Named mutual-exclusion locks: in-process (asyncio) or shared between processes (Redis)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import LockError

log = logging.getLogger(__name__)


class LockTimeoutError(TimeoutError):
    """A lock could not be acquired within its blocking timeout."""


class Locks(Protocol):
    """Serialises holders of the same key."""

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Return an async context manager held exclusively for `key`."""
        ...


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders plus waiters


class LocalLocks:
    """asyncio locks per key, for a single process."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock for `key`."""
        entry = self._entries.setdefault(key, _Entry())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            # Drop idle entries so one-off keys (e.g. per request) do not accumulate forever.
            if entry.users == 0:
                del self._entries[key]

    async def aclose(self) -> None:
        """Nothing to release; present for symmetry with RedisLocks."""


class RedisLocks:
    """Redis locks per key, shared by every process using the same Redis and prefix."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str = "wuwei:lock:",
        timeout: float = 30,
        blocking_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        # The lock expires after `timeout`, so a holder that dies cannot block others for longer.
        self.timeout = timeout
        # By default wait a little longer than a dead holder's lock can live.
        self.blocking_timeout = blocking_timeout if blocking_timeout is not None else timeout + 5

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the lock for `key`; raise LockTimeoutError if it stays busy too long."""
        lock = self.client.lock(
            self.prefix + key, timeout=self.timeout, blocking_timeout=self.blocking_timeout
        )
        if not await lock.acquire():
            raise LockTimeoutError("redis lock still busy after blocking timeout")
        try:
            yield
        finally:
            try:
                await lock.release()
            except LockError:
                # Held past `timeout`: another holder may already have run concurrently.
                log.warning("redis lock expired before release (held > %ss)", self.timeout)

    async def aclose(self) -> None:
        """Close the Redis client."""
        await self.client.aclose()


def make_redis(url: str) -> aioredis.Redis:
    """Return an asyncio Redis client for `url` (bytes responses)."""
    return aioredis.Redis.from_url(url, decode_responses=False)


def make_locks(redis_url: str | None, prefix: str = "wuwei:lock:") -> LocalLocks | RedisLocks:
    """Return RedisLocks when a Redis URL is configured, else LocalLocks."""
    if redis_url:
        return RedisLocks(make_redis(redis_url), prefix=prefix)
    return LocalLocks()
