"""The delivery KPIs on hand-built numbers: who got nothing, how evenly, how often limits moved."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ems.replay.cars import count_setpoint_change
from ems.replay.kpis import compute_kpis, jain_index
from tests.ems.replay.helpers import office_site


def _kpis(
    requested: list[float], delivered: list[float], changes: int = 0, hours: float = 0.0
) -> dict[str, Any]:
    zeros = np.zeros(4)
    return compute_kpis(
        site=office_site(),
        step_s=900,
        pv_kw=zeros,
        base_load_kw=zeros,
        price_eur_per_kwh=None,
        ev_kw=zeros,
        connector_power_kw={},
        energy_requested_kwh=requested,
        energy_delivered_kwh=delivered,
        plan_ms=[],
        wall_s=0.0,
        setpoint_changes=changes,
        session_hours=hours,
    )


def test_a_session_that_asked_and_got_nothing_is_counted() -> None:
    kpis = _kpis([10.0, 10.0, 0.01, 8.0], [0.0, 0.04, 0.0, 8.0])
    assert kpis["sessions_zero_energy"] == 2  # the third asked for less than 0.05 kWh


def test_jain_is_one_for_equal_shares_and_one_over_n_for_one_winner() -> None:
    assert jain_index([10.0, 20.0, 40.0], [5.0, 10.0, 20.0]) == pytest.approx(1.0)
    assert jain_index([10.0, 10.0, 10.0, 10.0], [10.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert jain_index([10.0, 10.0], [0.0, 0.0]) is None
    # a car that got more than it asked (it cannot in a replay) counts as served, not as better
    assert jain_index([10.0, 10.0], [12.0, 10.0]) == pytest.approx(1.0)


def test_setpoint_changes_per_session_hour() -> None:
    last: dict[int, float] = {}
    limits = [11.0, 11.0, 0.0, 11.0, 11.0005, 4.1]
    changes = sum(count_setpoint_change(last, 0, kw) for kw in limits)
    assert changes == 3  # 11 → 0 → 11 → 4.1; half a watt is no change
    assert _kpis([1.0], [1.0], changes=changes, hours=1.5)["setpoint_changes_per_session_hour"] == 2.0
    assert _kpis([1.0], [1.0])["setpoint_changes_per_session_hour"] is None
