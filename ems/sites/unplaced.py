"""Unplaced EVSEs: OCPI connectors of a site's linked Locations that no site connector maps to.

An EVSE a CPO pushes in a Location linked to a site (`ocpi_locations`) but that no site
connector maps to is *unplaced*: the EMS proposes a default wiring for the administrator to
confirm, and gives the planner a worst-case model of it (`conservative_connector`) for as long
as it is not wired, so a session on it is never planned on a guess.

Apart from `elements` because it reads the OCPI tables (Locations, EVSEs, sessions) and reasons
on the electrical model, where `elements` only edits the site file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import selectinload

from ems.core.context import EmsContext
from ems.sites.elements import _position, _writable
from ems.sites.versions import Change, SiteNotFoundError, StoredSite, _change, get_site
from ems.store.models import ChargingSession
from ems.store.models import Evse as EvseRow
from ems.store.models import Location as LocationRow
from grid_models.site import DEFAULT_MIN_CURRENT_A, PHASES, ChargePoint, Connector, Phase, Site
from grid_models.sitefile import site_from_dict
from grid_models.validation import Problem, SiteValidationError, ensure_valid

ACTIVE_SESSION_STATUSES = ("ACTIVE", "PENDING")
"""A session in one of these may draw current now or at any moment."""


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
