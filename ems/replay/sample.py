"""A small seeded generator of office session logs and site series, for replay tests and the
benchmark when no recorded log is at hand (the project's full generator is `ems.synth`).

Office habits: on working days most connectors get one car between 7:30 and 9:30 local time
that stays 7 to 9.5 hours; drivers mostly declare their departure and energy truthfully, some
say nothing (the EMS must estimate). Series: pvlib clear sky scaled by a random cloudiness per
day, the office base load and a time-of-use price.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ems.forecasts import TimeOfUse, office_base_load_kw, pv_clear_sky_kw
from ems.replay.log import LoggedSession
from ems.series import Series
from grid_models.electrical import session_max_power_kw
from grid_models.site import Site

VEHICLES: tuple[tuple[float, int], ...] = ((3.7, 1), (7.4, 1), (11.0, 3), (11.0, 3), (22.0, 3))
"""(max power kW, phases) of the cars that come, drawn uniformly."""


def office_log(
    site: Site,
    first_day: date,
    n_days: int,
    seed: int,
    *,
    sessions_per_day: int = 12,
    declared_share: float = 0.8,
) -> list[LoggedSession]:
    """Sessions of `n_days` from `first_day` (local), one car at most per connector and day."""
    rng = random.Random(seed)
    zone = ZoneInfo(site.timezone)
    connectors = list(site.connectors())
    tokens = [f"TOK{i:03d}" for i in range(max(1, int(len(connectors) * 2.5)))]
    out: list[LoggedSession] = []
    for d in range(n_days):
        day = first_day + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        n = min(len(connectors), max(0, round(rng.gauss(sessions_per_day, 1.5))))
        for i, connector in enumerate(rng.sample(connectors, n)):
            arrival_local = datetime.combine(day, time(7, 30), zone) + timedelta(minutes=rng.uniform(0, 120))
            arrival = arrival_local.replace(second=0, microsecond=0)
            departure = (arrival + timedelta(hours=rng.uniform(7.0, 9.5))).replace(second=0, microsecond=0)
            max_power_kw, phases = rng.choice(VEHICLES)
            can_kw = session_max_power_kw(site, connector, phases, max_power_kw)
            hours = (departure - arrival).total_seconds() / 3600.0 - 0.5
            energy_kwh = round(min(rng.uniform(5.0, 30.0), 0.9 * can_kw * hours), 2)
            declares = rng.random() < declared_share
            out.append(
                LoggedSession(
                    session_id=f"{day:%Y%m%d}-{i:02d}",
                    evse_uid=connector.evse_uid,
                    connector_id=connector.connector_id,
                    token_uid=rng.choice(tokens),
                    arrival=arrival,
                    departure=departure,
                    energy_kwh=energy_kwh,
                    max_power_kw=max_power_kw,
                    vehicle_phases=phases,
                    declared_departure=(departure - timedelta(minutes=15)) if declares else None,
                    declared_energy_kwh=energy_kwh if declares else None,
                )
            )
    return sorted(out, key=lambda s: (s.arrival, s.session_id))


def office_series(site: Site, first_day: date, n_days: int, seed: int, step_s: int = 900) -> Series:
    """PV (clear sky × (1 − cloudiness of the day)), office base load, time-of-use price."""
    rng = random.Random(seed + 7919)
    zone = ZoneInfo(site.timezone)
    start = datetime.combine(first_day, time(0), zone)
    end = datetime.combine(first_day + timedelta(days=n_days), time(0), zone)
    n_steps = int((end - start).total_seconds()) // step_s
    clear = pv_clear_sky_kw(site, start.astimezone(UTC), step_s, n_steps)
    tariff = TimeOfUse()
    stamps: list[datetime] = []
    pv: list[float] = []
    base: list[float] = []
    price: list[float] = []
    cloud_of_day: dict[date, float] = {}
    for k in range(n_steps):
        t = start + timedelta(seconds=k * step_s)
        local = t.astimezone(zone)
        if local.date() not in cloud_of_day:
            cloud_of_day[local.date()] = rng.choice((0.0, 0.0, 0.1, 0.3, 0.5, 0.8))
        stamps.append(local)
        pv.append(round(clear[k] * (1.0 - cloud_of_day[local.date()]), 3))
        base.append(office_base_load_kw(local))
        price.append(tariff.price_at(local))
    return Series(tuple(stamps), tuple(pv), tuple(price), tuple(base))


def write_series_csv(series: Series, path: str) -> None:
    """Write a series in the §2 CSV form."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("timestamp,pv_kw,price_eur_per_kwh,base_load_kw\n")
        for i, t in enumerate(series.timestamps):
            pv = series.pv_kw[i] if series.pv_kw else 0.0
            price = series.price_eur_per_kwh[i] if series.price_eur_per_kwh else 0.0
            base = series.base_load_kw[i] if series.base_load_kw else 0.0
            fh.write(f"{t.isoformat()},{pv},{price},{base}\n")
