"""The feasibility oracle every optimizer test runs (acnportal habit: every algorithm × scenario
checked against every physical rule), and small sites built through the dataclasses."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from grid_models.electrical import check
from grid_models.site import (
    ChargePoint,
    Connector,
    GridConnection,
    Load,
    Phase,
    Protection,
    PvPlant,
    Site,
)
from grid_models.sitefile import load_site
from optimizer.plan import session_limits
from optimizer.problem import Plan, Problem, aligned

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


def sample_site(name: str) -> Site:
    return load_site(REPO / "examples" / "sites" / f"{name}.json")


def assert_feasible(problem: Problem, plan: Plan, *, min_current: bool | None = None) -> None:
    """Every rule of formats §5/§7 on `plan`: protections on every phase in both directions,
    the grid connection, charging windows, no over-delivery, the minimum current, the profile
    never above the plan, totals consistent."""
    n = problem.n_steps()
    assert len(plan.steps) == n and plan.steps[0] == problem.now
    assert set(plan.sessions) == {s.session_id for s in problem.sessions}
    pv = aligned(problem.pv_kw, n, hold_last=False)
    base = aligned(problem.base_load_kw, n, hold_last=False)
    report = check(
        problem.site,
        {s.connector_id: plan.sessions[s.session_id].power_kw for s in problem.sessions},
        {s.connector_id: s.vehicle_phases for s in problem.sessions},
        pv,
        base,
    )
    if plan.status == "fallback" and not report.ok:
        # only steps where PV and base alone break a limit may fail, and there EVs draw nothing
        for v in report.violations:
            assert all(plan.sessions[s.session_id].power_kw[v.step] == 0 for s in problem.sessions)
    else:
        assert report.ok, (report.violations[:5], report.grid_violations[:5])
    dt_h = problem.step_s / 3600
    rule = problem.options.min_current if min_current is None else min_current
    for s, lim in zip(problem.sessions, session_limits(problem), strict=True):
        sp = plan.sessions[s.session_id]
        for t, p in enumerate(sp.power_kw):
            assert p >= 0
            assert p <= lim.pmax_kw + 1e-6
            if not (lim.start <= t < lim.end):
                assert p == 0, (s.session_id, t, p)
            if rule and lim.pmin_kw > 0:
                assert p == 0 or p >= lim.pmin_kw - 1e-6, (s.session_id, t, p, lim.pmin_kw)
        assert math.isclose(sp.energy_planned_kwh, sum(sp.power_kw) * dt_h, abs_tol=1e-9)
        # a need under one step at the minimum power may be planned that step (the car stops)
        step_at_min_kwh = lim.pmin_kw * dt_h if rule and s.energy_needed_kwh > 0 else 0.0
        most_kwh = max(s.energy_needed_kwh + s.energy_extra_kwh, step_at_min_kwh)
        assert sp.energy_planned_kwh <= most_kwh + 1e-5
        assert math.isclose(sp.unmet_kwh, max(0.0, s.energy_needed_kwh - sp.energy_planned_kwh), abs_tol=1e-9)
        assert_profile_within_plan(problem, plan, s.session_id)
    if plan.method in OPTIMIZED and problem.options.tie_breaks:
        assert_shortage_shared(problem, plan)
    ev = [sum(plan.sessions[s.session_id].power_kw[t] for s in problem.sessions) for t in range(n)]
    for t in range(n):
        assert math.isclose(plan.grid_import_kw[t], max(0.0, ev[t] + base[t] - pv[t]), abs_tol=1e-9)
        assert math.isclose(plan.pv_used_kw[t], min(pv[t], ev[t] + base[t]), abs_tol=1e-9)


OPTIMIZED = ("lp", "mip", "lp_heuristic", "perfect_foresight")
"""Methods that promise the fairness tie-break under shortage."""


def assert_shortage_shared(
    problem: Problem, plan: Plan, rel_tol: float = 0.05, abs_tol_kwh: float = 1e-3
) -> None:
    """Under shortage, never all of it on some drivers: no session that could charge (need,
    window, power) gets 0 while another of the same priority gets more than its share of the
    planned energy in proportion to need (+ `rel_tol` of that share + `abs_tol_kwh`)."""
    if plan.unmet_kwh <= 1e-6:
        return
    lims = session_limits(problem)
    served = sum(sp.energy_planned_kwh for sp in plan.sessions.values())
    need = sum(s.energy_needed_kwh for s in problem.sessions)
    for s, lim in zip(problem.sessions, lims, strict=True):
        could = s.energy_needed_kwh > 1e-6 and lim.end > lim.start and lim.pmax_kw > 0
        if not could or plan.sessions[s.session_id].energy_planned_kwh > 1e-6:
            continue
        for o in problem.sessions:
            if o.priority != s.priority or o is s:
                continue
            share = served * o.energy_needed_kwh / need
            got = plan.sessions[o.session_id].energy_planned_kwh
            assert got <= share * (1 + rel_tol) + abs_tol_kwh, (
                f"{s.session_id} gets nothing while {o.session_id} gets {got:.3f} kWh "
                f"(proportional share {share:.3f} kWh)"
            )


def profile_limits(plan: Plan, session_id: str) -> list[float]:
    """The profile's limit in force in each step."""
    sp = plan.sessions[session_id]
    periods = sp.charging_profile.charging_profile_period
    out = []
    for k in range(len(plan.steps)):
        at = k * plan.step_s
        out.append([p.limit for p in periods if p.start_period <= at][-1])
    return out


