"""The admin API of groups over real HTTP: a group file and limits from outside stored or
refused whole with every problem named, behind the admin token, and a new limit re-planning
the group at once (a plan of every member site that names the limit)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ems.planning.planner import Planner, PlannerSettings
from ems.store.planning import PlanRecord
from tests.conftest import RunningEms

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CAMPUS: dict[str, Any] = {"id": "campus", "name": "two sites", "sites": ["office-pv", "public-carpark"]}


def _at(offset_s: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).isoformat()


def _dso(kw: float) -> dict[str, Any]:
    return {
        "id": "dso-evening",
        "source": "dso",
        "max_import_kw": [{"start": _at(-60), "value": kw}],
        "valid_from": _at(-60),
        "valid_until": _at(7200),
    }


@pytest.fixture
def admin(admin_client: httpx.Client) -> Iterator[httpx.Client]:
    for name in ("office-pv", "public-carpark"):
        reply = admin_client.post(
            "/sites", json=json.loads((EXAMPLES / "sites" / f"{name}.json").read_text())
        )
        assert reply.status_code == 201, reply.text
    yield admin_client


def test_groups_need_the_admin_token(ems: RunningEms) -> None:
    with httpx.Client(base_url=ems.url, timeout=10) as anonymous:
        assert anonymous.get("/api/admin/groups").status_code == 401
        assert anonymous.put("/api/admin/groups/campus", json=CAMPUS).status_code == 401
        assert anonymous.put("/api/admin/groups/campus/limits", json=_dso(5)).status_code == 401


def test_a_group_is_stored_listed_and_refused_whole(admin: httpx.Client) -> None:
    reply = admin.put("/groups/campus", json=CAMPUS)
    assert reply.status_code == 201, reply.text
    assert reply.json()["group"] == CAMPUS
    assert admin.put("/groups/campus", json=CAMPUS).status_code == 200
    assert [g["group_id"] for g in admin.get("/groups").json()] == ["campus"]
    assert admin.get("/groups/campus").json()["group"]["sites"] == ["office-pv", "public-carpark"]

    bad = {**CAMPUS, "sites": ["office-pv", "nowhere"], "limits": [{"id": "x", "source": "contract"}]}
    reply = admin.put("/groups/campus", json=bad)
    assert reply.status_code == 422
    body = reply.json()
    assert body["detail"].startswith("invalid group (2 problem(s))")
    assert {p["message"] for p in body["problems"]} == {
        "unknown site 'nowhere'",
        "exactly one of max_import_kw and max_current_a is required",
    }
    assert admin.get("/groups/campus").json()["group"] == CAMPUS  # nothing stored
    assert admin.get("/groups/nowhere").status_code == 404
    assert admin.put("/groups/other", json={**CAMPUS, "id": "other"}).status_code == 422  # sites taken


def test_a_limit_from_outside_is_stored_replaced_and_withdrawn(admin: httpx.Client) -> None:
    admin.put("/groups/campus", json=CAMPUS)
    reply = admin.put("/groups/campus/limits", json=_dso(9))
    assert reply.status_code == 201, reply.text
    reply = admin.put("/groups/campus/limits", json=_dso(6))
    assert reply.status_code == 200
    limits = reply.json()["limits_from_outside"]
    assert len(limits) == 1 and limits[0]["limit"]["max_import_kw"][0]["value"] == 6
    assert reply.json()["planned"]["limits"][0]["id"] == "dso-evening"

    reply = admin.put("/groups/campus/limits", json={**_dso(6), "source": "openadr3"})
    assert reply.status_code == 422 and "already used by source 'dso'" in reply.json()["detail"]
    reply = admin.put(
        "/groups/campus/limits", json={"id": "x", "source": "dso", "max_import_kw": -1, "valid_from": "soon"}
    )
    assert reply.status_code == 422
    assert len(reply.json()["problems"]) == 2
    assert admin.put("/groups/nowhere/limits", json=_dso(6)).status_code == 404

    assert admin.delete("/groups/campus/limits/dso-evening").json()["limits_from_outside"] == []
    assert admin.delete("/groups/campus/limits/dso-evening").status_code == 404
    assert admin.delete("/groups/campus").status_code == 204
    assert admin.get("/groups").json() == []


def test_a_new_limit_replans_the_group_at_once(ems: RunningEms, admin: httpx.Client) -> None:
    planner = Planner(ems.ctx, settings=PlannerSettings(quiet_s=0.05, max_wait_s=0.3))
    planner.start()
    try:
        admin.put("/groups/campus", json=CAMPUS)
        admin.put("/groups/campus/limits", json=_dso(7))
        deadline = time.monotonic() + 20
        named: dict[str, PlanRecord] = {}
        while time.monotonic() < deadline and len(named) < 2:
            with ems.ctx.db() as db:
                for plan in db.scalars(select(PlanRecord).order_by(PlanRecord.id)):
                    if "dso-evening" in (plan.result.get("group_limits") or {}).get("sources", {}):
                        named[plan.site_id] = plan
            time.sleep(0.05)
    finally:
        planner.stop()
    assert set(named) == {"office-pv", "public-carpark"}
    node = named["office-pv"].result["group_limits"]["nodes"]["campus"]
    assert node["max_import_kw"][0] == 7 and node["import_limit_ids"][0] == "dso-evening"
    reply = admin.get("/groups/campus/plan").json()
    assert reply["group_limits"]["nodes"]["campus"]["import_limit_ids"][0] == "dso-evening"
    assert set(reply["site_import_kw"]) == {"office-pv", "public-carpark"}
