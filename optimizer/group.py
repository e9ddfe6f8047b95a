"""Joint planning of a group of sites (a territory) under shared limits: one LP for all.

The planning unit is the group: `solve_group(GroupProblem)` (cold) or
`PersistentGroupPlanner.update(GroupProblem)` (warm, the model kept between re-plans) plans
every session of every site under the group in one model (`optimizer.lp_model` with several
sites and `Coupling` rows), so

- each site keeps its own protections on every phase and its own grid connection;
- each group of the tree (site ⊂ feeder ⊂ district) keeps its limits at every step: the net
  import of its sites, and the current per phase at its node when it has a current limit
  (`grid_models.group` for the semantics);
- the priorities are those of `optimizer.solve` over the whole group: the least unmet energy,
  then each site's objective (with its own weights and prices) summed, then the fairness rule
  over every driver of the group (a shortage the group's limit causes is shared by the drivers
  of all its sites in proportion to their needs, not site by site), earlier, flatter.

A site outside any group is planned by `solve` as before; a group of one site without limits
gives that site's plan. Pure and deterministic: the limits arrive sampled on the steps
(`GroupProblem.limits`, from `grid_models.sample_limits`), no clock is read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from grid_models.group import (
    Group,
    GroupCheckReport,
    GroupStepLimits,
    SitePower,
    check_group,
    sample_limits,
    site_entry_currents,
)
from grid_models.groupfile import validate_group
from grid_models.site import Site
from optimizer.fallback import proportional_power
from optimizer.lp import SlotData, StagedLp, StageOutcome
from optimizer.lp_model import Coupling, GroupStepData, StepData
from optimizer.plan import SessionLimits, build_plan, session_limits
from optimizer.problem import Method, Plan, Problem, ProblemError, Status, aligned, validate_problem
from optimizer.rounding import Smoother
from optimizer.solve import (
    CHECK_TOLERANCE_A,
    _mip_of,
    _relaxed_smoother,
    _slot_data,
    _slot_mode,
    _smoothed,
    choose_method,
    solve_loaded,
)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GroupProblem:
    """Everything a group's plan depends on: the group, one `Problem` per site under it (the
    same `now`, step and options; a site with no car still has one, for its base load and PV),
    and every group's limits sampled on the group's steps (`sample_limits`, at least
    `n_steps()` values each)."""

    group: Group
    problems: tuple[Problem, ...]
    limits: Mapping[str, GroupStepLimits]

    @classmethod
    def sampled(cls, group: Group, problems: Sequence[Problem]) -> GroupProblem:
        """The problem with the group's limits sampled on its steps (pure: `now` is the
        problems')."""
        problems = tuple(problems)
        if not problems:
            raise ProblemError(f"group {group.id!r}: no site problem")
        n = max(p.n_steps() for p in problems)
        return cls(group, problems, sample_limits(group, problems[0].now, problems[0].step_s, n))

    def n_steps(self) -> int:
        """The group's horizon: the longest of its sites' (every site is planned over it)."""
        return max(p.n_steps() for p in self.problems)

    def steps(self) -> tuple[datetime, ...]:
        lead = self.problems[0]
        return tuple(lead.now + timedelta(seconds=k * lead.step_s) for k in range(self.n_steps()))

    def ordered(self) -> tuple[Problem, ...]:
        """The problems in the group's site order (`Group.site_ids`)."""
        by_site = {p.site.id: p for p in self.problems}
        return tuple(by_site[s] for s in self.group.site_ids())


@dataclass(frozen=True)
class GroupPlan:
    """A plan for every site of a group, with what held at each group's node.

    `plans[site_id]` is the site's `Plan` over its own problem's steps (what the planner sends
    and stores per site); `import_kw[group_id]` the net import planned at each group's node
    over the group's steps; `limits` the limits the plan kept (which limit, from which
    source, was in force at each step: to be stored with the plan)."""

    group_id: str
    status: Status
    method: Method
    steps: tuple[datetime, ...]
    plans: Mapping[str, Plan]
    import_kw: Mapping[str, tuple[float, ...]]
    limits: Mapping[str, GroupStepLimits]
    unmet_kwh: float
    message: str | None = None
    build_ms: float = 0.0
    solve_ms: float = 0.0
    stage_values: tuple[float, ...] = ()
    current_a: Mapping[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)
    """Per group with a current limit: the planned current on L1, L2, L3 at its node."""


