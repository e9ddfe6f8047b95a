"""Replay of a group of sites (issue #19): every site's log through its own in-memory EMS, the
group planned as one unit.

Each member site runs as `ems.replay.engine` runs one (its virtual CPO, its EMS with its needs
estimation and forecasts, its dispatcher, its simulated cars), on one step grid. With
`optimized` the group is the planning unit: when any site has an event (or the schedule is
due), every site's snapshot is taken from its planner, the group is planned jointly
(`optimizer.group.PersistentGroupPlanner`, warm across re-plans, the group's limits sampled on
the plan's steps) and each site's planner stores and dispatches its part of the joint plan (its
`solve` hook hands the joint plan over; the planner is not changed). The rule-based strategies
and `optimized_alone` plan each site alone, as without a group, to show what the group's limits
would see. `perfect_foresight` has no group form yet.

This stands in for the distributed planner's group unit until it exists: that planner should
call the same `PersistentGroupPlanner.update` with the same `GroupProblem`.
"""

from __future__ import annotations

import csv
import html
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ems.core.clock import ManualClock
from ems.dispatch.outbox import Dispatcher
from ems.planning.planner import Planner, PlannerSettings
from ems.planning.strategies import BASELINES
from ems.replay.cars import (
    Car,
    _cars,
    _check_overlaps,
    allowed_kw,
    count_setpoint_change,
    draw,
    step_index,
)
from ems.replay.kpis import jain_index, percentile
from ems.replay.log import LoggedSession
from ems.replay.report import (
    _local_times,
    connector_power,
    html_page,
    img_tag,
    kpi_table,
    result_kpis,
    write_outputs,
)
from ems.replay.result import FloatArray, Progress, ReplayConfig, ReplayError, ReplayResult, measured_result
from ems.replay.series import ReplaySeriesSource, replay_span
from ems.replay.virtual_cpo import InProcessSink, _ems, _VirtualCpo
from ems.sites.series import Series
from grid_models.group import (
    GROUP_TOLERANCE_A,
    GROUP_TOLERANCE_KW,
    Group,
    GroupStepLimits,
    sample_limits,
    site_entry_currents,
)
from grid_models.site import PHASES, Site
from optimizer.group import GroupPlan, GroupProblem, PersistentGroupPlanner, group_fallback_plan
from optimizer.problem import Plan, Problem

GROUP_STRATEGIES = ("optimized", "optimized_alone", *BASELINES)
"""What `ems replay --group --strategy` accepts: the group planned jointly, each site planned
alone by the EMS, and the rule-based peers (each site alone)."""


@dataclass
class GroupReplayResult:
    """Every site's replay (`sites`, in the group's order) and the group's limits over the
    replay's steps; the group's KPIs and plots are computed from them."""

    strategy: str
    group: Group
    sites: dict[str, ReplayResult]
    limits: dict[str, GroupStepLimits]
    plan_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def steps(self) -> tuple[datetime, ...]:
        return next(iter(self.sites.values())).steps


