"""One injectable clock. Code asks a `Clock` for the time; tests and backtests pass their own."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "EventClock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for timeouts."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to: for tests and simulated time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


class EventClock:
    """Simulated time that jumps to each event's time (UTC milliseconds), for backtests: setting
    it costs an assignment, and `now()` builds the datetime only when someone asks."""

    def __init__(self, ms: int) -> None:
        self._ms = ms
        self._at: datetime | None = None

    def set_ms(self, ms: int) -> None:
        if ms < self._ms:
            raise ValueError("a clock does not go backwards")
        if ms != self._ms:
            self._ms = ms
            self._at = None

    @property
    def ms(self) -> int:
        return self._ms

    def now(self) -> datetime:
        if self._at is None:
            self._at = datetime.fromtimestamp(self._ms / 1000, UTC)
        return self._at

    def monotonic(self) -> float:
        return self._ms / 1000