def validate_group_problem(gp: GroupProblem) -> None:
    """Refuse what no joint plan can mean: a group that is not valid, a site of the group with
    no problem or a problem for a site outside it, problems that disagree on `now`, step or
    options, limits missing or shorter than the horizon; then every problem as `solve` does."""
    problems = validate_group(gp.group)
    if problems:
        raise ProblemError(f"group {gp.group.id!r}: " + "; ".join(str(p) for p in problems))
    wanted = gp.group.site_ids()
    given = [p.site.id for p in gp.problems]
    if sorted(given) != sorted(wanted) or len(set(given)) != len(given):
        raise ProblemError(
            f"group {gp.group.id!r}: one problem per site is needed for {', '.join(wanted)}; "
            f"got {', '.join(given) or 'none'}"
        )
    lead = gp.problems[0]
    for p in gp.problems[1:]:
        if (p.now, p.step_s, p.options) != (lead.now, lead.step_s, lead.options):
            raise ProblemError(
                f"group {gp.group.id!r}: site {p.site.id!r} is planned from another now, step or "
                f"options than {lead.site.id!r}"
            )
    for p in gp.problems:
        validate_problem(p)
    n = gp.n_steps()
    for g in gp.group.walk():
        lim = gp.limits.get(g.id)
        if lim is None:
            raise ProblemError(f"group {g.id!r}: no sampled limits (use grid_models.sample_limits)")
        sizes = {len(lim.max_import_kw), len(lim.max_current_a)}
        if min(sizes) < n:
            raise ProblemError(f"group {g.id!r}: limits cover {min(sizes)} step(s), the plan needs {n}")
        values = (*lim.max_import_kw[:n], *lim.max_current_a[:n])
        if any(math.isnan(v) or v < 0 for v in values):
            raise ProblemError(f"group {g.id!r}: a sampled limit is negative or not a number")


def _couplings(
    group: Group, limits: Mapping[str, GroupStepLimits], site_index: Mapping[str, int]
) -> list[Coupling]:
    """A coupling per group of the tree that has (or is given) a limit: rows exist for every
    quantity the group defines, in force or not, so a re-plan keeps the model's structure."""
    out = []
    for g in group.walk():
        lim = limits[g.id]
        has_import = lim.has_import_limit() or any(x.quantity == "max_import_kw" for x in g.limits)
        has_current = lim.has_current_limit() or any(x.quantity == "max_current_a" for x in g.limits)
        if has_import or has_current:
            members = tuple(site_index[s] for s in g.site_ids())
            out.append(Coupling(g.id, members, has_import, has_current))
    return out


def _site_steps(problem: Problem, n_live: int, n_model: int) -> StepData:
    """A site's series over the group's `n_live` steps, in arrays of the model's length."""
    price = problem.price_eur_per_kwh
    return StepData(
        n_steps=n_live,
        pv_kw=np.array(aligned(problem.pv_kw, n_model, hold_last=False)),
        base_load_kw=np.array(aligned(problem.base_load_kw, n_model, hold_last=False)),
        price_eur_per_kwh=None if price is None else np.array(aligned(price, n_model, hold_last=True)),
        weights={str(k): v for k, v in problem.objective_weights().items()},
    )


def _group_steps(
    problems: Sequence[Problem],
    couplings: Sequence[Coupling],
    limits: Mapping[str, GroupStepLimits],
    n_live: int,
    n_model: int,
) -> GroupStepData:
    """What the joint model loads: the sites' series and the couplings' limits over `n_live`
    steps (the model switches off the steps after them, up to its `n_model`)."""

    def caps(values: Sequence[Sequence[float]]) -> FloatArray:
        out = np.full((len(couplings), n_model), math.inf)
        for c, row in enumerate(values):
            out[c, :n_live] = row[:n_live]
        return out

    return GroupStepData(
        sites=tuple(_site_steps(p, n_live, n_model) for p in problems),
        max_import_kw=caps([limits[c.group_id].max_import_kw for c in couplings]),
        max_current_a=caps([limits[c.group_id].max_current_a for c in couplings]),
    )


