"""The site file (formats §1): reading, writing and its JSON Schema.

Reading collects every structural problem (wrong type, missing field) with the element named,
then runs `validate`, so a bad file is refused once with the full list. Writing gives back the
file that was read, key for key: unknown fields live in each element's `extra`, optional keys
that were absent are remembered in `omitted` and stay absent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from grid_models.site import (
    DEFAULT_MIN_CURRENT_A,
    PHASES,
    ChargePoint,
    Connector,
    GridConnection,
    Load,
    OcpiLocationRef,
    Phase,
    PowerType,
    Protection,
    PvPlant,
    Site,
)
from grid_models.validation import Problem, SiteValidationError, validate

_SITE_KEYS = (
    "id",
    "name",
    "timezone",
    "latitude",
    "longitude",
    "phase_voltage_v",
    "grid_connection",
    "protections",
    "charge_points",
    "pv_plants",
    "loads",
    "ocpi_locations",
)
_GRID_KEYS = ("max_power_kw",)
_PROTECTION_KEYS = ("id", "parent", "rated_current_a")
_CHARGE_POINT_KEYS = ("id", "protection", "connectors")
_CONNECTOR_KEYS = (
    "id",
    "evse_uid",
    "connector_id",
    "phases",
    "max_current_a",
    "min_current_a",
    "power_type",
    "max_power_kw",
)
_PV_KEYS = ("id", "protection", "peak_power_kw", "tilt_deg", "azimuth_deg")
_LOAD_KEYS = ("id", "protection", "phases")
_OCPI_LOCATION_KEYS = ("country_code", "party_id", "location_id")

_MISSING = object()


class _Reader:
    """Reads fields of one element, recording a Problem for each bad one and returning a
    placeholder so the rest of the file is still read (and still validated)."""

    def __init__(self, problems: list[Problem], obj: dict[str, Any], element_id: str, kind: str) -> None:
        self.problems = problems
        self.obj = obj
        self.element_id = element_id
        self.kind = kind
        self.omitted: set[str] = set()

    def _bad(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.element_id, self.kind, field, message))

    def _get(self, key: str, required: bool) -> Any:
        value = self.obj.get(key, _MISSING)
        if value is _MISSING:
            if required:
                self._bad(key, "required field missing")
            else:
                self.omitted.add(key)
        return value

    def string(self, key: str, default: str | None = None) -> str:
        value = self._get(key, default is None)
        if value is _MISSING:
            return default if default is not None else ""
        if not isinstance(value, str):
            self._bad(key, f"must be a string, got {value!r}")
            return ""
        return value

    def optional_string(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return None
        if not isinstance(value, str):
            self._bad(key, f"must be a string or null, got {value!r}")
            return None
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self._get(key, default is None)
        if value is _MISSING:
            return default if default is not None else math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._bad(key, f"must be a number, got {value!r}")
            return math.nan
        return value  # an int stays an int so the file is written back as it was

    def optional_number(self, key: str) -> float | None:
        value = self._get(key, False)
        if value is _MISSING or value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self._bad(key, f"must be a number or null, got {value!r}")
            return math.nan
        return value

    def phases(self, key: str, default: tuple[Phase, ...] | None = None) -> tuple[Phase, ...]:
        value = self._get(key, default is None)
        if value is _MISSING:
            return default if default is not None else ()
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            self._bad(key, f"must be a list of phase names, got {value!r}")
            return ()
        return tuple(cast(Phase, p) for p in value)

    def objects(self, key: str, required: bool) -> list[Any]:
        value = self._get(key, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list):
            self._bad(key, f"must be a list, got {type(value).__name__}")
            return []
        return value

    def extra(self, known: tuple[str, ...]) -> dict[str, Any]:
        return {k: v for k, v in self.obj.items() if k not in known}


def _element(problems: list[Problem], value: Any, path: str, kind: str) -> tuple[_Reader, str] | None:
    """A reader for one list entry, named by its id or, lacking one, by its path in the file."""
    if not isinstance(value, dict):
        problems.append(Problem(path, kind, "", f"must be an object, got {type(value).__name__}"))
        return None
    raw_id = value.get("id")
    element_id = raw_id if isinstance(raw_id, str) and raw_id else path
    return _Reader(problems, value, element_id, kind), element_id


def _read_list(
    problems: list[Problem],
    items: list[Any],
    path: str,
    kind: str,
    build: Callable[[_Reader, str, str], Any],
) -> list[Any]:
    out = []
    for i, item in enumerate(items):
        found = _element(problems, item, f"{path}[{i}]", kind)
        if found is not None:
            reader, element_id = found
            out.append(build(reader, element_id, f"{path}[{i}]"))
    return out


def _read_protection(r: _Reader, element_id: str, _path: str) -> Protection:
    return Protection(
        id=r.string("id") or element_id,
        parent=r.optional_string("parent"),
        rated_current_a=r.number("rated_current_a"),
        extra=r.extra(_PROTECTION_KEYS),
        omitted=frozenset(r.omitted),
    )


def _read_connector(r: _Reader, element_id: str, _path: str) -> Connector:
    power_type = r.string("power_type", "AC")
    return Connector(
        id=r.string("id") or element_id,
        evse_uid=r.string("evse_uid"),
        connector_id=r.string("connector_id"),
        phases=r.phases("phases"),
        max_current_a=r.number("max_current_a"),
        min_current_a=r.number("min_current_a", DEFAULT_MIN_CURRENT_A),
        power_type=cast(PowerType, power_type),
        max_power_kw=r.optional_number("max_power_kw"),
        extra=r.extra(_CONNECTOR_KEYS),
        omitted=frozenset(r.omitted),
    )


def _read_charge_point(problems: list[Problem]) -> Callable[[_Reader, str, str], ChargePoint]:
    def build(r: _Reader, element_id: str, path: str) -> ChargePoint:
        connectors = _read_list(
            problems, r.objects("connectors", True), f"{path}.connectors", "connector", _read_connector
        )
        return ChargePoint(
            id=r.string("id") or element_id,
            protection=r.string("protection"),
            connectors=tuple(connectors),
            extra=r.extra(_CHARGE_POINT_KEYS),
        )

    return build


def _read_pv(r: _Reader, element_id: str, _path: str) -> PvPlant:
    return PvPlant(
        id=r.string("id") or element_id,
        protection=r.string("protection"),
        peak_power_kw=r.number("peak_power_kw"),
        tilt_deg=r.number("tilt_deg", 30.0),
        azimuth_deg=r.number("azimuth_deg", 180.0),
        extra=r.extra(_PV_KEYS),
        omitted=frozenset(r.omitted),
    )


def _read_load(r: _Reader, element_id: str, _path: str) -> Load:
    return Load(
        id=r.string("id") or element_id,
        protection=r.string("protection"),
        phases=r.phases("phases", PHASES),
        extra=r.extra(_LOAD_KEYS),
        omitted=frozenset(r.omitted),
    )


def _read_ocpi_location(r: _Reader, _element_id: str, _path: str) -> OcpiLocationRef:
    return OcpiLocationRef(
        country_code=r.string("country_code"),
        party_id=r.string("party_id"),
        location_id=r.string("location_id"),
        extra=r.extra(_OCPI_LOCATION_KEYS),
    )


def site_from_dict(data: Any) -> Site:
    """The site described by a parsed site file; `SiteValidationError` naming every problem."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise SiteValidationError([Problem("", "site", "", f"must be an object, got {type(data).__name__}")])
    raw_id = data.get("id")
    r = _Reader(problems, data, raw_id if isinstance(raw_id, str) and raw_id else "(site)", "site")
    site_id = r.string("id")
    name = r.string("name")
    timezone = r.string("timezone")
    latitude = r.number("latitude")
    longitude = r.number("longitude")
    phase_voltage_v = r.number("phase_voltage_v")

    grid_raw = r._get("grid_connection", True)
    grid = GridConnection(max_power_kw=math.nan)
    if grid_raw is not _MISSING:
        if isinstance(grid_raw, dict):
            g = _Reader(problems, grid_raw, site_id, "grid_connection")
            grid = GridConnection(max_power_kw=g.number("max_power_kw"), extra=g.extra(_GRID_KEYS))
        else:
            r._bad("grid_connection", f"must be an object, got {type(grid_raw).__name__}")

    protections = _read_list(
        problems, r.objects("protections", True), "protections", "protection", _read_protection
    )
    charge_points = _read_list(
        problems,
        r.objects("charge_points", False),
        "charge_points",
        "charge_point",
        _read_charge_point(problems),
    )
    pv_plants = _read_list(problems, r.objects("pv_plants", False), "pv_plants", "pv_plant", _read_pv)
    loads = _read_list(problems, r.objects("loads", False), "loads", "load", _read_load)
    ocpi_locations = _read_list(
        problems, r.objects("ocpi_locations", False), "ocpi_locations", "ocpi_location", _read_ocpi_location
    )

    site = Site(
        id=site_id,
        name=name,
        timezone=timezone,
        latitude=latitude,
        longitude=longitude,
        phase_voltage_v=phase_voltage_v,
        grid_connection=grid,
        protections=tuple(protections),
        charge_points=tuple(charge_points),
        pv_plants=tuple(pv_plants),
        loads=tuple(loads),
        ocpi_locations=tuple(ocpi_locations),
        extra=r.extra(_SITE_KEYS),
        omitted=frozenset(r.omitted),
    )
    # A field already reported as malformed is not reported again by the semantic checks.
    reported = {(p.element_kind, p.element_id, p.field) for p in problems}
    if not isinstance(grid_raw, dict):  # already reported as missing or malformed
        reported.add(("grid_connection", site_id, "max_power_kw"))
    problems += [p for p in validate(site) if (p.element_kind, p.element_id, p.field) not in reported]
    if problems:
        raise SiteValidationError(problems)
    return site


