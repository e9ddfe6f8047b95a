"""From a power matrix to a `Plan`: windows and limits of each session, OCPI charging
profiles, totals. Shared by the optimizer, the fallback and every baseline strategy, so they
all report the same way."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from grid_models.electrical import connector_phase_a_per_kw, session_max_power_kw
from grid_models.site import Connector, Phase
from optimizer.problem import (
    ChargingProfile,
    ChargingProfilePeriod,
    Method,
    Plan,
    Problem,
    SessionPlan,
    Status,
    aligned,
    connectors_by_id,
)

FloatArray = npt.NDArray[np.float64]

ROUNDING_EPS = 1e-6
"""Slack before rounding a limit down, so 5.9999999 A planned as 6 A stays 6.0."""


@dataclass(frozen=True)
class SessionLimits:
    """What the maths needs of one session: its window in steps and its power range."""

    index: int
    connector: Connector
    phase_a_per_kw: dict[Phase, float]
    phases_drawn: int
    pmax_kw: float
    pmin_kw: float
    """Power at the minimum current (0 when the rule is off or for DC)."""
    start: int
    end: int
    """Steps `start <= t < end` are in the charging window."""


_LimitKey = tuple[str, int, float | None, float | None, bool]


def session_limits(
    problem: Problem,
    n_steps: int | None = None,
    cache: dict[_LimitKey, tuple[Connector, dict[Phase, float], float, float]] | None = None,
) -> list[SessionLimits]:
    """The window and power range of every session. `cache` (kept by the caller for one site)
    remembers each connector's coefficients and power range between calls."""
    n = problem.n_steps() if n_steps is None else n_steps
    conns: dict[str, Connector] | None = None
    v = problem.site.phase_voltage_v
    memo = cache if cache is not None else {}
    out = []
    for i, s in enumerate(problem.sessions):
        key = (s.connector_id, s.vehicle_phases, s.max_power_kw, s.min_current_a, problem.options.min_current)
        hit = memo.get(key)
        if hit is None:
            if conns is None:
                conns = connectors_by_id(problem.site)
            c = conns[s.connector_id]
            coef = connector_phase_a_per_kw(problem.site, c, s.vehicle_phases)
            pmax = session_max_power_kw(problem.site, c, s.vehicle_phases, s.max_power_kw)
            min_a = c.min_current_a if s.min_current_a is None else s.min_current_a
            ac = problem.options.min_current and c.power_type == "AC"
            hit = (c, coef, pmax, min_a * v * len(coef) / 1000.0 if ac else 0.0)
            memo[key] = hit
        c, coef, pmax, pmin = hit
        start = 0
        if s.arrival is not None and s.arrival > problem.now:
            start = math.ceil((s.arrival - problem.now).total_seconds() / problem.step_s - 1e-9)
        end = math.floor((s.departure - problem.now).total_seconds() / problem.step_s + 1e-9)
        start, end = min(max(start, 0), n), min(max(end, 0), n)
        out.append(SessionLimits(i, c, coef, len(coef), pmax, pmin, start, max(start, end)))
    return out


def _floor_tenth(value: float) -> float:
    return math.floor(value * 10.0 + ROUNDING_EPS) / 10.0


def _per_kw(lim: SessionLimits, voltage_v: float) -> tuple[Literal["A", "W"], float]:
    if lim.connector.power_type == "DC":
        return "W", 1000.0
    return "A", 1000.0 / (voltage_v * lim.phases_drawn)


def _floor_tenths(power_kw: FloatArray, per_kw: FloatArray | float) -> FloatArray:
    """`_floor_tenth(max(0, p) * per_kw)` elementwise (the same float operations)."""
    out: FloatArray = np.floor(np.maximum(0.0, power_kw) * per_kw * 10.0 + ROUNDING_EPS) / 10.0
    return out


def _profile(
    start: datetime,
    step_s: int,
    unit: Literal["A", "W"],
    limits: list[float],
    changes: list[int],
    interned: dict[tuple[int, float], ChargingProfilePeriod] | None = None,
) -> ChargingProfile:
    if interned is None:
        periods = [ChargingProfilePeriod(start_period=k * step_s, limit=limits[k]) for k in changes]
    else:
        # periods are immutable: one object per (start, limit) for all sessions of a plan
        periods = []
        for k in changes:
            key = (k, limits[k])
            per = interned.get(key)
            if per is None:
                per = interned[key] = ChargingProfilePeriod(start_period=k * step_s, limit=limits[k])
            periods.append(per)
    if periods and periods[-1].limit != 0.0:
        periods.append(ChargingProfilePeriod(start_period=len(limits) * step_s, limit=0.0))
    if not periods:
        periods.append(ChargingProfilePeriod(start_period=0, limit=0.0))
    return ChargingProfile(start, unit, tuple(periods))


