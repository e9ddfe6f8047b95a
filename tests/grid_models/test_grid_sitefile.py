"""The site file reads and writes back exactly, and its JSON Schema accepts the samples."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from grid_models.site import DEFAULT_MIN_CURRENT_A, PHASES
from grid_models.sitefile import load_site, save_site, site_from_dict, site_json_schema, site_to_dict
from grid_models.validation import SiteValidationError
from tests.grid_models.helpers import SAMPLE_FILES, SITES_DIR

MINIMAL: dict[str, Any] = {
    "id": "tiny",
    "name": "Tiny",
    "timezone": "UTC",
    "latitude": 0,
    "longitude": 0,
    "phase_voltage_v": 230,
    "grid_connection": {"max_power_kw": 11},
    "protections": [{"id": "main", "rated_current_a": 16}],
}


def _sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SITES_DIR / name).read_text())
    return data


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_samples_round_trip_exactly(name: str) -> None:
    data = _sample(name)
    again = site_to_dict(site_from_dict(data))
    assert again == data
    # same keys in the same order and ints kept as ints: the text is the same too
    assert json.dumps(again) == json.dumps(data)


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_samples_validate_against_the_schema(name: str) -> None:
    schema = site_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(_sample(name))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("charge_points", 0, "connectors", 0, "phases"), ["L4"]),
        (("charge_points", 0, "connectors", 0, "phases"), ["L1", "L2"]),
        (("protections", 0, "rated_current_a"), -63),
        (("grid_connection", "max_power_kw"), "43"),
        (("pv_plants", 0, "tilt_deg"), 95),
    ],
)
def test_schema_rejects_bad_shapes(path: tuple[Any, ...], value: Any) -> None:
    data = _sample("office-pv.json")
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(site_json_schema()).validate(data)


def test_unknown_fields_are_kept_at_every_level() -> None:
    data = _sample("office-pv.json")
    data["operator"] = {"name": "ACME", "contact": ["a@b.c"]}
    data["grid_connection"]["tariff"] = "C4"
    data["protections"][1]["kind"] = "RCBO"
    data["charge_points"][0]["vendor"] = "Zed"
    data["charge_points"][0]["connectors"][0]["standard"] = "IEC_62196_T2"
    data["pv_plants"][0]["inverter"] = {"model": "X", "count": 2}
    data["loads"][0]["label"] = "HVAC"
    site = site_from_dict(data)
    assert site.extra == {"operator": {"name": "ACME", "contact": ["a@b.c"]}}
    assert site.charge_points[0].connectors[0].extra == {"standard": "IEC_62196_T2"}
    assert site_to_dict(site) == data


def test_absent_optional_keys_stay_absent() -> None:
    data = json.loads(json.dumps(MINIMAL))
    data["charge_points"] = [
        {
            "id": "cp",
            "protection": "main",
            "connectors": [
                {"id": "c", "evse_uid": "E1", "connector_id": "1", "phases": ["L3"], "max_current_a": 16}
            ],
        }
    ]
    data["loads"] = [{"id": "house", "protection": "main"}]
    site = site_from_dict(data)
    c = site.charge_points[0].connectors[0]
    assert (c.min_current_a, c.power_type, c.max_power_kw) == (DEFAULT_MIN_CURRENT_A, "AC", None)
    assert site.protections[0].parent is None
    assert site.loads[0].phases == PHASES
    assert site.pv_plants == ()
    assert site_to_dict(site) == data


def test_explicit_defaults_stay_explicit() -> None:
    data = json.loads(json.dumps(MINIMAL))
    data["protections"][0]["parent"] = None
    data["pv_plants"] = []
    data["loads"] = [{"id": "house", "protection": "main", "phases": ["L1", "L2", "L3"]}]
    assert site_to_dict(site_from_dict(data)) == data


def test_a_changed_value_is_written_even_if_it_was_absent() -> None:
    """`omitted` only hides a key while the value is still the default."""
    data = json.loads(json.dumps(MINIMAL))
    site = site_from_dict(data)
    main = replace(site.protections[0], parent="upstream")
    edited = replace(site, protections=(main,))
    assert site_to_dict(edited)["protections"][0]["parent"] == "upstream"


def test_save_and_load(tmp_path: Path) -> None:
    site = load_site(SITES_DIR / "office-pv.json")
    path = tmp_path / "site.json"
    save_site(site, path)
    assert json.loads(path.read_text()) == _sample("office-pv.json")
    assert load_site(path) == site


def test_save_refuses_an_invalid_site(tmp_path: Path) -> None:
    site = load_site(SITES_DIR / "office-pv.json")
    broken = replace(site, protections=(*site.protections, replace(site.protections[0], id="main")))
    path = tmp_path / "site.json"
    with pytest.raises(SiteValidationError, match="duplicate id"):
        save_site(broken, path)
    assert not path.exists()


def test_load_refuses_text_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "site.json"
    path.write_text("{not json")
    with pytest.raises(SiteValidationError, match="not valid JSON") as caught:
        load_site(path)
    assert caught.value.problems[0].element_kind == "file"


def test_depot_file_is_what_the_generator_writes() -> None:
    from tests.grid_models.helpers import make_depot_module

    assert make_depot_module().make_depot() == _sample("depot.json")