@dataclass(frozen=True)
class _Layout:
    """The group's sessions in one list: site `m`'s sessions are `offsets[m] : offsets[m + 1]`."""

    problems: tuple[Problem, ...]
    limits: tuple[list[SessionLimits], ...]
    offsets: tuple[int, ...]

    @classmethod
    def of(cls, gp: GroupProblem, cache: Sequence[dict[object, object]] | None = None) -> _Layout:
        n = gp.n_steps()
        problems = gp.ordered()
        limits = tuple(
            session_limits(p, n, None if cache is None else cache[m])  # type: ignore[arg-type]
            for m, p in enumerate(problems)
        )
        offsets = [0]
        for p in problems:
            offsets.append(offsets[-1] + len(p.sessions))
        return cls(problems, limits, tuple(offsets))

    def all_limits(self) -> list[SessionLimits]:
        return [lim for lims in self.limits for lim in lims]


def _group_smoother(layout: _Layout, slot_of: list[int]) -> Smoother | None:
    """The rounding's smoother of the joint relaxation: each site's (`_relaxed_smoother`) on its
    own slots. Power moves only between one site's cars, so every site's import, and with it
    every aggregate cap, is kept; a group's phase limits are kept by the rounded re-solve."""
    parts = [
        smoother
        for m, (p, lims) in enumerate(zip(layout.problems, layout.limits, strict=True))
        if (smoother := _relaxed_smoother(p, lims, slot_of[layout.offsets[m] : layout.offsets[m + 1]]))
        is not None
    ]
    if not parts:
        return None

    def smooth(power: FloatArray) -> FloatArray | None:
        out: FloatArray | None = None
        for smoother in parts:
            smoothed = smoother(power if out is None else out)
            if smoothed is not None:
                out = smoothed
        return out

    return smooth


def _power_by_site(layout: _Layout, power: FloatArray) -> list[FloatArray]:
    """Rows of `power` (all sessions of the group, in layout order) per site."""
    return [power[layout.offsets[m] : layout.offsets[m + 1]] for m in range(len(layout.problems))]


def check_group_plan(gp: GroupProblem, power_by_site: Sequence[FloatArray]) -> GroupCheckReport:
    """`check_group` of per-site power matrices (sessions × steps, layout order; shorter than
    the group's horizon: nothing drawn after)."""
    n = gp.n_steps()
    problems = gp.ordered()
    sites = {p.site.id: p.site for p in problems}
    power = {}
    for p, rows in zip(problems, power_by_site, strict=True):
        # a site's own plan may end before the group's horizon: it draws nothing after
        full = np.zeros((len(p.sessions), n))
        if len(p.sessions):
            full[:, : min(n, rows.shape[1])] = rows[:, :n]
        power[p.site.id] = SitePower(
            {s.connector_id: full[i].tolist() for i, s in enumerate(p.sessions)},
            {s.connector_id: s.vehicle_phases for s in p.sessions},
            aligned(p.pv_kw, n, hold_last=False),
            aligned(p.base_load_kw, n, hold_last=False),
        )
    limits = {gid: _cut(lim, n) for gid, lim in gp.limits.items()}
    return check_group(gp.group, sites, power, limits, tolerance_a=CHECK_TOLERANCE_A)


def _cut(lim: GroupStepLimits, n: int) -> GroupStepLimits:
    return GroupStepLimits(
        lim.group_id,
        lim.max_import_kw[:n],
        lim.max_current_a[:n],
        lim.import_limit_ids[:n],
        lim.current_limit_ids[:n],
    )


def _group_plan(
    gp: GroupProblem,
    layout: _Layout,
    power_by_site: Sequence[FloatArray],
    report: GroupCheckReport,
    *,
    status: Status,
    method: Method,
    gap: float | None = None,
    message: str | None = None,
    build_ms: float = 0.0,
    solve_ms: float = 0.0,
    stage_values: Sequence[float] = (),
) -> GroupPlan:
    plans = {}
    for p, rows in zip(layout.problems, power_by_site, strict=True):
        n_site = p.n_steps()
        plans[p.site.id] = build_plan(
            p,
            rows[:, :n_site],
            status=status,
            method=method,
            gap=gap,
            message=message,
            build_ms=build_ms,
            solve_ms=solve_ms,
            stage_values=stage_values,
        )
    n = gp.n_steps()
    return GroupPlan(
        group_id=gp.group.id,
        status=status,
        method=method,
        steps=gp.steps(),
        plans=plans,
        import_kw={gid: tuple(v.tolist()) for gid, v in report.import_kw.items()},
        limits={gid: _cut(lim, n) for gid, lim in gp.limits.items()},
        unmet_kwh=sum(plan.unmet_kwh for plan in plans.values()),
        message=message,
        build_ms=build_ms,
        solve_ms=solve_ms,
        stage_values=tuple(stage_values),
        current_a={gid: tuple(tuple(row.tolist()) for row in v) for gid, v in report.current_a.items()},
    )


