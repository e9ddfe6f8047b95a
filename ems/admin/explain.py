"""Why a charger got what it got: every profile sent for a session, and what it came from.

For each profile the outbox handed to the CPO: the plan that produced it (trigger, status,
inputs digest, site version), the car's need as estimated for that plan with the source of each
figure, the limits in force on the car's path (its protections, the grid connection) and what
the CPO answered, synchronously and by result callback. `ems explain SESSION` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from ems import sites
from ems.core.context import EmsContext
from ems.ocpi.datetimes import format_in_zone, format_ocpi_datetime
from ems.store.models import ChargingSession, Partner, ProfileRequest
from ems.store.planning import PlanRecord, ProfileOutbox, SessionNeed
from grid_models.electrical import ancestors


@dataclass(frozen=True)
class NeedEstimate:
    energy_needed_kwh: float
    energy_source: str
    energy_extra_kwh: float
    departure: datetime
    departure_source: str
    max_power_kw: float | None
    max_power_source: str


@dataclass(frozen=True)
class ProfileStory:
    kind: str
    queued_at: datetime
    state: str
    attempts: int
    sent_at: datetime | None
    answer: str | None
    """The CPO's immediate answer (ChargingProfileResponse), or None if no call got through."""
    error: str | None
    result: str | None
    """The result the CPO POSTed to our response_url, if it did."""
    charging_profile: dict[str, Any] | None
    plan: PlanRecord | None
    need: NeedEstimate | None
    limits: tuple[str, ...]
    timezone: str = "UTC"
    """The zone of the plan's site: times are shown in it (and in UTC, as OCPI has them)."""


@dataclass(frozen=True)
class SessionStory:
    party: str
    session_id: str
    session_pk: int
    status: str
    evse_uid: str
    connector_id: str
    profiles: tuple[ProfileStory, ...]


def explain_session(
    ctx: EmsContext,
    session_id: str | None = None,
    party: str | None = None,
    last: int = 10,
    *,
    session_pk: int | None = None,
) -> list[SessionStory]:
    """Every session with this OCPI id (of one party, `CC/PID`, if given), or the one with this
    key, with its `last` profiles."""
    query = select(ChargingSession, Partner).join(Partner, Partner.id == ChargingSession.partner_id)
    if session_id is not None:
        query = query.where(ChargingSession.session_id == session_id)
    if session_pk is not None:
        query = query.where(ChargingSession.id == session_pk)
    if party is not None:
        country_code, _, party_id = party.upper().partition("/")
        query = query.where(
            ChargingSession.country_code == country_code, ChargingSession.party_id == party_id
        )
    stories = []
    with ctx.db() as db:
        found = [(row[0], row[1]) for row in db.execute(query.order_by(ChargingSession.id))]
        for charging, partner in found:
            rows = list(
                db.scalars(
                    select(ProfileOutbox)
                    .where(ProfileOutbox.session_pk == charging.id)
                    .order_by(ProfileOutbox.id.desc())
                    .limit(last)
                )
            )
            profiles = [_story(ctx, db, charging, row) for row in reversed(rows)]
            stories.append(
                SessionStory(
                    f"{partner.country_code}/{partner.party_id}",
                    charging.session_id,
                    charging.id,
                    charging.status,
                    charging.evse_uid,
                    charging.connector_id,
                    tuple(profiles),
                )
            )
    return stories


