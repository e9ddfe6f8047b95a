"""The `Clock` port: real time in the server, scaled time in the demo, stepped time in replay.

Every part of the EMS that needs `now` asks a Clock, so the same planner runs live, in an
accelerated demo (the EMS and the CPO simulator share one `ScaledClock` definition) and in an
offline replay driven step by step.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC time."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class RealClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class ScaledClock:
    """Time that runs `speed` times faster than real time from `start` on.

    Two processes built with the same `start`, `speed` and `real_start_unix_s` agree on `now`.
    """

    def __init__(self, start: datetime, speed: float, real_start_unix_s: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock start must be timezone-aware")
        if speed <= 0:
            raise ValueError("ScaledClock speed must be positive")
        self.start = start.astimezone(UTC)
        self.speed = speed
        self.real_start_unix_s = time.time() if real_start_unix_s is None else real_start_unix_s

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.time() - self.real_start_unix_s) * self.speed)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """Time that moves only when told to: replay and tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
