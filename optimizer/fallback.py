"""The plan of last resort: never leave the site without a plan.

When the LP is infeasible, fails or runs out of time, every session is offered its maximum
power from the start of its window until its need is met, and in each step all of them are
scaled by the one largest factor that keeps every per-phase protection limit and the grid
connection; sessions then below their minimum current stop for that step. A step where PV
and base load alone break a limit gets nothing (no charging can make it safe).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from grid_models.electrical import constraints
from optimizer.plan import SessionLimits, session_limits
from optimizer.problem import Problem, aligned

FloatArray = npt.NDArray[np.float64]


def limit_matrix(problem: Problem) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(A per kW of each session on each limit row, PV and base-load A per kW, ratings)."""
    phases = {s.connector_id: s.vehicle_phases for s in problem.sessions}
    lims = constraints(problem.site, phases)
    a = np.zeros((len(lims), len(problem.sessions)))
    for r, lim in enumerate(lims):
        for i, s in enumerate(problem.sessions):
            a[r, i] = lim.connector_a_per_kw.get(s.connector_id, 0.0)
    pv_a = np.array([lim.pv_a_per_kw for lim in lims])
    base_a = np.array([lim.base_load_a_per_kw for lim in lims])
    rated = np.array([lim.rated_current_a for lim in lims])
    return a, pv_a, base_a, rated


def max_scale(
    problem: Problem,
    wanted_kw: FloatArray,
    t: int,
    pv_kw: float,
    base_kw: float,
    mats: tuple[FloatArray, ...],
) -> float:
    """Largest factor in [0, 1] on `wanted_kw` (per session) keeping every limit at step `t`;
    0 if PV and base load alone break one."""
    a, pv_a, base_a, rated = mats
    c = pv_a * pv_kw + base_a * base_kw
    if np.any(np.abs(c) > rated + 1e-9):
        return 0.0
    s = a @ wanted_kw
    alpha = 1.0
    pos = s > 1e-12
    if np.any(pos):
        alpha = min(alpha, float(np.min((rated[pos] - c[pos]) / s[pos])))
    total = float(wanted_kw.sum())
    headroom = problem.site.grid_connection.max_power_kw - base_kw + pv_kw
    if headroom < -1e-9:
        return 0.0
    if total > 1e-12:
        alpha = min(alpha, headroom / total)
    return max(0.0, min(1.0, alpha))


def proportional_power(
    problem: Problem,
    limits: list[SessionLimits] | None = None,
    per_step_cap_kw: FloatArray | None = None,
    energy_kwh: FloatArray | None = None,
) -> tuple[FloatArray, list[int]]:
    """Each session's max power in its window until its need (or `energy_kwh`) is met, scaled
    per step to fit; returns the (sessions, steps) matrix and the steps where PV/base alone
    break a limit."""
    n = problem.n_steps()
    lims = limits if limits is not None else session_limits(problem, n)
    pv = aligned(problem.pv_kw, n, hold_last=False)
    base = aligned(problem.base_load_kw, n, hold_last=False)
    mats = limit_matrix(problem)
    dt_h = problem.step_s / 3600.0
    remaining = (
        np.array([s.energy_needed_kwh for s in problem.sessions], dtype=float)
        if energy_kwh is None
        else np.asarray(energy_kwh, dtype=float)
    )
    power = np.zeros((len(lims), n))
    unsafe: list[int] = []
    pmax = np.array([lim.pmax_kw for lim in lims])
    pmin = np.array([lim.pmin_kw for lim in lims])
    for t in range(n):
        in_window = np.array([lim.start <= t < lim.end for lim in lims], dtype=bool)
        want = np.where(in_window, np.minimum(pmax, remaining / dt_h), 0.0)
        if per_step_cap_kw is not None:
            want = np.minimum(want, per_step_cap_kw[:, t])
        want[want < pmin] = 0.0  # cannot charge below the minimum current
        if not lims:
            break
        c = mats[1] * pv[t] + mats[2] * base[t]
        if np.any(np.abs(c) > mats[3] + 1e-9) or base[t] - pv[t] > problem.site.grid_connection.max_power_kw:
            unsafe.append(t)
        alpha = max_scale(problem, want, t, pv[t], base[t], mats)
        p = want * alpha
        p[p < pmin - 1e-9] = 0.0
        power[:, t] = p
        remaining = np.maximum(0.0, remaining - p * dt_h)
    return power, unsafe
