"""Extra energy (`Session.energy_extra_kwh`): what a car may take beyond an estimated need,
from PV that no need takes, and never from the grid."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from optimizer_oracle import NOW, assert_feasible, at, one_breaker_site, pv_curve, sample_site

from optimizer import PersistentPlanner, Problem, Session, SolveOptions, solve
from optimizer.problem import ProblemError, extra_value_per_kwh, extra_values_per_kwh
from optimizer.pyomo_model import solve_reference

LP = SolveOptions(min_current=False)
N = 48


def _office(sessions: tuple[Session, ...], pv_peak_kw: float, **kwargs: object) -> Problem:
    return Problem(
        sample_site("office-pv"),
        NOW,
        sessions,
        pv_kw=pv_curve(N, pv_peak_kw),
        base_load_kw=(5.0,) * N,
        options=LP,
        **kwargs,  # type: ignore[arg-type]
    )


def _planned(plan: object, session_id: str) -> float:
    return plan.sessions[session_id].energy_planned_kwh  # type: ignore[attr-defined, no-any-return]


def test_extra_takes_pv_surplus_and_never_the_grid() -> None:
    conns = sample_site("office-pv").connectors()
    sunny = _office((Session("a", conns[0].id, 5.0, at(11), energy_extra_kwh=20.0),), 30.0)
    plan = solve(sunny)
    assert_feasible(sunny, plan)
    assert _planned(plan, "a") == pytest.approx(25.0, abs=1e-6)
    assert plan.unmet_kwh == 0.0 and plan.sessions["a"].unmet_kwh == 0.0
    without = solve(replace(sunny, sessions=(replace(sunny.sessions[0], energy_extra_kwh=0.0),)))
    assert plan.grid_import_kwh == pytest.approx(without.grid_import_kwh, abs=1e-6)

    dark = replace(sunny, pv_kw=())
    plan = solve(dark)
    assert_feasible(dark, plan)
    assert _planned(plan, "a") == pytest.approx(5.0, abs=1e-6)


def test_extra_never_takes_pv_from_a_need() -> None:
    """PV for one car only: the need of one gets it before the extra of the other."""
    conns = sample_site("office-pv").connectors()
    problem = _office(
        (
            Session("need", conns[0].id, 8.0, at(8)),
            Session("extra", conns[1].id, 0.0, at(8), energy_extra_kwh=30.0),
        ),
        12.0,
    )
    plan = solve(problem)
    assert_feasible(problem, plan)
    cold = solve(replace(problem, sessions=problem.sessions[:1]))
    assert plan.grid_import_kwh == pytest.approx(cold.grid_import_kwh, abs=1e-6)
    assert _planned(plan, "need") == pytest.approx(8.0, abs=1e-6)
    assert 0.0 < _planned(plan, "extra") <= 30.0 + 1e-6


def test_scarce_pv_goes_to_the_extra_of_the_car_leaving_sooner() -> None:
    """Too little PV surplus for both: the car whose window ends sooner has fewer PV hours
    left, so its extra comes first (`extra_values_per_kwh`); both models agree."""
    conns = sample_site("office-pv").connectors()
    problem = _office(
        (
            Session("later", conns[0].id, 0.0, at(11), energy_extra_kwh=40.0),
            Session("sooner", conns[1].id, 0.0, at(9), energy_extra_kwh=40.0),
        ),
        12.0,
    )
    plan = solve(problem)
    assert_feasible(problem, plan)
    none = tuple(replace(s, energy_extra_kwh=0.0) for s in problem.sessions)
    no_extra = solve(replace(problem, sessions=none))
    assert plan.grid_import_kwh == pytest.approx(no_extra.grid_import_kwh, abs=1e-6)
    assert _planned(plan, "sooner") > _planned(plan, "later")
    both = _planned(plan, "sooner") + _planned(plan, "later")
    alone = _planned(solve(replace(problem, sessions=problem.sessions[1:])), "sooner")
    assert _planned(plan, "sooner") == pytest.approx(alone, abs=1e-6) and both > alone
    values = extra_values_per_kwh({"self_consumption": 1.0}, None, [8, 36, 44], 44)
    assert values[0] > values[1] > values[2] == 0.5 and max(values) < 1.0
    reference = solve_reference(problem)
    assert reference.stage_values[1] == pytest.approx(plan.stage_values[1], abs=1e-5)


def test_extra_under_cost_and_peak_objectives() -> None:
    assert extra_value_per_kwh({"self_consumption": 1.0}, None) == 0.5
    assert extra_value_per_kwh({"cost": 2.0}, [0.3, 0.1, 0.2]) == pytest.approx(0.1)
    assert extra_value_per_kwh({"cost": 1.0}, [0.3, -0.01]) == 0.0
    assert extra_value_per_kwh({"peak": 1.0}, None) == 0.0
    conns = sample_site("office-pv").connectors()
    problem = _office(
        (Session("a", conns[0].id, 5.0, at(11), energy_extra_kwh=20.0),),
        30.0,
        price_eur_per_kwh=tuple(0.25 - 0.002 * k for k in range(N)),
        objective="cost",
    )
    plan = solve(problem)
    assert _planned(plan, "a") == pytest.approx(25.0, abs=1e-6)
    night = replace(problem, pv_kw=())
    assert _planned(solve(night), "a") == pytest.approx(5.0, abs=1e-6)


def test_negative_extra_is_refused() -> None:
    site = one_breaker_site(16.0, [("a", ("L1",), 16.0)])
    with pytest.raises(ProblemError, match="extra"):
        solve(Problem(site, NOW, (Session("s", "a", 1.0, at(2), energy_extra_kwh=-1.0),), options=LP))


@pytest.mark.parametrize("seed", range(4))
def test_extra_agrees_with_the_reference_and_the_persistent_planner(seed: int) -> None:
    rng = random.Random(100 + seed)
    site = sample_site("office-pv")
    sessions = tuple(
        Session(
            f"r{i}",
            c.id,
            round(rng.uniform(0, 15), 2),
            at(rng.randint(2, 10)),
            vehicle_phases=rng.choice((1, 3)),
            energy_extra_kwh=rng.choice((0.0, round(rng.uniform(0, 40), 2))),
            arrival=rng.choice((None, at(rng.random()))),
        )
        for i, c in enumerate(site.connectors())
        if rng.random() < 0.8
    )
    problem = Problem(
        site,
        NOW,
        sessions,
        pv_kw=pv_curve(N, rng.uniform(5, 35)),
        base_load_kw=tuple(round(rng.uniform(0, 8), 2) for _ in range(N)),
        price_eur_per_kwh=tuple(round(rng.uniform(0.05, 0.3), 3) for _ in range(N)),
        objective=rng.choice(("self_consumption", "cost")),  # type: ignore[arg-type]
        options=LP,
    )
    ref = solve_reference(problem)
    plan = solve(problem)
    assert_feasible(problem, plan)
    assert plan.status == "optimal"
    assert len(plan.stage_values) == len(ref.stage_values)
    for mine, theirs in zip(plan.stage_values, ref.stage_values, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-6, abs=1e-5)
    planner = PersistentPlanner(site)
    planner.update(replace(problem, sessions=problem.sessions[::2]))
    warm = planner.update(problem)
    assert_feasible(problem, warm)
    for mine, theirs in zip(warm.stage_values[:2], plan.stage_values[:2], strict=True):
        assert mine == pytest.approx(theirs, rel=1e-6, abs=1e-5)


@pytest.mark.parametrize("min_current", [True, False])
def test_extra_with_the_minimum_current_rule(min_current: bool) -> None:
    conns = sample_site("office-pv").connectors()
    problem = _office(
        tuple(
            Session(f"s{i}", conns[i].id, 4.0, at(10), vehicle_phases=1 + 2 * (i % 2), energy_extra_kwh=15.0)
            for i in range(4)
        ),
        25.0,
    )
    problem = replace(problem, options=SolveOptions(min_current=min_current))
    plan = solve(problem)
    assert_feasible(problem, plan)
    assert plan.status == "optimal" and plan.unmet_kwh == 0.0
    assert sum(sp.energy_planned_kwh for sp in plan.sessions.values()) > 16.0 + 10.0
    dark = replace(problem, pv_kw=())
    plan = solve(dark)
    assert_feasible(dark, plan)
    assert sum(sp.energy_planned_kwh for sp in plan.sessions.values()) == pytest.approx(16.0, abs=1e-6)
