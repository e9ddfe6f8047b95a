"""What the driver widget needs: the driver's stated preferences, validated and stored, and the
live view of their session (energy so far, the planned curve, what to expect at departure).

A preference is stored whole or not at all, as `ChargingPreference(source="driver")`, and
`PreferencesChanged` is published after the commit so the planner re-plans the site. The view
reads the latest plan of the session's site that contains the session; why a need will not be
met is derived from that plan: the car cannot take the energy even at full power in the time
left ("too short a stay"), else a site limit (the grid connection or a protection) held it back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ems import sites
from ems.core.context import EmsContext
from ems.core.events import PreferencesChanged, SessionKey
from ems.ocpi.datetimes import parse_ocpi_datetime
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.models import ChargingPreference, ChargingSession
from ems.store.planning import PlanRecord, SessionNeed
from grid_models.electrical import check, session_max_power_kw
from grid_models.site import Connector, Site

MAX_STAY = timedelta(days=7)
MAX_ENERGY_KWH = 250.0
MAX_CAPACITY_KWH = 250.0
MET_TOLERANCE_KWH = 0.05
PV_NOTE_SHARE = 0.3
"""From this share of the planned energy on, the driver is told the charge waits for the sun."""
PLANS_SEARCHED = 50
"""Recent plans of the site searched for the latest one holding the session."""


class DriverInputError(ValueError):
    """The driver's form refused as a whole; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclass(frozen=True)
class DriverPreferences:
    departure: datetime
    soc_arrival_pct: float
    energy_need_kwh: float | None = None
    battery_capacity_kwh: float | None = None
    target_soc_pct: float | None = None


@dataclass(frozen=True)
class SessionPlace:
    """Where a session charges: its site (None if no site knows its EVSE) and site connector."""

    site: Site | None
    site_version: int | None
    connector: Connector | None

    @property
    def tz(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.site.timezone) if self.site is not None else ZoneInfo("UTC")
        except (KeyError, ValueError):
            return ZoneInfo("UTC")


def session_place(ctx: EmsContext, row: ChargingSession) -> SessionPlace:
    """The site whose wiring holds the session's connector, else a site linking its Location."""
    linked: SessionPlace | None = None
    for summary in sites.list_sites(ctx):
        stored = sites.get_site(ctx, summary.site_id)
        for connector in stored.site.connectors():
            if (connector.evse_uid, connector.connector_id) == (row.evse_uid, row.connector_id):
                return SessionPlace(stored.site, stored.version, connector)
        if linked is None and any(ref.location_id == row.location_id for ref in stored.site.ocpi_locations):
            linked = SessionPlace(stored.site, stored.version, None)
    return linked or SessionPlace(None, None, None)


