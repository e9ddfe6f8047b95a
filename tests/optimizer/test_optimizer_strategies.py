"""Baselines: every strategy × scenario through the feasibility oracle (except `uncontrolled`,
which shows what happens without limits)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from optimizer_oracle import NOW, assert_feasible, at, one_breaker_site, pv_curve, sample_site
from test_optimizer_solve import depot_problem

from optimizer import Plan, Problem, Session, SolveOptions, solve
from optimizer.strategies import (
    STRATEGIES,
    equal_share,
    perfect_foresight,
    pv_surplus,
    uncontrolled,
    uncontrolled_capped,
)


def scenarios() -> dict[str, Problem]:
    office = sample_site("office-pv")
    carpark = sample_site("public-carpark")
    n = 48
    office_sessions = tuple(
        Session(
            f"s{i}",
            c.id,
            6.0 + 4 * (i % 4),
            at(4 + (i % 7)),
            vehicle_phases=1 if i % 3 == 0 else 3,
            arrival=at(i % 3),
        )
        for i, c in enumerate(office.connectors())
    )
    return {
        "office": Problem(
            office,
            NOW,
            office_sessions,
            pv_kw=pv_curve(n, 30.0),
            base_load_kw=(6.0,) * n,
            price_eur_per_kwh=tuple(0.1 + 0.1 * (k > 24) for k in range(n)),
        ),
        "carpark": Problem(
            carpark,
            NOW,
            tuple(Session(f"p{i}", c.id, 12.0, at(5)) for i, c in enumerate(carpark.connectors())),
        ),
        "depot": depot_problem(60, min_current=True, n_steps=48),
    }


STRATS: dict[str, Callable[[Problem], Plan]] = {
    "uncontrolled_capped": uncontrolled_capped,
    "equal_share": equal_share,
    "pv_surplus": pv_surplus,
    "perfect_foresight": perfect_foresight,
}


@pytest.mark.parametrize("scenario", ["office", "carpark", "depot"])
@pytest.mark.parametrize("name", list(STRATS))
def test_every_strategy_respects_every_limit(scenario: str, name: str) -> None:
    problem = scenarios()[scenario]
    plan = STRATS[name](problem)
    assert_feasible(problem, plan)
    if name != "perfect_foresight":
        assert plan.method == name


def test_uncontrolled_charges_flat_out_from_arrival_and_can_overload() -> None:
    site = one_breaker_site(10.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)])
    p = Problem(
        site,
        NOW,
        (Session("sa", "a", 3.68, at(4)), Session("sb", "b", 3.68, at(4), arrival=at(1))),
        step_s=3600,
    )
    plan = uncontrolled(p)
    assert plan.sessions["sa"].power_kw == pytest.approx((3.68, 0, 0, 0))
    assert plan.sessions["sb"].power_kw == pytest.approx((0, 3.68, 0, 0))
    capped = uncontrolled_capped(p)
    assert_feasible(p, capped)
    assert capped.sessions["sa"].power_kw[0] == pytest.approx(2.3)


def test_equal_share_splits_a_breaker_equally() -> None:
    site = one_breaker_site(20.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)])
    p = Problem(site, NOW, (Session("sa", "a", 50.0, at(2)), Session("sb", "b", 50.0, at(2))), step_s=3600)
    plan = equal_share(p)
    assert_feasible(p, plan)
    assert plan.sessions["sa"].power_kw == pytest.approx((2.3, 2.3))
    assert plan.sessions["sb"].power_kw == pytest.approx((2.3, 2.3))


def test_pv_surplus_follows_the_sun_and_trickles_otherwise() -> None:
    site = one_breaker_site(32.0, [("a", ("L1",), 16.0)], pv_kwp=5.0)
    p = Problem(
        site,
        NOW,
        (Session("sa", "a", 50.0, at(3)),),
        step_s=3600,
        pv_kw=(0.0, 3.0, 0.5),
        options=SolveOptions(min_current=False),
    )
    plan = pv_surplus(p)
    assert_feasible(p, plan)
    assert plan.sessions["sa"].power_kw == pytest.approx((1.38, 3.0, 1.38))


def test_perfect_foresight_sees_future_arrivals_and_beats_the_baselines() -> None:
    problem = scenarios()["office"]
    best = perfect_foresight(problem)
    assert best.method == "perfect_foresight"
    for name in ("uncontrolled_capped", "equal_share", "pv_surplus"):
        other = STRATEGIES[name](problem)
        assert (best.unmet_kwh, best.grid_import_kwh) <= (
            other.unmet_kwh + 1e-6,
            other.grid_import_kwh + 1e-6,
        ) or best.unmet_kwh < other.unmet_kwh - 1e-6
    assert best.unmet_kwh == pytest.approx(solve(problem).unmet_kwh)
