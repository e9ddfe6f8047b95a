"""Event-to-profile latency: a session start pushed over OCPI until its profile reaches the CPO.

The EMS app (OCPI receiver, planner, dispatch) serves over loopback; a CPO chargingprofiles
receiver records when each profile arrives. Sessions start one after another on a site of 12
connectors (the office sample) and on a depot of 208; each start re-plans the whole site, so
the latency grows with the number of cars already charging. The baseline, measured in the same
run, is the OCPI round trip of the session push itself. Bounded in count and time.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import select

from api.app import create_app
from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.dispatch.outbox import Dispatcher, OcpiProfileSink
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.partners import PartnerStatus
from ems.ocpi.tokens import authorization_header, new_token, token_digest
from ems.planning.planner import Planner
from ems.store.base import utcnow as now_utc
from ems.store.db import transaction
from ems.store.models import Partner
from ems.store.planning import PlanRecord

REPO = Path(__file__).resolve().parents[1]
QUICK = os.environ.get("BENCH_QUICK") == "1"
TIME_LIMIT_S = 420.0


def _serve(app: Any) -> tuple[Any, str]:
    sys.path.insert(0, str(REPO))
    from tests.support.servers import ThreadedServer

    server = ThreadedServer(app)
    server.__enter__()
    return server, server.url


def _site(name: str) -> dict[str, Any]:
    if name == "office":
        data: dict[str, Any] = json.loads((REPO / "examples/sites/office-pv.json").read_text())
        return data
    sys.path.insert(0, str(REPO / "examples" / "sites"))
    from make_depot import make_depot

    return make_depot(8, site_id="depot-208")


def session_body(session_id: str, evse_uid: str) -> dict[str, Any]:
    """An ACTIVE OCPI Session starting now (the scale bench pushes the same)."""
    at = format_ocpi_datetime(now_utc())
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": session_id,
        "start_date_time": at,
        "kwh": 0.0,
        "cdr_token": {
            "uid": session_id,
            "type": "RFID",
            "contract_id": "C",
            "country_code": "NL",
            "party_id": "ACM",
        },
        "auth_method": "WHITELIST",
        "location_id": "LOC1",
        "evse_uid": evse_uid,
        "connector_id": "1",
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": at,
    }


def measure(site_name: str, n_sessions: int) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    receiver = FastAPI()

    @receiver.put("/cp/{session_id}")
    async def receive(session_id: str, request: Request) -> dict[str, Any]:
        arrivals.setdefault(session_id, time.perf_counter())
        return {
            "data": {"result": "ACCEPTED", "timeout": 30},
            "status_code": 1000,
            "timestamp": "2026-01-01T00:00:00Z",
        }

    cpo_server, cpo_url = _serve(receiver)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EmsContext.create(Settings(database_url=f"sqlite:///{tmp}/bench.db"))
        site = _site(site_name)
        sites.import_site(ctx, site)
        token = new_token()
        with transaction(ctx.db) as db:
            db.add(
                Partner(
                    country_code="NL",
                    party_id="CPO",
                    role="CPO",
                    status=PartnerStatus.REGISTERED,
                    roles=[],
                    endpoints=[
                        {"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{cpo_url}/cp"}
                    ],
                    token_incoming=token,
                    token_incoming_sha256=token_digest(token),
                    token_outgoing=new_token(),
                )
            )
        dispatcher = Dispatcher(ctx, OcpiProfileSink(ctx), rate_per_s=1000, burst=1000)
        planner = Planner(ctx, dispatcher)
        dispatcher.start()
        planner.start()
        ems_server, ems_url = _serve(create_app(context=ctx, background=False))
        evses = [c["evse_uid"] for cp in site["charge_points"] for c in cp["connectors"]][:n_sessions]
        latencies: list[float] = []
        pushes: list[float] = []
        deadline = time.monotonic() + TIME_LIMIT_S
        try:
            with httpx.Client(
                base_url=ems_url, headers={"Authorization": authorization_header(token, "base64")}
            ) as client:
                for i, evse_uid in enumerate(evses):
                    if time.monotonic() > deadline:
                        break
                    session_id = f"s{i}"
                    started = time.perf_counter()
                    reply = client.put(
                        f"/ocpi/2.2.1/sessions/NL/CPO/{session_id}", json=session_body(session_id, evse_uid)
                    )
                    pushes.append(time.perf_counter() - started)
                    reply.raise_for_status()
                    while session_id not in arrivals and time.monotonic() < deadline:
                        time.sleep(0.002)
                    if session_id in arrivals:
                        latencies.append(arrivals[session_id] - started)
        finally:
            planner.stop()
            dispatcher.stop()
            ems_server.__exit__()
            cpo_server.__exit__()
            with ctx.db() as db:
                records = db.execute(
                    select(PlanRecord.total_ms, PlanRecord.solve_ms, PlanRecord.build_ms)
                ).all()
            ctx.close()
    ordered = sorted(latencies)
    result = {
        "n": float(len(ordered)),
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "push_p50_ms": 1000 * statistics.median(pushes),
    }
    plan_ms = statistics.median(r[0] for r in records)
    solve_ms = statistics.median(r[1] + r[2] for r in records)
    result["plan_p50_ms"], result["optimizer_p50_ms"] = plan_ms, solve_ms
    print(
        f"  {site_name:<10} {len(ordered):4d} starts   event->profile p50 {result['p50_ms']:7.1f} ms"
        f"   p95 {result['p95_ms']:7.1f} ms   (OCPI push alone p50 {result['push_p50_ms']:.1f} ms;"
        f" ratio {result['p50_ms'] / result['push_p50_ms']:.0f}x)\n"
        f"  {'':<10} per plan p50: {plan_ms:.0f} ms in all, of which the optimizer {solve_ms:.0f} ms"
    )
    return result


def main() -> dict[str, dict[str, float]]:
    print("Event-to-profile latency (session PUT -> planner -> dispatch -> CPO receiver), loopback, SQLite")
    results = {"office_12": measure("office", 12), "depot_200": measure("depot", 60 if QUICK else 200)}
    print("  targets: p50 under 300 ms at 12 points, under 2 s at 200")
    return results


if __name__ == "__main__":
    main()
