"""`ems explain SESSION`: each profile sent for a session with its plan, need, limits and answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
from fastapi import FastAPI
from fastapi.responses import Response

from ems import sites
from ems.dispatch.outbox import Dispatcher, OcpiProfileSink
from ems.planning.planner import Planner, PlannerSettings
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.support.servers import REPO, ThreadedServer

ACCEPTED = {
    "data": {"result": "ACCEPTED", "timeout": 30},
    "status_code": 1000,
    "timestamp": "2026-01-01T00:00:00Z",
}


def _explain(ems: RunningEms, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMS_DATABASE_URL": ems.ctx.settings.database_url}
    return subprocess.run(
        [sys.executable, "-m", "ems.cli", "explain", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_explain_tells_the_plan_the_need_the_limits_and_the_answer(ems: RunningEms) -> None:
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
        reply = httpx.put(f"{ems.url}/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=auth(token))
        assert reply.json()["status_code"] == 1000
        dispatcher = Dispatcher(ems.ctx, OcpiProfileSink(ems.ctx))
        plan_id = Planner(ems.ctx, dispatcher, settings=PlannerSettings()).plan_site(
            "office-pv", "session_started"
        )
        assert dispatcher.run_once() == 1

    explained = _explain(ems, "s1")
    assert explained.returncode == 0, explained.stderr
    text = explained.stdout
    assert "session NL/CPO/s1" in text and "1 profile(s)" in text
    assert "CPO answered ACCEPTED" in text
    assert f"plan {plan_id} " in text and "trigger session_started" in text and "inputs digest" in text
    assert "need: 15.0 kWh (site_default)" in text  # no declaration, no history: the site's default
    assert "profile: +0s 32 A" in text
    assert "limit: connector" in text and "limit: grid connection: 43 kW" in text
    assert "limit: protection" in text


def test_explain_names_what_is_wrong(ems: RunningEms) -> None:
    missing = _explain(ems, "nope")
    assert missing.returncode == 1 and "no session 'nope'" in missing.stderr
    bad = _explain(ems, "s1", "--party", "NLCPO")
    assert bad.returncode == 1 and "--party 'NLCPO'" in bad.stderr
