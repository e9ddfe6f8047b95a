"""The replay engine: a session log played in simulated time through the server's own planner.

The engine plays a virtual CPO against a real (in-memory) EMS: each car's Session is PUT
through the same OCPI service the API uses, the driver's declared departure and energy go
through `put_charging_preferences` only when declared, meter updates (kwh and charging
periods with POWER, ENERGY and CURRENT) are PATCHed as the car draws, and the session is
COMPLETED when it leaves. The EMS's Planner re-plans at each arrival, departure and
preference, when a car's plan window ends while it stays (`Planner.replan_due`), and when
its last plan is `replan_s` old (a schedule that tops up: after an event the next scheduled
plan comes `replan_s` later; on the June month 593 plans instead of 652, 20 s instead of 22-29,
KPIs within noise); its Dispatcher delivers profiles to an in-process sink, and
each car draws what the last profile it received allows, up to its true energy and power.
So what is measured is the EMS as deployed: its needs estimation, its forecasts, its plans.

Time is in steps aligned to the step length in the site's time zone over whole local days
(formats §6). Events inside a step are handled at the next step boundary, when they can
first change what a car draws; a car draws only in whole steps it is plugged in for.

`perfect_foresight` bypasses the EMS: one optimizer plan per local day knowing every session
of the day (arrival, true energy, true departure) and the actual series, as the bound.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session as DbSession

from ems.core.clock import ManualClock
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.dispatch.outbox import Dispatcher
from ems.drivers.view import DriverPreferences, save_preferences
from ems.ocpi.datetimes import parse_ocpi_datetime
from ems.ocpi.partners import Caller, PartnerStatus
from ems.ocpi.profiles import ProfileCallOutcome
from ems.ocpi.schemas import ChargingPreferences, Session, SessionPatch
from ems.ocpi.sessions import patch_sessions, put_charging_preferences, put_session
from ems.ocpi.tokens import new_token, token_digest
from ems.planning.planner import Planner, PlannerSettings, solve_options
from ems.replay.log import LoggedSession
from ems.sites import import_site
from ems.sites.series import Series, StepSeries, resample
from ems.store.db import transaction
from ems.store.models import ChargingSession, Partner, ProfileRequest
from grid_models.electrical import session_max_power_kw
from grid_models.site import Connector, Site
from grid_models.sitefile import site_to_dict
from optimizer.problem import Plan, Problem
from optimizer.problem import Session as OptSession
from optimizer.strategies import equal_share, perfect_foresight, pv_surplus, uncontrolled

FloatArray = npt.NDArray[np.float64]

STRATEGIES = ("optimized", "uncontrolled", "equal_share", "pv_surplus", "perfect_foresight")
BASELINES: dict[str, Callable[[Problem], Plan]] = {
    "uncontrolled": uncontrolled,
    "equal_share": equal_share,
    "pv_surplus": pv_surplus,
}
CPO_COUNTRY = "FR"
CPO_PARTY = "RPL"
LOCATION_ID = "replay"
ENERGY_EPS_KWH = 1e-9


class ReplayError(ValueError):
    """A replay that cannot run as asked (unknown connector, unknown strategy...)."""


@dataclass(frozen=True)
class ReplayConfig:
    """How to replay. `forecast_error` is the relative standard deviation of a multiplicative
    noise on the PV forecast the planner sees (0: perfect forecasts), drawn once per step from
    `seed` so re-plans see a consistent forecast."""

    strategy: str = "optimized"
    step_s: int = 900
    replan_s: int = 3600
    horizon_s: int = 36 * 3600
    min_current: bool = True
    mip_max_binaries: int | None = None
    mip_horizon_s: int | None = PlannerSettings.mip_horizon_s
    objective: str = "self_consumption"
    forecast_error: float = 0.0
    seed: int = 0


@dataclass
class ReplayResult:
    """Everything the replay measured; the KPIs and files are computed from it."""

    strategy: str
    site: Site
    step_s: int
    steps: tuple[datetime, ...]
    pv_kw: FloatArray
    base_load_kw: FloatArray
    price_eur_per_kwh: FloatArray | None
    sessions: tuple[LoggedSession, ...]
    session_connector: dict[str, str]
    power_kw: sp.csr_array
    """`power_kw[i, k]`: mean power of session i over step k. Sparse: a car draws only while
    plugged in, and a dense sessions x steps array took 0.87 GB for a year of the office."""
    plan_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def ev_kw(self) -> FloatArray:
        return np.asarray(self.power_kw.sum(axis=0), dtype=float).reshape(len(self.steps))

    def delivered_kwh(self) -> FloatArray:
        total = np.asarray(self.power_kw.sum(axis=1), dtype=float).reshape(len(self.sessions))
        return total * (self.step_s / 3600.0)


def _power_matrix(power: dict[tuple[int, int], float], n_sessions: int, n_steps: int) -> sp.csr_array:
    """The power each session drew at each step, from what the replay recorded."""
    drawn = {key: p for key, p in power.items() if p != 0.0}
    rows = np.fromiter((i for i, _ in drawn), dtype=np.int64, count=len(drawn))
    cols = np.fromiter((k for _, k in drawn), dtype=np.int64, count=len(drawn))
    data = np.fromiter(drawn.values(), dtype=float, count=len(drawn))
    return sp.csr_array((data, (rows, cols)), shape=(n_sessions, n_steps))


# ---- the span and the series ---------------------------------------------------------------


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


# ---- the simulated CPO's side ----------------------------------------------------------------


_SESSION_IDS = select(ChargingSession.partner_id, ChargingSession.session_id).where(
    ChargingSession.id == bindparam("pk")
)
_REQUESTS: Table = ProfileRequest.__table__  # type: ignore[assignment]
_LOG_REQUEST = insert(_REQUESTS)


class InProcessSink:
    """The CPO end of dispatch in replay: records each profile as the car's limit from now on.

    Like the OCPI client it logs a `ProfileRequest` (the needs estimation reads which limit
    was in force); `accept=False` is a CPO without smart charging (NOT_SUPPORTED): its cars
    draw their full power, which is what the `uncontrolled` site does.
    """

    def __init__(self, ctx: EmsContext, accept: bool = True) -> None:
        self.ctx = ctx
        self.accept = accept
        self.profiles: dict[int, dict[str, Any]] = {}
        self.calls = 0
        self._sessions: dict[int, tuple[int, str]] = {}
        """(partner, OCPI id) of each session key: they never change, so are read once."""
        self._pending: list[dict[str, Any]] = []

    def _log(self, session_pk: int, kind: str, profile: dict[str, Any] | None, answer: str) -> str:
        request_id = str(uuid.uuid4())
        self._pending.append(
            {
                "request_id": request_id,
                "session_pk": session_pk,
                "kind": kind,
                "charging_profile": profile,
                "sent_at": self.ctx.clock.now(),
                "response_result": answer,
                "result": "ACCEPTED" if answer == "ACCEPTED" else None,
            }
        )
        return request_id

    def write_pending(self, db: DbSession) -> None:
        """Store the requests logged since the last call, in the dispatcher's transaction that
        records their answers (one insert for a run's calls instead of one transaction each)."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        for row in rows:
            session_pk = row["session_pk"]
            known = self._sessions.get(session_pk)
            if known is None:
                found = db.execute(_SESSION_IDS, {"pk": session_pk}).one_or_none()
                if found is None:
                    raise ValueError(f"no session with key {session_pk}")
                known = self._sessions[session_pk] = (found[0], found[1])
            row["partner_id"], row["session_id"] = known
        db.execute(_LOG_REQUEST, rows)

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome:
        self.calls += 1
        answer = "ACCEPTED" if self.accept else "NOT_SUPPORTED"
        request_id = self._log(session_pk, "set", charging_profile, answer)
        if self.accept:
            self.profiles[session_pk] = charging_profile
        return ProfileCallOutcome(request_id, answer, 30, None)

    def clear_profile(self, session_pk: int) -> ProfileCallOutcome:
        self.calls += 1
        self.profiles.pop(session_pk, None)
        return ProfileCallOutcome(self._log(session_pk, "clear", None, "ACCEPTED"), "ACCEPTED", 30, None)


def drawn_phases(connector: Connector, vehicle_phases: int) -> int:
    """How many grid phases a car draws on (formats §7)."""
    if connector.power_type == "DC" or len(connector.phases) == 1 or vehicle_phases == 3:
        return len(connector.phases)
    return 1


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


@dataclass
class _Car:
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


def _step_index(moment: datetime, start: datetime, step_s: int, up: bool) -> int:
    x = (moment - start).total_seconds() / step_s
    return math.ceil(x - 1e-9) if up else math.floor(x + 1e-9)


def _cars(
    site: Site, sessions: Sequence[LoggedSession], start: datetime, step_s: int
) -> tuple[list[_Car], dict[str, str]]:
    by_key = {(c.evse_uid, c.connector_id): c for c in site.connectors()}
    cars: list[_Car] = []
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
            _Car(
                index=i,
                log=s,
                connector=connector,
                pmax_kw=session_max_power_kw(site, connector, s.vehicle_phases, s.max_power_kw),
                phases_drawn=drawn_phases(connector, s.vehicle_phases),
                draw_start=_step_index(s.arrival, start, step_s, up=True),
                draw_end=_step_index(s.departure, start, step_s, up=False),
                remaining_kwh=s.energy_kwh,
            )
        )
    return cars, placed


