"""Replay quality: what the drivers got, under real, uncertain and congested demand (issue #16).

For each log it replays `optimized` (the EMS), `perfect_foresight` (the bound: every car's truth
known a day ahead) and the peers `edf` and `fcfs` (per phase, fed the whole of the EMS's
estimates), and prints delivered and unmet energy, EV energy from PV, sessions that got
nothing, Jain's fairness of delivered / requested, set-point changes per session hour and
protection violations; then how far optimized is from perfect foresight (unmet over it, in kWh
and in % of the energy asked; the EV PV ratio) and the ratios optimized / the best peer (least
unmet, with the difference in kWh). The baselines are measured in the same run on the same
logs, so the ratios hold on any machine.

Logs, all made here by `ems synth`'s functions with fixed seeds, so every run sees the same:
- the office month: `examples/logs/office-pv-2026-06.csv` (the drivers' own declaration habits);
- the public car-park month: `examples/logs/public-carpark-2026-06.csv`;
- a congested public week: the public car park at 50 cars a day (about ten per connector);
- a workplace week with harsh declarations: departure off by Uniform(±20 %) of the stay, 15 % of
  departures and 25 % of energies missing, energy × Uniform(0.8, 1.2), no state of charge;
- the same week with no declarations at all.
BENCH_QUICK=1 cuts the months to a week and the weeks to three days.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ems.replay.engine import ReplayConfig, replay
from ems.replay.log import LoggedSession, read_session_log
from ems.replay.report import result_kpis
from ems.replay.synth import DeclarationRule, redeclare, synth_sessions
from ems.sites.series import Series, read_series
from grid_models.site import Site
from grid_models.sitefile import load_site

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
STRATEGIES = ("optimized", "perfect_foresight", "edf", "fcfs")
PEERS = ("edf", "fcfs")
JUNE = date(2026, 6, 1)
HARSH = DeclarationRule(
    departure_error_ratio=0.2, departure_missing=0.15, energy_missing=0.25, energy_error_ratio=0.2
)
NOTHING_TOLD = DeclarationRule(departure_missing=1.0, energy_missing=1.0)


@dataclass(frozen=True)
class QualityLog:
    name: str
    site: Site
    sessions: Sequence[LoggedSession]
    series: Series


def _days(sessions: Sequence[LoggedSession], first: date, n_days: int) -> list[LoggedSession]:
    last = first + timedelta(days=n_days)
    return [s for s in sessions if first <= s.arrival.date() < last]


def logs() -> list[QualityLog]:
    office = load_site(EXAMPLES / "sites" / "office-pv.json")
    carpark = load_site(EXAMPLES / "sites" / "public-carpark.json")
    office_series = read_series(EXAMPLES / "series" / "office-pv-2026.csv")
    carpark_series = read_series(EXAMPLES / "series" / "public-carpark-2026.csv")
    month_days = 7 if QUICK else 30
    week_days = 3 if QUICK else 7
    week = synth_sessions(office, "workplace", date(2026, 6, 8), week_days, 16)
    return [
        QualityLog(
            "office month",
            office,
            _days(read_session_log(EXAMPLES / "logs" / "office-pv-2026-06.csv"), JUNE, month_days),
            office_series,
        ),
        QualityLog(
            "public car-park month",
            carpark,
            _days(read_session_log(EXAMPLES / "logs" / "public-carpark-2026-06.csv"), JUNE, month_days),
            carpark_series,
        ),
        QualityLog(
            "congested public week",
            carpark,
            synth_sessions(carpark, "public", date(2026, 6, 8), week_days, 16, sessions_per_day=50),
            carpark_series,
        ),
        QualityLog("workplace week, harsh declarations", office, redeclare(week, HARSH, 17), office_series),
        QualityLog(
            "workplace week, no declarations", office, redeclare(week, NOTHING_TOLD, 17), office_series
        ),
    ]


def measure(log: QualityLog, strategy: str) -> dict[str, Any]:
    kpis = result_kpis(replay(log.site, log.sessions, log.series, ReplayConfig(strategy=strategy)))
    delivered = float(kpis["energy_delivered_kwh"])
    share = kpis["ev_pv_share_ratio"]
    return {
        "delivered_kwh": delivered,
        "unmet_kwh": float(kpis["unmet_kwh"]),
        "ev_pv_kwh": delivered * share if share is not None else 0.0,
        "zero": int(kpis["sessions_zero_energy"]),
        "jain": kpis["delivered_ratio_jain"],
        "changes_per_h": kpis["setpoint_changes_per_session_hour"],
        "violations": int(kpis["protection_violations"]),
        "wall_s": float(kpis["wall_s"]),
    }


def _ratio(a: float, b: float) -> str:
    return f"{a / b:6.2f}" if b > 1e-9 else ("  1.00" if a <= 1e-9 else "   inf")


def main() -> dict[str, dict[str, dict[str, Any]]]:
    print("Replay quality: what drivers got (kWh), per log and strategy" + (" (quick)" if QUICK else ""))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for log in logs():
        asked = sum(s.energy_kwh for s in log.sessions)
        print(f"\n{log.name}: {len(log.sessions)} sessions, {asked:.0f} kWh asked")
        print(
            f"  {'strategy':18s} {'delivered':>9s} {'unmet':>7s} {'EV PV':>7s} {'zero':>5s} {'Jain':>6s}"
            f" {'chg/h':>6s} {'viol':>5s} {'wall s':>7s}"
        )
        runs = {strategy: measure(log, strategy) for strategy in STRATEGIES}
        out[log.name] = runs
        for strategy, r in runs.items():
            jain = f"{r['jain']:6.3f}" if r["jain"] is not None else "     —"
            changes = f"{r['changes_per_h']:6.2f}" if r["changes_per_h"] is not None else "     —"
            print(
                f"  {strategy:18s} {r['delivered_kwh']:9.1f} {r['unmet_kwh']:7.1f} {r['ev_pv_kwh']:7.1f}"
                f" {r['zero']:5d} {jain} {changes} {r['violations']:5d} {r['wall_s']:7.1f}"
            )
        opt, bound = runs["optimized"], runs["perfect_foresight"]
        best = min(PEERS, key=lambda name: runs[name]["unmet_kwh"])
        peer = runs[best]
        over = opt["unmet_kwh"] - bound["unmet_kwh"]
        print(
            f"  optimized against perfect foresight: unmet {over:+.1f} kWh"
            f" ({100 * over / asked:+.2f} % of asked),"
            f" EV PV x{_ratio(opt['ev_pv_kwh'], bound['ev_pv_kwh']).strip()}"
        )
        print(
            f"  optimized / best peer ({best}): unmet x{_ratio(opt['unmet_kwh'], peer['unmet_kwh']).strip()}"
            f" ({opt['unmet_kwh'] - peer['unmet_kwh']:+.1f} kWh),"
            f" EV PV x{_ratio(opt['ev_pv_kwh'], peer['ev_pv_kwh']).strip()}"
        )
    return out


if __name__ == "__main__":
    main()
