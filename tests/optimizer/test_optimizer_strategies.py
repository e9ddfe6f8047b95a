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
    edf,
    equal_share,
    fcfs,
    llf,
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
    "fcfs": fcfs,
    "edf": edf,
    "llf": llf,
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


def _two_on_one_breaker() -> Problem:
    """Two single-phase cars on one 20 A breaker (4.6 kW for both): `sa` came first and leaves
    last with a lot to take, `sb` came an hour later and leaves in two hours."""
    site = one_breaker_site(20.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)])
    return Problem(
        site,
        NOW,
        (
            Session("sa", "a", 20.0, at(6)),
            Session("sb", "b", 3.68, at(3), arrival=at(1)),
        ),
        step_s=3600,
        options=SolveOptions(min_current=False),
    )


def test_fcfs_serves_the_first_car_at_the_most_the_breaker_allows() -> None:
    p = _two_on_one_breaker()
    plan = fcfs(p)
    assert_feasible(p, plan)
    # sa takes its 16 A (3.68 kW), sb the 4 A left, never more than the breaker's 20 A
    assert plan.sessions["sa"].power_kw[:3] == pytest.approx((3.68, 3.68, 3.68))
    assert plan.sessions["sb"].power_kw[:3] == pytest.approx((0.0, 0.92, 0.92))


def test_edf_serves_the_car_leaving_first() -> None:
    p = _two_on_one_breaker()
    plan = edf(p)
    assert_feasible(p, plan)
    assert plan.sessions["sb"].power_kw[1] == pytest.approx(3.68)  # sb leaves at 3, sa at 6
    assert plan.sessions["sa"].power_kw[:2] == pytest.approx((3.68, 0.92))
    assert plan.sessions["sb"].energy_planned_kwh == pytest.approx(3.68)


def test_llf_serves_the_car_with_the_least_slack() -> None:
    # sa needs 20 kWh in 6 h at 3.68 kW: 0.57 h of slack at the start; sb, 3.68 kWh in its 2 h:
    # 1 h of slack. LLF serves sa first, EDF would serve sb.
    p = _two_on_one_breaker()
    plan = llf(p)
    assert_feasible(p, plan)
    assert plan.sessions["sa"].power_kw[1] == pytest.approx(3.68)
    assert plan.sessions["sb"].power_kw[1] == pytest.approx(0.92)


def test_priority_strategies_are_per_phase() -> None:
    """Two cars on different phases of one 16 A breaker do not compete: both at 16 A, where a
    single-line split of 16 A × 230 V would have held them to 1.84 kW each."""
    site = one_breaker_site(16.0, [("a", ("L1",), 16.0), ("b", ("L2",), 16.0)])
    p = Problem(site, NOW, (Session("sa", "a", 20.0, at(4)), Session("sb", "b", 20.0, at(4))), step_s=3600)
    for strategy in (fcfs, edf, llf):
        plan = strategy(p)
        assert_feasible(p, plan)
        assert plan.sessions["sa"].power_kw[0] == pytest.approx(3.68)
        assert plan.sessions["sb"].power_kw[0] == pytest.approx(3.68)


def test_a_car_left_below_its_minimum_gets_nothing() -> None:
    site = one_breaker_site(20.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)])
    p = Problem(site, NOW, (Session("sa", "a", 20.0, at(4)), Session("sb", "b", 20.0, at(4))), step_s=3600)
    plan = fcfs(p)  # the rule is on: 4 A left for sb, under its 6 A
    assert_feasible(p, plan)
    assert plan.sessions["sb"].power_kw[0] == 0.0


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


@pytest.mark.parametrize("name", ["uncontrolled_capped", "equal_share", "fcfs", "edf", "llf"])
def test_a_rule_serves_the_extra_too_as_a_charger_serves_a_car_until_it_is_full(name: str) -> None:
    """The EMS's estimate of a car that asked 1.3 kWh early in its stay is all extra (its need,
    just in time, is still 0): a rule must still charge it at once, not leave it with nothing."""
    site = one_breaker_site(32.0, [("a", ("L1",), 16.0)])
    p = Problem(
        site,
        NOW,
        (Session("sa", "a", 0.0, at(8), energy_extra_kwh=1.3),),
        step_s=900,
        options=SolveOptions(min_current=False),
    )
    plan = STRATS[name](p)
    assert_feasible(p, plan)
    assert plan.sessions["sa"].power_kw[0] == pytest.approx(3.68)
    assert sum(plan.sessions["sa"].power_kw) * 0.25 == pytest.approx(1.3)
