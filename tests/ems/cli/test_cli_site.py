"""`ems site check`: a bad site is refused with every problem on its own line; a plan is checked
against every protection and phase, with a pandapower cross-check of its worst step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ems.cli.site import app

SITES_DIR = Path(__file__).resolve().parents[3] / "examples" / "sites"
OFFICE = SITES_DIR / "office-pv.json"

runner = CliRunner()


def _plan(tmp_path: Path, sessions: dict[str, Any], **extra: Any) -> Path:
    n_steps = max(len(s["power_kw"]) for s in sessions.values())
    data = {
        "status": "optimal",
        "objective": "self_consumption",
        "step_s": 900,
        "steps": [f"2026-06-01T08:{15 * k:02d}:00+00:00" for k in range(n_steps)],
        "sessions": sessions,
        **extra,
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(data))
    return path


def test_valid_site_without_plan() -> None:
    result = runner.invoke(app, ["check", str(SITES_DIR / "depot.json")])
    assert result.exit_code == 0, result.output
    assert "site depot: 17 protections, 104 connectors" in result.output
    assert "every connector at full power: max loading ratio 2.84" in result.output


def test_bad_site_lists_every_problem(tmp_path: Path) -> None:
    data = json.loads(OFFICE.read_text())
    data["protections"][3]["parent"] = "ghost"
    data["protections"][2]["rated_current_a"] = -1
    data["charge_points"][0]["connectors"][0]["phases"] = ["L1", "L5", "L3"]
    data["charge_points"][5]["id"] = "cp4"
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, result.output
    for element in ("'zedbox2'", "'zedbox1'", "'cp1-1'", "'cp4'"):
        assert any(element in line for line in errors), element


def test_missing_site_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot read site file")


def test_plan_within_limits(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        {
            "s1": {
                "power_kw": [7.36, 3.0],
                "evse_uid": "FR*INE*E0002",
                "connector_id": "1",
                "vehicle_phases": 1,
            },
            "s2": {"power_kw": [11.0, 11.0], "evse_uid": "FR*INE*E0004", "connector_id": "1"},
        },
    )
    result = runner.invoke(app, ["check", str(OFFICE), "--plan", str(plan)])
    assert result.exit_code == 0, result.output
    assert "violation" not in result.output.replace("no violation", "")
    assert "power flow (pandapower runpp_3ph) at step 0" in result.output
    # s1: single-phase car on cp2-1 (wired L2-L3-L1) puts 32 A on ibst L2
    ibst_l2 = next(line for line in result.output.splitlines() if line.split()[:2] == ["ibst", "L2"])
    check_a, powerflow_a = float(ibst_l2.split()[2]), float(ibst_l2.split()[3])
    assert check_a == pytest.approx(32.0 + 11000 / 690, abs=0.01)
    assert powerflow_a == pytest.approx(check_a, rel=0.02)
    assert "ok: no violation" in result.output


def test_violating_plan_fails_and_pv_relieves_it(tmp_path: Path) -> None:
    """Three 22 kW sessions and 10 kW of base load: 110 kW of current through a 63 A main
    breaker and 76 kW against a 43 kW connection. 35 kW of PV under main brings main and the
    grid connection back within limits, but not the board below main that feeds the cars."""
    sessions = {
        f"s{i}": {"power_kw": [22.08], "connector": cid} for i, cid in enumerate(["cp1-1", "cp2-1", "cp3-1"])
    }
    plan = _plan(tmp_path, sessions, base_load_kw=[10.0])
    result = runner.invoke(app, ["check", str(OFFICE), "--plan", str(plan)])
    assert result.exit_code == 1
    assert (
        "violation: step 0 (2026-06-01T08:00:00+00:00) protection main L1: 110.5 A, rated 63 A"
        in result.output
    )
    assert (
        "violation: step 0 (2026-06-01T08:00:00+00:00) protection ibst L1: 96.0 A, rated 63 A"
        in result.output
    )
    assert "grid import 76.24 kW > 43 kW" in result.output
    assert "FAILED" in result.output

    with_pv = runner.invoke(app, ["check", str(OFFICE), "--plan", str(plan), "--pv-kw", "35"])
    assert with_pv.exit_code == 1
    assert "protection main" not in with_pv.output  # PV under main relieves it ...
    assert "> 43 kW" not in with_pv.output and "max grid import: 41.24 kW" in with_pv.output
    assert "protection ibst L1: 96.0 A" in with_pv.output  # ... not the board below it


def test_plan_pv_series_is_used(tmp_path: Path) -> None:
    sessions = {"s0": {"power_kw": [22.08, 22.08], "connector": "cp1-1"}}
    plan = _plan(tmp_path, sessions, pv_kw=[0.0, 35.0], base_load_kw=[25.0, 25.0])
    result = runner.invoke(app, ["check", str(OFFICE), "--plan", str(plan)])
    assert result.exit_code == 1
    assert "step 0 (2026-06-01T08:00:00+00:00) grid import 47.08 kW > 43 kW" in result.output
    assert "step 1 (" not in result.output


@pytest.mark.parametrize(
    ("session", "message"),
    [
        ({"power_kw": [1.0], "connector": "nope"}, "unknown connector 'nope'"),
        ({"power_kw": [1.0], "evse_uid": "X", "connector_id": "1"}, "unknown connector evse_uid 'X'"),
        ({"power_kw": [1.0]}, "no connector"),
        ({"power_kw": ["a"], "connector": "cp1-1"}, "power_kw must be a list of numbers"),
        ({"power_kw": [1.0], "connector": "cp1-1", "vehicle_phases": 2}, "vehicle_phases must be 1 or 3"),
    ],
)
def test_bad_plan_is_refused(tmp_path: Path, session: dict[str, Any], message: str) -> None:
    plan = tmp_path / "result.json"
    plan.write_text(json.dumps({"steps": ["t0"], "sessions": {"s1": session}}))
    result = runner.invoke(app, ["check", str(OFFICE), "--plan", str(plan)])
    assert result.exit_code == 1
    assert f"error: plan {plan}: session 's1': {message}" in result.output


def test_two_sessions_on_one_connector_are_refused(tmp_path: Path) -> None:
    plan = _plan(
        tmp_path,
        {"a": {"power_kw": [1.0], "connector": "cp1-1"}, "b": {"power_kw": [1.0], "connector": "cp1-1"}},
    )
    result = runner.invoke(app, ["check", str(OFFICE), "--plan", str(plan)])
    assert result.exit_code == 1
    assert "connector 'cp1-1' already used by session 'a'" in result.output
