"""Replay speed: simulated days per second of the office site (12 points, 35 kWp) replayed
through the server's planner, and that planner's latency per re-plan.

The baseline, measured in the same run on the same days, is the `uncontrolled` strategy: the
same virtual CPO, OCPI services, Planner and Dispatcher with a trivial solver, so the ratio
isolates what the optimizer costs over the EMS's own plumbing. `perfect_foresight` (no EMS,
one optimizer plan a day) shows the optimizer alone. Bounded: 5 working days of June (2 with
BENCH_QUICK=1) of the example log (`examples/logs/office-pv-2026-06.csv`, made by `ems synth`).

The year estimate scales the optimized run by sessions (a year log's weekends cost nothing, its
working days about what these do); CPU time is printed beside wall time because the machine is
often shared. The measured full year is `ems replay` on `examples/logs/office-pv-2026.csv`.
"""

from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from ems.replay.engine import ReplayConfig, replay
from ems.replay.kpis import percentile
from ems.replay.log import LoggedSession, read_session_log
from ems.sites.series import Series, read_series
from grid_models.sitefile import load_site

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPO = Path(__file__).resolve().parents[1]
SITE_FILE = REPO / "examples" / "sites" / "office-pv.json"
EXAMPLE_LOG = REPO / "examples" / "logs" / "office-pv-2026-06.csv"
EXAMPLE_SERIES = REPO / "examples" / "series" / "office-pv-2026.csv"
YEAR_LOG = REPO / "examples" / "logs" / "office-pv-2026.csv"
FIRST_DAY = date(2026, 6, 1)


def _inputs(n_days: int) -> tuple[list[LoggedSession], Series]:
    last = date.fromordinal(FIRST_DAY.toordinal() + n_days)
    sessions = [s for s in read_session_log(EXAMPLE_LOG) if FIRST_DAY <= s.arrival.date() < last]
    return sessions, read_series(EXAMPLE_SERIES)


def measure(
    strategy: str, sessions: list[LoggedSession], series: Series, min_current: bool
) -> dict[str, Any]:
    site = load_site(SITE_FILE)
    cpu0 = time.process_time()
    result = replay(site, sessions, series, ReplayConfig(strategy=strategy, min_current=min_current))
    cpu_s = time.process_time() - cpu0
    days = len(result.steps) * result.step_s / 86400.0
    return {
        "days": days,
        "sessions": len(sessions),
        "wall_s": result.wall_s,
        "cpu_s": cpu_s,
        "days_per_s": days / result.wall_s,
        "plans": len(result.plan_ms),
        "plan_ms_p50": percentile(result.plan_ms, 50),
        "plan_ms_p95": percentile(result.plan_ms, 95),
        "plan_ms_max": max(result.plan_ms, default=None),
    }


def main() -> dict[str, dict[str, Any]]:
    n_days = 2 if QUICK else 5
    sessions, series = _inputs(n_days)
    print(f"Replay speed, office site, {n_days} working days from {FIRST_DAY}, {len(sessions)} sessions")
    runs = {
        "uncontrolled (baseline)": measure("uncontrolled", sessions, series, min_current=False),
        "optimized, min-current off": measure("optimized", sessions, series, min_current=False),
        "perfect_foresight, off": measure("perfect_foresight", sessions, series, min_current=False),
    }
    if not QUICK:
        runs["optimized, min-current on"] = measure("optimized", sessions, series, min_current=True)
    base = runs["uncontrolled (baseline)"]["days_per_s"]
    for name, r in runs.items():
        p50, p95 = r["plan_ms_p50"] or 0.0, r["plan_ms_p95"] or 0.0
        print(
            f"  {name:28s} {r['days_per_s']:7.3f} days/s ({r['days_per_s'] / base:5.2f}x baseline)"
            f"  {r['plans']:4d} plans  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  CPU {r['cpu_s']:5.1f} s"
        )
    year_sessions = len(read_session_log(YEAR_LOG)) if YEAR_LOG.is_file() else 12 * 5 * 52
    for name in ("optimized, min-current off", "optimized, min-current on"):
        if name in runs:
            r = runs[name]
            scale = year_sessions / max(1, r["sessions"])
            print(
                f"  a year ({year_sessions} sessions) {name} at this rate: {scale * r['wall_s'] / 60:.1f} min"
                f" wall, {scale * r['cpu_s'] / 60:.1f} min CPU (target: under 5 min)"
            )
    return runs


if __name__ == "__main__":
    main()
