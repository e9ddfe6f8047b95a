"""Rule-based baselines on the optimizer's own `Problem` and `Plan` types, for replays that
compare the planner with what a site does without it.

Each serves the steps in order: a session draws only in its window and stops once all it
may take is delivered, its need and its extra alike. The split of an estimate into a need and a
PV-only extra (`Session.energy_extra_kwh`) is the optimizer's way of following the PV; a rule
knows no such split, just as a charger offers a car its power until the car is full. (Served
only its need, a rule was fed the EMS's just-in-time need: `fcfs` then left a car that asked
1.3 kWh and stayed 8 h alone on its charger with nothing.) Only `uncontrolled` ignores the
protections (that is what it shows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from optimizer.fallback import limit_matrix, proportional_power
from optimizer.plan import SessionLimits, build_plan, session_limits
from optimizer.problem import Plan, Problem, aligned, validate_problem

FloatArray = npt.NDArray[np.float64]
Allot = Callable[[int, FloatArray, FloatArray, float, float, FloatArray], FloatArray]
"""(step, wanted kW per session, minimum kW per session, PV kW, base kW, kWh still to deliver
per session) -> kW per session."""


def _may_take_kwh(problem: Problem) -> FloatArray:
    """What a rule serves each session: its need and its extra alike (module docstring)."""
    return np.array([s.energy_needed_kwh + s.energy_extra_kwh for s in problem.sessions], dtype=float)


def _simulate(problem: Problem, limits: list[SessionLimits], allot: Allot) -> FloatArray:
    n = problem.n_steps()
    pv = aligned(problem.pv_kw, n, hold_last=False)
    base = aligned(problem.base_load_kw, n, hold_last=False)
    dt_h = problem.step_s / 3600.0
    remaining = _may_take_kwh(problem)
    pmax = np.array([lim.pmax_kw for lim in limits])
    pmin = np.array([lim.pmin_kw for lim in limits])
    power = np.zeros((len(limits), n))
    for t in range(n):
        live = np.array([lim.start <= t < lim.end for lim in limits], dtype=bool)
        want = np.where(live, np.minimum(pmax, remaining / dt_h), 0.0)
        want[want < np.maximum(pmin, 1e-9)] = 0.0  # a vehicle below its minimum current cannot charge
        p = allot(t, want, pmin, pv[t], base[t], remaining) if want.any() else np.zeros(len(limits))
        power[:, t] = p
        remaining = np.maximum(0.0, remaining - p * dt_h)
    return power


def _plan(problem: Problem, power: FloatArray, method: str) -> Plan:
    return build_plan(problem, power, status="feasible", method=method)  # type: ignore[arg-type]


def uncontrolled(problem: Problem) -> Plan:
    """Full power from arrival until all the car may take is delivered, whatever the protections
    say."""
    validate_problem(problem)
    limits = session_limits(problem)
    return _plan(
        problem, _simulate(problem, limits, lambda t, want, pmin, pv, base, left: want), "uncontrolled"
    )


def uncontrolled_capped(problem: Problem) -> Plan:
    """Full power from arrival until all the car may take is delivered, every session scaled by
    the one factor per step that keeps every protection and the grid connection."""
    validate_problem(problem)
    power, _unsafe = proportional_power(problem, energy_kwh=_may_take_kwh(problem))
    return _plan(problem, power, "uncontrolled_capped")


def _water_fill(
    problem: Problem,
    mats: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    limits: list[SessionLimits],
    want: FloatArray,
    pv: float,
    base: float,
    total_cap_kw: float | None = None,
) -> FloatArray:
    """Equal current per phase for every session (progressive filling through the protection
    tree): raise all unfrozen sessions' currents together until a session reaches what it
    wants or a limit binds, freeze those, repeat."""
    a, pv_a, base_a, rated = mats
    v = problem.site.phase_voltage_v
    kw_per_a = np.array([v * lim.phases_drawn / 1000.0 for lim in limits])
    cap_a = np.where(kw_per_a > 0, want / np.where(kw_per_a > 0, kw_per_a, 1.0), 0.0)
    current = np.zeros(len(limits))
    free = cap_a > 1e-9
    headroom = rated - (pv_a * pv + base_a * base)
    grid = problem.site.grid_connection.max_power_kw - base + pv
    if total_cap_kw is not None:
        grid = min(grid, total_cap_kw)
    if grid < 0 or np.any(headroom < 0) or np.any(pv_a * pv + base_a * base < -rated):
        return np.zeros(len(limits))
    for _ in range(len(limits) + len(rated) + 1):
        if not free.any():
            break
        rate_rows = a[:, free] @ kw_per_a[free]
        steps = [cap_a[free] - current[free]]
        used = a @ (current * kw_per_a)
        with np.errstate(divide="ignore", invalid="ignore"):
            row_delta = np.where(rate_rows > 1e-12, (headroom - used) / rate_rows, np.inf)
        grid_rate = float(kw_per_a[free].sum())
        grid_delta = (grid - float((current * kw_per_a).sum())) / grid_rate if grid_rate > 0 else np.inf
        delta = max(0.0, min(float(np.min(steps[0])), float(np.min(row_delta)), grid_delta))
        current[free] += delta
        done = current >= cap_a - 1e-9
        binding = (headroom - a @ (current * kw_per_a)) <= 1e-9
        blocked = (a[binding] > 0).any(axis=0) if binding.any() else np.zeros(len(limits), dtype=bool)
        if grid - float((current * kw_per_a).sum()) <= 1e-9:
            blocked[:] = True
        free = free & ~done & ~blocked
    out: FloatArray = np.minimum(current * kw_per_a, want)
    return out


def equal_share(problem: Problem) -> Plan:
    """Load balancing inside the protections: an equal current for every charging session,
    filled through the protection tree phase by phase; below its minimum a session pauses."""
    validate_problem(problem)
    limits = session_limits(problem)
    mats = limit_matrix(problem)

    def allot(
        t: int, want: FloatArray, pmin: FloatArray, pv: float, base: float, left: FloatArray
    ) -> FloatArray:
        p = _water_fill(problem, mats, limits, want, pv, base)
        return _drop_below_min(problem, mats, limits, p, want, pmin, pv, base)

    return _plan(problem, _simulate(problem, limits, allot), "equal_share")


def _drop_below_min(
    problem: Problem,
    mats: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    limits: list[SessionLimits],
    p: FloatArray,
    want: FloatArray,
    pmin: FloatArray,
    pv: float,
    base: float,
    total_cap_kw: float | None = None,
) -> FloatArray:
    """Pause the sessions a share left below their minimum and share again among the rest."""
    for _ in range(len(limits)):
        low = (want > 0) & (pmin > 0) & (p < pmin - 1e-9)
        if not low.any():
            break
        # pause the lowest-share session first, then share again
        idx = int(np.argmin(np.where(low, p, np.inf)))
        want = want.copy()
        want[idx] = 0.0
        p = _water_fill(problem, mats, limits, want, pv, base, total_cap_kw)
    p[p < pmin - 1e-9] = 0.0
    return p


def pv_surplus(problem: Problem) -> Plan:
    """Charge from the PV surplus (PV minus base load) shared equally, each session at its
    minimum current when there is not enough surplus, always inside the protections."""
    validate_problem(problem)
    limits = session_limits(problem)
    mats = limit_matrix(problem)

    v = problem.site.phase_voltage_v
    # the connector's minimum current, even when the plan's rule is off: it is the trickle
    min_kw = np.array(
        [
            (lim.connector.min_current_a * v * lim.phases_drawn / 1000.0)
            if lim.connector.power_type == "AC"
            else 0.0
            for lim in limits
        ]
    )

    def allot(
        t: int, want: FloatArray, pmin: FloatArray, pv: float, base: float, left: FloatArray
    ) -> FloatArray:
        floor_kw = float(np.where(want > 0, np.minimum(min_kw, want), 0.0).sum())
        cap = max(pv - base, floor_kw)
        p = _water_fill(problem, mats, limits, want, pv, base, total_cap_kw=cap)
        return _drop_below_min(problem, mats, limits, p, want, pmin, pv, base, total_cap_kw=cap)

    return _plan(problem, _simulate(problem, limits, allot), "pv_surplus")


def _in_order(
    problem: Problem,
    mats: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    order: list[int],
    want: FloatArray,
    pmin: FloatArray,
    pv: float,
    base: float,
) -> FloatArray:
    """Each session in `order` at the most it wants that every protection (each phase) and the
    grid connection still allow after those before it; one the rest leaves below its minimum
    gets nothing. Nothing at all where PV and base load alone break a limit."""
    a, pv_a, base_a, rated = mats
    c = pv_a * pv + base_a * base
    power = np.zeros(len(want))
    if np.any(np.abs(c) > rated + 1e-9):
        return power
    headroom = rated - c
    grid_left = problem.site.grid_connection.max_power_kw - base + pv
    for i in order:
        if want[i] <= 0 or grid_left <= 1e-9:
            continue
        rows = a[:, i] > 1e-12
        room = float(np.min(headroom[rows] / a[rows, i])) if rows.any() else np.inf
        p = max(0.0, min(float(want[i]), room, grid_left))
        if p < max(pmin[i], 1e-9) - 1e-9:
            continue
        power[i] = p
        headroom -= a[:, i] * p
        grid_left -= p
    return power


def _priority(
    problem: Problem, method: str, key: Callable[[int, int, FloatArray, list[SessionLimits]], float]
) -> Plan:
    """A plan that serves sessions step by step in the order of `key(session, step, kWh left,
    limits)` (smallest first, ties in the problem's order: the order the CPO's sessions came)."""
    validate_problem(problem)
    limits = session_limits(problem)
    mats = limit_matrix(problem)

    def allot(
        t: int, want: FloatArray, pmin: FloatArray, pv: float, base: float, left: FloatArray
    ) -> FloatArray:
        order = sorted(range(len(limits)), key=lambda i: (key(i, t, left, limits), i))
        return _in_order(problem, mats, order, want, pmin, pv, base)

    return _plan(problem, _simulate(problem, limits, allot), method)


def fcfs(problem: Problem) -> Plan:
    """First come, first served within the limits: each car in arrival order at the most the
    protections and the grid allow (a car already plugged in came before one announced)."""
    now = problem.now

    def arrival_s(i: int, t: int, left: FloatArray, limits: list[SessionLimits]) -> float:
        arrival = problem.sessions[i].arrival
        return (arrival - now).total_seconds() if arrival is not None else 0.0

    return _priority(problem, "fcfs", arrival_s)


def edf(problem: Problem) -> Plan:
    """Earliest deadline first within the limits: the car leaving soonest is served first."""
    now = problem.now

    def departure_s(i: int, t: int, left: FloatArray, limits: list[SessionLimits]) -> float:
        return (problem.sessions[i].departure - now).total_seconds()

    return _priority(problem, "edf", departure_s)


def llf(problem: Problem) -> Plan:
    """Least laxity first within the limits: the car with the least slack (hours left in its
    window minus the hours its remaining need takes at full power) is served first."""
    dt_h = problem.step_s / 3600.0

    def laxity_h(i: int, t: int, left: FloatArray, limits: list[SessionLimits]) -> float:
        lim = limits[i]
        full_h = float(left[i]) / lim.pmax_kw if lim.pmax_kw > 0 else np.inf
        return (lim.end - t) * dt_h - full_h

    return _priority(problem, "llf", laxity_h)
