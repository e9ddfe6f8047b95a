"""The replay engine: a session log played in simulated time through the server's own planner.

The engine plays a virtual CPO against a real (in-memory) EMS: each car's Session is PUT
through the same OCPI service the API uses, the driver's declared departure and energy go
through `put_charging_preferences` only when declared, meter updates (kwh and charging
periods with POWER, ENERGY and CURRENT) are PATCHed as the car draws, and the session is
COMPLETED when it leaves. The EMS's Planner re-plans at each arrival, departure and
preference, when a car's plan window ends while it stays (`Planner.replan_due`), and when
its last plan is `replan_s` old (a schedule that tops up: after an event the next scheduled
plan comes `replan_s` later; on the June month 593 plans instead of 652, 20 s instead of 22-29,
KPIs within noise); its Dispatcher delivers profiles to an in-process sink, and
each car draws what the last profile it received allows, up to its true energy and power.
So what is measured is the EMS as deployed: its needs estimation, its forecasts, its plans.

Time is in steps aligned to the step length in the site's time zone over whole local days
(formats §6). Events inside a step are handled at the next step boundary, when they can
first change what a car draws; a car draws only in whole steps it is plugged in for.

`perfect_foresight` bypasses the EMS: one optimizer plan per local day knowing every session
of the day (arrival, true energy, true departure) and the actual series, as the bound.

This module keeps the EMS-driven loop and `replay`, which picks the run; the parts it drives live
apart: `ems.replay.virtual_cpo` (the CPO's side and the in-memory EMS), `ems.replay.cars` (the
simulated cars on the step grid), `ems.replay.series` (the span, the actual series, the planner's
forecasts), `ems.replay.foresight` (the perfect-foresight run) and `ems.replay.result`
(`ReplayConfig`, `ReplayResult`). The public names it held before are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

from ems.core.clock import ManualClock
from ems.dispatch.outbox import Dispatcher
from ems.planning.planner import Planner, PlannerSettings
from ems.planning.strategies import BASELINES
from ems.replay.cars import (
    ENERGY_EPS_KWH,
    Car,
    allowed_kw,
    count_setpoint_change,
    draw,
    drawn_phases,
    placed_cars,
    profile_mean_limit_kw,
    step_index,
)
from ems.replay.foresight import _replay_foresight
from ems.replay.log import LoggedSession
from ems.replay.result import FloatArray, Progress, ReplayConfig, ReplayError, ReplayResult, measured_result
from ems.replay.series import ReplaySeriesSource, actual_steps, replay_span
from ems.replay.virtual_cpo import (
    CPO_COUNTRY,
    CPO_PARTY,
    LOCATION_ID,
    InProcessSink,
    _ems,
    _VirtualCpo,
)
from ems.sites.series import Series
from grid_models.site import Site

# The public names this module held before it was cut in parts (issue #15): still importable here.
__all__ = [
    "BASELINES",
    "CPO_COUNTRY",
    "CPO_PARTY",
    "ENERGY_EPS_KWH",
    "LOCATION_ID",
    "STRATEGIES",
    "FloatArray",
    "InProcessSink",
    "Progress",
    "ReplayConfig",
    "ReplayError",
    "ReplayResult",
    "ReplaySeriesSource",
    "actual_steps",
    "drawn_phases",
    "n_replay_steps",
    "profile_mean_limit_kw",
    "replay",
    "replay_span",
]

STRATEGIES = ("optimized", *BASELINES, "perfect_foresight", "declared_foresight")
"""What `ems replay --strategy` accepts: the EMS, the rule-based peers run through it, the bound,
and the bound trusting the drivers' declarations (`ems.replay.foresight`)."""


