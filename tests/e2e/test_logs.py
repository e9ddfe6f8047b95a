"""`ems serve --log-format json`: one JSON object a line, and one session's story found by its ids.

A CPO pushes a session with its X-Request-ID and X-Correlation-ID; the request's line carries
both, and the plan made for it names the site, the plan and the session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from tests.conftest import add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.support.servers import REPO, ProcessServer, free_port, wait_for

pytestmark = pytest.mark.e2e
IDS = {"X-Request-ID": "req-42", "X-Correlation-ID": "corr-42"}


def _serve(tmp_path: Path, log_format: str) -> tuple[ProcessServer, str, Path]:
    port = free_port()
    env = {
        "EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}",
        "EMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    ctx = EmsContext.create(Settings(database_url=env["EMS_DATABASE_URL"], public_url=env["EMS_PUBLIC_URL"]))
    sites.import_site(ctx, json.loads((REPO / "examples/sites/office-pv.json").read_text()))
    token = add_registered_partner(ctx)
    ctx.close()
    server = ProcessServer(
        ["-m", "ems.cli", "serve", "--port", str(port), "--log-format", log_format],
        env,
        f"http://127.0.0.1:{port}/healthz",
    )
    log = tmp_path / "ems.log"
    server.start(log)
    reply = httpx.put(
        f"http://127.0.0.1:{port}/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=auth(token) | IDS
    )
    assert reply.json()["status_code"] == 1000
    assert reply.headers["X-Request-ID"] == "req-42"
    return server, token, log


def test_json_lines_carry_the_ids_of_what_they_are_about(tmp_path: Path) -> None:
    server, _token, log = _serve(tmp_path, "json")
    try:

        def lines() -> list[dict[str, Any]]:
            return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

        def planned() -> list[dict[str, Any]] | None:
            found = [line for line in lines() if "s1" in str(line.get("session_ids", "")).split(",")]
            return found or None

        (plan, *_) = wait_for(planned, 30, "a plan line naming session s1")
    finally:
        server.stop()
    every = lines()  # each line parses as JSON, uvicorn's own included
    assert all({"ts", "level", "logger", "message"} <= line.keys() for line in every)
    (request,) = [
        line for line in every if line["logger"] == "api.ocpi.requests" and line.get("method") == "PUT"
    ]
    assert request["request_id"] == "req-42" and request["correlation_id"] == "corr-42"
    assert request["path"] == "/ocpi/2.2.1/sessions/NL/CPO/s1" and request["status"] == 201
    assert plan["site_id"] == "office-pv" and isinstance(plan["plan_id"], int)
    assert any(line["logger"].startswith("uvicorn") for line in every)


def test_text_lines_name_the_request_ids_too(tmp_path: Path) -> None:
    server, _token, log = _serve(tmp_path, "text")
    try:
        wait_for(lambda: "request_id=req-42" in log.read_text(), 30, "the request's line")
    finally:
        server.stop()
    (line,) = [
        line for line in log.read_text().splitlines() if "OCPI PUT /ocpi/2.2.1/sessions/NL/CPO/s1" in line
    ]
    assert "-> 201" in line and "correlation_id=corr-42" in line
