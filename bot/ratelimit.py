"""Sliding-window rate limits shared by every sender: in-process, or across workers through Redis.

A channel asks `reserve(rules)` before each send. The answer is 0 when the send may go now (it is then
counted in every rule's window) or the number of seconds to wait (nothing is counted); the channel
raises RetryLater with it and the outbox tries the row again, in order, so nothing is dropped. Time
comes from the app's Clock, so tests move it by hand.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.clock import Clock

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1)
EDGE = 0.001  # a send exactly one window after the oldest one still shares its window: wait past it


@dataclass(frozen=True)
class Rule:
    """At most `limit` sends under `key` in any `window` seconds."""

    key: str
    limit: int
    window: float


class RateLimiter(Protocol):
    """Decides whether a send may go now."""

    async def reserve(self, rules: list[Rule]) -> float:
        """0.0 if the send may go now (and count it under every rule), else the seconds to wait."""
        ...

    async def block(self, key: str, seconds: float) -> None:
        """Hold every send under `key` for `seconds` (a platform said to wait), in every worker."""
        ...


def _seconds(clock: Clock) -> float:
    return (clock.now() - EPOCH).total_seconds()


class LocalRateLimiter:
    """Windows kept in this process (the embedded default: one worker)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    async def reserve(self, rules: list[Rule]) -> float:
        """See RateLimiter.reserve (no await between check and count, so it is atomic in asyncio)."""
        now = _seconds(self.clock)
        wait = 0.0
        for rule in rules:
            wait = max(wait, self._blocked.get(rule.key, 0.0) - now)
            sent = self._sent.setdefault(rule.key, deque())
            while sent and sent[0] < now - rule.window:
                sent.popleft()
            if len(sent) >= rule.limit:
                wait = max(wait, sent[-rule.limit] + rule.window - now + EDGE)
        if wait > 0:
            return wait
        for rule in rules:
            self._sent[rule.key].append(now)
        return 0.0

    async def block(self, key: str, seconds: float) -> None:
        """See RateLimiter.block."""
        until = _seconds(self.clock) + seconds
        self._blocked[key] = max(self._blocked.get(key, 0.0), until)

    async def aclose(self) -> None:
        """Nothing to release."""


# KEYS: n window keys, then n block keys. ARGV: now, n, member, then (limit, window) per rule.
_RESERVE = """
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local wait = 0
for i = 1, n do
  local blocked = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  if blocked - now > wait then wait = blocked - now end
  local limit = tonumber(ARGV[2 + 2 * i])
  local window = tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. (now - window))
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local nth = redis.call('ZRANGE', KEYS[i], -limit, -limit, 'WITHSCORES')
    local w = tonumber(nth[2]) + window - now + 0.001
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, ARGV[3] .. ':' .. i)
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[3 + 2 * i]) * 1000) + 60000)
end
return '0'
"""

_BLOCK = """
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > old then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class RedisRateLimiter:
    """Windows in Redis sorted sets, checked and counted in one Lua script: shared by every worker.

    When Redis does not answer, sending goes on: each worker then keeps its own windows with its share
    (1/`share`) of every limit, and asks Redis again after `RETRY_REDIS` seconds."""

    RETRY_REDIS = 5.0

    def __init__(self, client: aioredis.Redis, clock: Clock, prefix: str = "wuwei:rate:", share: int = 2) -> None:
        self.client, self.clock, self.prefix = client, clock, prefix
        self._reserve = client.register_script(_RESERVE)
        self._block = client.register_script(_BLOCK)
        self.share = max(1, share)
        self._fallback = LocalRateLimiter(clock)
        self._down_until = 0.0  # monotonic time until which Redis is not asked

    def _redis_down(self, exc: Exception) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("rate limiter: Redis unreachable (%s); each worker keeps 1/%d of every limit for now",
                        type(exc).__name__, self.share)
        self._down_until = time.monotonic() + self.RETRY_REDIS

    def _own_share(self, rules: list[Rule]) -> list[Rule]:
        return [Rule(r.key, max(1, r.limit // self.share), r.window) for r in rules]

    async def reserve(self, rules: list[Rule]) -> float:
        """See RateLimiter.reserve."""
        if not rules:
            return 0.0
        if time.monotonic() < self._down_until:
            return await self._fallback.reserve(self._own_share(rules))
        try:
            return await self._reserve_shared(rules)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_down(exc)
            return await self._fallback.reserve(self._own_share(rules))

    async def _reserve_shared(self, rules: list[Rule]) -> float:
        keys = [self.prefix + "w:" + r.key for r in rules] + [self.prefix + "b:" + r.key for r in rules]
        args: list[str | float | int] = [repr(_seconds(self.clock)), len(rules), uuid.uuid4().hex]
        for r in rules:
            args += [r.limit, repr(float(r.window))]
        return max(0.0, float(await self._reserve(keys=keys, args=args)))

    async def block(self, key: str, seconds: float) -> None:
        """See RateLimiter.block (kept in this worker too, so it holds while Redis is away)."""
        await self._fallback.block(key, seconds)
        until = _seconds(self.clock) + seconds
        ttl_ms = int(seconds * 1000) + 60000
        try:
            await self._block(keys=[self.prefix + "b:" + key], args=[repr(until), ttl_ms])
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_down(exc)

    async def aclose(self) -> None:
        """Close the Redis client."""
        await self.client.aclose()


def make_rate_limiter(redis_url: str | None, clock: Clock, prefix: str = "wuwei:rate:",
                      share: int = 2) -> RateLimiter:
    """Redis-backed when a Redis URL is configured (several workers), else in-process."""
    if redis_url:
        from storage.locks import make_redis

        return RedisRateLimiter(make_redis(redis_url), clock, prefix, share)
    return LocalRateLimiter(clock)
