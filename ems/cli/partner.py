"""`ems partner`: invite, register, list and sync OCPI partners (formats.md §4)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer

from ems.cli.common import fail
from ems.cli.common import open_context as _context
from ems.ocpi.errors import OcpiClientError, OcpiError

app = typer.Typer(help="OCPI partners: invite, register, list, sync.", no_args_is_help=True)


@app.command("invite")
def partner_invite(
    country_code: Annotated[str, typer.Option("--country-code", help="The CPO's ISO country code.")],
    party_id: Annotated[str, typer.Option("--party-id", help="The CPO's party id (3 characters).")],
    role: Annotated[str, typer.Option(help="The partner's OCPI role.")] = "CPO",
) -> None:
    """Print the token A and versions URL a CPO registers with."""
    if len(country_code) != 2 or not country_code.isalpha():
        fail(f"--country-code {country_code!r}: two letters expected")
    if len(party_id) != 3 or not party_id.isalnum():
        fail(f"--party-id {party_id!r}: three letters or digits expected")
    if role.upper() not in {"CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"}:
        fail(f"--role {role!r}: not an OCPI role")
    from ems.ocpi.partners import invite

    invitation = invite(_context(), country_code, party_id, role)
    typer.echo(json.dumps({"token_a": invitation.token_a, "versions_url": invitation.versions_url}))


@app.command("register")
def partner_register(
    versions_url: Annotated[str, typer.Option("--versions-url", help="The CPO's versions endpoint.")],
    token_a: Annotated[str, typer.Option("--token-a", help="The token the CPO gave us.")],
    token_encoding: Annotated[
        str, typer.Option("--token-encoding", help="base64 (OCPI 2.2.1) or raw (older peers).")
    ] = "base64",
) -> None:
    """Register this EMS with a CPO (the EMS initiates the credentials handshake)."""
    if token_encoding not in {"base64", "raw"}:
        fail(f"--token-encoding {token_encoding!r}: base64 or raw")
    if not versions_url.startswith(("http://", "https://")):
        fail(f"--versions-url {versions_url!r}: not an http(s) URL")
    from ems.ocpi.partners import register_with

    try:
        partner = register_with(_context(), versions_url, token_a, token_encoding)
    except OcpiError as exc:
        fail(f"registration refused (OCPI {exc.status_code}): {exc.message}")
    except OcpiClientError as exc:
        fail(f"registration failed: {exc}")
    typer.echo(
        json.dumps(
            {
                "partner_id": partner.id,
                "country_code": partner.country_code,
                "party_id": partner.party_id,
                "role": partner.role,
                "status": partner.status,
            }
        )
    )


@app.command("list")
def partner_list() -> None:
    """One JSON line per partner: identity, status, endpoints."""
    from ems.ocpi.partners import list_partners

    for partner in list_partners(_context()):
        typer.echo(
            json.dumps(
                {
                    "partner_id": partner.id,
                    "country_code": partner.country_code,
                    "party_id": partner.party_id,
                    "role": partner.role,
                    "business_name": partner.business_name,
                    "status": partner.status,
                    "version": partner.version,
                    "versions_url": partner.versions_url,
                    "endpoints": [f"{e['identifier']}:{e['role']}" for e in partner.endpoints],
                    "last_sync_at": partner.last_sync_at.isoformat() if partner.last_sync_at else None,
                }
            )
        )


@app.command("sync")
def partner_sync(
    partner_id: Annotated[
        int | None, typer.Option("--partner", help="One partner id (default: all).")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--date-from", help="ISO time; default: since the last sync.")
    ] = None,
) -> None:
    """Pull Sessions and Locations from the CPOs' sender interfaces."""
    from ems.ocpi.datetimes import parse_ocpi_datetime
    from ems.ocpi.sync import sync_all, sync_partner

    since: datetime | None = None
    if date_from is not None:
        try:
            since = parse_ocpi_datetime(date_from)
        except ValueError as exc:
            fail(f"--date-from {date_from!r}: {exc}")
    ctx = _context()
    try:
        reports = [sync_partner(ctx, partner_id, since)] if partner_id is not None else sync_all(ctx)
    except OcpiClientError as exc:
        fail(f"sync failed: {exc}")
    for report in reports:
        typer.echo(
            json.dumps(
                {
                    "partner_id": report.partner_id,
                    "sessions": report.sessions,
                    "locations": report.locations,
                    "ignored_older": report.ignored,
                    "errors": report.errors,
                }
            )
        )
