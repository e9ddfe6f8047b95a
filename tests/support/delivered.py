"""A session planned and its profile delivered to a CPO that accepts: the audit trail to read,
and an administrator's browser session to read it with."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from fastapi import FastAPI
from fastapi.responses import Response

from ems import sites
from ems.admin.users import create_user
from ems.dispatch.outbox import Dispatcher, OcpiProfileSink
from ems.planning.planner import Planner, PlannerSettings
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.support.servers import REPO, ThreadedServer

ADMIN_PASSWORD = "a long enough test password"
ACCEPTED = {
    "data": {"result": "ACCEPTED", "timeout": 30},
    "status_code": 1000,
    "timestamp": "2026-01-01T00:00:00Z",
}


def plan_and_deliver(ems: RunningEms, session_id: str = "s1") -> int:
    """Office site, one session pushed by NL/CPO, planned once and sent once; returns the plan id."""
    receiver = FastAPI()

    @receiver.put("/cp/{session_id}")
    async def put(session_id: str) -> Response:
        return Response(json.dumps(ACCEPTED), media_type="application/json")

    sites.import_site(ems.ctx, json.loads((REPO / "examples/sites/office-pv.json").read_text()))
    with ThreadedServer(receiver) as cpo:
        token = add_registered_partner(
            ems.ctx,
            endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo.url}/cp"}],
        )
        url = f"{ems.url}/ocpi/2.2.1/sessions/NL/CPO/{session_id}"
        assert httpx.put(url, json=session(session_id), headers=auth(token)).json()["status_code"] == 1000
        dispatcher = Dispatcher(ems.ctx, OcpiProfileSink(ems.ctx))
        plan_id = Planner(ems.ctx, dispatcher, settings=PlannerSettings()).plan_site(
            "office-pv", "session_started"
        )
        assert dispatcher.run_once() == 1
    return plan_id


@contextmanager
def admin_browser(ems: RunningEms) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the admin pages (through the login form and its CSRF token)."""
    create_user(ems.ctx, "alice", ADMIN_PASSWORD)
    with httpx.Client(base_url=ems.url, timeout=10, follow_redirects=True) as client:
        match = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
        assert match is not None
        form = {"username": "alice", "password": ADMIN_PASSWORD, "csrf_token": match.group(1)}
        assert client.post("/login", data=form).status_code == 200
        yield client
