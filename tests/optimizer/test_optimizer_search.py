"""The branch-and-bound over a plan's first steps (`optimizer.solve._branch_and_bound`) finds the
same lexicographic optimum as HiGHS's MIP over the same on/off decisions, and when it gives
up the MIP still decides."""

from __future__ import annotations

import importlib
import random
from dataclasses import replace
from typing import Any

import pytest
from optimizer_oracle import NOW, assert_feasible, at, pv_curve, sample_site

from optimizer import Problem, Session, SolveOptions, solve
from optimizer.lp import StagedLp
from optimizer.plan import session_limits

internals: Any = importlib.import_module("optimizer.solve")
TOLERANCES: dict[str, Any] = {"time_limit_s": 60.0, "rel_tol": 1e-9, "abs_tol": 1e-9}


def office_problem(seed: int, mip_horizon_s: int) -> Problem:
    """Office cars on a thin, random PV surplus: relaxations that spread a car under its
    minimum current, so the rounding is often not proved."""
    rng = random.Random(seed)
    site = sample_site("office-pv")
    connectors = rng.sample(site.connectors(), rng.randint(3, 8))
    n = 40
    sessions = tuple(
        Session(
            f"s{i}",
            c.id,
            round(rng.uniform(1.0, 30.0), 2),
            at(rng.uniform(1.5, 10.0)),
            vehicle_phases=rng.choice((1, 3)),
        )
        for i, c in enumerate(connectors)
    )
    return Problem(
        site,
        NOW + rng.choice((0, 2, 4)) * (at(1) - NOW),
        sessions,
        pv_kw=pv_curve(n, rng.uniform(3.0, 40.0)),
        base_load_kw=tuple(rng.uniform(2.0, 20.0) for _ in range(n)),
        options=SolveOptions(min_current=True, mip_horizon_s=mip_horizon_s),
    )


def staged(problem: Problem) -> tuple[StagedLp, list[int]]:
    """The LP `solve` builds for `problem`, loaded."""
    n = problem.n_steps()
    limits = session_limits(problem, n)
    model = StagedLp(
        problem.site, [(s.connector_id, s.vehicle_phases) for s in problem.sessions], n, problem.step_s
    )
    model.load(internals._step_data(problem, n), [internals._slot_data(problem, lim) for lim in limits])
    return model, list(range(len(problem.sessions)))


def mip_optimum(problem: Problem, model: StagedLp, exact_steps: int) -> list[float]:
    """HiGHS's MIP over the first `exact_steps` steps: stages 1–2 (and fairness 3–4)."""
    mip = internals._mip_of(model, problem)
    mip.load(model.steps, model.slot_data, binary_steps=exact_steps)
    outcome = mip.solve(fairness=True, tie_breaks=False, mip_rel_gap=1e-9, **TOLERANCES)
    assert outcome.ok and outcome.status == "optimal"
    return list(outcome.stage_values)


def assert_lex_equal(found: list[float], optimum: list[float]) -> None:
    for a, b in zip(found, optimum, strict=False):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-5), (found, optimum)


@pytest.mark.parametrize("mip_horizon_s", [900, 3600])
def test_the_search_finds_the_mip_optimum(mip_horizon_s: int) -> None:
    branched = decided_by_rounding = gave_up = 0
    for seed in range(80):
        problem = office_problem(seed, mip_horizon_s)
        model, slot_of = staged(problem)
        rounded = internals._heuristic(model, problem, slot_of)
        if internals._proved(rounded, problem.options):
            continue
        exact_steps = internals._exact_steps(problem)
        decided = internals._branch_and_bound(model, problem, slot_of, rounded, exact_steps)
        if decided is None:
            gave_up += 1  # over its budget: the MIP decides (next test)
            continue
        optimum = mip_optimum(problem, model, exact_steps)
        assert_lex_equal(decided.stage_values, optimum)
        if decided.pattern is None:
            decided_by_rounding += 1
            continue
        branched += decided.relaxations > 0
        # its decisions meet the rule over the exact horizon and reach that optimum
        model.load(model.steps, model.slot_data, pattern=decided.pattern)
        kept = model.solve(fairness=True, tie_breaks=False, **TOLERANCES)
        assert_lex_equal(kept.stage_values, optimum)
        for k in slot_of:
            pmin = model.slot_data[k].pmin_kw
            first = kept.power_kw[k, :exact_steps]
            assert not ((first > 1e-6) & (first < pmin - 1e-6)).any(), (seed, k, first)
    assert branched >= 10 and gave_up <= branched // 4, (branched, decided_by_rounding, gave_up)


@pytest.mark.parametrize("budget", [0, 1])
def test_the_mip_decides_when_the_search_gives_up(budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(internals, "SEARCH_MAX_RELAXATIONS", budget)
    mip_of = internals._mip_of
    mips: list[int] = []

    def counted(*args: Any) -> Any:
        mips.append(1)
        return mip_of(*args)

    monkeypatch.setattr(internals, "_mip_of", counted)
    for seed in range(40):
        problem = office_problem(seed, 900)
        plan = solve(problem)
        assert_feasible(problem, plan)
        assert plan.method == "mip" and plan.status == "optimal"
    assert len(mips) >= 5


def test_the_search_runs_in_the_persistent_planner() -> None:
    """The EMS's way: re-plans of one site go through the search on the kept model."""
    calls: list[Any] = []
    search = internals._search

    def counted(*args: Any) -> Any:
        outcome = search(*args)
        calls.append(outcome)
        return outcome

    planner = internals.PersistentPlanner(sample_site("office-pv"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(internals, "_search", counted)
        for seed in range(12):
            problem = office_problem(seed, 900)
            problem = replace(problem, site=planner.site)
            plan = planner.update(problem)
            assert_feasible(problem, plan)
            assert plan.method == "mip"
    assert calls and all(outcome is not None for outcome in calls)
