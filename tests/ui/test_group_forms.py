"""The group pages' forms over real HTTP (no browser): a group created, changed, limited and
deleted from the page is what the JSON API then shows; a form without the session's CSRF
token, or with bad input, is refused whole with every problem named and stores nothing."""

from __future__ import annotations

import html
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ems.planning.planner import Planner, PlannerSettings
from ems.sites import import_site
from ems.store.planning import PlanRecord
from tests.conftest import RunningEms
from tests.ui.conftest import REPO
from tests.ui.test_editor_forms import admin

__all__ = ["admin"]  # the logged-in page session, a fixture

Admin = tuple[httpx.Client, dict[str, str]]
SITES = ("office-pv", "public-carpark", "depot")


@pytest.fixture
def api(ems: RunningEms, admin_client: httpx.Client) -> httpx.Client:
    """The admin JSON API, which must show whatever the page stored; three stored sites."""
    for name in SITES:
        import_site(ems.ctx, json.loads((REPO / "examples" / "sites" / f"{name}.json").read_text()))
    return admin_client


def _form(headers: dict[str, str]) -> dict[str, str]:
    """A plain form post (no htmx), CSRF token in the header as a page's fetch would send it."""
    return {"X-CSRF-Token": headers["X-CSRF-Token"]}


def _new_group(client: httpx.Client, headers: dict[str, str], **fields: Any) -> httpx.Response:
    return client.post("/admin/groups", data=fields, headers=_form(headers))


def _problems(reply: httpx.Response) -> list[str]:
    items = re.findall(r"<li>(.*?)</li>", reply.text.split('class="problems"', 1)[-1].split("</ul>", 1)[0])
    return [html.unescape(item) for item in items]


def test_forms_without_the_sessions_csrf_token_are_refused(
    ems: RunningEms, admin: Admin, api: httpx.Client
) -> None:
    client, _headers = admin
    fields = {"id": "campus", "name": "Campus", "sites": ["office-pv", "public-carpark"]}
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        reply = client.post("/admin/groups", data=fields, headers=headers)
        assert reply.status_code == 403 and "Form expired" in reply.text
    assert api.get("/groups").json() == []
    api.put("/groups/campus", json={"id": "campus", "name": "", "sites": ["office-pv"]})
    for path in ("", "/limits", "/limits/withdraw", "/delete"):
        reply = client.post(f"/admin/groups/campus{path}", data={"name": "x", "limit_id": "a"})
        assert reply.status_code == 403, path
    assert api.get("/groups/campus").json()["group"] == {"id": "campus", "name": "", "sites": ["office-pv"]}


