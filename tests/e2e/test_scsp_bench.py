"""`ems scsp-bench` end to end: the bench process against real SCSPs on 127.0.0.1.

1. This EMS planning `optimized` against this EMS planning `uncontrolled`, each `ems serve` on a
   fresh database, on a June day of the office site, both re-planning every 15 min as the server
   does by default and as the replay is told to: the bench ranks them as `ems replay` does and
   counts the uncontrolled one's overloads per phase. Within 2 % of the replay: every KPI of the
   uncontrolled one; of the optimized one, what its drivers got (energy delivered, unmet, zero-
   energy sessions, violations) and the energies asked and of PV. Its grid import, cost, PV
   shares and peak are held within a tenth of the way from the replay's figure to the
   uncontrolled one's, and its Jain index not at all, for one car: s00022 declared 2 kWh and no
   departure, and leaves at 14:27, an hour before the departure the EMS is sure of (the site's
   default stay less its margin). Its 2.5 kWh (declared + 25 %) are PV-only extra, and PV goes
   first to the extras of cars whose windows end sooner; what it gets before it leaves depends
   on when the plans fall: 0 kWh in the replay re-planning every 15 min, 0.91 kWh on a bench run
   under load, all 2.14 kWh in a fresh-clone `make test` (2.4 % of the day's 87.8 kWh: over the
   2 % once checked on the day's total). So what each driver got is compared session by
   session, every other session within 2 % of what it asked (on that bench run, all equal to
   the kWh), and the energy KPIs without s00022. Measured before, over three runs at 600x: every
   other KPI within 2 % in the two where it got nothing (grid -0.8 and +0.2 %, cost -1.8 and
   +0.5 %, EV PV share +0.4 and -0.3 %, peak equal; Jain 0.917 against 0.978); in the third its
   2 kWh came partly from the grid (grid and cost +5 %, EV PV share -3.2 %, Jain +2.2 %), 4.1 %
   of the way to the uncontrolled one's.
2. A single-line SCSP (tests/bench_cpo/single_line_scsp.py) that splits the site's kW across the
   cars, blind to phases, is caught overloading a phase of the public car park's feeder.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench_cpo.scores import ranking
from ems.replay import ReplayConfig, read_session_log, replay
from ems.replay.report import result_kpis
from ems.sites.series import read_series
from grid_models import load_site
from tests.bench_cpo.single_line_scsp import SingleLineScsp
from tests.support.servers import REPO, ThreadedServer

pytestmark = pytest.mark.e2e

OFFICE = REPO / "examples/sites/office-pv.json"
OFFICE_LOG = REPO / "examples/logs/office-pv-2026-06.csv"
OFFICE_SERIES = REPO / "examples/series/office-pv-2026.csv"
CARPARK = REPO / "examples/sites/public-carpark.json"
CARPARK_LOG = REPO / "examples/logs/public-carpark-2026-06.csv"
DAY = "2026-06-02"
BENCH_TIMEOUT_S = 240
TIED_SESSION = "s00022"
"""Of the optimized SCSP, the session whose energy the plans' timing decides (module docstring)."""
REPLAN_MIN = 15
"""The server's default re-plan interval (`EMS_PLAN_INTERVAL_S`, 900 s); the replay's is 60 min."""

# Within 2 % of the replay: each figure relative to itself, energies also to the energy asked
# (an unmet 0.0 kWh cannot be matched "within 2 %" of itself otherwise), counts to ±1 or 2 %.
ENERGY_KPIS = ("energy_delivered_kwh", "unmet_kwh", "grid_import_kwh")
RATIO_KPIS = ("pv_self_consumption_ratio", "ev_pv_share_ratio", "delivered_ratio_jain")
OTHER_KPIS = ("grid_peak_kw", "cost_eur", "pv_energy_kwh", "energy_requested_kwh")
COUNT_KPIS = ("protection_violations", "sessions_zero_energy", "n_sessions")


def one_day(log: Path, day: str, out: Path) -> Path:
    """The log's sessions arriving on `day`, without the state of charge: OCPI carries no SoC to
    an SCSP (the replay would hand it to the EMS through the driver widget), so neither gets it."""
    with log.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["arrival"].startswith(day)]
    assert rows
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow(r | {"soc_arrival_pct": "", "battery_capacity_kwh": ""})
    return out


def bench(*args: str, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench_cpo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    summary: dict[str, Any] = json.loads(lines[0])
    return summary


def _delivered_by_session(sessions_out: Path) -> dict[str, float]:
    with sessions_out.open(newline="") as fh:
        return {row["session_id"]: float(row["energy_delivered_kwh"]) for row in csv.DictReader(fh)}


def close(bench_value: float | None, replay_value: float | None, scale: float) -> bool:
    if bench_value is None or replay_value is None:
        return bench_value == replay_value
    return abs(bench_value - replay_value) <= 0.02 * max(abs(replay_value), scale) + 1e-9


def _scale(key: str, requested_kwh: float) -> float:
    return requested_kwh if key in ENERGY_KPIS else (50.0 if key in COUNT_KPIS else 0.0)


def test_the_bench_ranks_two_ems_strategies_as_the_replay_does(tmp_path: Path) -> None:
    log = one_day(OFFICE_LOG, DAY, tmp_path / "office-day.csv")
    out = tmp_path / "out"
    summary = bench(
        "--site", str(OFFICE), "--sessions", str(log), "--series", str(OFFICE_SERIES),
        "--scsp", "opt=ems:optimized", "--scsp", "unc=ems:uncontrolled", "--replan-min", str(REPLAN_MIN),
        "--speed", "600", "--response-window-s", "600", "--setup-s", "12", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    scores = json.loads((out / "scores.json").read_text())["scsps"]
    assert all(scores[n]["registered"] for n in ("opt", "unc"))

    site, sessions, series = load_site(OFFICE), read_session_log(log), read_series(OFFICE_SERIES)
    results = {
        name: replay(site, sessions, series, ReplayConfig(strategy=strategy, replan_s=REPLAN_MIN * 60))
        for name, strategy in (("opt", "optimized"), ("unc", "uncontrolled"))
    }
    replayed = {name: result_kpis(result) for name, result in results.items()}
    assert summary["ranking"] == ranking(replayed) == ["opt", "unc"]
    requested = replayed["unc"]["energy_requested_kwh"]

    # What each driver got, session by session: the same as in the replay within 2 % of what
    # the session asked, but for the tie (opt's s00022, which gets anything from 0 to all of
    # its 2.14 kWh: 0.9 kWh on a bench run where the replay gave it 0, every other session
    # equal to the kWh). The energy KPIs below are then compared without the tie.
    delivered = {name: _delivered_by_session(out / name / "sessions_out.csv") for name in results}
    tie_kwh = {}
    for name, result in results.items():
        for s, kwh in zip(result.sessions, result.delivered_kwh(), strict=True):
            got_kwh = delivered[name][s.session_id]
            if name == "opt" and s.session_id == TIED_SESSION:
                assert -1e-6 <= got_kwh <= s.energy_kwh + 1e-6
                tie_kwh = {"bench": got_kwh, "replay": float(kwh)}
                continue
            assert abs(got_kwh - kwh) <= 0.02 * s.energy_kwh + 1e-6, (name, s.session_id, got_kwh, float(kwh))
    assert tie_kwh

    timing = ("grid_import_kwh", "cost_eur", "pv_self_consumption_ratio", "ev_pv_share_ratio", "grid_peak_kw")
    every = (*ENERGY_KPIS, *RATIO_KPIS, *OTHER_KPIS, *COUNT_KPIS)
    for name, keys in (
        ("unc", every),
        ("opt", [k for k in every if k not in (*timing, "delivered_ratio_jain")]),
    ):
        got, expected = dict(scores[name]["kpis"]), dict(replayed[name])
        if name == "opt":  # the tie counted as wholly undelivered on both sides
            got["energy_delivered_kwh"] -= tie_kwh["bench"]
            expected["energy_delivered_kwh"] -= tie_kwh["replay"]
            got["unmet_kwh"] += tie_kwh["bench"]
            expected["unmet_kwh"] += tie_kwh["replay"]
        wrong = {
            key: (got[key], expected[key])
            for key in keys
            if not close(got[key], expected[key], _scale(key, requested))
        }
        assert not wrong, (name, wrong)
    got, expected, unc = scores["opt"]["kpis"], replayed["opt"], replayed["unc"]
    far = {
        key: (got[key], expected[key], unc[key])
        for key in timing
        if abs(got[key] - expected[key]) > 0.1 * abs(expected[key] - unc[key])
    }
    assert not far, far

    # The uncontrolled one overloads, and the bench says on which protection and phase.
    by_phase = scores["unc"]["protection_violations_by_phase"]
    assert sum(by_phase.values()) == scores["unc"]["kpis"]["protection_violations"] > 0
    assert {row.split("/")[1] for row, n in by_phase.items() if n} <= {"L1", "L2", "L3"}
    assert not any(scores["opt"]["protection_violations_by_phase"].values())
    for name in ("opt", "unc"):
        assert scores[name]["profiles_malformed"] == scores[name]["ocpi_errors_answered"] == 0
        assert scores[name]["sessions_without_profile"] == 0
        assert scores[name]["profile_response_s_p50"] > 0
    report = (out / "report.html").read_text()
    assert "opt" in report and "unc" in report and report.count("<img") >= 6
    assert (out / "opt" / "kpis.json").is_file() and (out / "unc" / "timeline.csv").is_file()


def test_a_single_line_scsp_is_caught_overloading_a_phase(tmp_path: Path) -> None:
    site = load_site(CARPARK)
    scsp = SingleLineScsp(site.grid_connection.max_power_kw)
    log = one_day(CARPARK_LOG, DAY, tmp_path / "carpark-day.csv")
    with ThreadedServer(scsp.app) as server:
        scsp.url = server.url
        bench(
            "--site", str(CARPARK), "--sessions", str(log),
            "--scsp", f"single-line={server.url}/ocpi/versions", "--token-a", f"single-line={scsp.token_a}",
            "--speed", "6000", "--setup-s", "3", "--out", str(tmp_path / "out"),
            cwd=tmp_path,
        )  # fmt: skip
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())["scsps"]["single-line"]
    assert scores["registered"] and scores["profiles_accepted"] > 0 and scsp.puts > 0
    by_phase = scores["protection_violations_by_phase"]
    # Two connectors on L1 and two on L2 under a 25 A feeder: 2 x 16 A is too much; L3 has one.
    assert by_phase["feeder/L1"] + by_phase["feeder/L2"] > 0
    assert by_phase["feeder/L3"] == 0
    assert all(by_phase[f"main/{p}"] == 0 for p in ("L1", "L2", "L3"))  # 32 A holds 2 x 16 A
    assert scores["kpis"]["protection_violations"] == sum(by_phase.values())
