"""The LP rounding of the minimum-current rule (an AC session draws 0 or at least
`min_current_a` per phase) and the checks that prove a rounded plan exact or measure its gap.

`_heuristic` solves the relaxation, rounds its fractional steps into on/off patterns
(`_round_patterns`) and re-solves every stage with each pattern fixed (`_solve_rounded`);
`_proved_stages` / `_proved` compare the rounded plan's stage optima with the relaxation's
bounds. Apart from `optimizer.solve` (the entry points, the branch-and-bound and HiGHS's MIP,
which use all of this) because the rounding is complete on its own: `lp_heuristic` is it
alone, and `mip` starts from it. `_run` (`SolveOptions` into `StagedLp.solve`) and
`_exact_steps` are here because the rounding needs them; `optimizer.solve` imports them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from optimizer.lp import SlotData, StagedLp, StageOutcome
from optimizer.problem import Problem, SolveOptions

FloatArray = npt.NDArray[np.float64]


def _exact_steps(problem: Problem) -> int | None:
    exact_s = problem.options.mip_horizon_s
    return None if exact_s is None else max(1, math.ceil(exact_s / problem.step_s))


def _run(
    model: StagedLp,
    options: SolveOptions,
    tie_breaks: bool,
    time_limit_s: float,
    fairness: bool | None = None,
    known_stage_values: Sequence[float] = (),
) -> StageOutcome:
    return model.solve(
        fairness=fairness,
        known_stage_values=known_stage_values,
        time_limit_s=time_limit_s,
        rel_tol=options.stage_rel_tol,
        abs_tol=options.stage_abs_tol,
        tie_breaks=tie_breaks,
        mip_rel_gap=options.mip_rel_gap,
        tie_break_iteration_ratio=options.tie_break_iteration_ratio,
        tie_break_min_iterations=options.tie_break_min_iterations,
    )


ROUNDED_UP_SHARES = (1.0, 0.5, 0.25, 0.0)
"""Of the fractional steps a car's energy needs rounded up, the share kept on in each attempt:
when all of them on at once break a limit (cars that must take turns), half of them may not,
and only the last attempt gives all that fractional energy up."""


def _round_patterns(
    power: FloatArray, slots: list[SlotData], slot_of: list[int], eps: float = 1e-6
) -> list[FloatArray]:
    """On/off patterns from a relaxed plan, to try in turn: every step at or above the minimum
    on, and of each car's fractional steps as many as its fractional energy needs at the
    minimum (largest first, then earliest), then fewer of them (`ROUNDED_UP_SHARES`)."""
    base = np.full(power.shape, np.nan)
    rounded_up: list[tuple[int, npt.NDArray[np.int64]]] = []
    for k in slot_of:
        s = slots[k]
        if s.pmin_kw <= 0:
            continue
        row = power[k]
        on = row >= s.pmin_kw - eps
        frac = (row > eps) & ~on
        base[k] = np.where(on, 1.0, 0.0)
        idx = np.flatnonzero(frac)
        if idx.size:
            energy_units = float(row[idx].sum()) / s.pmin_kw
            n_on = min(idx.size, math.ceil(energy_units - 1e-9))
            rounded_up.append((k, idx[np.lexsort((idx, -row[idx]))][:n_on]))
    patterns = []
    for share in ROUNDED_UP_SHARES if rounded_up else (0.0,):
        pattern = base.copy()
        for k, order in rounded_up:
            pattern[k, order[: math.ceil(order.size * share - 1e-9)]] = 1.0
        patterns.append(pattern)
    return patterns


@dataclass(frozen=True)
class _Rounded:
    """The LP rounding's plan, its relaxation's stage optima (lower bounds of the MIP's), and
    whether the relaxation already met the minimum-current rule over the exact horizon."""

    outcome: StageOutcome
    bounds: list[float]
    integral_ahead: bool
    relaxed_power_kw: FloatArray | None = None
    """The relaxation's plan (where a branch-and-bound starts)."""


def _heuristic(model: StagedLp, problem: Problem, slot_of: list[int]) -> _Rounded:
    """LP rounding: the relaxation, then every stage with the rounded on/off pattern fixed;
    returns the outcome and the relaxation's optima of stages 1–2 and, under shortage, of the
    fairness stages 3–4 (lower bounds of the MIP's).

    The relaxation runs the fairness stages before it is rounded: a relaxed plan optimal in
    stages 1–2 alone may put the whole shortage on some drivers, and the rounded pattern would
    freeze that (all the energy on one car) so no later stage could undo it."""
    opts = problem.options
    t0 = time.perf_counter()
    relaxed = _run(model, opts, False, opts.time_limit_s, fairness=opts.tie_breaks)
    if not relaxed.ok:
        return _Rounded(relaxed, [], False)
    outcome = _solve_rounded(model, problem, slot_of, relaxed.power_kw, started=t0)
    exact_steps = _exact_steps(problem)
    integral = exact_steps is not None and not _fractional(
        relaxed.power_kw[:, :exact_steps], model.slot_data, slot_of
    )
    return _Rounded(outcome, relaxed.stage_values, integral, relaxed.power_kw)


def _solve_rounded(
    model: StagedLp,
    problem: Problem,
    slot_of: list[int],
    power: FloatArray,
    keep_steps: int = 0,
    started: float | None = None,
) -> StageOutcome:
    """Every stage with the on/off patterns rounded from `power` fixed in turn
    (`_round_patterns`), its first `keep_steps` steps on or off as `power` has them: the first
    feasible outcome, else the last (there is always one pattern). With `started`, the time
    limit counts from then."""
    opts = problem.options
    slots = model.slot_data
    for pat in _round_patterns(power, slots, slot_of):
        for k in slot_of:
            if keep_steps and slots[k].pmin_kw > 0:
                pat[k, :keep_steps] = np.where(power[k, :keep_steps] > 1e-6, 1.0, 0.0)
        model.load(model.steps, slots, pattern=pat)
        limit = opts.time_limit_s
        if started is not None:
            limit = max(0.05, limit - (time.perf_counter() - started))
        outcome = _run(model, opts, opts.tie_breaks, limit)
        if outcome.ok:
            break
    return outcome


def _fractional(power: FloatArray, slots: list[SlotData], slot_of: list[int], eps: float = 1e-6) -> bool:
    """True when some car is planned above 0 but under its minimum power."""
    return any(
        bool(np.any((power[k] > eps) & (power[k] < slots[k].pmin_kw - eps)))
        for k in slot_of
        if slots[k].pmin_kw > 0
    )


FAIR_STAGES = 4
"""Stages 1–2 and the fairness stages 3–4: what the rounded plan must match to be exact."""


def _proved_stages(outcome: StageOutcome, bounds: list[float], opts: SolveOptions) -> int:
    """How many leading stages (1, 2 and, under shortage, the fairness stages 3–4) the rounded
    plan solves at the relaxation's optimum: in those it is an optimum of the exact MIP too
    (each bound was computed with the stages before it at the same optima)."""
    m = min(len(bounds), FAIR_STAGES)
    if not outcome.ok or len(outcome.stage_values) < m:
        return 0
    for i in range(m):
        b = bounds[i]
        tol = 10 * (opts.stage_abs_tol + opts.stage_rel_tol * abs(b)) + 1e-6 * abs(b)
        if outcome.stage_values[i] > b + tol:
            return i
    return m


def _proved(rounded: _Rounded, opts: SolveOptions) -> bool:
    """True when the rounded plan is what the MIP would give: an optimum of the exact MIP in
    every stage up to the tie-breaks (`_proved_stages`), or, with an exact horizon, rounded
    from a relaxation that already met the rule over it (then that relaxation is an optimum
    of the MIP, whose later steps are relaxed too, and would be rounded alike)."""
    if rounded.integral_ahead and rounded.outcome.ok:
        return True
    m = min(len(rounded.bounds), FAIR_STAGES)
    return m >= 2 and _proved_stages(rounded.outcome, rounded.bounds, opts) == m


def _lex_less(a: list[float], b: list[float]) -> bool:
    for x, y in zip(a[:FAIR_STAGES], b[:FAIR_STAGES], strict=False):
        if x < y - 1e-6 * max(1.0, abs(y)):
            return True
        if x > y + 1e-6 * max(1.0, abs(y)):
            return False
    return False


def _gap(values: list[float], bounds: list[float]) -> float:
    """Relative gap of the first stage not at its bound (relaxation optimum)."""
    for v, b in zip(values[:FAIR_STAGES], bounds[:FAIR_STAGES], strict=False):
        if v > b + 1e-6 * max(1.0, abs(b)):
            return (v - b) / max(abs(v), 1e-9)
    return 0.0
