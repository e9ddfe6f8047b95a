"""`ems site check`: refuse a bad site file with every problem, and check a plan against every
protection on every phase, cross-checked by a three-phase power flow on the worst step.
`ems site import` / `ems site export`: store a site file as a new version / print one back.

The linear check (grid_models.electrical) is what the planner trusts; the pandapower run shows
on the most loaded step that the linear model agrees with a real unbalanced network.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ems.cli.common import fail, open_context
from ems.sites import Change, SiteConflictError, SiteNotFoundError, get_site, import_site
from grid_models.electrical import CheckReport, check, session_max_power_kw
from grid_models.site import Site
from grid_models.sitefile import load_site
from grid_models.validation import SiteValidationError

app = typer.Typer(help="Site files: validation, plan checks, import and export.", no_args_is_help=True)

MAX_LISTED = 20
"""Violations printed one by one before summarising the rest."""


@app.callback()
def _site() -> None:
    """Site files: validation, plan checks, import into and export from the database."""


class _BadInput(Exception):
    """Input the command refuses; each line becomes an `error:` line."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


@dataclass(frozen=True)
class _Plan:
    steps: list[str]
    connector_power_kw: dict[str, list[float]]
    vehicle_phases: dict[str, int]
    pv_kw: list[float]
    base_load_kw: list[float]


def _numbers(value: Any, what: str, errors: list[str]) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
    ):
        errors.append(f"{what} must be a list of numbers")
        return []
    return [float(x) for x in value]