def _fallback_power(gp: GroupProblem, layout: _Layout) -> list[FloatArray]:
    """Each site's proportional fallback (`optimizer.fallback`), then at each step every group
    whose limit it breaks scales its sites' cars down by the one factor that keeps it (0 where
    base load and PV alone break it); cars then under their minimum stop for that step."""
    n = gp.n_steps()
    powers = []
    for p in layout.problems:
        own, _ = proportional_power(p)
        rows = np.zeros((len(p.sessions), n))
        rows[:, : own.shape[1]] = own
        powers.append(rows)
    pv = [np.array(aligned(p.pv_kw, n, hold_last=False)) for p in layout.problems]
    base = [np.array(aligned(p.base_load_kw, n, hold_last=False)) for p in layout.problems]
    index = {p.site.id: m for m, p in enumerate(layout.problems)}
    entry = [
        site_entry_currents(p.site, {s.connector_id: s.vehicle_phases for s in p.sessions})
        for p in layout.problems
    ]
    # children before parents: scaling under a child never breaks its parent's limit
    for g in reversed(list(gp.group.walk())):
        lim = gp.limits[g.id]
        members = [index[s] for s in g.site_ids()]
        for t in range(n):
            factor = 1.0
            cap_kw = lim.max_import_kw[t]
            if math.isfinite(cap_kw):
                ev = sum(float(powers[m][:, t].sum()) for m in members)
                fixed = sum(float(base[m][t] - pv[m][t]) for m in members)
                if ev > 1e-12:
                    factor = min(factor, max(0.0, (cap_kw - fixed) / ev))
            cap_a = lim.max_current_a[t]
            if math.isfinite(cap_a):
                for ph in range(3):
                    drawn = fixed_a = 0.0
                    for m in members:
                        row = entry[m][ph]
                        fixed_a += row.pv_a_per_kw * pv[m][t] + row.base_load_a_per_kw * base[m][t]
                        for i, s in enumerate(layout.problems[m].sessions):
                            drawn += row.connector_a_per_kw.get(s.connector_id, 0.0) * powers[m][i, t]
                    if drawn > 1e-12:
                        factor = min(factor, max(0.0, (cap_a - fixed_a) / drawn))
            if factor < 1.0:
                for m in members:
                    scaled = powers[m][:, t] * factor
                    pmin = np.array([lim_.pmin_kw for lim_ in layout.limits[m]])
                    scaled[scaled < pmin - 1e-9] = 0.0
                    powers[m][:, t] = scaled
    return powers


def group_fallback_plan(
    gp: GroupProblem, message: str, build_ms: float = 0.0, solve_ms: float = 0.0
) -> GroupPlan:
    """The proportional plan scaled into every group's limits, flagged `fallback` with `message`."""
    layout = _Layout.of(gp)
    power = _fallback_power(gp, layout)
    report = check_group_plan(gp, power)
    return _group_plan(
        gp,
        layout,
        power,
        report,
        status="fallback",
        method="fallback",
        message=message,
        build_ms=build_ms,
        solve_ms=solve_ms,
    )


