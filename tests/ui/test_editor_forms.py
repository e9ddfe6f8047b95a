"""The editor's forms over real HTTP (no browser): import and export, unplaced EVSEs, refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from api.ui import auth
from ems.admin.users import create_user
from ems.sites import get_site, import_site, list_sites
from tests.conftest import RunningEms
from tests.support.ocpi_objects import evse, location
from tests.ui.conftest import office_site

PASSWORD = "a long enough test password"


@pytest.fixture
def admin(ems: RunningEms) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A logged-in browser session and the htmx headers (CSRF token) its pages carry."""
    auth.throttle._failures.clear()
    create_user(ems.ctx, "admin", PASSWORD)
    with httpx.Client(base_url=ems.url, timeout=10) as client:
        token = re.findall(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[0]
        client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
        page = client.get("/admin").text
        csrf = re.findall(r'"X-CSRF-Token": "([^"]+)"', page)[0]
        yield client, {"X-CSRF-Token": csrf, "HX-Request": "true"}


def test_import_then_export_gives_the_file_back(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = admin
    data = office_site()
    reply = client.post(
        "/admin/sites/import",
        files={"file": ("office-pv.json", json.dumps(data).encode(), "application/json")},
        headers={"X-CSRF-Token": headers["X-CSRF-Token"]},
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/sites/office-pv"
    exported = client.get("/admin/sites/office-pv/export")
    assert exported.headers["content-disposition"] == 'attachment; filename="office-pv.json"'
    assert exported.json() == get_site(ems.ctx, "office-pv").data
    assert exported.json()["charge_points"] == data["charge_points"]


def test_an_invalid_file_is_refused_whole(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = admin
    bad = office_site()
    bad["protections"][2]["parent"] = "nowhere"  # type: ignore[index]
    bad["protections"][3]["rated_current_a"] = -5  # type: ignore[index]
    for body in (json.dumps(bad).encode(), b"{not json"):
        reply = client.post(
            "/admin/sites/import",
            files={"file": ("site.json", body, "application/json")},
            headers={"X-CSRF-Token": headers["X-CSRF-Token"]},
        )
        assert reply.status_code == 422
        assert 'data-testid="problems"' in reply.text
    assert "unknown parent" in reply.text or "not valid JSON" in reply.text
    assert list_sites(ems.ctx) == []


def test_a_new_site_with_bad_values_names_them(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = admin
    reply = client.post(
        "/admin/sites", data={"id": "s", "max_power_kw": "-3", "rated_current_a": "lots"}, headers=headers
    )
    assert reply.status_code == 422
    assert "max_power_kw" in reply.text and "rated_current_a" in reply.text
    assert list_sites(ems.ctx) == []


def test_a_protection_that_feeds_elements_cannot_be_deleted(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = admin
    import_site(ems.ctx, office_site())
    reply = client.post(
        "/admin/sites/office-pv/delete", params={"kind": "protection", "id": "zedbox2"}, headers=headers
    )
    assert reply.status_code == 200 and "HX-Trigger" not in reply.headers
    assert "still fed by protection" in reply.text and "cp7" in reply.text
    assert get_site(ems.ctx, "office-pv").version == 1
    reply = client.post(
        "/admin/sites/office-pv/delete",
        params={"kind": "connector", "id": "cp9-1", "cp": "cp9"},
        headers=headers,
    )
    assert reply.headers["HX-Trigger"] == "site-changed"
    assert get_site(ems.ctx, "office-pv").site.charge_points[8].connectors == ()


def test_an_unplaced_evse_is_placed_from_the_editor(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]], cpo_client: httpx.Client
) -> None:
    client, headers = admin
    data = office_site()
    data["ocpi_locations"] = [{"country_code": "NL", "party_id": "CPO", "location_id": "LOC1"}]
    import_site(ems.ctx, data)
    reply = cpo_client.put("/ocpi/2.2.1/locations/NL/CPO/LOC1", json=location(evses=[evse("FR*INE*E0099")]))
    assert reply.json()["status_code"] == 1000, reply.text

    page = client.get("/admin/sites/office-pv").text
    assert 'data-testid="unplaced-FR*INE*E0099-1"' in page
    reply = client.post(
        "/admin/sites/office-pv/place",
        params={"evse_uid": "FR*INE*E0099", "connector_id": "1"},
        data={"charge_point_id": "cp99", "protection": "zedbox2", "phase_1": "L3", "max_current_a": "16"},
        headers=headers,
    )
    assert reply.headers["HX-Trigger"] == "site-changed", reply.text
    stored = get_site(ems.ctx, "office-pv")
    cp = next(cp for cp in stored.site.charge_points if cp.id == "cp99")
    assert cp.protection == "zedbox2"
    assert [(c.evse_uid, c.phases, c.max_current_a) for c in cp.connectors] == [("FR*INE*E0099", ("L3",), 16)]
    assert 'data-testid="unplaced' not in client.get("/admin/sites/office-pv/diagram").text


def test_the_diagram_shows_protections_as_a_tree_with_wiring(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, _headers = admin
    import_site(ems.ctx, office_site())
    svg = client.get("/admin/sites/office-pv/diagram").text
    for element in (
        "grid-grid",
        "protection-zedbox1",
        "charge_point-cp5",
        "connector-cp5-1",
        "pv_plant-pv1",
        "load-building",
    ):
        assert f'data-testid="node-{element}"' in svg
    assert "L2-L3-L1" in svg and "63 A" in svg and "35 kWp" in svg
