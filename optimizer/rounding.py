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
from collections.abc import Callable, Sequence
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


BoolArray = npt.NDArray[np.bool_]


def _decided(
    power: FloatArray, slots: list[SlotData], slot_of: list[int], eps: float
) -> tuple[FloatArray, dict[int, tuple[BoolArray, BoolArray]]]:
    """What a relaxed plan already decides of the minimum-current rule: a pattern with every
    step at or above a car's minimum on and every other off (NaN for cars the rule does not
    bind), and per such car its steps at or above the minimum and its fractional steps
    (planned above 0 but under the minimum), which the rounding still has to decide."""
    pattern = np.full(power.shape, np.nan)
    steps: dict[int, tuple[BoolArray, BoolArray]] = {}
    for k in slot_of:
        pmin = slots[k].pmin_kw
        if pmin <= 0:
            continue
        row = power[k]
        on = row >= pmin - eps
        steps[k] = (on, (row > eps) & ~on)
        pattern[k] = np.where(on, 1.0, 0.0)
    return pattern, steps


def _round_patterns(
    power: FloatArray, slots: list[SlotData], slot_of: list[int], eps: float = 1e-6
) -> list[FloatArray]:
    """On/off patterns from a relaxed plan, to try in turn: every step at or above the minimum
    on, and of each car's fractional steps as many as its fractional energy needs at the
    minimum (largest first, then earliest), then fewer of them (`ROUNDED_UP_SHARES`)."""
    base, steps = _decided(power, slots, slot_of, eps)
    rounded_up: list[tuple[int, npt.NDArray[np.int64]]] = []
    for k, (_, frac) in steps.items():
        s, row = slots[k], power[k]
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


def _round_runs(
    power: FloatArray,
    slots: list[SlotData],
    slot_of: list[int],
    step_h: float,
    on_count: npt.NDArray[np.int64] | None = None,
    eps: float = 1e-6,
) -> FloatArray:
    """An on/off pattern from a smoothed relaxed plan that keeps cars on in runs. Step by step,
    of the cars planned between 0 and their minimum, as many go on as that step's fractional
    power carries at the minimum (rounded to the nearest; with `on_count`, as many as make
    `on_count[t]` cars on in all): first those that must (no step left to spare before they
    leave), then those on the step before, then the least spare. Each car is on for at most
    the steps its fractional energy needs at the minimum (as in `_round_patterns`) and never
    for more than its energy allows at the minimum. A smoothed plan spreads a shared kilowatt
    over every car; rounding each car on its own would switch them all on where PV is thin."""
    pattern, steps = _decided(power, slots, slot_of, eps)
    left: dict[int, int] = {}
    for k, (on, frac) in steps.items():
        s, row = slots[k], power[k]
        if frac.any():
            # never more steps on than the car can take at its minimum: a smoothed plan spreads
            # a full car's last kilowatt-hours over several steps
            most_on = math.floor((s.energy_kwh + s.extra_kwh) / (s.pmin_kw * step_h) + 1e-9)
            wanted = math.ceil(float(row[frac].sum()) / s.pmin_kw - 1e-9)
            left[k] = max(0, min(wanted, most_on - int(on.sum())))
    frac_steps = {k: steps[k][1] for k in left}
    # fractional steps of each car from step t on (t included)
    ahead = {k: np.cumsum(f[::-1])[::-1] for k, f in frac_steps.items()}
    for t in range(power.shape[1]):
        cars = [k for k in left if frac_steps[k][t]]
        if not cars:
            continue
        carried = sum(float(power[k, t]) / slots[k].pmin_kw for k in cars)
        n_on = min(len(cars), math.floor(carried + 0.5))
        if on_count is not None:
            already = sum(1 for k in slot_of if slots[k].pmin_kw > 0 and pattern[k, t] == 1.0)
            n_on = min(len(cars), max(0, int(on_count[t]) - already))
        # slack: the fractional steps a car has left beyond those it must be on in; none left,
        # it is on now whatever the step carries (a car leaving sooner goes first)
        slack = {k: int(ahead[k][t]) - left[k] for k in cars}
        was_on = {k: t > 0 and pattern[k, t - 1] == 1.0 for k in cars}
        order = sorted(cars, key=lambda k: (slack[k] > 0, not was_on[k], slack[k], k))
        for k in order:
            if left[k] > 0 and (n_on > 0 or slack[k] <= 0):
                pattern[k, t] = 1.0
                left[k] -= 1
                n_on -= 1
            else:
                pattern[k, t] = 0.0
    return pattern


@dataclass(frozen=True)
class _Rounded:
    """The LP rounding's plan, its relaxation's stage optima (lower bounds of the MIP's), and
    whether the relaxation already met the minimum-current rule over the exact horizon."""

    outcome: StageOutcome
    bounds: list[float]
    integral_ahead: bool
    relaxed_power_kw: FloatArray | None = None
    """The relaxation's plan (where a branch-and-bound starts)."""


Smoother = Callable[[FloatArray], FloatArray | None]
"""A relaxed plan (slots × steps) with its power moved between cars so their set-points change
least, every stage value kept (`optimizer.smooth`); None when there is nothing to gain."""


