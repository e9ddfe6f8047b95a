"""The editor's forms over real HTTP (no browser): import and export, unplaced EVSEs, refusals."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from ems.admin.users import create_user
from ems.sites import get_site, import_site, list_sites, list_versions
from tests.conftest import RunningEms
from tests.support.ocpi_objects import evse, location
from tests.ui.conftest import office_site

PASSWORD = "a long enough test password"


@pytest.fixture
def admin(ems: RunningEms) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    """A logged-in browser session and the htmx headers (CSRF token) its pages carry."""
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


def move(client: httpx.Client, headers: dict[str, str], **form: str) -> httpx.Response:
    return client.post("/admin/sites/office-pv/move", data=form, headers=headers)


def test_a_move_needs_the_csrf_token(ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]) -> None:
    client, headers = admin
    import_site(ems.ctx, office_site())
    form = {"kind": "charge_point", "id": "cp1", "to_kind": "protection", "to": "zedbox2"}
    reply = move(client, {"HX-Request": "true"}, **form)
    assert reply.status_code == 403 and "CSRF" in reply.text
    reply = move(client, {**headers, "X-CSRF-Token": "forged" * 8}, **form)
    assert reply.status_code == 403
    assert get_site(ems.ctx, "office-pv").version == 1


def test_a_move_is_saved_as_a_version_saying_what_moved(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = admin
    import_site(ems.ctx, office_site())
    reply = move(client, headers, kind="charge_point", id="cp1", to_kind="protection", to="zedbox2")
    assert reply.status_code == 200 and reply.headers["HX-Trigger"] == "site-changed"
    assert "Moved charge point cp1 under zedbox2 (version 2)." in reply.text
    assert 'data-testid="panel-charge_point-cp1"' in reply.text
    stored = get_site(ems.ctx, "office-pv")
    assert (stored.version, stored.author, stored.comment) == (2, "admin", "moved cp1 under zedbox2")
    assert stored.site.charge_points[0].protection == "zedbox2"

    reply = move(client, headers, kind="protection", id="zedbox1", to_kind="grid", to="")
    assert reply.status_code == 200 and "under the grid connection (version 3)" in reply.text
    assert get_site(ems.ctx, "office-pv").site.protections[2].parent is None
    reply = move(client, headers, kind="protection", id="zedbox1", to_kind="grid", to="")
    assert reply.status_code == 200 and "No change" in reply.text
    assert get_site(ems.ctx, "office-pv").version == 3


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        (
            {"kind": "charge_point", "id": "cp99", "to": "main"},
            404,
            "no charge point &#39;cp99&#39; in this version",
        ),
        ({"kind": "breaker", "id": "main", "to": "ibst"}, 404, "no breaker &#39;main&#39;"),
        ({"kind": "protection", "id": "ibst", "to": "zedbox1"}, 422, "in its own subtree"),
        ({"kind": "protection", "id": "main", "to": "main"}, 422, "cannot be its own parent"),
        ({"kind": "connector", "id": "cp1-1", "to": "zedbox1"}, 422, "belongs to its charge point"),
        ({"kind": "load", "id": "building", "to": "nowhere"}, 422, "unknown protection &#39;nowhere&#39;"),
        ({"kind": "load", "id": "building", "to_kind": "grid"}, 422, "hangs under a protection"),
        (
            {"kind": "load", "id": "building", "to_kind": "charge_point", "to": "cp1"},
            422,
            "not a charge point",
        ),
    ],
)
def test_a_move_that_cannot_be_made_is_refused_with_a_message_and_stores_nothing(
    ems: RunningEms,
    admin: tuple[httpx.Client, dict[str, str]],
    form: dict[str, str],
    status: int,
    message: str,
) -> None:
    client, headers = admin
    import_site(ems.ctx, office_site())
    reply = move(client, headers, **{"to_kind": "protection", **form})
    assert reply.status_code == status
    assert "HX-Trigger" not in reply.headers
    assert 'data-testid="panel-problems"' in reply.text and message in reply.text
    assert [v.version for v in list_versions(ems.ctx, "office-pv")] == [1]


def test_versions_say_the_zone_and_a_diff_lists_the_changes(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, headers = admin
    import_site(ems.ctx, office_site())
    move(client, headers, kind="charge_point", id="cp1", to_kind="protection", to="zedbox2")
    card = client.get("/admin/sites/office-pv/versions").text
    line = card.split('data-testid="version-2">', 1)[1].split("</li>", 1)[0]
    assert re.search(
        r"v2 · \d{4}-\d\d-\d\d \d\d:\d\d Europe/Paris \(CES?T\) · by admin · moved cp1 under zedbox2", line
    )
    assert 'data-testid="compare-form"' in card

    page = client.get("/admin/sites/office-pv/diff", params={"from": 1, "to": 2})
    assert page.status_code == 200 and "<html" in page.text  # a page of its own without htmx
    assert "charge point cp1: under ibst → zedbox2" in page.text
    fragment = client.get("/admin/sites/office-pv/diff?from=2&to=1", headers={"HX-Request": "true"})
    assert "<html" not in fragment.text and "charge point cp1: under zedbox2 → ibst" in fragment.text
    assert client.get("/admin/sites/office-pv/diff?from=1&to=7").status_code == 404
    assert client.get("/admin/sites/office-pv/diff?from=1&to=x").status_code == 422
