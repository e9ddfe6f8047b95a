"""A group is one planning unit: an event on any member site plans the whole group jointly,
each site's plan is stored and dispatched as its own with the limits in force recorded, a new
limit from outside re-plans the group at once, and a site outside any group plans as before."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ems import sites
from ems.planning.demands import Claim
from ems.planning.planner import PlannerSettings
from ems.sites.groups import delete_group, put_group, put_limit
from ems.store.planning import PlanRecord
from grid_models.group import GROUP_TOLERANCE_KW
from tests.conftest import RunningEms
from tests.ems.planning.test_planner import Loop, running_loop, stamp, start, wait_for

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CAMPUS = {"id": "campus", "name": "two sites, one contract", "sites": ["office-pv", "public-carpark"]}


def _dso_limit(kw: float, limit_id: str = "dso-now") -> dict[str, Any]:
    return {
        "id": limit_id,
        "source": "dso",
        "max_import_kw": [{"start": stamp(-60), "value": kw}],
        "valid_from": stamp(-60),
        "valid_until": stamp(2 * 3600),
    }


@pytest.fixture
def loop(ems: RunningEms) -> Iterator[Loop]:
    with running_loop(ems, PlannerSettings(min_current=False)) as running:
        sites.import_site(ems.ctx, json.loads((EXAMPLES / "sites" / "public-carpark.json").read_text()))
        yield running


def _latest(loop: Loop, site_id: str) -> PlanRecord:
    with loop.ems.ctx.db() as db:
        plan = db.scalars(
            select(PlanRecord).where(PlanRecord.site_id == site_id).order_by(PlanRecord.id.desc()).limit(1)
        ).first()
    assert plan is not None
    return plan


def _plan_count(loop: Loop) -> int:
    with loop.ems.ctx.db() as db:
        return len(db.scalars(select(PlanRecord.id)).all())


def test_a_group_is_planned_jointly_and_a_new_limit_replans_it(loop: Loop) -> None:
    put_group(loop.ems.ctx, "campus", CAMPUS)
    assert loop.planner.unit_of("office-pv") == loop.planner.unit_of("public-carpark") == "group:campus"
    start(loop, "office-1", "FR*INE*E0001", need_kwh=30.0, stay_s=3 * 3600)
    start(loop, "carpark-1", "ES*BCN*E0001", need_kwh=20.0, stay_s=3 * 3600)
    wait_for(lambda: bool(loop.receiver.profiles_for("office-1") and loop.receiver.profiles_for("carpark-1")))
    # an event on the office plans the car park too, in the same group plan
    office, carpark = _latest(loop, "office-pv"), _latest(loop, "public-carpark")
    assert office.result["group_limits"]["group_id"] == "campus"
    assert office.result["group_limits"] == carpark.result["group_limits"]

    sent_before = {s: len(loop.receiver.profiles_for(s)) for s in ("office-1", "carpark-1")}
    put_limit(loop.ems.ctx, "campus", _dso_limit(6.0))
    wait_for(lambda: all(len(loop.receiver.profiles_for(s)) > n for s, n in sent_before.items()))
    wait_for(lambda: "dso-now" in _latest(loop, "office-pv").result["group_limits"]["sources"])
    office, carpark = _latest(loop, "office-pv"), _latest(loop, "public-carpark")
    record = office.result["group_limits"]
    assert office.result["group_limits"] == carpark.result["group_limits"]
    node = record["nodes"]["campus"]
    assert node["import_limit_ids"][0] == "dso-now" and node["max_import_kw"][0] == 6.0
    assert record["sources"]["dso-now"] == "dso"
    n = len(office.result["steps"])
    # what both sites plan to import, step by step, stays under the group's limit
    for k in range(min(n, len(carpark.result["steps"]))):
        total = office.result["grid_import_kw"][k] + carpark.result["grid_import_kw"][k]
        assert total <= 6.0 + GROUP_TOLERANCE_KW, (k, total)
    assert max(node["import_kw"]) <= 6.0 + GROUP_TOLERANCE_KW
    # the planned EV power actually shrank to fit: both cars together under 6 kW at the start
    ev_kw = sum(
        p.result["sessions"][s]["power_kw"][0] for p, s in ((office, "office-1"), (carpark, "carpark-1"))
    )
    assert 0.0 < ev_kw <= 6.0 + GROUP_TOLERANCE_KW


def test_a_claim_of_the_group_unit_plans_every_member(loop: Loop) -> None:
    loop.planner.stop()  # plan by hand only
    put_group(loop.ems.ctx, "campus", CAMPUS)
    before = _plan_count(loop)
    plan_id = loop.planner.plan_claimed(Claim("group:campus", ("test",), None))
    assert plan_id is not None and _plan_count(loop) == before + 2
    assert {_latest(loop, s).trigger for s in ("office-pv", "public-carpark")} == {"test"}
    # a site's own stale unit id is planned with its group too
    loop.planner.plan_claimed(Claim("office-pv", ("stale",), None))
    assert _plan_count(loop) == before + 4


def test_a_site_outside_any_group_and_after_the_group_is_deleted_plans_alone(loop: Loop) -> None:
    loop.planner.stop()
    loop.planner.plan_site("office-pv", "test")
    assert "group_limits" not in _latest(loop, "office-pv").result
    put_group(loop.ems.ctx, "campus", CAMPUS)
    loop.planner.plan_site("office-pv", "test")
    assert "group_limits" in _latest(loop, "public-carpark").result
    delete_group(loop.ems.ctx, "campus")
    assert loop.planner.unit_of("office-pv") == "office-pv"
    before = _plan_count(loop)
    loop.planner.plan_site("office-pv", "test")
    assert _plan_count(loop) == before + 1 and "group_limits" not in _latest(loop, "office-pv").result


def test_a_deleted_member_site_leaves_the_group_plan(loop: Loop) -> None:
    loop.planner.stop()
    put_group(loop.ems.ctx, "campus", CAMPUS)
    sites.delete_site(loop.ems.ctx, "public-carpark")
    before = _plan_count(loop)
    assert set(loop.planner.plan_group("campus", "test")) == {"office-pv"}
    assert _plan_count(loop) == before + 1


def test_a_group_plan_is_stored_whole_or_not_at_all(loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while the second site's plan is written (a crash, a lost connection) leaves
    neither site on the new joint plan: the group's plans go in one transaction."""
    loop.planner.stop()  # plan by hand only
    put_group(loop.ems.ctx, "campus", CAMPUS)
    loop.planner.plan_group("campus", "test")
    before = _plan_count(loop)
    real_write = loop.planner._write_plan
    written: list[str] = []

    def crash_on_the_second_site(db: Any, site_id: str, *args: Any) -> tuple[int, set[int]]:
        written.append(site_id)
        if len(written) == 2:
            raise ConnectionError("the database went away while the group's plans were written")
        return real_write(db, site_id, *args)

    monkeypatch.setattr(loop.planner, "_write_plan", crash_on_the_second_site)
    with pytest.raises(ConnectionError):
        loop.planner.plan_group("campus", "crash")
    assert len(written) == 2 and _plan_count(loop) == before  # the first site's plan rolled back too
    monkeypatch.undo()
    assert set(loop.planner.plan_group("campus", "retry")) == {"office-pv", "public-carpark"}
    assert _plan_count(loop) == before + 2
    assert {_latest(loop, s).trigger for s in ("office-pv", "public-carpark")} == {"retry"}
