"""In-process ordering locks, and the Redis client the shared rate limiter uses.

Conversations are locked across workers inside the event's own transaction (Database.lock_conversation),
so no lock lives in a separate service whose lifetime could outlast its owner."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis

REDIS_TIMEOUT = 1.0  # seconds: a Redis that does not answer must not hold up sending for long
REDIS_CONNECTIONS = 50  # per worker


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holders plus waiters


class LocalLocks:
    """asyncio locks per key, for a single process (first come, first served)."""

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


def make_redis(url: str) -> aioredis.Redis:
    """Return an asyncio Redis client for `url` (bytes responses), quick to give up when Redis is down."""
    # a blocking pool: a burst of senders (hundreds of chats in one outbox pass) waits briefly for a free
    # connection instead of failing with MaxConnectionsError, which would look like Redis being down
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_TIMEOUT,
                                                    socket_timeout=REDIS_TIMEOUT,
                                                    socket_connect_timeout=REDIS_TIMEOUT)
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections
