"""The June month of the office site with PV, replayed through the real planner: optimized
against uncontrolled and perfect foresight with the log's own declarations (the issue's
acceptance figures), every KPI recomputed from the files alone; and the first week again with
every driver telling the truth. All with the CLI's defaults (the minimum-current rule on).
About 60 s: ~650 plans a month at ~30 ms, and perfect foresight's exact MIP over each day.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ems.cli.replay import app
from ems.replay.engine import ReplayConfig, replay
from ems.replay.log import LoggedSession
from ems.replay.report import result_kpis
from ems.sites.series import read_series
from tests.ems.replay.helpers import SITE_FILE, logged, month_inputs, office_site, read_csv

FIRST_DAY = date(2026, 6, 1)
N_DAYS = 30
TOLD_DAYS = 7
STRATEGIES = ("optimized", "uncontrolled", "perfect_foresight")
Told = tuple[list[LoggedSession], dict[str, Any], Any, dict[str, Any]]
"""The told-truth week: sessions, optimized KPIs, its result, perfect foresight's KPIs."""


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("replay-month")
    log_path, series_path = month_inputs(folder / "in", FIRST_DAY, N_DAYS)
    out = folder / "out"
    result = CliRunner().invoke(
        app,
        [
            "--site", str(SITE_FILE),
            "--sessions", str(log_path),
            "--series", str(series_path),
            "--strategy", ",".join(STRATEGIES),
            "--out", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    kpis = {s: json.loads((out / s / "kpis.json").read_text()) for s in STRATEGIES}
    return log_path, out, kpis


@pytest.fixture(scope="module")
def told(
    month: tuple[Path, Path, dict[str, dict[str, Any]]],
) -> Told:
    """The month's first week with every driver declaring the truth (energy and departure):
    what is left of the gap to perfect foresight is then the planner's margins, not the needs
    estimation's guesses. (sessions, optimized KPIs, its result, perfect foresight's KPIs)"""
    log_path, _, _ = month
    last = date.fromordinal(FIRST_DAY.toordinal() + TOLD_DAYS)
    sessions = [
        replace(s, declared_energy_kwh=s.energy_kwh, declared_departure=s.departure, soc_arrival_pct=None)
        for s in logged(log_path)
        if s.arrival.date() < last
    ]
    series = read_series(log_path.parent / "series.csv")
    result = replay(office_site(), sessions, series, ReplayConfig(strategy="optimized"))
    bound = replay(office_site(), sessions, series, ReplayConfig(strategy="perfect_foresight"))
    return sessions, result_kpis(result), result, result_kpis(bound)


def test_optimized_beats_uncontrolled_safely(month: tuple[Path, Path, dict[str, dict[str, Any]]]) -> None:
    _, _, kpis = month
    opt, unc, pf = kpis["optimized"], kpis["uncontrolled"], kpis["perfect_foresight"]
    print(
        "\nuncontrolled: protection_violations",
        unc["protection_violations"],
        "max loading",
        unc["max_protection_loading_ratio"],
        "\nev_pv_share optimized / uncontrolled / perfect foresight:",
        opt["ev_pv_share_ratio"],
        unc["ev_pv_share_ratio"],
        pf["ev_pv_share_ratio"],
    )
    assert opt["ev_pv_share_ratio"] > unc["ev_pv_share_ratio"]
    assert opt["grid_peak_kw"] < unc["grid_peak_kw"]
    assert opt["cost_eur"] < unc["cost_eur"]
    assert opt["protection_violations"] == 0
    assert pf["protection_violations"] == 0
    assert unc["protection_violations"] > 0


def test_close_to_perfect_foresight_when_told(
    told: Told,
) -> None:
    """With the drivers' truth, the online planner comes within 15% of the bound's EV PV share
    (measured 88.8%). What is left is the margin: a need is planned to be done an hour before
    the declared departure, since the EMS cannot know this driver keeps their word, so the PV
    of the stay's last hour goes to extra energy only. (When that window slid an hour ahead of
    each re-plan, truthful drivers got 96%, and drivers who left early left without their
    need: 98.3% of the June month's energy delivered, against 99.2% now.)"""
    _, told_kpis, _, bound = told
    print("\nev_pv_share told-truth optimized:", told_kpis["ev_pv_share_ratio"], bound["ev_pv_share_ratio"])
    assert told_kpis["protection_violations"] == 0
    assert told_kpis["ev_pv_share_ratio"] >= 0.85 * bound["ev_pv_share_ratio"]


def test_close_to_perfect_foresight_with_the_logs_declarations(
    month: tuple[Path, Path, dict[str, dict[str, Any]]],
) -> None:
    """The issue's figures: with the log's own declarations (mostly missing, often wrong) the
    online planner reaches 90% of the bound's EV PV share (measured 90.6%) and delivers within
    1% of the energy that fitted in each stay (measured 99.1%; short: cars that left well before
    their estimated departure, or needed more than the most their history or declaration
    suggested). Thin margins on purpose: these are the acceptance figures, not floors."""
    log_path, out, kpis = month
    opt, pf = kpis["optimized"], kpis["perfect_foresight"]
    print("\nev_pv_share log-declarations optimized / perfect foresight:", opt["ev_pv_share_ratio"],
          pf["ev_pv_share_ratio"])  # fmt: skip
    assert opt["ev_pv_share_ratio"] >= 0.9 * pf["ev_pv_share_ratio"]
    delivered = {
        r["session_id"]: float(r["energy_delivered_kwh"])
        for r in read_csv(out / "optimized" / "sessions_out.csv")
    }
    feasible = [s for s, _ in _feasible(logged(log_path))]
    assert len(feasible) >= 200
    share = sum(delivered[s.session_id] for s in feasible) / sum(s.energy_kwh for s in feasible)
    print("delivered / requested where feasible, log declarations:", share)
    assert share >= 0.99


def _whole_steps(arrival: datetime, departure: datetime, step_s: int = 900) -> int:
    a = math.ceil(arrival.timestamp() / step_s - 1e-9)
    d = math.floor(departure.timestamp() / step_s + 1e-9)
    return max(0, d - a)


def _feasible(sessions: list[LoggedSession]) -> list[tuple[LoggedSession, bool]]:
    """(session, single-phase car on a three-phase connector) for every session whose energy
    the car could take at 90% of its power within its whole steps."""
    site = json.loads(SITE_FILE.read_text())
    conns = {(c["evse_uid"], c["connector_id"]): c for cp in site["charge_points"] for c in cp["connectors"]}
    out = []
    for s in sessions:
        c = conns[(s.evse_uid, s.connector_id)]
        drawn = len(c["phases"]) if (len(c["phases"]) == 1 or s.vehicle_phases == 3) else 1
        pmax = min(s.max_power_kw or math.inf, c["max_current_a"] * site["phase_voltage_v"] * drawn / 1000.0)
        if s.energy_kwh <= 0.9 * pmax * _whole_steps(s.arrival, s.departure) * 0.25:
            out.append((s, drawn < len(c["phases"])))
    return out


def test_delivers_what_was_feasible(
    told: Told,
) -> None:
    """Drivers who tell the truth get their energy, within 1%, wherever it fits in their stay.

    Single-phase cars on three-phase connectors: the next test."""
    sessions, _, result, _ = told
    delivered = dict(zip((s.session_id for s in result.sessions), result.delivered_kwh(), strict=True))
    checked = [s for s, one_on_three in _feasible(sessions) if not one_on_three]
    assert len(checked) >= 20
    short = [
        (s.session_id, s.energy_kwh, delivered[s.session_id])
        for s in checked
        if delivered[s.session_id] < 0.99 * s.energy_kwh
    ]
    assert not short


def test_single_phase_cars_on_three_phase_connectors(
    told: Told,
) -> None:
    """Until its first meter values the EMS cannot know such a car draws on one phase; a full
    car found full (`ems.planning.needs`) and the need planned by the departure we are sure of leave it
    the time to catch up."""
    sessions, _, result, _ = told
    delivered = dict(zip((s.session_id for s in result.sessions), result.delivered_kwh(), strict=True))
    checked = [s for s, one_on_three in _feasible(sessions) if one_on_three]
    assert checked
    assert all(delivered[s.session_id] >= 0.99 * s.energy_kwh for s in checked)


# ---- every KPI again, from the files alone -----------------------------------------------------


def _currents(site: dict[str, Any], ts_power: dict[tuple[str, str], float], pv: float, base: float,
              phases_of: dict[str, tuple[str, int]]) -> dict[tuple[str, str], float]:  # fmt: skip
    """Net current per (protection, phase), formats §7, from the raw site file."""
    v = site["phase_voltage_v"]
    parent = {p["id"]: p["parent"] for p in site["protections"]}

    def chain(pid: str) -> list[str]:
        out = []
        while pid is not None:
            out.append(pid)
            pid = parent[pid]
        return out

    amps: dict[tuple[str, str], float] = defaultdict(float)
    conn = {
        c["id"]: (cp["protection"], c["phases"]) for cp in site["charge_points"] for c in cp["connectors"]
    }
    for (_ts, sid), p in ts_power.items():
        cid, vph = phases_of[sid]
        prot, phases = conn[cid]
        drawn = phases if (len(phases) == 1 or vph == 3) else phases[:1]
        for pid in chain(prot):
            for ph in drawn:
                amps[(pid, ph)] += p * 1000.0 / (len(drawn) * v)
    total_peak = sum(pl["peak_power_kw"] for pl in site["pv_plants"])
    for pl in site["pv_plants"]:
        share = pv * pl["peak_power_kw"] / total_peak if total_peak else 0.0
        for pid in chain(pl["protection"]):
            for ph in ("L1", "L2", "L3"):
                amps[(pid, ph)] -= share * 1000.0 / (3 * v)
    if site["loads"]:
        load = site["loads"][0]
        for pid in chain(load["protection"]):
            for ph in load["phases"]:
                amps[(pid, ph)] += base * 1000.0 / (len(load["phases"]) * v)
    return amps


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_kpis_recomputed_from_files(
    month: tuple[Path, Path, dict[str, dict[str, Any]]], strategy: str
) -> None:
    log_path, out, kpis = month
    k = kpis[strategy]
    folder = out / strategy
    site = json.loads(SITE_FILE.read_text())
    timeline = read_csv(folder / "timeline.csv")
    power_rows = read_csv(folder / "session_power.csv")
    sessions_out = read_csv(folder / "sessions_out.csv")
    log = {s.session_id: s for s in logged(log_path)}
    conn_of = {
        (c["evse_uid"], c["connector_id"]): c["id"] for cp in site["charge_points"] for c in cp["connectors"]
    }
    phases_of = {sid: (conn_of[(s.evse_uid, s.connector_id)], s.vehicle_phases) for sid, s in log.items()}
    dt_h = 0.25

    # the span: whole local days, 15-minute steps, every step once
    assert timeline[0]["timestamp"].endswith("T00:00:00+02:00")
    first = min(s.arrival for s in log.values()).date()
    last = max(s.departure for s in log.values()).date()
    assert len(timeline) == ((last - first).days + 1) * 96  # no DST change in June

    pv = [float(r["pv_kw"]) for r in timeline]
    base = [float(r["base_load_kw"]) for r in timeline]
    ev = [float(r["ev_kw"]) for r in timeline]
    grid = [float(r["grid_import_kw"]) for r in timeline]
    price = [float(r["price_eur_per_kwh"]) for r in timeline]
    per_step: dict[str, float] = defaultdict(float)
    by_session: dict[str, float] = defaultdict(float)
    ts_power: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for r in power_rows:
        p = float(r["power_kw"])
        assert p > 0
        per_step[r["timestamp"]] += p
        by_session[r["session_id"]] += p * dt_h
        ts_power[r["timestamp"]][(r["timestamp"], r["session_id"])] = p
    for r, e, g, b, s in zip(timeline, ev, grid, base, pv, strict=True):
        assert e == pytest.approx(per_step.get(r["timestamp"], 0.0), abs=1e-6)
        assert g == pytest.approx(max(0.0, e + b - s), abs=1e-6)

    # sessions_out: the log's times and true energy; delivered = Σ session power
    assert len(sessions_out) == len(log) == k["n_sessions"]
    for r in sessions_out:
        one = log[r["session_id"]]
        assert datetime.fromisoformat(r["arrival"]) == one.arrival
        assert datetime.fromisoformat(r["departure"]) == one.departure
        assert float(r["energy_requested_kwh"]) == pytest.approx(one.energy_kwh)
        assert float(r["energy_delivered_kwh"]) == pytest.approx(
            by_session.get(r["session_id"], 0.0), abs=1e-6
        )
        assert float(r["energy_delivered_kwh"]) <= one.energy_kwh + 1e-6
    # only whole steps plugged in
    for r in power_rows:
        one = log[r["session_id"]]
        t = datetime.fromisoformat(r["timestamp"])
        assert one.arrival <= t and t.timestamp() + 900 <= one.departure.timestamp() + 1e-6

    requested = sum(s.energy_kwh for s in log.values())
    delivered = sum(float(r["energy_delivered_kwh"]) for r in sessions_out)
    pv_kwh = sum(pv) * dt_h
    ev_kwh = sum(ev) * dt_h
    violations = 0
    max_ratio = 0.0
    ratings = {p["id"]: p["rated_current_a"] for p in site["protections"]}
    for r, s, b in zip(timeline, pv, base, strict=True):
        amps = _currents(site, ts_power.get(r["timestamp"], {}), s, b, phases_of)
        for pid, rating in ratings.items():
            for ph in ("L1", "L2", "L3"):
                i = abs(amps.get((pid, ph), 0.0))
                violations += i > rating + 0.1
                max_ratio = max(max_ratio, i / rating)
    expected = {
        "n_sessions": len(log),
        "energy_requested_kwh": requested,
        "energy_delivered_kwh": delivered,
        "unmet_kwh": requested - delivered,
        "pv_energy_kwh": pv_kwh,
        "pv_self_consumption_ratio": sum(min(s, e + b) for s, e, b in zip(pv, ev, base, strict=True))
        * dt_h
        / pv_kwh,
        "ev_pv_share_ratio": sum(min(e, max(0.0, s - b)) for s, e, b in zip(pv, ev, base, strict=True))
        / sum(ev),
        "grid_import_kwh": sum(grid) * dt_h,
        "grid_peak_kw": max(grid),
        "cost_eur": sum(g * p for g, p in zip(grid, price, strict=True)) * dt_h,
        "protection_violations": violations,
        "max_protection_loading_ratio": max_ratio,
        "sessions_zero_energy": sum(
            float(r["energy_requested_kwh"]) >= 0.05 and float(r["energy_delivered_kwh"]) < 0.05
            for r in sessions_out
        ),
    }
    shares = [
        min(1.0, float(r["energy_delivered_kwh"]) / float(r["energy_requested_kwh"]))
        for r in sessions_out
        if float(r["energy_requested_kwh"]) > 0
    ]
    expected["delivered_ratio_jain"] = sum(shares) ** 2 / (len(shares) * sum(x * x for x in shares))
    assert ev_kwh == pytest.approx(delivered, rel=1e-9, abs=1e-6)
    for key, value in expected.items():
        assert k[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
    assert k["n_reoptimizations"] > 0
    assert k["reopt_ms_p50"] <= k["reopt_ms_p95"]
    assert k["wall_s"] > 0
    # the uncontrolled cars are never sent a limit; the others follow plans that change
    if strategy == "uncontrolled":
        assert k["setpoint_changes_per_session_hour"] == 0
    else:
        assert k["setpoint_changes_per_session_hour"] > 0


def test_multi_strategy_report_files(month: tuple[Path, Path, dict[str, dict[str, Any]]]) -> None:
    _, out, _ = month
    html = (out / "report.html").read_text()
    for s in STRATEGIES:
        assert s in html
        for name in ("kpis.json", "timeline.csv", "session_power.csv", "sessions_out.csv", "report.html",
                     "power.png", "energy.png", "protections.png", "daily.png"):  # fmt: skip
            assert (out / s / name).stat().st_size > 0, (s, name)
    assert (out / "compare_daily.png").stat().st_size > 0
    assert "data:image/png;base64," in html
