"""Group benchmark: a territory of 20 sites × 50 connectors planned jointly (issue #19).

The joint plan (`optimizer.group.solve_group`, one LP for every session of the group under its
import cap) against the baseline measured in the same run: the sum of the 20 sites planned
alone (`optimizer.solve`), which is what planning them without the group costs (and breaks the
cap: the count of steps over it is printed too).

- cold: `solve_group` once against Σ `solve` of each site;
- warm: after one car arrives at one site, `PersistentGroupPlanner.update` against, alone,
  that site's `PersistentPlanner.update` (what the event costs without a group) and the sum
  of every site's warm re-plan (what a group-wide trigger, a new DSO limit or a forecast,
  costs when each site is planned alone).

Scenario: the optimizer bench's (`benchmarks.optimizer.scenario`: sessions from 04:00 needing
5–40 kWh, 1/5 single-phase, PV bell, base load, two price levels, T = 96 steps of 15 min,
minimum-current rule off) on 20 synthetic depots of 50 connectors, 45 cars each (900 in all),
each site's series shifted so the sites differ; the group's cap is 35 % of the sum of the
sites' grid connections, so it binds in the morning.

Run: `.venv/bin/python -m benchmarks.group` (or `make bench`); `EMS_BENCH_QUICK=1`: 4 sites.
`cpu ms` is process CPU time (HiGHS on one thread). Figures go to `benchmarks/group.md` by hand.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import numpy as np

from benchmarks.optimizer import NOW, depot_site, scenario
from grid_models.group import Group, GroupLimit
from optimizer import PersistentPlanner, Plan, Problem, Session, solve
from optimizer.group import GroupProblem, PersistentGroupPlanner, check_group_plan, solve_group

N_CONNECTORS = 50
N_CARS = 45
CAP_SHARE = 0.35


def site_problems(n_sites: int) -> list[Problem]:
    """`n_sites` depots, each with the optimizer bench's sessions and series, shifted by site."""
    template = scenario(N_CARS)
    out = []
    for m in range(n_sites):
        site = replace(depot_site(N_CONNECTORS, synthetic=True), id=f"depot-{m:02d}", name=f"depot {m}")
        conns = site.connectors()
        sessions = tuple(
            replace(
                s,
                session_id=f"{site.id}-{s.session_id}",
                connector_id=conns[i].id,
                energy_needed_kwh=s.energy_needed_kwh * (0.8 + 0.02 * m),
                departure=s.departure + timedelta(minutes=15 * (m % 5)),
            )
            for i, s in enumerate(template.sessions)
        )
        shift = m % 4
        out.append(
            replace(
                template,
                site=site,
                sessions=sessions,
                pv_kw=template.pv_kw[shift:] + template.pv_kw[:shift],
                base_load_kw=tuple(v * (0.7 + 0.03 * m) for v in template.base_load_kw),
            )
        )
    return out


def territory(problems: list[Problem]) -> Group:
    cap_kw = CAP_SHARE * sum(p.site.grid_connection.max_power_kw for p in problems)
    return Group(
        "territory",
        "benchmark territory",
        sites=tuple(p.site.id for p in problems),
        limits=(GroupLimit("contract", "contract", "max_import_kw", value=round(cap_kw, 1)),),
    )


def arrival(p: Problem) -> Problem:
    """One more car at the site, on its first free connector."""
    free = p.site.connectors()[len(p.sessions)].id
    car = Session(f"{p.site.id}-arrival", free, 20.0, NOW + timedelta(hours=10))
    return replace(p, sessions=(*p.sessions, car))


Out = TypeVar("Out")