def _story(ctx: EmsContext, db: DbSession, charging: ChargingSession, row: ProfileOutbox) -> ProfileStory:
    plan = db.get(PlanRecord, row.plan_id) if row.plan_id is not None else None
    request = (
        db.scalars(select(ProfileRequest).where(ProfileRequest.request_id == row.request_id)).one_or_none()
        if row.request_id
        else None
    )
    need = None
    limits: tuple[str, ...] = ()
    zone = "UTC"
    if plan is not None:
        estimate = db.scalars(
            select(SessionNeed).where(
                SessionNeed.session_pk == charging.id, SessionNeed.estimated_at == plan.planned_for
            )
        ).first()
        if estimate is not None:
            need = NeedEstimate(
                estimate.energy_needed_kwh,
                estimate.energy_source,
                estimate.energy_extra_kwh,
                estimate.departure,
                estimate.departure_source,
                estimate.max_power_kw,
                estimate.max_power_source,
            )
        planned = (plan.result.get("sessions") or {}).get(charging.session_id) or {}
        limits, zone = _limits(ctx, plan.site_id, plan.site_version, str(planned.get("connector", "")))
    return ProfileStory(
        row.kind,
        row.created_at,
        row.state,
        row.attempts,
        row.sent_at,
        row.last_answer,
        row.last_error,
        request.result if request is not None else None,
        row.charging_profile,
        plan,
        need,
        limits,
        zone,
    )


def _limits(ctx: EmsContext, site_id: str, version: int, connector_id: str) -> tuple[tuple[str, ...], str]:
    """The connector's own rating, each protection from it up to the grid, and the connection;
    and the site's time zone."""
    try:
        site = sites.get_site(ctx, site_id, version, include_deleted=True).site
    except sites.SiteNotFoundError:
        return (f"site {site_id} v{version} no longer stored",), "UTC"
    lines = []
    above = ancestors(site)
    rating_a = {p.id: p.rated_current_a for p in site.protections}
    for cp in site.charge_points:
        for connector in cp.connectors:
            if connector.id == connector_id:
                phases = ", ".join(str(phase) for phase in connector.phases)
                lines.append(f"connector {connector.id}: {connector.max_current_a:g} A on {phases}")
                lines += [
                    f"protection {p}: {rating_a[p]:g} A per phase" for p in above.get(cp.protection, ())
                ]
    lines.append(f"grid connection: {site.grid_connection.max_power_kw:g} kW")
    return tuple(lines), site.timezone


def describe_profile(profile: ProfileStory) -> list[str]:
    """The profile's story in lines, the same for `ems explain` and the admin page."""
    answer = profile.answer or (f"no answer ({profile.error})" if profile.error else "not sent yet")

    def at(moment: datetime) -> str:
        local = format_in_zone(moment, profile.timezone, "%Y-%m-%d %H:%M:%S")
        return f"{local} ({format_ocpi_datetime(moment)})"

    lines = [
        f"{profile.kind} queued {at(profile.queued_at)}, {profile.state}, "
        f"{profile.attempts} attempt(s); CPO answered {answer}"
        + (f", result {profile.result}" if profile.result else "")
    ]
    if profile.charging_profile is not None:
        periods = profile.charging_profile.get("charging_profile_period") or []
        unit = profile.charging_profile.get("charging_rate_unit", "")
        shown = ", ".join(f"+{p['start_period']}s {p['limit']:g} {unit}" for p in periods[:6])
        more = f" (+{len(periods) - 6} more)" if len(periods) > 6 else ""
        lines.append(f"profile: {shown}{more}")
    plan = profile.plan
    if plan is None:
        lines.append("plan: none recorded (sent before plans were linked, or its plan was pruned)")
    else:
        lines.append(
            f"plan {plan.id} for {at(plan.planned_for)}, trigger {plan.trigger}, "
            f"{plan.status} ({plan.method}, objective {plan.objective}); "
            f"site {plan.site_id} v{plan.site_version}; "
            f"inputs digest {plan.inputs_digest[:16]}"
        )
    need = profile.need
    if need is not None:
        power = f"{need.max_power_kw:g} kW" if need.max_power_kw is not None else "unknown"
        lines.append(
            f"need: {need.energy_needed_kwh:.1f} kWh ({need.energy_source}) "
            f"+ {need.energy_extra_kwh:.1f} kWh from PV only, "
            f"by {at(need.departure)} ({need.departure_source}), "
            f"at most {power} ({need.max_power_source})"
        )
    lines += [f"limit: {limit}" for limit in profile.limits]
    return lines
