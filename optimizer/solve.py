"""`solve(problem) -> Plan` and the `PersistentPlanner` a site keeps between re-plans.

Priorities, enforced exactly (lexicographic stages; an optimum, once found, is fixed as a
constraint with a relative tolerance of `SolveOptions.stage_rel_tol` before the next stage):

1. least unmet energy, weighted by session priority (unmet 0 is fixed at exactly 0);
2. the objective: least grid import energy (`self_consumption`, i.e. most PV self-consumption),
   least import cost (`cost`: Σ import × price × step, negative prices allowed; without a price
   it is `self_consumption`), least grid peak (`peak`), or a weighted sum of them;
3. tie-breaks, in this order: under shortage the unmet energy split in proportion to need
   (least largest unmet share, then a piecewise-linear Σ E·(u/E)² that evens the share over
   every bottleneck); earlier charging (a discount by the hour, no tiny costs); a flatter grid
   draw (least peak import).

All stages are solved together by one weighted objective and then *proved* exact from the
final basis (`optimizer.lp.StagedLp._certified_prefix`), falling back to fewer stages at a time
where the proof fails (stages 1 and 2 together, then each tie-break); stages 1–2 are never cut
short. In the fallback the tie-breaks share a deterministic simplex iteration budget
(`SolveOptions.tie_break_iteration_ratio`); when it runs out the plan keeps the best feasible
point found and `Plan.message` says so.

The minimum-current rule (an AC session draws 0 or at least `min_current_a` per phase) is
exact while the count of on/off decisions is at most `SolveOptions.mip_max_binaries`: the LP
rounding below is tried first and kept when it reaches the relaxation's bound in stages 1 and
2 and, under shortage, in the fairness stages 3–4 (then it is a MIP optimum in those stages),
else a HiGHS MIP started from it runs under the time limit (`gap` reported, the better of the
two kept), from the first stage the rounding did not reach (the leading stages it did are
optimal already: usually stage 1; on 108 office plans of a June week this took a fifth off the
MIP time, every stage optimum unchanged); the MIP keeps its binaries free through the fairness
stages (fixing them after stage 2 was a quarter faster again but lets a car be left out when
cars must take turns under one breaker). With `SolveOptions.mip_horizon_s` (the EMS: one
step) the MIP decides only the steps before it, with the rule relaxed after, and those later
steps are then rounded with its decisions kept (`_round_smoothly`); a relaxation that already
meets the rule before it needs no MIP, and the binaries are counted before it only. There the
few decisions left are first searched by a branch-and-bound on the LP itself, warm
(`_branch_and_bound`: the same optima as the MIP, without its fixed root work per stage);
HiGHS's MIP takes over when that search runs out of its budget of relaxations. Above
`mip_max_binaries`, LP rounding alone (`lp_heuristic`): solve the relaxation — stages 1–2 and,
under shortage, the fairness stages, so the pattern follows a fair split (rounding a
relaxation optimal in stages 1–2 only could give the whole shortage to some drivers and freeze
it there) — switch each session's fractional steps on (the largest ones, as many as carry its
fractional energy at minimum power) or off, and re-solve every stage with that pattern fixed;
if that is infeasible, all fractional steps go off. With `SolveOptions.least_changes` the
relaxation is first smoothed (`optimizer.smooth`) and rounded in runs, and that pattern is kept
where it reaches the relaxation's bound or is no worse than the vertex's in any of stages 1–4:
cars then stay on in runs instead of taking the PV in turns. A need under one step at the minimum
power may be planned that step (`_slot_data`): the car stops by itself when full. The LP
rounding and the checks that prove it are in `optimizer.rounding`; the branch-and-bound and
the MIP stay here.

Whatever happens a plan comes back: an infeasible, failed or timed-out solve gives the
proportional fallback (`optimizer.fallback`) flagged `status="fallback"` with a message, and
every plan is checked against `grid_models.electrical.check` before it is returned.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from grid_models.electrical import check
from grid_models.site import Connector, Site
from optimizer.fallback import proportional_power
from optimizer.lp import SlotData, StagedLp, StageOutcome, StepData
from optimizer.plan import SessionLimits, build_plan, session_limits
from optimizer.problem import Method, Plan, Problem, aligned, validate_problem
from optimizer.rounding import (
    FAIR_STAGES,
    Smoother,
    _exact_steps,
    _gap,
    _heuristic,
    _lex_less,
    _proved,
    _proved_stages,
    _round_smoothly,
    _Rounded,
    _run,
)
from optimizer.smooth import least_changes

FloatArray = npt.NDArray[np.float64]

CHECK_TOLERANCE_A = 0.05
"""Amps of numerical slack allowed when a solved plan is verified (the replay allows 0.1)."""


def _step_data(problem: Problem, n_steps: int) -> StepData:
    n = problem.n_steps()
    price = problem.price_eur_per_kwh
    return StepData(
        n_steps=n,
        pv_kw=np.array(aligned(problem.pv_kw, n_steps, hold_last=False)),
        base_load_kw=np.array(aligned(problem.base_load_kw, n_steps, hold_last=False)),
        price_eur_per_kwh=None if price is None else np.array(aligned(price, n_steps, hold_last=True)),
        weights={str(k): v for k, v in problem.objective_weights().items()},
    )


def _slot_data(problem: Problem, lim: SessionLimits) -> SlotData:
    s = problem.sessions[lim.index]
    # A need under one step at the minimum power can only be met by planning more: the car
    # stops by itself when full. Without this headroom such a car could only be left unmet.
    needed = s.energy_needed_kwh
    headroom_kwh = lim.pmin_kw * problem.step_s / 3600.0 - needed if needed > 0 and lim.pmin_kw > 0 else 0.0
    return SlotData(
        active=True,
        energy_kwh=s.energy_needed_kwh,
        weight=s.priority,
        pmax_kw=lim.pmax_kw,
        pmin_kw=lim.pmin_kw,
        start=lim.start,
        end=lim.end,
        extra_kwh=max(s.energy_extra_kwh, headroom_kwh),
    )


def _n_binaries(limits: list[SessionLimits], exact_steps: int | None) -> int:
    last = exact_steps if exact_steps is not None else 2**31
    return sum(
        max(0, min(lim.end, last) - lim.start)
        for lim in limits
        if lim.pmin_kw > 0 and lim.pmax_kw >= lim.pmin_kw
    )


def choose_method(problem: Problem, limits: list[SessionLimits]) -> Method:
    if not problem.options.min_current or not any(lim.pmin_kw > 0 for lim in limits):
        return "lp"
    n_bin = _n_binaries(limits, _exact_steps(problem))
    return "mip" if n_bin <= problem.options.mip_max_binaries else "lp_heuristic"


def _solve_model(
    model: StagedLp, problem: Problem, slot_of: list[int], method: Method, smooth: Smoother | None
) -> tuple[StageOutcome, Method]:
    """Run the stages on a loaded model (pure LP or LP rounding)."""
    opts = problem.options
    if method == "lp":
        return _run(model, opts, opts.tie_breaks, opts.time_limit_s), method
    return _heuristic(model, problem, slot_of, smooth).outcome, "lp_heuristic"


def _mip_of(model: StagedLp, problem: Problem, kept: StagedLp | None = None) -> StagedLp:
    """A MIP over `model`'s slots and steps: `kept` when it is one, its last solution and
    incumbent cleared (`load` then sets every bound, coefficient and integrality: the same
    optima as a new one, though an equal choice may fall another way), else a new one."""
    if kept is not None and kept.same_structure(model):
        kept.h.clearSolver()
        return kept
    return StagedLp(
        model.sites,
        model.slots,
        model.T,
        problem.step_s,
        mip=True,
        threads=problem.options.threads,
        slot_sites=model.slot_sites,
        couplings=model.couplings,
    )


SEARCH_MAX_RELAXATIONS = 24
"""Relaxations `_search` may solve before it leaves the decision to HiGHS's MIP."""


