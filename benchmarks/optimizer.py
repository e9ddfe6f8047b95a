"""Optimizer benchmark: cold plans and warm re-plans on depot-sized sites.

For N sessions at T = 96 steps (15 min, one day) it reports
  (a) a cold `optimizer.solve` — build, solve, total — next to the bare HiGHS solve of the
      same first-stage LP handed straight to `highspy` as sparse matrices in the same run
      (the ratio is the modelling-and-staging overhead), and
  (b) the re-plan after one session event (arrival, departure, new preference) on a
      `PersistentPlanner` kept alive.

`cpu ms` is the process CPU time of the same calls (HiGHS runs on one thread): steadier than
the wall clock on a machine shared with other jobs.

Run: `.venv/bin/python -m benchmarks.optimizer` (or `make bench`). `EMS_BENCH_QUICK=1` runs
N = 12 and 200 once each (seconds); `EMS_BENCH_FULL=1` adds a cold plan at N = 3000 (~2 min). Figures go to
`benchmarks/optimizer.md` by hand.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import highspy
import numpy as np

from grid_models.site import ChargePoint, Connector, GridConnection, Load, Phase, Protection, PvPlant, Site
from grid_models.sitefile import load_site
from optimizer import PersistentPlanner, Problem, Session, SolveOptions, solve
from optimizer.lp import StagedLp
from optimizer.plan import session_limits
from optimizer.solve import _slot_data, _step_data

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)
STEPS = 96
DEPOT = Path(__file__).resolve().parents[1] / "examples" / "sites" / "depot.json"


def depot_site(n_connectors: int, synthetic: bool = False) -> Site:
    """`examples/sites/depot.json` up to its 104 connectors; above (or `synthetic`), a synthetic
    depot of the same make: feeders of 12 connectors (32 A three-phase with rotated wiring, 16 A
    single-phase), a main sized like a real depot (~3.5 A per connector), PV and a workshop load."""
    if n_connectors <= 104 and DEPOT.is_file() and not synthetic:
        return load_site(DEPOT)
    rot: list[tuple[Phase, ...]] = [("L1", "L2", "L3"), ("L2", "L3", "L1"), ("L3", "L1", "L2")]
    feeders: list[Protection] = []
    cps: list[ChargePoint] = []
    for i in range(n_connectors):
        f = f"feeder{i // 12}"
        if i % 12 == 0:
            feeders.append(Protection(f, "main", 125.0))
        if i % 4 == 3:
            phases: tuple[Phase, ...] = (("L1",), ("L2",), ("L3",))[i % 3]
            max_a = 16.0
        else:
            phases, max_a = rot[i % 3], 32.0
        cps.append(ChargePoint(f"cp{i}", f, (Connector(f"c{i}", f"BENCH*E{i:05d}", "1", phases, max_a),)))
    return Site(
        id=f"bench-depot-{n_connectors}",
        name="synthetic depot",
        timezone="UTC",
        latitude=0.0,
        longitude=0.0,
        phase_voltage_v=230.0,
        grid_connection=GridConnection(2.2 * n_connectors),
        protections=(Protection("main", None, 3.5 * n_connectors), *feeders),
        charge_points=tuple(cps),
        pv_plants=(PvPlant("pv", "main", 1.5 * n_connectors),),
        loads=(Load("workshop", "main"),),
    )


def scenario(n: int, min_current: bool = False) -> Problem:
    """N sessions plugged in at 04:00, leaving between 08:00 and 04:00 the next day, needing
    5–40 kWh; PV bell, varying base load, two price levels. Deterministic."""
    site = depot_site(max(n + 8, 12))
    conns = site.connectors()
    pv_peak = sum(p.peak_power_kw for p in site.pv_plants) * 0.8
    sessions = tuple(
        Session(
            f"s{i}",
            conns[i].id,
            5.0 + (i * 7919) % 36,
            NOW + timedelta(hours=4 + ((i * 104729) % 200) / 10),
            vehicle_phases=1 if i % 5 == 0 else 3,
            max_power_kw=None if i % 3 else 11.0,
        )
        for i in range(n)
    )
    pv = tuple(
        max(0.0, pv_peak * math.sin(math.pi * (4 + k / 4 - 7) / 12)) if 7 <= 4 + k / 4 <= 19 else 0.0
        for k in range(STEPS)
    )
    return Problem(
        site,
        NOW,
        sessions,
        pv_kw=pv,
        base_load_kw=tuple(0.1 * n + 5 * math.sin(k / 8) + 5 for k in range(STEPS)),
        price_eur_per_kwh=tuple(0.1 + 0.1 * ((k // 16) % 2) for k in range(STEPS)),
        objective="self_consumption",
        options=SolveOptions(min_current=min_current, time_limit_s=120.0),
    )


def bare_highs_ms(problem: Problem) -> float:
    """The first-stage LP (least unmet energy) of `problem`, as the matrices `optimizer.lp_model`
    builds, solved from scratch by a fresh `highspy.Highs` with default options."""
    n = problem.n_steps()
    limits = session_limits(problem, n)
    model = StagedLp(
        problem.site, [(s.connector_id, s.vehicle_phases) for s in problem.sessions], n, problem.step_s
    )
    model.load(_step_data(problem, n), [_slot_data(problem, lim) for lim in limits])
    c = model._stage_costs(1)
    model.h.changeColsCost(model.n_col, np.arange(model.n_col, dtype=np.int32), c)
    lp = model.h.getLp()
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    t0 = time.perf_counter()
    h.run()
    return (time.perf_counter() - t0) * 1e3


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def cold(n: int, repeats: int) -> dict[str, float]:
    problem = scenario(n)
    build, solve_ms, total, bare, cpu = [], [], [], [], []
    plan = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        c0 = time.process_time()
        plan = solve(problem)
        total.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        build.append(plan.build_ms)
        solve_ms.append(plan.solve_ms)
        bare.append(bare_highs_ms(problem))
    assert plan is not None
    return {
        "n": n,
        "build_ms": _p50(build),
        "solve_ms": _p50(solve_ms),
        "total_ms": _p50(total),
        "cpu_ms": _p50(cpu),
        "bare_ms": _p50(bare),
        "ratio": _p50(total) / _p50(bare),
        "unmet_kwh": plan.unmet_kwh,
        "status": 0.0 if plan.status == "optimal" else 1.0,
    }


def events(problem: Problem) -> list[tuple[str, Callable[[Problem], Problem]]]:
    site_conns = problem.site.connectors()
    free = site_conns[len(problem.sessions)].id

    def arrival(p: Problem) -> Problem:
        new = Session("arrival", free, 20.0, NOW + timedelta(hours=10), vehicle_phases=3)
        return replace(p, sessions=(*p.sessions, new))

    def departure(p: Problem) -> Problem:
        return replace(p, sessions=tuple(s for s in p.sessions if s.session_id != "s1"))

    def preference(p: Problem) -> Problem:
        return replace(
            p,
            sessions=tuple(
                replace(
                    s, energy_needed_kwh=s.energy_needed_kwh + 10, departure=s.departure + timedelta(hours=1)
                )
                if s.session_id == "s2"
                else s
                for s in p.sessions
            ),
        )

    return [("arrival", arrival), ("departure", departure), ("preference", preference)]


def replan(n: int, repeats: int) -> dict[str, float]:
    base = scenario(n)
    planner = PersistentPlanner(base.site)
    planner.update(base)
    out: dict[str, float] = {"n": n}
    times: list[float] = []
    cpu: list[float] = []
    for name, event in events(base):
        runs = []
        for _ in range(repeats):
            changed = event(base)
            t0, c0 = time.perf_counter(), time.process_time()
            planner.update(changed)
            runs.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
            t0, c0 = time.perf_counter(), time.process_time()
            planner.update(base)  # and back, so every repeat starts from the same state
            times.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.process_time() - c0) * 1e3)
        out[f"{name}_ms"] = _p50(runs)
        times.extend(runs)
    out["p50_ms"] = _p50(times)
    out["cpu_p50_ms"] = _p50(cpu)
    return out


def main() -> None:
    quick = os.environ.get("EMS_BENCH_QUICK") == "1"
    sizes = [12, 200] if quick else [12, 200, 1000]
    if os.environ.get("EMS_BENCH_FULL") == "1" and not quick:
        sizes.append(3000)
    print(f"optimizer: cold plan vs bare HiGHS, T={STEPS} steps ({'quick' if quick else 'full'})")
    heads = ("build ms", "solve ms", "total ms", "bare ms")
    print(f"{'N':>6} {' '.join(f'{h:>9}' for h in heads)} {'ratio':>6} {'unmet kWh':>10} {'cpu ms':>9}")
    for n in sizes:
        reps = 1 if quick or n >= 1000 else 3
        r = cold(n, reps)
        print(
            f"{n:>6} {r['build_ms']:>9.1f} {r['solve_ms']:>9.1f} {r['total_ms']:>9.1f} {r['bare_ms']:>9.1f} "
            f"{r['ratio']:>6.2f} {r['unmet_kwh']:>10.2f} {r['cpu_ms']:>9.1f}"
        )
    sizes = [n for n in sizes if n <= 1000]  # N = 3000 re-plans would take minutes
    print("optimizer: re-plan after one event on a PersistentPlanner (ms, p50)")
    print(f"{'N':>6} {'arrival':>9} {'departure':>9} {'preference':>10} {'p50 all':>9} {'cpu p50':>9}")
    for n in sizes:
        reps = 1 if quick or n >= 1000 else 3
        r = replan(n, reps)
        cells = [
            f"{r[k]:>{w}.1f}" for k, w in (("arrival_ms", 9), ("departure_ms", 9), ("preference_ms", 10))
        ]
        print(f"{n:>6} {' '.join(cells)} {r['p50_ms']:>9.1f} {r['cpu_p50_ms']:>9.1f}")


if __name__ == "__main__":
    main()