def test_a_new_group_from_the_page_is_stored_as_the_api_shows_it(admin: Admin, api: httpx.Client) -> None:
    client, headers = admin
    page = client.get("/admin/groups").text
    for site in SITES:
        assert f'name="sites" value="{site}"' in page  # every stored site is offered
    reply = _new_group(
        client,
        headers,
        id="campus",
        name="Campus",
        sites=["office-pv", "public-carpark"],
        parent="",
        cap_kw="60",
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/groups/campus?done=created"
    assert api.get("/groups/campus").json()["group"] == {
        "id": "campus",
        "name": "Campus",
        "sites": ["office-pv", "public-carpark"],
        "limits": [{"id": "cap-kw", "source": "contract", "max_import_kw": 60}],
    }
    reply = _new_group(client, headers, id="depot-yard", name="", sites=["depot"], parent="campus")
    assert reply.status_code == 303
    tree = api.get("/groups/campus").json()["group"]
    assert tree["groups"] == [{"id": "depot-yard", "name": "", "sites": ["depot"]}]
    listed = client.get("/admin/groups").text
    assert 'data-testid="open-group-depot-yard"' in listed and "in campus" in listed
    shown = client.get("/admin/groups/campus?done=created").text
    assert "Group created" in shown and 'value="60"' in shown


def test_a_bad_new_group_is_refused_whole_with_every_problem(admin: Admin, api: httpx.Client) -> None:
    client, headers = admin
    assert _new_group(client, headers, id="campus", name="", sites=["office-pv"]).status_code == 303
    reply = _new_group(
        client,
        headers,
        id="campus",
        name="",
        sites=["nowhere", "public-carpark"],
        parent="elsewhere",
        cap_kw="lots",
    )
    assert reply.status_code == 422
    problems = _problems(reply)
    for expected in (
        "group 'campus' id: group id already used in group 'campus'",
        "group 'campus' parent: unknown group 'elsewhere'",
        "group 'campus' sites: unknown site 'nowhere'",
        "group_limit 'cap-kw' max_import_kw: must be a number, got 'lots'",
    ):
        assert expected in problems, (expected, problems)
    assert 'value="lots"' in reply.text  # the form comes back as posted, to be corrected
    reply = _new_group(client, headers, id="other", name="", sites=["office-pv"], cap_kw="-5")
    assert reply.status_code == 422
    assert set(_problems(reply)) == {
        "group 'other' sites: site 'office-pv' is already in group 'campus'",
        "group_limit 'cap-kw' max_import_kw: must be >= 0, got -5",
    }
    reply = _new_group(client, headers, id="", name="", sites=[])
    assert reply.status_code == 422 and "group '(group)' id: must be a non-empty string" in _problems(reply)
    assert [g["group_id"] for g in api.get("/groups").json()] == ["campus"]
    assert api.get("/groups/campus").json()["group"] == {"id": "campus", "name": "", "sites": ["office-pv"]}


def test_the_group_page_edits_members_caps_and_parent(admin: Admin, api: httpx.Client) -> None:
    client, headers = admin
    api.put(
        "/groups/district",
        json={
            "id": "district",
            "name": "District",
            "sites": ["depot"],
            "groups": [{"id": "feeder", "name": "", "sites": ["office-pv"]}],
            "limits": [
                {"id": "substation", "source": "dso", "max_import_kw": 250},
                {
                    "id": "dso-flex",
                    "source": "dso",
                    "max_import_kw": [{"start": "2026-06-03T17:00:00+02:00", "value": 90}],
                },
            ],
        },
    )
    page = client.get("/admin/groups/district").text
    assert 'value="250"' in page  # the file's constant kW limit is the page's cap
    feeder_page = client.get("/admin/groups/feeder")
    assert feeder_page.status_code == 200 and 'data-testid="open-parent"' in feeder_page.text
    feeder_live = client.get("/admin/groups/feeder/live").text
    assert 'data-testid="group-site-office-pv"' in feeder_live and "group-site-depot" not in feeder_live
    assert client.get("/admin/groups/nowhere").status_code == 404
    assert re.search(r'<option value="feeder"', page) is None  # not under one of its own groups
    edit = {
        "name": "District",
        "sites": ["depot", "public-carpark"],
        "parent": "",
        "cap_kw": "200",
        "cap_a": "125",
        "cap_a_from": "2026-06-03T17:00:00+02:00",
        "cap_a_until": "2026-06-03T19:00:00+02:00",
    }
    reply = client.post("/admin/groups/district", data=edit, headers=_form(headers))
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/groups/district?done=saved"
    stored = api.get("/groups/district").json()["group"]
    assert stored["sites"] == ["depot", "public-carpark"]
    assert stored["groups"] == [{"id": "feeder", "name": "", "sites": ["office-pv"]}]  # kept as stored
    assert stored["limits"] == [
        {"id": "substation", "source": "dso", "max_import_kw": 200},
        {
            "id": "dso-flex",
            "source": "dso",
            "max_import_kw": [{"start": "2026-06-03T17:00:00+02:00", "value": 90}],
        },
        {
            "id": "cap-a",
            "source": "contract",
            "max_current_a": 125,
            "valid_from": "2026-06-03T17:00:00+02:00",
            "valid_until": "2026-06-03T19:00:00+02:00",
        },
    ]
    for parent in ("district", "feeder"):
        reply = client.post("/admin/groups/district", data={**edit, "parent": parent}, headers=_form(headers))
        assert reply.status_code == 422
        assert any("cannot be put under itself" in p for p in _problems(reply))
    reply = client.post(
        "/admin/groups/district",
        data={**edit, "sites": ["depot", "nowhere"], "cap_kw": "x", "cap_a_from": "soon"},
        headers=_form(headers),
    )
    assert reply.status_code == 422
    assert set(_problems(reply)) == {
        "group 'district' sites: unknown site 'nowhere'",
        "group_limit 'substation' max_import_kw: must be a number, got 'x'",
        "group_limit 'cap-a' valid_from: not an ISO 8601 time: 'soon'",
    }
    assert api.get("/groups/district").json()["group"] == stored  # nothing stored

    # the feeder goes to the top with its site, then back under the district
    feeder = {"name": "Feeder", "sites": ["office-pv"], "parent": "", "cap_kw": ""}
    assert client.post("/admin/groups/feeder", data=feeder, headers=_form(headers)).status_code == 303
    assert sorted(g["group_id"] for g in api.get("/groups").json()) == ["district", "feeder"]
    assert api.get("/groups/district").json()["group"]["groups"] == []
    reply = client.post("/admin/groups/feeder", data={**feeder, "parent": "district"}, headers=_form(headers))
    assert reply.status_code == 303
    assert [g["group_id"] for g in api.get("/groups").json()] == ["district"]
    assert api.get("/groups/district").json()["group"]["groups"] == [
        {"id": "feeder", "name": "Feeder", "sites": ["office-pv"]}
    ]


def test_a_limit_from_outside_set_and_withdrawn_on_the_page(admin: Admin, api: httpx.Client) -> None:
    client, headers = admin
    api.put("/groups/campus", json={"id": "campus", "name": "", "sites": ["office-pv", "public-carpark"]})
    rows = "start,limit_kw\n2026-06-03T17:00:00+02:00,12\n2026-06-03T18:00:00+02:00,16\n"
    limit = {
        "limit_id": "dso-evening",
        "limit_source": "dso",
        "limit_quantity": "max_import_kw",
        "limit_csv": rows,
        "limit_until": "2026-06-03T19:00:00+02:00",
    }
    reply = client.post("/admin/groups/campus/limits", data=limit, headers=_form(headers))
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/groups/campus?done=limit"
    outside = api.get("/groups/campus").json()["limits_from_outside"]
    assert [o["limit"] for o in outside] == [
        {
            "id": "dso-evening",
            "source": "dso",
            "max_import_kw": [
                {"start": "2026-06-03T17:00:00+02:00", "value": 12.0},
                {"start": "2026-06-03T18:00:00+02:00", "value": 16.0},
            ],
            "valid_until": "2026-06-03T19:00:00+02:00",
        }
    ]
    bad = {
        **limit,
        "limit_source": "openadr3",
        "limit_csv": rows + "2026-06-03T18:30:00+02:00,lots\nlate,4\n",
    }
    reply = client.post("/admin/groups/campus/limits", data=bad, headers=_form(headers))
    assert reply.status_code == 422
    assert set(_problems(reply)) == {
        "group_limit 'dso-evening' line 4: value 'lots' is not a number",
        "group_limit 'dso-evening' max_import_kw[2].start: not an ISO 8601 time: 'late'",
    }
    reply = client.post("/admin/groups/campus/limits", data={**bad, "limit_csv": ""}, headers=_form(headers))
    assert _problems(reply) == [
        "group_limit 'dso-evening' max_import_kw: give a value, or CSV rows start,value"
    ]
    reply = client.post(
        "/admin/groups/campus/limits",
        data={**bad, "limit_csv": "", "limit_value": "9"},
        headers=_form(headers),
    )
    assert _problems(reply) == ["group_limit 'dso-evening' source: limit id already used by source 'dso'"]
    assert [o["limit"]["source"] for o in api.get("/groups/campus").json()["limits_from_outside"]] == ["dso"]

    reply = client.post(
        "/admin/groups/campus/limits/withdraw", data={"limit_id": "dso-evening"}, headers=_form(headers)
    )
    assert reply.status_code == 303 and api.get("/groups/campus").json()["limits_from_outside"] == []
    reply = client.post(
        "/admin/groups/campus/limits/withdraw", data={"limit_id": "dso-evening"}, headers=_form(headers)
    )
    assert reply.status_code == 422
    assert _problems(reply) == ["group 'campus' has no limit 'dso-evening' from outside"]


def test_delete_from_the_page(admin: Admin, api: httpx.Client) -> None:
    client, headers = admin
    api.put(
        "/groups/top",
        json={"id": "top", "name": "", "groups": [{"id": "only", "name": "", "sites": ["depot"]}]},
    )
    reply = client.post("/admin/groups/only/delete", headers=headers)  # htmx, after its confirm
    assert reply.status_code == 200 and "group 'top' sites: no site under this group" in _problems(reply)
    assert api.get("/groups/top").json()["group"]["groups"][0]["id"] == "only"
    reply = client.post("/admin/groups/top/delete", headers=headers)
    assert reply.status_code == 200 and reply.headers["hx-redirect"] == "/admin/groups?done=deleted"
    assert api.get("/groups").json() == []
    assert client.post("/admin/groups/top/delete", headers=headers).status_code == 404


def test_a_change_on_the_page_replans_the_group(ems: RunningEms, admin: Admin, api: httpx.Client) -> None:
    client, headers = admin
    planner = Planner(ems.ctx, settings=PlannerSettings(quiet_s=0.05, max_wait_s=0.3))
    planner.start()
    try:
        _new_group(client, headers, id="campus", name="", sites=["office-pv", "public-carpark"], cap_kw="30")
        now = datetime.now(UTC)
        limit = {
            "limit_id": "dso-now",
            "limit_source": "dso",
            "limit_value": "7",
            "limit_from": (now - timedelta(minutes=1)).isoformat(),
            "limit_until": (now + timedelta(hours=2)).isoformat(),
        }
        assert (
            client.post("/admin/groups/campus/limits", data=limit, headers=_form(headers)).status_code == 303
        )
        deadline = time.monotonic() + 20
        named: set[str] = set()
        while time.monotonic() < deadline and len(named) < 2:
            with ems.ctx.db() as db:
                for plan in db.scalars(select(PlanRecord)):
                    node = ((plan.result.get("group_limits") or {}).get("nodes") or {}).get("campus") or {}
                    if node.get("import_limit_ids", [None])[0] == "dso-now":
                        named.add(plan.site_id)
            time.sleep(0.05)
    finally:
        planner.stop()
    assert named == {"office-pv", "public-carpark"}
    assert api.get("/groups/campus/plan").json()["group_limits"]["nodes"]["campus"]["max_import_kw"][0] == 7