def _branching(
    power: FloatArray, slots: list[SlotData], slot_of: list[int], exact_steps: int, eps: float = 1e-6
) -> tuple[int, int] | None:
    """The (slot, step) to branch on: of the steps before `exact_steps` planned above 0 but
    under the minimum, the one nearest half of it (then the earliest, then the first slot)."""
    best: tuple[float, int, int] | None = None
    for k in slot_of:
        pmin = slots[k].pmin_kw
        if pmin <= 0:
            continue
        row = power[k, :exact_steps]
        for t in np.flatnonzero((row > eps) & (row < pmin - eps)):
            key = (abs(float(row[t]) / pmin - 0.5), int(t), k)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], best[1])


@dataclass(frozen=True)
class _Decided:
    """What `_branch_and_bound` found: the on/off decisions over the exact horizon (a pattern
    for `StagedLp.load`, None when no decisions beat the rounded plan's) and their lexicographic
    optimum in stages 1–2 (and the fairness stages under shortage)."""

    pattern: FloatArray | None
    stage_values: list[float]
    relaxations: int


def _branch_and_bound(
    model: StagedLp, problem: Problem, slot_of: list[int], rounded: _Rounded, exact_steps: int
) -> _Decided | None:
    """The MIP over the first `exact_steps` steps as a best-first branch-and-bound on the kept
    LP: each node fixes some on/off decisions (`StagedLp.load`'s pattern) and its relaxation
    (stages 1–2, and the fairness stages under shortage, warm) bounds every plan below it
    lexicographically, so the first node whose relaxation meets the rule over those steps is
    an optimum (no other bound is better); the rounded plan is the incumbent that prunes.
    None, to leave the decision to HiGHS's MIP, after `SEARCH_MAX_RELAXATIONS` relaxations or
    when one fails other than as infeasible."""
    opts = problem.options
    slots = model.slot_data
    if rounded.relaxed_power_kw is None or not rounded.outcome.ok:
        return None
    incumbent = rounded.outcome.stage_values[:FAIR_STAGES]
    root = np.full(rounded.relaxed_power_kw.shape, np.nan)
    heap: list[tuple[tuple[float, ...], int, FloatArray, FloatArray]] = [
        (tuple(rounded.bounds[:FAIR_STAGES]), 0, root, rounded.relaxed_power_kw)
    ]
    solved = 0
    while heap:
        bound, _, pattern, power = heapq.heappop(heap)
        if not _lex_less(list(bound), incumbent):
            break  # best first: no node left can beat the incumbent
        branch = _branching(power, slots, slot_of, exact_steps)
        if branch is None:
            decided = pattern.copy()
            for k in slot_of:
                if slots[k].pmin_kw > 0:
                    decided[k, :exact_steps] = np.where(power[k, :exact_steps] > 1e-6, 1.0, 0.0)
            return _Decided(decided, list(bound), solved)
        k, t = branch
        for decision in (1.0, 0.0):
            if solved == SEARCH_MAX_RELAXATIONS:
                return None
            child = pattern.copy()
            child[k, t] = decision
            model.load(model.steps, slots, pattern=child)
            relaxed = _run(model, opts, False, opts.time_limit_s, fairness=opts.tie_breaks)
            solved += 1
            if relaxed.ok:
                values = tuple(relaxed.stage_values[:FAIR_STAGES])
                heapq.heappush(heap, (values, solved, child, relaxed.power_kw))
            elif relaxed.status != "Infeasible":
                return None
    return _Decided(None, list(incumbent), solved)


