"""`optimizer.solve`: priorities, objectives, minimum current, fallback, profiles — every plan
through the feasibility oracle."""

from __future__ import annotations

import importlib
import math
import random
from dataclasses import replace

import pytest
from optimizer_oracle import (
    NOW,
    assert_feasible,
    at,
    depot_site,
    one_breaker_site,
    profile_limits,
    pv_curve,
    sample_site,
)

from optimizer import Plan, Problem, ProblemError, Session, SolveOptions, solve
from optimizer.lp import StagedLp
from optimizer.plan import session_limits

LP = SolveOptions(min_current=False)


def solved(problem: Problem) -> Plan:
    plan = solve(problem)
    assert_feasible(problem, plan)
    return plan


def power(plan: Plan, sid: str) -> list[float]:
    return [round(p, 6) for p in plan.sessions[sid].power_kw]


# ---- a case solvable by hand --------------------------------------------------------------
# One single-phase connector of 10 A at 230 V: 2.3 kW. A car needs 4.6 kWh = two full hours,
# leaves in 4 h; steps of 1 h.


def hand_problem(**kw: object) -> Problem:
    site = one_breaker_site(32.0, [("c1", ("L1",), 10.0)], pv_kwp=5.0)
    base = dict(
        site=site,
        now=NOW,
        sessions=(Session("s1", "c1", 4.6, at(4)),),
        step_s=3600,
        options=LP,
    )
    base.update(kw)
    return Problem(**base)  # type: ignore[arg-type]


def test_hand_case_without_pv_charges_as_early_as_possible() -> None:
    plan = solved(hand_problem())
    assert power(plan, "s1") == [2.3, 2.3, 0.0, 0.0]
    assert plan.status == "optimal" and plan.method == "lp"
    assert plan.grid_import_kwh == pytest.approx(4.6)
    assert plan.sessions["s1"].unmet_kwh == pytest.approx(0.0, abs=1e-9)
    periods = plan.sessions["s1"].charging_profile.charging_profile_period
    assert [(p.start_period, p.limit) for p in periods] == [(0, 10.0), (7200, 0.0)]


def test_hand_case_self_consumption_follows_pv() -> None:
    plan = solved(hand_problem(pv_kw=(0.0, 0.0, 2.3, 2.3)))
    assert power(plan, "s1") == [0.0, 0.0, 2.3, 2.3]
    assert plan.grid_import_kwh == pytest.approx(0.0, abs=1e-9)
    assert plan.pv_used_kw == pytest.approx((0.0, 0.0, 2.3, 2.3))


def test_hand_case_cost_picks_the_cheap_hours() -> None:
    plan = solved(hand_problem(price_eur_per_kwh=(0.3, 0.1, 0.2, 0.1), objective="cost"))
    assert power(plan, "s1") == [0.0, 2.3, 0.0, 2.3]
    assert plan.cost_eur == pytest.approx(0.46)
    periods = plan.sessions["s1"].charging_profile.charging_profile_period
    assert [(p.start_period, p.limit) for p in periods] == [
        (0, 0.0),
        (3600, 10.0),
        (7200, 0.0),
        (10800, 10.0),
        (14400, 0.0),
    ]


def test_negative_price_is_sought() -> None:
    plan = solved(hand_problem(price_eur_per_kwh=(0.2, -0.1, 0.2, -0.05), objective="cost"))
    assert power(plan, "s1") == [0.0, 2.3, 0.0, 2.3]
    assert plan.cost_eur == pytest.approx(-0.345)


def test_cost_without_price_falls_back_to_self_consumption() -> None:
    plan = solved(hand_problem(pv_kw=(0.0, 0.0, 2.3, 2.3), objective="cost"))
    assert plan.cost_eur is None and plan.objective == "self_consumption"
    assert power(plan, "s1") == [0.0, 0.0, 2.3, 2.3]


def test_peak_objective_flattens_the_grid_draw() -> None:
    plan = solved(hand_problem(objective="peak"))
    assert plan.grid_peak_kw == pytest.approx(4.6 / 4)
    assert power(plan, "s1") == pytest.approx([1.15] * 4)


def test_window_respects_arrival_and_departure_inside_steps() -> None:
    # arrives 00:30 into the plan, leaves at 03:30: only steps 1 and 2 are whole
    p = hand_problem(sessions=(Session("s1", "c1", 10.0, at(3.5), arrival=at(0.5)),))
    plan = solved(p)
    assert power(plan, "s1") == [0.0, 2.3, 2.3]
    assert plan.sessions["s1"].unmet_kwh == pytest.approx(10.0 - 4.6)


