"""`ems explain SESSION`: why a session's charger got what it got (`ems.admin.explain`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ems.admin.explain import SessionStory, describe_profile, explain_session
from ems.cli.common import fail, open_context


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
            for i, line in enumerate(describe_profile(profile))
        ]
    return "\n".join(lines)
