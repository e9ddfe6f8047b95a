"""`declared_foresight`: perfect foresight trusting the drivers' declarations, the yardstick of
what their errors cost a planner that believes them (issue #16's allowance)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ems.replay import ReplayConfig, replay
from ems.replay.log import LoggedSession
from ems.sites.series import Series
from tests.ems.replay.helpers import office_site

PARIS = ZoneInfo("Europe/Paris")
ARRIVAL = datetime(2026, 6, 1, 8, 0, tzinfo=PARIS)


def _dark_day() -> Series:
    """No PV, a flat base load: when a car is charged is only the planner's choice."""
    stamps = tuple(ARRIVAL.replace(hour=0) + timedelta(minutes=15 * k) for k in range(2 * 96))
    return Series(timestamps=stamps, pv_kw=(0.0,) * len(stamps), base_load_kw=(5.0,) * len(stamps))


def _car(**declared: object) -> LoggedSession:
    connector = office_site().connectors()[0]
    car = LoggedSession(
        session_id="s1",
        evse_uid=connector.evse_uid,
        connector_id=connector.connector_id,
        token_uid="TOK1",
        arrival=ARRIVAL,
        departure=ARRIVAL + timedelta(hours=4),
        energy_kwh=12.0,
        max_power_kw=3.7,
        vehicle_phases=1,
    )
    return replace(car, **declared)  # type: ignore[arg-type]


def _delivered(car: LoggedSession, strategy: str) -> float:
    result = replay(office_site(), [car], _dark_day(), ReplayConfig(strategy=strategy))
    return result.delivered_kwh()[0]


def test_a_car_that_leaves_before_it_declared_loses_what_a_trusting_plan_put_after() -> None:
    """12 kWh at 3.7 kW (16 A on one phase) take 3.2 of its 4 h. Declared to stay 8 h, the
    trusting plan spreads the charge over the 8 h it was told of (the same cost at any hour, and
    a lower peak), and the car takes only what came in its 4 real hours (6.5 kWh); perfect
    foresight delivers all of it."""
    late = _car(declared_departure=ARRIVAL + timedelta(hours=8))
    assert _delivered(late, "perfect_foresight") == pytest.approx(12.0)
    trusted = _delivered(late, "declared_foresight")
    assert 0.0 < trusted < 12.0 - 1.0


def test_a_car_that_declared_too_little_gets_only_what_it_declared() -> None:
    short = _car(declared_energy_kwh=5.0)
    assert _delivered(short, "perfect_foresight") == pytest.approx(12.0)
    assert _delivered(short, "declared_foresight") == pytest.approx(5.0)


def test_true_or_missing_declarations_change_nothing() -> None:
    """Where the declarations are the truth, or missing (the truth stands in), the trusting run
    is perfect foresight."""
    truthful = _car(declared_departure=ARRIVAL + timedelta(hours=4), declared_energy_kwh=12.0)
    for car in (truthful, _car()):
        assert _delivered(car, "declared_foresight") == pytest.approx(_delivered(car, "perfect_foresight"))
        assert _delivered(car, "declared_foresight") == pytest.approx(12.0)


def test_a_declared_departure_before_arrival_is_planned_as_leaving_at_once() -> None:
    """A declaration that makes no sense is trusted as far as it can be: nothing is planned."""
    early = _car(declared_departure=ARRIVAL - timedelta(hours=1))
    assert _delivered(early, "declared_foresight") == pytest.approx(0.0)
