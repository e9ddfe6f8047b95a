"""Under shortage the unmet energy is split in proportion to need, never all of it on one
driver — with the minimum-current rule on (MIP, LP rounding, the persistent planner) as well
as off (LP). Every plan also goes through the feasibility oracle, which checks the minimum
current and `assert_shortage_shared` on every optimised plan of the suite."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from optimizer_oracle import assert_feasible, at, one_breaker_site, sample_site

from grid_models.site import Phase
from optimizer import PersistentPlanner, Plan, Problem, Session, SolveOptions, solve
from optimizer.plan import session_limits

OFFICE_NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

WAYS = ["solve", "persistent", "heuristic", "first_step", "first_hour"]


def plan_by(way: str, problem: Problem) -> Plan:
    if way in ("first_step", "first_hour"):
        # the EMS's way: the MIP decides the first step (or hour), later steps are rounded
        planner = PersistentPlanner(problem.site)
        horizon_s = 900 if way == "first_step" else 3600
        problem = replace(problem, options=replace(problem.options, mip_horizon_s=horizon_s))
        planner.update(problem)
        return planner.update(problem)
    if way == "persistent":
        planner = PersistentPlanner(problem.site)
        planner.update(problem)  # a second update re-solves warm
        return planner.update(problem)
    if way == "heuristic":
        opts = problem.options
        problem = Problem(
            problem.site,
            problem.now,
            problem.sessions,
            options=SolveOptions(min_current=opts.min_current, mip_max_binaries=0),
        )
    return solve(problem)


def three_cars_behind_32a(min_current: bool) -> Problem:
    """The issue's case: three 22 kW cars behind zedbox1 (32 A) for 117 min, ~40 kWh each."""
    site = sample_site("office-pv")
    dep = OFFICE_NOW + timedelta(minutes=117)
    sessions = tuple(Session(f"v{i}", f"cp{i + 4}-1", 40.0 - i * 0.3, dep, 3) for i in range(3))
    return Problem(site, OFFICE_NOW, sessions, options=SolveOptions(min_current=min_current))


def planned(plan: Plan) -> dict[str, float]:
    return {k: v.energy_planned_kwh for k, v in plan.sessions.items()}


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("min_current", [True, False])
def test_three_cars_behind_one_breaker_share_the_shortage(min_current: bool, way: str) -> None:
    p = three_cars_behind_32a(min_current)
    plan = plan_by(way, p)
    assert_feasible(p, plan)
    if min_current:
        assert plan.method == ("lp_heuristic" if way == "heuristic" else "mip")
    served = sum(planned(plan).values())
    need = sum(s.energy_needed_kwh for s in p.sessions)
    # 32 A × 3 phases × 230 V for 7 steps of 15 min: 38.64 kWh of 118.1 kWh
    assert served == pytest.approx(38.64, abs=1e-4)
    assert plan.unmet_kwh == pytest.approx(need - 38.64, abs=1e-4)
    for s in p.sessions:
        got = plan.sessions[s.session_id].energy_planned_kwh
        assert got > 1.0
        assert got == pytest.approx(served * s.energy_needed_kwh / need, abs=0.05)
    if min_current:
        pmin = 6 * 230 * 3 / 1000
        for sp in plan.sessions.values():
            assert all(x == 0 or x >= pmin - 1e-6 for x in sp.power_kw)


def test_min_current_keeps_the_lp_stage_optima_when_they_are_reachable() -> None:
    exact = solve(three_cars_behind_32a(True))
    relaxed = solve(three_cars_behind_32a(False))
    assert exact.status == "optimal"
    # unmet, objective and the fairness stages equal the relaxation's: the rounding is exact
    assert exact.stage_values[:4] == pytest.approx(relaxed.stage_values[:4], rel=1e-6, abs=1e-6)


def mixed_phases(min_current: bool) -> Problem:
    """A three-phase car and three single-phase cars, one on each phase, behind one 32 A
    breaker: every phase carries the three-phase car and one single-phase car, and an amp
    gives the same energy to either, so the least unmet energy leaves the split free (the
    single-phase cars get the same energy, whatever the split: they need the same)."""
    conns: list[tuple[str, tuple[Phase, ...], float]] = [
        ("tri", ("L2", "L3", "L1"), 32.0),
        ("a", ("L1",), 32.0),
        ("b", ("L2",), 32.0),
        ("c", ("L3",), 32.0),
    ]
    site = one_breaker_site(32.0, conns)
    sessions = (
        Session("three", "tri", 30.0, at(2), 3),
        Session("one-a", "a", 12.0, at(2), 1),
        Session("one-b", "b", 12.0, at(2), 1),
        Session("one-c", "c", 12.0, at(2), 1),
    )
    return Problem(site, at(0), sessions, options=SolveOptions(min_current=min_current))


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("min_current", [True, False])
def test_single_and_three_phase_cars_share_the_shortage(min_current: bool, way: str) -> None:
    p = mixed_phases(min_current)
    plan = plan_by(way, p)
    assert_feasible(p, plan)
    lp = solve(mixed_phases(False))
    assert plan.unmet_kwh == pytest.approx(lp.unmet_kwh, abs=1e-4)
    assert plan.unmet_kwh == pytest.approx(66.0 - 44.16, abs=1e-4)
    shares = {s.session_id: plan.sessions[s.session_id].unmet_kwh / s.energy_needed_kwh for s in p.sessions}
    lp_shares = {s.session_id: lp.sessions[s.session_id].unmet_kwh / s.energy_needed_kwh for s in p.sessions}
    # 32 A on three phases for 2 h: 44.16 kWh of 66 kWh; the same share of unmet for each
    assert max(lp_shares.values()) - min(lp_shares.values()) < 1e-4
    assert max(shares.values()) == pytest.approx(max(lp_shares.values()), abs=1e-3)
    assert max(shares.values()) - min(shares.values()) < 1e-3
    assert all(plan.sessions[s.session_id].energy_planned_kwh > 1.0 for s in p.sessions)


def test_many_cars_under_one_breaker_with_min_current_are_fair() -> None:
    # six single-phase cars on L1 behind 16 A: the relaxed fair split (2.67 A each) is below the
    # 6 A minimum, so the cars must take turns; nobody may be left out
    conns: list[tuple[str, tuple[Phase, ...], float]] = [(f"c{i}", ("L1",), 16.0) for i in range(6)]
    site = one_breaker_site(16.0, conns)
    sessions = tuple(Session(f"s{i}", f"c{i}", 8.0 + i, at(3)) for i in range(6))
    for min_current in (True, False):
        p = Problem(site, at(0), sessions, options=SolveOptions(min_current=min_current))
        for way in WAYS:
            plan = plan_by(way, p)
            assert_feasible(p, plan)
            # 16 A × 230 V for 3 h = 11.04 kWh of 63 kWh
            assert plan.unmet_kwh == pytest.approx(63.0 - 11.04, abs=1e-4), (min_current, way)
            assert all(sp.energy_planned_kwh > 0.5 for sp in plan.sessions.values()), (min_current, way)
            lims = session_limits(p)
            if min_current:
                for s, lim in zip(sessions, lims, strict=True):
                    assert all(
                        x == 0 or x >= lim.pmin_kw - 1e-6 for x in plan.sessions[s.session_id].power_kw
                    )
