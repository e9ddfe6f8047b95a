"""The replay's span and the series over it: whole local days in steps, the actual PV, base load
and price on them, and `ReplaySeriesSource`, the forecasts the planner reads in replay.

Apart from the engine: both runs read the span and the actual series; the forecasts are what the
EMS-driven loop gives its planner.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ems.replay.log import LoggedSession
from ems.sites.series import Series, StepSeries, resample

FloatArray = npt.NDArray[np.float64]


def replay_span(sessions: Sequence[LoggedSession], zone: ZoneInfo, step_s: int) -> tuple[datetime, int]:
    """(first step, number of steps): whole local days from the first arrival's day to the last
    departure's day, in steps of `step_s` (a DST day has 23 or 25 hours of steps)."""
    first: date = min(s.arrival for s in sessions).astimezone(zone).date()
    last: date = max(s.departure for s in sessions).astimezone(zone).date()
    start = datetime(first.year, first.month, first.day, tzinfo=zone).astimezone(UTC)
    after = last + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=zone).astimezone(UTC)
    return start, int((end - start).total_seconds()) // step_s


def actual_steps(series: Series | None, start: datetime, step_s: int, n_steps: int) -> StepSeries:
    """The actual series over the replay (no series: no PV, no base load, no price)."""
    if series is None or not series.timestamps:
        zeros = (0.0,) * n_steps
        return StepSeries(start, step_s, zeros, zeros, None)
    return resample(series, start, step_s, n_steps)


class ReplaySeriesSource:
    """The planner's `SeriesSource` in replay: the actual series seen through a forecast error.

    The series is resampled once over the whole replay plus a horizon; plans on the step grid
    read slices. The PV noise factor of each step is fixed for the replay (seeded), so two
    plans an hour apart see the same forecast of the same afternoon.
    """

    def __init__(
        self, series: Series | None, start: datetime, step_s: int, n_steps: int, error: float, seed: int
    ) -> None:
        self.series = series
        self.start = start
        self.step_s = step_s
        self.n_steps = n_steps
        self.steps = actual_steps(series, start, step_s, n_steps)
        rng = np.random.default_rng(seed)
        noise = 1.0 + error * rng.standard_normal(n_steps) if error > 0 else np.ones(n_steps)
        self.pv_kw: FloatArray = np.maximum(0.0, np.asarray(self.steps.pv_kw) * noise)
        self.base_kw: FloatArray = np.asarray(self.steps.base_load_kw)
        self.price: FloatArray | None = (
            None if self.steps.price_eur_per_kwh is None else np.asarray(self.steps.price_eur_per_kwh)
        )
        self.error = error
        self.seed = seed

    def step_series(self, site_id: str, start: datetime, step_s: int, n_steps: int) -> StepSeries:
        offset_s = (start - self.start).total_seconds()
        k0 = round(offset_s / self.step_s)
        if step_s != self.step_s or abs(offset_s - k0 * self.step_s) > 1e-6 or k0 < 0:
            # Off the replay's grid (the engine never plans there): the actual series.
            return actual_steps(self.series, start, step_s, n_steps)
        k1 = k0 + n_steps

        def cut(values: FloatArray, hold: bool) -> tuple[float, ...]:
            part = [float(v) for v in values[k0:k1]]
            pad = part[-1] if (hold and part) else (float(values[-1]) if hold and len(values) else 0.0)
            return tuple(part + [pad] * (n_steps - len(part)))

        return StepSeries(
            start,
            step_s,
            cut(self.pv_kw, False),
            cut(self.base_kw, False),
            None if self.price is None else cut(self.price, True),
        )