def _placed_cars(
    site: Site, sessions: Sequence[LoggedSession], step_s: int
) -> tuple[datetime, int, list[_Car], dict[str, str]]:
    """The replay's span (start, number of steps) and its cars on their connectors, checked
    for overlaps: what every strategy starts from."""
    start, n_steps = replay_span(sessions, ZoneInfo(site.timezone), step_s)
    cars, placed = _cars(site, sessions, start, step_s)
    _check_overlaps(cars)
    return start, n_steps, cars, placed


def _check_overlaps(cars: Sequence[_Car]) -> None:
    last: dict[str, _Car] = {}
    for car in sorted(cars, key=lambda c: c.log.arrival):
        prev = last.get(car.connector.id)
        if prev is not None and car.log.arrival < prev.log.departure:
            raise ReplayError(
                f"sessions {prev.log.session_id!r} and {car.log.session_id!r} overlap on connector "
                f"{car.connector.id!r}"
            )
        last[car.connector.id] = car


Progress = Callable[[int], None]


# ---- the EMS-driven strategies ---------------------------------------------------------------


class _VirtualCpo:
    """Pushes the cars' sessions to the EMS through the OCPI services, as a CPO would."""

    def __init__(self, ctx: EmsContext, caller: Caller, voltage_v: float) -> None:
        self.ctx = ctx
        self.caller = caller
        self.voltage_v = voltage_v

    def _token(self, car: _Car) -> dict[str, Any]:
        return {
            "country_code": CPO_COUNTRY,
            "party_id": CPO_PARTY,
            "uid": car.log.token_uid[:36],
            "type": "RFID",
            "contract_id": car.log.token_uid[:36],
        }

    def arrive(self, car: _Car, now: datetime) -> None:
        body = Session.model_validate(
            {
                "country_code": CPO_COUNTRY,
                "party_id": CPO_PARTY,
                "id": car.log.session_id,
                "start_date_time": car.log.arrival,
                "kwh": 0.0,
                "cdr_token": self._token(car),
                "auth_method": "WHITELIST",
                "location_id": LOCATION_ID,
                "evse_uid": car.log.evse_uid,
                "connector_id": car.log.connector_id,
                "currency": "EUR",
                "status": "ACTIVE",
                "last_updated": now,
            }
        )
        put_session(self.ctx, self.caller, CPO_COUNTRY, CPO_PARTY, car.log.session_id, body)
        with self.ctx.db() as db:
            car.pk = db.scalar(
                select(ChargingSession.id).where(
                    ChargingSession.partner_id == self.caller.partner_id,
                    ChargingSession.session_id == car.log.session_id,
                )
            )
        if (
            car.log.soc_arrival_pct is not None
            and car.log.declared_departure is not None
            and car.pk is not None
        ):
            # The OCPI preferences carry no state of charge: drivers state it in the widget.
            save_preferences(
                self.ctx,
                car.pk,
                DriverPreferences(
                    departure=car.log.declared_departure,
                    soc_arrival_pct=car.log.soc_arrival_pct,
                    energy_need_kwh=car.log.declared_energy_kwh,
                    battery_capacity_kwh=car.log.battery_capacity_kwh,
                ),
            )
        elif car.log.declared_departure is not None or car.log.declared_energy_kwh is not None:
            prefs = ChargingPreferences.model_validate(
                {
                    "profile_type": "REGULAR",
                    "departure_time": car.log.declared_departure,
                    "energy_need": car.log.declared_energy_kwh,
                }
            )
            put_charging_preferences(self.ctx, self.caller, CPO_COUNTRY, CPO_PARTY, car.log.session_id, prefs)

    def draw(self, car: _Car, t0: datetime, power_kw: float, step_h: float) -> None:
        """Meter the step: a new charging period whenever the power changes."""
        if car.open_start is None or abs(power_kw - car.open_power_kw) > 1e-9:
            self._close_period(car, t0)
            car.open_start, car.open_power_kw = t0, power_kw
        car.open_energy_kwh += power_kw * step_h
        car.kwh += power_kw * step_h

    def _close_period(self, car: _Car, end: datetime) -> None:
        if car.open_start is None or end <= car.open_start:
            return
        hours = (end - car.open_start).total_seconds() / 3600.0
        power = car.open_energy_kwh / hours
        current = power * 1000.0 / (self.voltage_v * car.phases_drawn)
        car.closed.append(
            {
                "start_date_time": car.open_start,
                "dimensions": [
                    {"type": "ENERGY", "volume": round(car.open_energy_kwh, 6)},
                    {"type": "POWER", "volume": round(power, 6)},
                    {"type": "CURRENT", "volume": round(current, 4)},
                ],
            }
        )
        car.open_start, car.open_energy_kwh = None, 0.0

    def _update(self, car: _Car, now: datetime) -> tuple[str, SessionPatch] | None:
        """The PATCH of what changed since the last push: kwh and the periods closed since.

        The running period is cut here and goes on in a new one, as a CPO's periodic meter
        update does: without it a car drawing a steady power would never show the EMS how
        many phases it uses or whether it limits itself.
        """
        if car.open_start is not None and car.open_start < now:
            power = car.open_power_kw
            self._close_period(car, now)
            car.open_start, car.open_power_kw = now, power
        if car.pk is None or (not car.closed and abs(car.kwh - car.patched_kwh) < 1e-9):
            return None
        body: dict[str, Any] = {"kwh": round(car.kwh, 6), "last_updated": now}
        if car.closed:
            body["charging_periods"] = car.closed
        car.closed = []
        car.patched_kwh = car.kwh
        return car.log.session_id, SessionPatch.model_validate(body)

    def _push(self, patches: list[tuple[str, SessionPatch]]) -> None:
        """One simulated step's PATCHes, as the OCPI service applies them, in one transaction."""
        patch_sessions(self.ctx, self.caller, CPO_COUNTRY, CPO_PARTY, patches)

    def flush(self, cars: Iterable[_Car], now: datetime) -> None:
        """Meter updates of every car that drew since its last one."""
        self._push([update for car in cars if (update := self._update(car, now)) is not None])

    def leave(self, leaving: Iterable[tuple[_Car, datetime]], now: datetime) -> None:
        """Cars that left: each one's last meter update, then COMPLETED."""
        patches: list[tuple[str, SessionPatch]] = []
        for car, draw_end_at in leaving:
            self._close_period(car, draw_end_at)
            update = self._update(car, now)
            if update is not None:
                patches.append(update)
            body = SessionPatch.model_validate(
                {
                    "status": "COMPLETED",
                    "end_date_time": max(car.log.departure, car.log.arrival),
                    "kwh": round(car.kwh, 6),
                    "last_updated": now,
                }
            )
            patches.append((car.log.session_id, body))
        self._push(patches)