def _replay_ems(
    site: Site,
    sessions: Sequence[LoggedSession],
    series: Series | None,
    config: ReplayConfig,
    progress: Progress | None,
) -> ReplayResult:
    wall0 = time.perf_counter()
    step_s = config.step_s
    step_h = step_s / 3600.0
    start, n_steps, cars, placed = placed_cars(site, sessions, step_s)
    source = ReplaySeriesSource(
        series, start, step_s, n_steps + config.horizon_s // step_s + 1, config.forecast_error, config.seed
    )
    ctx, caller = _ems(site, start)
    clock = ctx.clock
    assert isinstance(clock, ManualClock)
    sink = InProcessSink(ctx, accept=config.strategy != "uncontrolled")
    # Simulated time does not refill a token bucket that runs on real time: no rate limit here.
    dispatcher = Dispatcher(ctx, sink, rate_per_s=1e9, burst=1_000_000, concurrency=1)
    planner = Planner(
        ctx,
        dispatcher,
        series=source,
        settings=PlannerSettings(
            step_s=step_s,
            horizon_s=config.horizon_s,
            objective=config.objective,
            min_current=config.min_current,
            mip_max_binaries=config.mip_max_binaries,
            mip_horizon_s=config.mip_horizon_s,
        ),
        solve=BASELINES.get(config.strategy),
    )
    cpo = _VirtualCpo(ctx, caller, site.phase_voltage_v)
    arrivals: dict[int, list[Car]] = {}
    leavings: dict[int, list[Car]] = {}
    for car in cars:
        arrivals.setdefault(step_index(car.log.arrival, start, step_s, up=True), []).append(car)
        leavings.setdefault(step_index(car.log.departure, start, step_s, up=True), []).append(car)
    power: dict[tuple[int, int], float] = {}  # (car, step): kW
    plugged: dict[int, Car] = {}
    plan_ms: list[float] = []
    last_limit_kw: dict[int, float] = {}
    setpoint_changes = 0
    replan_every = max(1, config.replan_s // step_s)
    last_plan_k = -replan_every
    site_id = site.id
    try:
        for k in range(n_steps + 1):
            t = start + timedelta(seconds=k * step_s)
            clock.set(t)
            triggers: list[str] = []
            leaving = leavings.get(k, [])
            cpo.leave(
                (
                    (car, min(start + timedelta(seconds=max(car.draw_start, car.draw_end) * step_s), t))
                    for car in leaving
                ),
                t,
            )
            for car in leaving:
                plugged.pop(car.index, None)
                triggers.append("session_STOPPED")
            for car in arrivals.get(k, []):
                cpo.arrive(car, t)
                plugged[car.index] = car
                triggers.append("session_STARTED")
            if plugged and planner.replan_due(site_id, t):
                triggers.append("window_end")
            scheduled = k - last_plan_k >= replan_every and bool(plugged)
            if (triggers or scheduled) and k < n_steps:
                last_plan_k = k
                cpo.flush(plugged.values(), t)
                t_plan = time.perf_counter()
                planner.plan_site(site_id, "+".join(sorted(set(triggers))) or "schedule", t)
                dispatcher.run_once()
                plan_ms.append((time.perf_counter() - t_plan) * 1000.0)
            if k == n_steps:
                break
            t1 = t + timedelta(seconds=step_s)
            for car in plugged.values():
                if not car.draw_start <= k < car.draw_end:
                    continue
                profile = sink.profiles.get(car.pk) if car.pk is not None else None
                limit = allowed_kw(car, profile, t, t1, site.phase_voltage_v)
                p = draw(car, limit, step_h)
                setpoint_changes += count_setpoint_change(last_limit_kw, car.index, limit)
                power[car.index, k] = p
                cpo.draw(car, t, p, step_h)
            if progress is not None:
                progress(1)
    finally:
        ctx.close()
    return measured_result(
        config, site, start, n_steps, source.steps, sessions, placed, power, plan_ms, wall0, setpoint_changes
    )


def replay(
    site: Site,
    sessions: Sequence[LoggedSession],
    series: Series | None = None,
    config: ReplayConfig | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replay `sessions` on `site` with `config.strategy`; `progress(n)` after n steps done."""
    config = config or ReplayConfig()
    if config.strategy not in STRATEGIES:
        raise ReplayError(f"unknown strategy {config.strategy!r} (expected one of {', '.join(STRATEGIES)})")
    if config.step_s <= 0 or 86400 % config.step_s:
        raise ReplayError(f"step of {config.step_s} s does not divide a day")
    if not sessions:
        raise ReplayError("no sessions to replay")
    if config.strategy in ("perfect_foresight", "declared_foresight"):
        trusting = config.strategy == "declared_foresight"
        return _replay_foresight(site, sessions, series, config, progress, trust_declarations=trusting)
    return _replay_ems(site, sessions, series, config, progress)


def n_replay_steps(sessions: Sequence[LoggedSession], site: Site, step_s: int) -> int:
    """How many steps a replay of `sessions` covers (for progress bars)."""
    return replay_span(sessions, ZoneInfo(site.timezone), step_s)[1]
