"""The reference formulation of the charging LP in Pyomo, solved by HiGHS through Pyomo's
persistent HiGHS interface (`pyomo.contrib.solver`).

`optimizer.lp_model` builds the same LP as sparse matrices for speed; the tests solve both and
compare every stage optimum, so this file is the readable statement of the maths.

Sets
    S   sessions;  T  steps 0..T-1 of dt hours;  R  per-phase protection limits
    J   pieces 0..9 of the unmet energy (fairness)

Variables
    p[s,t] in [0, pmax_s] inside the window, 0 outside    session power, kW
    u[s] in [0, E_s]                                       unmet energy, kWh
    ev[t] >= 0, g[t] in [0, G], x[t] >= 0                  EV power, grid import, export, kW
    peak >= 0, z >= 0                                      highest import, highest unmet share
    piece[s,j] in [0, E_s/10]                              pieces of u[s]
    e[s] in [0, X_s]                                       extra energy beyond the need, kWh

Constraints (block `c`)
    energy[s]    Σ_t dt·p[s,t] + u[s] − e[s] = E_s
    ev_def[t]    ev[t] = Σ_s p[s,t]
    balance[t]   g[t] − x[t] − ev[t] = base[t] − pv[t]
    limit[r,t]   −I_r <= Σ_s a[r,s]·p[s,t] + a_pv[r]·pv[t] + a_base[r]·base[t] <= I_r
    peak_def[t]  peak >= g[t]
    fair[s]      u[s] <= z·E_s
    pieces[s]    u[s] = Σ_j piece[s,j]

Stage objectives (block `stage`), each fixed with a small tolerance before the next:
    1 Σ_s w_s·u[s]; 2 the objective − Σ_s ε_s·e[s] (ε_s: `extra_values_per_kwh`); 3 z and
    4 Σ_s,j (2j+1)/10·piece[s,j] (under shortage);
    5 Σ_t dt·(hour(t)+1)/H·ev[t]; 6 peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyomo.environ as pyo
from pyomo.contrib.solver.solvers.highs import Highs

from grid_models.electrical import constraints
from optimizer.lp import FAIR_PIECES
from optimizer.plan import session_limits
from optimizer.problem import Problem, aligned, extra_values_per_kwh, validate_problem

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ReferenceResult:
    power_kw: FloatArray
    stage_values: list[float]


def _create_sets(m: pyo.ConcreteModel, problem: Problem) -> None:
    n = problem.n_steps()
    m.S = pyo.Set(initialize=range(len(problem.sessions)), ordered=True)
    m.T = pyo.Set(initialize=range(n), ordered=True)
    m.J = pyo.Set(initialize=range(FAIR_PIECES), ordered=True)
    phases = {s.connector_id: s.vehicle_phases for s in problem.sessions}
    lims = [lim for lim in constraints(problem.site, phases)]
    m.R = pyo.Set(initialize=range(len(lims)), ordered=True)
    m._limits = lims


def _create_variables(m: pyo.ConcreteModel, problem: Problem) -> None:
    lims = session_limits(problem)
    gmax = problem.site.grid_connection.max_power_kw

    def p_bounds(_m: pyo.ConcreteModel, s: int, t: int) -> tuple[float, float]:
        lim = lims[s]
        return (0.0, lim.pmax_kw if lim.start <= t < lim.end else 0.0)

    m.p = pyo.Var(m.S, m.T, bounds=p_bounds)
    m.u = pyo.Var(m.S, bounds=lambda _m, s: (0.0, problem.sessions[s].energy_needed_kwh))
    m.ev = pyo.Var(m.T, within=pyo.NonNegativeReals)
    m.g = pyo.Var(m.T, bounds=(0.0, gmax))
    m.x = pyo.Var(m.T, within=pyo.NonNegativeReals)
    m.peak = pyo.Var(within=pyo.NonNegativeReals)
    m.z = pyo.Var(within=pyo.NonNegativeReals)
    m.piece = pyo.Var(
        m.S, m.J, bounds=lambda _m, s, j: (0.0, problem.sessions[s].energy_needed_kwh / FAIR_PIECES)
    )
    m.e = pyo.Var(m.S, bounds=lambda _m, s: (0.0, problem.sessions[s].energy_extra_kwh))


def _create_constraints(m: pyo.ConcreteModel, problem: Problem) -> None:
    n = problem.n_steps()
    dt = problem.step_s / 3600.0
    pv = aligned(problem.pv_kw, n, hold_last=False)
    base = aligned(problem.base_load_kw, n, hold_last=False)
    sessions = problem.sessions
    c = m.c = pyo.Block()
    c.energy = pyo.Constraint(
        m.S,
        rule=lambda _c, s: (
            sum(dt * m.p[s, t] for t in m.T) + m.u[s] - m.e[s] == sessions[s].energy_needed_kwh
        ),
    )
    c.ev_def = pyo.Constraint(m.T, rule=lambda _c, t: m.ev[t] == sum(m.p[s, t] for s in m.S))
    c.balance = pyo.Constraint(m.T, rule=lambda _c, t: m.g[t] - m.x[t] - m.ev[t] == base[t] - pv[t])

    def limit(_c: pyo.Block, r: int, t: int) -> object:
        lim = m._limits[r]
        terms = [(s, lim.connector_a_per_kw.get(sessions[s].connector_id, 0.0)) for s in m.S]
        terms = [(s, a) for s, a in terms if a]
        if not terms:
            return pyo.Constraint.Skip
        const = lim.pv_a_per_kw * pv[t] + lim.base_load_a_per_kw * base[t]
        expr = sum(a * m.p[s, t] for s, a in terms) + const
        return pyo.inequality(-lim.rated_current_a, expr, lim.rated_current_a)

    c.limit = pyo.Constraint(m.R, m.T, rule=limit)
    c.peak_def = pyo.Constraint(m.T, rule=lambda _c, t: m.peak >= m.g[t])
    c.fair = pyo.Constraint(m.S, rule=lambda _c, s: m.u[s] <= m.z * sessions[s].energy_needed_kwh)
    c.pieces = pyo.Constraint(m.S, rule=lambda _c, s: m.u[s] == sum(m.piece[s, j] for j in m.J))


def _create_stages(m: pyo.ConcreteModel, problem: Problem) -> None:
    n = problem.n_steps()
    dt = problem.step_s / 3600.0
    sessions = problem.sessions
    price = aligned(problem.price_eur_per_kwh, n, hold_last=True) if problem.price_eur_per_kwh else [0.0] * n
    terms = []
    for name, w in problem.objective_weights().items():
        if name == "self_consumption":
            terms.append(w * sum(dt * m.g[t] for t in m.T))
        elif name == "cost":
            terms.append(w * sum(dt * price[t] * m.g[t] + dt * max(0.0, -price[t]) * m.x[t] for t in m.T))
        else:
            terms.append(w * m.peak)
    weights = {str(k): v for k, v in problem.objective_weights().items()}
    ends = [lim.end for lim in session_limits(problem)]
    extra_value = extra_values_per_kwh(weights, price if problem.price_eur_per_kwh else None, ends, n)
    terms.append(-sum(extra_value[s] * m.e[s] for s in m.S))
    n_hours = math.floor((n - 1) * dt + 1e-9) + 1
    st = m.stage = pyo.Block()
    st.f = pyo.Expression(
        [1, 2, 3, 4, 5, 6],
        rule=lambda _b, i: {
            1: lambda: sum(sessions[s].priority * m.u[s] for s in m.S),
            2: lambda: sum(terms),
            3: lambda: m.z,
            4: lambda: sum((2 * j + 1) / FAIR_PIECES * m.piece[s, j] for s in m.S for j in m.J),
            5: lambda: sum(dt * (math.floor(t * dt + 1e-9) + 1) / n_hours * m.ev[t] for t in m.T),
            6: lambda: m.peak,
        }[i](),
    )
    st.obj = pyo.Objective(expr=st.f[1])
    st.fix = pyo.ConstraintList()


def build_model(problem: Problem) -> pyo.ConcreteModel:
    """The Pyomo model of `problem` (pure LP: the minimum-current rule is not modelled here)."""
    validate_problem(problem)
    m = pyo.ConcreteModel(name="charging")
    _create_sets(m, problem)
    _create_variables(m, problem)
    _create_constraints(m, problem)
    _create_stages(m, problem)
    return m


def solve_reference(problem: Problem, rel_tol: float = 1e-9, abs_tol: float = 1e-9) -> ReferenceResult:
    """Solve the stages one after the other with the persistent HiGHS interface; raises if a
    stage is not optimal (oemof habit: fail loudly)."""
    m = build_model(problem)
    opt = Highs()
    values: list[float] = []
    for i in (1, 2, 3, 4, 5, 6):
        if i in (3, 4) and values[0] <= abs_tol:
            continue
        m.stage.obj.set_value(m.stage.f[i])
        res = opt.solve(m, load_solutions=True, raise_exception_on_nonoptimal_result=True)
        del res
        v = float(pyo.value(m.stage.f[i]))
        values.append(v)
        slack = 0.0 if (i == 1 and v <= abs_tol) else abs_tol + rel_tol * abs(v)
        m.stage.fix.add(m.stage.f[i] <= (max(v, 0.0) if i == 1 else v) + slack)
    power = np.array([[pyo.value(m.p[s, t]) or 0.0 for t in m.T] for s in m.S]).reshape(len(m.S), len(m.T))
    return ReferenceResult(np.maximum(power, 0.0), values)
