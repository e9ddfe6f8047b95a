"""`EMS_PLAN_STRATEGY`: the planner's strategy by name, the same list the replay uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ems.cli.main import app
from ems.planning.strategies import BASELINES, PLAN_STRATEGIES, no_smart_charging, plan_solver
from ems.replay.engine import STRATEGIES
from grid_models import load_site
from optimizer.problem import Problem, Session
from optimizer.strategies import uncontrolled

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)


def test_the_server_and_the_replay_name_the_same_strategies() -> None:
    # the replay adds only its perfect-foresight runs, the bound and the bound trusting declarations
    assert STRATEGIES[:-2] == PLAN_STRATEGIES
    assert plan_solver("optimized") is None
    assert plan_solver("equal_share") is BASELINES["equal_share"]
    with pytest.raises(ValueError, match="expected one of optimized, uncontrolled"):
        plan_solver("perfect_foresight")
    with pytest.raises(ValueError, match="expected one of optimized, uncontrolled"):
        plan_solver("declared_foresight")


def test_uncontrolled_offers_full_power_for_as_long_as_the_car_stays() -> None:
    """A charger without smart charging knows no need: the car's limit stays at its maximum
    until it leaves, where the bare baseline stops once the estimated need is planned."""
    site = load_site(REPO / "examples/sites/office-pv.json")
    problem = Problem(
        site=site,
        now=NOW,
        sessions=(
            Session("s1", "cp1-1", 2.0, NOW + timedelta(hours=4), vehicle_phases=3, max_power_kw=11.0),
        ),
        step_s=900,
        pv_kw=(0.0,) * 16,
        base_load_kw=(0.0,) * 16,
    )
    offered = no_smart_charging(problem).sessions["s1"].power_kw
    assert all(p == pytest.approx(11.0) for p in offered)
    bare = uncontrolled(problem).sessions["s1"].power_kw
    assert sum(bare) * 0.25 == pytest.approx(2.0) and bare[-1] == 0.0


def test_serve_refuses_an_unknown_strategy_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EMS_PLAN_STRATEGY", "clever")
    monkeypatch.setenv("EMS_DATABASE_URL", f"sqlite:///{tmp_path / 'ems.db'}")
    from ems.core.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--port", "8999"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "EMS_PLAN_STRATEGY" in result.output and "'clever'" in result.output
