"""The simulated cars: each logged session on its connector and on the step grid, with its true
energy and power, checked for overlaps on a connector.

Apart from the engine: the EMS-driven loop and the perfect-foresight run both start from these
cars (`placed_cars`) and draw their energy step by step; neither needs the other's machinery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ems.ocpi.datetimes import parse_ocpi_datetime
from ems.replay.log import LoggedSession
from ems.replay.result import ReplayError
from ems.replay.series import replay_span
from grid_models.electrical import session_max_power_kw
from grid_models.site import Connector, Site

ENERGY_EPS_KWH = 1e-9
SETPOINT_EPS_KW = 1e-3
"""A car's allowed power that moves by less than this between steps has not changed."""


def count_setpoint_change(last_kw: dict[int, float], car_index: int, allowed_kw: float) -> int:
    """1 when the car's allowed power differs from its previous step's (which `last_kw` keeps)."""
    previous = last_kw.get(car_index)
    last_kw[car_index] = allowed_kw
    return int(previous is not None and abs(allowed_kw - previous) >= SETPOINT_EPS_KW)


def drawn_phases(connector: Connector, vehicle_phases: int) -> int:
    """How many grid phases a car draws on (formats §7)."""
    if connector.power_type == "DC" or len(connector.phases) == 1 or vehicle_phases == 3:
        return len(connector.phases)
    return 1


@dataclass
class Car:
    """One simulated car: its truth, where it is, and what the CPO has not PATCHed yet."""

    index: int
    log: LoggedSession
    connector: Connector
    pmax_kw: float
    phases_drawn: int
    draw_start: int
    draw_end: int
    """Steps [draw_start, draw_end) it may draw in."""
    remaining_kwh: float
    pk: int | None = None
    kwh: float = 0.0
    patched_kwh: float = 0.0
    open_start: datetime | None = None
    open_power_kw: float = 0.0
    open_energy_kwh: float = 0.0
    closed: list[dict[str, Any]] = field(default_factory=list)


def step_index(moment: datetime, start: datetime, step_s: int, up: bool) -> int:
    x = (moment - start).total_seconds() / step_s
    return math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)


def _cars(
    site: Site, sessions: Sequence[LoggedSession], start: datetime, step_s: int
) -> tuple[list[Car], dict[str, str]]:
    by_key = {(c.evse_uid, c.connector_id): c for c in site.connectors()}
    cars: list[Car] = []
    placed: dict[str, str] = {}
    for i, s in enumerate(sessions):
        connector = by_key.get((s.evse_uid, s.connector_id))
        if connector is None:
            raise ReplayError(
                f"session {s.session_id!r}: EVSE {s.evse_uid!r} connector {s.connector_id!r} is not on "
                f"site {site.id!r}"
            )
        placed[s.session_id] = connector.id
        cars.append(
            Car(
                index=i,
                log=s,
                connector=connector,
                pmax_kw=session_max_power_kw(site, connector, s.vehicle_phases, s.max_power_kw),
                phases_drawn=drawn_phases(connector, s.vehicle_phases),
                draw_start=step_index(s.arrival, start, step_s, up=True),
                draw_end=step_index(s.departure, start, step_s, up=False),
                remaining_kwh=s.energy_kwh,
            )
        )
    return cars, placed


def placed_cars(
    site: Site, sessions: Sequence[LoggedSession], step_s: int
) -> tuple[datetime, int, list[Car], dict[str, str]]:
    """The replay's span (start, number of steps) and its cars on their connectors, checked
    for overlaps: what every strategy starts from."""
    start, n_steps = replay_span(sessions, ZoneInfo(site.timezone), step_s)
    cars, placed = _cars(site, sessions, start, step_s)
    _check_overlaps(cars)
    return start, n_steps, cars, placed


def _check_overlaps(cars: Sequence[Car]) -> None:
    last: dict[str, Car] = {}
    for car in sorted(cars, key=lambda c: c.log.arrival):
        prev = last.get(car.connector.id)
        if prev is not None and car.log.arrival < prev.log.departure:
            raise ReplayError(
                f"sessions {prev.log.session_id!r} and {car.log.session_id!r} overlap on connector "
                f"{car.connector.id!r}"
            )
        last[car.connector.id] = car


def profile_mean_limit_kw(
    profile: dict[str, Any], t0: datetime, t1: datetime, voltage_v: float, phases: int
) -> float | None:
    """Mean of the limit an OCPI ChargingProfile sets over [t0, t1), in kW; None if it sets
    none there (before its start a car is unconstrained)."""
    start = parse_ocpi_datetime(profile["start_date_time"])
    a, b = (t0 - start).total_seconds(), (t1 - start).total_seconds()
    periods = sorted(profile["charging_profile_period"], key=lambda p: p["start_period"])
    if not periods or b <= periods[0]["start_period"]:
        return None
    total = 0.0
    covered = 0.0
    for i, period in enumerate(periods):
        lo = max(a, float(period["start_period"]))
        hi = min(b, float(periods[i + 1]["start_period"]) if i + 1 < len(periods) else math.inf)
        if hi > lo:
            total += float(period["limit"]) * (hi - lo)
            covered += hi - lo
    if covered <= 0:
        return None
    mean = total / covered
    kw = mean / 1000.0 if profile.get("charging_rate_unit") == "W" else mean * voltage_v * phases / 1000.0
    return max(0.0, kw)


def allowed_kw(
    car: Car, profile: dict[str, Any] | None, t0: datetime, t1: datetime, voltage_v: float
) -> float:
    """Mean power the car may draw over [t0, t1) under `profile` (None: no limit but its own)."""
    limit = car.pmax_kw
    if profile is not None:
        allowed = profile_mean_limit_kw(profile, t0, t1, voltage_v, car.phases_drawn)
        if allowed is not None:
            limit = min(limit, allowed)
    return limit


def draw(car: Car, limit_kw: float, step_h: float) -> float:
    """What the car draws over a step it may draw `limit_kw` in: up to the energy it still takes;
    its `remaining_kwh` goes down by it. The replay and the SCSP bench (`bench_cpo`) both draw
    their cars with this, so both measure the same physics."""
    p = max(0.0, min(limit_kw, car.remaining_kwh / step_h))
    if p * step_h < ENERGY_EPS_KWH:
        p = 0.0
    car.remaining_kwh = max(0.0, car.remaining_kwh - p * step_h)
    return p
