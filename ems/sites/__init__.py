"""Sites in the database, versioned: the wiring the administrator draws, and the OCPI EVSEs it lacks.

Every change is one transaction that loads the current site file, applies the change to it,
re-validates the WHOLE site with `grid_models` (so a bad change stores nothing and names every
problem) and stores the result as a new version. Old versions are never rewritten: a plan
records the version it was computed on. `SiteChanged` is published after the commit.

An EVSE a CPO pushes in a Location linked to a site (`ocpi_locations`) but that no site
connector maps to is *unplaced*: the EMS proposes a default wiring for the administrator to
confirm, and gives the planner a worst-case model of it (`conservative_connector`) for as long
as it is not wired, so a session on it is never planned on a guess.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import selectinload, sessionmaker

from ems.core.context import EmsContext
from ems.core.events import SiteChanged
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.models import ChargingSession
from ems.store.models import Evse as EvseRow
from ems.store.models import Location as LocationRow
from ems.store.models import Site as SiteRow
from ems.store.models import SiteVersion as SiteVersionRow
from grid_models.site import DEFAULT_MIN_CURRENT_A, PHASES, ChargePoint, Connector, Phase, Site
from grid_models.sitefile import site_from_dict, site_to_dict
from grid_models.validation import Problem, SiteValidationError, ensure_valid

COLLECTIONS: dict[str, str] = {
    "protections": "protection",
    "charge_points": "charge_point",
    "pv_plants": "pv_plant",
    "loads": "load",
}
"""Element collections of a site file addressed by id, and the element kind of each."""

MAX_SITE_ID_CHARS = 255
ACTIVE_SESSION_STATUSES = ("ACTIVE", "PENDING")
"""A session in one of these may draw current now or at any moment."""


class SiteNotFoundError(LookupError):
    """An unknown site, version, element or unplaced connector."""


class SiteExistsError(Exception):
    """Creating a site whose id is already in use."""


class SiteConflictError(Exception):
    """Another change to the same site committed first; the caller may retry."""


@dataclass(frozen=True)
class Change:
    """Who made a change and why, kept with the version it creates."""

    comment: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class StoredSite:
    """One version of a site: the validated model and the site file exactly as stored."""

    site: Site
    version: int
    data: dict[str, Any]
    created_at: datetime
    comment: str | None
    author: str | None


@dataclass(frozen=True)
class SiteSummary:
    site_id: str
    name: str
    current_version: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: datetime
    comment: str | None
    author: str | None


# ---------------------------------------------------------------------------------------------
# storage


def _parse(data: Any) -> tuple[Site, dict[str, Any]]:
    """The site and its file as it will be stored; `SiteValidationError` naming every problem."""
    site = site_from_dict(data)
    stored = site_to_dict(site)
    problems: list[Problem] = []
    if len(site.id) > MAX_SITE_ID_CHARS:
        problems.append(Problem(site.id[:40] + "...", "site", "id", f"longer than {MAX_SITE_ID_CHARS}"))
    try:
        json.dumps(stored, allow_nan=False)
    except ValueError:
        problems.append(Problem(site.id, "site", "", "NaN or Infinity is not valid JSON"))
    if problems:
        raise SiteValidationError(problems)
    return site, stored


def _live(db: DbSession, site_id: str, *, lock: bool = False) -> SiteRow | None:
    row = db.get(SiteRow, site_id, with_for_update=lock)
    return row if row is not None and row.deleted_at is None else None


def _require(db: DbSession, site_id: str, *, lock: bool = False) -> SiteRow:
    row = _live(db, site_id, lock=lock)
    if row is None:
        raise SiteNotFoundError(f"unknown site {site_id!r}")
    return row


def _version_row(db: DbSession, site_id: str, version: int) -> SiteVersionRow:
    row = db.scalars(
        select(SiteVersionRow).where(SiteVersionRow.site_id == site_id, SiteVersionRow.version == version)
    ).one_or_none()
    if row is None:
        raise SiteNotFoundError(f"site {site_id!r} has no version {version}")
    return row


_PARSED: weakref.WeakKeyDictionary[sessionmaker[DbSession], dict[tuple[str, int], Site]] = (
    weakref.WeakKeyDictionary()
)
_PARSED_LOCK = threading.Lock()
PARSED_PER_DATABASE = 256
"""Parsed site versions kept per database (a version is never rewritten, so never stale)."""


def _parsed(ctx: EmsContext, site_id: str, version: int) -> Site | None:
    with _PARSED_LOCK:
        return _PARSED.get(ctx.db, {}).get((site_id, version))


def _remember(ctx: EmsContext, site: Site, version: int) -> Site:
    with _PARSED_LOCK:
        cache = _PARSED.setdefault(ctx.db, {})
        if len(cache) >= PARSED_PER_DATABASE:
            cache.pop(next(iter(cache)))
        cache[(site.id, version)] = site
    return site


def _stored(row: SiteVersionRow, site: Site | None = None) -> StoredSite:
    return StoredSite(
        site=site if site is not None else site_from_dict(row.data),
        version=row.version,
        data=row.data,
        created_at=row.created_at,
        comment=row.comment,
        author=row.author,
    )


def _add_version(
    db: DbSession, row: SiteRow, version: int, data: dict[str, Any], change: Change
) -> SiteVersionRow:
    now = utcnow()
    version_row = SiteVersionRow(
        site_id=row.id,
        version=version,
        data=data,
        created_at=now,
        comment=change.comment,
        author=change.author,
    )
    db.add(version_row)
    row.current_version = version
    row.updated_at = now
    return version_row


def _publish(ctx: EmsContext, stored: StoredSite) -> None:
    """After the commit, so a subscriber reads the version the event announces."""
    ctx.bus.publish(SiteChanged(stored.site.id, stored.version, utcnow()))


def _change(
    ctx: EmsContext,
    site_id: str,
    apply: Callable[[DbSession, dict[str, Any]], dict[str, Any]],
    change: Change,
) -> StoredSite:
    """Apply `apply` to a copy of the current site file and store the result as a new version.

    Nothing is stored (and nothing published) when the result is refused or equals the current
    version: a repeated PUT is idempotent.
    """
    try:
        with transaction(ctx.db) as db:
            row = _require(db, site_id, lock=True)
            current = _version_row(db, site_id, row.current_version)
            site, data = _parse(apply(db, copy.deepcopy(current.data)))
            if data == current.data:
                return _stored(current)
            stored = _stored(_add_version(db, row, row.current_version + 1, data, change), site)
    except IntegrityError as exc:
        raise SiteConflictError(f"site {site_id!r} changed meanwhile: try again") from exc
    _publish(ctx, stored)
    return stored


def create_site(ctx: EmsContext, data: Any, change: Change = Change()) -> StoredSite:
    """Store a new site as version 1 (or, for the id of a deleted site, as its next version)."""
    site, stored_data = _parse(data)
    try:
        with transaction(ctx.db) as db:
            row = db.get(SiteRow, site.id, with_for_update=True)
            if row is not None and row.deleted_at is None:
                raise SiteExistsError(f"site {site.id!r} already exists (version {row.current_version})")
            if row is None:
                row = SiteRow(id=site.id, current_version=0, created_at=utcnow())
                db.add(row)
                db.flush()
            row.deleted_at = None
            stored = _stored(_add_version(db, row, row.current_version + 1, stored_data, change), site)
    except IntegrityError as exc:
        raise SiteConflictError(f"site {site.id!r} was created meanwhile") from exc
    _publish(ctx, stored)
    return stored


def replace_site(ctx: EmsContext, site_id: str, data: Any, change: Change = Change()) -> StoredSite:
    """Replace the whole site file; its `id` must stay `site_id` (a rename is an import + delete)."""
    if isinstance(data, dict) and data.get("id") != site_id:
        problem = Problem(
            site_id, "site", "id", f"must be {site_id!r}, the site replaced; got {data.get('id')!r}"
        )
        raise SiteValidationError([problem])
    return _change(ctx, site_id, lambda _db, _current: data, change)


def import_site(ctx: EmsContext, data: Any, change: Change = Change()) -> tuple[StoredSite, bool]:
    """Create the site, or store the file as its next version if it exists; True when created."""
    site, _ = _parse(data)
    with ctx.db() as db:
        exists = _live(db, site.id) is not None
    if exists:
        return replace_site(ctx, site.id, data, change), False
    return create_site(ctx, data, change), True


def get_site(
    ctx: EmsContext, site_id: str, version: int | None = None, *, include_deleted: bool = False
) -> StoredSite:
    """The current version, or the given one (old versions stay readable); `include_deleted`
    reaches the versions of a deleted site too (a plan made on it names one)."""
    with ctx.db() as db:
        row = db.get(SiteRow, site_id) if include_deleted else _live(db, site_id)
        if row is None:
            raise SiteNotFoundError(f"unknown site {site_id!r}")
        wanted = row.current_version if version is None else version
        version_row = _version_row(db, site_id, wanted)
        site = _parsed(ctx, site_id, wanted)
        stored = _stored(version_row, site)
    if site is None:
        _remember(ctx, stored.site, wanted)
    return stored


_CURRENT_VERSION = select(SiteRow.current_version).where(
    SiteRow.id == bindparam("site_id"), SiteRow.deleted_at.is_(None)
)
"""Built once: the planner asks at every plan."""


def current_site(ctx: EmsContext, site_id: str) -> tuple[Site, int]:
    """The current version's model and number, read and parsed once per version: what the
    planner needs at every plan, without the site file."""
    with ctx.db() as db:
        version = db.scalar(_CURRENT_VERSION, {"site_id": site_id})
        if version is None:
            raise SiteNotFoundError(f"unknown site {site_id!r}")
        site = _parsed(ctx, site_id, version)
        if site is not None:
            return site, version
        data = _version_row(db, site_id, version).data
    return _remember(ctx, site_from_dict(data), version), version


def list_sites(ctx: EmsContext) -> list[SiteSummary]:
    with ctx.db() as db:
        rows = db.execute(
            select(SiteRow, SiteVersionRow)
            .join(
                SiteVersionRow,
                (SiteVersionRow.site_id == SiteRow.id) & (SiteVersionRow.version == SiteRow.current_version),
            )
            .where(SiteRow.deleted_at.is_(None))
            .order_by(SiteRow.id)
        ).all()
        return [
            SiteSummary(
                site.id, str(v.data.get("name", "")), site.current_version, site.created_at, site.updated_at
            )
            for site, v in rows
        ]


def list_versions(ctx: EmsContext, site_id: str) -> list[VersionInfo]:
    with ctx.db() as db:
        _require(db, site_id)
        rows = db.scalars(
            select(SiteVersionRow).where(SiteVersionRow.site_id == site_id).order_by(SiteVersionRow.version)
        ).all()
        return [VersionInfo(r.version, r.created_at, r.comment, r.author) for r in rows]


def delete_site(ctx: EmsContext, site_id: str) -> None:
    """Mark the site deleted; its versions stay for the plans that name them."""
    with transaction(ctx.db) as db:
        row = _require(db, site_id, lock=True)
        row.deleted_at = utcnow()
        version = row.current_version
    ctx.bus.publish(SiteChanged(site_id, version, utcnow(), deleted=True))


# ---------------------------------------------------------------------------------------------
# elements


def _kind(collection: str) -> str:
    if collection not in COLLECTIONS:
        raise SiteNotFoundError(f"unknown collection {collection!r} (one of {', '.join(COLLECTIONS)})")
    return COLLECTIONS[collection]


def _items(data: dict[str, Any], key: str) -> list[Any]:
    """The list under `key`, empty if the file has none (read only)."""
    items = data.get(key)
    return items if isinstance(items, list) else []


def _writable(data: dict[str, Any], key: str) -> list[Any]:
    """The list under `key` of a working copy, added if the file had none."""
    items = data.get(key)
    if not isinstance(items, list):
        items = []
        data[key] = items
    return items


def _position(items: Sequence[Any], element_id: str) -> int | None:
    return next((i for i, e in enumerate(items) if isinstance(e, dict) and e.get("id") == element_id), None)


def _body(body: Any, element_id: str, kind: str) -> dict[str, Any]:
    """The element as given, its id taken from the URL (a differing `id` in the body is refused)."""
    if not isinstance(body, dict):
        raise SiteValidationError(
            [Problem(element_id, kind, "", f"must be an object, got {type(body).__name__}")]
        )
    if "id" in body and body["id"] != element_id:
        raise SiteValidationError(
            [Problem(element_id, kind, "id", f"must be {element_id!r} as in the URL, got {body['id']!r}")]
        )
    return {"id": element_id, **{k: v for k, v in body.items() if k != "id"}}


def _charge_point(data: dict[str, Any], charge_point_id: str) -> dict[str, Any]:
    charge_points = _items(data, "charge_points")
    i = _position(charge_points, charge_point_id)
    if i is None:
        raise SiteNotFoundError(f"unknown charge point {charge_point_id!r}")
    cp: dict[str, Any] = charge_points[i]
    return cp


def get_element(
    ctx: EmsContext, site_id: str, collection: str, element_id: str
) -> tuple[dict[str, Any], int]:
    """One element of the current version, and that version."""
    kind = _kind(collection)
    stored = get_site(ctx, site_id)
    items = _items(stored.data, collection)
    i = _position(items, element_id)
    if i is None:
        raise SiteNotFoundError(f"unknown {kind} {element_id!r} in site {site_id!r}")
    element: dict[str, Any] = items[i]
    return element, stored.version


def put_element(
    ctx: EmsContext, site_id: str, collection: str, element_id: str, body: Any, change: Change = Change()
) -> tuple[StoredSite, bool]:
    """Create or replace one protection, charge point, PV plant or load; True when created."""
    kind = _kind(collection)
    element = _body(body, element_id, kind)
    created = False

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal created
        items = _writable(data, collection)
        i = _position(items, element_id)
        created = i is None
        if i is None:
            items.append(element)
        else:
            items[i] = element
        return data

    return _change(ctx, site_id, apply, change), created


def _children(data: dict[str, Any], protection_id: str) -> list[Problem]:
    """One problem per element still fed by the protection, naming it."""
    problems = []
    message = f"still fed by protection {protection_id!r}: move or delete it first"
    for p in _items(data, "protections"):
        if isinstance(p, dict) and p.get("parent") == protection_id:
            problems.append(Problem(str(p.get("id")), "protection", "parent", message))
    for collection in ("charge_points", "pv_plants", "loads"):
        for e in _items(data, collection):
            if isinstance(e, dict) and e.get("protection") == protection_id:
                problems.append(Problem(str(e.get("id")), COLLECTIONS[collection], "protection", message))
    return problems


def delete_element(
    ctx: EmsContext, site_id: str, collection: str, element_id: str, change: Change = Change()
) -> StoredSite:
    """Remove one element; a protection that still feeds anything is refused, naming each child."""
    kind = _kind(collection)

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        items = _items(data, collection)
        i = _position(items, element_id)
        if i is None:
            raise SiteNotFoundError(f"unknown {kind} {element_id!r} in site {site_id!r}")
        if collection == "protections":
            children = _children(data, element_id)
            if children:
                raise SiteValidationError(children)
        del items[i]
        return data

    return _change(ctx, site_id, apply, change)


def get_connector(
    ctx: EmsContext, site_id: str, charge_point_id: str, connector_id: str
) -> tuple[dict[str, Any], int]:
    """One connector of the current version, and that version."""
    stored = get_site(ctx, site_id)
    connectors = _items(_charge_point(stored.data, charge_point_id), "connectors")
    i = _position(connectors, connector_id)
    if i is None:
        raise SiteNotFoundError(f"unknown connector {connector_id!r} of charge point {charge_point_id!r}")
    connector: dict[str, Any] = connectors[i]
    return connector, stored.version


def put_connector(
    ctx: EmsContext,
    site_id: str,
    charge_point_id: str,
    connector_id: str,
    body: Any,
    change: Change = Change(),
) -> tuple[StoredSite, bool]:
    """Create or replace one connector of a charge point; True when created."""
    element = _body(body, connector_id, "connector")
    created = False

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal created
        connectors = _writable(_charge_point(data, charge_point_id), "connectors")
        i = _position(connectors, connector_id)
        created = i is None
        if i is None:
            connectors.append(element)
        else:
            connectors[i] = element
        return data

    return _change(ctx, site_id, apply, change), created


def delete_connector(
    ctx: EmsContext, site_id: str, charge_point_id: str, connector_id: str, change: Change = Change()
) -> StoredSite:
    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        connectors = _writable(_charge_point(data, charge_point_id), "connectors")
        i = _position(connectors, connector_id)
        if i is None:
            raise SiteNotFoundError(f"unknown connector {connector_id!r} of charge point {charge_point_id!r}")
        del connectors[i]
        return data

    return _change(ctx, site_id, apply, change)


def put_grid_connection(ctx: EmsContext, site_id: str, body: Any, change: Change = Change()) -> StoredSite:
    """Replace the grid connection (`max_power_kw` and any extra field)."""
    if not isinstance(body, dict):
        raise SiteValidationError(
            [Problem(site_id, "grid_connection", "", f"must be an object, got {type(body).__name__}")]
        )

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        data["grid_connection"] = body
        return data

    return _change(ctx, site_id, apply, change)


# ---------------------------------------------------------------------------------------------
# unplaced EVSEs


@dataclass(frozen=True)
class Proposal:
    """The wiring the EMS proposes for an unplaced connector, for the administrator to confirm."""

    charge_point_id: str
    protection: str
    connector: Connector
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnplacedEvse:
    """An OCPI connector of a linked Location that no site connector maps to."""

    country_code: str
    party_id: str
    location_id: str
    evse_uid: str
    connector_id: str
    evse_status: str
    power_type: str
    """The OCPI power type: AC_1_PHASE, AC_2_PHASE, AC_2_PHASE_SPLIT, AC_3_PHASE, DC."""
    max_voltage_v: int
    max_amperage_a: int
    max_electric_power_w: int | None
    active_session: bool
    """A session is ACTIVE or PENDING on it: the planner must count it conservatively."""
    proposal: Proposal


def root_protection(site: Site) -> str:
    """The first protection without a parent (a valid site has at least one)."""
    return next(p.id for p in site.protections if p.parent is None)


def _amps(value: float) -> float:
    """Rounded down to 0.1 A (never above what the data allows), an int when whole."""
    floored = math.floor(value * 10 + 1e-9) / 10
    return int(floored) if floored.is_integer() else floored


def _free_id(site: Site, wanted: str, taken: Iterable[str] = ()) -> str:
    used = {p.id for p in site.protections} | {pv.id for pv in site.pv_plants} | {ld.id for ld in site.loads}
    used |= {cp.id for cp in site.charge_points} | {c.id for c in site.connectors()} | set(taken)
    candidate, n = wanted, 1
    while candidate in used:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def _max_power_w(power_type: str, max_voltage_v: int, max_amperage_a: int, max_power_w: int | None) -> float:
    if max_power_w is not None:
        return float(max_power_w)
    if power_type == "DC":
        return float(max_voltage_v * max_amperage_a)
    return math.inf


def propose(
    site: Site,
    evse_uid: str,
    connector_id: str,
    power_type: str,
    max_voltage_v: int,
    max_amperage_a: int,
    max_electric_power_w: int | None,
) -> Proposal:
    """The default wiring of an OCPI connector (pure).

    - AC_1_PHASE: single-phase on L1; AC_3_PHASE: three-phase in standard rotation L1, L2, L3.
    - AC_2_PHASE and AC_2_PHASE_SPLIT: the site model wires 1 or 3 phases, so three-phase
      L1, L2, L3 with the same per-phase current limit. Profiles of AC connectors are sent in
      amps per phase, so every real phase current is counted (the third phase is over-counted);
      the energy the plan expects is up to 1.5x what the connector delivers. Noted.
    - DC: three-phase, `max_power_kw` = max_electric_power (else max_voltage x max_amperage);
      `max_current_a` is the grid-side current of that power balanced on three phases at the
      site's voltage (max_amperage is the DC-side current, not what the grid carries).
    - AC `max_current_a` = max_amperage, or max_electric_power / (V x real phases) when lower,
      V being the site's phase voltage (the model's own), rounded down to 0.1 A.
    - `min_current_a` 6 A (IEC 61851), under the root protection.

    An EVSE whose other connectors are wired already gets their charge point and protection.
    """
    notes: list[str] = []
    voltage_v = site.phase_voltage_v
    power_w = _max_power_w(power_type, max_voltage_v, max_amperage_a, max_electric_power_w)
    max_power_kw: float | None = None
    kind: str = "AC"
    phases: tuple[Phase, ...] = PHASES
    if power_type == "DC":
        kind = "DC"
        max_power_kw = power_w / 1000.0
        max_current_a = _amps(power_w / (3 * voltage_v))
        if max_electric_power_w is None:
            notes.append("DC connector without max_electric_power: max_voltage x max_amperage used")
    else:
        real_phases = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2}.get(power_type, 3)
        if real_phases == 1:
            phases = ("L1",)
        elif real_phases == 2:
            notes.append(
                f"{power_type} modelled as three-phase L1, L2, L3 with the same per-phase current "
                "(the site model wires 1 or 3 phases): safe per phase, energy over-estimated; "
                "wire it by hand if the real wiring is known"
            )
        max_current_a = _amps(min(float(max_amperage_a), power_w / (voltage_v * real_phases)))
    if power_type not in ("AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"):
        notes.append(f"unknown power_type {power_type!r}: taken as AC_3_PHASE")

    same_evse = next(
        (
            (cp.id, cp.protection)
            for cp in site.charge_points
            for c in cp.connectors
            if c.evse_uid == evse_uid
        ),
        None,
    )
    if same_evse is not None:
        charge_point_id, protection = same_evse
        notes.append(f"other connectors of EVSE {evse_uid} are on charge point {charge_point_id!r}")
    else:
        charge_point_id, protection = _free_id(site, evse_uid), root_protection(site)
    connector = Connector(
        id=_free_id(site, f"{evse_uid}-{connector_id}", taken=[charge_point_id]),
        evse_uid=evse_uid,
        connector_id=connector_id,
        phases=phases,
        max_current_a=max_current_a,
        min_current_a=min(DEFAULT_MIN_CURRENT_A, max_current_a),
        power_type="DC" if kind == "DC" else "AC",
        max_power_kw=max_power_kw,
    )
    return Proposal(charge_point_id, protection, connector, tuple(notes))


def _linked_locations(db: DbSession, site: Site) -> list[LocationRow]:
    rows: list[LocationRow] = []
    for ref in site.ocpi_locations:
        rows += db.scalars(
            select(LocationRow)
            .where(
                LocationRow.country_code == ref.country_code.upper(),
                LocationRow.party_id == ref.party_id.upper(),
                LocationRow.location_id == ref.location_id,
            )
            .options(selectinload(LocationRow.evses).selectinload(EvseRow.connectors))
            .order_by(LocationRow.id)
        ).all()
    return rows


def _unplaced(db: DbSession, site: Site) -> list[UnplacedEvse]:
    placed = {(c.evse_uid, c.connector_id) for c in site.connectors()}
    out: list[UnplacedEvse] = []
    seen: set[tuple[str, str]] = set()
    for location in _linked_locations(db, site):
        busy = {
            (s.evse_uid, s.connector_id)
            for s in db.scalars(
                select(ChargingSession).where(
                    ChargingSession.partner_id == location.partner_id,
                    ChargingSession.country_code == location.country_code,
                    ChargingSession.party_id == location.party_id,
                    ChargingSession.location_id == location.location_id,
                    ChargingSession.status.in_(ACTIVE_SESSION_STATUSES),
                    ChargingSession.stale.is_(False),
                )
            )
        }
        for evse in location.evses:
            if evse.status == "REMOVED":
                continue
            for c in evse.connectors:
                key = (evse.uid, c.connector_id)
                if key in placed or key in seen:
                    continue
                seen.add(key)
                out.append(
                    UnplacedEvse(
                        country_code=location.country_code,
                        party_id=location.party_id,
                        location_id=location.location_id,
                        evse_uid=evse.uid,
                        connector_id=c.connector_id,
                        evse_status=evse.status,
                        power_type=c.power_type,
                        max_voltage_v=c.max_voltage,
                        max_amperage_a=c.max_amperage,
                        max_electric_power_w=c.max_electric_power,
                        active_session=key in busy,
                        proposal=propose(
                            site,
                            evse.uid,
                            c.connector_id,
                            c.power_type,
                            c.max_voltage,
                            c.max_amperage,
                            c.max_electric_power,
                        ),
                    )
                )
    return out


def unplaced_evses(ctx: EmsContext, site_id: str, version: int | None = None) -> list[UnplacedEvse]:
    """Every (evse_uid, connector_id) of the site's linked Locations (EVSE not REMOVED) that no
    site connector maps to, each with a proposed wiring, in Location/EVSE/connector order."""
    return unplaced_of(ctx, get_site(ctx, site_id, version).site)


def unplaced_of(ctx: EmsContext, site: Site) -> list[UnplacedEvse]:
    """`unplaced_evses` of a site model already at hand (a site linked to no Location has none)."""
    if not site.ocpi_locations:
        return []
    with ctx.db() as db:
        return _unplaced(db, site)


@dataclass(frozen=True)
class Placement:
    """How to wire an unplaced connector; every field left None takes the proposal's value."""

    charge_point_id: str | None = None
    protection: str | None = None
    site_connector_id: str | None = None
    phases: list[str] | None = None
    max_current_a: float | None = None
    min_current_a: float | None = None
    max_power_kw: float | None = None


