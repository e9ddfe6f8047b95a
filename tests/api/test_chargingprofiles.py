"""ChargingProfiles: calls to a CPO's receiver and every answer that comes back, stored."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import select

from ems.ocpi import profiles
from ems.store.models import ActiveProfileReport, ChargingSession, ProfileRequest
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.support.servers import ThreadedServer

PROFILE = {
    "start_date_time": "2026-06-01T08:15:00Z",
    "charging_rate_unit": "A",
    "charging_profile_period": [{"start_period": 0, "limit": 16.0}],
}


class Receiver:
    """A CPO chargingprofiles receiver answering what the test sets."""

    def __init__(self) -> None:
        self.answer: dict[str, Any] = {"result": "ACCEPTED", "timeout": 30}
        self.calls: list[dict[str, Any]] = []
        self.app = FastAPI()

        @self.app.api_route("/cp/{session_id}", methods=["PUT", "GET", "DELETE"])
        async def receive(session_id: str, request: Request) -> dict[str, Any]:
            body = await request.json() if request.method == "PUT" else None
            self.calls.append({"method": request.method, "session_id": session_id, "body": body})
            return {"data": self.answer, "status_code": 1000, "timestamp": "2026-06-01T00:00:00Z"}


@pytest.fixture
def setup(ems: RunningEms) -> Iterator[tuple[Receiver, httpx.Client, int]]:
    receiver = Receiver()
    with ThreadedServer(receiver.app) as server:
        token = add_registered_partner(
            ems.ctx,
            endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{server.url}/cp"}],
        )
        with httpx.Client(base_url=ems.url, headers=auth(token), timeout=10) as cpo:
            cpo.put("/ocpi/2.2.1/sessions/NL/CPO/s1", json=session())
            with ems.ctx.db() as db:
                session_pk = db.scalars(select(ChargingSession.id)).one()
            yield receiver, cpo, session_pk


def test_set_profile_and_result_callback(ems: RunningEms, setup: tuple[Receiver, httpx.Client, int]) -> None:
    receiver, cpo, session_pk = setup
    outcome = profiles.send_charging_profile(ems.ctx, session_pk, PROFILE)
    assert (outcome.response_result, outcome.timeout_s, outcome.error) == ("ACCEPTED", 30, None)
    call = receiver.calls[0]
    assert call["session_id"] == "s1" and call["body"]["charging_profile"] == PROFILE
    response_url = call["body"]["response_url"]
    assert outcome.request_id in response_url

    reply = cpo.post(response_url.removeprefix(ems.url), json={"result": "ACCEPTED"})
    assert reply.json()["status_code"] == 1000 and "data" not in reply.json()
    with ems.ctx.db() as db:
        row = db.scalars(select(ProfileRequest)).one()
        assert (row.kind, row.response_result, row.result) == ("set", "ACCEPTED", "ACCEPTED")


def test_every_synchronous_answer_is_stored(
    ems: RunningEms, setup: tuple[Receiver, httpx.Client, int]
) -> None:
    receiver, _cpo, session_pk = setup
    for result in ("REJECTED", "NOT_SUPPORTED", "TOO_OFTEN", "UNKNOWN_SESSION"):
        receiver.answer = {"result": result, "timeout": 10}
        assert profiles.send_charging_profile(ems.ctx, session_pk, PROFILE).response_result == result
    receiver.answer = {"result": "MAYBE"}
    outcome = profiles.send_charging_profile(ems.ctx, session_pk, PROFILE)
    assert outcome.response_result is None and outcome.error and "ChargingProfileResponse" in outcome.error
    with ems.ctx.db() as db:
        stored = [r.response_result for r in db.scalars(select(ProfileRequest).order_by(ProfileRequest.id))]
    assert stored == ["REJECTED", "NOT_SUPPORTED", "TOO_OFTEN", "UNKNOWN_SESSION", None]


def test_cpo_down_is_stored_as_an_error(ems: RunningEms) -> None:
    token = add_registered_partner(
        ems.ctx,
        endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": "http://127.0.0.1:9/cp"}],
    )
    httpx.put(f"{ems.url}/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=auth(token))
    with ems.ctx.db() as db:
        session_pk = db.scalars(select(ChargingSession.id)).one()
    outcome = profiles.send_charging_profile(ems.ctx, session_pk, PROFILE)
    assert outcome.response_result is None and outcome.error
    with ems.ctx.db() as db:
        assert db.scalars(select(ProfileRequest.error)).one() == outcome.error


def test_get_active_profile_result_is_stored(
    ems: RunningEms, setup: tuple[Receiver, httpx.Client, int]
) -> None:
    receiver, cpo, session_pk = setup
    outcome = profiles.request_active_profile(ems.ctx, session_pk, 900)
    assert receiver.calls[0]["method"] == "GET"
    result = {
        "result": "ACCEPTED",
        "profile": {"start_date_time": "2026-06-01T08:20:00Z", "charging_profile": PROFILE},
    }
    url = profiles.response_url(ems.ctx, outcome.request_id).removeprefix(ems.url)
    assert cpo.post(url, json=result).json()["status_code"] == 1000
    with ems.ctx.db() as db:
        report = db.scalars(select(ActiveProfileReport)).one()
        assert (report.source, report.charging_profile["charging_profile_period"]) == (
            "get",
            PROFILE["charging_profile_period"],
        )


def test_bad_callbacks_are_refused(ems: RunningEms, setup: tuple[Receiver, httpx.Client, int]) -> None:
    _receiver, cpo, session_pk = setup
    outcome = profiles.send_charging_profile(ems.ctx, session_pk, PROFILE)
    url = profiles.response_url(ems.ctx, outcome.request_id).removeprefix(ems.url)
    reply = cpo.post(url, json={"result": "PERHAPS"})
    assert reply.json()["status_code"] == 2001 and "result" in reply.json()["status_message"]
    reply = cpo.post("/ocpi/2.2.1/chargingprofiles/callback/unknown-id", json={"result": "ACCEPTED"})
    assert reply.status_code == 404 and reply.json()["status_code"] == 2001
    # Another partner cannot answer for this one.
    other = add_registered_partner(ems.ctx, "DE", "XYZ")
    reply = httpx.post(ems.url + url, json={"result": "ACCEPTED"}, headers=auth(other))
    assert reply.status_code == 404
    with ems.ctx.db() as db:
        assert db.scalars(select(ProfileRequest.result)).one() is None


def test_active_profile_push_is_stored(ems: RunningEms, setup: tuple[Receiver, httpx.Client, int]) -> None:
    _receiver, cpo, _session_pk = setup
    body = {"start_date_time": "2026-06-01T08:30:00Z", "charging_profile": PROFILE}
    reply = cpo.put("/ocpi/2.2.1/chargingprofiles/s1", json=body)
    assert reply.json()["status_code"] == 1000 and "data" not in reply.json()
    # The spec's form without a slash between the base URL and the id routes the same.
    assert cpo.put("/ocpi/2.2.1/chargingprofiles//s1/", json=body).json()["status_code"] == 1000
    assert cpo.put("/ocpi/2.2.1/chargingprofiles/nope", json=body).status_code == 404
    with ems.ctx.db() as db:
        assert len(list(db.scalars(select(ActiveProfileReport)))) == 2