def assert_profile_within_plan(problem: Problem, plan: Plan, session_id: str) -> None:
    sp = plan.sessions[session_id]
    prof = sp.charging_profile
    periods = prof.charging_profile_period
    assert prof.start_date_time == plan.steps[0]
    assert periods[0].start_period == 0
    assert all(a.start_period < b.start_period for a, b in pairwise(periods))
    assert all(a.limit != b.limit for a, b in pairwise(periods)), "periods not merged"
    assert periods[-1].limit == 0.0, "a plan that stops must end with a 0 period"
    lim = next(x for x in session_limits(problem) if problem.sessions[x.index].session_id == session_id)
    v = problem.site.phase_voltage_v
    for k, limit in enumerate(profile_limits(plan, session_id)):
        kw = limit / 1000 if prof.charging_rate_unit == "W" else limit * v * lim.phases_drawn / 1000
        assert kw <= sp.power_kw[k] + 1e-6
        assert sp.power_kw[k] - kw < (0.1 * v * lim.phases_drawn / 1000 + 1e-6)
        assert round(limit, 1) == limit


def one_breaker_site(
    rated_a: float = 32.0,
    connectors: list[tuple[str, tuple[Phase, ...], float]] | None = None,
    grid_kw: float = 100.0,
    pv_kwp: float = 0.0,
    with_load: bool = False,
) -> Site:
    """A site with one breaker `main` feeding the given (id, phases, max A) connectors."""
    conns = connectors or [("c1", ("L1",), 10.0)]
    return Site(
        id="hand",
        name="hand",
        timezone="UTC",
        latitude=0.0,
        longitude=0.0,
        phase_voltage_v=230.0,
        grid_connection=GridConnection(grid_kw),
        protections=(Protection("main", None, rated_a),),
        charge_points=tuple(
            ChargePoint(f"cp-{cid}", "main", (Connector(cid, f"E-{cid}", "1", phases, max_a),))
            for cid, phases, max_a in conns
        ),
        pv_plants=(PvPlant("pv", "main", pv_kwp),) if pv_kwp else (),
        loads=(Load("building", "main"),) if with_load else (),
    )


def depot_site(n_connectors: int = 120, group: int = 12) -> Site:
    """A depot: a 400 A main, feeders of `group` connectors (rotated three-phase 32 A and
    single-phase 16 A), PV and a building load."""
    feeders = []
    cps = []
    rot: list[tuple[Phase, ...]] = [("L1", "L2", "L3"), ("L2", "L3", "L1"), ("L3", "L1", "L2")]
    for i in range(n_connectors):
        f = f"feeder{i // group}"
        if i % group == 0:
            feeders.append(Protection(f, "main", 125.0))
        if i % 4 == 3:
            phases: tuple[Phase, ...] = (("L1",), ("L2",), ("L3",))[i % 3]
            max_a = 16.0
        else:
            phases, max_a = rot[i % 3], 32.0
        cps.append(ChargePoint(f"cp{i}", f, (Connector(f"c{i}", f"DEPOT*E{i:04d}", "1", phases, max_a),)))
    return Site(
        id="depot",
        name="synthetic depot",
        timezone="UTC",
        latitude=0.0,
        longitude=0.0,
        phase_voltage_v=230.0,
        grid_connection=GridConnection(max(250.0, 2.2 * n_connectors)),
        protections=(Protection("main", None, max(400.0, 3.5 * n_connectors)), *feeders),
        charge_points=tuple(cps),
        pv_plants=(PvPlant("pv", "main", 150.0),),
        loads=(Load("building", "main"),),
    )


def pv_curve(n: int, peak_kw: float, step_s: int = 900, start_h: float = 6.0) -> tuple[float, ...]:
    """A bell of PV between 07:00 and 19:00 for steps starting at `start_h` o'clock."""
    out = []
    for k in range(n):
        h = (start_h + (k + 0.5) * step_s / 3600) % 24
        out.append(round(max(0.0, peak_kw * math.sin(math.pi * (h - 7) / 12)) if 7 <= h <= 19 else 0.0, 4))
    return tuple(out)


def at(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)
