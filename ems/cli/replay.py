"""`ems replay` (formats §4, §6): a session log replayed through the server's planner.

Mounted as `ems replay` by the main CLI (`app.command("replay")(replay_command)`). Bad input
gets one line on stderr and exit code 2, before any replay starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from ems.cli.common import InputError, fail_input, read_file_option, read_site_option

if TYPE_CHECKING:
    from ems.replay.log import LoggedSession

LONG_REPLAY_DAYS = 7
"""Replays longer than this show a progress bar on stderr."""

app = typer.Typer(add_completion=False, help="Replay a session log in simulated time (formats §4, §6).")


def _fail(message: str) -> NoReturn:
    fail_input("replay", message)


def replay_command(
    site: Annotated[
        list[Path] | None,
        typer.Option("--site", help="site.json (formats §1); with --group, one per member site"),
    ] = None,
    sessions: Annotated[
        Path | None,
        typer.Option(
            "--sessions",
            help="sessions.csv or OCPI JSON Lines (formats §3); with --group, one log with a site column",
        ),
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option("--series", help="series.csv (formats §2); with --group, SITE=series.csv per site"),
    ] = None,
    group: Annotated[
        Path | None, typer.Option("--group", help="group.json: replay its sites planned as one unit")
    ] = None,
    log: Annotated[
        list[str] | None, typer.Option("--log", help="with --group: SITE=sessions.csv, once per site")
    ] = None,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="optimized | uncontrolled | equal_share | pv_surplus | fcfs | edf | llf | "
            "perfect_foresight | declared_foresight, or a comma list",
        ),
    ] = "optimized",
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("replay-out"),
    step_min: Annotated[int, typer.Option("--step-min", help="step length, minutes")] = 15,
    forecast_error: Annotated[
        float, typer.Option("--forecast-error", help="relative std of the PV forecast noise (0: perfect)")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="seed of the forecast noise")] = 0,
    min_current: Annotated[str, typer.Option("--min-current", help="on | off")] = "on",
    mip_max_binaries: Annotated[
        int | None,
        typer.Option(
            "--mip-max-binaries",
            help="above this many on/off decisions a plan meets the minimum current by rounding "
            "the LP instead of the exact MIP (0: always; default: the server's)",
        ),
    ] = None,
    replan_min: Annotated[
        int, typer.Option("--replan-min", help="re-plan when the last plan is this old, minutes")
    ] = 60,
    objective: Annotated[str, typer.Option("--objective", help="self_consumption | cost | peak")] = (
        "self_consumption"
    ),
) -> None:
    """Replay a session log through the EMS planner; write KPIs, CSVs, plots and an HTML report."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    from ems.replay.engine import STRATEGIES, ReplayConfig, ReplayError, n_replay_steps, replay
    from ems.replay.log import LogError, read_session_log
    from ems.replay.report import write_comparison, write_outputs
    from ems.sites.series import SeriesError, read_series
    from optimizer.problem import OBJECTIVES

    if not site:
        _fail("--site is required")
    if group is not None:
        _replay_group_command(
            group,
            site,
            sessions,
            series or [],
            log or [],
            strategy,
            out,
            step_min,
            forecast_error,
            seed,
            min_current,
            mip_max_binaries,
            replan_min,
            objective,
        )
        return
    if len(site) > 1:
        _fail("--site is given more than once (several sites are replayed together with --group)")
    if log:
        _fail("--log is for --group (one log per site); replay one site with --sessions")
    if series is not None and len(series) > 1:
        _fail("--series is given more than once (one series per site is for --group)")
    if sessions is None:
        _fail("--sessions is required")
    names = [s.strip() for s in strategy.split(",") if s.strip()]
    unknown = [s for s in names if s not in STRATEGIES]
    if not names or unknown:
        _fail(f"--strategy {strategy!r}: expected {', '.join(STRATEGIES)} or a comma list of them")
    if len(set(names)) != len(names):
        _fail(f"--strategy {strategy!r}: a strategy is listed twice")
    if step_min <= 0 or 1440 % step_min:
        _fail(f"--step-min {step_min}: must be a positive divisor of 1440")
    if min_current not in ("on", "off"):
        _fail(f"--min-current {min_current!r}: on or off")
    if not 0.0 <= forecast_error <= 5.0:
        _fail(f"--forecast-error {forecast_error}: between 0 and 5")
    if mip_max_binaries is not None and mip_max_binaries < 0:
        _fail(f"--mip-max-binaries {mip_max_binaries}: must be 0 or more")
    if replan_min <= 0:
        _fail(f"--replan-min {replan_min}: must be positive")
    if objective not in OBJECTIVES:
        _fail(f"--objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    try:
        site_model = read_site_option(site[0])
        log_sessions = read_file_option(sessions, "--sessions", read_session_log, (LogError,))
        series_data = (
            None if not series else read_file_option(Path(series[0]), "--series", read_series, (SeriesError,))
        )
    except InputError as exc:
        _fail(str(exc))
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is not a folder")

    step_s = step_min * 60
    n_steps = n_replay_steps(log_sessions, site_model, step_s)
    show_progress = n_steps * step_s > LONG_REPLAY_DAYS * 86400
    results = []
    kpis = {}
    for name in names:
        config = ReplayConfig(
            strategy=name,
            step_s=step_s,
            replan_s=replan_min * 60,
            min_current=min_current == "on",
            mip_max_binaries=mip_max_binaries,
            objective=objective,
            forecast_error=forecast_error,
            seed=seed,
        )
        with tqdm(
            total=n_steps, desc=name, unit="step", file=sys.stderr, disable=not show_progress, leave=False
        ) as bar:
            try:
                result = replay(site_model, log_sessions, series_data, config, progress=bar.update)
            except ReplayError as exc:
                _fail(str(exc))
        target = out if len(names) == 1 else out / name
        try:
            written = write_outputs(result, target)
        except OSError as exc:
            _fail(f"--out {target}: cannot write ({exc.strerror or exc})")
        results.append(result)
        kpis[name] = written.kpis
    if len(names) > 1:
        try:
            write_comparison(results, kpis, out)
        except OSError as exc:
            _fail(f"--out {out}: cannot write ({exc.strerror or exc})")
    typer.echo(json.dumps(kpis if len(names) > 1 else kpis[names[0]], indent=2))


def _site_paths(values: list[str], option: str, known: set[str]) -> dict[str, Path]:
    """`SITE=path` values of a repeated option, each site once and known."""
    out: dict[str, Path] = {}
    for value in values:
        site_id, sep, path = value.partition("=")
        if not sep or not site_id or not path:
            _fail(f"{option} {value!r}: expected SITE=path")
        if site_id not in known:
            _fail(f"{option} {value!r}: site {site_id!r} is not in the group ({', '.join(sorted(known))})")
        if site_id in out:
            _fail(f"{option}: site {site_id!r} is given twice")
        out[site_id] = Path(path)
    return out


def _replay_group_command(
    group_path: Path,
    site_paths: list[Path],
    sessions: Path | None,
    series: list[str],
    logs: list[str],
    strategy: str,
    out: Path,
    step_min: int,
    forecast_error: float,
    seed: int,
    min_current: str,
    mip_max_binaries: int | None,
    replan_min: int,
    objective: str,
) -> None:
    """`ems replay --group`: the group's sites replayed together (`ems.replay.group`)."""
    from ems.replay.group import GROUP_STRATEGIES, replay_group, write_group_outputs
    from ems.replay.log import LogError, read_session_log
    from ems.replay.result import ReplayConfig, ReplayError
    from ems.sites.series import SeriesError, read_series
    from grid_models.groupfile import GroupValidationError, load_group
    from optimizer.problem import OBJECTIVES

    names = [s.strip() for s in strategy.split(",") if s.strip()]
    if not names or any(s not in GROUP_STRATEGIES for s in names):
        _fail(f"--strategy {strategy!r}: with --group expected {', '.join(GROUP_STRATEGIES)} or a comma list")
    if len(set(names)) != len(names):
        _fail(f"--strategy {strategy!r}: a strategy is listed twice")
    if step_min <= 0 or 1440 % step_min:
        _fail(f"--step-min {step_min}: must be a positive divisor of 1440")
    if min_current not in ("on", "off"):
        _fail(f"--min-current {min_current!r}: on or off")
    if not 0.0 <= forecast_error <= 5.0:
        _fail(f"--forecast-error {forecast_error}: between 0 and 5")
    if mip_max_binaries is not None and mip_max_binaries < 0:
        _fail(f"--mip-max-binaries {mip_max_binaries}: must be 0 or more")
    if replan_min <= 0:
        _fail(f"--replan-min {replan_min}: must be positive")
    if objective not in OBJECTIVES:
        _fail(f"--objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    if (sessions is None) == (not logs):
        _fail("--group needs either --log SITE=path per site or one --sessions log with a site column")
    try:
        sites = {}
        for path in site_paths:
            model = read_site_option(path)
            if model.id in sites:
                _fail(f"--site {path}: site {model.id!r} is given twice")
            sites[model.id] = model
        group = read_file_option(
            group_path, "--group", lambda p: load_group(p, set(sites)), (GroupValidationError,)
        )
        missing = [s for s in group.site_ids() if s not in sites]
        if missing:
            _fail(f"--site: no site file for {', '.join(missing)} of group {group.id!r}")
        known = set(group.site_ids())
        by_site: dict[str, list[LoggedSession]] = {s: [] for s in known}
        if sessions is not None:
            for s in read_file_option(sessions, "--sessions", read_session_log, (LogError,)):
                if s.site_id is None or s.site_id not in known:
                    _fail(
                        f"--sessions: session {s.session_id!r} has site {s.site_id!r}, "
                        "not a site of the group"
                    )
                by_site[s.site_id].append(s)
        for site_id, path in _site_paths(logs, "--log", known).items():
            by_site[site_id] = read_file_option(path, f"--log {site_id}", read_session_log, (LogError,))
        series_data = {
            site_id: read_file_option(path, f"--series {site_id}", read_series, (SeriesError,))
            for site_id, path in _site_paths(series, "--series", known).items()
        }
    except InputError as exc:
        _fail(str(exc))
    if out.exists() and not out.is_dir():
        _fail(f"--out {out}: exists and is not a folder")
    kpis = {}
    for name in names:
        config = ReplayConfig(
            strategy=name,
            step_s=step_min * 60,
            replan_s=replan_min * 60,
            min_current=min_current == "on",
            mip_max_binaries=mip_max_binaries,
            objective=objective,
            forecast_error=forecast_error,
            seed=seed,
        )
        try:
            result = replay_group(group, sites, by_site, dict(series_data), config)
        except ReplayError as exc:
            _fail(str(exc))
        target = out if len(names) == 1 else out / name
        try:
            kpis[name] = write_group_outputs(result, target)
        except OSError as exc:
            _fail(f"--out {target}: cannot write ({exc.strerror or exc})")
    typer.echo(json.dumps(kpis if len(names) > 1 else kpis[names[0]], indent=2))


app.command()(replay_command)

if __name__ == "__main__":
    app()