def _search(
    model: StagedLp,
    problem: Problem,
    slot_of: list[int],
    rounded: _Rounded,
    exact_steps: int,
    smooth: Smoother | None = None,
) -> StageOutcome | None:
    """`_branch_and_bound`'s decisions kept through the tie-break stages, the later steps then
    rounded, as after HiGHS's MIP; the better of that and the rounded plan. None when the
    search gave up.

    One step of a dozen cars leaves a few decisions fractional: a few warm relaxations decide
    them, where each MIP stage cost HiGHS ~20 ms of root work (June month of the office: all
    152 searches decided, 2 to 22 relaxations; the MIP path's time from ~6 s to 3 s)."""
    opts = problem.options
    decided = _branch_and_bound(model, problem, slot_of, rounded, exact_steps)
    if decided is None:
        return None
    if decided.pattern is None:
        return rounded.outcome  # no on/off decisions beat the rounded plan's
    model.load(model.steps, model.slot_data, pattern=decided.pattern)
    kept = _run(model, opts, opts.tie_breaks, opts.time_limit_s)
    if not kept.ok:
        return None
    later, _ = _round_smoothly(
        model, problem, slot_of, kept.power_kw, smooth, kept.stage_values, keep_steps=exact_steps
    )
    if not later.ok or _lex_less(rounded.outcome.stage_values, later.stage_values):
        return rounded.outcome
    return replace(later, status="optimal", gap=0.0)


