"""The charging optimizer: `solve(problem) -> Plan`, pure and deterministic.

A Pyomo-formulated LP/MIP (`optimizer.pyomo_model`, the reference) solved by HiGHS through a
thin sparse-matrix layer (`optimizer.lp`), with a persistent form for the planner
(`PersistentPlanner`) and baseline strategies (`optimizer.strategies`). Imports only
`grid_models`.
"""

from optimizer.problem import (
    OBJECTIVES,
    ChargingProfile,
    ChargingProfilePeriod,
    ObjectiveName,
    Plan,
    Problem,
    ProblemError,
    Session,
    SessionPlan,
    SolveOptions,
)
from optimizer.solve import PersistentPlanner, fallback_plan, solve

__all__ = [
    "OBJECTIVES",
    "ChargingProfile",
    "ChargingProfilePeriod",
    "ObjectiveName",
    "PersistentPlanner",
    "Plan",
    "Problem",
    "ProblemError",
    "Session",
    "SessionPlan",
    "SolveOptions",
    "fallback_plan",
    "solve",
]
