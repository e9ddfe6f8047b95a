"""`ems admin create-user` (who may log in to the admin pages) and `ems driver link` (a signed
link to one session's driver widget)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ems.cli.common import fail, open_context

admin_app = typer.Typer(help="Administrators of the admin pages.", no_args_is_help=True)
driver_app = typer.Typer(help="Driver widget links.", no_args_is_help=True)


@admin_app.callback()
def _admin() -> None:
    """Administrators of the admin pages (diagram editor, dashboard)."""


@driver_app.callback()
def _driver() -> None:
    """Signed links to the driver widget."""


def _read_password(password: str | None, stdin: bool) -> str:
    if password is not None:
        return password
    if stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first: str = typer.prompt("Password", hide_input=True)
    second: str = typer.prompt("Repeat the password", hide_input=True)
    if first != second:
        fail("the two passwords differ")
    return first


@admin_app.command("create-user")
def create_user(
    username: Annotated[str, typer.Argument(help="The log-in name.")],
    password: Annotated[
        str | None,
        typer.Option("--password", help="The password (else prompted, or read from standard input)."),
    ] = None,
    stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Reset an existing user.")] = False,
) -> None:
    """Create an administrator (or, with --replace, set a new password)."""
    from ems.admin.users import UserError
    from ems.admin.users import create_user as create

    secret = _read_password(password, stdin)
    try:
        create(open_context(), username, secret, replace=replace)
    except UserError as exc:
        fail(str(exc))
    typer.echo(json.dumps({"username": username, "status": "password set" if replace else "created"}))


@driver_app.command("link")
def driver_link(session_pk: Annotated[int, typer.Argument(help="The session's primary key.")]) -> None:
    """Print a signed link to the driver widget of one session."""
    from ems.drivers.links import mint

    ctx = open_context()
    try:
        link = mint(ctx, session_pk)
    except LookupError as exc:
        fail(str(exc))
    typer.echo(
        json.dumps(
            {
                "session_pk": session_pk,
                "url": f"{ctx.settings.public_url}{link.path()}",
                "expires_at": link.expires_at.isoformat(),
            }
        )
    )
