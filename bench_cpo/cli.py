"""The command line: `ems scsp-bench` (mounted by `ems` from the `ems.commands` entry point) and
`python -m bench_cpo`.

Prints one JSON line (the ranking and each SCSP's headline scores) and writes `--out`:
`scores.json`, `report.html`, and per SCSP the replay's kpis.json, CSVs and plots. Bad input:
one line on stderr and exit code 2, before anything starts. An SCSP that misbehaves is scored,
never an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from bench_cpo.backend import MODES
from bench_cpo.bench import Bench, BenchConfig, BenchError, run_bench
from bench_cpo.scores import score, write_report
from bench_cpo.scsp import ScspSpec, ScspSpecError, parse_scsp
from ems.planning.strategies import PLAN_STRATEGIES
from ems.replay.log import LogError, LoggedSession, read_session_log
from ems.sites.series import SeriesError, read_series
from examples.cpo_simulator.arrivals import shift_to_day
from grid_models import SiteValidationError, load_site

EXIT_BAD_INPUT = 2
HEADLINE = (
    "registered",
    "profiles_malformed",
    "profiles_late",
    "profile_response_s_p95",
    "ocpi_errors_answered",
    "ocpi_pushes_failed",
)
HEADLINE_KPIS = (
    "energy_delivered_kwh",
    "unmet_kwh",
    "grid_import_kwh",
    "ev_pv_share_ratio",
    "protection_violations",
)


class InputError(ValueError):
    pass


def _fail(message: str) -> NoReturn:
    print(f"ems scsp-bench: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _fail(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="ems scsp-bench",
        description="Play a CPO towards several SCSPs on the same session log; score each from what its "
        "profiles let the cars draw.",
    )
    p.add_argument("--site", type=Path, required=True, help="site.json (formats §1): the real wiring")
    p.add_argument(
        "--sessions", type=Path, required=True, help="sessions.csv or OCPI JSON Lines (formats §3)"
    )
    p.add_argument("--series", type=Path, help="series.csv (formats §2): actual PV, base load, price")
    p.add_argument(
        "--scsp",
        action="append",
        default=[],
        required=True,
        help="an SCSP: NAME=VERSIONS_URL (with --token-a NAME=TOKEN), or [NAME=]ems[:STRATEGY] to start "
        f"this EMS on a fresh database (STRATEGY: {', '.join(PLAN_STRATEGIES)}); repeat for each",
    )
    p.add_argument("--token-a", action="append", default=[], help="NAME=TOKEN: the token A an SCSP gave")
    p.add_argument("--out", type=Path, default=Path("scsp-bench-out"), help="output folder")
    p.add_argument("--mode", choices=MODES, default="push", help="push Sessions, or serve them to pull")
    p.add_argument(
        "--speed", type=float, default=600.0, help="simulated seconds per real second (1: real time)"
    )
    p.add_argument("--step-min", type=int, default=15, help="step length, minutes (as ems replay)")
    p.add_argument(
        "--response-window-s",
        type=float,
        default=300.0,
        help="simulated s of grace for an SCSP's latency: a first profile within it holds from the step",
    )
    p.add_argument("--replan-min", type=int, default=60, help="started SCSPs re-plan this often (simulated)")
    p.add_argument(
        "--setup-s", type=float, default=15.0, help="real seconds to start SCSP servers and register"
    )
    p.add_argument("--http-timeout-s", type=float, default=5.0, help="how long the CPO waits for an SCSP")
    p.add_argument("--shift-to-day", help="YYYY-MM-DD: move the log so its first day is this one")
    p.add_argument(
        "--workdir", type=Path, help="where started SCSPs keep their databases (default: a temp dir)"
    )
    p.add_argument("--host", default="127.0.0.1", help="address the bench's CPOs listen on")
    p.add_argument("--log-level", default="WARNING")
    return p


def _sessions(args: argparse.Namespace, zone: ZoneInfo) -> tuple[LoggedSession, ...]:
    if not args.sessions.is_file():
        raise InputError(f"--sessions: file {str(args.sessions)!r} not found")
    try:
        sessions = read_session_log(args.sessions)
    except LogError as exc:
        raise InputError(f"--sessions: {exc}") from None
    if args.shift_to_day:
        try:
            day = date.fromisoformat(args.shift_to_day)
        except ValueError:
            raise InputError(f"--shift-to-day {args.shift_to_day!r}: expected YYYY-MM-DD") from None
        sessions = shift_to_day(sessions, day, zone)
    return tuple(sessions)


def config_from(args: argparse.Namespace, workdir: Path) -> BenchConfig:
    """The bench asked for, every input read and checked; `InputError` naming what is wrong."""
    if not args.site.is_file():
        raise InputError(f"--site: file {str(args.site)!r} not found")
    try:
        site = load_site(args.site)
    except SiteValidationError as exc:
        raise InputError(f"--site {args.site}: " + "; ".join(str(p) for p in exc.problems)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"--site {args.site}: {exc}") from None
    sessions = _sessions(args, ZoneInfo(site.timezone))
    series = None
    if args.series is not None:
        if not args.series.is_file():
            raise InputError(f"--series: file {str(args.series)!r} not found")
        try:
            series = read_series(args.series)
        except SeriesError as exc:
            raise InputError(f"--series: {exc}") from None
    tokens: dict[str, str] = {}
    for item in args.token_a:
        name, sep, token = item.partition("=")
        if not sep or not name or not token:
            raise InputError(f"--token-a {item!r}: expected NAME=TOKEN")
        tokens[name] = token
    scsps: list[ScspSpec] = []
    for text in args.scsp:
        try:
            spec = parse_scsp(text, tokens)
        except ScspSpecError as exc:
            raise InputError(str(exc)) from None
        if spec.strategy is not None and spec.strategy not in PLAN_STRATEGIES:
            raise InputError(
                f"--scsp {text!r}: strategy {spec.strategy!r} is not one of {', '.join(PLAN_STRATEGIES)}"
            )
        if any(s.name == spec.name for s in scsps):
            raise InputError(f"--scsp {text!r}: two SCSPs named {spec.name!r}")
        scsps.append(spec)
    if args.speed <= 0 or args.setup_s <= 0 or args.http_timeout_s <= 0 or args.replan_min <= 0:
        raise InputError("--speed, --setup-s, --http-timeout-s and --replan-min must be positive")
    if args.step_min <= 0 or 1440 % args.step_min:
        raise InputError(f"--step-min {args.step_min}: must be a positive divisor of 1440")
    if not 0 < args.response_window_s < args.step_min * 60:
        raise InputError(f"--response-window-s {args.response_window_s:g}: above 0 and below the step")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out}: exists and is not a folder")
    config = BenchConfig(
        site_path=args.site.resolve(),
        site=site,
        sessions=sessions,
        scsps=tuple(scsps),
        workdir=workdir,
        series_path=args.series.resolve() if args.series else None,
        series=series,
        mode=args.mode,
        speed=args.speed,
        step_s=args.step_min * 60,
        response_window_s=args.response_window_s,
        plan_interval_s=args.replan_min * 60.0,
        setup_s=args.setup_s,
        http_timeout_s=args.http_timeout_s,
        host=args.host,
    )
    try:
        Bench(config)  # the log on the site: connectors, overlaps
    except BenchError as exc:
        raise InputError(str(exc)) from None
    return config


def summary(document: dict[str, Any], out: Path) -> dict[str, Any]:
    return {
        "out": str(out),
        "site": document["site"],
        "mode": document["mode"],
        "ranking": document["ranking"],
        "scsps": {
            name: {**{k: s[k] for k in HEADLINE}, **{k: s["kpis"][k] for k in HEADLINE_KPIS}}
            for name, s in document["scsps"].items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=str(args.log_level).upper(), format="%(levelname)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(prefix="scsp-bench-") as scratch:
        workdir = (args.workdir or Path(scratch)).resolve()
        try:
            config = config_from(args, workdir)
        except InputError as exc:
            _fail(str(exc))
        try:
            outcome = asyncio.run(run_bench(config))
        except BenchError as exc:
            _fail(str(exc))
        scored = [score(outcome, run) for run in outcome.runs]
        try:
            document = write_report(outcome, scored, args.out)
        except OSError as exc:
            _fail(f"--out {args.out}: cannot write ({exc.strerror or exc})")
    print(json.dumps(summary(document, args.out)), flush=True)
    return 0
