"""What every `ems` command shares: the one-line error, the site file option and the running EMS.

Two kinds of command: those working on the running EMS (`fail`, exit 1) and the offline ones
(`ems optimize`, `ems synth`, `ems replay`) whose contract is one line naming the command and
exit code 2 on bad input (`InputError`, `fail_input`), before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import typer

from ems.core.config import get_settings
from ems.core.context import EmsContext
from grid_models.site import Site
from grid_models.sitefile import load_site
from grid_models.validation import SiteValidationError

EXIT_BAD_INPUT = 2
T = TypeVar("T")


class InputError(ValueError):
    """Bad input of an offline command; its message is the one line printed."""


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


def open_context(*, log_events: bool = True) -> EmsContext:
    """The EMS on the configured database (migrated); a one-line error if it cannot be opened.

    Beside a cluster (EMS_BROKER_URL set) what the command changes goes to the cluster's event
    log (`log_events`; not for a worker, which plans its own events)."""
    try:
        ctx = EmsContext.create(get_settings())
    except Exception as exc:
        fail(f"cannot open the database: {exc}")
    if log_events and ctx.settings.broker_url:
        from ems.cluster.forward import log_events_of

        log_events_of(ctx)
    return ctx


def fail_input(command: str, message: str) -> NoReturn:
    """One line on stderr, `ems <command>: error: ...`, whitespace folded; exit code 2."""
    typer.echo(f"ems {command}: error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code=EXIT_BAD_INPUT)


def read_file_option(
    path: Path, option: str, read: Callable[[Path], T], errors: tuple[type[Exception], ...]
) -> T:
    """The file named by a command-line option, read by `read`; its `errors` (and a missing
    file) become an `InputError` naming the option."""
    if not path.is_file():
        raise InputError(f"{option}: file {str(path)!r} not found")
    try:
        return read(path)
    except errors as exc:
        raise InputError(f"{option}: {exc}") from None


def read_site_option(path: Path, option: str = "--site") -> Site:
    """The site file named by a command-line option; `InputError` naming every problem."""
    if not path.is_file():
        raise InputError(f"{option}: file {str(path)!r} not found")
    try:
        return load_site(path)
    except SiteValidationError as exc:
        raise InputError(f"{option} {path}: " + "; ".join(str(p) for p in exc.problems)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{option} {path}: {exc}") from None
