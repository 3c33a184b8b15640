"""The shared rate limiter's contract, on the in-process and the Redis implementation."""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.clock import Clock
from bot.ratelimit import RateLimiter, Rule, make_rate_limiter
from tests.conftest import Backend
from tests.simclient import MONDAY_10AM_UTC


@pytest.fixture
async def limiter(backend: Backend) -> AsyncIterator[tuple[RateLimiter, Clock]]:
    """A limiter on this backend (postgres backend = Redis) with a frozen clock."""
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    lim = make_rate_limiter(backend.redis_url, clock, prefix=backend.redis_prefix + "rate:")
    assert type(lim).__name__ == ("RedisRateLimiter" if backend.redis_url else "LocalRateLimiter")
    yield lim, clock
    await lim.aclose()  # type: ignore[attr-defined]


async def test_window_admits_limit_then_waits(limiter: tuple[RateLimiter, Clock]) -> None:
    lim, clock = limiter
    rule = Rule("group:1", 20, 60)
    assert [await lim.reserve([rule]) for _ in range(20)] == [0.0] * 20
    wait = await lim.reserve([rule])
    assert 59.9 < wait <= 60.01
    clock.advance(timedelta(seconds=30))
    assert 29.9 < await lim.reserve([rule]) <= 30.01  # still the same window
    clock.advance(timedelta(seconds=30, milliseconds=5))
    assert await lim.reserve([rule]) == 0.0  # the first send left the window


async def test_refused_send_is_not_counted_anywhere(limiter: tuple[RateLimiter, Clock]) -> None:
    lim, clock = limiter
    tight, loose = Rule("chat:a", 1, 1), Rule("global", 3, 1)
    assert await lim.reserve([tight, loose]) == 0.0
    assert await lim.reserve([tight, loose]) > 0  # chat:a is full: global must not count it
    assert await lim.reserve([Rule("chat:b", 1, 1), loose]) == 0.0
    assert await lim.reserve([Rule("chat:c", 1, 1), loose]) == 0.0
    assert await lim.reserve([Rule("chat:d", 1, 1), loose]) > 0  # 3 counted globally, not 4


async def test_sliding_window_never_exceeds_limit(limiter: tuple[RateLimiter, Clock]) -> None:
    lim, clock = limiter
    rule = Rule("group:2", 20, 60)
    sent: list[float] = []
    t = 0.0
    while len(sent) < 70:
        wait = await lim.reserve([rule])
        if wait == 0:
            sent.append(t)
            step = 0.7
        else:
            step = wait
        clock.advance(timedelta(seconds=step))
        t += step
    for i, start in enumerate(sent):
        assert len([s for s in sent[i:] if s - start <= 60]) <= 20


async def test_block_holds_every_sender(limiter: tuple[RateLimiter, Clock]) -> None:
    lim, clock = limiter
    rule = Rule("chat:429", 100, 1)
    await lim.block("chat:429", 7)
    assert 6.9 < await lim.reserve([rule]) <= 7.0
    await lim.block("chat:429", 2)  # a shorter block never shortens a longer one
    assert 6.9 < await lim.reserve([rule]) <= 7.0
    clock.advance(timedelta(seconds=7))
    assert await lim.reserve([rule]) == 0.0


async def test_redis_limiter_is_shared_between_workers(backend: Backend) -> None:
    if backend.redis_url is None:
        return  # the in-process limiter is for one worker by design
    clock = Clock(frozen_at=MONDAY_10AM_UTC)
    a = make_rate_limiter(backend.redis_url, clock, prefix=backend.redis_prefix + "rate:")
    b = make_rate_limiter(backend.redis_url, clock, prefix=backend.redis_prefix + "rate:")
    try:
        rule = Rule("group:shared", 2, 60)
        assert await a.reserve([rule]) == 0.0
        assert await b.reserve([rule]) == 0.0
        assert await a.reserve([rule]) > 0 and await b.reserve([rule]) > 0
        await a.block("chat:x", 5)
        assert await b.reserve([Rule("chat:x", 10, 1)]) > 4.9
    finally:
        await a.aclose()  # type: ignore[attr-defined]
        await b.aclose()  # type: ignore[attr-defined]
