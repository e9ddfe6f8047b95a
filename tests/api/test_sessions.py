"""The Sessions receiver over real HTTP: a session's life, the last_updated rule, bad input."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select

from ems.core.events import DomainEvent, SessionChange, SessionEvent
from ems.store.models import ChargingPeriod, ChargingSession
from tests.conftest import RunningEms
from tests.support.ocpi_objects import charging_period, session

URL = "/ocpi/2.2.1/sessions/NL/CPO/s1"


def test_session_life_from_put_to_completed(ems: RunningEms, cpo_client: httpx.Client) -> None:
    events: list[DomainEvent] = []
    ems.ctx.bus.subscribe(events.append)

    reply = cpo_client.put(URL, json=session())
    assert reply.status_code == 201, reply.text
    assert reply.json()["status_code"] == 1000
    assert "data" not in reply.json()

    for i, minute in enumerate(("15", "30")):
        patch = {
            "kwh": 1.5 * (i + 1),
            "charging_periods": [charging_period(f"2026-06-01T08:{minute}:00Z", 1.5, 16.0)],
            "last_updated": f"2026-06-01T08:{minute}:00Z",
        }
        reply = cpo_client.patch(URL, json=patch)
        assert reply.status_code == 200 and reply.json()["status_code"] == 1000, reply.text

    reply = cpo_client.patch(
        URL,
        json={
            "status": "COMPLETED",
            "end_date_time": "2026-06-01T17:40:00Z",
            "last_updated": "2026-06-01T17:40:00Z",
        },
    )
    assert reply.json()["status_code"] == 1000

    stored = cpo_client.get(URL).json()["data"]
    assert stored["status"] == "COMPLETED"
    assert stored["kwh"] == 3.0
    assert [p["start_date_time"] for p in stored["charging_periods"]] == [
        "2026-06-01T08:15:00Z",
        "2026-06-01T08:30:00Z",
    ]
    assert stored["end_date_time"] == "2026-06-01T17:40:00Z"

    changes = [e.change for e in events if isinstance(e, SessionEvent)]
    assert changes == [
        SessionChange.STARTED,
        SessionChange.UPDATED,
        SessionChange.UPDATED,
        SessionChange.STOPPED,
    ]


def test_put_replaces_charging_periods_and_patch_appends(cpo_client: httpx.Client) -> None:
    body = session(charging_periods=[charging_period("2026-06-01T08:05:00Z", 1.0)])
    cpo_client.put(URL, json=body)
    cpo_client.patch(
        URL,
        json={
            "charging_periods": [charging_period("2026-06-01T08:20:00Z", 2.0)],
            "last_updated": "2026-06-01T08:20:00Z",
        },
    )
    assert len(cpo_client.get(URL).json()["data"]["charging_periods"]) == 2
    cpo_client.put(URL, json=session(last_updated="2026-06-01T09:00:00Z"))
    assert (
        "charging_periods" not in cpo_client.get(URL).json()["data"]
        or cpo_client.get(URL).json()["data"]["charging_periods"] == []
    )


def test_an_older_update_is_ignored(cpo_client: httpx.Client) -> None:
    cpo_client.put(URL, json=session(kwh=5.0, last_updated="2026-06-01T10:00:00Z"))
    reply = cpo_client.put(URL, json=session(kwh=1.0, last_updated="2026-06-01T09:00:00Z"))
    assert reply.json()["status_code"] == 1000
    reply = cpo_client.patch(URL, json={"kwh": 2.0, "last_updated": "2026-06-01T09:30:00Z"})
    assert reply.json()["status_code"] == 1000
    assert cpo_client.get(URL).json()["data"]["kwh"] == 5.0


def test_a_retried_patch_does_not_duplicate_periods(cpo_client: httpx.Client) -> None:
    cpo_client.put(URL, json=session())
    patch = {
        "charging_periods": [charging_period("2026-06-01T08:20:00Z", 2.0)],
        "last_updated": "2026-06-01T08:20:00Z",
    }
    cpo_client.patch(URL, json=patch)
    cpo_client.patch(URL, json=patch)
    assert len(cpo_client.get(URL).json()["data"]["charging_periods"]) == 1


def test_datetimes_are_accepted_leniently_and_emitted_with_z(cpo_client: httpx.Client) -> None:
    cpo_client.put(
        URL, json=session(start_date_time="2026-06-01T10:05:00+02:00", last_updated="2026-06-01T08:05:00")
    )
    data = cpo_client.get(URL).json()["data"]
    assert data["start_date_time"] == "2026-06-01T08:05:00Z"
    assert data["last_updated"] == "2026-06-01T08:05:00Z"
    assert len(cpo_client.get(URL).json()["timestamp"]) <= 25


def test_bad_inputs_are_refused_and_change_nothing(ems: RunningEms, cpo_client: httpx.Client) -> None:
    cpo_client.put(URL, json=session(kwh=1.0))
    cases = [
        ("PUT", session(kwh="lots"), "kwh"),
        ("PUT", {k: v for k, v in session().items() if k != "cdr_token"}, "cdr_token"),
        ("PUT", session(status="CHARGING"), "status"),
        ("PUT", session(session_id="x" * 37), "id"),
        ("PUT", session(session_id="other"), "id"),
        (
            "PUT",
            session(charging_periods=[{"start_date_time": "2026-06-01T08:00:00Z", "dimensions": []}]),
            "dimensions",
        ),
        ("PATCH", {"kwh": 3.0}, "last_updated"),
        ("PATCH", {"kwh": 3.0, "last_updated": "yesterday"}, "last_updated"),
    ]
    for method, body, field in cases:
        reply = cpo_client.request(method, URL, json=body)
        assert reply.status_code == 200, (field, reply.text)
        envelope = reply.json()
        assert envelope["status_code"] == 2001, (field, envelope)
        assert field in envelope["status_message"], (field, envelope)
    with ems.ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(ChargingSession)) == 1
        assert db.scalar(select(func.count()).select_from(ChargingPeriod)) == 0
    assert cpo_client.get(URL).json()["data"]["kwh"] == 1.0


def test_invalid_json_gets_http_400(cpo_client: httpx.Client) -> None:
    reply = cpo_client.put(URL, content=b'{"id": "s1",', headers={"Content-Type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["status_code"] == 2001


def test_patch_of_unknown_session_is_404(cpo_client: httpx.Client) -> None:
    reply = cpo_client.patch(
        "/ocpi/2.2.1/sessions/NL/CPO/nope", json={"kwh": 1.0, "last_updated": "2026-06-01T08:00:00Z"}
    )
    assert reply.status_code == 404
    assert reply.json()["status_code"] == 2001
    assert cpo_client.get("/ocpi/2.2.1/sessions/NL/CPO/nope").status_code == 404


def test_a_cpo_cannot_push_for_another_party(cpo_client: httpx.Client) -> None:
    reply = cpo_client.put("/ocpi/2.2.1/sessions/DE/XYZ/s1", json=session(country_code="DE", party_id="XYZ"))
    assert reply.json()["status_code"] == 2001


def test_body_over_one_megabyte_is_refused(cpo_client: httpx.Client) -> None:
    body = session(meter_id="m", padding="x" * 1_100_000)
    reply = cpo_client.put(URL, json=body)
    assert reply.status_code == 413
    assert reply.json()["status_code"] == 2000
    assert cpo_client.get(URL).status_code == 404


def test_both_route_forms_are_accepted(cpo_client: httpx.Client) -> None:
    assert cpo_client.put(URL + "/", json=session()).json()["status_code"] == 1000
    assert cpo_client.get("/ocpi/2.2.1/sessions//NL/CPO/s1/").json()["data"]["id"] == "s1"


def test_charging_preferences_extension(ems: RunningEms, cpo_client: httpx.Client) -> None:
    events: list[DomainEvent] = []
    cpo_client.put(URL, json=session())
    ems.ctx.bus.subscribe(events.append)
    reply = cpo_client.put(
        URL + "/charging_preferences",
        json={"profile_type": "GREEN", "departure_time": "2099-06-01T17:30:00Z", "energy_need": 20},
    )
    assert reply.json() | {"timestamp": ""} == {"data": "ACCEPTED", "status_code": 1000, "timestamp": ""}
    assert len(events) == 1
    reply = cpo_client.put(URL + "/charging_preferences", json={"profile_type": "GREEN", "energy_need": -1})
    assert reply.json()["status_code"] == 2001
    reply = cpo_client.put(
        URL + "/charging_preferences",
        json={"profile_type": "GREEN", "departure_time": "2001-01-01T00:00:00Z"},
    )
    assert reply.json()["data"] == "NOT_POSSIBLE"


def test_a_session_put_again_with_periods_replaces_them(cpo_client: httpx.Client) -> None:
    """What a pull does: the whole session again, periods included, over a stored one."""
    first = session(charging_periods=[charging_period("2026-06-01T08:05:00Z", 1.0)])
    assert cpo_client.put(URL, json=first).json()["status_code"] == 1000
    again = session(
        kwh=3.0,
        last_updated="2026-06-01T09:00:00Z",
        charging_periods=[
            charging_period("2026-06-01T08:05:00Z", 1.0),
            charging_period("2026-06-01T08:35:00Z", 2.0),
        ],
    )
    assert cpo_client.put(URL, json=again).json()["status_code"] == 1000
    stored = cpo_client.get(URL).json()["data"]
    assert [p["start_date_time"] for p in stored["charging_periods"]] == [
        "2026-06-01T08:05:00Z",
        "2026-06-01T08:35:00Z",
    ]