def _read_plan(site: Site, path: Path, pv_override_kw: float | None, base_override_kw: float | None) -> _Plan:
    """A result.json (formats §5) as connector power series; sessions name their connector by
    `connector` (connector id) or `evse_uid` + `connector_id`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise _BadInput([f"cannot read plan {path}: {exc}"]) from exc
    if not isinstance(data, dict) or not isinstance(data.get("sessions"), dict):
        raise _BadInput([f"plan {path}: expected an object with a 'sessions' object"])
    errors: list[str] = []
    by_id = {c.id: c for c in site.connectors()}
    by_key = {(c.evse_uid, c.connector_id): c.id for c in site.connectors()}
    raw_phases = data.get("vehicle_phases")
    top_phases: dict[str, Any] = raw_phases if isinstance(raw_phases, dict) else {}
    power: dict[str, list[float]] = {}
    phases: dict[str, int] = {}
    owner: dict[str, str] = {}
    for sid, entry in data["sessions"].items():
        if not isinstance(entry, dict):
            errors.append(f"session {sid!r}: must be an object")
            continue
        if isinstance(entry.get("connector"), str):
            cid: str | None = entry["connector"] if entry["connector"] in by_id else None
            wanted = repr(entry["connector"])
        else:
            key = (str(entry.get("evse_uid")), str(entry.get("connector_id")))
            cid = by_key.get(key)
            wanted = f"evse_uid {key[0]!r} connector_id {key[1]!r}"
            if "evse_uid" not in entry or "connector_id" not in entry:
                errors.append(
                    f"session {sid!r}: no connector (give 'connector' or 'evse_uid' + 'connector_id')"
                )
                continue
        if cid is None:
            errors.append(f"session {sid!r}: unknown connector {wanted}")
            continue
        if cid in owner:
            errors.append(f"session {sid!r}: connector {cid!r} already used by session {owner[cid]!r}")
            continue
        owner[cid] = sid
        power[cid] = _numbers(entry.get("power_kw"), f"session {sid!r}: power_kw", errors)
        n_phases = entry.get("vehicle_phases", top_phases.get(sid, 3))
        if isinstance(n_phases, bool) or n_phases not in (1, 3):
            errors.append(f"session {sid!r}: vehicle_phases must be 1 or 3, got {n_phases!r}")
            continue
        phases[cid] = int(n_phases)

    steps = data.get("steps")
    if steps is None:
        n_steps = max((len(v) for v in power.values()), default=0)
        steps = [str(k) for k in range(n_steps)]
    elif not isinstance(steps, list):
        errors.append("steps must be a list")
        steps = []
    for cid, values in power.items():
        if len(values) != len(steps) and values:
            errors.append(f"session {owner[cid]!r}: {len(values)} power values for {len(steps)} steps")

    def series(key: str, override: float | None) -> list[float]:
        if override is not None:
            return [override] * len(steps)
        if key not in data:
            return [0.0] * len(steps)
        values = _numbers(data[key], key, errors)
        if values and len(values) != len(steps):
            errors.append(f"{key}: {len(values)} values for {len(steps)} steps")
        return values or [0.0] * len(steps)

    pv = series("pv_kw", pv_override_kw)
    base = series("base_load_kw", base_override_kw)
    if errors:
        raise _BadInput([f"plan {path}: {e}" for e in errors])
    return _Plan([str(s) for s in steps], power, phases, pv, base)


def _print_report(report: CheckReport, steps: Sequence[str]) -> None:
    for v in report.violations[:MAX_LISTED]:
        typer.echo(
            f"violation: step {v.step} ({steps[v.step]}) protection {v.protection_id} {v.phase}: "
            f"{v.current_a:.1f} A, rated {v.rated_current_a:g} A"
        )
    if len(report.violations) > MAX_LISTED:
        typer.echo(f"... and {len(report.violations) - MAX_LISTED} more protection violations")
    for g in report.grid_violations[:MAX_LISTED]:
        typer.echo(
            f"violation: step {g.step} ({steps[g.step]}) grid import {g.import_kw:.2f} kW > {g.limit_kw:g} kW"
        )
    if len(report.grid_violations) > MAX_LISTED:
        typer.echo(f"... and {len(report.grid_violations) - MAX_LISTED} more grid violations")


def _worst_row(report: CheckReport, with_step: bool = True) -> str:
    if report.worst_step is None or not report.rows:
        return ""
    r = int(report.loading_ratio[:, report.worst_step].argmax())
    pid, phase = report.rows[r]
    step = f", step {report.worst_step}" if with_step else ""
    return f" (protection {pid} {phase}{step})"


def _powerflow_table(site: Site, plan: _Plan, report: CheckReport, step: int) -> None:
    """Print check() currents next to pandapower's for one step."""
    from grid_models.powerflow import powerflow_step

    power = {cid: series[step] for cid, series in plan.connector_power_kw.items() if series}
    try:
        result = powerflow_step(site, power, plan.vehicle_phases, plan.pv_kw[step], plan.base_load_kw[step])
    except RuntimeError as exc:  # no convergence: the linear check above still stands
        typer.echo(f"warning: power flow at step {step} failed: {exc}", err=True)
        return
    typer.echo(f"power flow (pandapower runpp_3ph) at step {step} ({plan.steps[step]}):")
    typer.echo(f"  {'protection':<20} {'phase':<5} {'check_a':>9} {'powerflow_a':>11} {'diff_pct':>8}")
    worst_diff = 0.0
    for r, key in enumerate(report.rows):
        mine = float(report.currents_a[r, step])
        theirs = result.current_a[key]
        diff_pct = 100.0 * abs(theirs - mine) / max(abs(mine), 1e-9) if abs(mine) > 1e-6 else 0.0
        worst_diff = max(worst_diff, diff_pct)
        typer.echo(f"  {key[0]:<20} {key[1]:<5} {mine:9.2f} {theirs:11.2f} {diff_pct:8.3f}")
    vmin = min(result.voltage_pu.values(), default=1.0)
    typer.echo(f"  largest difference {worst_diff:.3f} %, lowest phase voltage {vmin:.5f} p.u.")


def _describe(site: Site) -> str:
    return (
        f"site {site.id}: {len(site.protections)} protections, {len(site.connectors())} connectors, "
        f"{len(site.pv_plants)} PV plant(s), {len(site.loads)} load(s): valid"
    )


