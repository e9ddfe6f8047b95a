"""`ems replay --group` (issue #19): the campus example's two sites replayed through their own
EMS, the group planned as one unit; KPIs per site and for the group, the limit in the plots."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ems.cli.replay import app
from ems.replay.group import replay_group, write_group_outputs
from ems.replay.kpis import KPI_KEYS
from ems.replay.log import LoggedSession, read_session_log, sessions_csv_text
from ems.replay.result import ReplayConfig
from ems.sites.series import read_series
from grid_models.groupfile import load_group
from grid_models.sitefile import load_site

REPO = Path(__file__).resolve().parents[3]
SITES = ("office-pv", "public-carpark")
GROUP_FILE = REPO / "examples" / "groups" / "campus.json"


def _day(site_id: str, day: int) -> list[LoggedSession]:
    start = datetime.fromisoformat(f"2026-06-{day:02d}T00:00:00+02:00")
    end = datetime.fromisoformat(f"2026-06-{day + 1:02d}T00:00:00+02:00")
    log = read_session_log(REPO / "examples" / "logs" / f"{site_id}-2026-06.csv")
    return [s for s in log if s.arrival >= start and s.departure < end]


@pytest.fixture(scope="module")
def june_1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[type-arg]
    sites = {s: load_site(REPO / "examples" / "sites" / f"{s}.json") for s in SITES}
    group = load_group(GROUP_FILE, set(sites))
    logs = {s: _day(s, 1) for s in SITES}
    series = {s: read_series(REPO / "examples" / "series" / f"{s}-2026.csv") for s in SITES}
    out = {}
    for strategy in ("optimized", "optimized_alone"):
        result = replay_group(group, sites, logs, series, ReplayConfig(strategy=strategy))
        out[strategy] = write_group_outputs(result, tmp_path_factory.mktemp(strategy))
    return out


def test_joint_planning_keeps_the_contract_that_sites_planned_alone_break(june_1: dict) -> None:  # type: ignore[type-arg]
    joint, alone = june_1["optimized"], june_1["optimized_alone"]
    assert joint["group"]["limit_violations"] == 0
    assert joint["group"]["protection_violations"] == 0
    assert joint["group"]["max_limit_loading_ratio"] <= 1.0 + 1e-4
    assert joint["group"]["peak_kw"] <= 25.0 + 1e-3
    # the same EMS planning each site alone draws over the 25 kW contract at midday
    assert alone["group"]["limit_violations"] >= 1
    assert alone["group"]["peak_kw"] > 25.0


def test_group_kpis_keep_every_site_key_and_add_the_groups(june_1: dict) -> None:  # type: ignore[type-arg]
    kpis = june_1["optimized"]
    assert set(kpis) == {"group", "sites"}
    assert list(kpis["sites"]) == list(SITES)
    for site_kpis in kpis["sites"].values():
        assert set(KPI_KEYS) <= set(site_kpis)
    group = kpis["group"]
    assert group["n_sessions"] == sum(k["n_sessions"] for k in kpis["sites"].values())
    assert group["unmet_kwh"] == pytest.approx(sum(k["unmet_kwh"] for k in kpis["sites"].values()))
    assert set(group["groups"]) == {"campus"}
    assert group["n_reoptimizations"] > 0


def test_the_cli_replays_one_log_with_a_site_column_and_draws_the_dso_limit(tmp_path: Path) -> None:
    rows = []
    for site_id in SITES:
        text = sessions_csv_text(_day(site_id, 3)).splitlines()
        header, body = text[0], text[1:]
        rows += [f"{line},{site_id}" for line in body]
    log = tmp_path / "campus.csv"
    log.write_text("\n".join([f"{header},site", *rows]) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["--group", str(GROUP_FILE), "--sessions", str(log), "--out", str(out)]
    for site_id in SITES:
        args += ["--site", str(REPO / "examples" / "sites" / f"{site_id}.json")]
        args += ["--series", f"{site_id}={REPO / 'examples' / 'series' / f'{site_id}-2026.csv'}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    kpis = json.loads((out / "kpis.json").read_text())
    assert json.loads(result.stdout) == kpis
    assert kpis["group"]["limit_violations"] == 0
    for name in ("group_power.png", "group_timeline.csv", "report.html"):
        assert (out / name).is_file()
    for site_id in SITES:
        assert (out / "sites" / site_id / "kpis.json").is_file()
    timeline = list(csv.DictReader((out / "group_timeline.csv").open()))
    evening = {r["timestamp"][11:16]: r for r in timeline if r["timestamp"].startswith("2026-06-03T1")}
    assert (evening["17:00"]["max_import_kw"], evening["17:00"]["import_limit_id"]) == (
        "12.0",
        "dso-flex-2026-06-03",
    )
    assert (evening["18:45"]["max_import_kw"], evening["16:45"]["max_import_kw"]) == ("16.0", "25.0")
    assert all(float(r["import_kw"]) <= float(r["max_import_kw"]) + 1e-3 for r in timeline)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--log", "nowhere=x.csv"], "site 'nowhere' is not in the group"),
        (["--log", "office-pv"], "expected SITE=path"),
        (["--strategy", "perfect_foresight"], "with --group expected"),
        ([], "--group needs either --log"),
    ],
)
def test_bad_group_replays_are_refused_in_one_line(extra: list[str], needle: str) -> None:
    args = ["--group", str(GROUP_FILE), *extra]
    for site_id in SITES:
        args += ["--site", str(REPO / "examples" / "sites" / f"{site_id}.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_several_sites_without_a_group_are_refused() -> None:
    site = str(REPO / "examples" / "sites" / "office-pv.json")
    result = CliRunner().invoke(app, ["--site", site, "--site", site, "--sessions", "x.csv"])
    assert result.exit_code == 2 and "--group" in result.stderr
