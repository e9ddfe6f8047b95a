"""The element-level diff of two site files, and moving an element under another protection."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.sites import (
    Change,
    SiteNotFoundError,
    diff_site_files,
    diff_versions,
    get_site,
    import_site,
    list_versions,
    move_element,
)
from grid_models.validation import SiteValidationError

OFFICE = Path(__file__).resolve().parents[3] / "examples" / "sites" / "office-pv.json"


def office() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OFFICE.read_text())
    return data


def texts(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [d.text for d in diff_site_files(old, new)]


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[EmsContext]:
    context = EmsContext.create(Settings(database_url=f"sqlite:///{tmp_path / 'ems.db'}"))
    yield context
    context.close()


def test_the_same_file_has_no_difference() -> None:
    assert diff_site_files(office(), office()) == []


def test_a_move_is_one_difference_naming_both_parents() -> None:
    new = office()
    new["charge_points"][0]["protection"] = "zedbox2"
    new["protections"][1]["parent"] = None
    (cp, protection) = sorted(diff_site_files(office(), new), key=lambda d: d.element_kind)
    assert (cp.change, cp.element_id, cp.old, cp.new) == ("moved", "cp1", "ibst", "zedbox2")
    assert cp.text == "charge point cp1: under ibst → zedbox2"
    assert protection.text == "protection ibst: under main → the grid connection"


def test_site_grid_and_element_fields_show_old_and_new_values() -> None:
    new = office()
    new["timezone"] = "UTC"
    new["grid_connection"]["max_power_kw"] = 50
    new["protections"][2]["rated_current_a"] = 40
    new["charge_points"][1]["connectors"][0]["phases"] = ["L1"]
    new["loads"][0]["note"] = "added by hand"  # a field the EMS does not know
    assert texts(office(), new) == [
        "site office-pv timezone: Europe/Paris → UTC",
        "grid connection max_power_kw: 43.0 → 50",
        "protection zedbox1 rated_current_a: 32 → 40",
        "connector cp2-1 phases: L2-L3-L1 → L1",
        "load building note: (absent) → added by hand",
    ]


def test_added_removed_and_connectors_moved_between_charge_points() -> None:
    new = office()
    new["protections"].append({"id": "zedbox3", "parent": "ibst", "rated_current_a": 20})
    del new["pv_plants"]
    connector = new["charge_points"][2]["connectors"].pop()
    new["charge_points"][3]["connectors"].append(connector)
    new["ocpi_locations"] = [{"country_code": "FR", "party_id": "INE", "location_id": "L1"}]
    assert texts(office(), new) == [
        "added protection zedbox3 under ibst",
        "connector cp3-1: on cp3 → cp4",
        "removed pv plant pv1 (was under main)",
        "added ocpi location FR/INE/L1",
    ]
    assert [d.change for d in diff_site_files(new, office())][:2] == ["removed", "moved"]


def test_diff_versions_reads_the_stored_versions(ctx: EmsContext) -> None:
    import_site(ctx, office())
    move_element(ctx, "office-pv", "charge_point", "cp1", "zedbox2", Change("moved cp1 under zedbox2", "bob"))
    (moved,) = diff_versions(ctx, "office-pv", 1, 2)
    assert moved.text == "charge point cp1: under ibst → zedbox2"
    (back,) = diff_versions(ctx, "office-pv", 2, 1)
    assert back.text == "charge point cp1: under zedbox2 → ibst"
    with pytest.raises(SiteNotFoundError):
        diff_versions(ctx, "office-pv", 1, 9)


def test_move_changes_the_parent_field_only_and_keeps_who_and_why(ctx: EmsContext) -> None:
    import_site(ctx, office())
    before = copy.deepcopy(get_site(ctx, "office-pv").data)
    stored = move_element(
        ctx, "office-pv", "protection", "zedbox1", "main", Change("moved zedbox1 under main", "bob")
    )
    assert stored.version == 2 and (stored.author, stored.comment) == ("bob", "moved zedbox1 under main")
    before["protections"][2]["parent"] = "main"
    assert stored.data == before
    assert move_element(ctx, "office-pv", "protection", "ibst", None).site.protections[1].parent is None
    assert move_element(ctx, "office-pv", "load", "building", "zedbox2").version == 4
    assert move_element(ctx, "office-pv", "load", "building", "zedbox2").version == 4  # already there


@pytest.mark.parametrize(
    ("kind", "element_id", "to", "message"),
    [
        ("protection", "ibst", "zedbox1", "'zedbox1' is fed by 'ibst'"),
        ("protection", "main", "zedbox2", "own subtree"),
        ("protection", "ibst", "ibst", "cannot be its own parent"),
        ("charge_point", "cp1", None, "hangs under a protection"),
        ("pv_plant", "pv1", "nowhere", "unknown protection 'nowhere'"),
        ("connector", "cp1-1", "zedbox1", "belongs to its charge point"),
        ("grid", "grid", "main", "cannot be moved"),
    ],
)
def test_a_move_that_cannot_be_made_is_refused_and_stores_nothing(
    ctx: EmsContext, kind: str, element_id: str, to: str | None, message: str
) -> None:
    import_site(ctx, office())
    with pytest.raises(SiteValidationError) as refused:
        move_element(ctx, "office-pv", kind, element_id, to)
    assert message in str(refused.value)
    assert [v.version for v in list_versions(ctx, "office-pv")] == [1]


def test_moving_an_unknown_element_names_it(ctx: EmsContext) -> None:
    import_site(ctx, office())
    with pytest.raises(SiteNotFoundError, match="unknown charge point 'cp99'"):
        move_element(ctx, "office-pv", "charge_point", "cp99", "main")
