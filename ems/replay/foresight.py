"""The perfect-foresight bound: a replay that bypasses the EMS.

One optimizer plan per local day knowing every session of the day (arrival, true energy, true
departure) and the actual series, as the bound the EMS-driven strategies are measured against.
Apart from the engine: it shares the cars, the series and the result with the EMS-driven loop,
and nothing of the EMS.

`declared_foresight` is the same run trusting what the drivers declared: each car is planned
for its declared energy and departure where it declared them (its truth where it did not), and
draws what that plan gives it while it is really there, up to its true energy. What it leaves
undelivered beyond `perfect_foresight` is what declaration errors cost a planner that trusts
them: issue #16's allowance for the EMS, which must estimate (unmet ≤ this run's unmet + 1 % of
the energy deliverable).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ems.planning.planner import solve_options
from ems.replay.cars import ENERGY_EPS_KWH, Car, count_setpoint_change, placed_cars, step_index
from ems.replay.log import LoggedSession
from ems.replay.result import Progress, ReplayConfig, ReplayResult, measured_result
from ems.replay.series import actual_steps
from ems.sites.series import Series
from grid_models.site import Site
from optimizer.problem import Problem
from optimizer.problem import Session as OptSession
from optimizer.strategies import perfect_foresight


def _day_bounds(start: datetime, n_steps: int, step_s: int, zone: ZoneInfo) -> list[int]:
    """Step indices where a local day starts (and the end)."""
    bounds = [0]
    for k in range(1, n_steps):
        t = start + timedelta(seconds=k * step_s)
        if t.astimezone(zone).date() != (t - timedelta(seconds=step_s)).astimezone(zone).date():
            bounds.append(k)
    bounds.append(n_steps)
    return bounds


def _replay_foresight(
    site: Site,
    sessions: Sequence[LoggedSession],
    series: Series | None,
    config: ReplayConfig,
    progress: Progress | None,
    trust_declarations: bool = False,
) -> ReplayResult:
    """One plan per local day with the day's sessions known in advance; a connector used twice
    in a day starts a new plan at the second arrival (a problem holds one session per connector),
    with what is still plugged carried over at its remaining energy: the true one, or with
    `trust_declarations` what the declarations leave (module docstring)."""
    wall0 = time.perf_counter()
    zone = ZoneInfo(site.timezone)
    step_s = config.step_s
    step_h = step_s / 3600.0
    start, n_steps, cars, placed = placed_cars(site, sessions, step_s)
    # what the plans believe of each car: when it leaves (step) and what it still needs (kWh)
    believed_end = {
        c.index: c.draw_end
        if not trust_declarations or c.log.declared_departure is None
        else max(c.draw_start, step_index(c.log.declared_departure, start, step_s, up=False))
        for c in cars
    }

    def believed_kwh(c: Car) -> float:
        """Its declaration less what it drew, while it draws; once full it is known to be."""
        declared = c.log.declared_energy_kwh if trust_declarations else None
        if declared is None or c.remaining_kwh <= ENERGY_EPS_KWH:
            return c.remaining_kwh
        return max(0.0, declared - (c.log.energy_kwh - c.remaining_kwh))

    actual = actual_steps(series, start, step_s, n_steps + config.horizon_s // step_s + 1)
    power: dict[tuple[int, int], float] = {}  # (car, step): kW
    plan_ms: list[float] = []
    last_limit_kw: dict[int, float] = {}
    setpoint_changes = 0
    bounds = _day_bounds(start, n_steps, step_s, zone)
    t = 0
    day = 0
    while t < n_steps:
        while bounds[day + 1] <= t:
            day += 1
        day_end = bounds[day + 1]
        candidates = sorted(
            (
                c
                for c in cars
                if c.draw_start < day_end
                and c.draw_end > max(t, c.draw_start)  # a car that has left is known to have
                and believed_end[c.index] > max(t, c.draw_start)
                and believed_kwh(c) > ENERGY_EPS_KWH
            ),
            key=lambda c: (max(c.draw_start, t), c.index),
        )
        chunk_end = day_end
        chosen: dict[str, Car] = {}
        for car in candidates:
            if car.connector.id in chosen:
                chunk_end = min(chunk_end, max(car.draw_start, t + 1))
            else:
                chosen[car.connector.id] = car
        chosen_cars = [c for c in chosen.values() if c.draw_start < chunk_end]
        if chosen_cars:
            now = start + timedelta(seconds=t * step_s)
            n_plan = max(believed_end[c.index] for c in chosen_cars) - t + 1
            problem = Problem(
                site=site,
                now=now,
                sessions=tuple(
                    OptSession(
                        session_id=c.log.session_id,
                        connector_id=c.connector.id,
                        energy_needed_kwh=believed_kwh(c),
                        departure=start + timedelta(seconds=max(believed_end[c.index], t) * step_s),
                        vehicle_phases=c.log.vehicle_phases,
                        max_power_kw=c.pmax_kw,
                        arrival=None
                        if c.draw_start <= t
                        else start + timedelta(seconds=c.draw_start * step_s),
                    )
                    for c in chosen_cars
                ),
                step_s=step_s,
                pv_kw=actual.pv_kw[t : t + n_plan],
                base_load_kw=actual.base_load_kw[t : t + n_plan],
                price_eur_per_kwh=None
                if actual.price_eur_per_kwh is None
                else actual.price_eur_per_kwh[t : t + n_plan],
                objective=config.objective,  # type: ignore[arg-type]
                # one plan drawn whole, never re-planned: exact over all of it
                options=solve_options(config.min_current, config.horizon_s, config.mip_max_binaries, None),
            )
            t_plan = time.perf_counter()
            plan = perfect_foresight(problem)
            plan_ms.append((time.perf_counter() - t_plan) * 1000.0)
            for c in chosen_cars:
                planned = plan.sessions[c.log.session_id].power_kw
                for j, p_plan in enumerate(planned):
                    k = t + j
                    if k >= chunk_end:
                        break
                    if not c.draw_start <= k < c.draw_end:
                        continue
                    allowed = max(0.0, min(float(p_plan), c.pmax_kw))
                    setpoint_changes += count_setpoint_change(last_limit_kw, c.index, allowed)
                    p = min(allowed, c.remaining_kwh / step_h)
                    c.remaining_kwh = max(0.0, c.remaining_kwh - p * step_h)
                    power[c.index, k] = p
        if progress is not None:
            progress(chunk_end - t)
        t = chunk_end
    return measured_result(
        config, site, start, n_steps, actual, sessions, placed, power, plan_ms, wall0, setpoint_changes
    )