def _connector_dict(c: Connector) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "evse_uid": c.evse_uid,
        "connector_id": c.connector_id,
        "phases": list(c.phases),
        "max_current_a": c.max_current_a,
        "min_current_a": c.min_current_a,
    }
    if c.power_type != "AC":
        out["power_type"] = c.power_type
    if c.max_power_kw is not None:
        out["max_power_kw"] = c.max_power_kw
    return out


def place_unplaced(
    ctx: EmsContext,
    site_id: str,
    evse_uid: str,
    connector_id: str,
    placement: Placement = Placement(),
    change: Change = Change(),
) -> StoredSite:
    """Wire an unplaced connector (the proposal, overridden by `placement`) as a new version.

    An existing `charge_point_id` gets the connector added; a new one is created under
    `protection`."""

    def apply(db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        site = site_from_dict(data)
        found = next(
            (u for u in _unplaced(db, site) if (u.evse_uid, u.connector_id) == (evse_uid, connector_id)), None
        )
        if found is None:
            raise SiteNotFoundError(
                f"EVSE {evse_uid!r} connector {connector_id!r} is not unplaced in site {site_id!r}"
            )
        proposal = found.proposal
        connector = _connector_dict(proposal.connector)
        for key in ("phases", "max_current_a", "min_current_a", "max_power_kw"):
            value = getattr(placement, key)
            if value is not None:
                connector[key] = value
        if placement.site_connector_id is not None:
            connector["id"] = placement.site_connector_id
        cp_id = placement.charge_point_id or proposal.charge_point_id
        charge_points = _writable(data, "charge_points")
        i = _position(charge_points, cp_id)
        if i is None:
            protection = placement.protection or proposal.protection
            charge_points.append({"id": cp_id, "protection": protection, "connectors": [connector]})
            return data
        cp = charge_points[i]
        if placement.protection is not None and placement.protection != cp.get("protection"):
            raise SiteValidationError(
                [
                    Problem(
                        cp_id,
                        "charge_point",
                        "protection",
                        f"charge point {cp_id!r} is under {cp.get('protection')!r}, "
                        f"not {placement.protection!r}: move it first",
                    )
                ]
            )
        _writable(cp, "connectors").append(connector)
        return data

    return _change(ctx, site_id, apply, change)


@dataclass(frozen=True)
class ConservativeConnector:
    """The worst case of an unplaced connector, for the planner to add to a planning copy.

    Its wiring is unknown, so on EACH of L1, L2 and L3 it is taken to carry `per_phase_a`, the
    most one phase can carry (a single-phase vehicle on any phase, or a three-phase one): the
    single-phase-per-phase worst case. The connector is typed DC on purpose: every consumer of
    the model (grid_models.electrical, the optimizer) then counts its power balanced on all
    three phases whatever vehicle it is told of, so 3 x V x per_phase_a puts exactly
    `per_phase_a` on each phase. `min_current_a` = `max_current_a`: the planner cannot count on
    modulating it and plans it as a fixed draw of `reserved_power_kw`.
    """

    charge_point: ChargePoint
    per_phase_a: float
    reserved_power_kw: float
    flags: tuple[str, ...]

    @property
    def connector(self) -> Connector:
        return self.charge_point.connectors[0]


def conservative_connector(site: Site, unplaced: UnplacedEvse) -> ConservativeConnector:
    """The never-guess-silently rule as a pure function (see `ConservativeConnector`).

    AC: per phase min(max_amperage, max_electric_power / V), since one phase may carry the
    whole power. DC: the rectifier of a DC charger draws balanced from three phases, so
    max_electric_power / (3 V) (flagged: an assumption). Placed under the root protection.
    """
    voltage_v = site.phase_voltage_v
    flags = ["unplaced", "wiring_unknown_full_current_on_each_phase"]
    power_w = _max_power_w(
        unplaced.power_type, unplaced.max_voltage_v, unplaced.max_amperage_a, unplaced.max_electric_power_w
    )
    if unplaced.power_type == "DC":
        per_phase_a = power_w / (3 * voltage_v)
        flags.append("dc_assumed_balanced_three_phase")
        if unplaced.max_electric_power_w is None:
            flags.append("dc_power_from_max_voltage_times_max_amperage")
    else:
        per_phase_a = min(float(unplaced.max_amperage_a), power_w / voltage_v)
    per_phase_a = math.ceil(per_phase_a * 10 - 1e-9) / 10  # rounded up: a reservation
    roots = [p.id for p in site.protections if p.parent is None]
    if len(roots) > 1:
        flags.append(f"several_root_protections_counted_under_{roots[0]}")
    if unplaced.active_session:
        flags.append("active_session")
    base = f"unplaced:{unplaced.evse_uid}:{unplaced.connector_id}"
    cp_id = _free_id(site, base)
    connector = Connector(
        id=_free_id(site, f"{base}:connector", taken=[cp_id]),
        evse_uid=unplaced.evse_uid,
        connector_id=unplaced.connector_id,
        phases=PHASES,
        max_current_a=per_phase_a,
        min_current_a=per_phase_a,
        power_type="DC",
        max_power_kw=3 * voltage_v * per_phase_a / 1000.0,
    )
    return ConservativeConnector(
        charge_point=ChargePoint(cp_id, roots[0], (connector,)),
        per_phase_a=per_phase_a,
        reserved_power_kw=3 * voltage_v * per_phase_a / 1000.0,
        flags=tuple(flags),
    )


def with_conservative_connectors(site: Site, items: Sequence[ConservativeConnector]) -> Site:
    """A planning copy of the site with each worst-case connector added (validated)."""
    return ensure_valid(
        replace(site, charge_points=site.charge_points + tuple(i.charge_point for i in items))
    )
