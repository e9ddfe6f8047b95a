"""The rule-based peers in the replay: what the planner offers a rule, and what it draws."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ems.replay.engine import ReplayConfig, replay
from ems.replay.log import LoggedSession
from ems.sites.series import read_series
from grid_models.site import Site
from tests.ems.replay.helpers import EXAMPLE_SERIES, office_site

PARIS = ZoneInfo("Europe/Paris")


def _car(
    site: Site, i: int, connector_index: int, hours: tuple[int, int], asks_kwh: float, takes_kwh: float
) -> LoggedSession:
    connector = site.connectors()[connector_index]
    return LoggedSession(
        session_id=f"s{i}",
        evse_uid=connector.evse_uid,
        connector_id=connector.connector_id,
        token_uid=f"TOK{i}",
        arrival=datetime(2026, 6, 3, hours[0], 0, tzinfo=PARIS),
        departure=datetime(2026, 6, 3, hours[1], 0, tzinfo=PARIS),
        energy_kwh=takes_kwh,
        max_power_kw=22.0,
        vehicle_phases=3,
        declared_departure=datetime(2026, 6, 3, hours[1], 0, tzinfo=PARIS),
        declared_energy_kwh=asks_kwh,
    )


@pytest.mark.parametrize("strategy", ["fcfs", "edf"])
def test_a_rule_keeps_no_power_for_cars_found_full(strategy: str) -> None:
    """Three 22 kW cars at 08:00 ask 40 kWh each but are full after 2 kWh; three more come at
    09:00 for 10 kWh each by 12:00. A rule serves all it is offered, and keeps what it plans for
    one car from the others: the first three, found full, must be offered nothing more, or the
    43 kVA connection stays planned for cars that draw nothing and the later ones get nothing.
    (Measured without it: fcfs gave the third early car and all three later ones 0 kWh; edf,
    which serves the later ones first by their deadline, was unharmed here.)"""
    site = office_site()
    early = [_car(site, i, i, (8, 17), 40.0, 2.0) for i in range(3)]
    late = [_car(site, 3 + i, 3 + i, (9, 12), 10.0, 10.0) for i in range(3)]
    result = replay(site, [*early, *late], read_series(EXAMPLE_SERIES), ReplayConfig(strategy=strategy))
    delivered = dict(zip((s.session_id for s in result.sessions), result.delivered_kwh(), strict=True))
    assert [delivered[s.session_id] for s in early] == pytest.approx([2.0] * 3)
    assert [delivered[s.session_id] for s in late] == pytest.approx([10.0] * 3)
