"""Forecast and measured series per site: import (whole file or nothing) and the `SeriesSource` port.

The planner asks a `SeriesSource` for step averages at plan time, so the server (stored series),
the replay (the log's own series, perfect or with error) and tests plug in their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import delete, select

from ems.core.context import EmsContext
from ems.core.events import ForecastChanged
from ems.sites.series import Series, StepSeries, resample
from ems.store.db import transaction
from ems.store.planning import SeriesPoint
from grid_models.site import Site


class SeriesSource(Protocol):
    def step_series(self, site_id: str, start: datetime, step_s: int, n_steps: int) -> StepSeries: ...


def import_series(ctx: EmsContext, site_id: str, series: Series) -> int:
    """Store a series for a site: rows at the same timestamps are replaced, all in one transaction.

    A column absent from the file leaves that column of the replaced rows empty (the file says
    nothing about it). Publishes `ForecastChanged` so the site is re-planned.
    """
    if not series.timestamps:
        return 0
    with transaction(ctx.db) as db:
        db.execute(
            delete(SeriesPoint).where(
                SeriesPoint.site_id == site_id,
                SeriesPoint.timestamp >= min(series.timestamps),
                SeriesPoint.timestamp <= max(series.timestamps),
            )
        )
        for i, timestamp in enumerate(series.timestamps):
            db.add(
                SeriesPoint(
                    site_id=site_id,
                    timestamp=timestamp,
                    pv_kw=None if series.pv_kw is None else series.pv_kw[i],
                    price_eur_per_kwh=None
                    if series.price_eur_per_kwh is None
                    else series.price_eur_per_kwh[i],
                    base_load_kw=None if series.base_load_kw is None else series.base_load_kw[i],
                )
            )
    ctx.bus.publish(ForecastChanged(site_id, ctx.clock.now()))
    return len(series.timestamps)


def stored_series(ctx: EmsContext, site_id: str, start: datetime, end: datetime) -> Series:
    """The stored rows covering [start, end): one row before `start` too, since it holds on."""
    with ctx.db() as db:
        before = db.scalars(
            select(SeriesPoint)
            .where(SeriesPoint.site_id == site_id, SeriesPoint.timestamp < start)
            .order_by(SeriesPoint.timestamp.desc())
            .limit(1)
        ).all()
        rows = list(before) + list(
            db.scalars(
                select(SeriesPoint)
                .where(
                    SeriesPoint.site_id == site_id,
                    SeriesPoint.timestamp >= start,
                    SeriesPoint.timestamp < end,
                )
                .order_by(SeriesPoint.timestamp)
            )
        )
    if not rows:
        return Series(timestamps=())

    def column(name: str) -> tuple[float, ...] | None:
        values = [getattr(r, name) for r in rows]
        if all(v is None for v in values):
            return None
        return tuple(0.0 if v is None else float(v) for v in values)

    return Series(
        timestamps=tuple(r.timestamp for r in rows),
        pv_kw=column("pv_kw"),
        price_eur_per_kwh=column("price_eur_per_kwh"),
        base_load_kw=column("base_load_kw"),
    )


class StoredSeriesSource:
    """The latest imported series of each site, averaged over the planning steps."""

    def __init__(self, ctx: EmsContext) -> None:
        self.ctx = ctx

    def step_series(self, site_id: str, start: datetime, step_s: int, n_steps: int) -> StepSeries:
        end = start + timedelta(seconds=step_s * (n_steps + 1))
        series = stored_series(self.ctx, site_id, start, end)
        if not series.timestamps:
            return StepSeries(start, step_s, (0.0,) * n_steps, (0.0,) * n_steps, None)
        return resample(series, start, step_s, n_steps)


# ---- offline forecasts --------------------------------------------------------------------------


def pv_clear_sky_kw(
    site: Site, start: datetime, step_s: int, n_steps: int, cloudiness: float = 0.0
) -> tuple[float, ...]:
    """Mean AC power of the site's PV plants per step, from pvlib's clear-sky model, offline.

    Ineichen clear sky at the site, transposed to each plant's tilt and azimuth (isotropic sky),
    a flat 14% of system losses, scaled by `1 - cloudiness` (0: clear, 1: overcast). Each step is
    the mean of 5-minute samples, so a step that straddles sunrise is not all-or-nothing.
    """
    import pandas as pd
    import pvlib

    if not site.pv_plants or n_steps <= 0:
        return (0.0,) * max(0, n_steps)
    if not 0.0 <= cloudiness <= 1.0:
        raise ValueError(f"cloudiness must be between 0 and 1, got {cloudiness}")
    sample_s = 300 if step_s % 300 == 0 else step_s
    per_step = step_s // sample_s
    times = pd.date_range(start, periods=n_steps * per_step, freq=f"{sample_s}s", tz="UTC")
    mid = times + pd.Timedelta(seconds=sample_s / 2)
    location = pvlib.location.Location(site.latitude, site.longitude, tz="UTC")
    clearsky = location.get_clearsky(mid, model="ineichen")
    solar = location.get_solarposition(mid)
    total = np.zeros(len(mid))
    for plant in site.pv_plants:
        poa = pvlib.irradiance.get_total_irradiance(
            plant.tilt_deg,
            plant.azimuth_deg,
            solar["apparent_zenith"],
            solar["azimuth"],
            clearsky["dni"],
            clearsky["ghi"],
            clearsky["dhi"],
        )["poa_global"].fillna(0.0)
        total += plant.peak_power_kw * np.clip(poa.to_numpy(), 0.0, None) / 1000.0 * (1.0 - PV_SYSTEM_LOSSES)
    means = total.reshape(n_steps, per_step).mean(axis=1) * (1.0 - cloudiness)
    return tuple(float(v) for v in means)


PV_SYSTEM_LOSSES = 0.14


@dataclass(frozen=True)
class TimeOfUse:
    """A price schedule by local hour: `peak` in [peak_start_h, peak_end_h), `off_peak` at night."""

    off_peak_eur_per_kwh: float = 0.15
    day_eur_per_kwh: float = 0.20
    peak_eur_per_kwh: float = 0.30
    off_peak_end_h: int = 6
    off_peak_start_h: int = 22
    peak_start_h: int = 17
    peak_end_h: int = 21

    def price_at(self, local: datetime) -> float:
        hour = local.hour
        if hour < self.off_peak_end_h or hour >= self.off_peak_start_h:
            return self.off_peak_eur_per_kwh
        if self.peak_start_h <= hour < self.peak_end_h:
            return self.peak_eur_per_kwh
        return self.day_eur_per_kwh


def forecast_series(
    site: Site,
    start: datetime,
    step_s: int,
    n_steps: int,
    *,
    cloudiness: float = 0.0,
    tariff: TimeOfUse | None = None,
    base_load_kw: Callable[[datetime], float] | None = None,
) -> Series:
    """A whole offline forecast for a site: clear-sky PV, a time-of-use price, a base load."""
    zone = ZoneInfo(site.timezone)
    tariff = tariff or TimeOfUse()
    starts = tuple(start + timedelta(seconds=k * step_s) for k in range(n_steps))
    return Series(
        timestamps=starts,
        pv_kw=pv_clear_sky_kw(site, start, step_s, n_steps, cloudiness),
        price_eur_per_kwh=tuple(tariff.price_at(t.astimezone(zone)) for t in starts),
        base_load_kw=None
        if base_load_kw is None
        else tuple(base_load_kw(t.astimezone(zone)) for t in starts),
    )


def office_base_load_kw(local: datetime) -> float:
    """A plain office building: 3 kW at night and at weekends, 12 kW on weekday working hours."""
    if local.weekday() < 5 and 7 <= local.hour < 19:
        return 12.0
    return 3.0