def _finish_group(
    gp: GroupProblem,
    layout: _Layout,
    outcome: StageOutcome,
    method: Method,
    slot_of: list[int],
    build_ms: float,
    solve_ms: float,
) -> GroupPlan:
    """The plan of a solved model, checked against every site's and group's limit (a failed
    check gives the fallback), with each site's set-point changes smoothed where that keeps
    every group's limit too."""
    n = gp.n_steps()
    if not outcome.ok:
        return group_fallback_plan(
            gp, f"no optimal plan ({outcome.message or outcome.status})", build_ms, solve_ms
        )
    power = outcome.power_kw[slot_of, :n] if slot_of else np.zeros((0, n))
    by_site = _power_by_site(layout, power)
    report = check_group_plan(gp, by_site)
    if not report.ok:
        n_bad = report.protection_violations + len(report.violations)
        return group_fallback_plan(
            gp, f"solved plan failed the feasibility check ({n_bad} violation(s))", build_ms, solve_ms
        )
    t0 = time.perf_counter()
    smoothed = []
    for p, rows in zip(layout.problems, by_site, strict=True):
        n_site = p.n_steps()
        own = _smoothed(p, rows[:, :n_site], session_limits(p, n_site))
        full = rows.copy()
        full[:, :n_site] = own
        smoothed.append(full)
    smooth_report = check_group_plan(gp, smoothed)
    if smooth_report.ok:
        # moving power between a site's cars keeps its import, not always its phase currents
        by_site, report = smoothed, smooth_report
    solve_ms += (time.perf_counter() - t0) * 1e3
    return _group_plan(
        gp,
        layout,
        by_site,
        report,
        status="optimal" if outcome.status == "optimal" else "feasible",
        method=method,
        gap=outcome.gap,
        message=outcome.message,
        build_ms=build_ms,
        solve_ms=solve_ms,
        stage_values=outcome.stage_values,
    )


def solve_group(gp: GroupProblem) -> GroupPlan:
    """The joint plan of every site of the group (see the module docstring); deterministic.

    The planner's one entry point for a planning unit that is a group: raises `ProblemError`
    on a problem no plan can mean, never for a hard one (an infeasible or failed solve gives
    `group_fallback_plan`)."""
    validate_group_problem(gp)
    t0 = time.perf_counter()
    n = gp.n_steps()
    layout = _Layout.of(gp)
    lead = layout.problems[0]
    all_limits = layout.all_limits()
    if not all_limits:
        return _group_plan(
            gp,
            layout,
            [np.zeros((0, n)) for _ in layout.problems],
            check_group_plan(gp, [np.zeros((0, n)) for _ in layout.problems]),
            status="optimal",
            method="lp",
        )
    method = choose_method(lead, all_limits)
    sites = tuple(p.site for p in layout.problems)
    site_index = {s.id: m for m, s in enumerate(sites)}
    slots, slot_sites, slot_data = [], [], []
    for m, (p, lims) in enumerate(zip(layout.problems, layout.limits, strict=True)):
        for s, lim in zip(p.sessions, lims, strict=True):
            slots.append((s.connector_id, s.vehicle_phases))
            slot_sites.append(m)
            slot_data.append(_slot_data(p, lim))
    couplings = _couplings(gp.group, gp.limits, site_index)
    try:
        model = StagedLp(
            sites,
            slots,
            n,
            lead.step_s,
            threads=lead.options.threads,
            slot_sites=slot_sites,
            couplings=couplings,
        )
        model.load(_group_steps(layout.problems, couplings, gp.limits, n, n), slot_data)
    except Exception as exc:  # a model that cannot be built still gets a safe plan
        return group_fallback_plan(gp, f"model build failed: {exc}")
    t1 = time.perf_counter()
    slot_of = list(range(len(slots)))
    smooth = _group_smoother(layout, slot_of)
    outcome, method, mip_build_s = solve_loaded(
        model, lead, slot_of, method, lambda: _mip_of(model, lead), smooth
    )
    t2 = time.perf_counter()
    build_s = t1 - t0 + mip_build_s
    return _finish_group(gp, layout, outcome, method, slot_of, build_s * 1e3, (t2 - t1 - mip_build_s) * 1e3)


@dataclass
class _KeptGroup:
    model: StagedLp
    slot_index: dict[tuple[int, str, int], int]
    step_s: int
    couplings: tuple[Coupling, ...]
    mip: StagedLp | None = None


