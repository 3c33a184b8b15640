"""Time as an input: the real clock, or one a test or the simulator can move forward."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from storage.db import utcnow


class Clock:
    """Naive-UTC clock with an adjustable offset (time travel for the simulator and tests).

    With `frozen_at`, time stands still except when advanced: tests get the same roster and dates
    whatever the hour they run at.
    """

    def __init__(self, frozen_at: datetime | None = None) -> None:
        self.offset = timedelta()
        self.frozen_at = frozen_at

    def now(self) -> datetime:
        """The current (possibly shifted) naive UTC time."""
        return (self.frozen_at or utcnow()) + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move time forward."""
        if delta < timedelta():
            raise ValueError("time only moves forward")
        self.offset += delta


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; True if it was set. Unlike asyncio.wait_for on Python 3.11,
    a cancellation that arrives just as the event is set is never swallowed (wait_for can return the result
    instead, and a loop stopped by cancelling it would then run on forever: seen as a hanging shutdown)."""
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            await event.wait()
    except TimeoutError:
        return False
    return True
