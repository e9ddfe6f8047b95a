"""The rule-based strategies the planner can run instead of the optimizer, by name.

One list for the replay (`ems replay --strategy`) and the server (`EMS_PLAN_STRATEGY`), so a
strategy named in one means the same plan in the other. `optimized` is the optimizer itself
(no override); `perfect_foresight` is no planner strategy (it needs tomorrow's sessions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from grid_models.electrical import session_max_power_kw
from optimizer.problem import Plan, Problem
from optimizer.strategies import edf, equal_share, fcfs, llf, pv_surplus, uncontrolled

FULL_MARGIN_KWH = 1.0
"""Asked beyond what a car could take at full power until its departure: never reached."""


def no_smart_charging(problem: Problem) -> Plan:
    """`uncontrolled` as a site without smart charging has it: every car offered its full power
    for as long as it stays, whatever its estimated need (a charger knows no need; the car stops
    when full). The replay's `uncontrolled` is that too (its CPO ignores profiles), so a server
    running it sends the profiles the replay's cars draw under."""
    connectors = {c.id: c for c in problem.site.connectors()}
    sessions = []
    for s in problem.sessions:
        connector = connectors.get(s.connector_id)
        if connector is not None:
            hours = max(0.0, (s.departure - problem.now).total_seconds()) / 3600.0
            full_kw = session_max_power_kw(problem.site, connector, s.vehicle_phases, s.max_power_kw)
            s = replace(s, energy_needed_kwh=full_kw * hours + FULL_MARGIN_KWH, energy_extra_kwh=0.0)
        sessions.append(s)
    return uncontrolled(replace(problem, sessions=tuple(sessions)))


BASELINES: dict[str, Callable[[Problem], Plan]] = {
    "uncontrolled": no_smart_charging,
    "equal_share": equal_share,
    "pv_surplus": pv_surplus,
    "fcfs": fcfs,
    "edf": edf,
    "llf": llf,
}
PLAN_STRATEGIES = ("optimized", *BASELINES)
"""What `EMS_PLAN_STRATEGY` accepts."""


def plan_solver(strategy: str) -> Callable[[Problem], Plan] | None:
    """The planner's solve override for `strategy` (None: the optimizer); a clear error naming
    the accepted names for anything else."""
    if strategy == "optimized":
        return None
    solver = BASELINES.get(strategy)
    if solver is None:
        raise ValueError(f"plan strategy {strategy!r}: expected one of {', '.join(PLAN_STRATEGIES)}")
    return solver
