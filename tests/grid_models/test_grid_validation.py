"""A bad site is refused with every offending element named, never just the first."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from grid_models.site import ChargePoint, Load, Protection, PvPlant, Site
from grid_models.sitefile import site_from_dict
from grid_models.validation import Problem, SiteValidationError, ensure_valid, validate
from tests.grid_models.helpers import SAMPLE_FILES, SITES_DIR, connector, small_site


def _office_dict() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SITES_DIR / "office-pv.json").read_text())
    return data


def _keys(problems: list[Problem] | tuple[Problem, ...]) -> set[tuple[str, str, str]]:
    return {(p.element_kind, p.element_id, p.field) for p in problems}


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_sample_sites_are_valid(name: str) -> None:
    site = site_from_dict(json.loads((SITES_DIR / name).read_text()))
    assert validate(site) == []
    assert ensure_valid(site) is site


def test_bad_file_reports_every_offending_element() -> None:
    """Unknown parent, cycle, duplicate id, bad phase, negative rating in one file: all named."""
    data = _office_dict()
    protections = data["protections"]
    protections[3]["parent"] = "no-such-board"  # zedbox2: unknown parent
    protections.append({"id": "loop-a", "parent": "loop-b", "rated_current_a": 16})
    protections.append({"id": "loop-b", "parent": "loop-a", "rated_current_a": 16})  # cycle
    protections[2]["rated_current_a"] = -32  # zedbox1: negative rating
    data["charge_points"][4]["id"] = "cp1"  # duplicate id
    data["charge_points"][6]["connectors"][0]["phases"] = ["L4"]  # cp7-1: bad phase
    data["charge_points"][7]["connectors"][0]["phases"] = ["L1", "L1", "L2"]  # cp8-1: repeated
    data["pv_plants"][0]["protection"] = "roof-board"  # pv1: unknown protection

    with pytest.raises(SiteValidationError) as caught:
        site_from_dict(data)
    problems = caught.value.problems
    assert {
        ("protection", "zedbox2", "parent"),
        ("protection", "loop-a", "parent"),
        ("protection", "loop-b", "parent"),
        ("protection", "zedbox1", "rated_current_a"),
        ("charge_point", "cp1", "id"),
        ("connector", "cp7-1", "phases"),
        ("connector", "cp8-1", "phases"),
        ("pv_plant", "pv1", "protection"),
    } <= _keys(problems)
    message = str(caught.value)
    for element in ("zedbox2", "loop-a", "loop-b", "zedbox1", "cp1", "cp7-1", "cp8-1", "pv1"):
        assert repr(element) in message
    assert "no-such-board" in message and "loop-a -> loop-b -> loop-a" in message
    assert "L4" in message and "-32" in message
    assert message.count("\n- ") == len(problems)


def test_structural_errors_are_reported_together_with_semantic_ones() -> None:
    data = _office_dict()
    del data["charge_points"][0]["connectors"][0]["evse_uid"]  # missing field
    data["charge_points"][1]["connectors"][0]["max_current_a"] = "32"  # wrong type
    data["protections"][1]["rated_current_a"] = True  # a bool is not a number
    data["loads"][0]["phases"] = "L1"  # not a list
    data["grid_connection"] = {"max_power_kw": 0}  # semantic
    del data["protections"][0]["id"]  # element without id, named by its place in the file

    with pytest.raises(SiteValidationError) as caught:
        site_from_dict(data)
    keys = _keys(caught.value.problems)
    assert ("connector", "cp1-1", "evse_uid") in keys
    assert ("connector", "cp2-1", "max_current_a") in keys
    assert ("protection", "ibst", "rated_current_a") in keys
    assert ("load", "building", "phases") in keys
    assert ("grid_connection", "office-pv", "max_power_kw") in keys
    assert ("protection", "protections[0]", "id") in keys
    # the type error is not reported a second time as "must be positive"
    assert [p.field for p in caught.value.problems].count("max_current_a") == 1


@pytest.mark.parametrize("not_a_site", [[], "site", None, 3])
def test_non_object_is_refused(not_a_site: Any) -> None:
    with pytest.raises(SiteValidationError, match="must be an object"):
        site_from_dict(not_a_site)


def test_missing_lists_are_reported() -> None:
    data = _office_dict()
    del data["protections"]
    data["charge_points"] = {"cp1": {}}
    with pytest.raises(SiteValidationError) as caught:
        site_from_dict(data)
    keys = _keys(caught.value.problems)
    assert ("site", "office-pv", "protections") in keys
    assert ("site", "office-pv", "charge_points") in keys


MAIN = Protection("main", None, 63)


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (small_site(()), ("site", "test", "protections")),
        (small_site((MAIN, Protection("main", "main", 10))), ("protection", "main", "id")),
        (small_site((Protection("self", "self", 10),)), ("protection", "self", "parent")),
        (small_site((Protection("zero", None, 0),)), ("protection", "zero", "rated_current_a")),
        (small_site((MAIN,), grid_kw=-1), ("grid_connection", "test", "max_power_kw")),
        (replace(small_site((MAIN,)), phase_voltage_v=0), ("site", "test", "phase_voltage_v")),
        (
            small_site((MAIN,), (ChargePoint("cp", "nowhere", (connector("c", ("L1",)),)),)),
            ("charge_point", "cp", "protection"),
        ),
        (
            small_site((MAIN,), (ChargePoint("cp", "main", (connector("c", ("L1",), min_current_a=40),)),)),
            ("connector", "c", "min_current_a"),
        ),
        (
            small_site((MAIN,), (ChargePoint("cp", "main", (connector("c", ("L1",), max_current_a=-6),)),)),
            ("connector", "c", "max_current_a"),
        ),
        (
            small_site((MAIN,), (ChargePoint("cp", "main", (connector("c", ("L1", "L2")),)),)),
            ("connector", "c", "phases"),
        ),
        (
            small_site((MAIN,), (ChargePoint("cp", "main", (connector("c", ()),)),)),
            ("connector", "c", "phases"),
        ),
        (
            small_site((MAIN,), (ChargePoint("cp", "main", (connector("c", ("L1",), max_power_kw=0.0),)),)),
            ("connector", "c", "max_power_kw"),
        ),
        (
            small_site(
                (MAIN,),
                (
                    ChargePoint(
                        "cp",
                        "main",
                        (connector("c1", ("L1",)), replace(connector("c2", ("L2",)), evse_uid="XX*TST*c1")),
                    ),
                ),
            ),
            ("connector", "c2", "connector_id"),
        ),
        (small_site((MAIN,), pv_plants=(PvPlant("pv", "main", -5),)), ("pv_plant", "pv", "peak_power_kw")),
        (small_site((MAIN,), loads=(Load("b", "main", ("L2", "L2")),)), ("load", "b", "phases")),
        (small_site((MAIN,), loads=(Load("b", "attic"),)), ("load", "b", "protection")),
        (small_site((MAIN,), loads=(Load("main", "main"),)), ("load", "main", "id")),
    ],
)
def test_each_rule(site: Site, expected: tuple[str, str, str]) -> None:
    assert expected in _keys(validate(site))


def test_several_roots_are_allowed() -> None:
    site = small_site((Protection("a", None, 32), Protection("b", None, 32), Protection("b1", "b", 16)))
    assert validate(site) == []


def test_longer_cycle_names_each_member_once() -> None:
    site = small_site(
        (
            MAIN,
            Protection("x", "z", 10),
            Protection("y", "x", 10),
            Protection("z", "y", 10),
            Protection("w", "x", 5),
        )
    )
    problems = validate(site)
    assert sorted(p.element_id for p in problems) == ["x", "y", "z"]
    assert all("x -> z -> y -> x" in p.message for p in problems)


def test_error_lists_all_problems_and_is_a_value_error() -> None:
    problems = [
        Problem("a", "protection", "parent", "unknown parent 'q'"),
        Problem("b", "load", "phases", "bad"),
    ]
    error = SiteValidationError(problems)
    assert isinstance(error, ValueError)
    assert error.problems == tuple(problems)
    assert "protection 'a' parent: unknown parent 'q'" in str(error)
    assert "load 'b' phases: bad" in str(error)


def test_validate_does_not_mutate_and_collects_in_file_order() -> None:
    data = _office_dict()
    original = copy.deepcopy(data)
    data["protections"][0]["rated_current_a"] = -1
    data["protections"][3]["rated_current_a"] = -1
    with pytest.raises(SiteValidationError) as caught:
        site_from_dict(data)
    assert [p.element_id for p in caught.value.problems] == ["main", "zedbox2"]
    assert original["protections"][0]["rated_current_a"] == 63


def test_a_small_complete_site_is_valid() -> None:
    """The baseline the single-rule cases above each break once."""
    cps = (
        ChargePoint(
            "cp", "main", (connector("c1", ("L2", "L3", "L1")), connector("c2", ("L3",), min_current_a=0))
        ),
    )
    site = small_site(
        (MAIN, Protection("sub", "main", 32)), cps, (PvPlant("pv", "sub", 9.0),), (Load("b", "main"),)
    )
    assert validate(site) == []
