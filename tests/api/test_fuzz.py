"""Every endpoint of the OpenAPI document, fuzzed from its own schema (schemathesis + Hypothesis).

Valid and invalid requests, as a registered CPO on OCPI routes and as the administrator on the
admin API, over real HTTP. Each answer must be no 5xx; on OCPI routes the OCPI envelope; and a
refused request (HTTP 4xx, or an OCPI status outside 1xxx) must leave the database exactly as it
was: a snapshot of every table is compared before and after.

Bounded: `FUZZ_EXAMPLES` cases per operation, derandomized so a run is repeatable (set
`EMS_FUZZ_EXAMPLES` for a longer hunt). Credentials POST/PUT make the EMS call the versions URL in
the body: it is pointed at a closed port on 127.0.0.1, so no test talks beyond loopback.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import inspect, select, text

from api.app import create_app
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.store.base import Base
from tests.conftest import ADMIN_TOKEN, add_registered_partner, auth
from tests.support.ocpi_objects import location, session
from tests.support.servers import REPO, ThreadedServer, free_port

FUZZ_EXAMPLES = int(os.environ.get("EMS_FUZZ_EXAMPLES", "25"))
CLOSED_PORT_URL = f"http://127.0.0.1:{free_port()}/ocpi/versions"


@dataclass
class Target:
    ctx: EmsContext
    url: str
    token: str
    http: requests.Session = field(default_factory=requests.Session)

    def headers(self, path: str) -> dict[str, str]:
        if path.startswith(("/api/admin", "/metrics")):
            return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return auth(self.token) | {"X-Request-ID": "fuzz", "X-Correlation-ID": "fuzz"}

    def reregister_if_gone(self) -> None:
        """A fuzzed credentials DELETE may unregister the CPO: the next case needs one."""
        reply = self.http.get(f"{self.url}/ocpi/2.2.1/credentials", headers=self.headers("/ocpi"))
        if reply.json().get("status_code") != 1000:
            with self.ctx.engine.begin() as db:
                db.execute(text("DELETE FROM partner"))
            self.token = add_registered_partner(self.ctx)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    tmp = tmp_path_factory.mktemp("fuzz")
    port = free_port()
    ctx = EmsContext.create(
        Settings(
            database_url=f"sqlite:///{tmp / 'ems.db'}",
            public_url=f"http://127.0.0.1:{port}",
            admin_token=ADMIN_TOKEN,
        )
    )
    with ThreadedServer(create_app(context=ctx, background=False), port=port) as server:
        found = Target(ctx, server.url, add_registered_partner(ctx))
        # Something for the fuzzed paths to find: a site, a Location and a Session under it.
        site = json.loads((REPO / "examples/sites/public-carpark.json").read_text())
        reply = found.http.post(
            f"{server.url}/api/admin/sites", json=site, headers=found.headers("/api/admin")
        )
        assert reply.status_code == 201, reply.text
        ocpi = f"{server.url}/ocpi/2.2.1"
        found.http.put(f"{ocpi}/locations/NL/CPO/LOC1", json=location(), headers=found.headers(ocpi))
        found.http.put(f"{ocpi}/sessions/NL/CPO/s1", json=session(), headers=found.headers(ocpi))
        yield found
    ctx.close()


def snapshot(ctx: EmsContext) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    tables = sorted(Base.metadata.tables.values(), key=lambda table: table.name)
    with ctx.engine.connect() as db:
        present = set(inspect(db).get_table_names())
        return {
            table.name: sorted((tuple(row) for row in db.execute(select(table))), key=repr)
            for table in tables
            if table.name in present
        }


def _raw_schema() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        ctx = EmsContext.create(Settings(database_url=f"sqlite:///{tmp}/schema.db", admin_token=ADMIN_TOKEN))
        try:
            return create_app(context=ctx, background=False).openapi()
        finally:
            ctx.close()


SCHEMA = schemathesis.openapi.from_dict(_raw_schema())
OPERATIONS = [
    (path, method.upper())
    for path, methods in SCHEMA.raw_schema["paths"].items()
    for method in methods
    if method in {"get", "put", "post", "patch", "delete"}
]
OURS = {"country_code": "NL", "party_id": "CPO", "location_id": "LOC1", "session_id": "s1"}


def _refused(path: str, status: int, body: Any) -> bool:
    if status >= 400:
        return True
    if path.startswith("/ocpi") and isinstance(body, dict):
        return not 1000 <= int(body.get("status_code", 0)) < 2000
    return False


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_fuzzed_requests_are_answered_and_refusals_store_nothing(
    target: Target, path: str, method: str
) -> None:
    operation = SCHEMA[path][method]
    ours = {name: value for name, value in OURS.items() if f"{{{name}}}" in path}
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        # Reaching past the routing checks: the registered CPO's own party, location and session.
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ours),
        operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=ours),
    )

    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        if isinstance(case.body, dict) and "url" in case.body:
            case.body["url"] = CLOSED_PORT_URL  # credentials: never call beyond loopback
        before = snapshot(target.ctx)
        reply = case.call(base_url=target.url, session=target.http, headers=target.headers(path), timeout=30)
        what = (
            f"{case.method} {case.formatted_path} {case.body!r:.300} -> {reply.status_code} {reply.text:.500}"
        )
        assert reply.status_code < 500, what
        body: Any = None
        if reply.headers.get("content-type", [""])[0].startswith("application/json"):
            body = reply.json()
        if path.startswith("/ocpi"):
            assert isinstance(body, dict), what
            assert isinstance(body.get("status_code"), int) and isinstance(body.get("timestamp"), str), what
        if _refused(path, reply.status_code, body):
            assert snapshot(target.ctx) == before, f"a refused request changed the database: {what}"
        if path == "/ocpi/2.2.1/credentials":
            target.reregister_if_gone()

    run()


def test_the_fuzz_covers_every_operation() -> None:
    """A route left out of the OpenAPI document would escape the fuzzer."""
    assert len(OPERATIONS) >= 30
    assert {path for path, _ in OPERATIONS} >= {
        "/ocpi/2.2.1/sessions/{country_code}/{party_id}/{session_id}",
        "/ocpi/2.2.1/locations/{country_code}/{party_id}/{location_id}/{evse_uid}/{connector_id}",
        "/ocpi/2.2.1/chargingprofiles/{session_id}",
        "/api/admin/sites/{site_id}/{collection}/{element_id}",
    }
