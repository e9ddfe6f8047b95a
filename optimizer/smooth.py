"""The last tie-break: among the plans equal to the solved one in every stage, the one whose
per-car set-points change least.

The staged LP (`optimizer.lp`) returns a vertex: where several cars share the PV, which car
takes which kilowatt is a tie the simplex breaks arbitrarily, and the profiles then flicker
(0 → 11 kW → 0 within the hour; chargers, cars and CPOs dislike it). This pass keeps
everything the stages optimised and moves power between cars only:

    min  Σ_i Σ_t (up[i,t] + down[i,t])
    s.t. p[i,t] − p[i,t−1] − up[i,t] + down[i,t] = 0       t−1, t in the car's window
         Σ_t p[i,t]  = Σ_t P[i,t]                            each car's energy (stages 1, 3, 4
                                                             and the extra energy of stage 2)
         Σ_i p[i,t]  = Σ_i P[i,t]                            the EV total of every step
                                                             (grid import, export, peak and
                                                             earliness: stages 2, 5 and 6)
         −I_r − c_r[t] <= Σ_i a[r,i]·p[i,t] <= I_r − c_r[t]  every protection and phase
         p[i,t] in [pmin_i, pmax_i] where P[i,t] > 0, 0 where P[i,t] = 0 under the minimum-
         current rule (its on/off decisions are kept), [0, pmax_i] in the window without it

`P` is the solved plan; every stage value is therefore unchanged exactly, not within a
tolerance. The total-variation objective is the LP stand-in for the count of changes; its
vertices are piecewise constant. Pure and deterministic, like the rest of the optimizer.

Under the minimum-current rule `optimizer.solve` does not run this pass on the plan: which cars
are on is where the flicker is, and that is chosen before. The rounding
(`optimizer.rounding._round_smoothly`) runs this pass on its relaxation, blind to the rule,
rounds that plan in runs (`_round_runs`), and keeps the pattern only where no stage is worse
than the vertex's. Measured on 10 cars of the office over a June day (48 steps, seeds 10–19,
rule on): on/off switches 792 → 541 and profile periods 1028 → 966; with the rule off this pass
takes seed 10's day from 121 periods to 70. A MIP over the decisions with this objective
reached fewer changes but took 1.7 s a plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from grid_models.site import Site
from optimizer.lp_model import site_constraints
from optimizer.plan import SessionLimits

FloatArray = npt.NDArray[np.float64]
INF = highspy.kHighsInf
ON_KW = 1e-9
"""Planned power above this is "on" for the minimum-current rule."""
MAX_CELLS = 1800
"""Cars × steps smoothed at most (the office's 12 cars over 36 h, 1728, are smoothed whole).
The pass is a degenerate LP whose simplex time grows much faster than its size: 9 ms for 10
cars × 48 steps, but 8.9 s for 200 × 96 (`benchmarks.optimizer`'s depot), 35 times the 0.25 s
plan it smoothed; 45 cars × 99 steps (`benchmarks.group`'s sites) ~225 ms each. With this cap:
the first 9 steps at N = 200, the first 40 for 45 cars."""
MIN_GAIN = 1e-6
"""A smoothed plan is kept only when it cuts the total variation by more than this (kW)."""


def total_variation_kw(power_kw: FloatArray, limits: Sequence[SessionLimits]) -> float:
    """Σ over cars and consecutive steps of their window of |Δp|: what `least_changes` lowers."""
    total = 0.0
    for lim in limits:
        row = power_kw[lim.index, lim.start : lim.end]
        total += float(np.abs(np.diff(row)).sum())
    return total


def least_changes(
    site: Site,
    power_kw: FloatArray,
    limits: Sequence[SessionLimits],
    modes: Sequence[int],
    pv_kw: FloatArray,
    base_load_kw: FloatArray,
    time_limit_s: float,
    max_cells: int = MAX_CELLS,
) -> FloatArray | None:
    """The plan `power_kw[i, t]` with its power moved between cars so their set-points change
    least (see the module docstring); None when there is nothing to smooth or HiGHS did not
    find the plan optimal (the caller keeps the plan it has).

    `modes[i]`: the vehicle-phase mode of session i's row in `site_constraints`; `pv_kw`
    and `base_load_kw`: the series the plan was solved against, one value per step. Over more
    than `max_cells` cars × steps only the first `max_cells // cars` steps are smoothed, the
    step after them held as planned (so each car's energy over them, and every stage value,
    is kept); a re-plan comes before the later ones run.
    """
    n_sessions, n_steps = power_kw.shape
    if n_sessions < 2 or n_steps < 2:
        return None  # one car alone: its power is the EV total of each step
    whole_kw = power_kw
    ahead = max(2, max_cells // n_sessions)
    held = ahead < n_steps
    if held:  # the first `ahead` steps, and the step after them held as planned
        n_steps = ahead + 1
        power_kw, pv_kw, base_load_kw = power_kw[:, :n_steps], pv_kw[:n_steps], base_load_kw[:n_steps]
    lo = np.zeros((n_sessions, n_steps))
    hi = np.zeros((n_sessions, n_steps))
    for lim in limits:
        i, a, b = lim.index, lim.start, min(lim.end, n_steps)
        planned = power_kw[i, a:b]
        pmax = np.maximum(lim.pmax_kw, planned)
        if lim.pmin_kw > 0:
            kept = planned > ON_KW
            hi[i, a:b] = np.where(kept, pmax, 0.0)
            lo[i, a:b] = np.where(kept, np.minimum(lim.pmin_kw, planned), 0.0)
        else:
            hi[i, a:b] = pmax
    if held:
        lo[:, -1] = hi[:, -1] = power_kw[:, -1]
    jumps = [(lim.index, t) for lim in limits for t in range(lim.start + 1, min(lim.end, n_steps))]
    n_p, n_j = n_sessions * n_steps, len(jumps)
    c_up, c_down = n_p, n_p + n_j
    n_col = n_p + 2 * n_j
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    vals: list[FloatArray] = []
    row_lo: list[FloatArray] = []
    row_hi: list[FloatArray] = []
    n_row = 0

    def add(r: npt.ArrayLike, c: npt.ArrayLike, v: npt.ArrayLike) -> None:
        rr = np.asarray(r, dtype=np.int64).ravel() + n_row
        rows.append(rr)
        cols.append(np.asarray(c, dtype=np.int64).ravel())
        vals.append(np.broadcast_to(np.asarray(v, dtype=float).ravel(), rr.shape).ravel())

    def p_col(i: npt.ArrayLike, t: npt.ArrayLike) -> npt.NDArray[np.int64]:
        col: npt.NDArray[np.int64] = np.asarray(i, dtype=np.int64) * n_steps + np.asarray(t, dtype=np.int64)
        return col

    # jumps: p[i,t] − p[i,t−1] − up + down = 0
    ji = np.array([i for i, _ in jumps], dtype=np.int64)
    jt = np.array([t for _, t in jumps], dtype=np.int64)
    j_ar = np.arange(n_j)
    add(j_ar, p_col(ji, jt), 1.0)
    add(j_ar, p_col(ji, jt - 1), -1.0)
    add(j_ar, c_up + j_ar, -1.0)
    add(j_ar, c_down + j_ar, 1.0)
    row_lo.append(np.zeros(n_j))
    row_hi.append(np.zeros(n_j))
    n_row += n_j
    # each car's energy, and the EV total of each step (in kW·steps and kW)
    ii, tt = np.meshgrid(np.arange(n_sessions), np.arange(n_steps), indexing="ij")
    add(ii, p_col(ii, tt), 1.0)
    row_lo.append(power_kw.sum(axis=1))
    row_hi.append(power_kw.sum(axis=1))
    n_row += n_sessions
    add(tt, p_col(ii, tt), 1.0)
    row_lo.append(power_kw.sum(axis=0))
    row_hi.append(power_kw.sum(axis=0))
    n_row += n_steps
    # protections, every phase; a step where the row holds whatever the cars in it draw within
    # their bounds needs no row (most breakers of a single charge point: measured, this pass
    # then costs a fraction of the plan)
    by_mode = {m: site_constraints(site, m) for m in sorted(set(modes))}
    some_mode = next(iter(by_mode.values()))
    for r, row in enumerate(some_mode):
        coef = np.array(
            [by_mode[modes[lim.index]][r].connector_a_per_kw.get(lim.connector.id, 0.0) for lim in limits]
        )
        carried = np.nonzero(coef)[0]
        if not carried.size:
            continue
        sess = np.array([limits[int(k)].index for k in carried], dtype=np.int64)
        a_per_kw = coef[carried][:, None]
        c_t = row.pv_a_per_kw * pv_kw + row.base_load_a_per_kw * base_load_kw
        high = (np.maximum(a_per_kw * hi[sess], a_per_kw * lo[sess])).sum(axis=0) + c_t
        low = (np.minimum(a_per_kw * hi[sess], a_per_kw * lo[sess])).sum(axis=0) + c_t
        steps = np.nonzero((high > row.rated_current_a) | (low < -row.rated_current_a))[0]
        if not steps.size:
            continue
        add(
            np.repeat(np.arange(steps.size)[None, :], sess.size, axis=0),
            p_col(sess[:, None], steps[None, :]),
            np.repeat(a_per_kw, steps.size, axis=1),
        )
        row_lo.append(-row.rated_current_a - c_t[steps])
        row_hi.append(row.rated_current_a - c_t[steps])
        n_row += steps.size

    a_mat = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_row, n_col)
    )
    a_mat.sum_duplicates()
    a_mat.sort_indices()
    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = n_row
    lp.col_cost_ = np.concatenate([np.zeros(n_p), np.ones(2 * n_j)])
    lp.col_lower_ = np.concatenate([lo.ravel(), np.zeros(2 * n_j)])
    lp.col_upper_ = np.concatenate([hi.ravel(), np.full(2 * n_j, INF)])
    lp.row_lower_ = np.concatenate(row_lo)
    lp.row_upper_ = np.concatenate(row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a_mat.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a_mat.indices.astype(np.int32)
    lp.a_matrix_.value_ = a_mat.data
    h: Any = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("time_limit", float(time_limit_s))
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    solved = np.asarray(h.getSolution().col_value[:n_p], dtype=float).reshape(n_sessions, n_steps)
    smoothed: FloatArray = whole_kw.copy()
    smoothed[:, :n_steps] = np.clip(solved, lo, hi)
    if total_variation_kw(smoothed, limits) >= total_variation_kw(whole_kw, limits) - MIN_GAIN:
        return None
    return smoothed