def _heuristic(
    model: StagedLp, problem: Problem, slot_of: list[int], smooth: Smoother | None = None
) -> _Rounded:
    """LP rounding: the relaxation, then every stage with the rounded on/off pattern fixed;
    returns the outcome and the relaxation's optima of stages 1–2 and, under shortage, of the
    fairness stages 3–4 (lower bounds of the MIP's).

    The relaxation runs the fairness stages before it is rounded: a relaxed plan optimal in
    stages 1–2 alone may put the whole shortage on some drivers, and the rounded pattern would
    freeze that (all the energy on one car) so no later stage could undo it.

    With `smooth`, the pattern is first rounded from the relaxation smoothed: the simplex's
    vertex hands a shared PV kilowatt to one car this step and to another the next, and a
    pattern rounded from it switches cars 0 → 22 kW → 0 (the least-changes pass after the
    stages keeps on/off decisions, so cannot undo that). That pattern is kept when its plan
    reaches the relaxation's bound in stages 1–2 and the fairness stages (then no pattern does
    better there); else the vertex's is rounded too and the better of the two kept."""
    opts = problem.options
    t0 = time.perf_counter()
    relaxed = _run(model, opts, False, opts.time_limit_s, fairness=opts.tie_breaks)
    if not relaxed.ok:
        return _Rounded(relaxed, [], False)
    exact_steps = _exact_steps(problem)
    integral = exact_steps is not None and not _fractional(
        relaxed.power_kw[:, :exact_steps], model.slot_data, slot_of
    )
    outcome, smoothed = _round_smoothly(
        model, problem, slot_of, relaxed.power_kw, smooth, relaxed.stage_values, started=t0
    )
    if smoothed is not None:
        # the smoothed relaxation is an optimum of the relaxation too (every stage value kept)
        integral = integral and not _fractional(smoothed[:, : exact_steps or 0], model.slot_data, slot_of)
    return _Rounded(outcome, relaxed.stage_values, integral, relaxed.power_kw)


def _round_smoothly(
    model: StagedLp,
    problem: Problem,
    slot_of: list[int],
    power: FloatArray,
    smooth: Smoother | None,
    bounds: list[float],
    keep_steps: int = 0,
    started: float | None = None,
) -> tuple[StageOutcome, FloatArray | None]:
    """`_solve_rounded` of `power`, but first the patterns rounded in runs from `power` smoothed
    (`_runs_candidates`): one that reaches `bounds` (the stage optima with the pattern free
    after `keep_steps`) is kept at once; else the vertex's rounding too, and the smoothed one
    wherever it is no worse in stages 1–4. Returns the outcome and the smoothed plan it was
    rounded from (None: from `power`)."""
    smoothed = smooth(power) if smooth is not None else None
    best: StageOutcome | None = None
    if smoothed is not None:
        slots, opts = model.slot_data, problem.options
        m = min(len(bounds), FAIR_STAGES)
        for pattern in _runs_candidates(smoothed, power, slots, slot_of, problem.step_s / 3600.0):
            # the first `keep_steps` are set from `power` (decided already) over the pattern
            tried = _solve_rounded(model, problem, slot_of, power, keep_steps, started, patterns=[pattern])
            if not tried.ok:
                continue
            if m >= 2 and _proved_stages(tried, bounds, opts) == m:
                return tried, smoothed  # at the bound: no pattern does better there
            if best is None or _lex_less(tried.stage_values, best.stage_values):
                best = tried
    outcome = _solve_rounded(model, problem, slot_of, power, keep_steps, started)
    if best is not None and not (outcome.ok and _lex_less(outcome.stage_values, best.stage_values)):
        return best, smoothed
    return outcome, None


def _runs_candidates(
    smoothed: FloatArray, vertex: FloatArray, slots: list[SlotData], slot_of: list[int], step_h: float
) -> list[FloatArray]:
    """The patterns `_round_smoothly` tries from a smoothed relaxation, in turn: rounded in runs by
    each step's fractional power, then with as many cars on per step as the vertex's own
    rounding has (where PV is thin, the vertex puts it on one car rather than on none)."""
    by_power = _round_runs(smoothed, slots, slot_of, step_h)
    vertex_on = _round_patterns(vertex, slots, slot_of)[0]
    counts = (vertex_on == 1.0).sum(axis=0)  # rows the rule does not bind are NaN, never 1
    by_count = _round_runs(smoothed, slots, slot_of, step_h, on_count=counts)
    same = np.array_equal(np.nan_to_num(by_power, nan=-1.0), np.nan_to_num(by_count, nan=-1.0))
    return [by_power] if same else [by_power, by_count]


def _solve_rounded(
    model: StagedLp,
    problem: Problem,
    slot_of: list[int],
    power: FloatArray,
    keep_steps: int = 0,
    started: float | None = None,
    patterns: list[FloatArray] | None = None,
) -> StageOutcome:
    """Every stage with the on/off patterns rounded from `power` fixed in turn
    (`_round_patterns`, or `patterns`), its first `keep_steps` steps on or off as `power` has
    them: the first feasible outcome, else the last (there is always one pattern). With
    `started`, the time limit counts from then."""
    opts = problem.options
    slots = model.slot_data
    patterns = _round_patterns(power, slots, slot_of) if patterns is None else patterns
    for pat in patterns:
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