def _ems(site: Site, start: datetime) -> tuple[EmsContext, Caller]:
    """A fresh in-memory EMS on a simulated clock, the site stored, one registered CPO."""
    ctx = EmsContext.create(Settings(database_url="sqlite://", sqlite_synchronous="OFF"))
    ctx.clock = ManualClock(start)
    import_site(ctx, site_to_dict(site))
    with transaction(ctx.db) as db:
        partner = Partner(
            country_code=CPO_COUNTRY,
            party_id=CPO_PARTY,
            role="CPO",
            status=PartnerStatus.REGISTERED,
            roles=[
                {
                    "role": "CPO",
                    "country_code": CPO_COUNTRY,
                    "party_id": CPO_PARTY,
                    "business_details": {"name": "Replay CPO"},
                }
            ],
            endpoints=[],
            version="2.2.1",
            token_incoming=new_token(),
            token_incoming_sha256="",
            token_outgoing=new_token(),
        )
        partner.token_incoming_sha256 = token_digest(partner.token_incoming or "")
        db.add(partner)
        db.flush()
        caller = Caller.of(partner, with_token_a=False)
    return ctx, caller


def _replay_ems(
    site: Site,
    sessions: Sequence[LoggedSession],
    series: Series | None,
    config: ReplayConfig,
    progress: Progress | None,
) -> ReplayResult:
    wall0 = time.perf_counter()
    step_s = config.step_s
    step_h = step_s / 3600.0
    start, n_steps, cars, placed = _placed_cars(site, sessions, step_s)
    source = ReplaySeriesSource(
        series, start, step_s, n_steps + config.horizon_s // step_s + 1, config.forecast_error, config.seed
    )
    ctx, caller = _ems(site, start)
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    sink = InProcessSink(ctx, accept=config.strategy != "uncontrolled")
    # Simulated time does not refill a token bucket that runs on real time: no rate limit here.
    dispatcher = Dispatcher(ctx, sink, rate_per_s=1e9, burst=1_000_000, concurrency=1)
    planner = Planner(
        ctx,
        dispatcher,
        series=source,
        settings=PlannerSettings(
            step_s=step_s,
            horizon_s=config.horizon_s,
            objective=config.objective,
            min_current=config.min_current,
            mip_max_binaries=config.mip_max_binaries,
            mip_horizon_s=config.mip_horizon_s,
        ),
        solve=BASELINES.get(config.strategy),
    )
    cpo = _VirtualCpo(ctx, caller, site.phase_voltage_v)
    arrivals: dict[int, list[_Car]] = {}
    leavings: dict[int, list[_Car]] = {}
    for car in cars:
        arrivals.setdefault(_step_index(car.log.arrival, start, step_s, up=True), []).append(car)
        leavings.setdefault(_step_index(car.log.departure, start, step_s, up=True), []).append(car)
    power: dict[tuple[int, int], float] = {}  # (car, step): kW
    plugged: dict[int, _Car] = {}
    plan_ms: list[float] = []
    replan_every = max(1, config.replan_s // step_s)
    last_plan_k = -replan_every
    site_id = site.id
    try:
        for k in range(n_steps + 1):
            t = start + timedelta(seconds=k * step_s)
            clock.set(t)
            triggers: list[str] = []
            leaving = leavings.get(k, [])
            cpo.leave(
                (
                    (car, min(start + timedelta(seconds=max(car.draw_start, car.draw_end) * step_s), t))
                    for car in leaving
                ),
                t,
            )
            for car in leaving:
                plugged.pop(car.index, None)
                triggers.append("session_STOPPED")
            for car in arrivals.get(k, []):
                cpo.arrive(car, t)
                plugged[car.index] = car
                triggers.append("session_STARTED")
            if plugged and planner.replan_due(site_id, t):
                triggers.append("window_end")
            scheduled = k - last_plan_k >= replan_every and bool(plugged)
            if (triggers or scheduled) and k < n_steps:
                last_plan_k = k
                cpo.flush(plugged.values(), t)
                t_plan = time.perf_counter()
                planner.plan_site(site_id, "+".join(sorted(set(triggers))) or "schedule", t)
                dispatcher.run_once()
                plan_ms.append((time.perf_counter() - t_plan) * 1000.0)
            if k == n_steps:
                break
            t1 = t + timedelta(seconds=step_s)
            for car in plugged.values():
                if not car.draw_start <= k < car.draw_end:
                    continue
                limit = car.pmax_kw
                profile = sink.profiles.get(car.pk) if car.pk is not None else None
                if profile is not None:
                    allowed = profile_mean_limit_kw(profile, t, t1, site.phase_voltage_v, car.phases_drawn)
                    if allowed is not None:
                        limit = min(limit, allowed)
                p = max(0.0, min(limit, car.remaining_kwh / step_h))
                if p * step_h < ENERGY_EPS_KWH:
                    p = 0.0
                car.remaining_kwh = max(0.0, car.remaining_kwh - p * step_h)
                power[car.index, k] = p
                cpo.draw(car, t, p, step_h)
            if progress is not None:
                progress(1)
    finally:
        ctx.close()
    return _result(config, site, start, n_steps, source.steps, sessions, placed, power, plan_ms, wall0)


def _result(
    config: ReplayConfig,
    site: Site,
    start: datetime,
    n_steps: int,
    actual: StepSeries,
    sessions: Sequence[LoggedSession],
    placed: dict[str, str],
    power: dict[tuple[int, int], float],
    plan_ms: list[float],
    wall0: float,
) -> ReplayResult:
    """What a replay measured, on the series that really happened over its `n_steps`."""
    step_s = actual.step_s
    return ReplayResult(
        strategy=config.strategy,
        site=site,
        step_s=step_s,
        steps=tuple(start + timedelta(seconds=k * step_s) for k in range(n_steps)),
        pv_kw=np.asarray(actual.pv_kw[:n_steps], dtype=float),
        base_load_kw=np.asarray(actual.base_load_kw[:n_steps], dtype=float),
        price_eur_per_kwh=None
        if actual.price_eur_per_kwh is None
        else np.asarray(actual.price_eur_per_kwh[:n_steps], dtype=float),
        sessions=tuple(sessions),
        session_connector=placed,
        power_kw=_power_matrix(power, len(sessions), n_steps),
        plan_ms=plan_ms,
        wall_s=time.perf_counter() - wall0,
    )


# ---- perfect foresight -----------------------------------------------------------------------


def _day_bounds(start: datetime, n_steps: int, step_s: int, zone: ZoneInfo) -> list[int]:
    """Step indices where a local day starts (and the end)."""
    bounds = [0]
    for k in range(1, n_steps):
        t = start + timedelta(seconds=k * step_s)
        if t.astimezone(zone).date() != (t - timedelta(seconds=step_s)).astimezone(zone).date():
            bounds.append(k)
    bounds.append(n_steps)
    return bounds


def _replay_foresight(
    site: Site,
    sessions: Sequence[LoggedSession],
    series: Series | None,
    config: ReplayConfig,
    progress: Progress | None,
) -> ReplayResult:
    """One plan per local day with the day's sessions known in advance; a connector used twice
    in a day starts a new plan at the second arrival (a problem holds one session per connector),
    with what is still plugged carried over at its remaining true energy."""
    wall0 = time.perf_counter()
    zone = ZoneInfo(site.timezone)
    step_s = config.step_s
    step_h = step_s / 3600.0
    start, n_steps, cars, placed = _placed_cars(site, sessions, step_s)
    actual = actual_steps(series, start, step_s, n_steps + config.horizon_s // step_s + 1)
    power: dict[tuple[int, int], float] = {}  # (car, step): kW
    plan_ms: list[float] = []
    bounds = _day_bounds(start, n_steps, step_s, zone)
    t = 0
    day = 0
    while t < n_steps:
        while bounds[day + 1] <= t:
            day += 1
        day_end = bounds[day + 1]
        candidates = sorted(
            (
                c
                for c in cars
                if c.draw_start < day_end
                and c.draw_end > max(t, c.draw_start)
                and c.remaining_kwh > ENERGY_EPS_KWH
            ),
            key=lambda c: (max(c.draw_start, t), c.index),
        )
        chunk_end = day_end
        chosen: dict[str, _Car] = {}
        for car in candidates:
            if car.connector.id in chosen:
                chunk_end = min(chunk_end, max(car.draw_start, t + 1))
            else:
                chosen[car.connector.id] = car
        chosen_cars = [c for c in chosen.values() if c.draw_start < chunk_end]
        if chosen_cars:
            now = start + timedelta(seconds=t * step_s)
            n_plan = max(c.draw_end for c in chosen_cars) - t + 1
            problem = Problem(
                site=site,
                now=now,
                sessions=tuple(
                    OptSession(
                        session_id=c.log.session_id,
                        connector_id=c.connector.id,
                        energy_needed_kwh=c.remaining_kwh,
                        departure=start + timedelta(seconds=max(c.draw_end, t) * step_s),
                        vehicle_phases=c.log.vehicle_phases,
                        max_power_kw=c.pmax_kw,
                        arrival=None
                        if c.draw_start <= t
                        else start + timedelta(seconds=c.draw_start * step_s),
                    )
                    for c in chosen_cars
                ),
                step_s=step_s,
                pv_kw=actual.pv_kw[t : t + n_plan],
                base_load_kw=actual.base_load_kw[t : t + n_plan],
                price_eur_per_kwh=None
                if actual.price_eur_per_kwh is None
                else actual.price_eur_per_kwh[t : t + n_plan],
                objective=config.objective,  # type: ignore[arg-type]
                # one plan drawn whole, never re-planned: exact over all of it
                options=solve_options(config.min_current, config.horizon_s, config.mip_max_binaries, None),
            )
            t_plan = time.perf_counter()
            plan = perfect_foresight(problem)
            plan_ms.append((time.perf_counter() - t_plan) * 1000.0)
            for c in chosen_cars:
                planned = plan.sessions[c.log.session_id].power_kw
                for j, p_plan in enumerate(planned):
                    k = t + j
                    if k >= chunk_end:
                        break
                    if not c.draw_start <= k < c.draw_end:
                        continue
                    p = max(0.0, min(float(p_plan), c.pmax_kw, c.remaining_kwh / step_h))
                    c.remaining_kwh = max(0.0, c.remaining_kwh - p * step_h)
                    power[c.index, k] = p
        if progress is not None:
            progress(chunk_end - t)
        t = chunk_end
    return _result(config, site, start, n_steps, actual, sessions, placed, power, plan_ms, wall0)


def replay(
    site: Site,
    sessions: Sequence[LoggedSession],
    series: Series | None = None,
    config: ReplayConfig | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay `sessions` on `site` with `config.strategy`; `progress(n)` after n steps done."""
    config = config or ReplayConfig()
    if config.strategy not in STRATEGIES:
        raise ReplayError(f"unknown strategy {config.strategy!r} (expected one of {', '.join(STRATEGIES)})")
    if config.step_s <= 0 or 86400 % config.step_s:
        raise ReplayError(f"step of {config.step_s} s does not divide a day")
    if not sessions:
        raise ReplayError("no sessions to replay")
    if config.strategy == "perfect_foresight":
        return _replay_foresight(site, sessions, series, config, progress)
    return _replay_ems(site, sessions, series, config, progress)


def n_replay_steps(sessions: Sequence[LoggedSession], site: Site, step_s: int) -> int:
    """How many steps a replay of `sessions` covers (for progress bars)."""
    return replay_span(sessions, ZoneInfo(site.timezone), step_s)[1]
