"""Groups of sites (issue #19): the group file (every problem named, refused whole, an exact
round trip), the limits sampled on planning steps, the check of a joint plan at each node."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from grid_models.group import (
    Group,
    GroupLimit,
    LimitPoint,
    SitePower,
    check_group,
    sample_limits,
    site_entry_currents,
)
from grid_models.groupfile import (
    GroupValidationError,
    group_from_dict,
    group_to_dict,
    limit_dict_from_csv,
    limit_from_dict,
    load_group,
    save_group,
)
from grid_models.site import ChargePoint, Load, Protection, PvPlant, Site
from grid_models.validation import SiteValidationError
from tests.grid_models.helpers import connector, small_site

GROUPS_DIR = Path(__file__).resolve().parents[2] / "examples" / "groups"
T0 = datetime(2026, 6, 3, 15, 0, tzinfo=UTC)  # 17:00 in Paris


@pytest.mark.parametrize("name", ["campus.json", "district.json"])
def test_example_group_files_round_trip_exactly(name: str, tmp_path: Path) -> None:
    data = json.loads((GROUPS_DIR / name).read_text())
    group = group_from_dict(data, {"office-pv", "public-carpark", "depot"})
    assert group_to_dict(group) == data
    save_group(group, tmp_path / name)
    assert load_group(tmp_path / name) == group


def test_every_problem_of_a_group_file_is_named_at_once() -> None:
    data: dict[str, Any] = {
        "id": "district",
        "name": "d",
        "sites": ["a", "a", 7],
        "groups": [
            {"id": "district", "name": "same id", "sites": ["b"]},
            {"id": "empty", "name": "no site"},
        ],
        "limits": [
            {"id": "l1", "source": "dso", "max_import_kw": -5},
            {"id": "l1", "source": "dso", "max_import_kw": 5, "max_current_a": 10},
            {"id": "l3", "source": "", "max_current_a": [{"start": "2026-06-03T17:00:00", "value": 3}]},
            {
                "id": "l4",
                "source": "dso",
                "max_import_kw": [
                    {"start": "2026-06-03T18:00:00+02:00", "value": 3},
                    {"start": "2026-06-03T17:00:00+02:00", "value": 4},
                ],
                "valid_from": "2026-06-03T19:00:00+02:00",
                "valid_until": "2026-06-03T18:00:00+02:00",
            },
            {"id": "l5", "source": "dso"},
        ],
    }
    with pytest.raises(GroupValidationError) as caught:
        group_from_dict(data, {"a", "b"})
    assert isinstance(caught.value, SiteValidationError)  # callers catching site errors catch these
    text = str(caught.value)
    assert text.startswith("invalid group (")
    for expected in (
        "group 'district' sites[2]: must be a site id",
        "group 'district' sites: site 'a' is already in group 'district'",
        "group 'district' id: duplicate group id in the tree",
        "group 'empty' sites: no site under this group",
        "group_limit 'l1' max_import_kw: must be >= 0, got -5",
        "group_limit 'l1' max_import_kw: exactly one of max_import_kw and max_current_a is required, got "
        "max_import_kw and max_current_a",
        "group_limit 'l3' source: must be a non-empty string",
        "group_limit 'l3' max_current_a[0].start: must carry a UTC offset",
        "group_limit 'l4' max_import_kw[1].start: points must be in increasing time order",
        "group_limit 'l4' valid_until: must be after valid_from",
        "group_limit 'l5' max_import_kw: exactly one of max_import_kw and max_current_a is required",
        "group_limit 'l1' id: duplicate limit id in group 'district'",
    ):
        assert expected in text, (expected, text)


def test_unknown_sites_and_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GroupValidationError, match="unknown site 'nowhere'"):
        group_from_dict({"id": "g", "name": "g", "sites": ["nowhere"]}, {"office-pv"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GroupValidationError, match="not valid JSON"):
        load_group(bad)
    with pytest.raises(GroupValidationError, match="must be an object"):
        group_from_dict([])
    target = tmp_path / "never.json"
    with pytest.raises(GroupValidationError, match="no site under this group"):
        save_group(Group("g", "g"), target)
    assert not target.exists()


def test_a_limit_from_csv_rows_is_the_limit_of_the_file_shape() -> None:
    text = "start,limit_kw\n2026-06-03T17:00:00+02:00,12\n\n2026-06-03T18:00:00+02:00, 16.5\n"
    data = limit_dict_from_csv(text, "dso-1", "dso", valid_until="2026-06-03T19:00:00+02:00")
    assert data == {
        "id": "dso-1",
        "source": "dso",
        "max_import_kw": [
            {"start": "2026-06-03T17:00:00+02:00", "value": 12.0},
            {"start": "2026-06-03T18:00:00+02:00", "value": 16.5},
        ],
        "valid_until": "2026-06-03T19:00:00+02:00",
    }
    assert [p.value for p in limit_from_dict(data).series] == [12.0, 16.5]
    amps = limit_dict_from_csv("2026-06-03T17:00:00Z,40\n", "a", "dso", "max_current_a")
    assert amps["max_current_a"] == [{"start": "2026-06-03T17:00:00Z", "value": 40.0}]


def test_bad_csv_rows_are_all_named_with_the_other_problems() -> None:
    text = "2026-06-03T17:00:00+02:00,lots\n2026-06-03T18:00:00+02:00\nsoon,-4\n"
    with pytest.raises(GroupValidationError) as caught:
        limit_dict_from_csv(text, "dso-1", "", "max_power", valid_from="today")
    text_of = str(caught.value)
    for expected in (
        "group_limit 'dso-1' quantity: must be one of max_import_kw, max_current_a",
        "group_limit 'dso-1' line 1: value 'lots' is not a number",
        "group_limit 'dso-1' line 2: expected start,value, got 1 field(s)",
        "max_import_kw[0].start: not an ISO 8601 time: 'soon'",
        "max_import_kw[0].value: must be >= 0",
        "valid_from: not an ISO 8601 time: 'today'",
    ):
        assert expected in text_of, (expected, text_of)
    with pytest.raises(GroupValidationError, match="a series needs at least one point"):
        limit_dict_from_csv("start,value\n", "dso-1", "dso")
    with pytest.raises(GroupValidationError, match="id: must be a non-empty string"):
        limit_dict_from_csv("2026-06-03T17:00:00Z,4\n", "", "dso")
    with pytest.raises(GroupValidationError, match="id: must be a non-empty string"):
        group_from_dict({"id": "", "name": "", "sites": ["a"]})


def test_limits_are_sampled_at_their_lowest_over_each_step_inside_their_window() -> None:
    dso = GroupLimit(
        "flex",
        "dso",
        "max_import_kw",
        series=(LimitPoint(T0 + timedelta(minutes=5), 25.0), LimitPoint(T0 + timedelta(hours=1), 30.0)),
        valid_from=T0 + timedelta(minutes=5),
        valid_until=T0 + timedelta(hours=2),
    )
    node = GroupLimit("node", "dso", "max_current_a", value=80.0, valid_until=T0 + timedelta(minutes=30))
    group = Group(
        "g",
        "g",
        sites=("a",),
        limits=(GroupLimit("contract", "contract", "max_import_kw", value=45.0), dso, node),
    )
    lim = sample_limits(group, T0 - timedelta(minutes=15), 900, 11)["g"]
    # 16:45 contract; 17:00 (the request starts at 17:05 inside it) to 17:45 25 kW; 18:00-18:45 30; then 45
    assert lim.max_import_kw == (45.0, 25.0, 25.0, 25.0, 25.0, 30.0, 30.0, 30.0, 30.0, 45.0, 45.0)
    assert lim.import_limit_ids == ("contract", *["flex"] * 8, "contract", "contract")
    assert lim.max_current_a[:3] == (80.0, 80.0, 80.0) and math.isinf(lim.max_current_a[3])
    assert lim.current_limit_ids[3] is None
    with pytest.raises(ValueError, match="UTC offset"):
        sample_limits(group, datetime(2026, 6, 3, 17), 900, 1)


def _site(site_id: str) -> Site:
    cps = (
        ChargePoint("cp1", "f1", (connector(f"{site_id}-c1", ("L1",)),)),
        ChargePoint("cp2", "f2", (connector(f"{site_id}-c2", ("L1", "L2", "L3")),)),
    )
    site = small_site(
        (Protection("main", None, 63.0), Protection("f1", "main", 32.0), Protection("f2", None, 40.0)),
        cps,
        pv_plants=(PvPlant("pv", "main", 10.0),),
        loads=(Load("building", "main"),),
        grid_kw=40.0,
    )
    return replace(site, id=site_id)


def test_entry_currents_sum_every_root_protection() -> None:
    site = _site("a")
    l1, l2, l3 = site_entry_currents(site)
    v = 1000.0 / 230.0
    assert l1.connector_a_per_kw == pytest.approx({"a-c1": v, "a-c2": v / 3})
    assert l2.connector_a_per_kw == pytest.approx({"a-c2": v / 3})
    assert l1.pv_a_per_kw == pytest.approx(-v / 3) and l1.base_load_a_per_kw == pytest.approx(v / 3)
    assert l3.base_load_a_per_kw == pytest.approx(v / 3)


def test_check_group_counts_each_node_limit_broken() -> None:
    a, b = _site("a"), _site("b")
    feeder = Group(
        "feeder", "f", sites=("a",), limits=(GroupLimit("f-a", "dso", "max_current_a", value=20.0),)
    )
    group = Group(
        "g",
        "g",
        sites=("b",),
        groups=(feeder,),
        limits=(GroupLimit("c", "contract", "max_import_kw", value=15.0),),
    )
    limits = sample_limits(group, T0, 900, 2)
    power = {
        # a: 4.6 kW single-phase on L1 (20 A) then 6.9 kW (30 A): the feeder's 20 A broken at step 1
        "a": SitePower({"a-c1": [4.6, 6.9]}, {}, [0.0, 0.0], [0.0, 0.0]),
        # b: 11 kW then 2 kW, base load 1 kW, PV 3 kW at step 1
        "b": SitePower({"b-c2": [11.0, 2.0]}, {}, [0.0, 3.0], [1.0, 1.0]),
    }
    report = check_group(group, {"a": a, "b": b}, power, limits)
    assert report.import_kw["g"].tolist() == pytest.approx([16.6, 6.9])
    assert [(v.step, v.group_id, v.quantity, v.phase) for v in report.violations] == [
        (0, "g", "max_import_kw", None),
        (1, "feeder", "max_current_a", "L1"),
    ]
    assert report.current_a["feeder"][0].tolist() == pytest.approx([20.0, 30.0], abs=1e-9)
    assert report.protection_violations == 0 and not report.ok
    with pytest.raises(ValueError, match="no site or power for b"):
        check_group(group, {"a": a}, {"a": power["a"]}, limits)