class PersistentGroupPlanner:
    """A group's joint model kept alive between re-plans, as `PersistentPlanner` keeps a site's:
    one slot per (site, connector, vehicle-phase mode) planned so far, so an event changes only
    bounds, right-hand sides and a few coefficients and the stages restart from their last
    bases; a pair never planned, a longer horizon or other couplings rebuild the model, which
    takes the old bases over. The same stage optima as `solve_group` (tie-break stages cut by
    their iteration budget may differ). The planner keeps one per planning unit (a group), and
    a new one when the group or a member site's wiring changes."""

    def __init__(self, group: Group, sites: Sequence[Site]) -> None:
        by_id = {s.id: s for s in sites}
        self.group = group
        self.sites = tuple(by_id[s] for s in group.site_ids())
        self._state: _KeptGroup | None = None
        self._known: set[tuple[int, str, int]] = set()
        self._limits_cache: list[dict[object, object]] = [{} for _ in self.sites]

    def _model(
        self,
        n_steps: int,
        step_s: int,
        threads: int,
        pairs: list[tuple[int, str, int]],
        couplings: tuple[Coupling, ...],
    ) -> _KeptGroup:
        """The kept model, rebuilt only when the step, a longer horizon, other couplings or a
        (site, connector, mode) never planned before needs it (slots in a fixed site order)."""
        st = self._state
        self._known.update(pairs)
        if (
            st is not None
            and st.step_s == step_s
            and n_steps <= st.model.T
            and st.couplings == couplings
            and all(p in st.slot_index for p in pairs)
        ):
            return st
        keys = [
            (m, c.id, mode)
            for m, site in enumerate(self.sites)
            for c in site.connectors()
            for mode in (1, 3)
            if (m, c.id, mode) in self._known
        ]
        same = st is not None and st.step_s == step_s and st.couplings == couplings
        n_model = max(n_steps, st.model.T) if (st is not None and same) else n_steps
        model = StagedLp(
            self.sites,
            [(cid, mode) for _, cid, mode in keys],
            n_model,
            step_s,
            threads=threads,
            slot_sites=[m for m, _, _ in keys],
            couplings=couplings,
        )
        if st is not None and same:
            model.inherit_bases(st.model)
        self._state = _KeptGroup(model, {key: k for k, key in enumerate(keys)}, step_s, couplings)
        return self._state

    def update(self, gp: GroupProblem) -> GroupPlan:
        """The plan of `gp` (whose group and sites must be this planner's), re-solved warm."""
        if gp.group != self.group or tuple(p.site for p in gp.ordered()) != self.sites:
            raise ValueError("PersistentGroupPlanner.update: the problem is for another group or wiring")
        validate_group_problem(gp)
        t0 = time.perf_counter()
        n = gp.n_steps()
        layout = _Layout.of(gp, self._limits_cache)
        lead = layout.problems[0]
        all_limits = layout.all_limits()
        if not all_limits:
            return solve_group(gp)
        method = choose_method(lead, all_limits)
        pairs = [
            (m, s.connector_id, _slot_mode(lim.connector, s.vehicle_phases))
            for m, (p, lims) in enumerate(zip(layout.problems, layout.limits, strict=True))
            for s, lim in zip(p.sessions, lims, strict=True)
        ]
        couplings = tuple(_couplings(gp.group, gp.limits, {s.id: m for m, s in enumerate(self.sites)}))
        st = self._model(n, lead.step_s, lead.options.threads, pairs, couplings)
        slot_of = [st.slot_index[p] for p in pairs]
        slots = [SlotData() for _ in range(st.model.K)]
        i = 0
        for p, lims in zip(layout.problems, layout.limits, strict=True):
            for lim in lims:
                slots[slot_of[i]] = _slot_data(p, lim)
                i += 1
        st.model.load(_group_steps(layout.problems, couplings, gp.limits, n, st.model.T), slots)
        t1 = time.perf_counter()

        def kept_mip() -> StagedLp:
            st.mip = _mip_of(st.model, lead, st.mip)
            return st.mip

        smooth = _group_smoother(layout, slot_of)
        outcome, method, mip_build_s = solve_loaded(st.model, lead, slot_of, method, kept_mip, smooth)
        t2 = time.perf_counter()
        if not outcome.ok:
            self._state = None  # start afresh next time
        build_ms, solve_ms = (t1 - t0 + mip_build_s) * 1e3, (t2 - t1 - mip_build_s) * 1e3
        return _finish_group(gp, layout, outcome, method, slot_of, build_ms, solve_ms)