# ---- sample sites, every objective and both minimum-current modes ---------------------------


def office_problem(objective: str = "self_consumption", min_current: bool = True, **kw: object) -> Problem:
    site = sample_site("office-pv")
    sessions = tuple(
        Session(
            f"s{i}",
            c.id,
            8.0 + 3 * (i % 5),
            at(6 + (i % 6)),
            vehicle_phases=3 if i % 3 else 1,
            max_power_kw=None if i % 4 else 7.4,
        )
        for i, c in enumerate(site.connectors())
    )
    n = 48
    base = dict(
        site=site,
        now=NOW,
        sessions=sessions,
        pv_kw=pv_curve(n, 30.0),
        base_load_kw=tuple(4.0 + (k % 8) for k in range(n)),
        price_eur_per_kwh=tuple(0.25 if 8 <= k < 24 else 0.12 for k in range(n)),
        objective=objective,
        options=SolveOptions(min_current=min_current),
    )
    base.update(kw)
    return Problem(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("objective", ["self_consumption", "cost", "peak"])
@pytest.mark.parametrize("min_current", [True, False])
def test_office_site_plans_are_feasible(objective: str, min_current: bool) -> None:
    p = office_problem(objective, min_current)
    plan = solved(p)
    assert plan.status in ("optimal", "feasible")
    assert plan.method == ("mip" if min_current else "lp")


def test_public_carpark_under_shortage_is_feasible_and_fair() -> None:
    site = sample_site("public-carpark")
    needs = [20.0, 10.0, 30.0, 15.0, 25.0]
    sessions = tuple(Session(f"s{i}", c.id, needs[i], at(4)) for i, c in enumerate(site.connectors()))
    p = Problem(site, NOW, sessions, options=LP)
    plan = solved(p)
    shares = [plan.sessions[s.session_id].unmet_kwh / s.energy_needed_kwh for s in sessions]
    assert plan.unmet_kwh > 1
    # the feeder's 25 A per phase is the bottleneck: sessions sharing a phase share the shortage
    # in proportion to need (to the resolution of the fairness pieces, 0.1), nobody gets all of it
    # unless a session is held back by its own connector (16 A = 14.72 kWh in 4 h)
    capped = [plan.sessions[s.session_id].energy_planned_kwh >= 14.72 - 1e-6 for s in sessions]
    by_phase: dict[str, list[float]] = {}
    for c, share, cap in zip(site.connectors(), shares, capped, strict=True):
        if not cap:
            by_phase.setdefault(c.phases[0], []).append(share)
    assert max(shares) < 1
    for phase_shares in by_phase.values():
        assert max(phase_shares) - min(phase_shares) <= 0.1 + 1e-6


def test_objectives_move_charging_where_they_should() -> None:
    sc = solved(office_problem("self_consumption", False))
    cost = solved(office_problem("cost", False))
    peak = solved(office_problem("peak", False))
    assert sc.unmet_kwh == pytest.approx(cost.unmet_kwh, abs=1e-4) == pytest.approx(peak.unmet_kwh, abs=1e-4)
    assert sc.grid_import_kwh <= cost.grid_import_kwh + 1e-6
    assert sc.grid_import_kwh <= peak.grid_import_kwh + 1e-6
    assert cost.cost_eur is not None and sc.cost_eur is not None
    assert cost.cost_eur <= sc.cost_eur + 1e-6
    assert peak.grid_peak_kw <= min(sc.grid_peak_kw, cost.grid_peak_kw) + 1e-6


def test_cost_moves_charging_to_cheap_hours_and_self_consumption_to_pv_hours() -> None:
    site = one_breaker_site(63.0, [("c1", ("L1", "L2", "L3"), 16.0)], pv_kwp=20.0)
    n = 24  # 6 h of 15 min
    pv = tuple(10.0 if 8 <= k < 16 else 0.0 for k in range(n))
    price = tuple(0.05 if k >= 16 else 0.30 for k in range(n))
    sessions = (Session("s1", "c1", 10.0, at(6)),)
    sc = solved(Problem(site, NOW, sessions, pv_kw=pv, price_eur_per_kwh=price, options=LP))
    # without PV the cost objective has only the price to follow
    cost = solved(Problem(site, NOW, sessions, price_eur_per_kwh=price, objective="cost", options=LP))
    dt = 0.25
    pv_hours = sum(p for k, p in enumerate(sc.sessions["s1"].power_kw) if 8 <= k < 16) * dt
    cheap_hours = sum(p for k, p in enumerate(cost.sessions["s1"].power_kw) if k >= 16) * dt
    assert pv_hours == pytest.approx(10.0)
    assert sc.grid_import_kwh == pytest.approx(0.0, abs=1e-6)
    assert cheap_hours == pytest.approx(10.0)


# ---- shortage and priorities ---------------------------------------------------------------


def test_shortage_is_shared_in_proportion_to_need() -> None:
    # two single-phase cars on L1 behind 10 A: 2.3 kW for both, 2 h -> 4.6 kWh for 15 needed
    site = one_breaker_site(10.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)])
    sessions = (Session("sa", "a", 10.0, at(2)), Session("sb", "b", 5.0, at(2)))
    plan = solved(Problem(site, NOW, sessions, options=LP))
    assert plan.unmet_kwh == pytest.approx(15.0 - 4.6)
    assert plan.sessions["sa"].energy_planned_kwh == pytest.approx(4.6 * 10 / 15, abs=1e-5)
    assert plan.sessions["sb"].energy_planned_kwh == pytest.approx(4.6 * 5 / 15, abs=1e-5)


