"""Two registered CPOs share the EMS; neither can read or change what the other pushed, by URL
country_code/party_id, by the other's `response_url`, or by an ActiveChargingProfile push."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ems.ocpi import profiles
from ems.store.models import ActiveProfileReport, ChargingSession, ProfileRequest
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import location, session

A_SESSION = "/ocpi/2.2.1/sessions/NL/CPO/s1"
A_LOCATION = "/ocpi/2.2.1/locations/NL/CPO/LOC1"
ACTIVE_PROFILE = {
    "start_date_time": "2026-06-01T08:10:00Z",
    "charging_profile": {
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 6}],
    },
}


@pytest.fixture
def two_cpos(ems: RunningEms) -> tuple[httpx.Client, httpx.Client]:
    a = httpx.Client(base_url=ems.url, headers=auth(add_registered_partner(ems.ctx, "NL", "CPO")), timeout=10)
    b = httpx.Client(base_url=ems.url, headers=auth(add_registered_partner(ems.ctx, "DE", "XYZ")), timeout=10)
    assert a.put(A_LOCATION, json=location()).json()["status_code"] == 1000
    assert a.put(A_SESSION, json=session(kwh=2.0)).json()["status_code"] == 1000
    return a, b


def _refused(reply: httpx.Response) -> None:
    envelope: dict[str, Any] = reply.json()
    assert envelope["status_code"] == 2001, envelope
    assert "data" not in envelope, envelope


def test_the_other_cpo_cannot_read_or_change_sessions(
    ems: RunningEms, two_cpos: tuple[httpx.Client, httpx.Client]
) -> None:
    a, b = two_cpos
    before = a.get(A_SESSION).json()["data"]
    _refused(b.get(A_SESSION))
    _refused(b.put(A_SESSION, json=session(kwh=50.0, last_updated="2026-06-01T09:00:00Z")))
    _refused(b.patch(A_SESSION, json={"kwh": 50.0, "last_updated": "2026-06-01T09:00:00Z"}))
    _refused(b.put(A_SESSION + "/charging_preferences", json={"profile_type": "FAST", "energy_need": 80}))
    assert a.get(A_SESSION).json()["data"] == before
    # The same session id under its own party is another session, not A's.
    own = session(kwh=7.0, country_code="DE", party_id="XYZ")
    assert b.put("/ocpi/2.2.1/sessions/DE/XYZ/s1", json=own).json()["status_code"] == 1000
    assert a.get(A_SESSION).json()["data"]["kwh"] == 2.0
    _refused(a.get("/ocpi/2.2.1/sessions/DE/XYZ/s1"))
    with ems.ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(ChargingSession)) == 2


def test_the_other_cpo_cannot_read_or_change_locations(two_cpos: tuple[httpx.Client, httpx.Client]) -> None:
    a, b = two_cpos
    before = a.get(A_LOCATION).json()["data"]
    _refused(b.get(A_LOCATION))
    _refused(b.get(A_LOCATION + "/FR*INE*E0001"))
    _refused(b.put(A_LOCATION, json=location(name="taken over", last_updated="2026-06-01T09:00:00Z")))
    _refused(
        b.patch(
            A_LOCATION + "/FR*INE*E0001", json={"status": "REMOVED", "last_updated": "2026-06-01T09:00:00Z"}
        )
    )
    assert a.get(A_LOCATION).json()["data"] == before


def test_the_other_cpo_cannot_answer_for_or_push_profiles_of_the_first(
    ems: RunningEms, two_cpos: tuple[httpx.Client, httpx.Client]
) -> None:
    a, b = two_cpos
    with ems.ctx.db() as db:
        session_pk = db.scalar(select(ChargingSession.id).where(ChargingSession.session_id == "s1"))
    assert session_pk is not None
    # A's response_url exists once we called A (A offers no receiver here: the call fails, the row stays).
    call = profiles.send_charging_profile(ems.ctx, session_pk, ACTIVE_PROFILE["charging_profile"])
    callback = f"/ocpi/2.2.1/chargingprofiles/callback/{call.request_id}"
    result = {"result": "ACCEPTED"}
    reply = b.post(callback, json=result)
    assert reply.status_code == 404
    _refused(reply)
    with ems.ctx.db() as db:
        row = db.scalars(select(ProfileRequest).where(ProfileRequest.request_id == call.request_id)).one()
        assert row.result is None
    # An ActiveChargingProfile push by B for A's session id finds no session of B's.
    _refused(b.put("/ocpi/2.2.1/chargingprofiles/s1", json=ACTIVE_PROFILE))
    with ems.ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(ActiveProfileReport)) == 0
    # A itself may do both.
    assert a.post(callback, json=result).json()["status_code"] == 1000
    assert a.put("/ocpi/2.2.1/chargingprofiles/s1", json=ACTIVE_PROFILE).json()["status_code"] == 1000
    with ems.ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(ActiveProfileReport)) == 1