class _SiteRun:
    """One member site's replay state: its in-memory EMS, virtual CPO and cars."""

    def __init__(
        self,
        site: Site,
        sessions: Sequence[LoggedSession],
        series: Series | None,
        config: ReplayConfig,
        start: datetime,
        n_steps: int,
        solve: Callable[[Problem], Plan] | None,
    ) -> None:
        step_s = config.step_s
        self.site = site
        self.sessions = tuple(sessions)
        self.cars, self.placed = _cars(site, sessions, start, step_s)
        _check_overlaps(self.cars)
        self.source = ReplaySeriesSource(
            series,
            start,
            step_s,
            n_steps + config.horizon_s // step_s + 1,
            config.forecast_error,
            config.seed,
        )
        self.ctx, caller = _ems(site, start)
        self.sink = InProcessSink(self.ctx, accept=config.strategy != "uncontrolled")
        self.dispatcher = Dispatcher(self.ctx, self.sink, rate_per_s=1e9, burst=1_000_000, concurrency=1)
        self.planner = Planner(
            self.ctx,
            self.dispatcher,
            series=self.source,
            settings=PlannerSettings(
                step_s=step_s,
                horizon_s=config.horizon_s,
                objective=config.objective,
                min_current=config.min_current,
                mip_max_binaries=config.mip_max_binaries,
                mip_horizon_s=config.mip_horizon_s,
            ),
            solve=solve,
        )
        self.cpo = _VirtualCpo(self.ctx, caller, site.phase_voltage_v)
        self.arrivals: dict[int, list[Car]] = {}
        self.leavings: dict[int, list[Car]] = {}
        for car in self.cars:
            self.arrivals.setdefault(step_index(car.log.arrival, start, step_s, up=True), []).append(car)
            self.leavings.setdefault(step_index(car.log.departure, start, step_s, up=True), []).append(car)
        self.plugged: dict[int, Car] = {}
        self.power: dict[tuple[int, int], float] = {}
        self.last_limit_kw: dict[int, float] = {}
        self.setpoint_changes = 0
        self.start = start
        self.step_s = step_s

    def events(self, k: int, t: datetime) -> list[str]:
        """Cars leaving and arriving at step `k`; the triggers they give (as the engine's)."""
        triggers: list[str] = []
        leaving = self.leavings.get(k, [])
        self.cpo.leave(
            (
                (car, min(self.start + timedelta(seconds=max(car.draw_start, car.draw_end) * self.step_s), t))
                for car in leaving
            ),
            t,
        )
        for car in leaving:
            self.plugged.pop(car.index, None)
            triggers.append("session_STOPPED")
        for car in self.arrivals.get(k, []):
            self.cpo.arrive(car, t)
            self.plugged[car.index] = car
            triggers.append("session_STARTED")
        if self.plugged and self.planner.replan_due(self.site.id, t):
            triggers.append("window_end")
        return triggers

    def draw(self, k: int, t: datetime) -> None:
        """Each plugged car draws what its last profile allows over step `k`."""
        step_h = self.step_s / 3600.0
        t1 = t + timedelta(seconds=self.step_s)
        for car in self.plugged.values():
            if not car.draw_start <= k < car.draw_end:
                continue
            profile = self.sink.profiles.get(car.pk) if car.pk is not None else None
            limit = allowed_kw(car, profile, t, t1, self.site.phase_voltage_v)
            self.setpoint_changes += count_setpoint_change(self.last_limit_kw, car.index, limit)
            p = draw(car, limit, step_h)
            self.power[car.index, k] = p
            self.cpo.draw(car, t, p, step_h)

    def plan(self, trigger: str, t: datetime) -> None:
        self.planner.plan_site(self.site.id, trigger, t)
        self.dispatcher.run_once()


def _common_span(
    group: Group, sites: Mapping[str, Site], logs: Mapping[str, Sequence[LoggedSession]], step_s: int
) -> tuple[datetime, int]:
    """The replay's span over every site's log, in the first site's zone; every site must keep
    the same UTC offset over it (one step grid for the group)."""
    zone = ZoneInfo(sites[group.site_ids()[0]].timezone)
    every = [s for sid in group.site_ids() for s in logs.get(sid, ())]
    if not every:
        raise ReplayError(f"group {group.id!r}: no sessions to replay")
    start, n_steps = replay_span(every, zone, step_s)
    end = start + timedelta(seconds=n_steps * step_s)
    for sid in group.site_ids():
        other = ZoneInfo(sites[sid].timezone)
        if any(at.astimezone(other).utcoffset() != at.astimezone(zone).utcoffset() for at in (start, end)):
            raise ReplayError(
                f"group {group.id!r}: site {sid!r} ({sites[sid].timezone}) is not on the UTC offset of "
                f"{group.site_ids()[0]!r} ({zone.key}): one step grid is needed"
            )
    return start, n_steps


