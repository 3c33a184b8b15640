"""Stopping: a loop stopped by cancelling it stops, even when its wake-up event is set at the same moment.

On Python 3.11 `asyncio.wait_for(event.wait(), timeout)` can return the event's result instead of raising the
cancellation that arrived with it; the outbox loop (and the Telegram poller's and the WeCom robot's) then ran on
and `App.stop()` waited for it forever — seen as tests hanging in teardown. `bot.clock.wait_event` is the wait
they use now."""
from __future__ import annotations

import asyncio

from bot.clock import wait_event


async def test_a_cancel_that_meets_the_event_is_not_swallowed() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            await wait_event(wake, 30)
            wake.clear()
            rounds += 1

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)  # the loop waits on the event
    wake.set()  # a kick …
    task.cancel()  # … and a stop in the same moment
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled()
    assert rounds == 0


async def test_wait_event_says_whether_the_event_came() -> None:
    wake = asyncio.Event()
    assert await wait_event(wake, 0.01) is False
    wake.set()
    assert await wait_event(wake, 5) is True
