"""The Locations receiver at location, EVSE and connector depth."""

from __future__ import annotations

import httpx

from ems.core.events import DomainEvent, LocationChanged
from tests.conftest import RunningEms
from tests.support.ocpi_objects import connector, evse, location

BASE = "/ocpi/2.2.1/locations/NL/CPO/LOC1"


def test_put_and_get_at_every_depth(cpo_client: httpx.Client) -> None:
    assert cpo_client.put(BASE, json=location()).status_code == 201
    assert cpo_client.get(BASE).json()["data"] == location()
    assert cpo_client.get(f"{BASE}/FR*INE*E0001").json()["data"] == evse()
    assert cpo_client.get(f"{BASE}/FR*INE*E0001/1").json()["data"] == connector()

    second = evse("FR*INE*E0002", last_updated="2026-06-01T09:00:00Z")
    assert cpo_client.put(f"{BASE}/FR*INE*E0002", json=second).status_code == 201
    third_connector = connector("2", "AC_1_PHASE", 16, last_updated="2026-06-01T10:00:00Z")
    assert cpo_client.put(f"{BASE}/FR*INE*E0002/2", json=third_connector).status_code == 201

    stored = cpo_client.get(BASE).json()["data"]
    assert [e["uid"] for e in stored["evses"]] == ["FR*INE*E0001", "FR*INE*E0002"]
    assert [c["id"] for c in stored["evses"][1]["connectors"]] == ["1", "2"]
    # A connector's last_updated is copied up to its EVSE and Location.
    assert stored["evses"][1]["last_updated"] == "2026-06-01T10:00:00Z"
    assert stored["last_updated"] == "2026-06-01T10:00:00Z"


def test_patch_at_every_depth_and_propagation(cpo_client: httpx.Client) -> None:
    cpo_client.put(BASE, json=location())
    reply = cpo_client.patch(
        f"{BASE}/FR*INE*E0001/1", json={"max_amperage": 16, "last_updated": "2026-06-01T11:00:00Z"}
    )
    assert reply.json()["status_code"] == 1000
    reply = cpo_client.patch(
        f"{BASE}/FR*INE*E0001", json={"status": "CHARGING", "last_updated": "2026-06-01T11:05:00Z"}
    )
    assert reply.json()["status_code"] == 1000
    reply = cpo_client.patch(BASE, json={"name": "Car park", "last_updated": "2026-06-01T11:10:00Z"})
    assert reply.json()["status_code"] == 1000
    stored = cpo_client.get(BASE).json()["data"]
    assert stored["name"] == "Car park"
    assert stored["evses"][0]["status"] == "CHARGING"
    assert stored["evses"][0]["connectors"][0]["max_amperage"] == 16
    assert stored["evses"][0]["last_updated"] == "2026-06-01T11:05:00Z"
    assert stored["last_updated"] == "2026-06-01T11:10:00Z"


def test_location_patch_with_evses_replaces_those_evses_only(cpo_client: httpx.Client) -> None:
    cpo_client.put(BASE, json=location(evses=[evse("E1"), evse("E2")]))
    changed = evse("E2", status="OUTOFORDER", last_updated="2026-06-01T12:00:00Z")
    reply = cpo_client.patch(BASE, json={"evses": [changed], "last_updated": "2026-06-01T12:00:00Z"})
    assert reply.json()["status_code"] == 1000
    stored = cpo_client.get(BASE).json()["data"]
    assert [(e["uid"], e["status"]) for e in stored["evses"]] == [("E1", "AVAILABLE"), ("E2", "OUTOFORDER")]


def test_older_updates_are_ignored_at_every_depth(cpo_client: httpx.Client) -> None:
    cpo_client.put(BASE, json=location(last_updated="2026-06-01T12:00:00Z"))
    old = "2026-06-01T06:00:00Z"
    assert (
        "ignored"
        in cpo_client.put(BASE, json=location(name="old", last_updated=old)).json()["status_message"]
    )
    assert (
        "ignored"
        in cpo_client.patch(f"{BASE}/FR*INE*E0001", json={"status": "BLOCKED", "last_updated": old}).json()[
            "status_message"
        ]
    )
    stored = cpo_client.get(BASE).json()["data"]
    assert "name" not in stored and stored["evses"][0]["status"] == "AVAILABLE"


def test_unknown_objects_and_bad_input(cpo_client: httpx.Client) -> None:
    reply = cpo_client.put(f"{BASE}/E9", json=evse("E9"))
    assert reply.status_code == 404 and reply.json()["status_code"] == 2003
    cpo_client.put(BASE, json=location())
    assert cpo_client.get(f"{BASE}/nope").status_code == 404
    assert cpo_client.get(f"{BASE}/FR*INE*E0001/9").status_code == 404
    # A PATCH may not leave an invalid object behind: the merged EVSE is re-validated whole.
    reply = cpo_client.patch(
        f"{BASE}/FR*INE*E0001", json={"connectors": [], "last_updated": "2026-06-01T13:00:00Z"}
    )
    assert reply.json()["status_code"] == 2001 and "connectors" in reply.json()["status_message"]
    reply = cpo_client.put(BASE, json=location(time_zone=None) | {"coordinates": {"latitude": "north"}})
    assert reply.json()["status_code"] == 2001
    reply = cpo_client.put(f"{BASE}/FR*INE*E0001", json=evse("OTHER"))
    assert reply.json()["status_code"] == 2001 and "uid" in reply.json()["status_message"]
    assert cpo_client.get(BASE).json()["data"] == location()


def test_location_events_fire_once_each(ems: RunningEms, cpo_client: httpx.Client) -> None:
    events: list[DomainEvent] = []
    ems.ctx.bus.subscribe(events.append)
    cpo_client.put(BASE, json=location())
    cpo_client.patch(
        f"{BASE}/FR*INE*E0001", json={"status": "CHARGING", "last_updated": "2026-06-01T11:05:00Z"}
    )
    cpo_client.put(f"{BASE}/FR*INE*E0001/1", json=connector(last_updated="2026-06-01T11:06:00Z"))
    cpo_client.patch(
        f"{BASE}/FR*INE*E0001", json={"status": "nonsense", "last_updated": "2026-06-01T11:07:00Z"}
    )
    changes = [(e.location_id, e.evse_uid, e.connector_id) for e in events if isinstance(e, LocationChanged)]
    assert changes == [("LOC1", None, None), ("LOC1", "FR*INE*E0001", None), ("LOC1", "FR*INE*E0001", "1")]