def replay_group(
    group: Group,
    sites: Mapping[str, Site],
    logs: Mapping[str, Sequence[LoggedSession]],
    series: Mapping[str, Series | None],
    config: ReplayConfig | None = None,
    progress: Progress | None = None,
) -> GroupReplayResult:
    """Replay every site's log of `group` with `config.strategy` (`GROUP_STRATEGIES`)."""
    config = config or ReplayConfig()
    if config.strategy not in GROUP_STRATEGIES:
        raise ReplayError(
            f"strategy {config.strategy!r} has no group replay "
            f"(expected one of {', '.join(GROUP_STRATEGIES)})"
        )
    if config.step_s <= 0 or 86400 % config.step_s:
        raise ReplayError(f"step of {config.step_s} s does not divide a day")
    missing = [sid for sid in group.site_ids() if sid not in sites]
    if missing:
        raise ReplayError(f"group {group.id!r}: no site file for {', '.join(missing)}")
    wall0 = time.perf_counter()
    step_s = config.step_s
    start, n_steps = _common_span(group, sites, logs, step_s)
    joint = config.strategy == "optimized"
    pending: dict[str, tuple[Problem, Plan]] = {}

    def handed_over(site_id: str) -> Callable[[Problem], Plan]:
        def solve(problem: Problem) -> Plan:
            planned, plan = pending.pop(site_id)
            if problem.sessions != planned.sessions or problem.now != planned.now:
                raise ReplayError(
                    f"site {site_id!r}: the snapshot moved between the joint plan and its storing"
                )
            return plan

        return solve

    runs = [
        _SiteRun(
            sites[sid],
            logs.get(sid, ()),
            series.get(sid),
            config,
            start,
            n_steps,
            handed_over(sid) if joint else BASELINES.get(config.strategy),
        )
        for sid in group.site_ids()
    ]
    group_planner: PersistentGroupPlanner | None = None
    plan_ms: list[float] = []
    replan_every = max(1, config.replan_s // step_s)
    last_plan_k = -replan_every
    try:
        for k in range(n_steps + 1):
            t = start + timedelta(seconds=k * step_s)
            for run in runs:
                assert isinstance(run.ctx.clock, ManualClock)
                run.ctx.clock.set(t)
            triggers = [run.events(k, t) for run in runs]
            plugged = any(run.plugged for run in runs)
            scheduled = k - last_plan_k >= replan_every and plugged
            if (any(triggers) or scheduled) and k < n_steps:
                last_plan_k = k
                t_plan = time.perf_counter()
                for run in runs:
                    run.cpo.flush(run.plugged.values(), t)
                if joint:
                    group_planner = _plan_jointly(group, runs, t, group_planner, pending)
                    trigger = "+".join(sorted({x for ts in triggers for x in ts})) or "schedule"
                    for run in runs:
                        run.plan(f"group:{trigger}", t)
                else:
                    for run, own in zip(runs, triggers, strict=True):
                        if own or (scheduled and run.plugged):
                            run.plan("+".join(sorted(set(own))) or "schedule", t)
                plan_ms.append((time.perf_counter() - t_plan) * 1000.0)
            if k == n_steps:
                break
            for run in runs:
                run.draw(k, t)
            if progress is not None:
                progress(1)
    finally:
        for run in runs:
            run.ctx.close()
    results = {
        run.site.id: measured_result(
            config,
            run.site,
            start,
            n_steps,
            run.source.steps,
            run.sessions,
            run.placed,
            run.power,
            plan_ms,
            wall0,
            run.setpoint_changes,
        )
        for run in runs
    }
    return GroupReplayResult(
        strategy=config.strategy,
        group=group,
        sites=results,
        limits=sample_limits(group, start, step_s, n_steps),
        plan_ms=plan_ms,
        wall_s=time.perf_counter() - wall0,
    )


def _plan_jointly(
    group: Group,
    runs: Sequence[_SiteRun],
    t: datetime,
    kept: PersistentGroupPlanner | None,
    pending: dict[str, tuple[Problem, Plan]],
) -> PersistentGroupPlanner:
    """The group's plan from every site's snapshot, each site's series over the group's horizon
    (a site whose own cars leave sooner still draws its base load for the others' limit); each
    site's part left in `pending` for its planner to store and dispatch."""
    problems = [run.planner.snapshot(run.site.id, t).problem for run in runs]
    n_steps = max(p.n_steps() for p in problems)
    extended = []
    for run, p in zip(runs, problems, strict=True):
        s = run.source.step_series(run.site.id, t, p.step_s, n_steps)
        extended.append(
            replace(p, pv_kw=s.pv_kw, base_load_kw=s.base_load_kw, price_eur_per_kwh=s.price_eur_per_kwh)
        )
    gp = GroupProblem.sampled(group, extended)
    sites = [p.site for p in gp.ordered()]
    if kept is None or list(kept.sites) != sites:
        kept = PersistentGroupPlanner(group, sites)
    try:
        plan: GroupPlan = kept.update(gp)
    except Exception as exc:  # the planner's rule: never without a plan
        plan = group_fallback_plan(gp, f"solver failed: {exc.__class__.__name__}: {exc}")
        kept = PersistentGroupPlanner(group, sites)
    for p in problems:
        pending[p.site.id] = (p, plan.plans[p.site.id])
    return kept


# ---- the group's figures ------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSeries:
    """What each group's node carried over the replay: net import (kW) and, for a group with a
    current limit, the current per phase (A, `(3, steps)`)."""

    import_kw: dict[str, FloatArray]
    current_a: dict[str, FloatArray]


def node_series(result: GroupReplayResult) -> NodeSeries:
    """Each group's net import and phase currents from what the cars drew and the actual series."""
    net: dict[str, FloatArray] = {}
    entry: dict[str, FloatArray] = {}
    for sid, r in result.sites.items():
        net[sid] = r.ev_kw + r.base_load_kw - r.pv_kw
        rows = {
            mode: site_entry_currents(r.site, {c.id: mode for c in r.site.connectors()}) for mode in (1, 3)
        }
        currents = np.zeros((3, len(r.steps)))
        for ph in range(3):
            currents[ph] = rows[3][ph].pv_a_per_kw * r.pv_kw + rows[3][ph].base_load_a_per_kw * r.base_load_kw
        for (cid, mode), power in connector_power(r).items():
            for ph in range(3):
                currents[ph] += rows[mode][ph].connector_a_per_kw.get(cid, 0.0) * power
        entry[sid] = currents
    import_kw, current_a = {}, {}
    for g in result.group.walk():
        members = g.site_ids()
        import_kw[g.id] = np.sum([net[s] for s in members], axis=0)
        if result.limits[g.id].has_current_limit():
            current_a[g.id] = np.sum([entry[s] for s in members], axis=0)
    return NodeSeries(import_kw, current_a)


def _limit_figures(result: GroupReplayResult, nodes: NodeSeries, group_id: str) -> dict[str, Any]:
    lim = result.limits[group_id]
    node = nodes.import_kw[group_id]
    cap = np.asarray(lim.max_import_kw, dtype=float)
    over = int(np.count_nonzero(node > cap + GROUP_TOLERANCE_KW))
    ratios = [
        float(np.max(np.where(np.isfinite(cap), node / np.where(cap > 0, cap, np.nan), 0.0), initial=0.0))
    ]
    if group_id in nodes.current_a:
        amps = nodes.current_a[group_id]
        a_cap = np.asarray(lim.max_current_a, dtype=float)
        over += int(np.count_nonzero(amps > a_cap[None, :] + GROUP_TOLERANCE_A))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(np.isfinite(a_cap)[None, :] & (a_cap > 0)[None, :], amps / a_cap[None, :], 0.0)
        ratios.append(float(np.nanmax(ratio, initial=0.0)))
    step_h = next(iter(result.sites.values())).step_s / 3600.0
    return {
        "peak_kw": float(node.max(initial=0.0)),
        "import_kwh": float(np.maximum(0.0, node).sum() * step_h),
        "limit_violations": over,
        "max_limit_loading_ratio": max(ratios),
    }


def group_kpis(result: GroupReplayResult) -> dict[str, Any]:
    """kpis.json of a group replay: `{"group": {...}, "sites": {site_id: formats §6 keys}}`.

    `group` sums the sites' energies and violations and adds the node's: `peak_kw` and
    `import_kwh` (net import at the group's node), `limit_violations` (count of (step, quantity,
    phase) over a limit in force, every group of the tree), `max_limit_loading_ratio`, and per
    nested group the same under `groups`."""
    sites = {sid: result_kpis(r) for sid, r in result.sites.items()}
    nodes = node_series(result)
    requested = [s.energy_kwh for r in result.sites.values() for s in r.sessions]
    delivered = [float(x) for r in result.sites.values() for x in r.delivered_kwh()]

    def total(key: str) -> float:
        return float(sum(k[key] or 0.0 for k in sites.values()))

    costs = [k["cost_eur"] for k in sites.values()]
    per_group = {g.id: _limit_figures(result, nodes, g.id) for g in result.group.walk()}
    root = per_group[result.group.id]
    summary: dict[str, Any] = {
        "id": result.group.id,
        "sites": list(result.sites),
        "strategy": result.strategy,
        "n_sessions": int(total("n_sessions")),
        "energy_requested_kwh": total("energy_requested_kwh"),
        "energy_delivered_kwh": total("energy_delivered_kwh"),
        "unmet_kwh": total("unmet_kwh"),
        "pv_energy_kwh": total("pv_energy_kwh"),
        "grid_import_kwh": total("grid_import_kwh"),
        "cost_eur": None if all(c is None for c in costs) else float(sum(c or 0.0 for c in costs)),
        "peak_kw": root["peak_kw"],
        "import_kwh": root["import_kwh"],
        "limit_violations": sum(f["limit_violations"] for f in per_group.values()),
        "max_limit_loading_ratio": root["max_limit_loading_ratio"],
        "protection_violations": int(total("protection_violations")),
        "sessions_zero_energy": int(total("sessions_zero_energy")),
        "delivered_ratio_jain": jain_index(requested, delivered),
        "n_reoptimizations": len(result.plan_ms),
        "reopt_ms_p50": percentile(result.plan_ms, 50),
        "reopt_ms_p95": percentile(result.plan_ms, 95),
        "wall_s": result.wall_s,
        "groups": per_group,
    }
    return {"group": summary, "sites": sites}


def write_group_timeline(result: GroupReplayResult, nodes: NodeSeries, out: Path) -> None:
    """group_timeline.csv: one row per step and group, its node's import and the limits in force."""
    zone = ZoneInfo(next(iter(result.sites.values())).site.timezone)
    with (out / "group_timeline.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "timestamp",
                "group_id",
                "import_kw",
                "max_import_kw",
                "import_limit_id",
                *(f"current_{p}_a" for p in PHASES),
                "max_current_a",
            ]
        )
        for k, t in enumerate(result.steps):
            for g in result.group.walk():
                lim = result.limits[g.id]
                amps = nodes.current_a.get(g.id)
                w.writerow(
                    [
                        t.astimezone(zone).isoformat(),
                        g.id,
                        f"{nodes.import_kw[g.id][k]:.3f}",
                        "" if math.isinf(lim.max_import_kw[k]) else lim.max_import_kw[k],
                        lim.import_limit_ids[k] or "",
                        *(["", "", ""] if amps is None else [f"{amps[ph, k]:.2f}" for ph in range(3)]),
                        "" if math.isinf(lim.max_current_a[k]) else lim.max_current_a[k],
                    ]
                )