def _exact(
    problem: Problem,
    model: StagedLp,
    slot_of: list[int],
    rounded: _Rounded,
    mip_of: Callable[[], StagedLp],
    smooth: Smoother | None = None,
) -> tuple[StageOutcome, float]:
    """The exact minimum-current rule where the rounding was not proved optimal. With an
    exact horizon, `_search` first; else (or when it gives up) a HiGHS MIP over `model`'s
    slots and steps (from `mip_of`), started from the rounded plan, binary over the first
    `SolveOptions.mip_horizon_s` (later steps relaxed, then rounded on `model` with the MIP's
    decisions kept: `_round_smoothly` with `smooth`); the better of it and the rounded plan.
    Returns the outcome and the seconds spent building the MIP."""
    opts = problem.options
    exact_steps = _exact_steps(problem)
    if exact_steps is not None:
        searched = _search(model, problem, slot_of, rounded, exact_steps, smooth)
        if searched is not None:
            return searched, 0.0
    t0 = time.perf_counter()
    bounds = rounded.bounds
    mip = mip_of()
    mip.load(model.steps, model.slot_data, binary_steps=exact_steps)
    if rounded.outcome.ok and rounded.outcome.x is not None:
        mip.set_start(rounded.outcome.x)
    build_s = time.perf_counter() - t0
    # the stages the rounding already solved exactly are not searched again
    known = rounded.outcome.stage_values[: _proved_stages(rounded.outcome, bounds, opts)]
    # (fixing the binaries after stage 2 when they cover the first step only took 18% off
    # the June month's MIP time, but the EV PV share went from 90.6% to 90.0% of perfect
    # foresight's: within noise, and the fair split over the on/off decisions was kept)
    exact = _run(mip, opts, opts.tie_breaks, opts.time_limit_s, None, known)
    best = rounded.outcome
    if exact.ok and exact_steps is not None:
        later, _ = _round_smoothly(
            model, problem, slot_of, exact.power_kw, smooth, exact.stage_values, keep_steps=exact_steps
        )
        exact = replace(later, status=exact.status, gap=exact.gap) if later.ok else later
        if exact.ok and best.ok and _lex_less(best.stage_values, exact.stage_values):
            exact = best
    if (exact.ok and exact.status == "optimal") or not best.ok:
        return exact, build_s
    # time limit: the better of the MIP incumbent and the rounded plan, with its gap to the
    # relaxation's bound
    better = exact if exact.ok and _lex_less(exact.stage_values, best.stage_values) else best
    return replace(better, status="feasible", gap=_gap(better.stage_values, bounds)), build_s


def solve_loaded(
    model: StagedLp,
    problem: Problem,
    slot_of: list[int],
    method: Method,
    mip_of: Callable[[], StagedLp],
    smooth: Smoother | None = None,
) -> tuple[StageOutcome, Method, float]:
    """Run `method` on a loaded model: the LP or its rounding, or the exact minimum-current rule
    (the rounded plan when the relaxation's bound proves it optimal, else the search or the
    MIP started from it). `problem` gives the options and the step (for a group: any member's,
    they share them); `smooth` the rounding's smoother of the relaxation (`_relaxed_smoother`).
    Returns the outcome, the method and the seconds spent building a MIP."""
    if method != "mip":
        outcome, method = _solve_model(model, problem, slot_of, method, smooth)
        return outcome, method, 0.0
    rounded = _heuristic(model, problem, slot_of, smooth)
    if _proved(rounded, problem.options):
        return rounded.outcome, method, 0.0
    outcome, mip_build_s = _exact(problem, model, slot_of, rounded, mip_of, smooth)
    return outcome, method, mip_build_s