def charging_profile(
    start: datetime, step_s: int, power_kw: Sequence[float], lim: SessionLimits, voltage_v: float
) -> ChargingProfile:
    """The OCPI ChargingProfile of one session's plan.

    AC: amps per phase on the phases the vehicle draws, DC: watts. Limits are rounded DOWN to
    0.1 so the profile never allows more than the plan; consecutive equal limits are merged;
    since the last period's limit holds after it (OCPI), a plan that stops ends with a 0 period.
    """
    unit, per_kw = _per_kw(lim, voltage_v)
    limits = _floor_tenths(np.asarray(power_kw, dtype=float), per_kw)
    changes = [k for k in range(limits.size) if k == 0 or limits[k] != limits[k - 1]]
    return _profile(start, step_s, unit, limits.tolist(), changes)


def _profiles(
    start: datetime, step_s: int, power: FloatArray, limits: list[SessionLimits], voltage_v: float
) -> list[ChargingProfile]:
    """`charging_profile` of every row of `power` at once (numpy over the whole matrix)."""
    if not limits:
        return []
    units = [_per_kw(lim, voltage_v) for lim in limits]
    per_kw = np.array([u[1] for u in units])
    lim_mat = _floor_tenths(power, per_kw[:, None])
    change = np.ones(lim_mat.shape, dtype=bool)
    change[:, 1:] = lim_mat[:, 1:] != lim_mat[:, :-1]
    rows, cols = np.nonzero(change)
    bounds = np.searchsorted(rows, np.arange(len(limits) + 1)).tolist()
    cols_l = cols.tolist()
    mat_l = lim_mat.tolist()
    interned: dict[tuple[int, float], ChargingProfilePeriod] = {}
    return [
        _profile(start, step_s, units[i][0], mat_l[i], cols_l[bounds[i] : bounds[i + 1]], interned)
        for i in range(len(limits))
    ]


def build_plan(
    problem: Problem,
    power_kw: FloatArray,
    *,
    status: Status,
    method: Method,
    gap: float | None = None,
    message: str | None = None,
    build_ms: float = 0.0,
    solve_ms: float = 0.0,
    stage_values: Sequence[float] = (),
    limits: list[SessionLimits] | None = None,
) -> Plan:
    """The plan of `power_kw[i, t]` (session i of `problem.sessions`, step t) with its totals:
    grid import `max(0, EV + base − PV)`, PV used `min(PV, EV + base)`, cost and peak."""
    n = problem.n_steps()
    steps = problem.steps()
    pv = np.array(aligned(problem.pv_kw, n, hold_last=False))
    base = np.array(aligned(problem.base_load_kw, n, hold_last=False))
    price = (
        None if problem.price_eur_per_kwh is None else np.array(aligned(problem.price_eur_per_kwh, n, True))
    )
    dt_h = problem.step_s / 3600.0
    if limits is None:
        limits = session_limits(problem, n)
    power = np.zeros((len(problem.sessions), n)) if power_kw.size == 0 else power_kw[:, :n]
    ev = power.sum(axis=0) if len(problem.sessions) else np.zeros(n)
    grid = np.maximum(0.0, ev + base - pv)
    pv_used = np.minimum(pv, ev + base)
    sessions: dict[str, SessionPlan] = {}
    weighted_unmet = 0.0
    total_unmet = 0.0
    profiles = _profiles(steps[0], problem.step_s, power, limits, problem.site.phase_voltage_v)
    for s, lim in zip(problem.sessions, limits, strict=True):
        row = power[lim.index]
        planned = float(row.sum() * dt_h)
        unmet = max(0.0, s.energy_needed_kwh - planned)
        total_unmet += unmet
        weighted_unmet += s.priority * unmet
        sessions[s.session_id] = SessionPlan(
            session_id=s.session_id,
            connector_id=s.connector_id,
            evse_uid=lim.connector.evse_uid,
            ocpi_connector_id=lim.connector.connector_id,
            vehicle_phases=s.vehicle_phases,
            power_kw=tuple(row.tolist()),
            energy_needed_kwh=s.energy_needed_kwh,
            energy_planned_kwh=planned,
            unmet_kwh=max(0.0, s.energy_needed_kwh - planned),
            charging_profile=profiles[lim.index],
        )
    weights = problem.objective_weights()
    return Plan(
        status=status,
        method=method,
        objective="+".join(weights) if len(weights) > 1 else next(iter(weights), "self_consumption"),
        step_s=problem.step_s,
        steps=steps,
        sessions=sessions,
        grid_import_kw=tuple(grid.tolist()),
        pv_used_kw=tuple(pv_used.tolist()),
        pv_kw=tuple(pv.tolist()),
        base_load_kw=tuple(base.tolist()),
        price_eur_per_kwh=None if price is None else tuple(price.tolist()),
        grid_import_kwh=float(grid.sum() * dt_h),
        unmet_kwh=total_unmet,
        weighted_unmet_kwh=weighted_unmet,
        cost_eur=None if price is None else float((grid * price).sum() * dt_h),
        grid_peak_kw=float(grid.max()) if grid.size else 0.0,
        gap=gap,
        message=message,
        build_ms=build_ms,
        solve_ms=solve_ms,
        stage_values=tuple(stage_values),
    )