def _timed(fn: Callable[[], Out]) -> tuple[Out, float, float]:
    """`fn()`, its wall and CPU milliseconds."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def over_cap_steps(gp: GroupProblem, plans: Mapping[str, Plan]) -> int:
    """Steps where these site plans together break a group limit."""
    power = [
        np.array([plans[p.site.id].sessions[s.session_id].power_kw for s in p.sessions]) for p in gp.ordered()
    ]
    return len(check_group_plan(gp, power).violations)


def main() -> None:
    quick = os.environ.get("EMS_BENCH_QUICK") == "1"
    n_sites = 4 if quick else 20
    problems = site_problems(n_sites)
    group = territory(problems)
    gp = GroupProblem.sampled(group, problems)
    n_sessions = sum(len(p.sessions) for p in problems)
    print(
        f"group: {n_sites} sites x {N_CONNECTORS} connectors, {n_sessions} cars, T={gp.n_steps()} steps, "
        f"cap {group.limits[0].value} kW ({'quick' if quick else 'full'})"
    )

    alone_ms = alone_cpu = 0.0
    alone_plans: dict[str, Plan] = {}
    for p in problems:
        plan, ms, cpu = _timed(lambda p=p: solve(p))  # type: ignore[misc]
        alone_plans[p.site.id] = plan
        alone_ms += ms
        alone_cpu += cpu
    joint, joint_ms, joint_cpu = _timed(lambda: solve_group(gp))
    assert joint.status == "optimal", joint.message
    print(f"{'':>18} {'wall ms':>9} {'cpu ms':>9} {'ratio':>6} {'unmet kWh':>10} {'steps over cap':>15}")
    print(
        f"{'cold alone (sum)':>18} {alone_ms:>9.0f} {alone_cpu:>9.0f} {1.0:>6.2f} "
        f"{sum(pl.unmet_kwh for pl in alone_plans.values()):>10.1f} {over_cap_steps(gp, alone_plans):>15}"
    )
    print(
        f"{'cold joint':>18} {joint_ms:>9.0f} {joint_cpu:>9.0f} {joint_ms / alone_ms:>6.2f} "
        f"{joint.unmet_kwh:>10.1f} {over_cap_steps(gp, joint.plans):>15}"
    )

    # warm: the planners primed on the base problem, then one arrival at site 0
    site_planners = [PersistentPlanner(p.site) for p in problems]
    for planner, p in zip(site_planners, problems, strict=True):
        planner.update(p)
    group_planner = PersistentGroupPlanner(group, [p.site for p in problems])
    group_planner.update(gp)
    changed = [arrival(problems[0]), *problems[1:]]
    gp_changed = GroupProblem.sampled(group, changed)
    _, one_ms, one_cpu = _timed(lambda: site_planners[0].update(changed[0]))
    every_ms = every_cpu = one_ms
    for planner, p in zip(site_planners[1:], changed[1:], strict=True):
        # a group-wide trigger re-plans every site: each alone, warm, on its own unchanged cars
        moved = replace(p, base_load_kw=tuple(v * 1.01 for v in p.base_load_kw))
        _, ms, cpu = _timed(lambda planner=planner, moved=moved: planner.update(moved))  # type: ignore[misc]
        every_ms += ms
        every_cpu += cpu
    warm, warm_ms, warm_cpu = _timed(lambda: group_planner.update(gp_changed))
    _, back_ms, _ = _timed(lambda: group_planner.update(gp))
    print(f"{'':>18} {'wall ms':>9} {'cpu ms':>9} {'ratio':>6}")
    print(f"{'warm alone, 1 site':>18} {one_ms:>9.0f} {one_cpu:>9.0f} {1.0:>6.2f}")
    print(f"{'warm alone, all':>18} {every_ms:>9.0f} {every_cpu:>9.0f} {every_ms / one_ms:>6.2f}")
    print(
        f"{'warm joint':>18} {warm_ms:>9.0f} {warm_cpu:>9.0f} {warm_ms / one_ms:>6.2f}"
        f"   (vs all alone: {warm_ms / every_ms:.2f}; the event undone: {back_ms:.0f} ms)"
    )
    assert warm.status == "optimal", warm.message


if __name__ == "__main__":
    main()
