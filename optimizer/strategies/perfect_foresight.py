"""The optimizer with hindsight: one plan over the whole replay with every session known in
advance, future arrivals included, as the bound the online planner is measured against."""

from __future__ import annotations

from dataclasses import replace

from optimizer.problem import Plan, Problem
from optimizer.solve import solve


def perfect_foresight(problem: Problem) -> Plan:
    """The same staged LP/MIP as `solve`, on a problem whose sessions carry their `arrival`
    (charging windows start there) and whose series cover the whole span. Keeps `status`
    (a fallback stays flagged) and names the method `perfect_foresight` otherwise."""
    plan = solve(problem)
    if plan.status == "fallback":
        return plan
    note = f"solved by {plan.method}"
    return replace(plan, method="perfect_foresight", message=plan.message or note)
