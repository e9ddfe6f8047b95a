"""JSON types are part of the OCPI contract: a string where the spec says number (or a number or a
string where it says boolean) is a 2001 naming the field; nothing is stored, nothing announced to
the planner. An integral number where the spec says int is that int (JSON has one number type)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ems.core.events import DomainEvent
from ems.store.models import ChargingPeriod, ChargingSession, Location
from tests.conftest import RunningEms
from tests.support.ocpi_objects import charging_period, connector, evse, location, session

SESSION_URL = "/ocpi/2.2.1/sessions/NL/CPO/s1"
LOCATION_URL = "/ocpi/2.2.1/locations/NL/CPO/LOC1"


def _refused(reply: httpx.Response, field: str) -> None:
    assert reply.status_code == 200, reply.text
    envelope = reply.json()
    assert envelope["status_code"] == 2001, envelope
    assert field in envelope["status_message"], envelope
    assert "data" not in envelope


def _counts(ems: RunningEms) -> tuple[int, int, int]:
    with ems.ctx.db() as db:
        return (
            db.scalar(select(func.count()).select_from(ChargingSession)) or 0,
            db.scalar(select(func.count()).select_from(ChargingPeriod)) or 0,
            db.scalar(select(func.count()).select_from(Location)) or 0,
        )


WRONG_SESSIONS: list[tuple[str, dict[str, Any]]] = [
    ("kwh", session(kwh="904")),
    ("kwh", session(kwh=True)),
    ("kwh", session(kwh=None)),
    (
        "volume",
        session(
            charging_periods=[
                {
                    "start_date_time": "2026-06-01T08:05:00Z",
                    "dimensions": [{"type": "ENERGY", "volume": "1.5"}],
                }
            ]
        ),
    ),
    ("id", session(id=17)),
    ("start_date_time", session(start_date_time=1780300000)),
    ("total_cost", session(total_cost={"excl_vat": "1.20"})),
]


@pytest.mark.parametrize(
    ("field", "body"), WRONG_SESSIONS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(WRONG_SESSIONS)]
)
def test_a_new_session_of_the_wrong_types_is_not_stored(
    ems: RunningEms, cpo_client: httpx.Client, field: str, body: dict[str, Any]
) -> None:
    events: list[DomainEvent] = []
    ems.ctx.bus.subscribe(events.append)
    _refused(cpo_client.put(SESSION_URL, json=body), field)
    assert _counts(ems) == (0, 0, 0)
    assert cpo_client.get(SESSION_URL).status_code == 404
    assert events == []


@pytest.mark.parametrize(
    ("field", "patch"),
    [
        ("kwh", {"kwh": "904"}),
        ("kwh", {"kwh": False}),
        (
            "volume",
            {
                "charging_periods": [
                    {
                        "start_date_time": "2026-06-01T09:00:00Z",
                        "dimensions": [{"type": "ENERGY", "volume": "2"}],
                    }
                ]
            },
        ),
        ("last_updated", {"last_updated": 1780300000}),
    ],
)
def test_a_patch_of_the_wrong_types_changes_nothing(
    ems: RunningEms, cpo_client: httpx.Client, field: str, patch: dict[str, Any]
) -> None:
    body = session(kwh=1.0, charging_periods=[charging_period("2026-06-01T08:05:00Z", 1.0)])
    assert cpo_client.put(SESSION_URL, json=body).json()["status_code"] == 1000
    before = cpo_client.get(SESSION_URL).json()["data"]
    events: list[DomainEvent] = []
    ems.ctx.bus.subscribe(events.append)
    _refused(cpo_client.patch(SESSION_URL, json={"last_updated": "2026-06-01T09:00:00Z", **patch}), field)
    assert cpo_client.get(SESSION_URL).json()["data"] == before
    assert _counts(ems) == (1, 1, 0)
    assert events == []


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("publish", location(publish="true")),
        ("publish", location(publish=1)),
        ("max_voltage", location(evses=[evse(connectors=[connector(max_voltage="230")])])),
        ("max_amperage", location(evses=[evse(connectors=[connector(amps=16.5)])])),
        ("latitude", location(coordinates={"latitude": 45.64, "longitude": "5.870000"})),
    ],
)
def test_a_location_of_the_wrong_types_is_not_stored(
    ems: RunningEms, cpo_client: httpx.Client, field: str, body: dict[str, Any]
) -> None:
    _refused(cpo_client.put(LOCATION_URL, json=body), field)
    assert _counts(ems) == (0, 0, 0)


def test_the_wrong_type_in_charging_preferences_is_refused(cpo_client: httpx.Client) -> None:
    assert cpo_client.put(SESSION_URL, json=session()).json()["status_code"] == 1000
    reply = cpo_client.put(
        SESSION_URL + "/charging_preferences",
        json={"profile_type": "GREEN", "departure_time": "2099-06-01T17:30:00Z", "energy_need": "20"},
    )
    _refused(reply, "energy_need")


def test_json_numbers_are_taken_as_the_spec_types(cpo_client: httpx.Client) -> None:
    """An int where a number is due, an integral float where an int is due: the same JSON number."""
    body = location(evses=[evse(connectors=[connector(max_voltage=230.0, amps=32)])])
    assert cpo_client.put(LOCATION_URL, json=body).json()["status_code"] == 1000
    stored = cpo_client.get(LOCATION_URL).json()["data"]["evses"][0]["connectors"][0]
    assert stored["max_voltage"] == 230 and isinstance(stored["max_voltage"], int)
    assert cpo_client.put(SESSION_URL, json=session(kwh=5)).json()["status_code"] == 1000
    assert cpo_client.get(SESSION_URL).json()["data"]["kwh"] == 5.0