def _number(
    form: Mapping[str, str], name: str, low: float, high: float, errors: dict[str, str], label: str
) -> float | None:
    raw = (form.get(name) or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        errors[name] = f"{label} must be a number"
        return None
    if not math.isfinite(value) or not low <= value <= high:
        errors[name] = f"{label} must be between {low:g} and {high:g}"
        return None
    return value


def parse_departure(raw: str, tz: ZoneInfo) -> datetime:
    """An ISO date-time; without an offset (an HTML `datetime-local`) it is the site's local time."""
    raw = raw.strip()
    if "T" in raw and (raw.endswith("Z") or "+" in raw[10:] or "-" in raw[10:]):
        return parse_ocpi_datetime(raw)
    local = datetime.fromisoformat(raw)
    if local.tzinfo is not None:
        return local
    return local.replace(tzinfo=tz)


def parse_preferences(form: Mapping[str, str], tz: ZoneInfo, now: datetime) -> DriverPreferences:
    """The driver's form, every problem reported at once (`DriverInputError`)."""
    errors: dict[str, str] = {}
    departure: datetime | None = None
    raw_departure = (form.get("departure") or "").strip()
    if not raw_departure:
        errors["departure"] = "Tell us when you leave"
    else:
        try:
            departure = parse_departure(raw_departure, tz)
        except ValueError:
            errors["departure"] = "The departure time is not a valid date and time"
        else:
            if departure <= now + timedelta(minutes=1):
                errors["departure"] = "The departure must be in the future"
            elif departure > now + MAX_STAY:
                errors["departure"] = "The departure must be within 7 days"
    soc = _number(form, "soc_arrival_pct", 0, 100, errors, "State of charge")
    if soc is None and "soc_arrival_pct" not in errors:
        errors["soc_arrival_pct"] = "Tell us your battery's state of charge (0 to 100 %)"
    energy = _number(form, "energy_need_kwh", 0.1, MAX_ENERGY_KWH, errors, "Energy needed")
    capacity = _number(form, "battery_capacity_kwh", 1, MAX_CAPACITY_KWH, errors, "Battery capacity")
    target = _number(form, "target_soc_pct", 1, 100, errors, "Target state of charge")
    if target is not None and soc is not None and target <= soc:
        errors["target_soc_pct"] = "The target must be above the state of charge on arrival"
    if (
        energy is not None
        and capacity is not None
        and soc is not None
        and energy > capacity * (100 - soc) / 100 + 0.5
    ):
        errors["energy_need_kwh"] = (
            f"A {capacity:g} kWh battery at {soc:g} % can take at most {capacity * (100 - soc) / 100:.1f} kWh"
        )
    if errors or departure is None or soc is None:
        raise DriverInputError(errors)
    return DriverPreferences(departure, soc, energy, capacity, target)


def save_preferences(ctx: EmsContext, session_pk: int, prefs: DriverPreferences) -> int:
    """Store the driver's statement (the latest one counts) and announce it to the planner."""
    now = utcnow()
    with transaction(ctx.db) as db:
        row = db.get(ChargingSession, session_pk)
        if row is None:
            raise LookupError(f"unknown session {session_pk}")
        if row.status not in ("ACTIVE", "PENDING"):
            raise DriverInputError({"session": "This charging session has ended"})
        pref = ChargingPreference(
            session_pk=session_pk,
            source="driver",
            profile_type="REGULAR",
            departure_time=prefs.departure,
            energy_need_kwh=prefs.energy_need_kwh,
            soc_arrival_pct=prefs.soc_arrival_pct,
            target_soc_pct=prefs.target_soc_pct,
            battery_capacity_kwh=prefs.battery_capacity_kwh,
            received_at=now,
        )
        db.add(pref)
        row.revision = ChargingSession.revision + 1
        db.flush()
        key = SessionKey(row.partner_id, row.country_code, row.party_id, row.session_id)
        pref_id = pref.id
    ctx.bus.publish(PreferencesChanged(key, "driver", now))
    return pref_id


# ---- the live view ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCurve:
    """The plan of one session up to its departure: step starts (unix s) and mean kW per step."""

    plan_id: int
    created_at: datetime
    planned_for: datetime
    step_s: int
    times_unix: list[float]
    power_kw: list[float]
    energy_planned_kwh: float
    unmet_kwh: float


@dataclass(frozen=True)
class DriverView:
    session_pk: int
    session_id: str
    status: str
    start: datetime
    evse_uid: str
    connector_id: str
    site_name: str | None
    tz: ZoneInfo
    delivered_kwh: float
    preference: ChargingPreference | None
    need: SessionNeed | None
    curve: PlannedCurve | None
    departure: datetime | None
    expected_at_departure_kwh: float | None
    """Energy so far plus what the plan still delivers before departure."""
    need_total_kwh: float | None
    """Energy so far plus what the session still needed when planned."""
    met: bool | None
    reason: str | None
    """`too_short`, `grid_limit`, `protection_limit` or `site_limit` when not met."""
    reason_text: str | None
    max_power_kw: float | None
    up_to_date: bool
    """The plan shown answers the latest preference (False while the recompute runs)."""
    notes: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.status in ("ACTIVE", "PENDING")

    def local(self, value: datetime | None) -> datetime | None:
        return value.astimezone(self.tz) if value is not None else None


def _latest_preference(db: Any, session_pk: int) -> ChargingPreference | None:
    row: ChargingPreference | None = db.scalars(
        select(ChargingPreference)
        .where(ChargingPreference.session_pk == session_pk)
        .order_by(ChargingPreference.received_at.desc(), ChargingPreference.id.desc())
    ).first()
    return row


def _latest_plan(db: Any, site_id: str, session_id: str, session_pk: int) -> PlanRecord | None:
    plans = db.scalars(
        select(PlanRecord)
        .where(PlanRecord.site_id == site_id)
        .order_by(PlanRecord.id.desc())
        .limit(PLANS_SEARCHED)
    )
    for plan in plans:
        entry = (plan.result.get("sessions") or {}).get(session_id)
        if entry is not None and entry.get("session_pk") == session_pk:
            found: PlanRecord = plan
            return found
    return None


def _need_at(db: Any, session_pk: int, at: datetime | None) -> SessionNeed | None:
    query = select(SessionNeed).where(SessionNeed.session_pk == session_pk)
    if at is not None:
        query = query.where(SessionNeed.estimated_at <= at)
    row: SessionNeed | None = db.scalars(
        query.order_by(SessionNeed.estimated_at.desc(), SessionNeed.id.desc())
    ).first()
    return row


def _curve(plan: PlanRecord, entry: dict[str, Any], departure: datetime | None) -> PlannedCurve:
    step_s = int(plan.result.get("step_s") or 900)
    times = [parse_ocpi_datetime(t) for t in plan.result.get("steps", [])]
    power = [float(p) for p in entry.get("power_kw", [])]
    times_unix: list[float] = []
    kept: list[float] = []
    for t, p in zip(times, power, strict=False):
        if departure is not None and t >= departure:
            break
        times_unix.append(t.timestamp())
        kept.append(p)
    return PlannedCurve(
        plan_id=plan.id,
        created_at=plan.created_at,
        planned_for=plan.planned_for,
        step_s=step_s,
        times_unix=times_unix,
        power_kw=kept,
        energy_planned_kwh=float(entry.get("energy_planned_kwh") or 0.0),
        unmet_kwh=float(entry.get("unmet_kwh") or 0.0),
    )


def _binding_limit(
    ctx: EmsContext, plan: PlanRecord, entry: dict[str, Any], max_kw: float
) -> tuple[str, str | None]:
    """Which site limit held the session back: the grid connection, or a protection (named)."""
    try:
        stored = sites.get_site(ctx, plan.site_id, plan.site_version, include_deleted=True)
    except sites.SiteNotFoundError:
        return "site_limit", None
    site = stored.site
    known = {c.id for c in site.connectors()}
    powers = {
        e["connector"]: [float(x) for x in e.get("power_kw", [])]
        for e in (plan.result.get("sessions") or {}).values()
        if e.get("connector") in known
    }
    held = [k for k, p in enumerate(entry.get("power_kw", [])) if float(p) < 0.95 * max_kw]
    if not held:
        return "site_limit", None
    grid = [float(x) for x in plan.result.get("grid_import_kw", [])]
    limit_kw = site.grid_connection.max_power_kw
    if any(k < len(grid) and grid[k] >= 0.98 * limit_kw for k in held):
        return "grid_limit", None
    if entry.get("connector") not in known:
        return "site_limit", None
    try:
        report = check(
            site,
            powers,
            {cid: 3 for cid in powers},
            plan.result.get("pv_kw") or [],
            plan.result.get("base_load_kw") or [],
        )
    except ValueError:
        return "site_limit", None
    worst: tuple[float, str] | None = None
    for r, (protection_id, _phase) in enumerate(report.rows):
        for k in held:
            if k < report.loading_ratio.shape[1]:
                ratio = float(report.loading_ratio[r, k])
                if ratio >= 0.97 and (worst is None or ratio > worst[0]):
                    worst = (ratio, protection_id)
    if worst is not None:
        return "protection_limit", worst[1]
    return "site_limit", None


def _pv_share(plan: PlanRecord, curve: PlannedCurve) -> float | None:
    """The session's planned energy supplied by PV, step by step as in formats §6: the PV left
    after the base load is shared by the EVs in proportion to what each draws."""
    pv = [float(x) for x in plan.result.get("pv_kw") or []]
    base = [float(x) for x in plan.result.get("base_load_kw") or []]
    totals = [0.0] * len(curve.power_kw)
    for e in (plan.result.get("sessions") or {}).values():
        for k, p in enumerate(e.get("power_kw", [])[: len(totals)]):
            totals[k] += float(p)
    planned = sum(curve.power_kw)
    if planned <= 0:
        return None
    from_pv = 0.0
    for k, p in enumerate(curve.power_kw):
        surplus = max(0.0, (pv[k] if k < len(pv) else 0.0) - (base[k] if k < len(base) else 0.0))
        if totals[k] > 0:
            from_pv += p * min(1.0, surplus / totals[k])
    return from_pv / planned


REASONS = {
    "too_short": "Your stay is too short: even at the car's full power ({max_kw:.1f} kW) it cannot take "
    "all of it before you leave.",
    "grid_limit": "The site's grid connection is fully used by the cars charging with you.",
    "protection_limit": "The circuit your charger is on ({name}) is fully used by the cars charging "
    "with you.",
    "site_limit": "The site's electrical limits are shared with the other cars charging now.",
}


def driver_view(ctx: EmsContext, session_pk: int) -> DriverView:
    """Everything the widget shows, read in one go."""
    with ctx.db() as db:
        row = db.get(ChargingSession, session_pk)
        if row is None:
            raise LookupError(f"unknown session {session_pk}")
        db.expunge(row)
        preference = _latest_preference(db, session_pk)
    place = session_place(ctx, row)
    plan: PlanRecord | None = None
    with ctx.db() as db:
        if place.site is not None:
            plan = _latest_plan(db, place.site.id, row.session_id, session_pk)
        need = _need_at(db, session_pk, plan.planned_for if plan is not None else None)
    departure = need.departure if need is not None else (preference.departure_time if preference else None)
    if preference is not None and preference.departure_time is not None:
        up_to_date = plan is not None and plan.created_at >= preference.received_at
        if not up_to_date or need is None:
            departure = preference.departure_time
    else:
        up_to_date = plan is not None

    curve = None
    expected = need_total = max_kw = None
    met: bool | None = None
    reason = reason_text = None
    notes: list[str] = []
    if plan is not None:
        entry = plan.result["sessions"][row.session_id]
        curve = _curve(plan, entry, departure)
        expected = row.kwh + sum(curve.power_kw) * curve.step_s / 3600.0
        share = _pv_share(plan, curve)
        if share is not None and share >= PV_NOTE_SHARE:
            notes.append(f"About {share:.0%} of your charge is planned from the site's solar panels.")
        if entry.get("flags"):
            notes.append(
                "Your charger is not yet in the site's wiring plan: it charges at a safe fixed rate."
            )
        if need is not None:
            need_total = row.kwh + need.energy_needed_kwh
            vehicle_phases = need.vehicle_phases
            if place.connector is not None and place.site is not None:
                max_kw = session_max_power_kw(place.site, place.connector, vehicle_phases, need.max_power_kw)
            else:
                max_kw = need.max_power_kw
            met = curve.unmet_kwh <= MET_TOLERANCE_KWH
            if met and expected is not None and need_total > expected + MET_TOLERANCE_KWH:
                # early in a stay only what is due by then is planned (`ems.planning.needs`): the rest
                # comes as the departure nears, or sooner from the sun
                notes.append(
                    f"{expected - row.kwh:.1f} kWh of it is planned so far; the rest is planned as "
                    "your departure nears, from the solar panels when they can."
                )
                expected = need_total
            if not met:
                hours = max(0.0, (need.departure - plan.planned_for).total_seconds()) / 3600.0
                if max_kw is not None and max_kw * hours < need.energy_needed_kwh - MET_TOLERANCE_KWH:
                    reason = "too_short"
                    reason_text = REASONS[reason].format(max_kw=max_kw)
                else:
                    reason, name = _binding_limit(ctx, plan, entry, max_kw or math.inf)
                    reason_text = REASONS[reason].format(name=name)
    return DriverView(
        session_pk=session_pk,
        session_id=row.session_id,
        status=row.status,
        start=row.start_date_time,
        evse_uid=row.evse_uid,
        connector_id=row.connector_id,
        site_name=place.site.name if place.site is not None else None,
        tz=place.tz,
        delivered_kwh=row.kwh,
        preference=preference,
        need=need,
        curve=curve,
        departure=departure,
        expected_at_departure_kwh=expected,
        need_total_kwh=need_total,
        met=met,
        reason=reason,
        reason_text=reason_text,
        max_power_kw=max_kw,
        up_to_date=up_to_date,
        notes=notes,
    )