def test_priority_is_served_first() -> None:
    site = one_breaker_site(10.0, [("a", ("L1",), 16.0), ("b", ("L1",), 16.0)])
    sessions = (Session("sa", "a", 10.0, at(2)), Session("sb", "b", 3.0, at(2), priority=5.0))
    plan = solved(Problem(site, NOW, sessions, options=LP))
    assert plan.sessions["sb"].unmet_kwh == pytest.approx(0.0, abs=1e-6)
    assert plan.sessions["sa"].energy_planned_kwh == pytest.approx(1.6, abs=1e-5)


def test_unmet_energy_comes_before_the_objective() -> None:
    # PV only in the first hour; the car leaves after 3 h and needs more than PV can give
    site = one_breaker_site(32.0, [("c1", ("L1",), 10.0)], pv_kwp=5.0)
    p = Problem(site, NOW, (Session("s1", "c1", 6.0, at(3)),), step_s=3600, pv_kw=(2.3, 0, 0), options=LP)
    plan = solved(p)
    assert plan.sessions["s1"].unmet_kwh == pytest.approx(0.0, abs=1e-6)
    assert plan.grid_import_kwh == pytest.approx(6.0 - 2.3)


# ---- the minimum current ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mip_max_binaries", "mip_horizon_s"), [(0, None), (10_000, None), (10_000, 3600), (10_000, 900)]
)
def test_no_step_between_zero_and_min_current(mip_max_binaries: int, mip_horizon_s: int | None) -> None:
    # a thin PV surplus that an LP would spread below 6 A
    site = one_breaker_site(32.0, [("a", ("L1",), 16.0), ("b", ("L2",), 16.0)], pv_kwp=5.0)
    n = 16
    pv = tuple(1.0 + 0.1 * k for k in range(n))
    sessions = (Session("sa", "a", 3.0, at(4)), Session("sb", "b", 2.0, at(3)))
    opts = SolveOptions(min_current=True, mip_max_binaries=mip_max_binaries, mip_horizon_s=mip_horizon_s)
    p = Problem(site, NOW, sessions, pv_kw=pv, options=opts)
    plan = solved(p)
    assert plan.method == ("lp_heuristic" if mip_max_binaries == 0 else "mip")
    pmin = 6 * 230 / 1000
    for sp in plan.sessions.values():
        assert all(x == 0 or x >= pmin - 1e-6 for x in sp.power_kw)
        assert all(x == 0 or x >= 6.0 for x in profile_limits(plan, sp.session_id))
    relaxed = solved(replace(p, options=LP))
    assert any(0 < x < pmin - 1e-3 for sp in relaxed.sessions.values() for x in sp.power_kw)
    assert plan.unmet_kwh == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("mip_max_binaries", [0, 10_000])
