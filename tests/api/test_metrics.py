"""`GET /metrics` scraped while the EMS plans and delivers: every family counts what happened.

The EMS runs with its planner, dispatch and schedule (re-plan every second, so the scheduler's
lag is sampled); the CPO's chargingprofiles receiver refuses the first call (a retry) and
accepts the next ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from api.app import create_app
from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from tests.conftest import ADMIN_TOKEN, add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.support.servers import REPO, ThreadedServer, free_port, wait_for

ANSWER = {
    "data": {"result": "ACCEPTED", "timeout": 30},
    "status_code": 1000,
    "timestamp": "2026-01-01T00:00:00Z",
}


def _receiver(calls: list[str]) -> FastAPI:
    receiver = FastAPI()

    @receiver.put("/cp/{session_id}")
    async def put(session_id: str, request: Request) -> Response:
        calls.append(session_id)
        if len(calls) == 1:
            return PlainTextResponse("maintenance", status_code=503)
        return Response(json.dumps(ANSWER), media_type="application/json")

    return receiver


def _scrape(url: str) -> dict[str, list[Sample]]:
    reply = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(reply.text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


@pytest.fixture
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, EmsContext, list[str]]]:
    tmp = tmp_path_factory.mktemp("metrics")
    calls: list[str] = []
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'ems.db'}",
        public_url=f"http://127.0.0.1:{port}",
        admin_token=ADMIN_TOKEN,
        plan_interval_s=1.0,
    )
    ctx = EmsContext.create(settings)
    sites.import_site(ctx, json.loads((REPO / "examples/sites/office-pv.json").read_text()))
    with ThreadedServer(_receiver(calls)) as cpo:
        token = add_registered_partner(
            ctx, endpoints=[{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo.url}/cp"}]
        )
        with ThreadedServer(create_app(context=ctx, background=True), port=port) as ems:
            reply = httpx.put(f"{ems.url}/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=auth(token))
            assert reply.json()["status_code"] == 1000
            yield ems.url, ctx, calls
    ctx.close()


def test_every_family_counts_during_a_run(running: tuple[str, EmsContext, list[str]]) -> None:
    url, _ctx, calls = running
    wait_for(lambda: len(calls) >= 2, 30, "a refused then an accepted profile")

    def scraped_enough() -> dict[str, list[Sample]] | None:
        families = _scrape(url)
        lag = _value(families.get("ems_scheduler_lag_seconds", []), "ems_scheduler_lag_seconds_count")
        accepted = _value(
            families.get("ems_profile_results", []), "ems_profile_results_total", result="ACCEPTED"
        )
        return families if lag > 0 and accepted > 0 else None

    families = wait_for(scraped_enough, 30, "the schedule to run and the acceptance to be counted")
    requests = families["ems_ocpi_requests"]
    assert _value(requests, "ems_ocpi_requests_total", module="sessions", method="PUT", status="201") == 1
    assert (
        _value(families["ems_ocpi_request_seconds"], "ems_ocpi_request_seconds_count", module="sessions") == 1
    )
    assert _value(families["ems_plans"], "ems_plans_total") >= 1
    assert _value(families["ems_plans"], "ems_plans_total", status="optimal") >= 1
    assert _value(families["ems_plan_build_seconds"], "ems_plan_build_seconds_count") >= 1
    assert _value(families["ems_plan_solve_seconds"], "ems_plan_solve_seconds_count") >= 1
    assert _value(families["ems_dispatch_retries"], "ems_dispatch_retries_total") >= 1
    assert {s.labels["state"] for s in families["ems_dispatch_outbox_depth"]} == {
        "pending",
        "awaiting_result",
    }
    assert _value(families["ems_active_sessions"], "ems_active_sessions", partner="NL/CPO") == 1
    assert _value(families["ems_site_planned_sessions"], "ems_site_planned_sessions", site="office-pv") == 1
    power = _value(
        families["ems_site_planned_power_kw"], "ems_site_planned_power_kw", site="office-pv", flow="ev"
    )
    assert power > 0


def test_metrics_need_the_admin_token(running: tuple[str, EmsContext, list[str]]) -> None:
    url, _ctx, _calls = running
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert (
        httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code
        == 401
    )
