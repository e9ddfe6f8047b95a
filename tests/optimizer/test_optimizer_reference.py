"""The sparse-matrix LP (`optimizer.lp`) against its Pyomo reference formulation
(`optimizer.pyomo_model`): same stage optima on the sample sites and the hand cases."""

from __future__ import annotations

import pytest
from optimizer_oracle import NOW, at, one_breaker_site, pv_curve, sample_site

from optimizer import Problem, Session, SolveOptions, solve
from optimizer.pyomo_model import solve_reference

LP = SolveOptions(min_current=False)


def cases() -> dict[str, Problem]:
    office = sample_site("office-pv")
    carpark = sample_site("public-carpark")
    n = 40
    return {
        "office-cost": Problem(
            office,
            NOW,
            tuple(
                Session(f"s{i}", c.id, 5.0 + 2 * i, at(4 + i % 6), vehicle_phases=1 if i % 4 == 0 else 3)
                for i, c in enumerate(office.connectors())
            ),
            pv_kw=pv_curve(n, 30.0),
            base_load_kw=(5.0,) * n,
            price_eur_per_kwh=tuple(0.3 - 0.01 * k for k in range(n)),
            objective="cost",
            options=LP,
        ),
        "office-self": Problem(
            office,
            NOW,
            tuple(
                Session(f"s{i}", c.id, 8.0, at(10), arrival=at(i % 3))
                for i, c in enumerate(office.connectors())
            ),
            pv_kw=pv_curve(n, 30.0),
            base_load_kw=(5.0,) * n,
            options=LP,
        ),
        "carpark-shortage": Problem(
            carpark,
            NOW,
            tuple(
                Session(f"p{i}", c.id, 10.0 + 5 * i, at(3), priority=1.0 + (i == 2))
                for i, c in enumerate(carpark.connectors())
            ),
            objective="peak",
            options=LP,
        ),
        "hand": Problem(
            one_breaker_site(10.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)]),
            NOW,
            (Session("sa", "a", 10.0, at(2)), Session("sb", "b", 5.0, at(2))),
            options=LP,
        ),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_matrix_lp_and_pyomo_reference_agree(name: str) -> None:
    problem = cases()[name]
    ref = solve_reference(problem)
    plan = solve(problem)
    assert plan.status == "optimal"
    assert len(plan.stage_values) == len(ref.stage_values)
    for mine, theirs in zip(plan.stage_values, ref.stage_values, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-6, abs=1e-5)
    unmet_ref = (
        sum(s.energy_needed_kwh for s in problem.sessions) - ref.power_kw.sum() * problem.step_s / 3600
    )
    assert plan.unmet_kwh == pytest.approx(unmet_ref, abs=1e-5)


@pytest.mark.parametrize("seed", range(6))
def test_random_problems_agree_with_the_reference(seed: int) -> None:
    """Random sessions, series and objectives: the one-shot weighted solve with its optimality
    proof must give the sequential reference's stage optima."""
    import random

    rng = random.Random(seed)
    site = sample_site("office-pv" if seed % 2 == 0 else "public-carpark")
    conns = site.connectors()
    n = 24
    sessions = tuple(
        Session(
            f"r{i}",
            c.id,
            round(rng.uniform(0, 30), 2),
            at(rng.randint(1, 6)),
            vehicle_phases=rng.choice((1, 3)),
            max_power_kw=rng.choice((None, 3.7, 7.4, 11.0)),
            priority=rng.choice((1.0, 1.0, 2.0)),
            arrival=rng.choice((None, at(rng.random()))),
        )
        for i, c in enumerate(conns)
        if rng.random() < 0.8
    )
    problem = Problem(
        site,
        NOW,
        sessions,
        pv_kw=tuple(round(rng.uniform(0, 30), 2) for _ in range(n)),
        base_load_kw=tuple(round(rng.uniform(0, 8), 2) for _ in range(n)) if site.loads else (),
        price_eur_per_kwh=tuple(round(rng.uniform(-0.05, 0.3), 3) for _ in range(n)),
        objective=rng.choice(("self_consumption", "cost", "peak")),  # type: ignore[arg-type]
        options=LP,
    )
    ref = solve_reference(problem)
    plan = solve(problem)
    assert plan.status == "optimal"
    assert len(plan.stage_values) == len(ref.stage_values)
    for mine, theirs in zip(plan.stage_values, ref.stage_values, strict=True):
        assert mine == pytest.approx(theirs, rel=1e-6, abs=1e-5)
