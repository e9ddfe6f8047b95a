"""The simulator's OCPI interface in memory (ASGI): transport rules, senders, chargingprofiles."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ems.core.clock import ManualClock
from examples.cpo_simulator.cpo import CpoBackend
from examples.cpo_simulator.ocpi_app import make_app
from examples.cpo_simulator.simtime import SimClock
from examples.cpo_simulator.state import SimulatorState
from grid_models import load_site

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
TOKEN = "token-the-ems-calls-us-with"
T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def backend() -> CpoBackend:
    site = load_site(REPO / "examples/sites/office-pv.json")
    clock = ManualClock(T0)
    cpo = CpoBackend(
        site,
        SimClock(clock, 1.0),
        SimulatorState(),
        country_code="FR",
        party_id="SIM",
        public_url="http://cpo.test",
    )
    cpo.registration.incoming = TOKEN
    cpo.registration.status = "REGISTERED"
    for n, (cp_id, minute) in enumerate((("cp1", 5), ("cp2", 10), ("cp3", 15)), start=1):
        cpo.transaction_started(cp_id, 1, n, f"TOK{n}", 0, f"2026-06-01T08:{minute:02d}:00Z")
    return cpo


@pytest.fixture
async def client(backend: CpoBackend) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(backend))
    async with httpx.AsyncClient(transport=transport, base_url="http://cpo.test") as http:
        yield http


async def test_tokens_are_strict_base64_and_trace_and_routing_headers_come_back(
    client: httpx.AsyncClient,
) -> None:
    url = "/ocpi/2.2.1/sessions?date_from=2026-06-01T00:00:00Z"
    raw = await client.get(url, headers={"Authorization": f"Token {TOKEN}"})
    with_newline = await client.get(
        url, headers={"Authorization": "Token " + base64.b64encode(f"{TOKEN}\n".encode()).decode()}
    )
    assert (raw.status_code, raw.json()["status_code"]) == (401, 2000)
    assert with_newline.status_code == 401

    ok = await client.get(
        url,
        headers={
            **auth(),
            "X-Request-ID": "r-1",
            "X-Correlation-ID": "c-1",
            "OCPI-from-country-code": "FR",
            "OCPI-from-party-id": "SCS",
        },
    )
    assert ok.status_code == 200 and ok.json()["status_code"] == 1000
    assert (ok.headers["x-request-id"], ok.headers["x-correlation-id"]) == ("r-1", "c-1")
    assert (ok.headers["ocpi-from-country-code"], ok.headers["ocpi-from-party-id"]) == ("FR", "SIM")
    assert (ok.headers["ocpi-to-country-code"], ok.headers["ocpi-to-party-id"]) == ("FR", "SCS")
    versions = await client.get("/ocpi/versions", headers=auth())
    assert "ocpi-from-party-id" not in versions.headers  # not on versions/credentials
    assert versions.json()["data"] == [{"version": "2.2.1", "url": "http://cpo.test/ocpi/2.2.1"}]


async def test_sessions_sender_pages_with_link_and_filters_on_last_updated(client: httpx.AsyncClient) -> None:
    first = await client.get("/ocpi/2.2.1/sessions?date_from=2026-06-01T08:06:00Z&limit=1", headers=auth())
    assert [s["id"] for s in first.json()["data"]] == ["cp2-1-2"]
    assert (first.headers["x-total-count"], first.headers["x-limit"]) == ("2", "50")
    next_url = first.headers["link"].split(">")[0].lstrip("<")
    assert next_url.startswith("http://cpo.test/ocpi/2.2.1/sessions?") and "offset=1" in next_url
    second = await client.get(next_url, headers=auth())
    assert [s["id"] for s in second.json()["data"]] == ["cp3-1-3"]
    assert "link" not in second.headers
    session = second.json()["data"][0]
    assert session["status"] == "ACTIVE" and session["location_id"] == "office-pv"
    assert session["evse_uid"] == "FR*INE*E0003" and session["start_date_time"] == "2026-06-01T08:15:00Z"

    missing = await client.get("/ocpi/2.2.1/sessions", headers=auth())
    assert (missing.status_code, missing.json()["status_code"]) == (200, 2001)  # date_from is required


async def test_locations_sender_serves_the_site(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/ocpi/2.2.1/locations", headers=auth())).json()["data"]
    assert len(listed) == 1 and len(listed[0]["evses"]) == 12
    connector = (await client.get("/ocpi/2.2.1/locations/office-pv/FR*INE*E0010/1", headers=auth())).json()[
        "data"
    ]
    assert connector | {"last_updated": "-"} == {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_1_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": "-",
    }
    unknown = await client.get("/ocpi/2.2.1/locations/elsewhere", headers=auth())
    assert (unknown.status_code, unknown.json()["status_code"]) == (404, 2003)


async def test_chargingprofiles_receiver_answers_at_once_and_validates(client: httpx.AsyncClient) -> None:
    body = {
        "charging_profile": {
            "charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": 0, "limit": 9}],
        },
        "response_url": "http://ems.test/cb/1",
    }
    unknown = await client.put("/ocpi/2.2.1/chargingprofiles/nope", json=body, headers=auth())
    assert unknown.json()["data"] == {"result": "UNKNOWN_SESSION", "timeout": 0}

    bad = dict(
        body,
        charging_profile={
            "charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": 5, "limit": 9}],
        },
    )
    refused = await client.put("/ocpi/2.2.1/chargingprofiles/cp1-1-1", json=bad, headers=auth())
    assert (refused.status_code, refused.json()["status_code"]) == (200, 2001)
    not_json = await client.put(
        "/ocpi/2.2.1/chargingprofiles/cp1-1-1",
        content=b"{nope",
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert (not_json.status_code, not_json.json()["status_code"]) == (400, 2001)
    no_duration = await client.get(
        "/ocpi/2.2.1/chargingprofiles/cp1-1-1?response_url=http://ems.test/cb/2", headers=auth()
    )
    assert no_duration.json()["status_code"] == 2001
