"""`ems optimize`: one offline optimization of a site's active sessions (formats §4, §5, §7).

Every bad input ends with one line on stderr naming what is wrong and exit code 2; a plan that
had to fall back is still written (status `fallback`, exit 0) because it is a safe plan.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, cast

import typer

from ems.cli.common import InputError, fail_input, read_file_option, read_site_option
from ems.sites.series import SeriesError, parse_timestamp, read_series, resample
from grid_models.site import Site
from optimizer import ObjectiveName, Plan, Problem, ProblemError, Session, SolveOptions, solve

app = typer.Typer(add_completion=False, help="One offline optimization (formats §4–5).")


def _number(item: dict[str, Any], key: str, where: str, required: bool = True) -> float | None:
    if key not in item or item[key] is None:
        if required:
            raise InputError(f"{where}: missing {key!r}")
        return None
    v = item[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InputError(f"{where}: {key!r} must be a number, got {v!r}")
    return float(v)


def _text(item: dict[str, Any], key: str, where: str) -> str:
    v = item.get(key)
    if not isinstance(v, str) or not v:
        raise InputError(f"{where}: missing or empty {key!r}")
    return v


def _time(item: dict[str, Any], key: str, where: str, required: bool = True) -> datetime | None:
    if key not in item or item[key] is None:
        if required:
            raise InputError(f"{where}: missing {key!r}")
        return None
    v = item[key]
    if not isinstance(v, str):
        raise InputError(f"{where}: {key!r} must be an ISO 8601 string, got {v!r}")
    try:
        return parse_timestamp(v, f"{where} {key}")
    except SeriesError as exc:
        raise InputError(str(exc)) from None


def parse_sessions(data: Any, site: Site, source: str = "active.json") -> tuple[Session, ...]:
    """Sessions of an `active.json` document, each matched to a connector of `site` by
    `(evse_uid, connector_id)`; `InputError` naming the session and field otherwise."""
    if not isinstance(data, list):
        raise InputError(f"{source}: must be a JSON list of sessions, got {type(data).__name__}")
    by_ocpi = {(c.evse_uid, c.connector_id): c for c in site.connectors()}
    out: list[Session] = []
    seen: dict[str, str] = {}
    ids: set[str] = set()
    for i, item in enumerate(data):
        where = f"{source} item {i}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: must be an object")
        sid = _text(item, "session_id", where)
        where = f"{source} session {sid!r}"
        if sid in ids:
            raise InputError(f"{where}: session_id listed twice")
        ids.add(sid)
        evse = _text(item, "evse_uid", where)
        cid = item.get("connector_id")
        if isinstance(cid, int) and not isinstance(cid, bool):
            cid = str(cid)
        if not isinstance(cid, str) or not cid:
            raise InputError(f"{where}: missing or empty 'connector_id'")
        conn = by_ocpi.get((evse, cid))
        if conn is None:
            raise InputError(
                f"{where}: unknown connector (evse_uid {evse!r}, connector_id {cid!r}) on this site"
            )
        if conn.id in seen:
            raise InputError(
                f"{where}: connector {evse}/{cid} already has session {seen[conn.id]!r} "
                "(two sessions on one connector)"
            )
        seen[conn.id] = sid
        if len(set(conn.phases)) != len(conn.phases):
            raise InputError(f"{where}: connector {evse}/{cid} has a repeated phase {list(conn.phases)}")
        energy = _number(item, "energy_needed_kwh", where)
        assert energy is not None
        if energy < 0:
            raise InputError(f"{where}: negative 'energy_needed_kwh' {energy}")
        departure = _time(item, "departure", where)
        assert departure is not None
        max_kw = _number(item, "max_power_kw", where, required=False)
        if max_kw is not None and max_kw < 0:
            raise InputError(f"{where}: negative 'max_power_kw' {max_kw}")
        phases = item.get("vehicle_phases", 3)
        if phases is None:
            phases = 3
        if phases not in (1, 3) or isinstance(phases, bool):
            raise InputError(f"{where}: 'vehicle_phases' must be 1 or 3, got {phases!r}")
        priority = _number(item, "priority", where, required=False)
        if priority is not None and priority <= 0:
            raise InputError(f"{where}: 'priority' must be positive, got {priority}")
        min_a = _number(item, "min_current_a", where, required=False)
        if min_a is not None and min_a < 0:
            raise InputError(f"{where}: negative 'min_current_a' {min_a}")
        out.append(
            Session(
                session_id=sid,
                connector_id=conn.id,
                energy_needed_kwh=energy,
                departure=departure,
                vehicle_phases=int(phases),
                max_power_kw=max_kw,
                min_current_a=min_a,
                priority=1.0 if priority is None else priority,
                arrival=_time(item, "arrival", where, required=False),
            )
        )
    return tuple(out)


def _round(values: tuple[float, ...] | list[float], ndigits: int = 6) -> list[float]:
    return [round(v, ndigits) + 0.0 for v in values]


def result_json(plan: Plan) -> dict[str, Any]:
    """The plan as the `result.json` document of formats §5 (plus documented extra fields)."""
    sessions: dict[str, Any] = {}
    for sid, sp in plan.sessions.items():
        sessions[sid] = {
            "power_kw": _round(sp.power_kw),
            "energy_planned_kwh": round(sp.energy_planned_kwh, 6),
            "unmet_kwh": round(sp.unmet_kwh, 6) + 0.0,
            "charging_profile": sp.charging_profile.to_ocpi(),
            "evse_uid": sp.evse_uid,
            "connector_id": sp.ocpi_connector_id,
            "vehicle_phases": sp.vehicle_phases,
            "energy_needed_kwh": sp.energy_needed_kwh,
        }
    return {
        "status": plan.status,
        "objective": plan.objective,
        "step_s": plan.step_s,
        "steps": [t.isoformat() for t in plan.steps],
        "sessions": sessions,
        "grid_import_kw": _round(plan.grid_import_kw),
        "pv_used_kw": _round(plan.pv_used_kw),
        "pv_kw": _round(plan.pv_kw),
        "base_load_kw": _round(plan.base_load_kw),
        "price_eur_per_kwh": None if plan.price_eur_per_kwh is None else list(plan.price_eur_per_kwh),
        "solve_ms": round(plan.solve_ms, 3),
        "build_ms": round(plan.build_ms, 3),
        "method": plan.method,
        "gap": plan.gap,
        "message": plan.message,
        "cost_eur": None if plan.cost_eur is None else round(plan.cost_eur, 6),
        "grid_import_kwh": round(plan.grid_import_kwh, 6),
        "grid_peak_kw": round(plan.grid_peak_kw, 6),
        "unmet_kwh": round(plan.unmet_kwh, 6),
    }


@dataclass(frozen=True)
class _Args:
    site: Path | None
    sessions: Path | None
    series: Path | None
    now: str | None
    step_min: int
    objective: str
    min_current: str
    out: Path | None


def run_optimize(args: _Args) -> dict[str, Any]:
    """The whole command without the terminal: `InputError` on bad input."""
    if args.site is None:
        raise InputError("missing --site site.json")
    if args.sessions is None:
        raise InputError("missing --sessions active.json")
    if args.now is None:
        raise InputError("missing --now ISO")
    if args.objective not in ("self_consumption", "cost", "peak"):
        raise InputError(f"--objective must be self_consumption, cost or peak, got {args.objective!r}")
    objective = cast(ObjectiveName, args.objective)
    if args.min_current not in ("on", "off"):
        raise InputError(f"--min-current must be on or off, got {args.min_current!r}")
    if args.step_min <= 0:
        raise InputError(f"--step-min must be a positive number of minutes, got {args.step_min}")
    try:
        now = parse_timestamp(args.now, "--now")
    except SeriesError as exc:
        raise InputError(str(exc)) from None
    site = read_site_option(args.site)
    if not args.sessions.is_file():
        raise InputError(f"--sessions: file {str(args.sessions)!r} not found")
    try:
        raw = json.loads(args.sessions.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--sessions {args.sessions}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"--sessions {args.sessions}: not valid JSON ({exc})") from None
    sessions = parse_sessions(raw, site, str(args.sessions))
    step_s = args.step_min * 60
    options = SolveOptions(min_current=args.min_current == "on")
    problem = Problem(
        site=site, now=now, sessions=sessions, step_s=step_s, options=options, objective=objective
    )
    n = problem.n_steps()
    if args.series is not None:
        steps = resample(
            read_file_option(args.series, "--series", read_series, (SeriesError,)), now, step_s, n
        )
        problem = Problem(
            site=site,
            now=now,
            sessions=sessions,
            step_s=step_s,
            pv_kw=steps.pv_kw,
            base_load_kw=steps.base_load_kw,
            price_eur_per_kwh=steps.price_eur_per_kwh,
            objective=objective,
            options=options,
        )
    try:
        plan = solve(problem)
    except ProblemError as exc:
        raise InputError(str(exc)) from None
    return result_json(plan)


def optimize_command(
    site: Annotated[Path | None, typer.Option("--site", help="site.json (formats §1)")] = None,
    sessions: Annotated[Path | None, typer.Option("--sessions", help="active.json (formats §4)")] = None,
    series: Annotated[Path | None, typer.Option("--series", help="series.csv (formats §2)")] = None,
    now: Annotated[
        str | None, typer.Option("--now", help="start of the first step, ISO 8601 with offset")
    ] = None,
    step_min: Annotated[int, typer.Option("--step-min", help="step length, minutes")] = 15,
    objective: Annotated[
        str, typer.Option("--objective", help="self_consumption | cost | peak")
    ] = "self_consumption",
    min_current: Annotated[str, typer.Option("--min-current", help="on | off")] = "on",
    out: Annotated[Path | None, typer.Option("--out", help="result.json (default: stdout)")] = None,
) -> None:
    """Plan every active session of a site (formats §4–5) and write result.json."""
    try:
        result = run_optimize(_Args(site, sessions, series, now, step_min, objective, min_current, out))
    except InputError as exc:
        fail_input("optimize", str(exc))
    text = json.dumps(result, indent=1)
    if out is None:
        sys.stdout.write(text + "\n")
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        fail_input("optimize", f"--out {out}: cannot write ({exc.strerror or exc})")


app.command("optimize")(optimize_command)
