"""When the replay re-plans: at every arrival and departure, and when the last plan is
`replan_s` old (a schedule that tops up after an event, not one on the clock's hours)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ems.replay.engine import ReplayConfig, replay
from ems.replay.log import LoggedSession
from ems.series import read_series
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
