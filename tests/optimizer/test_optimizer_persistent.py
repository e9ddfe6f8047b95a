"""`PersistentPlanner`: a model kept alive across session events gives the same stage optima as
a cold `solve` of the same problem."""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import pytest
from optimizer_oracle import NOW, assert_feasible, at, one_breaker_site, pv_curve, sample_site
from test_optimizer_solve import depot_problem

from optimizer import PersistentPlanner, Problem, Session, SolveOptions, solve

LP = SolveOptions(min_current=False)


def office_events() -> list[Problem]:
    site = sample_site("office-pv")
    conns = site.connectors()
    n = 48
    base = Problem(
        site,
        NOW,
        tuple(
            Session(f"s{i}", conns[i].id, 10.0 + i, at(8 + i % 4), vehicle_phases=3 if i % 2 else 1)
            for i in range(6)
        ),
        pv_kw=pv_curve(n, 30.0),
        base_load_kw=(5.0,) * n,
        price_eur_per_kwh=tuple(0.2 - 0.002 * k for k in range(n)),
        objective="cost",
        options=LP,
    )
    arrival = replace(
        base, sessions=(*base.sessions, Session("new", conns[8].id, 15.0, at(9), vehicle_phases=1))
    )
    departure = replace(arrival, sessions=tuple(s for s in arrival.sessions if s.session_id != "s2"))
    # the same connector now holds a single-phase car: another vehicle-phase slot
    swap = replace(
        departure,
        sessions=tuple(
            replace(s, vehicle_phases=3 - 2 * (s.vehicle_phases == 3)) if s.session_id == "s1" else s
            for s in departure.sessions
        ),
    )
    preference = replace(
        swap,
        sessions=tuple(
            replace(s, energy_needed_kwh=40.0, departure=at(11)) if s.session_id == "s0" else s
            for s in swap.sessions
        ),
    )
    shortage = replace(
        preference, sessions=tuple(replace(s, energy_needed_kwh=80.0) for s in preference.sessions)
    )
    self_consumption = replace(shortage, objective="self_consumption")
    return [base, arrival, departure, swap, preference, shortage, self_consumption, base]


def test_persistent_planner_equals_cold_solve_on_every_event() -> None:
    planner = PersistentPlanner(sample_site("office-pv"))
    for problem in office_events():
        warm = planner.update(problem)
        cold = solve(problem)
        assert_feasible(problem, warm)
        assert warm.status == cold.status == "optimal"
        assert len(warm.stage_values) == len(cold.stage_values)
        for a, b in zip(warm.stage_values, cold.stage_values, strict=True):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-5)
        assert warm.unmet_kwh == pytest.approx(cold.unmet_kwh, abs=1e-5)
        assert warm.grid_import_kwh == pytest.approx(cold.grid_import_kwh, abs=1e-4)


def test_a_warm_replan_is_one_highs_run_proved_for_every_stage() -> None:
    """After the first plan every re-plan solves all stages as one weighted LP from the kept
    basis, and the lexicographic proof from its final basis covers every stage (what makes a
    re-plan cheap); the stage optima are those of a cold solve (previous test)."""
    planner = PersistentPlanner(sample_site("office-pv"))
    problems = office_events()
    planner.update(problems[0])
    for problem in problems[1:]:
        warm = planner.update(problem)
        model = planner._state.model if planner._state is not None else None
        assert model is not None
        assert model.n_runs == 1
        assert model.all_run_proved == len(warm.stage_values) >= 4


def test_persistent_planner_under_the_exact_minimum_current_rule() -> None:
    """The optimizer's default (min-current on, few sessions: `mip`): the warm rounding is kept
    only when proved, so the plan reaches the cold exact plan's optima of stages 1-2 (1-4 under
    shortage) and no step lies between 0 and the minimum current."""
    planner = PersistentPlanner(sample_site("office-pv"))
    for problem in office_events():
        problem = replace(problem, options=SolveOptions(min_current=True))
        warm = planner.update(problem)
        cold = solve(problem)
        assert_feasible(problem, warm)  # the oracle checks the 0-or-at-least-6-A rule too
        assert warm.method == cold.method == "mip"
        assert warm.status == "optimal"
        # stages 1-2, and the fairness stages 3-4 when there is a shortage (six stages); the
        # tie-breaks after them follow each plan's own on/off pattern
        proved = 4 if len(cold.stage_values) == 6 else 2
        assert len(warm.stage_values) == len(cold.stage_values)
        for a, b in zip(warm.stage_values[:proved], cold.stage_values[:proved], strict=True):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-5)