def test_a_need_under_one_step_at_the_minimum_is_planned_not_left_unmet(mip_max_binaries: int) -> None:
    # 0.2 kWh in one step of 15 min is 0.8 kW, under the 1.38 kW of 6 A: the car is planned a
    # step at the minimum (it stops by itself when full) instead of nothing
    site = one_breaker_site(32.0, [("a", ("L1",), 16.0)])
    p = Problem(
        site,
        NOW,
        (Session("sa", "a", 0.2, at(2)),),
        options=SolveOptions(min_current=True, mip_max_binaries=mip_max_binaries),
    )
    plan = solved(p)
    sp = plan.sessions["sa"]
    assert sp.unmet_kwh == pytest.approx(0.0, abs=1e-6)
    assert sum(1 for x in sp.power_kw if x > 0) == 1
    assert max(sp.power_kw) == pytest.approx(6 * 230 / 1000, abs=1e-6)


def test_the_mip_over_a_horizon_covering_the_plan_is_the_full_mip() -> None:
    full = solved(office_problem("self_consumption", True))
    problem = office_problem("self_consumption", True)
    covering = solved(replace(problem, options=replace(problem.options, mip_horizon_s=48 * 3600)))
    assert full.method == covering.method == "mip"
    assert covering.stage_values == pytest.approx(full.stage_values, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("mip_horizon_s", [900, 3600])
def test_the_mip_over_the_first_steps_is_never_worse_than_the_rounding(mip_horizon_s: int) -> None:
    problem = office_problem("self_consumption", True)
    rounding = solved(replace(problem, options=replace(problem.options, mip_max_binaries=0)))
    hour = solved(replace(problem, options=replace(problem.options, mip_horizon_s=mip_horizon_s)))
    assert hour.method == "mip"
    for a, b in zip(hour.stage_values[:2], rounding.stage_values[:2], strict=True):
        assert a <= b + 1e-6 * max(1.0, abs(b))
        if a < b - 1e-6 * max(1.0, abs(b)):
            break


def test_mip_and_heuristic_agree_on_the_office_site() -> None:
    exact = solved(office_problem("self_consumption", True))
    heur = solved(office_problem("self_consumption", True, options=SolveOptions(mip_max_binaries=0)))
    assert exact.method == "mip" and heur.method == "lp_heuristic"
    assert heur.unmet_kwh >= exact.unmet_kwh - 1e-5
    if exact.status == "optimal" and heur.unmet_kwh <= exact.unmet_kwh + 1e-5:
        assert heur.grid_import_kwh >= exact.grid_import_kwh - 1e-4


# ---- never without a plan ----------------------------------------------------------------------


def test_base_load_over_a_breaker_gives_the_flagged_fallback() -> None:
    site = one_breaker_site(32.0, [("c1", ("L1", "L2", "L3"), 16.0)], with_load=True)
    # 25 kW base = 36 A per phase on a 32 A breaker in steps 2 and 3
    base = (5.0, 5.0, 25.0, 25.0, 5.0, 5.0, 5.0, 5.0)
    p = Problem(site, NOW, (Session("s1", "c1", 10.0, at(2)),), base_load_kw=base, options=LP)
    plan = solve(p)
    assert plan.status == "fallback" and plan.method == "fallback"
    assert plan.message and "PV and base load alone" in plan.message
    assert_feasible(p, plan)
    assert power(plan, "s1")[2:4] == [0.0, 0.0]
    assert plan.sessions["s1"].energy_planned_kwh > 0


def test_grid_limit_below_base_load_gives_the_fallback() -> None:
    site = one_breaker_site(200.0, [("c1", ("L1", "L2", "L3"), 16.0)], with_load=True, grid_kw=10.0)
    p = Problem(site, NOW, (Session("s1", "c1", 10.0, at(2)),), base_load_kw=(12.0,) * 8, options=LP)
    plan = solve(p)
    assert plan.status == "fallback"
    assert all(x == 0 for x in plan.sessions["s1"].power_kw)


def test_fallback_plan_scales_inside_every_limit() -> None:
    from optimizer import fallback_plan

    p = office_problem("self_consumption", True)
    plan = fallback_plan(p, "forced")
    assert plan.status == "fallback" and plan.message == "forced"
    assert_feasible(p, plan)
    assert plan.unmet_kwh < sum(s.energy_needed_kwh for s in p.sessions)


# ---- refused input ---------------------------------------------------------------------------------


def test_refused_problems() -> None:
    site = one_breaker_site(32.0, [("a", ("L1",), 16.0), ("b", ("L2",), 16.0)])
    with pytest.raises(ProblemError, match="both on connector"):
        solve(Problem(site, NOW, (Session("x", "a", 1, at(1)), Session("y", "a", 1, at(1)))))
    with pytest.raises(ProblemError, match="negative energy"):
        solve(Problem(site, NOW, (Session("x", "a", -1, at(1)),)))
    with pytest.raises(ProblemError, match="unknown connector"):
        solve(Problem(site, NOW, (Session("x", "zz", 1, at(1)),)))
    bad = one_breaker_site(32.0, [("a", ("L1", "L1", "L2"), 16.0)])
    with pytest.raises(ProblemError, match="repeated phase"):
        solve(Problem(bad, NOW, (Session("x", "a", 1, at(1)),)))
    with pytest.raises(ProblemError, match="unknown objective"):
        solve(Problem(site, NOW, (Session("x", "a", 1, at(1)),), objective="green"))  # type: ignore[arg-type]


# ---- profiles ------------------------------------------------------------------------------------------


def test_profile_is_rounded_down_and_merged() -> None:
    # 7.4 kW three-phase is 10.72 A per phase: the profile says 10.7
    site = one_breaker_site(63.0, [("c1", ("L1", "L2", "L3"), 32.0)])
    p = Problem(site, NOW, (Session("s1", "c1", 7.4, at(2), max_power_kw=7.4),), step_s=1800, options=LP)
    plan = solved(p)
    sp = plan.sessions["s1"]
    assert power(plan, "s1") == [7.4, 7.4, 0.0, 0.0]
    prof = sp.charging_profile
    assert prof.charging_rate_unit == "A"
    assert [(x.start_period, x.limit) for x in prof.charging_profile_period] == [(0, 10.7), (3600, 0.0)]
    assert prof.to_ocpi()["start_date_time"] == NOW.isoformat()


def test_single_phase_vehicle_profile_is_in_amps_on_one_phase() -> None:
    site = one_breaker_site(63.0, [("c1", ("L2", "L3", "L1"), 32.0)])
    p = Problem(
        site, NOW, (Session("s1", "c1", 3.68, at(1), vehicle_phases=1, max_power_kw=3.68),), options=LP
    )
    plan = solved(p)
    assert plan.sessions["s1"].charging_profile.charging_profile_period[0].limit == 16.0


def test_profile_of_a_plan_charging_to_the_end_ends_with_zero() -> None:
    plan = solved(hand_problem(sessions=(Session("s1", "c1", 9.2, at(4)),)))
    periods = plan.sessions["s1"].charging_profile.charging_profile_period
    assert [(x.start_period, x.limit) for x in periods] == [(0, 10.0), (4 * 3600, 0.0)]


# ---- horizon, determinism, depot -------------------------------------------------------------------


def test_horizon_ends_at_the_last_departure_and_is_capped() -> None:
    p = hand_problem(sessions=(Session("s1", "c1", 1.0, at(100)),))
    assert p.n_steps() == 36
    plan = solved(replace(p, step_s=900, options=replace(LP, horizon_cap_s=2 * 3600)))
    assert len(plan.steps) == 8


def test_no_sessions_gives_an_empty_plan() -> None:
    plan = solve(hand_problem(sessions=()))
    assert plan.sessions == {} and plan.status == "optimal"


def test_solve_is_deterministic() -> None:
    p = office_problem("cost", False)
    a, b = solve(p), solve(p)
    assert [s.power_kw for s in a.sessions.values()] == [s.power_kw for s in b.sessions.values()]


def depot_problem(n_sessions: int, min_current: bool = False, n_steps: int = 96) -> Problem:
    site = depot_site(max(120, n_sessions))
    conns = site.connectors()
    sessions = tuple(
        Session(
            f"s{i}",
            conns[i].id,
            10.0 + (i * 7) % 40,
            at(3 + (i * 5) % (n_steps // 4 - 3)),
            vehicle_phases=1 if i % 5 == 0 else 3,
            max_power_kw=None if i % 3 else 11.0,
        )
        for i in range(n_sessions)
    )
    return Problem(
        site,
        NOW,
        sessions,
        pv_kw=pv_curve(n_steps, 120.0),
        base_load_kw=tuple(20.0 + 10 * math.sin(k / 8) for k in range(n_steps)),
        price_eur_per_kwh=tuple(0.1 + 0.1 * ((k // 16) % 2) for k in range(n_steps)),
        options=SolveOptions(min_current=min_current),
    )


@pytest.mark.parametrize("min_current", [False, True])
def test_depot_plans_are_feasible(min_current: bool) -> None:
    p = depot_problem(100, min_current)
    plan = solved(p)
    assert plan.status in ("optimal", "feasible")
    assert plan.method == ("lp_heuristic" if min_current else "lp")


def test_session_limits_follow_the_connector() -> None:
    p = office_problem()
    lims = session_limits(p)
    assert all(lim.pmax_kw > 0 and lim.end > lim.start for lim in lims)


@pytest.mark.parametrize("min_current", [False, True])
def test_depot_sample_site_plans_are_feasible(min_current: bool) -> None:
    site = sample_site("depot")
    conns = site.connectors()
    n = 64
    sessions = tuple(
        Session(
            f"d{i}",
            c.id,
            8.0 + (i * 13) % 50,
            at(6 + (i * 7) % 12),
            vehicle_phases=1 if i % 6 == 0 else 3,
            arrival=None if i % 4 else at(1),
        )
        for i, c in enumerate(conns)
    )
    p = Problem(
        site,
        NOW,
        sessions,
        pv_kw=pv_curve(n, 150.0),
        base_load_kw=tuple(30.0 + (k % 12) for k in range(n)),
        price_eur_per_kwh=tuple(0.3 if 20 <= k < 40 else 0.1 for k in range(n)),
        objective="cost",
        options=SolveOptions(min_current=min_current),
    )
    plan = solved(p)
    assert plan.status in ("optimal", "feasible")
    assert len(plan.sessions) == len(conns) >= 100


def _full_mip(problem: Problem) -> list[float]:
    """Every stage of the exact MIP searched, none taken from the rounding."""
    internals = importlib.import_module("optimizer.solve")
    n = problem.n_steps()
    limits = session_limits(problem, n)
    mip = StagedLp(problem.site, [(s.connector_id, s.vehicle_phases) for s in problem.sessions], n,
                   problem.step_s, mip=True)  # fmt: skip
    mip.load(internals._step_data(problem, n), [internals._slot_data(problem, lim) for lim in limits])
    return list(internals._run(mip, problem.options, True, problem.options.time_limit_s).stage_values)


def test_mip_takes_the_stages_its_rounding_proved_and_searches_the_rest() -> None:
    """The rounded plan at its relaxation's bound in stage 1 (no unmet energy) but not in
    stage 2: the MIP starts at stage 2, and the optima of the priorities are the full MIP's."""
    internals = importlib.import_module("optimizer.solve")
    site = sample_site("office-pv")
    conns = site.connectors()
    rng = random.Random(7)
    partial = 0
    for _ in range(6):
        sessions = tuple(
            Session(
                f"s{i}",
                conns[i].id,
                round(rng.uniform(1.0, 12.0), 1),
                at(rng.uniform(3.0, 10.0)),
                vehicle_phases=rng.choice((1, 3)),
            )
            for i in range(rng.randint(3, 8))
        )
        problem = Problem(site, NOW, sessions, pv_kw=pv_curve(40, rng.uniform(8.0, 30.0)),
                          base_load_kw=(4.0,) * 40, options=SolveOptions(min_current=True))  # fmt: skip
        n = problem.n_steps()
        limits = session_limits(problem, n)
        model = StagedLp(site, [(s.connector_id, s.vehicle_phases) for s in sessions], n, problem.step_s)
        model.load(internals._step_data(problem, n), [internals._slot_data(problem, lim) for lim in limits])
        heuristic = internals._heuristic(model, problem, list(range(len(sessions))))
        bounds = heuristic.bounds
        proved = internals._proved_stages(heuristic.outcome, bounds, problem.options)
        partial += 0 < proved < min(len(bounds), 4)
        plan = solve(problem)
        assert plan.method == "mip" and plan.status == "optimal"
        full = _full_mip(problem)
        assert len(plan.stage_values) == len(full)
        # stages 1-2 and, under shortage, 3-4; the tie-breaks after them run with the on/off
        # pattern of whichever of the equal optima the search ended with
        exact = 4 if full[0] > 1e-6 else 2
        for got, want in zip(plan.stage_values[:exact], full[:exact], strict=True):
            assert got == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert partial >= 1
