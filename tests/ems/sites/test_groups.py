"""Stored groups and limits from outside: refused whole with every problem named, a site or a
group id in one group only, a limit replaced by id and source, an event after every change."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.core.events import DomainEvent, GroupChanged
from ems.sites import create_site
from ems.sites.groups import (
    GroupNotFoundError,
    delete_group,
    delete_limit,
    delete_node,
    get_group,
    groups_of_sites,
    groups_stamp,
    list_groups,
    put_group,
    put_limit,
    put_node,
    tree_of,
)
from grid_models.groupfile import GroupValidationError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DSO_LIMIT: dict[str, Any] = {
    "id": "dso-evening",
    "source": "dso",
    "max_import_kw": [{"start": "2026-06-03T17:00:00+02:00", "value": 9}],
    "valid_from": "2026-06-03T17:00:00+02:00",
    "valid_until": "2026-06-03T19:00:00+02:00",
}


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture
def ctx(database_url: str) -> Iterator[EmsContext]:
    """On SQLite and PostgreSQL: several trees change in one transaction, under foreign keys."""
    context = EmsContext.create(Settings(database_url=database_url))
    for name in ("office-pv", "public-carpark", "depot"):
        create_site(context, _json(EXAMPLES / "sites" / f"{name}.json"))
    yield context
    context.close()


@pytest.fixture
def events(ctx: EmsContext) -> list[DomainEvent]:
    seen: list[DomainEvent] = []
    ctx.bus.subscribe(seen.append)
    return seen


def _campus() -> dict[str, Any]:
    return _json(EXAMPLES / "groups" / "campus.json")


def test_a_group_round_trips_and_announces_itself(ctx: EmsContext, events: list[DomainEvent]) -> None:
    stored, created = put_group(ctx, "campus", _campus())
    assert created and stored.data == _campus()
    assert groups_of_sites(ctx) == {"office-pv": "campus", "public-carpark": "campus"}
    assert [e.group_id for e in events if isinstance(e, GroupChanged)] == ["campus"]
    again, created = put_group(ctx, "campus", _campus())
    assert not created and again.updated_at == stored.updated_at
    assert len([e for e in events if isinstance(e, GroupChanged)]) == 1  # the same file: nothing changed
    assert [g.group_id for g in list_groups(ctx)] == ["campus"]


def test_a_bad_group_is_refused_whole_naming_every_problem(ctx: EmsContext) -> None:
    bad = _campus()
    bad["sites"] = ["office-pv", "nowhere"]
    bad["limits"][0]["max_import_kw"] = -3
    with pytest.raises(GroupValidationError) as caught:
        put_group(ctx, "other-id", bad)
    text = str(caught.value)
    assert "unknown site 'nowhere'" in text and ">= 0" in text and "must be 'other-id'" in text
    assert list_groups(ctx) == []


def test_a_site_and_a_group_id_belong_to_one_group_only(ctx: EmsContext) -> None:
    put_group(ctx, "campus", _campus())
    second = {
        "id": "second",
        "name": "",
        "sites": ["public-carpark"],
        "groups": [{"id": "campus", "name": "", "sites": ["depot"]}],
    }
    with pytest.raises(GroupValidationError) as caught:
        put_group(ctx, "second", second)
    text = str(caught.value)
    assert "'public-carpark' is already in group 'campus'" in text
    assert "group id already used in group 'campus'" in text
    second["limits"] = [{"id": "x", "source": "dso", "max_import_kw": "lots"}]  # and a file refused anyway
    with pytest.raises(GroupValidationError) as caught:
        put_group(ctx, "second", second)
    text = str(caught.value)
    assert "must be a number, got 'lots'" in text and "'public-carpark' is already in group 'campus'" in text
    assert [g.group_id for g in list_groups(ctx)] == ["campus"]


def test_a_limit_from_outside_is_replaced_by_id_and_source(
    ctx: EmsContext, events: list[DomainEvent]
) -> None:
    put_group(ctx, "campus", _campus())
    stamp = groups_stamp(ctx)
    stored, created = put_limit(ctx, "campus", DSO_LIMIT)
    assert created and groups_stamp(ctx) != stamp
    lowered = copy.deepcopy(DSO_LIMIT)
    lowered["max_import_kw"][0]["value"] = 6
    stored, created = put_limit(ctx, "campus", lowered)
    assert not created
    planned = stored.planned()
    assert [(lim.id, lim.series[0].value if lim.series else lim.value) for lim in planned.limits] == [
        ("contract-2026", 25),
        ("dso-flex-2026-06-03", 12),
        ("dso-evening", 6),
    ]
    assert len([e for e in events if isinstance(e, GroupChanged)]) == 3
    other_source = {**lowered, "source": "openadr3"}
    with pytest.raises(GroupValidationError, match="already used by source 'dso'"):
        put_limit(ctx, "campus", other_source)
    with pytest.raises(GroupValidationError, match="file"):
        put_limit(ctx, "campus", {**lowered, "id": "contract-2026"})
    with pytest.raises(GroupValidationError, match="required field missing"):
        put_limit(ctx, "campus", {"max_import_kw": 3})
    with pytest.raises(GroupNotFoundError):
        put_limit(ctx, "nowhere", DSO_LIMIT)
    assert get_group(ctx, "campus").outside_limits[0].limit.series[0].value == 6
    # a group file taking the limit's id is refused; without it the limit stays
    clash = _campus()
    clash["limits"].append({"id": "dso-evening", "source": "dso", "max_import_kw": 1})
    with pytest.raises(GroupValidationError, match="has this id"):
        put_group(ctx, "campus", clash)
    delete_limit(ctx, "campus", "dso-evening")
    assert get_group(ctx, "campus").outside_limits == ()


def test_limits_on_a_nested_group_go_with_it(ctx: EmsContext) -> None:
    tree = {
        "id": "district",
        "name": "",
        "sites": ["depot"],
        "groups": [{"id": "feeder", "name": "", "sites": ["office-pv", "public-carpark"]}],
    }
    put_group(ctx, "district", tree)
    stored, _ = put_limit(ctx, "feeder", DSO_LIMIT)
    feeder = stored.planned().find("feeder")
    assert feeder is not None and [lim.id for lim in feeder.limits] == ["dso-evening"]
    flat = {"id": "district", "name": "", "sites": ["depot", "office-pv"]}
    stored, _ = put_group(ctx, "district", flat)
    assert stored.outside_limits == ()  # the feeder is gone, and its limit with it
    assert groups_of_sites(ctx) == {"depot": "district", "office-pv": "district"}
    delete_group(ctx, "district")
    assert groups_of_sites(ctx) == {} and list_groups(ctx) == []


def _cap(kw: Any) -> dict[str, Any]:
    return {"id": "cap-kw", "source": "contract", "max_import_kw": kw}


def test_the_page_creates_a_group_and_one_under_it(ctx: EmsContext, events: list[DomainEvent]) -> None:
    stored, created = put_node(
        ctx,
        "campus",
        {"id": "campus", "name": "Campus", "sites": ["office-pv"], "limits": [_cap(25)]},
        None,
        create=True,
    )
    assert created and stored.data == {
        "id": "campus",
        "name": "Campus",
        "sites": ["office-pv"],
        "limits": [_cap(25)],
    }
    stored, created = put_node(
        ctx, "carpark", {"id": "carpark", "name": "", "sites": ["public-carpark"]}, "campus", create=True
    )
    assert created and stored.group_id == "campus"
    assert stored.group.site_ids() == ("office-pv", "public-carpark")
    assert groups_of_sites(ctx) == {"office-pv": "campus", "public-carpark": "campus"}
    assert [e.group_id for e in events if isinstance(e, GroupChanged)] == ["campus", "campus"]
    assert tree_of(ctx, "carpark").group_id == "campus"
    with pytest.raises(GroupNotFoundError):
        tree_of(ctx, "nowhere")


def test_a_bad_new_group_is_refused_whole_naming_every_problem(ctx: EmsContext) -> None:
    put_node(ctx, "campus", {"id": "campus", "name": "", "sites": ["office-pv"]}, None, create=True)
    stamp = groups_stamp(ctx)
    bad = {"id": "campus", "name": "", "sites": ["nowhere", "office-pv"], "limits": [_cap("lots")]}
    with pytest.raises(GroupValidationError) as caught:
        put_node(ctx, "campus", bad, "elsewhere", create=True)
    text = str(caught.value)
    for expected in (
        "group 'campus' id: group id already used in group 'campus'",
        "group 'campus' parent: unknown group 'elsewhere'",
        "unknown site 'nowhere'",
        "max_import_kw: must be a number, got 'lots'",
    ):
        assert expected in text, (expected, text)
    with pytest.raises(GroupValidationError) as caught:
        put_node(ctx, "depot", {"id": "depot", "name": "", "sites": ["office-pv"]}, None, create=True)
    assert "site 'office-pv' is already in group 'campus'" in str(caught.value)
    with pytest.raises(GroupValidationError, match="no site under this group"):
        put_node(ctx, "empty", {"id": "empty", "name": "", "sites": []}, "campus", create=True)
    with pytest.raises(GroupNotFoundError):
        put_node(ctx, "nowhere", {"id": "nowhere", "name": "", "sites": ["depot"]}, None, create=False)
    assert groups_stamp(ctx) == stamp
    assert get_group(ctx, "campus").data == {"id": "campus", "name": "", "sites": ["office-pv"]}


def test_a_group_is_not_put_under_itself(ctx: EmsContext) -> None:
    tree = {
        "id": "district",
        "name": "",
        "sites": ["depot"],
        "groups": [{"id": "feeder", "name": "", "sites": ["office-pv"]}],
    }
    put_group(ctx, "district", tree)
    for parent in ("district", "feeder"):
        with pytest.raises(GroupValidationError, match="cannot be put under itself"):
            put_node(
                ctx, "district", {"id": "district", "name": "", "sites": ["depot"]}, parent, create=False
            )
    with pytest.raises(GroupValidationError, match="cannot be put under itself"):
        put_node(ctx, "feeder", {"id": "feeder", "name": "", "sites": ["office-pv"]}, "feeder", create=False)
    assert get_group(ctx, "district").data == tree


def test_a_group_moves_between_trees_with_its_groups_and_limits(
    ctx: EmsContext, events: list[DomainEvent]
) -> None:
    put_group(
        ctx,
        "district",
        {
            "id": "district",
            "name": "",
            "sites": ["depot"],
            "groups": [
                {
                    "id": "feeder",
                    "name": "",
                    "sites": ["office-pv"],
                    "groups": [{"id": "street", "name": "", "sites": ["public-carpark"]}],
                }
            ],
        },
    )
    put_limit(ctx, "feeder", DSO_LIMIT)
    events.clear()
    feeder = {"id": "feeder", "name": "Feeder", "sites": ["office-pv"], "limits": [_cap(40)]}
    stored, created = put_node(ctx, "feeder", feeder, None, create=False)  # to the top, with its street
    assert not created and stored.group_id == "feeder"
    assert stored.group.site_ids() == ("office-pv", "public-carpark")
    assert [s.limit.id for s in stored.outside_limits] == ["dso-evening"]
    assert get_group(ctx, "district").data["groups"] == []
    assert groups_of_sites(ctx) == {"depot": "district", "office-pv": "feeder", "public-carpark": "feeder"}
    assert sorted(e.group_id for e in events if isinstance(e, GroupChanged)) == ["district", "feeder"]

    events.clear()
    stored, _ = put_node(ctx, "feeder", feeder, "district", create=False)  # a whole tree under another
    assert stored.group_id == "district" and [g.id for g in stored.group.walk()] == [
        "district",
        "feeder",
        "street",
    ]
    assert [(s.group_id, s.limit.id) for s in stored.outside_limits] == [("feeder", "dso-evening")]
    assert [g.group_id for g in list_groups(ctx)] == ["district"]
    changes = sorted((e.group_id, e.deleted) for e in events if isinstance(e, GroupChanged))
    assert changes == [("district", False), ("feeder", True)]

    stored_again, _ = put_node(ctx, "feeder", feeder, "district", create=False)
    assert stored_again.updated_at == stored.updated_at  # the same: nothing written

    left = delete_node(ctx, "street")
    assert left is not None and left.group.site_ids() == ("depot", "office-pv")
    assert groups_of_sites(ctx) == {"depot": "district", "office-pv": "district"}
    assert delete_node(ctx, "district") is None and list_groups(ctx) == []
    with pytest.raises(GroupNotFoundError):
        delete_node(ctx, "feeder")


def test_deleting_a_group_that_leaves_its_parent_without_sites_is_refused(ctx: EmsContext) -> None:
    tree = {"id": "top", "name": "", "groups": [{"id": "only", "name": "", "sites": ["depot"]}]}
    put_group(ctx, "top", tree)
    with pytest.raises(GroupValidationError, match="group 'top' sites: no site under this group"):
        delete_node(ctx, "only")
    assert get_group(ctx, "top").data == tree