@app.command("check")
def check_command(
    site_json: Annotated[Path, typer.Argument(help="site.json to validate")],
    plan: Annotated[
        Path | None, typer.Option("--plan", help="result.json of `ems optimize` to check against the site")
    ] = None,
    pv_kw: Annotated[
        float | None,
        typer.Option("--pv-kw", help="PV power for every step (default: the plan's pv_kw, else 0)"),
    ] = None,
    base_load_kw: Annotated[
        float | None,
        typer.Option(
            "--base-load-kw", help="base load for every step (default: the plan's base_load_kw, else 0)"
        ),
    ] = None,
) -> None:
    """Validate a site file; with --plan, check every step against every protection on every
    phase and the grid connection. Exit 0 when everything holds, 1 otherwise."""
    try:
        site = load_site(site_json)
    except SiteValidationError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        typer.echo(f"error: cannot read site file {site_json}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(_describe(site))

    if plan is None:
        # Without a plan: how far simultaneous full power on every connector is from the limits.
        full: Mapping[str, list[float]] = {
            c.id: [session_max_power_kw(site, c, 3)] for c in site.connectors()
        }
        report = check(site, full, {}, [pv_kw or 0.0], [base_load_kw or 0.0])
        typer.echo(
            f"every connector at full power: max loading ratio {report.max_loading_ratio:.2f}"
            f"{_worst_row(report, with_step=False)}, grid import {float(report.grid_import_kw[0]):.1f} kW "
            f"of {site.grid_connection.max_power_kw:g} kW"
        )
        return

    try:
        parsed = _read_plan(site, plan, pv_kw, base_load_kw)
    except _BadInput as exc:
        for line in exc.lines:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1) from None
    report = check(site, parsed.connector_power_kw, parsed.vehicle_phases, parsed.pv_kw, parsed.base_load_kw)
    typer.echo(f"plan {plan}: {len(parsed.steps)} steps, {len(parsed.connector_power_kw)} sessions")
    _print_report(report, parsed.steps)
    typer.echo(f"max loading ratio: {report.max_loading_ratio:.3f}{_worst_row(report)}")
    typer.echo(
        f"max grid import: {float(report.grid_import_kw.max(initial=0.0)):.2f} kW "
        f"of {site.grid_connection.max_power_kw:g} kW"
    )
    if report.worst_step is not None and parsed.steps:
        _powerflow_table(site, parsed, report, report.worst_step)
    if report.ok:
        typer.echo("ok: no violation")
        return
    typer.echo(
        f"FAILED: {len(report.violations)} protection violation(s), "
        f"{len(report.grid_violations)} grid violation(s)"
    )
    raise typer.Exit(1)


@app.command("import")
def import_command(
    site_json: Annotated[Path, typer.Argument(help="site.json to store")],
    comment: Annotated[str | None, typer.Option(help="Why, kept with the version.")] = None,
) -> None:
    """Store a site file: a new site, or the next version of the site with its id.
    Prints {"site_id", "version"}; a bad file stores nothing and lists every problem."""
    try:
        data = json.loads(site_json.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read site file {site_json}: {exc.strerror or exc}")
    except json.JSONDecodeError as exc:
        fail(f"site file {site_json} is not valid JSON: {exc}")
    ctx = open_context()
    try:
        stored, _created = import_site(ctx, data, Change(comment=comment, author="cli"))
    except SiteValidationError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from None
    except SiteConflictError as exc:
        fail(str(exc))
    finally:
        ctx.close()
    typer.echo(json.dumps({"site_id": stored.site.id, "version": stored.version}))


@app.command("export")
def export_command(
    site_id: Annotated[str, typer.Argument(help="id of a stored site")],
    version: Annotated[int | None, typer.Option(help="A given version (default: the current one).")] = None,
) -> None:
    """Print a stored site file exactly as stored (the current version unless --version)."""
    ctx = open_context()
    try:
        stored = get_site(ctx, site_id, version)
    except SiteNotFoundError as exc:
        fail(str(exc))
    finally:
        ctx.close()
    typer.echo(json.dumps(stored.data, indent=1, ensure_ascii=False))
