"""Commands other packages add to `ems` through the `ems.commands` entry points (`ems scsp-bench`)."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import typer
from typer.testing import CliRunner

from ems.cli.main import PLUGIN_GROUP, mount_plugins

CALLS: list[list[str]] = []


def recording_main(argv: list[str]) -> int:
    CALLS.append(argv)
    return 3 if "--fail" in argv else 0


def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command("serve")
    def serve() -> None:
        """The command a plugin may not replace."""

    return app


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=PLUGIN_GROUP)


def test_a_plugin_gets_every_argument_after_its_name_and_gives_the_exit_code() -> None:
    app = cli()
    assert mount_plugins(app, [entry("record", f"{__name__}:recording_main")]) == ["record"]
    CALLS.clear()
    ok = CliRunner().invoke(app, ["record", "--site", "x.json", "--help"])
    failed = CliRunner().invoke(app, ["record", "--fail"])
    assert (ok.exit_code, failed.exit_code) == (0, 3)
    assert CALLS == [["--site", "x.json", "--help"], ["--fail"]]


def test_a_plugin_cannot_take_a_name_ems_has() -> None:
    assert mount_plugins(cli(), [entry("serve", f"{__name__}:recording_main")]) == []


def test_scsp_bench_is_mounted_from_its_entry_point_and_refuses_bad_input() -> None:
    app = cli()
    mount_plugins(app, [entry("scsp-bench", "bench_cpo.cli:main")])
    result = CliRunner().invoke(
        app, ["scsp-bench", "--site", "missing.json", "--sessions", "x.csv", "--scsp", "ems"]
    )
    assert result.exit_code == 2
    assert result.output.strip() == "ems scsp-bench: error: --site: file 'missing.json' not found"
