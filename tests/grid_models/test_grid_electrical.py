"""Per-phase derivation of formats §7, against currents computed by hand."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from grid_models.electrical import (
    PhaseLimit,
    check,
    connector_phase_a_per_kw,
    constraints,
    downstream,
    session_max_power_kw,
)
from grid_models.site import PHASES, ChargePoint, Load, Phase, Protection, PvPlant, Site
from grid_models.sitefile import site_from_dict
from grid_models.validation import SiteValidationError
from tests.grid_models.helpers import connector, make_depot_module, small_site

V = 230.0
MAIN = Protection("main", None, 63)


def _one(cid: str, phases: tuple[Phase, ...], protection: str = "main", **kwargs: Any) -> ChargePoint:
    return ChargePoint(f"cp-{cid}", protection, (connector(cid, phases, **kwargs),))


def _limit(limits: list[PhaseLimit], protection_id: str, phase: str) -> PhaseLimit:
    return next(lim for lim in limits if lim.protection_id == protection_id and lim.phase == phase)


# --- one connector ---------------------------------------------------------------------------


def test_single_phase_car_on_rotated_three_phase_connector_loads_only_l2() -> None:
    """Connector wired L2-L3-L1: a single-phase car draws on connector phase 1, grid L2."""
    site = small_site((MAIN,), (_one("c", ("L2", "L3", "L1")),))
    c = site.connectors()[0]
    assert connector_phase_a_per_kw(site, c, 1) == {"L2": 1000 / 230}
    report = check(site, {"c": [7.0]}, {"c": 1}, [], [])
    assert report.current_a(0, "main", "L2") == pytest.approx(7000 / 230, abs=1e-12)
    assert report.current_a(0, "main", "L1") == 0.0
    assert report.current_a(0, "main", "L3") == 0.0


def test_three_phase_car_spreads_evenly() -> None:
    site = small_site((MAIN,), (_one("c", ("L2", "L3", "L1")),))
    assert connector_phase_a_per_kw(site, site.connectors()[0], 3) == {
        "L2": 1000 / 690,
        "L3": 1000 / 690,
        "L1": 1000 / 690,
    }


def test_single_phase_connector_ignores_vehicle_phases() -> None:
    site = small_site((MAIN,), (_one("c", ("L3",)),))
    for vehicle_phases in (1, 3):
        assert connector_phase_a_per_kw(site, site.connectors()[0], vehicle_phases) == {"L3": 1000 / 230}


def test_dc_connector_is_a_balanced_three_phase_load() -> None:
    site = small_site((MAIN,), (_one("dc", ("L1", "L2", "L3"), power_type="DC", max_power_kw=50.0),))
    c = site.connectors()[0]
    assert connector_phase_a_per_kw(site, c, 1) == {p: 1000 / 690 for p in PHASES}
    assert session_max_power_kw(site, c, 1, None) == 22.08  # 32 A x 230 V x 3 < 50 kW


def test_vehicle_phases_must_be_one_or_three() -> None:
    site = small_site((MAIN,), (_one("c", ("L1", "L2", "L3")),))
    with pytest.raises(ValueError, match="1 or 3"):
        connector_phase_a_per_kw(site, site.connectors()[0], 2)


@pytest.mark.parametrize(
    ("phases", "vehicle_phases", "vehicle_kw", "connector_kw", "expected_kw"),
    [
        (("L1", "L2", "L3"), 3, None, None, 32 * 230 * 3 / 1000),  # 22.08
        (("L1", "L2", "L3"), 1, None, None, 32 * 230 / 1000),  # 7.36
        (("L1", "L2", "L3"), 3, 11.0, None, 11.0),
        (("L2",), 3, None, None, 7.36),
        (("L2",), 1, 3.7, None, 3.7),
        (("L1", "L2", "L3"), 3, None, 15.0, 15.0),
        (("L1", "L2", "L3"), 1, 20.0, 15.0, 7.36),
    ],
)
def test_session_max_power(
    phases: tuple[Phase, ...],
    vehicle_phases: int,
    vehicle_kw: float | None,
    connector_kw: float | None,
    expected_kw: float,
) -> None:
    site = small_site((MAIN,), (_one("c", phases, max_power_kw=connector_kw),))
    got = session_max_power_kw(site, site.connectors()[0], vehicle_phases, vehicle_kw)
    assert got == pytest.approx(expected_kw, abs=1e-12)


# --- the hand-computed cases ----------------------------------------------------------


def _six_on_l1() -> Site:
    board = Protection("board", "main", 40)
    cps = tuple(_one(f"c{i}", ("L1",), protection="board") for i in range(6))
    return small_site((Protection("main", None, 400), board), cps)


def test_six_single_phase_chargers_on_l1_behind_40_a() -> None:
    """6 x 7.4 kW on L1 behind 40 A: 193 A on L1. At 4.6 kW each (27.6 kW in all) a kW-only
    view (40 A x 3 x 230 V = 27.6 kW) says yes; the per-phase check says 120 A > 40 A."""
    site = _six_on_l1()
    kw_only_capacity_kw = 40 * 3 * V / 1000
    assert kw_only_capacity_kw == pytest.approx(27.6)

    full = check(site, {f"c{i}": [7.4] for i in range(6)}, {}, [], [])
    assert full.current_a(0, "board", "L1") == pytest.approx(6 * 7400 / 230)  # 193.04 A
    assert full.current_a(0, "board", "L1") == pytest.approx(193.04, abs=0.01)
    assert not full.ok

    share_kw = kw_only_capacity_kw / 6  # 4.6 kW each
    assert 6 * share_kw <= kw_only_capacity_kw + 1e-9  # kW-only view: fine
    report = check(site, {f"c{i}": [share_kw] for i in range(6)}, {}, [], [])
    assert report.current_a(0, "board", "L1") == pytest.approx(120.0)
    assert [(v.protection_id, v.phase) for v in report.violations] == [("board", "L1")]
    assert report.violations[0].current_a == pytest.approx(120.0)
    assert report.max_loading_ratio == pytest.approx(3.0)
    assert not report.ok

    # what the board really allows: 40 A on L1 = 9.2 kW in all, L2 and L3 idle
    fair_kw = 40 * V / 1000 / 6
    assert check(site, {f"c{i}": [fair_kw] for i in range(6)}, {}, [], []).ok


def _pv_site() -> Site:
    """Three 22 kW connectors under an EV board, a 30 kWp PV plant under the 63 A main breaker."""
    ev = Protection("ev", "main", 125)
    cps = tuple(_one(f"c{i}", ("L1", "L2", "L3"), protection="ev") for i in range(3))
    return small_site((MAIN, ev), cps, pv_plants=(PvPlant("pv", "main", 30.0),))


def test_pv_under_the_main_breaker_relieves_it() -> None:
    site = _pv_site()
    plan = {f"c{i}": [22.0] for i in range(3)}  # 95.65 A per phase
    without_pv = check(site, plan, {}, [0.0], [0.0])
    assert without_pv.current_a(0, "main", "L1") == pytest.approx(66000 / 690)
    assert {(v.protection_id, v.phase) for v in without_pv.violations} == {("main", p) for p in PHASES}

    with_pv = check(site, plan, {}, [30.0], [0.0])
    assert with_pv.current_a(0, "main", "L2") == pytest.approx((66000 - 30000) / 690)  # 52.17 A
    assert with_pv.ok
    # PV under main does not relieve the EV board below it
    assert with_pv.current_a(0, "ev", "L3") == without_pv.current_a(0, "ev", "L3")


def test_pv_export_is_limited_in_the_reverse_direction_too() -> None:
    site = small_site((Protection("main", None, 32),), pv_plants=(PvPlant("pv", "main", 40.0),))
    report = check(site, {}, {}, [30.0], [])
    assert report.current_a(0, "main", "L1") == pytest.approx(-30000 / 690)  # -43.5 A
    assert {v.phase for v in report.violations} == set(PHASES)
    assert report.grid_import_kw[0] == 0.0 and not report.grid_violations  # export not limited


def test_pv_is_split_between_plants_by_peak_power() -> None:
    a, b = Protection("a", None, 100), Protection("b", None, 100)
    site = small_site((a, b), pv_plants=(PvPlant("pa", "a", 10.0), PvPlant("pb", "b", 30.0)))
    limits = constraints(site)
    assert _limit(limits, "a", "L1").pv_a_per_kw == pytest.approx(-0.25 * 1000 / 690)
    assert _limit(limits, "b", "L3").pv_a_per_kw == pytest.approx(-0.75 * 1000 / 690)
    report = check(site, {}, {}, [40.0], [])
    assert report.current_a(0, "a", "L2") == pytest.approx(-10000 / 690)
    assert report.current_a(0, "b", "L2") == pytest.approx(-30000 / 690)


def test_base_load_sits_on_the_first_load_only() -> None:
    sub = Protection("sub", "main", 32)
    loads = (Load("kitchen", "sub", ("L2",)), Load("hvac", "main"))
    site = small_site((MAIN, sub), loads=loads)
    report = check(site, {}, {}, [], [2.3])
    assert report.current_a(0, "sub", "L2") == pytest.approx(10.0)
    assert report.current_a(0, "main", "L2") == pytest.approx(10.0)
    assert report.current_a(0, "main", "L1") == 0.0
    assert _limit(constraints(site), "main", "L2").base_load_a_per_kw == pytest.approx(1000 / 230)


def test_no_load_means_base_load_counts_for_the_grid_only() -> None:
    site = small_site((MAIN,), grid_kw=10.0)
    report = check(site, {}, {}, [0.0, 0.0], [5.0, 12.0])
    assert np.all(report.currents_a == 0.0)
    assert [(g.step, g.import_kw, g.limit_kw) for g in report.grid_violations] == [(1, 12.0, 10.0)]


def test_grid_import_is_ev_plus_base_minus_pv() -> None:
    site = small_site((Protection("main", None, 400),), (_one("c", ("L1", "L2", "L3")),), grid_kw=20.0)
    report = check(site, {"c": [22.0, 22.0, 10.0]}, {}, [0.0, 5.0, 30.0], [3.0, 3.0, 3.0])
    assert report.grid_import_kw.tolist() == pytest.approx([25.0, 20.0, 0.0])
    assert [g.step for g in report.grid_violations] == [0]  # 20 kW is within the limit


def test_tolerance_is_applied_on_amps() -> None:
    site = small_site((Protection("main", None, 10),), (_one("c", ("L1",)),))
    at_limit_kw = 10 * V / 1000
    assert check(site, {"c": [at_limit_kw + 0.09 * V / 1000]}, {}, [], []).ok
    assert not check(site, {"c": [at_limit_kw + 0.11 * V / 1000]}, {}, [], []).ok


# --- tree and constraints ---------------------------------------------------------------------


def test_downstream_is_transitive(office: Site) -> None:
    down = downstream(office)
    assert down["main"].protections == ("main", "ibst", "zedbox1", "zedbox2")
    assert len(down["main"].connectors) == 12
    assert down["main"].pv_plants == ("pv1",) and down["main"].loads == ("building",)
    assert down["ibst"].pv_plants == () and len(down["ibst"].connectors) == 12
    assert down["zedbox2"].connectors == ("cp7-1", "cp8-1", "cp9-1")
    assert down["zedbox1"].charge_points == ("cp4", "cp5", "cp6")


def test_constraints_order_and_coefficients(office: Site) -> None:
    limits = constraints(office, {"cp2-1": 1})
    assert [(lim.protection_id, lim.phase) for lim in limits] == [
        (p.id, ph) for p in office.protections for ph in PHASES
    ]
    main_l2 = _limit(limits, "main", "L2")
    assert main_l2.connector_a_per_kw["cp2-1"] == pytest.approx(1000 / 230)  # single-phase car on L2
    assert main_l2.connector_a_per_kw["cp1-1"] == pytest.approx(1000 / 690)
    assert "cp2-1" not in _limit(limits, "main", "L1").connector_a_per_kw
    assert main_l2.pv_a_per_kw == pytest.approx(-1000 / 690)
    assert _limit(limits, "zedbox1", "L1").rated_current_a == 32
    # a board that carries nothing on a phase still has its row, with no coefficient
    assert _limit(limits, "zedbox2", "L2").connector_a_per_kw == {"cp8-1": pytest.approx(1000 / 230)}


def test_constraints_agree_with_check(depot: Site) -> None:
    rng = np.random.default_rng(7)
    ids = [c.id for c in depot.connectors()]
    vehicle_phases = {cid: int(rng.choice([1, 3])) for cid in ids}
    plan = {cid: rng.uniform(0, 11, size=4).tolist() for cid in ids}
    pv, base = rng.uniform(0, 150, 4).tolist(), rng.uniform(0, 80, 4).tolist()
    report = check(depot, plan, vehicle_phases, pv, base)
    for r, lim in enumerate(constraints(depot, vehicle_phases)):
        for k in range(4):
            by_hand = sum(a * plan[cid][k] for cid, a in lim.connector_a_per_kw.items())
            by_hand += lim.pv_a_per_kw * pv[k] + lim.base_load_a_per_kw * base[k]
            assert report.currents_a[r, k] == pytest.approx(by_hand, abs=1e-9)


def test_depot_cannot_run_everything_at_full_power(depot: Site) -> None:
    """The brief for the depot: ratings such that simultaneous full power is not possible,
    at every level of the tree."""
    full = {c.id: [session_max_power_kw(depot, c, 3)] for c in depot.connectors()}
    report = check(depot, full, {}, [0.0], [0.0])
    overloaded = {v.protection_id for v in report.violations}
    assert {"main", "feeder1", "feeder1-a", "feeder1-b", "feeder1-c"} <= overloaded
    assert report.grid_violations


def test_depot_shape(depot: Site) -> None:
    assert len(depot.connectors()) >= 100
    parents = {p.id: p.parent for p in depot.protections}
    depth = {pid: 0 for pid in parents}
    for pid in parents:
        node = parents[pid]
        while node is not None:
            depth[pid] += 1
            node = parents[node]
    assert max(depth.values()) == 2  # main -> feeder -> sub-board
    wirings = {c.phases for c in depot.connectors()}
    assert {("L1", "L2", "L3"), ("L2", "L3", "L1"), ("L3", "L1", "L2"), ("L1",), ("L2",), ("L3",)} <= wirings
    assert {c.max_current_a for c in depot.connectors()} == {16, 32}
    assert depot.pv_plants and depot.loads


# --- check() mechanics -----------------------------------------------------------------------


def test_report_fields(office: Site) -> None:
    """cp7-1 (single-phase, L1) sits on zedbox2 (40 A): 7.36 kW is 32 A, a ratio of 0.8."""
    report = check(office, {"cp7-1": [0.0, 7.36, 3.0]}, {}, [0.0] * 3, [0.0] * 3)
    assert report.currents_a.shape == (3 * len(office.protections), 3)
    assert report.rows[:3] == (("main", "L1"), ("main", "L2"), ("main", "L3"))
    assert report.worst_step == 1
    assert report.max_loading_ratio == pytest.approx(32 / 40)
    assert report.loading_ratio[report.rows.index(("main", "L1")), 1] == pytest.approx(32 / 63)
    assert report.ok and report.violations == () and report.grid_violations == ()


def test_bad_series_are_refused(office: Site) -> None:
    with pytest.raises(ValueError, match="unknown connector"):
        check(office, {"nope": [1.0]}, {}, [0.0], [0.0])
    with pytest.raises(ValueError, match="has 2 values, expected 3"):
        check(office, {"cp1-1": [1.0, 2.0]}, {}, [0.0, 0.0, 0.0], [])


def test_a_thousand_connector_depot_checks_96_steps_fast() -> None:
    data = make_depot_module().make_depot(n_feeders=40, site_id="big")
    site = site_from_dict(data)
    assert len(site.connectors()) == 1040
    rng = np.random.default_rng(1)
    plan = {c.id: rng.uniform(0, 7, 96).tolist() for c in site.connectors()}
    phases = {c.id: int(rng.choice([1, 3])) for c in site.connectors()}
    started = time.perf_counter()
    report = check(site, plan, phases, rng.uniform(0, 150, 96).tolist(), rng.uniform(0, 50, 96).tolist())
    elapsed_s = time.perf_counter() - started
    assert report.currents_a.shape == (3 * len(site.protections), 96)
    assert elapsed_s < 1.0, f"check took {elapsed_s:.2f} s"


def test_an_invalid_site_is_refused_not_computed() -> None:
    """A parent loop would silently drop the current of everything below it."""
    site = small_site(
        (Protection("a", "b", 32), Protection("b", "a", 32)), (_one("c", ("L1",), protection="a"),)
    )
    with pytest.raises(SiteValidationError, match="cycle"):
        check(site, {"c": [1.0]}, {}, [], [])
    with pytest.raises(SiteValidationError):
        constraints(site)
