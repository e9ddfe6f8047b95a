"""The EMS killed mid-day: nothing acknowledged is lost, planning resumes, queued profiles go out.

The EMS runs as its own process (`ems serve`, planner and dispatch included) so it can be
killed with SIGKILL; the CPO's chargingprofiles receiver is down when the cars arrive.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import func, select

from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.store.planning import PlanRecord, ProfileOutbox
from tests.conftest import add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.support.servers import REPO, ProcessServer, ThreadedServer, free_port, wait_for

pytestmark = pytest.mark.e2e


def test_kill_and_restart(tmp_path: Path) -> None:
    received: list[str] = []
    state = {"down": True}
    receiver = FastAPI()

    @receiver.put("/cp/{session_id}")
    async def put(session_id: str, request: Request) -> Response:
        if state["down"]:
            return PlainTextResponse("maintenance", status_code=503)
        received.append(session_id)
        body = {
            "data": {"result": "ACCEPTED", "timeout": 30},
            "status_code": 1000,
            "timestamp": "2026-01-01T00:00:00Z",
        }
        return Response(json.dumps(body), media_type="application/json")

    port = free_port()
    env = {
        "EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}",
        "EMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with ThreadedServer(receiver) as cpo:
        ctx = EmsContext.create(
            Settings(database_url=env["EMS_DATABASE_URL"], public_url=env["EMS_PUBLIC_URL"])
        )
        sites.import_site(ctx, json.loads((REPO / "examples/sites/office-pv.json").read_text()))
        token = add_registered_partner(
            ctx, endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo.url}/cp"}]
        )
        ems = ProcessServer(
            ["-m", "ems.cli", "serve", "--port", str(port), "--log-level", "warning"],
            env,
            f"http://127.0.0.1:{port}/healthz",
        )
        ems.start(tmp_path / "ems.log")
        try:
            for sid, evse in (("s1", "FR*INE*E0001"), ("s2", "FR*INE*E0002")):
                reply = httpx.put(
                    f"http://127.0.0.1:{port}/ocpi/2.2.1/sessions/NL/CPO/{sid}",
                    json=session(sid, evse_uid=evse),
                    headers=auth(token),
                )
                assert reply.json()["status_code"] == 1000

            def attempted() -> bool:
                with ctx.db() as db:
                    return (db.scalar(select(func.min(ProfileOutbox.attempts))) or 0) >= 1

            wait_for(attempted, 20, "delivery attempts while the CPO is down")
            ems.kill()
            state["down"] = False
            ems.start(tmp_path / "ems-restarted.log")
            wait_for(lambda: {"s1", "s2"} <= set(received), 30, "the queued profiles after the restart")
            time.sleep(2)
            assert sorted(received) == ["s1", "s2"], "each profile arrives once"
            with ctx.db() as db:
                triggers = list(db.scalars(select(PlanRecord.trigger)))
            assert any("startup" in t for t in triggers), triggers
            got = httpx.get(f"http://127.0.0.1:{port}/ocpi/2.2.1/sessions/NL/CPO/s2", headers=auth(token))
            assert got.json()["data"]["evse_uid"] == "FR*INE*E0002"
        finally:
            ems.stop()
            ctx.close()