def _put(out: dict[str, Any], omitted: frozenset[str], key: str, value: Any, default: Any) -> None:
    """Write `key` unless the file lacked it and the value is still the default."""
    if key in omitted and value == default:
        return
    out[key] = value


def _phases_out(phases: tuple[Phase, ...]) -> list[str]:
    return list(phases)


def site_to_dict(site: Site) -> dict[str, Any]:
    """The site file of a site: the inverse of `site_from_dict`, key for key."""
    out: dict[str, Any] = {
        "id": site.id,
        "name": site.name,
        "timezone": site.timezone,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "phase_voltage_v": site.phase_voltage_v,
        "grid_connection": {
            "max_power_kw": site.grid_connection.max_power_kw,
            **site.grid_connection.extra,
        },
    }
    protections = []
    for p in site.protections:
        d: dict[str, Any] = {"id": p.id}
        _put(d, p.omitted, "parent", p.parent, None)
        d["rated_current_a"] = p.rated_current_a
        protections.append({**d, **p.extra})
    out["protections"] = protections

    charge_points = []
    for cp in site.charge_points:
        connectors = []
        for c in cp.connectors:
            d = {
                "id": c.id,
                "evse_uid": c.evse_uid,
                "connector_id": c.connector_id,
                "phases": _phases_out(c.phases),
                "max_current_a": c.max_current_a,
            }
            _put(d, c.omitted, "min_current_a", c.min_current_a, DEFAULT_MIN_CURRENT_A)
            _put(d, c.omitted, "power_type", c.power_type, "AC")
            _put(d, c.omitted, "max_power_kw", c.max_power_kw, None)
            connectors.append({**d, **c.extra})
        charge_points.append({"id": cp.id, "protection": cp.protection, "connectors": connectors, **cp.extra})
    _put(out, site.omitted, "charge_points", charge_points, [])

    pv_plants = []
    for pv in site.pv_plants:
        d = {"id": pv.id, "protection": pv.protection, "peak_power_kw": pv.peak_power_kw}
        _put(d, pv.omitted, "tilt_deg", pv.tilt_deg, 30.0)
        _put(d, pv.omitted, "azimuth_deg", pv.azimuth_deg, 180.0)
        pv_plants.append({**d, **pv.extra})
    _put(out, site.omitted, "pv_plants", pv_plants, [])

    loads = []
    for ld in site.loads:
        d = {"id": ld.id, "protection": ld.protection}
        _put(d, ld.omitted, "phases", _phases_out(ld.phases), list(PHASES))
        loads.append({**d, **ld.extra})
    _put(out, site.omitted, "loads", loads, [])
    ocpi_locations = [
        {"country_code": o.country_code, "party_id": o.party_id, "location_id": o.location_id, **o.extra}
        for o in site.ocpi_locations
    ]
    _put(out, site.omitted, "ocpi_locations", ocpi_locations, [])
    out.update(site.extra)
    return out