def _finish(
    problem: Problem,
    outcome: StageOutcome,
    method: Method,
    slot_of: list[int],
    build_ms: float,
    solve_ms: float,
    limits: list[SessionLimits] | None = None,
) -> Plan:
    n = problem.n_steps()
    if outcome.ok:
        power = outcome.power_kw[slot_of, :n] if slot_of else np.zeros((0, n))
        report = check(
            problem.site,
            {s.connector_id: power[i] for i, s in enumerate(problem.sessions)},
            {s.connector_id: s.vehicle_phases for s in problem.sessions},
            aligned(problem.pv_kw, n, hold_last=False),
            aligned(problem.base_load_kw, n, hold_last=False),
            tolerance_a=CHECK_TOLERANCE_A,
        )
        if report.ok:
            t_smooth = time.perf_counter()
            limits = limits if limits is not None else session_limits(problem, n)
            power = _smoothed(problem, power, limits)
            solve_ms += (time.perf_counter() - t_smooth) * 1e3
            return build_plan(
                problem,
                power,
                status="optimal" if outcome.status == "optimal" else "feasible",
                method=method,
                gap=outcome.gap,
                message=outcome.message,
                build_ms=build_ms,
                solve_ms=solve_ms,
                stage_values=outcome.stage_values,
                limits=limits,
            )
        message = f"solved plan failed the feasibility check ({len(report.violations)} violation(s))"
    else:
        message = f"no optimal plan ({outcome.message or outcome.status})"
    return fallback_plan(problem, message, build_ms=build_ms, solve_ms=solve_ms)


def _smoothing_inputs(
    problem: Problem, limits: list[SessionLimits], n_steps: int
) -> tuple[FloatArray, FloatArray, list[int]]:
    """The PV and base-load series of `least_changes`, and each session's vehicle-phase mode."""
    pv = np.array(aligned(problem.pv_kw, n_steps, hold_last=False))
    base = np.array(aligned(problem.base_load_kw, n_steps, hold_last=False))
    modes = [
        _slot_mode(lim.connector, s.vehicle_phases) for s, lim in zip(problem.sessions, limits, strict=True)
    ]
    return pv, base, modes


def _smoothing_on(problem: Problem) -> bool:
    options = problem.options
    return options.least_changes and options.tie_breaks and len(problem.sessions) >= 2


def _relaxed_smoother(problem: Problem, limits: list[SessionLimits], slot_of: list[int]) -> Smoother | None:
    """What the rounding smooths a relaxed plan with (`optimizer.rounding._round_smoothly`): the
    least-changes pass over the sessions' slots, blind to the minimum-current rule (the
    relaxation does not keep it). None where the pass is off or nothing needs rounding."""
    if not _smoothing_on(problem) or not any(lim.pmin_kw > 0 for lim in limits):
        return None
    n = problem.n_steps()
    pv, base, modes = _smoothing_inputs(problem, limits, n)
    relaxed_limits = [replace(lim, pmin_kw=0.0) for lim in limits]

    def smooth(power: FloatArray) -> FloatArray | None:
        rows = power[slot_of, :n]
        smoothed = least_changes(
            problem.site, rows, relaxed_limits, modes, pv, base, problem.options.time_limit_s
        )
        if smoothed is None:
            return None
        out = power.copy()
        out[slot_of, :n] = smoothed
        return out

    return smooth


