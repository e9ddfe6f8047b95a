"""`ems optimize` (formats §4, §5, §7): result.json on the sample sites, one-line errors with
exit code 2 on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ems.cli.optimize import app, optimize_command
from grid_models.electrical import check
from grid_models.sitefile import load_site

REPO = Path(__file__).resolve().parents[3]
OFFICE = REPO / "examples" / "sites" / "office-pv.json"
CARPARK = REPO / "examples" / "sites" / "public-carpark.json"
NOW = "2026-06-01T08:00:00+02:00"

ACTIVE = [
    {
        "session_id": "s1",
        "evse_uid": "FR*INE*E0001",
        "connector_id": "1",
        "energy_needed_kwh": 12.5,
        "departure": "2026-06-01T17:30:00+02:00",
        "max_power_kw": 11.0,
        "vehicle_phases": 3,
    },
    {
        "session_id": "s2",
        "evse_uid": "FR*INE*E0007",
        "connector_id": "1",
        "energy_needed_kwh": 10,
        "departure": "2026-06-01T12:30:00+02:00",
        "vehicle_phases": 1,
    },
    {
        "session_id": "s3",
        "evse_uid": "FR*INE*E0010",
        "connector_id": "1",
        "energy_needed_kwh": 0,
        "departure": "2026-06-01T10:00:00+02:00",
    },
]
SERIES = """timestamp,pv_kw,price_eur_per_kwh,base_load_kw
2026-06-01T08:00:00+02:00,0.0,0.30,3.0
2026-06-01T10:00:00+02:00,20.0,0.20,3.0
2026-06-01T14:00:00+02:00,5.0,0.05,3.0
"""


def main_app() -> typer.Typer:
    """`ems` as the lead mounts it: the command registered by name beside another."""
    ems = typer.Typer()
    ems.command("optimize")(optimize_command)

    @ems.command("version")
    def version() -> None:
        typer.echo("0")

    return ems


def run(tmp_path: Path, *extra: str, sessions: Any = None, site: Path = OFFICE) -> Any:
    active = tmp_path / "active.json"
    active.write_text(json.dumps(ACTIVE if sessions is None else sessions), encoding="utf-8")
    args = ["optimize", "--site", str(site), "--sessions", str(active), "--now", NOW, *extra]
    return CliRunner().invoke(main_app(), args)


def oracle(result: dict[str, Any], site_path: Path = OFFICE) -> None:
    site = load_site(site_path)
    by_ocpi = {(c.evse_uid, c.connector_id): c for c in site.connectors()}
    power = {}
    phases = {}
    for s in result["sessions"].values():
        c = by_ocpi[(s["evse_uid"], s["connector_id"])]
        power[c.id] = s["power_kw"]
        phases[c.id] = s["vehicle_phases"]
    report = check(site, power, phases, result["pv_kw"], result["base_load_kw"])
    assert report.ok, report.violations[:3]


def test_result_json_follows_formats_5(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    series.write_text(SERIES, encoding="utf-8")
    out = tmp_path / "result.json"
    r = run(tmp_path, "--series", str(series), "--objective", "cost", "--out", str(out))
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["status"] == "optimal" and res["objective"] == "cost" and res["step_s"] == 900
    assert res["steps"][0] == NOW and len(res["steps"]) == 38  # 08:00 .. 17:30
    assert set(res["sessions"]) == {"s1", "s2", "s3"}
    n = len(res["steps"])
    for key in ("grid_import_kw", "pv_used_kw", "pv_kw", "base_load_kw", "price_eur_per_kwh"):
        assert len(res[key]) == n
    for sid, s in res["sessions"].items():
        assert len(s["power_kw"]) == n
        assert math.isclose(s["energy_planned_kwh"], sum(s["power_kw"]) / 4, abs_tol=1e-5)
        prof = s["charging_profile"]
        assert prof["start_date_time"] == NOW and prof["charging_rate_unit"] == "A"
        assert prof["charging_profile_period"][0]["start_period"] == 0
        assert prof["charging_profile_period"][-1]["limit"] == 0.0
        assert s["unmet_kwh"] == pytest.approx(0.0, abs=1e-6), sid
    assert res["sessions"]["s3"]["power_kw"] == [0.0] * n
    # s2 leaves at 12:30: nothing after step 18
    assert all(p == 0 for p in res["sessions"]["s2"]["power_kw"][18:])
    assert res["cost_eur"] is not None and res["method"] in ("mip", "lp_heuristic")
    assert isinstance(res["solve_ms"], float)
    oracle(res)


def test_stdout_and_min_current_off_and_no_series(tmp_path: Path) -> None:
    r = run(tmp_path, "--min-current", "off", "--objective", "cost", "--step-min", "30")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["method"] == "lp" and res["cost_eur"] is None and res["objective"] == "self_consumption"
    assert res["step_s"] == 1800
    oracle(res)


def test_carpark_shortage(tmp_path: Path) -> None:
    sessions = [
        {
            "session_id": f"p{i}",
            "evse_uid": f"ES*BCN*E000{i}",
            "connector_id": "1",
            "energy_needed_kwh": 30,
            "departure": "2026-06-01T11:00:00+02:00",
            "vehicle_phases": 1,
        }
        for i in range(1, 6)
    ]
    r = run(tmp_path, sessions=sessions, site=CARPARK)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    oracle(res, CARPARK)
    assert all(s["unmet_kwh"] > 0 for s in res["sessions"].values())


def test_single_command_app_runs_without_the_name(tmp_path: Path) -> None:
    active = tmp_path / "active.json"
    active.write_text(json.dumps(ACTIVE), encoding="utf-8")
    r = CliRunner().invoke(app, ["--site", str(OFFICE), "--sessions", str(active), "--now", NOW])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "optimal"


def bad(**changes: Any) -> list[dict[str, Any]]:
    first = dict(ACTIVE[0])
    first.update(changes)
    return [first, *ACTIVE[1:]]


@pytest.mark.parametrize(
    ("sessions", "extra", "match"),
    [
        (
            [*bad(evse_uid="FR*INE*E0002"), dict(ACTIVE[0], session_id="x", evse_uid="FR*INE*E0002")],
            (),
            "two sessions on one connector",
        ),
        (bad(energy_needed_kwh=-1), (), "negative 'energy_needed_kwh'"),
        (bad(evse_uid="NOPE"), (), "unknown connector"),
        (bad(departure="tomorrow"), (), "not an ISO 8601"),
        (bad(departure="2026-06-01T17:30:00"), (), "no UTC offset"),
        (bad(vehicle_phases=2), (), "'vehicle_phases' must be 1 or 3"),
        (bad(energy_needed_kwh="lots"), (), "must be a number"),
        ([{"session_id": "a"}], (), "missing or empty 'evse_uid'"),
        ({"not": "a list"}, (), "must be a JSON list"),
        (None, ("--now", "2026-06-01 nonsense"), "--now"),
        (None, ("--objective", "green"), "--objective"),
        (None, ("--min-current", "maybe"), "--min-current"),
        (None, ("--step-min", "0"), "--step-min"),
        (None, ("--series", "/nonexistent/series.csv"), "--series: file"),
        ([*ACTIVE, dict(ACTIVE[0])], (), "listed twice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, sessions: Any, extra: tuple[str, ...], match: str
) -> None:
    r = run(tmp_path, *extra, sessions=sessions)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert match in lines[0]
    assert lines[0].startswith("ems optimize: error:")


def test_missing_files_and_bad_site(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main_app(), ["optimize", "--site", str(tmp_path / "no.json"), "--sessions", "x", "--now", NOW]
    )
    assert r.exit_code == 2 and "--site: file" in r.stderr
    broken = tmp_path / "site.json"
    site = json.loads(OFFICE.read_text(encoding="utf-8"))
    site["charge_points"][0]["connectors"][0]["phases"] = ["L1", "L1", "L2"]
    broken.write_text(json.dumps(site), encoding="utf-8")
    r = run(tmp_path, site=broken)
    assert r.exit_code == 2 and "repeated" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = CliRunner().invoke(main_app(), ["optimize", "--site", str(OFFICE), "--now", NOW])
    assert r.exit_code == 2 and "missing --sessions" in r.stderr
    bad_json = tmp_path / "active.json"
    bad_json.write_text("[{", encoding="utf-8")
    r = CliRunner().invoke(
        main_app(), ["optimize", "--site", str(OFFICE), "--sessions", str(bad_json), "--now", NOW]
    )
    assert r.exit_code == 2 and "not valid JSON" in r.stderr


def test_infeasible_site_still_writes_a_flagged_plan(tmp_path: Path) -> None:
    series = tmp_path / "series.csv"
    # 60 kW of base load: far over the 63 A main and the 43 kW grid connection
    series.write_text("timestamp,base_load_kw\n2026-06-01T08:00:00+02:00,60\n", encoding="utf-8")
    r = run(tmp_path, "--series", str(series))
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["status"] == "fallback" and res["message"]
