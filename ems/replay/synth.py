"""Synthetic but plausible history for a site: session logs (formats §3) and a year of series (§2).

Why: the replay, the needs estimator and the benchmarks need months of sessions and a year of
PV and prices with the habits real sites show (regular drivers, Friday dips, cloudy weeks) —
and the same file every time, so a change in a KPI means a change in the code. Everything here
is pure: the output depends only on the arguments, and the randomness comes from one
`numpy.random.Generator` seeded by `seed`.

The numbers below are assumptions, chosen to look like published workplace and public-charging
data (order of magnitude of the Caltech ACN-Data workplace sessions, French commute statistics,
the 2024 European EV fleet); they are not fitted to any one data set.

Sessions, `pattern="workplace"` (an office car park, regular commuters):
- a pool of regular drivers, `round(sessions_per_day / 0.8)` of them, each coming on a normal
  weekday with a probability that averages 0.8 (Beta(8, 2)), scaled so that `sessions_per_day`
  cars arrive on an average working day (Mon–Fri); 5% of them are one-off visitors with a fresh
  token; the cars beyond the free connectors are skipped;
- day factors: Mon–Thu 1.0, Fri 0.8, Sat–Sun 0.1 (a weekend day has ~10% of a weekday's cars);
- arrival ~ Normal(08:30, 45 min) split into the driver's habit (sd 39 min) and the day's jitter
  (sd 22 min), clipped to 06:30–11:00; stay ~ Normal(8.5 h, 1.2 h) split into habit (sd 1.0 h)
  and jitter (sd 0.66 h), clipped to 2–11 h;
- distance since the last charge: the driver's round-trip commute, 2 × LogNormal(median 20 km,
  σ 0.6) one way clipped to 2–120 km, times a daily LogNormal(0, 0.25) for errands.

Sessions, `pattern="public"` (a public car park: shoppers, residents, visitors):
- day factors: Mon–Fri 1.0, Sat 1.2, Sun 0.7; the count per day is Poisson;
- arrival from a mixture truncated to 07:00–21:00: 45% Normal(11:00, 1.5 h), 40%
  Normal(18:00, 1.25 h), 15% uniform (late-morning and early-evening peaks);
- stay ~ LogNormal(median 2 h, σ 0.6), clipped to 15 min–9 h;
- 40% of the sessions are regulars (a pool of `max(5, round(sessions_per_day))` tokens, each
  with its own arrival habit, jitter sd 30 min, and its own median stay, σ 0.5 between drivers
  and 0.3 day to day); the rest are one-off visitors;
- distance since the last charge ~ LogNormal(median 40 km, σ 0.6 between drivers, 0.3 from one
  visit to the next) (about a day's driving: a short stay is a top-up); a regular is
  picked at most once a day and a stay ends before the next day's 07:00, so one token is never
  on two connectors at once.

Both patterns:
- vehicle: battery 40/52/60/77/82/100 kWh with shares 10/15/25/25/15/10%; AC charger
  3.7/7.4/11/22 kW with shares 10/20/60/10%, single-phase for 3.7 and 7.4 kW, three-phase
  otherwise; consumption Uniform(0.17, 0.20) kWh/km, +0–10% in winter (a cosine peaking
  mid-January); a charge limit of 80% (60% of drivers) or 100%;
- energy need = distance × consumption, at least 0.5 kWh and at most what brings the battery
  from 5% to the charge limit; the state of charge on arrival follows from it
  (limit − need / capacity), so `energy_kwh ≤ capacity × (1 − SOC)` always holds;
- declarations are habits: each driver's probability of declaring is Beta-distributed with
  mean 60% (departure), 40% (energy), 30% (SOC and capacity, declared together), concentration
  1.5, so most drivers almost always or almost never declare; the declared departure is off by
  Normal(0, 30 min), rounded to 5 min and at least 15 min after arrival; the declared energy is
  off by Uniform(−20%, +20%), whole kWh; the SOC is the car's reading (rounded down, whole %);
- each car takes a free connector of the site (its habitual one for a workplace regular if
  free, otherwise one at random); if none is free it goes elsewhere: skipped and counted.
- no public holidays or vacations are modelled.

`redeclare` replaces those habits by a rule for every session (`DeclarationRule`: a departure
off by a share of the stay, energies off by a factor, a share of each missing), for measuring
what a planner loses to what drivers tell it.

Year series (`synth_year_series`), 15-minute rows over the calendar year in the site's zone:
- PV = pvlib clear sky (`ems.sites.forecasts.pv_clear_sky_kw`, one call for the whole year) ×
  (1 − cloudiness); the daily cloudiness is Beta with a seasonal mean (0.55 mid-January,
  0.25 mid-July, concentration 2) and a day-to-day persistence (Gaussian copula, AR(1) 0.6), so
  clear spells and grey weeks exist; within a day it varies by a smoothed noise whose size
  grows with broken cloud (0.5 × √(c(1 − c))), clipped to 0–0.95;
- price = `ems.sites.forecasts.TimeOfUse()` by local hour + 0.02 €/kWh × the seasonal cosine
  (dearer in winter);
- base load, for a site with a building load (`loads`): `ems.sites.forecasts.office_base_load_kw`
  × (1 + 8% smoothed noise); no base-load column otherwise (the public car park). No PV
  column for a site without PV plants. Values are rounded to 3 decimals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ems.replay.log import LoggedSession
from ems.sites.forecasts import TimeOfUse, office_base_load_kw, pv_clear_sky_kw
from ems.sites.series import COLUMNS as SERIES_COLUMNS
from ems.sites.series import Series, format_number
from grid_models.site import Site

Pattern = Literal["workplace", "public"]
PATTERNS: tuple[str, ...] = get_args(Pattern)


FloatArray = npt.NDArray[np.float64]

# ---- assumptions (see the module docstring) ------------------------------------------------------

BATTERY_KWH = (40.0, 52.0, 60.0, 77.0, 82.0, 100.0)
BATTERY_SHARES = (0.10, 0.15, 0.25, 0.25, 0.15, 0.10)
AC_POWER_KW = (3.7, 7.4, 11.0, 22.0)
AC_POWER_SHARES = (0.10, 0.20, 0.60, 0.10)
SINGLE_PHASE_MAX_KW = 7.4
CONSUMPTION_KWH_PER_KM = (0.17, 0.20)
WINTER_CONSUMPTION_EXTRA = 0.10
CHARGE_LIMIT_80_SHARE = 0.6
MIN_SOC = 0.05
MIN_ENERGY_KWH = 0.5

DECLARE_DEPARTURE_MEAN = 0.6
DECLARE_ENERGY_MEAN = 0.4
DECLARE_SOC_MEAN = 0.3
DECLARE_CONCENTRATION = 1.5
DECLARED_DEPARTURE_SD_MIN = 30.0
DECLARED_ENERGY_ERROR = 0.2

WORK_ATTENDANCE_MEAN = 0.8
WORK_VISITOR_SHARE = 0.05
WORK_DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 0.8, 0.1, 0.1)  # Monday first
WORK_ARRIVAL_MEAN_H = 8.5
WORK_ARRIVAL_HABIT_SD_H = 0.65
WORK_ARRIVAL_JITTER_SD_H = 0.375  # √(0.65² + 0.375²) ≈ 0.75 h = 45 min
WORK_ARRIVAL_RANGE_H = (6.5, 11.0)
WORK_STAY_MEAN_H = 8.5
WORK_STAY_HABIT_SD_H = 1.0
WORK_STAY_JITTER_SD_H = 0.66  # √(1.0² + 0.66²) ≈ 1.2 h
WORK_STAY_RANGE_H = (2.0, 11.0)
WORK_COMMUTE_MEDIAN_KM = 20.0
WORK_COMMUTE_SIGMA = 0.6
WORK_COMMUTE_RANGE_KM = (2.0, 120.0)
WORK_DAILY_DISTANCE_SIGMA = 0.25
WORK_SESSIONS_PER_CONNECTOR = 1.0

PUBLIC_DAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 0.7)
PUBLIC_ARRIVAL_RANGE_H = (7.0, 21.0)
PUBLIC_ARRIVAL_MIXTURE = ((0.45, 11.0, 1.5), (0.40, 18.0, 1.25))  # (share, mean h, sd h); rest uniform
PUBLIC_STAY_MEDIAN_H = 2.0
PUBLIC_STAY_SIGMA = 0.6
PUBLIC_STAY_HABIT_SIGMA = 0.5
PUBLIC_STAY_JITTER_SIGMA = 0.3
PUBLIC_STAY_RANGE_H = (0.25, 9.0)
PUBLIC_REGULAR_SHARE = 0.4
PUBLIC_ARRIVAL_JITTER_SD_H = 0.5
PUBLIC_DISTANCE_MEDIAN_KM = 40.0
PUBLIC_DISTANCE_SIGMA = 0.6
PUBLIC_DISTANCE_JITTER_SIGMA = 0.3
PUBLIC_SESSIONS_PER_CONNECTOR = 3.0

STEP_S = 900
CLOUD_MEAN_WINTER = 0.55
CLOUD_MEAN_SUMMER = 0.25
CLOUD_CONCENTRATION = 2.0
CLOUD_DAY_PERSISTENCE = 0.6
CLOUD_INTRADAY_SCALE = 0.5
CLOUD_MAX = 0.95
PRICE_SEASONAL_EUR_PER_KWH = 0.02
BASE_LOAD_NOISE = 0.08


class SynthError(ValueError):
    """Arguments `synth_*` refuses; the message names the argument."""


@dataclass(frozen=True)
class SynthLog:
    """The sessions written and how many cars found no free connector."""

    sessions: tuple[LoggedSession, ...]
    skipped: int

    @property
    def energy_kwh(self) -> float:
        return math.fsum(s.energy_kwh for s in self.sessions)


@dataclass(frozen=True)
class _Driver:
    """What stays the same from one visit to the next: the car and the habits."""

    token_uid: str
    battery_kwh: float
    max_power_kw: float
    vehicle_phases: int
    consumption_kwh_per_km: float
    charge_limit: float
    p_declare_departure: float
    p_declare_energy: float
    p_declare_soc: float
    arrival_h: float  # habit; the population draw for a one-off visitor
    stay_h: float  # workplace: mean stay; public: median stay
    distance_km: float  # workplace: round-trip commute; public: median distance between charges
    attendance: float  # workplace: relative propensity to come
    connector_index: int | None  # workplace: the connector the driver usually takes


@dataclass(frozen=True)
class _Visit:
    driver: _Driver
    arrival: datetime  # UTC
    departure: datetime  # UTC
    energy_kwh: float
    soc: float
    order: int  # tie-break: generation order


def _beta_mean(rng: np.random.Generator, mean: float, concentration: float) -> float:
    return float(rng.beta(mean * concentration, (1.0 - mean) * concentration))


def _driver(rng: np.random.Generator, token_uid: str, pattern: Pattern, n_connectors: int) -> _Driver:
    power_kw = float(rng.choice(AC_POWER_KW, p=AC_POWER_SHARES))
    if pattern == "workplace":
        arrival_h = float(rng.normal(WORK_ARRIVAL_MEAN_H, WORK_ARRIVAL_HABIT_SD_H))
        stay_h = float(rng.normal(WORK_STAY_MEAN_H, WORK_STAY_HABIT_SD_H))
        one_way_km = float(
            np.clip(
                WORK_COMMUTE_MEDIAN_KM * math.exp(rng.normal(0.0, WORK_COMMUTE_SIGMA)),
                *WORK_COMMUTE_RANGE_KM,
            )
        )
        distance_km = 2.0 * one_way_km
        connector_index: int | None = int(rng.integers(n_connectors))
    else:
        arrival_h = _public_arrival_h(rng)
        stay_h = PUBLIC_STAY_MEDIAN_H * math.exp(rng.normal(0.0, PUBLIC_STAY_HABIT_SIGMA))
        distance_km = PUBLIC_DISTANCE_MEDIAN_KM * math.exp(rng.normal(0.0, PUBLIC_DISTANCE_SIGMA))
        connector_index = None
    return _Driver(
        token_uid=token_uid,
        battery_kwh=float(rng.choice(BATTERY_KWH, p=BATTERY_SHARES)),
        max_power_kw=power_kw,
        vehicle_phases=1 if power_kw <= SINGLE_PHASE_MAX_KW else 3,
        consumption_kwh_per_km=float(rng.uniform(*CONSUMPTION_KWH_PER_KM)),
        charge_limit=0.8 if rng.random() < CHARGE_LIMIT_80_SHARE else 1.0,
        p_declare_departure=_beta_mean(rng, DECLARE_DEPARTURE_MEAN, DECLARE_CONCENTRATION),
        p_declare_energy=_beta_mean(rng, DECLARE_ENERGY_MEAN, DECLARE_CONCENTRATION),
        p_declare_soc=_beta_mean(rng, DECLARE_SOC_MEAN, DECLARE_CONCENTRATION),
        arrival_h=arrival_h,
        stay_h=stay_h,
        distance_km=distance_km,
        attendance=float(rng.beta(8.0, 2.0)),
        connector_index=connector_index,
    )


def _public_arrival_h(rng: np.random.Generator) -> float:
    """One arrival hour from the public mixture, truncated to 07:00–21:00 by redrawing."""
    low, high = PUBLIC_ARRIVAL_RANGE_H
    while True:
        u = rng.random()
        for share, mean_h, sd_h in PUBLIC_ARRIVAL_MIXTURE:
            if u < share:
                h = float(rng.normal(mean_h, sd_h))
                break
            u -= share
        else:
            h = float(rng.uniform(low, high))
        if low <= h <= high:
            return h


def _winter_factor(day: date) -> float:
    """1 + 0–10% more consumption, most in mid-January (heating, cold battery)."""
    day_of_year = np.array([float(day.timetuple().tm_yday)])
    return 1.0 + WINTER_CONSUMPTION_EXTRA * 0.5 * (1.0 + float(_season(day_of_year)[0]))


def _season(day_of_year: FloatArray) -> FloatArray:
    """The seasonal cosine of each day of the year: +1 in mid-January, −1 in mid-July."""
    out: FloatArray = np.cos(2.0 * np.pi * (day_of_year - 15.0) / 365.25)
    return out


def _visit(
    rng: np.random.Generator, driver: _Driver, pattern: Pattern, day: date, zone: ZoneInfo, order: int
) -> _Visit:
    if pattern == "workplace":
        arrival_h = float(
            np.clip(driver.arrival_h + rng.normal(0.0, WORK_ARRIVAL_JITTER_SD_H), *WORK_ARRIVAL_RANGE_H)
        )
        stay_h = float(np.clip(driver.stay_h + rng.normal(0.0, WORK_STAY_JITTER_SD_H), *WORK_STAY_RANGE_H))
        distance_km = driver.distance_km * math.exp(rng.normal(0.0, WORK_DAILY_DISTANCE_SIGMA))
    else:
        low, high = PUBLIC_ARRIVAL_RANGE_H
        arrival_h = float(np.clip(driver.arrival_h + rng.normal(0.0, PUBLIC_ARRIVAL_JITTER_SD_H), low, high))
        stay_h = float(
            np.clip(driver.stay_h * math.exp(rng.normal(0.0, PUBLIC_STAY_JITTER_SIGMA)), *PUBLIC_STAY_RANGE_H)
        )
        distance_km = driver.distance_km * math.exp(rng.normal(0.0, PUBLIC_DISTANCE_JITTER_SIGMA))
    # wall-clock arrival to the minute; the stay is elapsed time (right across a DST change)
    local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=round(arrival_h * 60))
    arrival = local.astimezone(UTC)
    departure = arrival + timedelta(minutes=max(15, round(stay_h * 60)))
    need_kwh = distance_km * driver.consumption_kwh_per_km * _winter_factor(day)
    room_kwh = driver.battery_kwh * (driver.charge_limit - MIN_SOC)
    energy_kwh = math.floor(min(max(need_kwh, MIN_ENERGY_KWH), room_kwh) * 100.0) / 100.0
    soc = driver.charge_limit - energy_kwh / driver.battery_kwh
    return _Visit(driver, arrival, departure, energy_kwh, soc, order)


def default_sessions_per_day(site: Site, pattern: Pattern) -> float:
    """About one car per connector on a normal weekday at work, three a day in a public car park."""
    n = len(site.connectors())
    return n * (WORK_SESSIONS_PER_CONNECTOR if pattern == "workplace" else PUBLIC_SESSIONS_PER_CONNECTOR)


def _check_args(site: Site, pattern: str, days: int, seed: int, sessions_per_day: float | None) -> None:
    if pattern not in PATTERNS:
        raise SynthError(f"pattern must be one of {', '.join(PATTERNS)}, got {pattern!r}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise SynthError(f"days must be a whole number of days >= 1, got {days!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SynthError(f"seed must be a whole number >= 0, got {seed!r}")
    if sessions_per_day is not None and not (math.isfinite(sessions_per_day) and sessions_per_day > 0):
        raise SynthError(f"sessions_per_day must be a positive number, got {sessions_per_day!r}")
    if not site.connectors():
        raise SynthError(f"site {site.id!r} has no connector to charge on")


def synth_log(
    site: Site,
    pattern: Pattern,
    start_date: date,
    days: int,
    seed: int,
    sessions_per_day: float | None = None,
) -> SynthLog:
    """The sessions of `days` days from `start_date` (site-local days) and the count of cars that
    found no free connector. Same arguments, same log."""
    _check_args(site, pattern, days, seed, sessions_per_day)
    zone = ZoneInfo(site.timezone)
    connectors = site.connectors()
    rate = default_sessions_per_day(site, pattern) if sessions_per_day is None else float(sessions_per_day)
    rng = np.random.default_rng(seed)

    if pattern == "workplace":
        n_regulars = max(1, round(rate / WORK_ATTENDANCE_MEAN))
        n_prefix = "TOK"
    else:
        n_regulars = max(5, round(rate))
        n_prefix = "REG"
    regulars = [_driver(rng, f"{n_prefix}{i + 1:03d}", pattern, len(connectors)) for i in range(n_regulars)]
    attendance = np.array([d.attendance for d in regulars])
    # Mon–Fri: the regulars come on average `rate × (1 − visitors)` times a day
    weekday_factor = float(np.mean(WORK_DAY_FACTOR[:5]))
    attendance_scale = rate * (1.0 - WORK_VISITOR_SHARE) / weekday_factor / attendance.sum()
    public_weights = attendance / attendance.sum()

    visits: list[_Visit] = []
    n_visitors = 0

    def visitor() -> _Driver:
        nonlocal n_visitors
        n_visitors += 1
        return _driver(rng, f"VIS{n_visitors:05d}", pattern, len(connectors))

    for offset in range(days):
        day = start_date + timedelta(days=offset)
        if pattern == "workplace":
            factor = WORK_DAY_FACTOR[day.weekday()]
            p_come = np.minimum(1.0, attendance * attendance_scale * factor)
            comes = rng.random(n_regulars) < p_come
            drivers = [d for d, c in zip(regulars, comes, strict=True) if c]
            n_visitors_day = int(rng.poisson(rate * WORK_VISITOR_SHARE * factor / weekday_factor))
            drivers += [visitor() for _ in range(n_visitors_day)]
        else:
            factor = PUBLIC_DAY_FACTOR[day.weekday()]
            n_day = int(rng.poisson(rate * factor))
            n_regular = min(n_regulars, int(rng.binomial(n_day, PUBLIC_REGULAR_SHARE)))
            picked = rng.choice(n_regulars, size=n_regular, replace=False, p=public_weights)
            drivers = [regulars[int(i)] for i in picked]
            drivers += [visitor() for _ in range(n_day - n_regular)]
        visits += [_visit(rng, d, pattern, day, zone, len(visits) + i) for i, d in enumerate(drivers)]

    visits.sort(key=lambda v: (v.arrival, v.order))
    busy_until = [datetime.min.replace(tzinfo=UTC)] * len(connectors)
    sessions: list[LoggedSession] = []
    skipped = 0
    for v in visits:
        free = [i for i, until in enumerate(busy_until) if until <= v.arrival]
        if not free:
            skipped += 1
            continue
        habit = v.driver.connector_index
        index = habit if habit in free else free[int(rng.integers(len(free)))]
        assert index is not None
        busy_until[index] = v.departure
        sessions.append(_session(rng, v, len(sessions) + 1, connectors[index].id, site, zone))
    return SynthLog(tuple(sessions), skipped)


def _session(
    rng: np.random.Generator, v: _Visit, number: int, connector: str, site: Site, zone: ZoneInfo
) -> LoggedSession:
    d = v.driver
    conn = next(c for c in site.connectors() if c.id == connector)
    declared_departure: datetime | None = None
    if rng.random() < d.p_declare_departure:
        error_min = rng.normal(0.0, DECLARED_DEPARTURE_SD_MIN)
        local = (v.departure + timedelta(minutes=float(error_min))).astimezone(zone)
        minutes = 5 * round((local.hour * 60 + local.minute + local.second / 60) / 5)
        rounded = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(minutes=minutes)
        declared_departure = max(rounded.astimezone(UTC), v.arrival + timedelta(minutes=15)).astimezone(zone)
    declared_energy: float | None = None
    if rng.random() < d.p_declare_energy:
        error = rng.uniform(-DECLARED_ENERGY_ERROR, DECLARED_ENERGY_ERROR)
        declared_energy = float(max(1, round(v.energy_kwh * (1.0 + error))))
    soc_pct: float | None = None
    capacity: float | None = None
    if rng.random() < d.p_declare_soc:
        soc_pct = float(math.floor(v.soc * 100.0 + 1e-9))
        capacity = d.battery_kwh
    return LoggedSession(
        session_id=f"s{number:05d}",
        evse_uid=conn.evse_uid,
        connector_id=conn.connector_id,
        token_uid=d.token_uid,
        arrival=v.arrival.astimezone(zone),
        departure=v.departure.astimezone(zone),
        energy_kwh=v.energy_kwh,
        max_power_kw=d.max_power_kw,
        vehicle_phases=d.vehicle_phases,
        declared_departure=declared_departure,
        declared_energy_kwh=declared_energy,
        soc_arrival_pct=soc_pct,
        battery_capacity_kwh=capacity,
    )


def synth_sessions(
    site: Site,
    pattern: Pattern,
    start_date: date,
    days: int,
    seed: int,
    sessions_per_day: float | None = None,
) -> list[LoggedSession]:
    """The session log of `synth_log`, in arrival order (the skipped cars are not in it)."""
    return list(synth_log(site, pattern, start_date, days, seed, sessions_per_day).sessions)


@dataclass(frozen=True)
class DeclarationRule:
    """Declarations drawn for every session of a log, replacing the drivers' habits: how much a
    planner loses to what drivers tell it, measured against logs of known truth (issue #16's
    harsh week: `DeclarationRule(0.2, 0.15, 0.25, 0.2)`; none at all: `DeclarationRule(0, 1, 1, 0)`).
    """

    departure_error_ratio: float = 0.0
    """The declared departure is off by Uniform(−r, +r) × the stay (at least 15 min after arrival)."""
    departure_missing: float = 0.0
    """Share of the sessions with no declared departure."""
    energy_missing: float = 0.0
    """Share of the sessions with no declared energy."""
    energy_error_ratio: float = 0.0
    """The declared energy is the true one × Uniform(1 − r, 1 + r)."""

    def problems(self) -> list[str]:
        out = []
        for name in ("departure_missing", "energy_missing"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                out.append(f"{name} must be a share between 0 and 1, got {value!r}")
        if not (math.isfinite(self.departure_error_ratio) and self.departure_error_ratio >= 0.0):
            out.append(f"departure_error_ratio must be >= 0, got {self.departure_error_ratio!r}")
        if not (math.isfinite(self.energy_error_ratio) and 0.0 <= self.energy_error_ratio < 1.0):
            out.append(f"energy_error_ratio must be >= 0 and < 1, got {self.energy_error_ratio!r}")
        return out


def redeclare(sessions: Sequence[LoggedSession], rule: DeclarationRule, seed: int) -> list[LoggedSession]:
    """`sessions` with their declarations drawn by `rule` from `seed` (same arguments, same log).
    The state of charge and battery capacity are dropped: what the planner is told is then only
    the departure and the energy the rule declares."""
    problems = rule.problems()
    if problems:
        raise SynthError("; ".join(problems))
    rng = np.random.default_rng(seed)
    out = []
    for s in sessions:
        stay_s = (s.departure - s.arrival).total_seconds()
        u_departure, u_error, u_energy, u_factor = rng.random(4)
        departure: datetime | None = None
        if u_departure >= rule.departure_missing:
            error_s = (2.0 * u_error - 1.0) * rule.departure_error_ratio * stay_s
            departure = max(s.departure + timedelta(seconds=error_s), s.arrival + timedelta(minutes=15))
            departure = departure.replace(microsecond=0)
        energy: float | None = None
        if u_energy >= rule.energy_missing:
            factor = 1.0 + (2.0 * u_factor - 1.0) * rule.energy_error_ratio
            energy = round(s.energy_kwh * factor, 2)
        out.append(
            replace(
                s,
                declared_departure=departure,
                declared_energy_kwh=energy,
                soc_arrival_pct=None,
                battery_capacity_kwh=None,
            )
        )
    return out


# ---- writers ------------------------------------------------------------------------------------


def series_csv_text(series: Series, timezone: str) -> str:
    """`series.csv` (formats §2): timestamps with the offset of `timezone`, only the columns the
    series has, values to 3 decimals."""
    zone = ZoneInfo(timezone)
    columns: list[tuple[str, Sequence[float]]] = [
        (name, values) for name in SERIES_COLUMNS if (values := getattr(series, name)) is not None
    ]
    lines = [",".join(["timestamp", *(name for name, _ in columns)])]
    for i, t in enumerate(series.timestamps):
        lines.append(",".join([t.astimezone(zone).isoformat(), *(format_number(v[i]) for _, v in columns)]))
    return "\n".join(lines) + "\n"


def write_series_csv(series: Series, path: str | Path, timezone: str) -> None:
    Path(path).write_text(series_csv_text(series, timezone), encoding="utf-8")


# ---- a year of PV, price and base load ----------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, n: int, phi: float = 0.8, length: int = 48) -> FloatArray:
    """Unit-variance noise correlated like an AR(1) with coefficient `phi` per step."""
    kernel = phi ** np.arange(length)
    kernel /= np.sqrt(np.sum(kernel**2))
    white = rng.standard_normal(n + length - 1)
    out: FloatArray = np.convolve(white, kernel, mode="valid")
    return out


def _daily_cloudiness(rng: np.random.Generator, day_of_year: FloatArray) -> FloatArray:
    """Beta-distributed cloudiness per day with a seasonal mean, persistent from day to day."""
    from scipy.special import betaincinv, ndtr

    n = len(day_of_year)
    z = np.empty(n)
    z[0] = rng.standard_normal()
    innovations = rng.standard_normal(n)
    rho = CLOUD_DAY_PERSISTENCE
    for i in range(1, n):
        z[i] = rho * z[i - 1] + math.sqrt(1.0 - rho * rho) * innovations[i]
    season = _season(day_of_year)
    mean = (
        0.5 * (CLOUD_MEAN_WINTER + CLOUD_MEAN_SUMMER) + 0.5 * (CLOUD_MEAN_WINTER - CLOUD_MEAN_SUMMER) * season
    )
    out: FloatArray = np.asarray(
        betaincinv(mean * CLOUD_CONCENTRATION, (1.0 - mean) * CLOUD_CONCENTRATION, ndtr(z)), dtype=float
    )
    return out


def synth_year_series(site: Site, year: int, seed: int) -> Series:
    """15-minute PV, price and base load over the calendar `year` in the site's zone (UTC stamps).

    One pvlib call for the whole year keeps it to about a second.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SynthError(f"seed must be a whole number >= 0, got {seed!r}")
    if not 1900 < year < 2200:
        raise SynthError(f"year must be between 1901 and 2199, got {year}")
    zone = ZoneInfo(site.timezone)
    start = datetime(year, 1, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=zone).astimezone(UTC)
    n = int((end - start).total_seconds()) // STEP_S
    stamps = tuple(start + timedelta(seconds=k * STEP_S) for k in range(n))
    local = [t.astimezone(zone) for t in stamps]
    first = date(year, 1, 1)
    day_index = np.fromiter(((t.date() - first).days for t in local), dtype=np.int64, count=n)
    n_days = (date(year + 1, 1, 1) - first).days
    day_of_year = np.arange(1, n_days + 1, dtype=float)
    rng = np.random.default_rng(seed)

    pv_kw: tuple[float, ...] | None = None
    if site.pv_plants:
        daily = _daily_cloudiness(rng, day_of_year)[day_index]
        spread = CLOUD_INTRADAY_SCALE * np.sqrt(daily * (1.0 - daily))
        cloud = np.clip(daily + spread * _smooth_noise(rng, n), 0.0, CLOUD_MAX)
        clear_kw = np.asarray(pv_clear_sky_kw(site, start, STEP_S, n), dtype=float)
        pv_kw = _rounded(clear_kw * (1.0 - cloud))

    tariff = TimeOfUse()
    season = _season(day_of_year)[day_index]
    price = np.array([tariff.price_at(t) for t in local]) + PRICE_SEASONAL_EUR_PER_KWH * season

    base_load_kw: tuple[float, ...] | None = None
    if site.loads:
        level = np.array([office_base_load_kw(t) for t in local])
        base_load_kw = _rounded(np.maximum(0.0, level * (1.0 + BASE_LOAD_NOISE * _smooth_noise(rng, n))))

    return Series(
        timestamps=stamps, pv_kw=pv_kw, price_eur_per_kwh=_rounded(price), base_load_kw=base_load_kw
    )


def _rounded(values: FloatArray) -> tuple[float, ...]:
    return tuple(float(v) + 0.0 for v in np.round(values, 3))
