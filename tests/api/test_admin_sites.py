"""The admin API of sites over real HTTP: auth, every element path, refusals that store nothing,
and unplaced EVSEs from a Location pushed through the real OCPI endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from ems.core.config import Settings
from ems.core.events import DomainEvent, SiteChanged
from ems.store.models import Site as SiteRow
from ems.store.models import SiteVersion
from grid_models.sitefile import site_json_schema
from tests.conftest import ADMIN_TOKEN, RunningEms
from tests.support.ocpi_objects import connector, evse, location, session

SITES_DIR = Path(__file__).resolve().parents[2] / "examples" / "sites"


def _sample(name: str = "public-carpark.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SITES_DIR / name).read_text())
    return data


def _rows(ems: RunningEms) -> tuple[int, int]:
    with ems.ctx.db() as db:
        sites = db.scalar(select(func.count()).select_from(SiteRow)) or 0
        versions = db.scalar(select(func.count()).select_from(SiteVersion)) or 0
    return sites, versions


def test_admin_token_is_required(ems: RunningEms, monkeypatch: pytest.MonkeyPatch) -> None:
    url = ems.url + "/api/admin/sites"
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token-of-some-length"},
        {"Authorization": ADMIN_TOKEN},
    ):
        reply = httpx.get(url, headers=headers)
        assert reply.status_code == 401, headers
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.post(url, json=_sample()).status_code == 401
    assert _rows(ems) == (0, 0)
    assert httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json() == []

    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(admin_token="short")
    assert Settings(admin_token="").admin_token is None

    monkeypatch.setattr(ems.ctx.settings, "admin_token", None)
    reply = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert reply.status_code == 503
    assert reply.json()["detail"] == "admin API disabled: set EMS_ADMIN_TOKEN"


def test_create_read_replace_delete_a_site(ems: RunningEms, admin_client: httpx.Client) -> None:
    data = _sample()
    reply = admin_client.post("/sites", json=data, params={"comment": "as built"})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["site_id"], body["version"], body["site"]) == ("public-carpark", 1, data)
    assert (body["comment"], body["author"]) == ("as built", "admin")
    assert body["unplaced"] == {"connectors": 0, "with_active_session": 0}
    assert reply.headers["Location"] == "/api/admin/sites/public-carpark"
    assert admin_client.post("/sites", json=data).status_code == 409

    listed = admin_client.get("/sites").json()
    assert [(s["site_id"], s["current_version"], s["name"]) for s in listed] == [
        ("public-carpark", 1, data["name"])
    ]
    changed = {**data, "name": "Renamed"}
    reply = admin_client.put("/sites/public-carpark", json=changed)
    assert (reply.status_code, reply.json()["version"]) == (200, 2)
    assert admin_client.get("/sites/public-carpark").json()["site"] == changed
    assert admin_client.get("/sites/public-carpark", params={"version": 1}).json()["site"] == data
    assert admin_client.get("/sites/public-carpark", params={"version": 3}).status_code == 404
    assert admin_client.get("/sites/public-carpark", params={"version": 0}).status_code == 422
    versions = admin_client.get("/sites/public-carpark/versions").json()
    assert [(v["version"], v["comment"]) for v in versions] == [(1, "as built"), (2, None)]
    assert admin_client.put("/sites/public-carpark", json={**data, "id": "elsewhere"}).status_code == 422

    assert admin_client.delete("/sites/public-carpark").status_code == 204
    for path in ("/sites/public-carpark", "/sites/public-carpark/versions", "/sites/public-carpark/loads/x"):
        assert admin_client.get(path).status_code == 404, path
    assert admin_client.delete("/sites/public-carpark").status_code == 404
    assert admin_client.get("/sites").json() == []


def test_a_bad_site_is_refused_whole_with_every_problem(ems: RunningEms, admin_client: httpx.Client) -> None:
    data = _sample("office-pv.json")
    data["protections"][3]["parent"] = "ghost"
    data["protections"][2]["rated_current_a"] = -1
    data["charge_points"][0]["connectors"][0]["phases"] = ["L1", "L5", "L3"]
    data["charge_points"][5]["id"] = "cp4"
    data["loads"][0]["phases"] = "L1"
    reply = admin_client.post("/sites", json=data)
    assert reply.status_code == 422
    body = reply.json()
    named = {(p["element_kind"], p["element_id"], p["field"]) for p in body["problems"]}
    assert named == {
        ("protection", "zedbox2", "parent"),
        ("protection", "zedbox1", "rated_current_a"),
        ("connector", "cp1-1", "phases"),
        ("charge_point", "cp4", "id"),
        ("load", "building", "phases"),
    }
    assert body["detail"].startswith("invalid site (5 problem(s)): ")
    assert all(p["message"] for p in body["problems"])
    assert _rows(ems) == (0, 0)
    for bad in ([1, 2], "not a site", {"id": "x"}):
        assert admin_client.post("/sites", json=bad).status_code == 422
    reply = admin_client.post("/sites", content=b"{nope", headers={"Content-Type": "application/json"})
    assert reply.status_code == 422 and reply.json()["problems"]
    assert _rows(ems) == (0, 0)


ELEMENTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "protections": ({"parent": "main", "rated_current_a": 20}, {"parent": "feeder", "rated_current_a": 16}),
    "charge_points": (
        {"protection": "feeder", "connectors": []},
        {
            "protection": "main",
            "connectors": [
                {
                    "id": "new-1",
                    "evse_uid": "E-NEW",
                    "connector_id": "1",
                    "phases": ["L3"],
                    "max_current_a": 16,
                }
            ],
        },
    ),
    "pv_plants": ({"protection": "main", "peak_power_kw": 9.0}, {"protection": "feeder", "peak_power_kw": 6}),
    "loads": ({"protection": "main"}, {"protection": "feeder", "phases": ["L2"], "label": "lights"}),
}


@pytest.mark.parametrize("collection", list(ELEMENTS))
def test_element_create_read_replace_delete(admin_client: httpx.Client, collection: str) -> None:
    admin_client.post("/sites", json=_sample())
    first, second = ELEMENTS[collection]
    path = f"/sites/public-carpark/{collection}/new"
    assert admin_client.get(path).status_code == 404

    reply = admin_client.put(path, json=first)
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"site_id": "public-carpark", "version": 2, "element": {"id": "new", **first}}
    assert admin_client.get(path).json()["element"] == {"id": "new", **first}

    reply = admin_client.put(path, json={"id": "new", **second})
    assert (reply.status_code, reply.json()["version"]) == (200, 3)
    assert admin_client.get(path).json() == {
        "site_id": "public-carpark",
        "version": 3,
        "element": {"id": "new", **second},
    }
    assert admin_client.put(path, json={"id": "other", **second}).status_code == 422

    reply = admin_client.delete(path)
    assert (reply.status_code, reply.json()["version"]) == (200, 4)
    assert admin_client.get(path).status_code == 404
    assert admin_client.delete(path).status_code == 404
    assert [v["version"] for v in admin_client.get("/sites/public-carpark/versions").json()] == [1, 2, 3, 4]
    site_v3 = admin_client.get("/sites/public-carpark", params={"version": 3}).json()["site"]
    assert {"id": "new", **second} in site_v3[collection]
    assert admin_client.get("/sites/public-carpark").json()["site"] == _sample()


def test_connector_and_grid_connection_paths(ems: RunningEms, admin_client: httpx.Client) -> None:
    admin_client.post("/sites", json=_sample())
    path = "/sites/public-carpark/charge_points/cp1/connectors/cp1-2"
    body = {"evse_uid": "ES*BCN*E0001", "connector_id": "2", "phases": ["L2"], "max_current_a": 16}
    reply = admin_client.put(path, json=body)
    assert (reply.status_code, reply.json()["version"]) == (201, 2), reply.text
    assert admin_client.get(path).json()["element"] == {"id": "cp1-2", **body}
    reply = admin_client.put(path, json={**body, "phases": ["L1", "L2", "L3"], "max_current_a": 32})
    assert (reply.status_code, reply.json()["element"]["phases"]) == (200, ["L1", "L2", "L3"])

    # the same OCPI connector twice, and a connector on a charge point that does not exist
    reply = admin_client.put("/sites/public-carpark/charge_points/cp2/connectors/dup", json=body)
    assert reply.status_code == 422
    assert [(p["element_id"], p["field"]) for p in reply.json()["problems"]] == [("dup", "connector_id")]
    assert (
        admin_client.put("/sites/public-carpark/charge_points/cp9/connectors/x", json=body).status_code == 404
    )
    assert admin_client.get("/sites/public-carpark/charge_points/cp9/connectors/x").status_code == 404

    assert admin_client.delete(path).json()["version"] == 4
    assert admin_client.get(path).status_code == 404

    reply = admin_client.put(
        "/sites/public-carpark/grid_connection", json={"max_power_kw": 22, "tariff": "C5"}
    )
    assert reply.json() == {
        "site_id": "public-carpark",
        "version": 5,
        "element": {"max_power_kw": 22, "tariff": "C5"},
    }
    reply = admin_client.put("/sites/public-carpark/grid_connection", json={"max_power_kw": -1})
    assert reply.status_code == 422
    assert reply.json()["problems"][0]["element_kind"] == "grid_connection"
    assert admin_client.get("/sites/public-carpark/transformers/t1").status_code == 404
    assert admin_client.get("/sites/nowhere/loads/x").status_code == 404
    assert _rows(ems) == (1, 5)


def test_deleting_a_protection_with_children_names_them(admin_client: httpx.Client) -> None:
    admin_client.post("/sites", json=_sample())
    reply = admin_client.delete("/sites/public-carpark/protections/feeder")
    assert reply.status_code == 422
    assert [p["element_id"] for p in reply.json()["problems"]] == ["cp1", "cp2", "cp3", "cp4", "cp5"]
    assert "still fed by protection 'feeder'" in reply.json()["detail"]
    assert admin_client.get("/sites/public-carpark").json()["version"] == 1


def test_schema_and_body_limit(ems: RunningEms, admin_client: httpx.Client) -> None:
    assert admin_client.get("/schema/site.json").json() == site_json_schema()
    big = b'{"id": "' + b"x" * 1_000_001 + b'"}'
    reply = admin_client.post("/sites", content=big, headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and "refused" in reply.json()["detail"]
    # the OCPI side keeps its envelope
    reply = httpx.put(ems.url + "/ocpi/2.2.1/sessions/NL/CPO/s1", content=big)
    assert reply.status_code == 413 and reply.json()["status_code"] == 2000
    assert _rows(ems) == (0, 0)


def _linked_site() -> dict[str, Any]:
    data = _sample()
    data["ocpi_locations"] = [{"country_code": "NL", "party_id": "CPO", "location_id": "LOC1"}]
    return data


def _push_location(cpo_client: httpx.Client) -> None:
    evses = [
        evse("ES*BCN*E0001", [connector("1", "AC_1_PHASE", 16)]),  # wired in the site already
        evse("NL*CPO*E1", [connector("1", "AC_1_PHASE", 32, max_electric_power=3680)]),
        evse("NL*CPO*E2", [connector("1", "AC_3_PHASE", 32), connector("2", "AC_2_PHASE", 16)]),
        evse("NL*CPO*E3", [connector("1", "DC", 125, max_voltage=400, max_electric_power=50000)]),
        evse("NL*CPO*E4", [connector("1", "AC_3_PHASE", 32)], status="REMOVED"),
    ]
    reply = cpo_client.put("/ocpi/2.2.1/locations/NL/CPO/LOC1", json=location("LOC1", evses))
    assert reply.json()["status_code"] == 1000, reply.text
    other = location("LOC2", [evse("NL*CPO*E9")])
    assert cpo_client.put("/ocpi/2.2.1/locations/NL/CPO/LOC2", json=other).json()["status_code"] == 1000


def test_unplaced_evses_are_proposed_and_disappear_once_placed(
    ems: RunningEms, admin_client: httpx.Client, cpo_client: httpx.Client
) -> None:
    events: list[DomainEvent] = []
    ems.ctx.bus.subscribe(events.append)
    admin_client.post("/sites", json=_linked_site())
    _push_location(cpo_client)
    active = session("s1", evse_uid="NL*CPO*E1", connector_id="1")
    assert cpo_client.put("/ocpi/2.2.1/sessions/NL/CPO/s1", json=active).json()["status_code"] == 1000

    unplaced = admin_client.get("/sites/public-carpark/unplaced").json()["unplaced"]
    assert [(u["evse_uid"], u["connector_id"]) for u in unplaced] == [
        ("NL*CPO*E1", "1"),
        ("NL*CPO*E2", "1"),
        ("NL*CPO*E2", "2"),
        ("NL*CPO*E3", "1"),
    ]
    proposed = {
        (u["evse_uid"], u["connector_id"]): (
            u["proposal"]["charge_point_id"],
            u["proposal"]["protection"],
            u["proposal"]["connector"]["phases"],
            u["proposal"]["connector"]["max_current_a"],
            u["proposal"]["connector"]["min_current_a"],
            u["proposal"]["connector"]["power_type"],
            u["proposal"]["connector"]["max_power_kw"],
        )
        for u in unplaced
    }
    assert proposed == {
        ("NL*CPO*E1", "1"): ("NL*CPO*E1", "main", ["L1"], 16, 6, "AC", None),
        ("NL*CPO*E2", "1"): ("NL*CPO*E2", "main", ["L1", "L2", "L3"], 32, 6, "AC", None),
        ("NL*CPO*E2", "2"): ("NL*CPO*E2", "main", ["L1", "L2", "L3"], 16, 6, "AC", None),
        ("NL*CPO*E3", "1"): ("NL*CPO*E3", "main", ["L1", "L2", "L3"], 72.4, 6, "DC", 50.0),
    }
    assert [u["active_session"] for u in unplaced] == [True, False, False, False]
    assert unplaced[0]["conservative"]["per_phase_a"] == 16.0  # 3.68 kW on one phase
    assert "active_session" in unplaced[0]["conservative"]["flags"]
    assert unplaced[2]["proposal"]["notes"]  # two-phase modelled as three-phase, said so
    site = admin_client.get("/sites/public-carpark").json()
    assert site["unplaced"] == {"connectors": 4, "with_active_session": 1}

    # defaults: the proposal, as a new version
    reply = admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E1/1/place")
    assert (reply.status_code, reply.json()["version"]) == (201, 2), reply.text
    assert reply.json()["unplaced"] == {"connectors": 3, "with_active_session": 0}
    cp = reply.json()["site"]["charge_points"][-1]
    assert cp == {
        "id": "NL*CPO*E1",
        "protection": "main",
        "connectors": [
            {
                "id": "NL*CPO*E1-1",
                "evse_uid": "NL*CPO*E1",
                "connector_id": "1",
                "phases": ["L1"],
                "max_current_a": 16,
                "min_current_a": 6,
            }
        ],
    }
    # overrides; then the EVSE's second connector joins the charge point its first one is on
    reply = admin_client.post(
        "/sites/public-carpark/unplaced/NL*CPO*E2/1/place",
        json={"protection": "feeder", "phases": ["L2", "L3", "L1"], "site_connector_id": "e2-a"},
    )
    assert reply.status_code == 201, reply.text
    reply = admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E2/2/place")
    e2 = next(c for c in reply.json()["site"]["charge_points"] if c["id"] == "NL*CPO*E2")
    assert e2["protection"] == "feeder"
    assert [(c["id"], c["phases"]) for c in e2["connectors"]] == [
        ("e2-a", ["L2", "L3", "L1"]),
        ("NL*CPO*E2-2", ["L1", "L2", "L3"]),
    ]

    # refusals store nothing
    versions = len(admin_client.get("/sites/public-carpark/versions").json())
    reply = admin_client.post(
        "/sites/public-carpark/unplaced/NL*CPO*E3/1/place", json={"protection": "ghost"}
    )
    assert reply.status_code == 422
    assert reply.json()["problems"][0]["element_id"] == "NL*CPO*E3"
    assert admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E1/1/place").status_code == 404
    assert admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E4/1/place").status_code == 404
    reply = admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E3/1/place", json={"phases": "L1"})
    assert reply.status_code == 422
    for wrong in ({"max_current_a": "16"}, {"min_current_a": True}):  # JSON types, not coerced
        reply = admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E3/1/place", json=wrong)
        assert reply.status_code == 422 and next(iter(wrong)) in reply.text, reply.text
    assert len(admin_client.get("/sites/public-carpark/versions").json()) == versions

    assert admin_client.post("/sites/public-carpark/unplaced/NL*CPO*E3/1/place").status_code == 201
    assert admin_client.get("/sites/public-carpark/unplaced").json()["unplaced"] == []
    assert admin_client.get("/sites/public-carpark").json()["unplaced"]["connectors"] == 0
    changes = [(e.site_id, e.version) for e in events if isinstance(e, SiteChanged)]
    assert changes == [("public-carpark", v) for v in range(1, 6)]
