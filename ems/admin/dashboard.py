"""What the site dashboard shows, read in one pass: power now against the limits, the loading of
every protection on every phase, the active sessions with their needs and profile delivery, the
recent plans with their solver timings, and the partners.

"Now" is the step of the latest plan that holds the clock's time; measured EV power comes from
each session's last charging period, so the planned and the measured can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ems import sites
from ems.core.context import EmsContext
from ems.ocpi.datetimes import parse_ocpi_datetime
from ems.store.models import ChargingPeriod, ChargingSession, Partner, ProfileRequest
from ems.store.planning import PlanRecord, ProfileOutbox, SessionNeed
from grid_models.electrical import check
from grid_models.site import Site

ACTIVE = ("ACTIVE", "PENDING")
RECENT_PLANS = 10


@dataclass(frozen=True)
class LivePower:
    at_step: datetime | None
    pv_kw: float
    base_load_kw: float
    ev_planned_kw: float
    ev_measured_kw: float | None
    grid_import_kw: float
    grid_limit_kw: float


@dataclass(frozen=True)
class PhaseLoading:
    protection_id: str
    phase: str
    rated_current_a: float
    current_now_a: float
    loading_now_pct: float
    peak_loading_pct: float
    """Highest loading of the plan over its whole horizon."""


@dataclass(frozen=True)
class SessionLine:
    session_pk: int
    session_id: str
    partner: str
    evse_uid: str
    connector_id: str
    site_connector: str | None
    status: str
    start: datetime
    delivered_kwh: float
    measured_kw: float | None
    need: SessionNeed | None
    planned_kw_now: float | None
    energy_planned_kwh: float | None
    unmet_kwh: float | None
    profile: dict[str, Any] | None
    flags: list[str]
    outbox_state: str | None
    outbox_answer: str | None
    outbox_error: str | None
    request_result: str | None
    """The CPO's asynchronous result of the last profile sent (ACCEPTED, REJECTED, UNKNOWN)."""


@dataclass(frozen=True)
class PartnerLine:
    partner_id: int
    country_code: str
    party_id: str
    role: str
    business_name: str | None
    status: str
    version: str | None
    last_sync_at: datetime | None
    active_sessions: int


@dataclass(frozen=True)
class Dashboard:
    site: Site
    site_version: int
    now: datetime
    plan: PlanRecord | None
    live: LivePower | None
    loading: list[PhaseLoading]
    sessions: list[SessionLine]
    plans: list[PlanRecord]
    partners: list[PartnerLine]


