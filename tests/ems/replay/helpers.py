"""Shared inputs of the replay tests: the office site, a month (or week) of log and series.

The example log and series (`examples/`, made by `ems synth`), cut to the days a test needs.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

from ems.replay.log import LoggedSession, read_session_log, write_sessions_csv
from grid_models.site import Site
from grid_models.sitefile import load_site

ROOT = Path(__file__).resolve().parents[3]
SITE_FILE = ROOT / "examples" / "sites" / "office-pv.json"
EXAMPLE_LOG = ROOT / "examples" / "logs" / "office-pv-2026-06.csv"
EXAMPLE_SERIES = ROOT / "examples" / "series" / "office-pv-2026.csv"


def office_site() -> Site:
    return load_site(SITE_FILE)


def month_inputs(folder: Path, first_day: date, n_days: int) -> tuple[Path, Path]:
    """(sessions.csv, series.csv) covering `n_days` from `first_day` on the office site."""
    folder.mkdir(parents=True, exist_ok=True)
    log_path, series_path = folder / "sessions.csv", folder / "series.csv"
    sessions = [
        s
        for s in read_session_log(EXAMPLE_LOG)
        if first_day <= s.arrival.date() < date.fromordinal(first_day.toordinal() + n_days)
    ]
    write_sessions_csv(sessions, log_path)
    series_path.write_text(EXAMPLE_SERIES.read_text(encoding="utf-8"), encoding="utf-8")
    return log_path, series_path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def logged(path: Path) -> list[LoggedSession]:
    return read_session_log(path)