def _smoothed(problem: Problem, power: FloatArray, limits: list[SessionLimits]) -> FloatArray:
    """`power` with the least set-point changes among plans of equal stage values
    (`optimizer.smooth`), when that plan passes the same feasibility check; else as it was.
    Not under the minimum-current rule: there the rounding smooths which cars are on
    (`_relaxed_smoother`)."""
    if not _smoothing_on(problem):
        return power
    if any(lim.pmin_kw > 0 for lim in limits):
        # Under the minimum-current rule the on/off pattern was already chosen smooth (by the
        # rounding), and levelling the cars that are on measured worse for the PV share: on the
        # office June month 0.4934 → 0.4854 (88.9 % of perfect foresight's) for 4 % fewer
        # applied set-point changes (1.087 → 1.042 per session hour); before that smoothing
        # 0.4945 → 0.4978 and 6 kWh more unmet. Without the rule: 11 % fewer changes, 6 kWh
        # less unmet.
        return power
    n = power.shape[1]
    pv, base, modes = _smoothing_inputs(problem, limits, n)
    smoothed = least_changes(problem.site, power, limits, modes, pv, base, problem.options.time_limit_s)
    if smoothed is None:
        return power
    report = check(
        problem.site,
        {s.connector_id: smoothed[i] for i, s in enumerate(problem.sessions)},
        {s.connector_id: s.vehicle_phases for s in problem.sessions},
        pv.tolist(),
        base.tolist(),
        tolerance_a=CHECK_TOLERANCE_A,
    )
    return smoothed if report.ok else power


def fallback_plan(problem: Problem, message: str, build_ms: float = 0.0, solve_ms: float = 0.0) -> Plan:
    """The proportional-share plan, flagged `fallback` with `message`."""
    power, unsafe = proportional_power(problem)
    if unsafe:
        message += f"; PV and base load alone break a limit in {len(unsafe)} step(s), planned 0 there"
    return build_plan(
        problem,
        power,
        status="fallback",
        method="fallback",
        message=message,
        build_ms=build_ms,
        solve_ms=solve_ms,
    )


def solve(problem: Problem) -> Plan:
    """The plan of `problem` (see the module docstring for the priorities); deterministic.

    Raises `ProblemError` on a problem no plan can mean; never raises for a hard one.
    """
    validate_problem(problem)
    t0 = time.perf_counter()
    n = problem.n_steps()
    limits = session_limits(problem, n)
    if not problem.sessions:
        return build_plan(problem, np.zeros((0, n)), status="optimal", method="lp")
    method = choose_method(problem, limits)
    slots = [(s.connector_id, s.vehicle_phases) for s in problem.sessions]
    steps = _step_data(problem, n)
    slot_data = [_slot_data(problem, lim) for lim in limits]
    try:
        model = StagedLp(problem.site, slots, n, problem.step_s, threads=problem.options.threads)
        model.load(steps, slot_data)
    except Exception as exc:  # a model that cannot be built still gets a safe plan
        return fallback_plan(problem, f"model build failed: {exc}")
    t1 = time.perf_counter()
    build_s = t1 - t0
    slot_of = list(range(len(problem.sessions)))
    outcome, method, mip_build_s = solve_loaded(
        model,
        problem,
        slot_of,
        method,
        lambda: _mip_of(model, problem),
        _relaxed_smoother(problem, limits, slot_of),
    )
    build_s += mip_build_s
    t2 = time.perf_counter()
    solve_ms = (t2 - t1 - (build_s - (t1 - t0))) * 1e3
    return _finish(problem, outcome, method, slot_of, build_s * 1e3, solve_ms, limits)


def _slot_mode(connector: Connector, vehicle_phases: int) -> int:
    """The vehicle-phase mode of a session's slot: only a three-phase AC connector has two."""
    return vehicle_phases if (connector.power_type == "AC" and len(connector.phases) == 3) else 3


@dataclass
class _Persistent:
    model: StagedLp
    slot_index: dict[tuple[str, int], int]
    step_s: int
    mip: StagedLp | None = None
    """The MIP over `model`'s slots and steps, once one was needed."""