def load_site(path: str | Path) -> Site:
    """Read and validate a site file; a file that is not JSON is refused like a bad site."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SiteValidationError([Problem(str(path), "file", "", f"not valid JSON: {exc}")]) from exc
    return site_from_dict(data)


def save_site(site: Site, path: str | Path) -> None:
    """Write a site file; an invalid site is refused and nothing is written."""
    problems = validate(site)
    if problems:
        raise SiteValidationError(problems)
    text = json.dumps(site_to_dict(site), indent=1, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def site_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the site file, for the API and editors.

    It checks shapes only; references, cycles and uniqueness need `validate`. Unknown fields are
    allowed everywhere (they are kept on a round trip).
    """
    number = {"type": "number"}
    positive = {"type": "number", "exclusiveMinimum": 0}
    ident = {"type": "string", "minLength": 1}
    phase = {"enum": list(PHASES)}
    phases = {"type": "array", "items": phase, "uniqueItems": True}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:smart-charging-ems:site-file",
        "title": "Site file",
        "description": "Electrical infrastructure of one charging site (protections, charge points, "
        "connectors with their phase wiring, PV plants, building loads).",
        "type": "object",
        "required": [
            "id",
            "name",
            "timezone",
            "latitude",
            "longitude",
            "phase_voltage_v",
            "grid_connection",
            "protections",
        ],
        "properties": {
            "id": ident,
            "name": {"type": "string"},
            "timezone": {"type": "string", "description": "IANA time zone, e.g. Europe/Paris"},
            "latitude": {"type": "number", "minimum": -90, "maximum": 90},
            "longitude": {"type": "number", "minimum": -180, "maximum": 180},
            "phase_voltage_v": positive,
            "grid_connection": {
                "type": "object",
                "required": ["max_power_kw"],
                "properties": {"max_power_kw": positive},
            },
            "protections": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "rated_current_a"],
                    "properties": {
                        "id": ident,
                        "parent": {"type": ["string", "null"]},
                        "rated_current_a": {**positive, "description": "limit per phase (A)"},
                    },
                },
            },
            "charge_points": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "protection", "connectors"],
                    "properties": {
                        "id": ident,
                        "protection": ident,
                        "connectors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "evse_uid", "connector_id", "phases", "max_current_a"],
                                "properties": {
                                    "id": ident,
                                    "evse_uid": ident,
                                    "connector_id": ident,
                                    "phases": {
                                        **phases,
                                        "description": "grid phase of each connector phase, in order",
                                        "anyOf": [
                                            {"minItems": 1, "maxItems": 1},
                                            {"minItems": 3, "maxItems": 3},
                                        ],
                                    },
                                    "max_current_a": positive,
                                    "min_current_a": {"type": "number", "minimum": 0},
                                    "power_type": {"enum": ["AC", "DC"]},
                                    "max_power_kw": {"anyOf": [positive, {"type": "null"}]},
                                },
                            },
                        },
                    },
                },
            },
            "pv_plants": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "protection", "peak_power_kw"],
                    "properties": {
                        "id": ident,
                        "protection": ident,
                        "peak_power_kw": positive,
                        "tilt_deg": {"type": "number", "minimum": 0, "maximum": 90},
                        "azimuth_deg": number,
                    },
                },
            },
            "loads": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "protection"],
                    "properties": {
                        "id": ident,
                        "protection": ident,
                        "phases": {**phases, "minItems": 1, "maxItems": 3},
                    },
                },
            },
            "ocpi_locations": {
                "type": "array",
                "description": "OCPI Locations of this site, as the CPO pushes them: their EVSEs "
                "without a connector here are listed as unplaced",
                "items": {
                    "type": "object",
                    "required": list(_OCPI_LOCATION_KEYS),
                    "properties": {
                        "country_code": {"type": "string", "minLength": 2, "maxLength": 2},
                        "party_id": {"type": "string", "minLength": 3, "maxLength": 3},
                        "location_id": {"type": "string", "minLength": 1, "maxLength": 36},
                    },
                },
            },
        },
    }
