"""The `ems` command line (formats.md §4): one-line errors and a non-zero exit on bad input.

Each command group lives in its own module of `ems.cli`; this one only wires them together.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from types import FrameType

import typer

from ems.cli import admin as cli_admin
from ems.cli import db as cli_db
from ems.cli import demo as cli_demo
from ems.cli import explain as cli_explain
from ems.cli import group as cli_group
from ems.cli import optimize as cli_optimize
from ems.cli import partner as cli_partner
from ems.cli import replay as cli_replay
from ems.cli import series as cli_series
from ems.cli import serve as cli_serve
from ems.cli import site as cli_site
from ems.cli import synth as cli_synth
from ems.cli import worker as cli_worker

app = typer.Typer(
    name="ems",
    help="Smart-charging EMS: an OCPI 2.2.1 SCSP planning three-phase-safe charging profiles.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
app.command("serve")(cli_serve.serve_command)
app.command("demo")(cli_demo.demo_command)
app.command("worker")(cli_worker.worker_command)
app.add_typer(cli_partner.app, name="partner")
app.add_typer(cli_site.app, name="site")
app.add_typer(cli_group.app, name="group")
app.add_typer(cli_series.app, name="series")
app.add_typer(cli_db.app, name="db")
app.command("optimize")(cli_optimize.optimize_command)
app.command("synth")(cli_synth.synth_command)
app.command("replay")(cli_replay.replay_command)
app.command("explain")(cli_explain.explain_command)
app.add_typer(cli_admin.admin_app, name="admin")
app.add_typer(cli_admin.driver_app, name="driver")

PLUGIN_GROUP = "ems.commands"
"""Entry-point group of commands other installed packages add to `ems` (e.g. `ems scsp-bench`
from `bench_cpo`): `ems` names them, never imports them, so the import direction holds."""


def _plugin_command(entry: EntryPoint) -> Callable[[typer.Context], None]:
    def command(ctx: typer.Context) -> None:
        # Loaded only when run: `ems --help` and every other command never import the plugin.
        main_of_plugin: Callable[[list[str]], int | None] = entry.load()
        raise typer.Exit(code=main_of_plugin(list(ctx.args)) or 0)

    command.__doc__ = f"(from {entry.value}; `ems {entry.name} --help` for its options)"
    return command


def mount_plugins(cli: typer.Typer, found: Iterable[EntryPoint] | None = None) -> list[str]:
    """Mount each `ems.commands` entry point as `ems NAME ARGS...`: the entry point is a
    `main(argv: list[str]) -> int | None` given every argument after NAME (its own `--help`
    too). A name `ems` has already is skipped. Returns the names mounted."""
    taken = {c.name for c in cli.registered_commands} | {g.name for g in cli.registered_groups}
    mounted = []
    for entry in entry_points(group=PLUGIN_GROUP) if found is None else found:
        if entry.name in taken:
            continue
        cli.command(
            entry.name,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
            add_help_option=False,
        )(_plugin_command(entry))
        taken.add(entry.name)
        mounted.append(entry.name)
    return mounted


mount_plugins(app)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def install_stop_handlers() -> None:
    """SIGINT and SIGTERM stop every command the same way, whatever dispositions it inherited.

    A parent that ignores SIGINT (a background job, some CI runners) passes that on: Python then
    installs no default handler and Ctrl-C would never stop a long-running command or its
    children. Servers inside (uvicorn) take the signals over while they run, then re-raise them.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupt)


def main() -> None:
    install_stop_handlers()
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
