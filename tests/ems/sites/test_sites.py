"""Stored, versioned sites: exact round trips, every change a new version, bad changes store
nothing, and the proposals and worst case of unplaced OCPI connectors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.core.events import DomainEvent, SiteChanged
from ems.sites import (
    Change,
    SiteExistsError,
    SiteNotFoundError,
    UnplacedEvse,
    conservative_connector,
    create_site,
    delete_element,
    delete_site,
    get_element,
    get_site,
    import_site,
    list_sites,
    list_versions,
    propose,
    put_connector,
    put_element,
    put_grid_connection,
    replace_site,
    with_conservative_connectors,
)
from ems.store.models import Site as SiteRow
from ems.store.models import SiteVersion
from grid_models.electrical import check
from grid_models.site import Site
from grid_models.sitefile import site_from_dict, site_json_schema, site_to_dict
from grid_models.validation import SiteValidationError

SITES_DIR = Path(__file__).resolve().parents[3] / "examples" / "sites"
SAMPLES = ("office-pv.json", "public-carpark.json", "depot.json")


def _sample(name: str = "office-pv.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SITES_DIR / name).read_text())
    return data


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[EmsContext]:
    context = EmsContext.create(Settings(database_url=f"sqlite:///{tmp_path / 'ems.db'}"))
    yield context
    context.close()


def _rows(ctx: EmsContext) -> tuple[int, int]:
    with ctx.db() as db:
        sites = db.scalar(select(func.count()).select_from(SiteRow))
        versions = db.scalar(select(func.count()).select_from(SiteVersion))
    return int(sites or 0), int(versions or 0)


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_import_and_export_exactly(ctx: EmsContext, tmp_path: Path, name: str) -> None:
    data = _sample(name)
    stored = create_site(ctx, data)
    assert stored.version == 1
    # read back through a fresh engine: what the database holds, not what this process kept
    again = EmsContext.create(ctx.settings)
    try:
        exported = get_site(again, data["id"]).data
    finally:
        again.close()
    assert exported == data
    assert json.dumps(exported) == json.dumps(data)  # same keys in the same order, ints kept
    assert get_site(ctx, data["id"]).site == site_from_dict(data)


def test_versions_grow_and_old_ones_stay_readable(ctx: EmsContext) -> None:
    original = _sample()
    create_site(ctx, original, Change(comment="first drawing", author="alice"))
    v2, created = put_element(ctx, "office-pv", "loads", "hvac", {"protection": "main", "phases": ["L2"]})
    assert created and v2.version == 2
    v3 = put_grid_connection(ctx, "office-pv", {"max_power_kw": 60})
    v4 = delete_element(ctx, "office-pv", "loads", "hvac", Change(comment="no HVAC after all"))
    assert (v3.version, v4.version) == (3, 4)

    assert get_site(ctx, "office-pv", 1).data == original
    assert get_element(ctx, "office-pv", "loads", "building")[1] == 4
    assert [ld["id"] for ld in get_site(ctx, "office-pv", 2).data["loads"]] == ["building", "hvac"]
    assert get_site(ctx, "office-pv", 3).data["grid_connection"] == {"max_power_kw": 60}
    assert get_site(ctx, "office-pv").version == 4
    history = list_versions(ctx, "office-pv")
    assert [(v.version, v.comment, v.author) for v in history] == [
        (1, "first drawing", "alice"),
        (2, None, None),
        (3, None, None),
        (4, "no HVAC after all", None),
    ]
    with pytest.raises(SiteNotFoundError, match="no version 5"):
        get_site(ctx, "office-pv", 5)
    assert [(s.site_id, s.current_version) for s in list_sites(ctx)] == [("office-pv", 4)]


def test_an_unchanged_put_is_not_a_new_version(ctx: EmsContext) -> None:
    create_site(ctx, _sample())
    load = get_element(ctx, "office-pv", "loads", "building")[0]
    stored, created = put_element(ctx, "office-pv", "loads", "building", load)
    assert (stored.version, created) == (1, False)
    assert replace_site(ctx, "office-pv", _sample()).version == 1
    assert _rows(ctx) == (1, 1)


def test_a_bad_site_stores_nothing_and_names_every_problem(ctx: EmsContext) -> None:
    data = _sample()
    data["protections"][3]["parent"] = "ghost"
    data["protections"][2]["rated_current_a"] = -1
    data["charge_points"][0]["connectors"][0]["phases"] = ["L1", "L5", "L3"]
    data["pv_plants"][0]["protection"] = "nowhere"
    with pytest.raises(SiteValidationError) as refused:
        create_site(ctx, data)
    named = {(p.element_kind, p.element_id) for p in refused.value.problems}
    assert named == {
        ("protection", "zedbox2"),
        ("protection", "zedbox1"),
        ("connector", "cp1-1"),
        ("pv_plant", "pv1"),
    }
    assert _rows(ctx) == (0, 0)

    create_site(ctx, _sample())
    bad_connector = {"evse_uid": "X", "connector_id": "1", "phases": ["L4"], "max_current_a": -3}
    with pytest.raises(SiteValidationError) as refused:
        put_connector(ctx, "office-pv", "cp1", "cp1-2", bad_connector)
    assert {p.field for p in refused.value.problems} == {"phases", "max_current_a"}
    assert _rows(ctx) == (1, 1)
    assert get_site(ctx, "office-pv").data == _sample()


def test_deleting_a_protection_that_feeds_elements_names_them(ctx: EmsContext) -> None:
    create_site(ctx, _sample())
    with pytest.raises(SiteValidationError) as refused:
        delete_element(ctx, "office-pv", "protections", "ibst")
    named = {(p.element_kind, p.element_id) for p in refused.value.problems}
    feeds = {("charge_point", f"cp{n}") for n in (1, 2, 3, 10, 11, 12)}
    assert named == feeds | {("protection", "zedbox1"), ("protection", "zedbox2")}
    assert all("ibst" in p.message for p in refused.value.problems)
    assert get_site(ctx, "office-pv").version == 1

    # Emptied first, it goes.
    data = get_site(ctx, "office-pv").data
    for cp in data["charge_points"]:
        cp["protection"] = "main"
    data["protections"] = [p for p in data["protections"] if p["id"] in ("main", "ibst")]
    replace_site(ctx, "office-pv", data)
    assert delete_element(ctx, "office-pv", "protections", "ibst").version == 3


def test_site_changed_is_published_once_per_change(ctx: EmsContext) -> None:
    events: list[DomainEvent] = []
    ctx.bus.subscribe(events.append)
    create_site(ctx, _sample())
    put_element(ctx, "office-pv", "pv_plants", "pv2", {"protection": "main", "peak_power_kw": 5})
    put_element(ctx, "office-pv", "pv_plants", "pv2", {"protection": "main", "peak_power_kw": 5})  # no-op
    with pytest.raises(SiteValidationError):
        put_element(ctx, "office-pv", "pv_plants", "pv3", {"protection": "ghost", "peak_power_kw": 5})
    with pytest.raises(SiteNotFoundError):
        delete_element(ctx, "office-pv", "loads", "nope")
    delete_site(ctx, "office-pv")
    changes = [(e.site_id, e.version, e.deleted) for e in events if isinstance(e, SiteChanged)]
    assert changes == [("office-pv", 1, False), ("office-pv", 2, False), ("office-pv", 2, True)]


def test_a_deleted_site_keeps_its_versions_and_numbering(ctx: EmsContext) -> None:
    create_site(ctx, _sample())
    with pytest.raises(SiteExistsError):
        create_site(ctx, _sample())
    put_grid_connection(ctx, "office-pv", {"max_power_kw": 50})
    delete_site(ctx, "office-pv")
    with pytest.raises(SiteNotFoundError):
        get_site(ctx, "office-pv")
    assert list_sites(ctx) == []
    assert _rows(ctx) == (1, 2)
    assert get_site(ctx, "office-pv", 1, include_deleted=True).data == _sample()
    assert get_site(ctx, "office-pv", include_deleted=True).version == 2
    stored, created = import_site(ctx, _sample())
    assert (stored.version, created) == (3, True)
    stored, created = import_site(ctx, {**_sample(), "name": "renamed"})
    assert (stored.version, created) == (4, False)


def test_replacing_a_site_cannot_change_its_id(ctx: EmsContext) -> None:
    create_site(ctx, _sample())
    with pytest.raises(SiteValidationError) as refused:
        replace_site(ctx, "office-pv", {**_sample(), "id": "other"})
    assert refused.value.problems[0].field == "id"
    with pytest.raises(SiteValidationError) as refused:
        put_element(ctx, "office-pv", "loads", "building", {"id": "other", "protection": "main"})
    assert refused.value.problems[0].element_id == "building"
    with pytest.raises(SiteNotFoundError):
        put_element(ctx, "office-pv", "transformers", "t1", {})
    with pytest.raises(SiteNotFoundError):
        put_connector(ctx, "office-pv", "cp99", "c1", {})


def test_ocpi_locations_round_trip_and_are_checked() -> None:
    data = _sample()
    data["ocpi_locations"] = [{"country_code": "NL", "party_id": "CPO", "location_id": "LOC1", "note": "x"}]
    assert json.dumps(site_to_dict(site_from_dict(data))) == json.dumps(data)
    assert "ocpi_locations" in site_json_schema()["properties"]
    data["ocpi_locations"] += [
        {"country_code": "nl", "party_id": "cpo", "location_id": "LOC1"},
        {"country_code": "NLD", "party_id": "CPO"},
    ]
    with pytest.raises(SiteValidationError) as refused:
        site_from_dict(data)
    assert sorted((p.element_id, p.field) for p in refused.value.problems) == [
        ("ocpi_locations[1]", "location_id"),
        ("ocpi_locations[2]", "country_code"),
        ("ocpi_locations[2]", "location_id"),
    ]


# ---------------------------------------------------------------------------------------------
# unplaced connectors: proposal and worst case (pure)


def _office() -> Site:
    return site_from_dict(_sample())


@pytest.mark.parametrize(
    ("power_type", "amps", "power_w", "phases", "max_current_a", "max_power_kw"),
    [
        ("AC_1_PHASE", 32, None, ("L1",), 32, None),
        ("AC_1_PHASE", 32, 3680, ("L1",), 16, None),  # 3.68 kW / 230 V
        ("AC_3_PHASE", 32, None, ("L1", "L2", "L3"), 32, None),
        ("AC_3_PHASE", 32, 11000, ("L1", "L2", "L3"), 15.9, None),  # 11 kW / 690 V, rounded down
        ("AC_2_PHASE", 16, None, ("L1", "L2", "L3"), 16, None),
        ("AC_2_PHASE_SPLIT", 32, 7360, ("L1", "L2", "L3"), 16, None),  # 7.36 kW / (2 x 230 V)
        ("DC", 125, 50000, ("L1", "L2", "L3"), 72.4, 50.0),  # grid side: 50 kW / 690 V
        ("DC", 100, None, ("L1", "L2", "L3"), 57.9, 40.0),  # 400 V x 100 A
    ],
)
def test_proposal_follows_the_ocpi_connector(
    power_type: str,
    amps: int,
    power_w: int | None,
    phases: tuple[str, ...],
    max_current_a: float,
    max_power_kw: float | None,
) -> None:
    proposal = propose(
        _office(), "NL*CPO*E9", "1", power_type, 400 if power_type == "DC" else 230, amps, power_w
    )
    c = proposal.connector
    assert (c.phases, c.max_current_a, c.max_power_kw) == (phases, max_current_a, max_power_kw)
    assert c.min_current_a == 6 and c.power_type == ("DC" if power_type == "DC" else "AC")
    assert (proposal.charge_point_id, proposal.protection, c.id) == ("NL*CPO*E9", "main", "NL*CPO*E9-1")
    assert bool(proposal.notes) == (power_type.startswith("AC_2") or (power_type == "DC" and power_w is None))


def test_a_second_connector_of_a_wired_evse_joins_its_charge_point() -> None:
    proposal = propose(_office(), "FR*INE*E0004", "2", "AC_3_PHASE", 230, 32, None)
    assert (proposal.charge_point_id, proposal.protection) == ("cp4", "zedbox1")


def _unplaced(power_type: str, amps: int, power_w: int | None, active: bool = False) -> UnplacedEvse:
    site = _office()
    voltage = 400 if power_type == "DC" else 230
    return UnplacedEvse(
        "NL",
        "CPO",
        "LOC1",
        "NL*CPO*E9",
        "1",
        "CHARGING",
        power_type,
        voltage,
        amps,
        power_w,
        active,
        propose(site, "NL*CPO*E9", "1", power_type, voltage, amps, power_w),
    )


@pytest.mark.parametrize(
    ("power_type", "amps", "power_w", "per_phase_a"),
    [
        ("AC_1_PHASE", 32, 7400, 32.0),  # one phase may carry all of it: min(32 A, 7400/230 A)
        ("AC_3_PHASE", 32, None, 32.0),  # a single-phase car may put 32 A on any one phase
        ("AC_3_PHASE", 32, 3680, 16.0),
        ("DC", 125, 50000, 72.5),  # balanced rectifier, rounded up
    ],
)
@pytest.mark.parametrize("vehicle_phases", [1, 3])
def test_the_worst_case_puts_its_full_current_on_every_phase(
    power_type: str, amps: int, power_w: int | None, per_phase_a: float, vehicle_phases: int
) -> None:
    site = _office()
    worst = conservative_connector(site, _unplaced(power_type, amps, power_w, active=True))
    assert worst.per_phase_a == per_phase_a
    assert worst.charge_point.protection == "main"
    assert "active_session" in worst.flags and "unplaced" in worst.flags
    assert worst.connector.min_current_a == worst.connector.max_current_a == per_phase_a
    planning = with_conservative_connectors(site, [worst])
    report = check(
        planning,
        {worst.connector.id: [worst.reserved_power_kw]},
        {worst.connector.id: vehicle_phases},
        [],
        [],
    )
    currents = {key: float(report.currents_a[i, 0]) for i, key in enumerate(report.rows)}
    for phase in ("L1", "L2", "L3"):
        assert currents[("main", phase)] == pytest.approx(per_phase_a)
        assert currents[("ibst", phase)] == pytest.approx(0.0)
