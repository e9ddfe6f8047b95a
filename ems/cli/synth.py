"""`ems synth`: write a seeded synthetic session log (formats §3) for a site.

Why a command: benchmarks and replays need logs of months with known habits, and anyone must
be able to regenerate the committed examples bit for bit. Every bad input ends with one line on
stderr naming what is wrong and exit code 2; success prints one JSON line with what was written.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Annotated, cast

import typer

from ems.cli.common import InputError, fail_input, read_site_option
from ems.replay.log import write_sessions_csv
from ems.replay.synth import PATTERNS, DeclarationRule, Pattern, SynthError, redeclare, synth_log

app = typer.Typer(add_completion=False, help="Synthetic session logs (formats §3).")

MAX_DAYS = 3660


def _whole(text: str, option: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise InputError(f"{option} must be a whole number, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise InputError(f"{option} must be {bound}, got {value}")
    return value


def run_synth(
    site_path: Path | None,
    pattern: str | None,
    start: str | None,
    days: str | None,
    seed: str | None,
    sessions_per_day: str | None,
    out: Path | None,
    declare: dict[str, str | None] | None = None,
) -> dict[str, object]:
    """The whole command without the terminal: `InputError` on bad input, the summary otherwise."""
    for value, option in (
        (site_path, "--site site.json"),
        (pattern, "--pattern workplace|public"),
        (start, "--start YYYY-MM-DD"),
        (days, "--days N"),
        (seed, "--seed S"),
        (out, "--out sessions.csv"),
    ):
        if value is None:
            raise InputError(f"missing {option}")
    assert site_path is not None and pattern is not None and start is not None
    assert days is not None and seed is not None and out is not None
    if pattern not in PATTERNS:
        raise InputError(f"--pattern must be {' or '.join(PATTERNS)}, got {pattern!r}")
    try:
        start_date = date.fromisoformat(start.strip())
    except ValueError:
        raise InputError(f"--start must be a date YYYY-MM-DD, got {start!r}") from None
    n_days = _whole(days, "--days", 1, MAX_DAYS)
    seed_value = _whole(seed, "--seed", 0)
    rate: float | None = None
    if sessions_per_day is not None:
        try:
            rate = float(sessions_per_day)
        except ValueError:
            raise InputError(f"--sessions-per-day must be a number, got {sessions_per_day!r}") from None
        if not math.isfinite(rate) or rate <= 0:
            raise InputError(f"--sessions-per-day must be a positive number, got {sessions_per_day!r}")
    rule = _declaration_rule(declare or {})
    site = read_site_option(site_path)
    if out.is_dir():
        raise InputError(f"--out {out}: is a folder, expected a file name")
    try:
        log = synth_log(site, cast(Pattern, pattern), start_date, n_days, seed_value, rate)
    except SynthError as exc:
        raise InputError(f"--site {site_path}: {exc}") from None
    written = list(log.sessions) if rule is None else redeclare(log.sessions, rule, seed_value + 1)
    try:
        write_sessions_csv(written, out)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write ({exc.strerror or exc})") from None
    return {
        "sessions_written": len(log.sessions),
        "sessions_skipped": log.skipped,
        "energy_kwh": round(log.energy_kwh, 3),
        "out": str(out),
        "site": site.id,
        "pattern": pattern,
        "start": start_date.isoformat(),
        "days": n_days,
        "seed": seed_value,
        **({} if rule is None else {"declarations": rule.__dict__}),
    }


DECLARE_OPTIONS = {
    "departure_error_ratio": "--declare-departure-error",
    "departure_missing": "--declare-departure-missing",
    "energy_missing": "--declare-energy-missing",
    "energy_error_ratio": "--declare-energy-error",
}


def _declaration_rule(declare: dict[str, str | None]) -> DeclarationRule | None:
    """The rule the `--declare-*` options give (None: the drivers' habits stay)."""
    given = {name: text for name, text in declare.items() if text is not None}
    if not given:
        return None
    values: dict[str, float] = {}
    for name, text in given.items():
        try:
            values[name] = float(text)
        except ValueError:
            raise InputError(f"{DECLARE_OPTIONS[name]} must be a number, got {text!r}") from None
    rule = DeclarationRule(**values)
    for problem in rule.problems():
        name = problem.split(" ", 1)[0]
        raise InputError(problem.replace(name, DECLARE_OPTIONS[name], 1))
    return rule


def synth_command(
    site: Annotated[Path | None, typer.Option("--site", help="site.json (formats §1)")] = None,
    pattern: Annotated[str | None, typer.Option("--pattern", help="workplace | public")] = None,
    start: Annotated[str | None, typer.Option("--start", help="first day, YYYY-MM-DD (site-local)")] = None,
    days: Annotated[str | None, typer.Option("--days", help="number of days")] = None,
    seed: Annotated[str | None, typer.Option("--seed", help="random seed, a whole number >= 0")] = None,
    sessions_per_day: Annotated[
        str | None,
        typer.Option(
            "--sessions-per-day",
            help="mean cars a working day (default: 1 per connector at work, 3 in a public car park)",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="sessions.csv to write (formats §3)")] = None,
    departure_error: Annotated[
        str | None,
        typer.Option(
            "--declare-departure-error",
            help="declare every departure off by Uniform(-r, r) x the stay (replaces the habits)",
        ),
    ] = None,
    departure_missing: Annotated[
        str | None,
        typer.Option("--declare-departure-missing", help="share of sessions declaring no departure"),
    ] = None,
    energy_missing: Annotated[
        str | None, typer.Option("--declare-energy-missing", help="share of sessions declaring no energy")
    ] = None,
    energy_error: Annotated[
        str | None,
        typer.Option("--declare-energy-error", help="declare every energy x Uniform(1-r, 1+r)"),
    ] = None,
) -> None:
    """Write a seeded synthetic session log for a site and print a one-line JSON summary.

    With any `--declare-*` option every session's declarations follow that rule instead of the
    drivers' habits (and no state of charge is declared)."""
    declare = {
        "departure_error_ratio": departure_error,
        "departure_missing": departure_missing,
        "energy_missing": energy_missing,
        "energy_error_ratio": energy_error,
    }
    try:
        summary = run_synth(site, pattern, start, days, seed, sessions_per_day, out, declare)
    except InputError as exc:
        fail_input("synth", str(exc))
    typer.echo(json.dumps(summary))


app.command("synth")(synth_command)
