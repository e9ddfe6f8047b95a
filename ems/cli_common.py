"""What every `ems` command shares: the one-line error and the running EMS it works on."""

from __future__ import annotations

from typing import NoReturn

import typer

from ems.config import get_settings
from ems.context import EmsContext


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def open_context() -> EmsContext:
    """The EMS on the configured database (migrated); a one-line error if it cannot be opened."""
    try:
        return EmsContext.create(get_settings())
    except Exception as exc:
        fail(f"cannot open the database: {exc}")
