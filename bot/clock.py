"""Time as an input: the real clock, or one a test or the simulator can move forward."""
from __future__ import annotations

from datetime import datetime, timedelta

from storage.db import utcnow


class Clock:
    """Naive-UTC clock with an adjustable offset (time travel for the simulator and tests)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        """The current (possibly shifted) naive UTC time."""
        return utcnow() + self.offset

    def advance(self, delta: timedelta) -> None:
        """Move time forward."""
        if delta < timedelta():
            raise ValueError("time only moves forward")
        self.offset += delta
