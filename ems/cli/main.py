"""The `ems` command line (formats.md §4): one-line errors and a non-zero exit on bad input."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import typer

from ems.cli import admin as cli_admin
from ems.cli import db as cli_db
from ems.cli import optimize as cli_optimize
from ems.cli import replay as cli_replay
from ems.cli import site as cli_site
from ems.cli import synth as cli_synth
from ems.cli.common import fail
from ems.cli.common import open_context as _context
from ems.core.config import get_settings
from ems.ocpi.errors import OcpiClientError, OcpiError

app = typer.Typer(
    name="ems",
    help="Smart-charging EMS: an OCPI 2.2.1 SCSP planning three-phase-safe charging profiles.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
partner_app = typer.Typer(help="OCPI partners: invite, register, list, sync.", no_args_is_help=True)
app.add_typer(partner_app, name="partner")
app.add_typer(cli_site.app, name="site")
app.add_typer(cli_db.app, name="db")
app.command("optimize")(cli_optimize.optimize_command)
app.command("synth")(cli_synth.synth_command)
app.command("replay")(cli_replay.replay_command)
app.add_typer(cli_admin.admin_app, name="admin")
app.add_typer(cli_admin.driver_app, name="driver")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the EMS: OCPI endpoints, the planner and dispatch, the admin and driver pages."""
    import logging

    import uvicorn

    if log_level not in {"debug", "info", "warning", "error"}:
        fail(f"--log-level {log_level!r}: debug, info, warning or error")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        get_settings()
    except ValueError as exc:  # pydantic's ValidationError: a bad EMS_* variable
        fail(f"bad settings: {' '.join(str(exc).split())}")
    # By name, not by import: `api` depends on `ems`, never the other way round.
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level=log_level)


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address of the EMS.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the EMS.")] = 8000,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 60.0,
    database: Annotated[str, typer.Option(help="SQLite file, made afresh.")] = "ems-demo.db",
    cpo_port: Annotated[int, typer.Option(help="Port of the simulated CPO's OCPI back-end.")] = 9001,
    ocpp_port: Annotated[int, typer.Option(help="Port of its OCPP central system.")] = 9002,
) -> None:
    """The EMS with a simulated CPO and OCPP charge points on the office sample site, in fast time."""
    from pathlib import Path

    from ems.cli.demo import DemoOptions, run_demo

    if speed <= 0:
        fail(f"--speed {speed}: must be positive")
    try:
        code = run_demo(
            DemoOptions(
                host=host,
                port=port,
                speed=speed,
                database=Path(database),
                cpo_port=cpo_port,
                ocpp_port=ocpp_port,
            )
        )
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc))
    raise typer.Exit(code=code)


series_app = typer.Typer(help="Forecast and measured series.", no_args_is_help=True)
app.add_typer(series_app, name="series")


@series_app.command("import")
def series_import(
    path: Annotated[str, typer.Argument(help="series.csv (formats.md §2)")],
    site: Annotated[str, typer.Option("--site", help="The site the series belongs to.")],
) -> None:
    """Store PV, price and base-load series for a site (whole file or nothing)."""
    from ems import sites
    from ems.sites.forecasts import import_series
    from ems.sites.series import SeriesError, read_series

    try:
        series = read_series(path)
    except SeriesError as exc:
        fail(str(exc))
    ctx = _context()
    try:
        sites.get_site(ctx, site)
    except sites.SiteNotFoundError:
        fail(f"--site {site!r}: no such site (import it with `ems site import`)")
    count = import_series(ctx, site, series)
    typer.echo(json.dumps({"site_id": site, "rows": count}))


@partner_app.command("invite")
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


@partner_app.command("register")
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


@partner_app.command("list")
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


@partner_app.command("sync")
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


def main() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