def plot_group_power(result: GroupReplayResult, nodes: NodeSeries, path: Path) -> None:
    """Each site's net import stacked, the group's node import and its limit in force."""
    first = next(iter(result.sites.values()))
    times = _local_times(first)
    groups = list(result.group.walk())
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 3.2 * len(groups)), sharex=True, squeeze=False)
    for ax, g in zip(axes[:, 0], groups, strict=True):
        members = g.site_ids()
        stacks = [
            np.maximum(0.0, result.sites[s].ev_kw + result.sites[s].base_load_kw - result.sites[s].pv_kw)
            for s in members
        ]
        ax.stackplot(times, stacks, labels=[f"{s} import" for s in members], alpha=0.6, step="post")
        ax.step(times, nodes.import_kw[g.id], where="post", color="black", lw=0.8, label=f"{g.id} net import")
        cap = np.asarray(result.limits[g.id].max_import_kw, dtype=float)
        if np.isfinite(cap).any():
            ax.step(
                times,
                np.where(np.isfinite(cap), cap, np.nan),
                where="post",
                color="red",
                ls="--",
                lw=1.2,
                label="limit",
            )
        ax.set_ylabel("kW")
        ax.set_title(f"{g.id}: {g.name}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_group_outputs(result: GroupReplayResult, out: Path) -> dict[str, Any]:
    """DIR/kpis.json (group layout), group_timeline.csv, group_power.png, report.html, and each
    site's own outputs under DIR/sites/SITE_ID/ (formats §6, as a site's replay writes them)."""
    out.mkdir(parents=True, exist_ok=True)
    kpis = group_kpis(result)
    nodes = node_series(result)
    for sid, r in result.sites.items():
        write_outputs(r, out / "sites" / sid)
    (out / "kpis.json").write_text(json.dumps(kpis, indent=2) + "\n", encoding="utf-8")
    write_group_timeline(result, nodes, out)
    plot_group_power(result, nodes, out / "group_power.png")
    links = " · ".join(
        f'<a href="sites/{html.escape(s)}/report.html">{html.escape(s)}</a>' for s in result.sites
    )
    flat = {k: v for k, v in kpis["group"].items() if k not in ("groups", "sites")}
    parts = [
        f"<p>Sites: {links}</p>",
        f"<h2>Group KPIs</h2>{kpi_table({result.strategy: flat})}",
        f"<h2>Sites</h2>{kpi_table(kpis['sites'])}",
        f"<h2>Power at each group's node against its limit</h2>{img_tag(out / 'group_power.png')}",
    ]
    (out / "report.html").write_text(
        html_page(f"Replay of group {result.group.id} — {result.strategy}", parts), encoding="utf-8"
    )
    return kpis