@pytest.mark.parametrize("mip_horizon_s", [900, 3600])
def test_persistent_planner_with_the_mip_over_the_first_steps(
    mip_horizon_s: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The EMS's way (`mip_horizon_s` a step): a MIP over the kept model's slots where the
    rounding is not proved, its later steps rounded. Which of equal optima the MIP ends with
    decides that rounding, so warm and cold plans may differ past the horizon; both meet
    every limit and the 0-or-at-least-6-A rule on every step. A thin PV surplus that the
    relaxation spreads below 6 A right away sends some of these plans to the MIP."""
    internals = importlib.import_module("optimizer.solve")
    exact = internals._exact
    mips: list[int] = []

    def counted(*args: Any) -> Any:
        mips.append(1)
        return exact(*args)

    monkeypatch.setattr(internals, "_exact", counted)
    site = one_breaker_site(32.0, [("a", ("L1",), 16.0), ("b", ("L2",), 16.0)], pv_kwp=5.0)
    pv = tuple(1.0 + 0.1 * k for k in range(16))
    sa, sb = Session("sa", "a", 3.0, at(4)), Session("sb", "b", 2.0, at(3))
    planner = PersistentPlanner(site)
    options = SolveOptions(min_current=True, mip_horizon_s=mip_horizon_s)
    for sessions in ((sa,), (sa, sb), (sb,)):
        problem = Problem(site, NOW, sessions, pv_kw=pv, options=options)
        warm = planner.update(problem)
        cold = solve(problem)
        for plan in (warm, cold):
            assert_feasible(problem, plan)
            assert plan.method == "mip" and plan.status == "optimal"
            assert plan.unmet_kwh == pytest.approx(0.0, abs=1e-6)
    assert mips  # the MIP path ran, not only roundings proved at once


def test_persistent_planner_on_a_depot_with_the_rounding_heuristic() -> None:
    problem = depot_problem(40, min_current=True, n_steps=32)
    problem = replace(problem, options=SolveOptions(min_current=True, mip_max_binaries=0))
    planner = PersistentPlanner(problem.site)
    first = planner.update(problem)
    assert_feasible(problem, first)
    assert first.method == "lp_heuristic"
    fewer = replace(problem, sessions=problem.sessions[1:])
    second = planner.update(fewer)
    assert_feasible(fewer, second)


def test_persistent_planner_refuses_another_site() -> None:
    planner = PersistentPlanner(sample_site("office-pv"))
    with pytest.raises(ValueError, match="another site"):
        planner.update(Problem(sample_site("public-carpark"), NOW, ()))


def test_persistent_planner_on_a_depot_with_rebuilds_and_returning_sessions() -> None:
    # a shortage on an oversized depot; a connector used for the first time rebuilds the model
    # (taking over the kept bases), a session leaving and coming back reuses its slot: every
    # plan has the cold solve's optima of stages 1-2 and the fairness stage
    base = depot_problem(30, n_steps=32)
    base = replace(base, sessions=tuple(replace(s, energy_needed_kwh=60.0) for s in base.sessions))
    conns = base.site.connectors()
    gone = replace(base, sessions=base.sessions[1:])
    new_conn = replace(base, sessions=(*base.sessions, Session("new", conns[40].id, 30.0, at(6))))
    one_phase = replace(
        new_conn, sessions=(*new_conn.sessions, Session("new1", conns[41].id, 20.0, at(5), vehicle_phases=1))
    )
    longer = replace(base, sessions=(*base.sessions, Session("late", conns[42].id, 30.0, at(10))))
    planner = PersistentPlanner(base.site)
    for problem in (base, gone, base, new_conn, one_phase, gone, longer, base):
        warm = planner.update(problem)
        cold = solve(problem)
        assert_feasible(problem, warm)
        assert warm.unmet_kwh > 1.0
        assert warm.status == cold.status == "optimal"
        for a, b in zip(warm.stage_values[:3], cold.stage_values[:3], strict=True):
            assert a == pytest.approx(b, rel=1e-6, abs=1e-5)
