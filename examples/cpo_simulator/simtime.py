"""Simulated time for asyncio tasks: the shared `ScaledClock` plus sleeping in simulated seconds.

`ems.core.clock.ScaledClock` is what the EMS uses with the same start, speed and real start, so both
processes agree on `now`; this adds what the asyncio side needs: sleep until a simulated instant,
waking early when something (a new charging profile) changes the plan.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from ems.core.clock import Clock


class SimClock:
    def __init__(self, clock: Clock, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.clock = clock
        self.speed = speed

    def now(self) -> datetime:
        return self.clock.now()

    def real_s(self, until: datetime) -> float:
        """Real seconds from now until the simulated instant `until` (0 when past)."""
        return max(0.0, (until - self.clock.now()).total_seconds() / self.speed)

    async def sleep_until(self, moment: datetime, wake: asyncio.Event | None = None) -> bool:
        """Sleep until `moment`; return True if `wake` was set first (and clear it)."""
        delay_s = self.real_s(moment)
        if wake is None:
            await asyncio.sleep(delay_s)
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=delay_s)
        woken = wake.is_set()
        wake.clear()
        return woken
