"""Baseline strategies sharing the optimizer's `Problem` and `Plan` types.

`STRATEGIES` maps the names `ems replay --strategy` accepts (formats §4) to functions
`Problem -> Plan`; `optimized` is `optimizer.solve` itself.
"""

from collections.abc import Callable

from optimizer.problem import Plan, Problem
from optimizer.solve import solve
from optimizer.strategies.baselines import (
    edf,
    equal_share,
    fcfs,
    llf,
    pv_surplus,
    uncontrolled,
    uncontrolled_capped,
)
from optimizer.strategies.perfect_foresight import perfect_foresight

STRATEGIES: dict[str, Callable[[Problem], Plan]] = {
    "optimized": solve,
    "uncontrolled": uncontrolled,
    "uncontrolled_capped": uncontrolled_capped,
    "equal_share": equal_share,
    "pv_surplus": pv_surplus,
    "fcfs": fcfs,
    "edf": edf,
    "llf": llf,
    "perfect_foresight": perfect_foresight,
}

__all__ = [
    "STRATEGIES",
    "edf",
    "equal_share",
    "fcfs",
    "llf",
    "perfect_foresight",
    "pv_surplus",
    "uncontrolled",
    "uncontrolled_capped",
]
