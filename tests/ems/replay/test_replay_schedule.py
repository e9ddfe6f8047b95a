"""When the replay re-plans: at every arrival and departure, and when the last plan is
`replan_s` old (a schedule that tops up after an event, not one on the clock's hours)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ems.replay.engine import ReplayConfig, replay
from ems.replay.log import LoggedSession
from ems.sites.series import read_series
from tests.ems.replay.helpers import EXAMPLE_SERIES, office_site

PARIS = ZoneInfo("Europe/Paris")


def test_the_schedule_counts_from_the_last_plan() -> None:
    # one car, no declarations (its window ends hours after it leaves), 08:15 to 13:15:
    # arrival 08:15, then 09:15, 10:15, 11:15, 12:15 and the departure 13:15; a schedule on
    # the hours would re-plan at 09:00 ... 13:00 and again at the departure, seven plans
    site = office_site()
    connector = site.connectors()[0]
    car = LoggedSession(
        session_id="s1",
        evse_uid=connector.evse_uid,
        connector_id=connector.connector_id,
        token_uid="TOK1",
        arrival=datetime(2026, 6, 3, 8, 15, tzinfo=PARIS),
        departure=datetime(2026, 6, 3, 13, 15, tzinfo=PARIS),
        energy_kwh=5.0,
    )
    result = replay(site, [car], read_series(EXAMPLE_SERIES), ReplayConfig(replan_s=3600))
    assert len(result.plan_ms) == 6
    assert result.delivered_kwh()[0] == pytest.approx(5.0)


@pytest.mark.parametrize("strategy", ["optimized", "perfect_foresight"])
def test_the_result_keeps_only_the_steps_a_car_drew_in(strategy: str) -> None:
    """A car's power is kept for the steps it drew, not for every step of the replay (a dense
    sessions x steps array was 0.87 GB for a year of the office)."""
    site = office_site()
    connectors = site.connectors()
    cars = [
        LoggedSession(
            session_id=f"s{day}",
            evse_uid=connectors[day].evse_uid,
            connector_id=connectors[day].connector_id,
            token_uid=f"TOK{day}",
            arrival=datetime(2026, 6, 1 + day, 8, 0, tzinfo=PARIS),
            departure=datetime(2026, 6, 1 + day, 12, 0, tzinfo=PARIS),
            energy_kwh=6.0,
        )
        for day in range(3)
    ]
    result = replay(site, cars, read_series(EXAMPLE_SERIES), ReplayConfig(strategy=strategy))
    assert len(result.steps) == 3 * 96
    assert 0 < result.power_kw.nnz <= 3 * 16  # at most each car's four hours
    assert result.delivered_kwh() == pytest.approx([6.0, 6.0, 6.0])
    assert result.ev_kw.sum() * 0.25 == pytest.approx(18.0)