class PersistentPlanner:
    """The planner's model of one site, kept alive between re-plans.

    Power is indexed by connector (one slot per connector and vehicle-phase mode, for every
    pair planned so far), so a session arriving on a connector used before, leaving or changing
    its preferences only changes bounds, right-hand sides and a few coefficients of the same
    HiGHS model; the all-stage run restarts from the basis it ended with last time (and each
    stage run of the fallback from its own). A connector never
    used before rebuilds the model (at least as many steps as before), which takes over those
    bases (`StagedLp.inherit_bases`): a rebuild, not a cold solve. The plan has the same stage
    optima as `solve(problem)` (tested; tie-break stages cut by their iteration budget may
    differ). Under the exact minimum-current rule the rounding runs on the kept model and is
    kept when its relaxation's bound proves it (stages 1–4, as in `solve`); only otherwise
    does the branch-and-bound run on the kept model (with an exact horizon), and where it
    gives up a MIP over the kept model's slots, cold (it is kept with the model, cleared and
    reloaded each time). No I/O, no clock: the same calls give the same plans.
    """

    def __init__(self, site: Site) -> None:
        self.site = site
        self._state: _Persistent | None = None
        self._known: set[tuple[str, int]] = set()
        self._limits_cache: dict[Any, Any] = {}

    def _model(self, problem: Problem, n_steps: int, pairs: list[tuple[str, int]]) -> _Persistent:
        """The kept model, rebuilt only when the step, a longer horizon or a (connector, mode)
        pair never planned before needs it. Slots accumulate in a fixed (site) order, so the
        model depends only on which pairs have been seen, and stays small on big sites where
        few connectors are used."""
        st = self._state
        self._known.update(pairs)

        if (
            st is not None
            and st.step_s == problem.step_s
            and n_steps <= st.model.T
            and all(p in st.slot_index for p in pairs)
        ):
            return st
        slots: list[tuple[str, int]] = []
        for c in self.site.connectors():
            slots.extend((c.id, m) for m in (1, 3) if (c.id, m) in self._known)
        same_step = st is not None and st.step_s == problem.step_s
        n_model = max(n_steps, st.model.T) if (st is not None and same_step) else n_steps
        model = StagedLp(self.site, slots, n_model, problem.step_s, threads=problem.options.threads)
        if st is not None and same_step:
            model.inherit_bases(st.model)
        self._state = _Persistent(model, {s: k for k, s in enumerate(slots)}, problem.step_s)
        return self._state

    def update(self, problem: Problem) -> Plan:
        """The plan of `problem` (whose site must be this planner's), re-solved warm."""
        if problem.site != self.site:
            raise ValueError("PersistentPlanner.update: the problem is for another site")
        validate_problem(problem)
        n = problem.n_steps()
        limits = session_limits(problem, n, self._limits_cache)
        method = choose_method(problem, limits)
        if not problem.sessions:
            return solve(problem)
        t0 = time.perf_counter()
        pairs = [
            (s.connector_id, _slot_mode(lim.connector, s.vehicle_phases))
            for s, lim in zip(problem.sessions, limits, strict=True)
        ]
        st = self._model(problem, n, pairs)
        slot_of = [st.slot_index[p] for p in pairs]
        slots = [SlotData() for _ in range(st.model.K)]
        for lim in limits:
            slots[slot_of[lim.index]] = _slot_data(problem, lim)
        st.model.load(_step_data(problem, st.model.T), slots)
        t1 = time.perf_counter()

        def kept_mip() -> StagedLp:
            # the MIP is kept with the model: building it took a seventh of its solve
            st.mip = _mip_of(st.model, problem, st.mip)
            return st.mip

        # the exact rule, warm: the rounding on the kept model, kept when its relaxation's bound
        # proves it optimal (as `solve` does first); otherwise the MIP
        smooth = _relaxed_smoother(problem, limits, slot_of)
        outcome, method, mip_build_s = solve_loaded(st.model, problem, slot_of, method, kept_mip, smooth)
        t2 = time.perf_counter()
        if not outcome.ok:
            self._state = None  # start afresh next time
        build_ms, solve_ms = (t1 - t0 + mip_build_s) * 1e3, (t2 - t1 - mip_build_s) * 1e3
        return _finish(problem, outcome, method, slot_of, build_ms, solve_ms, limits)