def step_offset(plan: PlanRecord, now: datetime) -> int:
    """The plan's step `now` falls in; negative before the plan, past its last step after it."""
    step_s = int(plan.result.get("step_s") or 900)
    return int((now - plan.planned_for).total_seconds() // step_s)


def _step_index(plan: PlanRecord, now: datetime) -> int:
    steps = plan.result.get("steps") or []
    k = step_offset(plan, now) if steps else 0
    return max(0, min(k, len(steps) - 1))


def value_at(values: list[Any] | None, k: int) -> float:
    return float(values[k]) if values and 0 <= k < len(values) else 0.0


def measured_kw(periods: list[ChargingPeriod], now: datetime) -> float | None:
    """Mean power of the last charging period: its POWER dimension, else ENERGY over its length."""
    if not periods:
        return None
    last = periods[-1]
    dims = {d.get("type"): float(d.get("volume", 0.0)) for d in last.dimensions if isinstance(d, dict)}
    if "POWER" in dims:
        return dims["POWER"]
    if "ENERGY" in dims and len(periods) > 1:
        hours = (last.start_date_time - periods[-2].start_date_time).total_seconds() / 3600.0
        prev = {d.get("type"): float(d.get("volume", 0.0)) for d in periods[-2].dimensions}
        return prev.get("ENERGY", 0.0) / hours if hours > 0 else None
    return None


def _loading(ctx: EmsContext, plan: PlanRecord, k: int) -> list[PhaseLoading]:
    """`grid_models.electrical.check` of the plan on the wiring it was made for."""
    try:
        stored = sites.get_site(ctx, plan.site_id, plan.site_version, include_deleted=True)
    except sites.SiteNotFoundError:
        return []
    site = stored.site
    known = {c.id for c in site.connectors()}
    entries = (plan.result.get("sessions") or {}).values()
    powers = {e["connector"]: e.get("power_kw", []) for e in entries if e.get("connector") in known}
    phases: dict[str, int] = {}
    with ctx.db() as db:
        for e in entries:
            if e.get("connector") not in known:
                continue
            need = db.scalars(
                select(SessionNeed)
                .where(SessionNeed.session_pk == e.get("session_pk"))
                .order_by(SessionNeed.id.desc())
            ).first()
            phases[e["connector"]] = need.vehicle_phases if need is not None else 3
    try:
        report = check(
            site, powers, phases, plan.result.get("pv_kw") or [], plan.result.get("base_load_kw") or []
        )
    except ValueError:
        return []
    out = []
    n_steps = report.currents_a.shape[1] if report.currents_a.ndim == 2 else 0
    for r, (protection_id, phase) in enumerate(report.rows):
        now_a = float(report.currents_a[r, k]) if n_steps else 0.0
        rated = float(report.rated_current_a[r])
        out.append(
            PhaseLoading(
                protection_id=protection_id,
                phase=phase,
                rated_current_a=rated,
                current_now_a=now_a,
                loading_now_pct=100.0 * abs(now_a) / rated if rated else 0.0,
                peak_loading_pct=100.0 * float(report.loading_ratio[r].max()) if n_steps else 0.0,
            )
        )
    return out


def site_dashboard(ctx: EmsContext, site_id: str) -> Dashboard:
    stored = sites.get_site(ctx, site_id)
    site = stored.site
    now = ctx.clock.now()
    keys = {(c.evse_uid, c.connector_id): c.id for c in site.connectors()}
    linked = {ref.location_id for ref in site.ocpi_locations}
    with ctx.db() as db:
        plans = list(
            db.scalars(
                select(PlanRecord)
                .where(PlanRecord.site_id == site_id)
                .order_by(PlanRecord.id.desc())
                .limit(RECENT_PLANS)
            )
        )
        plan = plans[0] if plans else None
        planned = (plan.result.get("sessions") or {}) if plan is not None else {}
        planned_pks = {e.get("session_pk") for e in planned.values()}
        rows = db.scalars(
            select(ChargingSession).where(ChargingSession.status.in_(ACTIVE)).order_by(ChargingSession.id)
        ).all()
        k = _step_index(plan, now) if plan is not None else 0
        partners_by_id = {p.id: p for p in db.scalars(select(Partner).order_by(Partner.id))}
        lines: list[SessionLine] = []
        measured_total: float | None = None
        for row in rows:
            key = (row.evse_uid, row.connector_id)
            if key not in keys and row.id not in planned_pks and row.location_id not in linked:
                continue
            periods = list(
                db.scalars(
                    select(ChargingPeriod)
                    .where(ChargingPeriod.session_pk == row.id)
                    .order_by(ChargingPeriod.position)
                )
            )
            measured = measured_kw(periods, now)
            if measured is not None:
                measured_total = (measured_total or 0.0) + measured
            need = db.scalars(
                select(SessionNeed).where(SessionNeed.session_pk == row.id).order_by(SessionNeed.id.desc())
            ).first()
            entry = planned.get(row.session_id)
            if entry is not None and entry.get("session_pk") != row.id:
                entry = None
            outbox = db.scalars(
                select(ProfileOutbox)
                .where(ProfileOutbox.session_pk == row.id)
                .order_by(ProfileOutbox.id.desc())
            ).first()
            request = None
            if outbox is not None and outbox.request_id is not None:
                request = db.scalars(
                    select(ProfileRequest).where(ProfileRequest.request_id == outbox.request_id)
                ).first()
            partner = partners_by_id.get(row.partner_id)
            lines.append(
                SessionLine(
                    session_pk=row.id,
                    session_id=row.session_id,
                    partner=f"{partner.country_code}*{partner.party_id}" if partner else "?",
                    evse_uid=row.evse_uid,
                    connector_id=row.connector_id,
                    site_connector=keys.get(key),
                    status=row.status,
                    start=row.start_date_time,
                    delivered_kwh=row.kwh,
                    measured_kw=measured,
                    need=need,
                    planned_kw_now=value_at(entry.get("power_kw"), k) if entry else None,
                    energy_planned_kwh=entry.get("energy_planned_kwh") if entry else None,
                    unmet_kwh=entry.get("unmet_kwh") if entry else None,
                    profile=entry.get("charging_profile") if entry else None,
                    flags=list(entry.get("flags") or []) if entry else [],
                    outbox_state=outbox.state if outbox else None,
                    outbox_answer=outbox.last_answer if outbox else None,
                    outbox_error=outbox.last_error if outbox else None,
                    request_result=request.result if request else None,
                )
            )
        active_by_partner: dict[int, int] = {}
        for row in rows:
            active_by_partner[row.partner_id] = active_by_partner.get(row.partner_id, 0) + 1
        partners = [
            PartnerLine(
                partner_id=p.id,
                country_code=p.country_code,
                party_id=p.party_id,
                role=p.role,
                business_name=p.business_name,
                status=p.status,
                version=p.version,
                last_sync_at=p.last_sync_at,
                active_sessions=active_by_partner.get(p.id, 0),
            )
            for p in partners_by_id.values()
        ]
        for p in plans:
            db.expunge(p)

    live = None
    loading: list[PhaseLoading] = []
    if plan is not None:
        steps = plan.result.get("steps") or []
        ev = sum(value_at(e.get("power_kw"), k) for e in planned.values())
        live = LivePower(
            at_step=parse_ocpi_datetime(steps[k]) if steps else None,
            pv_kw=value_at(plan.result.get("pv_kw"), k),
            base_load_kw=value_at(plan.result.get("base_load_kw"), k),
            ev_planned_kw=ev,
            ev_measured_kw=measured_total,
            grid_import_kw=value_at(plan.result.get("grid_import_kw"), k),
            grid_limit_kw=site.grid_connection.max_power_kw,
        )
        loading = _loading(ctx, plan, k)
    return Dashboard(site, stored.version, now, plan, live, loading, lines, plans, partners)


def power_series(plan: PlanRecord) -> dict[str, list[float]]:
    """The plan's totals per step for the dashboard chart (unix seconds, kW)."""
    steps = [parse_ocpi_datetime(t).timestamp() for t in plan.result.get("steps") or []]
    n = len(steps)
    ev = [0.0] * n
    for e in (plan.result.get("sessions") or {}).values():
        for i, p in enumerate(e.get("power_kw", [])[:n]):
            ev[i] += float(p)

    def series(name: str) -> list[float]:
        values = [float(v) for v in plan.result.get(name) or []]
        return (values + [0.0] * n)[:n]

    return {
        "t": steps,
        "pv_kw": series("pv_kw"),
        "base_load_kw": series("base_load_kw"),
        "ev_kw": ev,
        "grid_import_kw": series("grid_import_kw"),
    }
