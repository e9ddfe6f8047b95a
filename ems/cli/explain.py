"""`ems explain SESSION`: why a session's charger got what it got (`ems.admin.explain`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ems.admin.explain import ProfileStory, SessionStory, explain_session
from ems.cli.common import fail, open_context
from ems.ocpi.datetimes import format_ocpi_datetime


def explain_command(
    session_id: Annotated[str, typer.Argument(help="The session id the CPO uses (OCPI Session.id).")],
    party: Annotated[str | None, typer.Option(help="Only this CPO's session: CC/PID.")] = None,
    last: Annotated[int, typer.Option(min=1, help="How many of the latest profiles to show.")] = 10,
) -> None:
    """Every profile sent for a session: its plan, the car's estimated need and its sources, the
    limits in force on the car's path and the CPO's answer."""
    if party is not None and (len(party) != 6 or party[2] != "/"):
        fail(f"--party {party!r}: CC/PID expected, e.g. NL/CPO")
    ctx = open_context()
    try:
        stories = explain_session(ctx, session_id, party, last)
    finally:
        ctx.close()
    if not stories:
        fail(f"no session {session_id!r}" + (f" of {party}" if party else ""))
    for story in stories:
        typer.echo(_session_text(story))


def _session_text(story: SessionStory) -> str:
    lines = [
        f"session {story.party}/{story.session_id} (key {story.session_pk}), {story.status}, "
        f"EVSE {story.evse_uid} connector {story.connector_id}: {len(story.profiles)} profile(s)"
    ]
    if not story.profiles:
        lines.append("  no profile sent yet")
    for number, profile in enumerate(story.profiles, 1):
        lines += [
            f"  {number}. " + line if i == 0 else "     " + line
            for i, line in enumerate(_profile_text(profile))
        ]
    return "\n".join(lines)


def _profile_text(profile: ProfileStory) -> list[str]:
    answer = profile.answer or (f"no answer ({profile.error})" if profile.error else "not sent yet")
    lines = [
        f"{profile.kind} queued {format_ocpi_datetime(profile.queued_at)}, {profile.state}, "
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
            f"plan {plan.id} for {format_ocpi_datetime(plan.planned_for)}, trigger {plan.trigger}, "
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
            f"by {format_ocpi_datetime(need.departure)} ({need.departure_source}), "
            f"at most {power} ({need.max_power_source})"
        )
    lines += [f"limit: {limit}" for limit in profile.limits]
    return lines
