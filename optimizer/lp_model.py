"""The charging LP as sparse matrices handed straight to HiGHS (`highspy`), solved in
lexicographic stages.

This is the fast path of the formulation written out in Pyomo in `optimizer.pyomo_model`
(the reference: the tests check both give the same stage optima). Building the matrix with
numpy costs a few milliseconds where a Pyomo build of the same LP costs seconds at 1000
sessions, and keeping one `highspy.Highs` object alive lets a re-plan change only bounds,
right-hand sides and costs and restart from the previous basis.

Sets
    K   slots: one per (connector, vehicle-phase mode) in the persistent model, one per session
        in a cold model. Power is indexed by slot, not by session, so a session arriving or
        leaving only changes bounds and right-hand sides.
    T   steps 0..T-1 of length dt (h).
    R   per-phase protection limits (`grid_models.electrical.constraints`) that carry a slot.

Variables (all >= 0 unless said)
    p[k,t]   mean power of slot k in step t, kW; ub pmax_k inside the charging window, else 0
    u[k]     unmet energy, kWh
    ev[t]    total EV power, kW
    g[t]     grid import, kW, ub grid_connection.max_power_kw;  x[t] export, kW
    peak     highest g[t], kW;  z  highest unmet share u[k]/E[k] (fairness)
    s[k,j]   j-th of S = 10 equal pieces of u[k], ub E_k/S (piecewise-linear fairness)
    e[k]     extra energy beyond the need, kWh, ub X_k (`Session.energy_extra_kwh`)
    y[k,t]   (MIP only) binary on/off for the minimum-current rule

Constraints
    energy[k]     Σ_t dt·p[k,t] + u[k] − e[k] = E_k
    ev_def[t]     ev[t] − Σ_k p[k,t] = 0
    balance[t]    g[t] − x[t] − ev[t] = base[t] − pv[t]
    limit[r,t]    −I_r − c_r[t] <= Σ_k a[r,k]·p[k,t] <= I_r − c_r[t],
                  c_r[t] = a_pv[r]·pv[t] + a_base[r]·base[t]     (both directions, every phase)
    peak_def[t]   peak − g[t] >= 0
    fair[k]       E_k·z − u[k] >= 0
    pieces[k]     u[k] − Σ_j s[k,j] = 0
    on_max[k,t]   p[k,t] − pmax_k·y[k,t] <= 0;  on_min[k,t]  p[k,t] − pmin_k·y[k,t] >= 0  (MIP)
    stage_s       f_s(x) <= f_s* (1 + rel) + abs   once stage s is solved

Stages (strict priorities, each optimum fixed by its stage row before the next)
    1  min Σ_k w_k·u[k]                       least unmet energy, weighted by priority
    2  min Σ_t dt·g[t] (self_consumption) | Σ_t price[t]·dt·(g[t] − x[t]·[price<0]) (cost)
           | peak (peak), or a weighted sum of these;  − Σ_k ε_k·e[k], ε_k from half to 0.9
           of the cheapest import kWh, more for a window ending sooner
           (`optimizer.problem.extra_values_per_kwh`): extra energy only from PV that no need
           takes, first to the car with fewer PV hours left
    3  min z                                  only under shortage: unmet split in proportion
                                              to need, never all on one driver
    4  min Σ_k,j (2j+1)/S·s[k,j]             only under shortage: = Σ_k E_k·φ(u_k/E_k) with φ a
                                              piecewise-linear r², which spreads the unmet share
                                              evenly over every bottleneck, not only the worst
    5  min Σ_t dt·(h(t)+1)·ev[t]              earlier: a coarse discount by the hour h(t) of
                                              step t (no tiny costs, few ties to explore)
    6  min peak                               flatter grid draw within what stage 5 left free

Solving (`StagedLp.solve`): with the tie-breaks on, every stage in one weighted LP (ratio
`ALL_STAGES_RATIO` between consecutive stages, the fairness stages only counted under
shortage), by dual simplex — warm from the basis the previous such run ended with — then the
lexicographic proof below over all stages; stages it does not cover go on one at a time as
below (also when the run passes `ALL_STAGES_ROW_ITERATIONS` per row). On the bench it proved
all six stages cold and on every event at N = 200 and 1000: one HiGHS run per plan, and the
tie-breaks at their exact optimum.
Otherwise, or where that proof stops: the pending stages 1–2 — with the fairness stages 3–4 when they
are on, which cost nothing without a shortage — run as one weighted LP whose final basis
is then checked for lexicographic optimality (reduced costs of every stage objective, see
`_certified_prefix`), so the priorities hold exactly without trusting the weights; stages the
proof does not cover run one at a time. Every LP run is simplex without presolve (a cold
first run too: faster than presolve + simplex and than interior point + crossover, measured
up to 3000 sessions). Before the fairness stage 3 the same proof is tried on the basis at hand (stages 1, 2
and 3): when it holds the stage needs no HiGHS run. Tie-breaks run primal simplex, without
bound perturbation (so every iterate is feasible), under a deterministic iteration budget;
stages 5–6 (earlier, flatter) run as one weighted LP proved the same way (over the feasible
set the fixed stage rows 1–4 leave), stage 6 alone only where the proof stops at 5; a stage 5
that ended optimal at the previous re-plan restarts from that basis by dual simplex (dual
feasible for the same costs: only the moved stage rows make it primal infeasible), primal
simplex when that is cut by the budget;
the fairness stages 3–4 (when the weighted run did not prove them) start from the basis
stage 2 ended with, stages 1, 2, 5 and 6 from the basis they ended with at the previous
re-plan (`WarmBasis`). In a MIP the binaries stay free through the fairness stages (the split
is optimised over the on/off decisions too) and are fixed only for stages 5–6.

With a negative price, `cost` values `g − x` (net import) instead of `g` alone so the LP gains
nothing by importing and exporting at once; the reported cost is still Σ max(0, net)·price·dt.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from grid_models.electrical import PhaseLimit, constraints
from grid_models.site import Site
from optimizer.problem import extra_values_per_kwh

FloatArray = npt.NDArray[np.float64]
INF = highspy.kHighsInf
FAIR_PIECES = 10
TIE_BREAK_INFEASIBILITY = 1e-6
"""Largest primal infeasibility of a tie-break iterate cut by the budget that is still kept."""
ALL_STAGES_ROW_ITERATIONS = 2
"""The all-stage run stops after this many simplex iterations per row (then the stages go the
usual way from where it stopped); measured cold: 0.4 (N = 200) and 0.17 (N = 1000) per row."""
ALL_STAGES_RATIO = 10.0
"""Weight ratio between consecutive stages in the warm all-stage run (`StagedLp.solve`): with
100 the later stages' costs fall to 1e-8..1e-10 of the first, below HiGHS's tolerances; with
10 the proof held for all six stages on every bench event (N = 200 and 1000)."""
EARLY_BLOCK_H = 1.0
"""Hours per block of the earliness discount (4 h blocks measured ~25 % faster at 1000 sessions)."""


@functools.lru_cache(maxsize=8)
def _site_constraints(site: Site, mode: int) -> list[PhaseLimit]:
    """`constraints` of `site` with every connector in vehicle-phase `mode`: a pure function of
    the (immutable) site, kept for the next model of the same site (it validates the site and
    builds every row: 6.4 ms for both modes on the 104-connector depot, of an 11 ms build, where
    hashing the site costs 0.1 ms)."""
    return constraints(site, {c.id: mode for c in site.connectors()})


def _dot(c: FloatArray, x: FloatArray) -> float:
    """c·x without BLAS: numpy's OpenBLAS splits a dot product of this length (~20 000 columns
    at 200 sessions) over threads that then spin; on this 2-core machine shared with other jobs
    each call cost ~9 ms of CPU and waited for the other core (measured: 200 calls with a 2 ms
    pause between, 1.8 s CPU and 5.4 s wall vs 0.07 s CPU and 0.9 s wall)."""
    return float(np.multiply(c, x).sum())


@dataclass
class SlotData:
    """What one slot carries in one update: its session's need, limits and window."""

    active: bool = False
    energy_kwh: float = 0.0
    weight: float = 1.0
    pmax_kw: float = 0.0
    pmin_kw: float = 0.0
    start: int = 0
    end: int = 0
    extra_kwh: float = 0.0


@dataclass
class StepData:
    n_steps: int
    """Steps actually planned (<= the model's steps; the rest are switched off)."""
    pv_kw: FloatArray
    base_load_kw: FloatArray
    price_eur_per_kwh: FloatArray | None
    weights: dict[str, float]


@dataclass
class StageOutcome:
    ok: bool
    status: str
    """`optimal`, `feasible` (time limit with an incumbent) or the HiGHS status on failure."""
    power_kw: FloatArray
    """(K, T) plan."""
    stage_values: list[float]
    gap: float | None
    message: str | None = None
    x: FloatArray | None = None
    """The whole column vector of the last stage (a MIP start for a later model)."""


_STATUS = {int(v.value): v for v in highspy.HighsBasisStatus.__members__.values()}
LOWER, BASIC, UPPER, ZERO = 0, 1, 2, 3


@dataclass
class WarmBasis:
    """A stage's final basis kept for the next re-plan: HiGHS's own, plus its statuses as
    codes (`LOWER`, `BASIC`, `UPPER`, `ZERO`) in which a column fixed at the time counts as at
    its lower bound. HiGHS may leave a column fixed at 0 (an idle slot, a step outside a window)
    "at upper": once a session opens it, that puts it at its new maximum (measured: 8900 dual
    simplex iterations instead of ~10 when a session came back to a used connector, N = 1000).
    So after bounds open (`stale`) the basis is rebuilt from the codes."""

    basis: Any
    col: npt.NDArray[np.int8]
    row: npt.NDArray[np.int8]
    stale: bool = False
    optimal: bool = False
    """The stage ended optimal (not cut by the iteration budget)."""
    stages: tuple[int, ...] = ()
    """The stages whose weighted objective the run had."""

    def highs_basis(self) -> Any:
        if self.stale:
            b = highspy.HighsBasis()
            b.col_status = [_STATUS[i] for i in self.col.tolist()]
            b.row_status = [_STATUS[i] for i in self.row.tolist()]
            b.valid = True
            self.basis = b
            self.stale = False
        return self.basis


def _fairness_after_stage_2(pending: list[int]) -> list[int]:
    """Under shortage: the fairness stages 3–4 right after stage 2."""
    return [s for s in pending if s <= 2] + [3, 4] + [s for s in pending if s > 4]


class StagedLp:
    """One HiGHS model of the charging LP over fixed slots and steps; see the module docstring."""

    def __init__(
        self,
        site: Site,
        slots: Sequence[tuple[str, int]],
        n_steps: int,
        step_s: int,
        *,
        mip: bool = False,
        threads: int = 1,
    ) -> None:
        self.site = site
        self.slots = list(slots)
        self.K = len(self.slots)
        self.T = n_steps
        self.dt_h = step_s / 3600.0
        self.mip = mip
        self._build(threads)

    # ---- step 1: sets and index layout ----------------------------------------------------
    def _create_sets(self) -> None:
        k_count, t_count = self.K, self.T
        by_mode = {m: _site_constraints(self.site, m) for m in (1, 3)}
        slots_of: dict[tuple[str, int], list[int]] = {}
        for k, pair in enumerate(self.slots):
            slots_of.setdefault(pair, []).append(k)
        modes = sorted({mode for _, mode in self.slots})
        rows: list[int] = []
        coefs: list[dict[int, float]] = []
        for r in range(len(by_mode[3])):
            # each row's own connectors, not every slot (N = 1000: 255 rows × 1000 slots of
            # dictionary look-ups were most of the cold build)
            found: list[tuple[int, float]] = []
            for mode in modes:
                for cid, a in by_mode[mode][r].connector_a_per_kw.items():
                    if a:
                        found.extend((k, a) for k in slots_of.get((cid, mode), ()))
            if found:
                rows.append(r)
                coefs.append(dict(sorted(found)))
        lims = by_mode[3]
        self.limit_rows = rows
        """The site-wide index (`constraints`) of each limit row kept."""
        self.limit_rated_a = np.array([lims[r].rated_current_a for r in rows])
        self.limit_pv_a = np.array([lims[r].pv_a_per_kw for r in rows])
        self.limit_base_a = np.array([lims[r].base_load_a_per_kw for r in rows])
        self.limit_coefs = coefs
        self.R = len(rows)
        # column offsets
        self.c_p = 0
        self.c_u = k_count * t_count
        self.c_ev = self.c_u + k_count
        self.c_g = self.c_ev + t_count
        self.c_x = self.c_g + t_count
        self.c_peak = self.c_x + t_count
        self.c_z = self.c_peak + 1
        self.S = FAIR_PIECES
        self.c_s = self.c_z + 1
        self.c_e = self.c_s + k_count * self.S
        self.c_y = self.c_e + k_count
        self.n_col = self.c_y + (k_count * t_count if self.mip else 0)
        # row offsets
        self.r_energy = 0
        self.r_evdef = k_count
        self.r_bal = self.r_evdef + t_count
        self.r_lim = self.r_bal + t_count
        self.r_peak = self.r_lim + self.R * t_count
        self.r_fair = self.r_peak + t_count
        self.r_pieces = self.r_fair + k_count
        self.r_stage = self.r_pieces + k_count
        self.n_stage_rows = 5
        self.r_mip = self.r_stage + self.n_stage_rows
        self.n_row = self.r_mip + (2 * k_count * t_count if self.mip else 0)

    # ---- step 2 and 3: variables and constraints as one sparse matrix --------------------------
    def _build(self, threads: int) -> None:
        self._create_sets()
        k_count, t_count, dt = self.K, self.T, self.dt_h
        ri: list[npt.NDArray[np.int64]] = []
        ci: list[npt.NDArray[np.int64]] = []
        vv: list[FloatArray] = []

        def add(rows: npt.ArrayLike, cols: npt.ArrayLike, vals: npt.ArrayLike) -> None:
            r = np.asarray(rows, dtype=np.int64).ravel()
            c = np.asarray(cols, dtype=np.int64).ravel()
            v = np.broadcast_to(
                np.asarray(vals, dtype=float).ravel() if np.ndim(vals) > 1 else np.asarray(vals, dtype=float),
                r.shape,
            ).ravel()
            ri.append(r)
            ci.append(c)
            vv.append(v)

        kk, tt = np.meshgrid(np.arange(k_count), np.arange(t_count), indexing="ij")
        p_idx = self.c_p + kk * t_count + tt
        # energy[k]
        add(self.r_energy + kk, p_idx, dt)
        add(self.r_energy + np.arange(k_count), self.c_u + np.arange(k_count), 1.0)
        add(self.r_energy + np.arange(k_count), self.c_e + np.arange(k_count), -1.0)
        # ev_def[t]
        t_ar = np.arange(t_count)
        add(self.r_evdef + t_ar, self.c_ev + t_ar, 1.0)
        add(self.r_evdef + tt, p_idx, -1.0)
        # balance[t]
        add(self.r_bal + t_ar, self.c_g + t_ar, 1.0)
        add(self.r_bal + t_ar, self.c_x + t_ar, -1.0)
        add(self.r_bal + t_ar, self.c_ev + t_ar, -1.0)
        # limit[r,t]
        for r, coef in enumerate(self.limit_coefs):
            ks = np.fromiter(coef.keys(), dtype=np.int64)
            a = np.fromiter(coef.values(), dtype=float)
            rows = self.r_lim + r * t_count + np.repeat(t_ar[None, :], ks.size, axis=0)
            cols = self.c_p + ks[:, None] * t_count + t_ar[None, :]
            add(rows, cols, np.repeat(a[:, None], t_count, axis=1))
        # peak_def[t]
        add(self.r_peak + t_ar, np.full(t_count, self.c_peak), 1.0)
        add(self.r_peak + t_ar, self.c_g + t_ar, -1.0)
        # fair[k]: E_k·z − u_k >= 0 (E_k set per update; placeholder 1)
        add(self.r_fair + np.arange(k_count), np.full(k_count, self.c_z), 1.0)
        add(self.r_fair + np.arange(k_count), self.c_u + np.arange(k_count), -1.0)
        # stage rows: coefficients set per update (placeholders on every column they may use)
        add(np.full(k_count, self.r_stage), self.c_u + np.arange(k_count), 1.0)
        add(
            np.full(2 * t_count + 1, self.r_stage + 1),
            np.concatenate([self.c_g + t_ar, self.c_x + t_ar, [self.c_peak]]),
            1.0,
        )
        add(np.full(k_count, self.r_stage + 1), self.c_e + np.arange(k_count), 1.0)
        add([self.r_stage + 2], [self.c_z], 1.0)
        # pieces[k]: u_k − Σ_j s_kj = 0, and the stage-4 row over the pieces
        s_idx = self.c_s + np.arange(k_count * self.S)
        add(self.r_pieces + np.arange(k_count), self.c_u + np.arange(k_count), 1.0)
        add(self.r_pieces + np.repeat(np.arange(k_count), self.S), s_idx, -1.0)
        add(np.full(s_idx.size, self.r_stage + 3), s_idx, np.tile(self._piece_costs(), k_count))
        add(np.full(t_count, self.r_stage + 4), self.c_ev + t_ar, 1.0)
        if self.mip:
            y_idx = self.c_y + kk * t_count + tt
            n_kt = k_count * t_count
            base = self.r_mip + kk * t_count + tt
            add(base, p_idx, 1.0)
            add(base, y_idx, -1.0)  # placeholder −pmax
            add(base + n_kt, p_idx, 1.0)
            add(base + n_kt, y_idx, -1.0)  # placeholder −pmin
        a_mat = sp.csc_matrix(
            (np.concatenate(vv), (np.concatenate(ri), np.concatenate(ci))), shape=(self.n_row, self.n_col)
        )
        a_mat.sum_duplicates()
        a_mat.sort_indices()

        lp = highspy.HighsLp()
        lp.num_col_ = self.n_col
        lp.num_row_ = self.n_row
        lp.col_cost_ = np.zeros(self.n_col)
        lp.col_lower_ = np.zeros(self.n_col)
        col_upper = np.zeros(self.n_col)
        col_upper[self.c_peak] = INF
        col_upper[self.c_z] = INF
        col_upper[self.c_x : self.c_x + t_count] = INF
        col_upper[self.c_ev : self.c_ev + t_count] = INF
        lp.col_upper_ = col_upper
        row_lo = np.full(self.n_row, -INF)
        row_hi = np.full(self.n_row, INF)
        row_lo[: self.r_lim] = 0.0
        row_hi[: self.r_lim] = 0.0
        row_hi[self.r_pieces : self.r_stage] = 0.0
        row_lo[self.r_peak : self.r_stage] = 0.0
        if self.mip:
            row_hi[self.r_mip : self.r_mip + k_count * t_count] = 0.0
            row_lo[self.r_mip + k_count * t_count :] = 0.0
        lp.row_lower_ = row_lo
        lp.row_upper_ = row_hi
        self.a_mat = a_mat
        self.col_lo = np.zeros(self.n_col)
        self.col_hi = col_upper.copy()
        self.row_lo = row_lo.copy()
        self.row_hi = row_hi.copy()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a_mat.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a_mat.indices.astype(np.int32)
        lp.a_matrix_.value_ = a_mat.data
        if self.mip:
            integ = [highspy.HighsVarType.kContinuous] * self.n_col
            for j in range(self.c_y, self.n_col):
                integ[j] = highspy.HighsVarType.kInteger
            lp.integrality_ = integ
        h: Any = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", threads)
        h.setOptionValue("random_seed", 0)
        if not self.mip:
            # simplex without presolve. The cold weighted run of stages 1-4 (CPU): N = 200
            # 1386 dual simplex iterations / ~150 ms instead of 2470 / ~470 ms with presolve;
            # N = 1000 4039 / 1.5 s where interior point + crossover (with presolve, as it was
            # used from 40 000 slot-steps up) took 6.4 s (2.7 s for stages 1-2 alone);
            # N = 3000 9910 / 7.5 s. Warm runs start from a basis and skip presolve anyway
            h.setOptionValue("presolve", "off")
        h.passModel(lp)
        self.h = h
        self._stage_coef_cache: dict[tuple[int, int], float] = {}
        self._coef_delta: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray] | None = None
        """(rows, columns, new − built value) of the coefficients changed since the build."""
        self._costs: FloatArray | None = None
        self._bases: dict[int, WarmBasis] = {}
        self._opened = False
        """Per first stage of a run: the basis it ended with (the warm start of a re-plan)."""

    # ---- warm start across a rebuild -----------------------------------------------------
    def _index_maps(self, old: StagedLp) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Where each column and row of `old` sits in this model, which must hold all of its
        slots (in any order) and at least its steps."""
        slot_new = {sl: k for k, sl in enumerate(self.slots)}
        ks = np.array([slot_new[sl] for sl in old.slots], dtype=np.int64)
        to, tn = old.T, self.T
        t_ar = np.arange(to, dtype=np.int64)
        cols = np.empty(old.n_col, dtype=np.int64)
        cols[old.c_p : old.c_p + old.K * to] = (self.c_p + ks[:, None] * tn + t_ar[None, :]).ravel()
        cols[old.c_u : old.c_u + old.K] = self.c_u + ks
        for a, b in ((old.c_ev, self.c_ev), (old.c_g, self.c_g), (old.c_x, self.c_x)):
            cols[a : a + to] = b + t_ar
        cols[old.c_peak] = self.c_peak
        cols[old.c_z] = self.c_z
        j = np.arange(old.S, dtype=np.int64)
        cols[old.c_s : old.c_s + old.K * old.S] = (self.c_s + ks[:, None] * self.S + j[None, :]).ravel()
        cols[old.c_e : old.c_e + old.K] = self.c_e + ks
        lim_new = {r: i for i, r in enumerate(self.limit_rows)}
        rs = np.array([lim_new[r] for r in old.limit_rows], dtype=np.int64)
        rows = np.empty(old.n_row, dtype=np.int64)
        rows[old.r_energy : old.r_energy + old.K] = self.r_energy + ks
        for a, b in ((old.r_evdef, self.r_evdef), (old.r_bal, self.r_bal), (old.r_peak, self.r_peak)):
            rows[a : a + to] = b + t_ar
        rows[old.r_lim : old.r_lim + old.R * to] = (self.r_lim + rs[:, None] * tn + t_ar[None, :]).ravel()
        rows[old.r_fair : old.r_fair + old.K] = self.r_fair + ks
        rows[old.r_pieces : old.r_pieces + old.K] = self.r_pieces + ks
        rows[old.r_stage : old.r_stage + old.n_stage_rows] = self.r_stage + np.arange(old.n_stage_rows)
        return cols, rows

    def inherit_bases(self, old: StagedLp) -> None:
        """Take over the per-stage warm starts of `old` (a model of the same site and step
        with fewer slots or steps, no binaries): its basic variables stay basic, new columns
        start nonbasic at their lower bound 0, new rows basic. A connector used for the first
        time then costs a rebuild but not a cold solve."""
        if self.mip or old.mip or not old._bases or self.T < old.T or self.dt_h != old.dt_h:
            return
        try:
            cols, rows = self._index_maps(old)
        except KeyError:  # a slot or limit row of `old` is missing here: start cold
            return
        for stage, w in old._bases.items():
            col = np.full(self.n_col, LOWER, dtype=np.int8)
            row = np.full(self.n_row, BASIC, dtype=np.int8)
            col[cols] = w.col
            row[rows] = w.row
            self._bases[stage] = WarmBasis(None, col, row, stale=True, optimal=w.optimal, stages=w.stages)

    # ---- per-update data ------------------------------------------------------------------
    def load(
        self,
        steps: StepData,
        slots: Sequence[SlotData],
        pattern: FloatArray | None = None,
        binary_steps: int | None = None,
    ) -> None:
        """Set bounds, right-hand sides and coefficients for one problem.

        `pattern` (K, T): fixes the on/off decisions of the minimum-current rule (1 on, 0 off,
        nan free); used by the LP-rounding heuristic and after a MIP.
        """
        k_count, t_count = self.K, self.T
        h = self.h
        n = steps.n_steps
        self.steps = steps
        self.slot_data = list(slots)
        p_lo = np.zeros((k_count, t_count))
        p_hi = np.zeros((k_count, t_count))
        y_hi = np.zeros((k_count, t_count))
        energy = np.zeros(k_count)
        u_hi = np.zeros(k_count)
        e_hi = np.zeros(k_count)
        for k, s in enumerate(slots):
            if not s.active:
                continue
            end = min(s.end, n)
            energy[k] = s.energy_kwh
            u_hi[k] = s.energy_kwh
            e_hi[k] = s.extra_kwh
            if end > s.start and s.pmax_kw > 0 and (s.pmin_kw <= s.pmax_kw + 1e-9):
                p_hi[k, s.start : end] = s.pmax_kw
                y_hi[k, s.start : end] = 1.0
                if pattern is not None and s.pmin_kw > 0:
                    pat = pattern[k, s.start : end]
                    p_hi[k, s.start : end] = np.where(pat == 0.0, 0.0, s.pmax_kw)
                    p_lo[k, s.start : end] = np.where(pat == 1.0, min(s.pmin_kw, s.pmax_kw), 0.0)
        self.p_hi = p_hi
        idx = np.arange(k_count * t_count, dtype=np.int32)
        self._col_bounds(idx.size, idx, p_lo.ravel(), p_hi.ravel())
        u_idx = (self.c_u + np.arange(k_count)).astype(np.int32)
        self._col_bounds(k_count, u_idx, np.zeros(k_count), u_hi)
        e_idx = (self.c_e + np.arange(k_count)).astype(np.int32)
        self._col_bounds(k_count, e_idx, np.zeros(k_count), e_hi)
        self._row_bounds(k_count, np.arange(k_count, dtype=np.int32), energy, energy)
        # the grid: import bounded by the connection, steps past the horizon switched off
        gmax = float(self.site.grid_connection.max_power_kw)
        pv = np.zeros(t_count)
        base = np.zeros(t_count)
        pv[:n] = steps.pv_kw[:n]
        base[:n] = steps.base_load_kw[:n]
        g_hi = np.where(np.arange(t_count) < n, gmax, 0.0)
        g_idx = (self.c_g + np.arange(t_count)).astype(np.int32)
        self._col_bounds(t_count, g_idx, np.zeros(t_count), g_hi)
        bal = base - pv
        self._row_bounds(t_count, (self.r_bal + np.arange(t_count)).astype(np.int32), bal, bal)
        if self.R:
            c = self.limit_pv_a[:, None] * pv[None, :] + self.limit_base_a[:, None] * base[None, :]
            lo = (-self.limit_rated_a[:, None] - c).ravel()
            hi = (self.limit_rated_a[:, None] - c).ravel()
            rows = (self.r_lim + np.arange(self.R * t_count)).astype(np.int32)
            self._row_bounds(rows.size, rows, lo, hi)
        # fairness rows: E_k·z − u_k >= 0
        for k in range(k_count):
            self._coeff(self.r_fair + k, self.c_z, energy[k] if energy[k] > 0 else 1.0)
        # stage rows: coefficients of each stage objective, bounds free until solved
        w = np.array([s.weight if s.active else 0.0 for s in slots])
        for k in range(k_count):
            self._coeff(self.r_stage, self.c_u + k, w[k])
        c2 = self._stage2_costs()
        for j in range(2 * t_count + 1):
            self._coeff(self.r_stage + 1, self.c_g + j, c2[self.c_g + j])
        for k in range(k_count):
            self._coeff(self.r_stage + 1, self.c_e + k, c2[self.c_e + k])
        s_idx = (self.c_s + np.arange(k_count * self.S)).astype(np.int32)
        self._col_bounds(s_idx.size, s_idx, np.zeros(s_idx.size), np.repeat(u_hi / self.S, self.S))
        c5 = self._stage_costs(5)
        for t in range(t_count):
            self._coeff(self.r_stage + 4, self.c_ev + t, c5[self.c_ev + t])
        rows3 = np.arange(self.r_stage, self.r_stage + self.n_stage_rows, dtype=np.int32)
        self._row_bounds(rows3.size, rows3, np.full(rows3.size, -INF), np.full(rows3.size, INF))
        if self.mip:
            y_idx = (self.c_y + np.arange(k_count * t_count)).astype(np.int32)
            y_lo = np.zeros((k_count, t_count))
            first_free = t_count if binary_steps is None else binary_steps
            y_lo[:, first_free:] = y_hi[:, first_free:]
            self._col_bounds(y_idx.size, y_idx, y_lo.ravel(), y_hi.ravel())
            h.changeColsIntegrality(
                y_idx.size, y_idx, np.full(y_idx.size, int(highspy.HighsVarType.kInteger.value))
            )
            for k, s in enumerate(slots):
                for t in range(t_count):
                    self._coeff(self.r_mip + k * t_count + t, self.c_y + k * t_count + t, -s.pmax_kw)
                    self._coeff(
                        self.r_mip + k_count * t_count + k * t_count + t,
                        self.c_y + k * t_count + t,
                        -min(s.pmin_kw, s.pmax_kw) if t < first_free else 0.0,
                    )

    def _col_bounds(self, n: int, idx: npt.NDArray[np.int32], lo: FloatArray, hi: FloatArray) -> None:
        """Set column bounds; only those that differ from HiGHS's current ones are handed over."""
        changed = (self.col_lo[idx] != lo) | (self.col_hi[idx] != hi)
        if not changed.any():
            return
        idx, lo, hi = idx[changed], lo[changed], hi[changed]
        if self._bases and not self._opened:
            self._opened = bool(np.any((self.col_hi[idx] <= self.col_lo[idx]) & (hi > lo)))
        self.h.changeColsBounds(idx.size, idx, lo, hi)
        self.col_lo[idx] = lo
        self.col_hi[idx] = hi

    def _row_bounds(self, n: int, idx: npt.NDArray[np.int32], lo: FloatArray, hi: FloatArray) -> None:
        """Set row bounds; only those that differ from HiGHS's current ones are handed over."""
        changed = (self.row_lo[idx] != lo) | (self.row_hi[idx] != hi)
        if not changed.any():
            return
        idx, lo, hi = idx[changed], lo[changed], hi[changed]
        self.h.changeRowsBounds(idx.size, idx, lo, hi)
        self.row_lo[idx] = lo
        self.row_hi[idx] = hi

    def _piece_costs(self) -> FloatArray:
        """Slope of E·φ(u/E) on each piece, φ(r) = r²: the derivative at the piece's middle."""
        return (2.0 * np.arange(self.S) + 1.0) / self.S

    def _coeff(self, row: int, col: int, value: float) -> None:
        key = (row, col)
        if self._stage_coef_cache.get(key) != value:
            self._coef_delta = None
            self.h.changeCoeff(row, col, value)
            self._stage_coef_cache[key] = value

    def _stage2_costs(self) -> FloatArray:
        t_count, dt = self.T, self.dt_h
        n = self.steps.n_steps
        c = np.zeros(self.n_col)
        live = (np.arange(t_count) < n).astype(float)
        for name, w in self.steps.weights.items():
            if name == "self_consumption":
                c[self.c_g : self.c_g + t_count] += w * dt * live
            elif name == "cost":
                price = np.zeros(t_count)
                assert self.steps.price_eur_per_kwh is not None
                price[:n] = self.steps.price_eur_per_kwh[:n]
                c[self.c_g : self.c_g + t_count] += w * dt * price * live
                c[self.c_x : self.c_x + t_count] += w * dt * np.maximum(0.0, -price) * live
            elif name == "peak":
                c[self.c_peak] += w
        prices = self.steps.price_eur_per_kwh
        live_prices = None if prices is None else prices[: max(1, n)].tolist()
        ends = [s.end if s.active else n for s in self.slot_data]
        c[self.c_e : self.c_e + self.K] = -np.asarray(
            extra_values_per_kwh(self.steps.weights, live_prices, ends, n)
        )
        return c

    def _stage_costs(self, stage: int) -> FloatArray:
        c = np.zeros(self.n_col)
        t_count = self.T
        if stage == 1:
            for k, s in enumerate(self.slot_data):
                c[self.c_u + k] = s.weight if s.active else 0.0
        elif stage == 2:
            c = self._stage2_costs()
        elif stage == 3:
            c[self.c_z] = 1.0
        elif stage == 4:
            c[self.c_s : self.c_s + self.K * self.S] = np.tile(self._piece_costs(), self.K)
        elif stage == 5:
            n = max(1, self.steps.n_steps)
            hour = np.floor(np.arange(t_count) * self.dt_h / EARLY_BLOCK_H + 1e-9)
            n_hours = math.floor((n - 1) * self.dt_h / EARLY_BLOCK_H + 1e-9) + 1
            c[self.c_ev : self.c_ev + t_count] = self.dt_h * (hour + 1.0) / n_hours
        else:
            c[self.c_peak] = 1.0
        return c

    # ---- solving --------------------------------------------------------------------------
    def solve(
        self,
        *,
        time_limit_s: float,
        rel_tol: float,
        abs_tol: float,
        tie_breaks: bool,
        mip_rel_gap: float = 1e-4,
        tie_break_iteration_ratio: float = 1.0,
        tie_break_min_iterations: int = 1000,
        fairness: bool | None = None,
        known_stage_values: Sequence[float] = (),
    ) -> StageOutcome:
        """Run the stages in order; a failed stage after the second keeps the last good solution.

        `known_stage_values`: the optima of the first stages (1, 2, ... in order), already
        proved by the caller (a MIP's rounded plan at its relaxation's bound); they are fixed
        and not run again. The incumbent handed to `set_start` must reach them.

        LP models first try all pending stages at once, with a weighted sum of the stage
        objectives, then prove from the final basis which leading stages are exactly
        lexicographically optimal (`_certified_prefix`); only the rest is solved stage by stage,
        warm. The proof, not the weights, carries the priorities: weights only make a one-shot
        success likely.

        Tie-break stages (3 and on) run primal simplex under one shared iteration budget of
        `tie_break_iteration_ratio` times the iterations stages 1–2 took (at least
        `tie_break_min_iterations`): iterations, not seconds, so the plan stays deterministic. A
        stage cut short keeps its last (feasible) iterate, the later tie-breaks are skipped, and
        `message` says so. Priorities 1 and 2 are never cut short.

        `fairness` (default: `tie_breaks`) adds the fairness stages 3–4 under shortage even
        without the other tie-breaks (the relaxation of the LP rounding runs 1–4 so that its
        on/off pattern follows a fair split). A MIP keeps its binaries free through the
        fairness stages: the fair split is optimised over the on/off decisions too, and only
        the stages after it run as an LP with the binaries fixed.
        """
        h = self.h
        if self._opened:
            for w in self._bases.values():
                w.stale = True
            self._opened = False
        deadline = time.perf_counter() + time_limit_s
        values: list[float] = []
        gap: float | None = None
        x_best: FloatArray | None = None
        status = "optimal"
        binaries_fixed = not self.mip
        fair = tie_breaks if fairness is None else fairness
        pending = [1, 2, 5, 6] if tie_breaks else [1, 2]
        shortage_added = False
        self.n_runs = 0
        self.n_certified = 0
        self.n_dual_failed = 0
        self.all_run_proved = -1
        """Stages the warm all-stage run proved (-1: no such run)."""
        """Stages proved optimal from the basis at hand, without a run."""
        last_optimal = False
        iterations_12 = 0
        budget: int | None = None
        note: str | None = None
        retried = False
        fixed: dict[int, float] = {}
        no_dual = False
        no_all = False
        single = False
        """Run the next stage alone (a weighted run's proof failed at its first stage)."""
        for stage, v in enumerate(known_stage_values, start=1):
            if not pending or pending[0] != stage:
                break
            values.append(v)
            fixed[stage] = v
            self._fix_stage(stage, v, rel_tol, abs_tol)
            pending = pending[1:]
            if not shortage_added and fair and values[0] > 1e-6:
                pending = _fairness_after_stage_2(pending)
                shortage_added = True
        while pending:
            stage = pending[0]
            if stage >= 5 and not binaries_fixed:
                self._fix_binaries(x_best)
                binaries_fixed = True
            remaining = deadline - time.perf_counter()
            if remaining <= 0 and x_best is not None and stage > 2:
                break
            if stage == 3 and binaries_fixed and x_best is not None and last_optimal:
                # the basis the last run ended with may already prove this stage optimal too
                # (lexicographically, with every stage before it): then no HiGHS run is needed.
                # Measured: it usually holds for the largest unmet share (stage 3) and seldom
                # for the later stages, whose proof would cost more than it saves
                done_costs = [self._stage_costs(i) for i in fixed] + [self._stage_costs(stage)]
                if self._certified_prefix(done_costs, x_best) == len(done_costs):
                    v = _dot(done_costs[-1], x_best)
                    values.append(v)
                    fixed[stage] = v
                    if stage < 6:
                        self._fix_stage(stage, v, rel_tol, abs_tol)
                    self.n_certified += 1
                    pending = pending[1:]
                    continue
            # HiGHS's clock runs over every run of this object: the limit is on its total
            h.setOptionValue("time_limit", h.getRunTime() + max(0.05, remaining))
            if self.mip:
                h.setOptionValue("mip_rel_gap", mip_rel_gap)
            # tie-breaks start from a primal feasible basis: primal simplex keeps every iterate
            # feasible, so a stage cut short by the time budget still leaves a usable plan
            # the fairness stages start from the basis stage 2 just ended with (primal feasible,
            # usually a few pivots from their optimum); a stored basis of theirs would first need
            # a primal phase 1 after the event moved the earlier stages' optima
            warm = self._bases.get(stage) if (not self.mip and stage not in (3, 4)) else None
            # warm, every stage in one weighted run (`ALL_STAGES`), from the basis such a run
            # ended with last time (or, once, from stage 1's)
            all_run = not self.mip and stage == 1 and 5 in pending and not retried and not no_all
            if all_run:
                warm = self._bases.get(0, warm)
            # the earliness stage from the basis that ended it optimal last time: dual feasible
            # for the same costs, only the moved stage rows 1-4 make it primal infeasible, so
            # dual simplex first; if the budget cuts it (no feasible iterate), primal as before
            dual_try = stage >= 5 and not self.mip and not no_dual and warm is not None and warm.optimal
            no_dual = False
            h.setOptionValue("simplex_strategy", 4 if (stage >= 3 and not dual_try) else 1)
            # no bound perturbation in the tie-breaks: with it, an iterate cut by the budget may
            # break the true bounds (measured, N = 200: 99 rows off by up to 198 after 1000
            # iterations, so the stage's work was lost); without it the earliness stage also
            # reached its optimum in 2604 instead of 3338 iterations (716 vs 848 ms CPU)
            h.setOptionValue("primal_simplex_bound_perturbation_multiplier", 0.0 if stage >= 3 else 1.0)
            mip_stage = not binaries_fixed  # the fairness stages of a MIP: time limit only
            if stage >= 3 and budget is None and not mip_stage:
                budget = max(tie_break_min_iterations, int(tie_break_iteration_ratio * iterations_12))
            h.setOptionValue(
                "simplex_iteration_limit",
                max(1, budget) if (budget is not None and not mip_stage) else 2**31 - 1,
            )
            if all_run:
                h.setOptionValue("simplex_iteration_limit", ALL_STAGES_ROW_ITERATIONS * self.n_row)
            if mip_stage and stage >= 2 and x_best is not None:
                # the previous stage's incumbent stays feasible: start the next MIP from it
                self._set_incumbent(x_best)
            together = [stage]
            if all_run:
                together = [1, 2, 3, 4, 5, 6] if fair else [1, 2, 5, 6]
            elif not self.mip and stage == 1 and len(pending) > 1:
                together = pending[:2]
                merged = warm is None or warm.stages == (1, 2, 3, 4)
                if fair and not shortage_added and together == [1, 2] and merged:
                    # the fairness objectives ride along: without a shortage they cost nothing
                    # (u = 0 gives z = 0 and every piece 0); with one, the proof below may
                    # cover stages 3–4 too, saving their runs. Only from a basis made the same
                    # way (a 1+2 basis took 16 192 dual simplex iterations at N = 1000 to
                    # absorb the small fairness costs, instead of 0-16)
                    together = [1, 2, 3, 4]
            elif not self.mip and not single and pending[:2] == [5, 6]:
                # earlier, then flatter, in one primal run proved like stages 1-4 (over the
                # feasible set the fixed stage rows 1-4 leave)
                together = [5, 6]
            single = False
            costs = [self._stage_costs(i) for i in together]
            c = (
                costs[0]
                if len(together) == 1
                else self._combined_costs(costs, ALL_STAGES_RATIO if all_run else 100.0)
            )
            self._set_costs(c)
            if warm is not None:
                # the basis that ended this stage last time: dual feasible for nearly the same
                # costs, so a re-plan after one event needs few dual simplex iterations
                h.setBasis(warm.highs_basis())
            h.run()
            self.n_runs += 1
            ms = h.getModelStatus()
            info = h.getInfo()
            has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
            if not has_sol and stage >= 3 and info.primal_solution_status == 1:
                # a tie-break iterate cut by the budget a hair outside HiGHS's 1e-7 tolerance
                # (measured, N = 1000 cold: one row off by 2.7e-7 after 1009 iterations) is
                # kept: the plan is still checked against every limit (`grid_models` check)
                has_sol = float(info.max_primal_infeasibility) <= TIE_BREAK_INFEASIBILITY
            if stage <= 2:
                iterations_12 += max(0, int(info.simplex_iteration_count))
            elif budget is not None and not mip_stage:
                budget -= max(0, int(info.simplex_iteration_count))
            if all_run and ms == highspy.HighsModelStatus.kIterationLimit:
                no_all = True  # stages 1-2 (and 3-4) the usual way, from the basis at hand
                continue
            if dual_try and ms != highspy.HighsModelStatus.kOptimal and budget is not None and budget > 0:
                no_dual = True
                self.n_dual_failed += 1
                continue
            if ms == highspy.HighsModelStatus.kOptimal:
                pass
            elif ms == highspy.HighsModelStatus.kIterationLimit and stage >= 3:
                if not has_sol:
                    note = f"tie-breaks stopped at stage {stage} (iteration budget)"
                    break
                note = f"tie-breaks stopped in stage {stage} (iteration budget)"
                together = [stage]
                pending = [stage]  # the tie-breaks after it are not attempted
            elif ms in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kInterrupt) and has_sol:
                status = "feasible"
                if mip_stage and stage <= 2:
                    gap = max(gap or 0.0, float(info.mip_gap))
                together = [stage]
            else:
                name = h.modelStatusToString(ms)
                if x_best is None or stage <= 2:
                    return StageOutcome(False, name, self._empty(), values, None, f"stage {stage}: {name}")
                if not retried:
                    # numerically too tight: give the fixed tie-break rows a little room, once
                    retried = True
                    for done_stage, value in fixed.items():
                        if done_stage >= 3:
                            self._set_row_bounds(
                                self._stage_row(done_stage), -INF, value + 1e-6 * (1 + abs(value))
                            )
                    continue
                note = f"tie-break stage {stage} failed ({name}); the plan of the stage before is kept"
                break
            x = np.asarray(h.getSolution().col_value, dtype=float)
            x_best = x
            last_optimal = ms == highspy.HighsModelStatus.kOptimal and not self.mip
            if not self.mip and (ms == highspy.HighsModelStatus.kOptimal or (stage >= 3 and has_sol)):
                # a tie-break cut short keeps its basis too: the next re-plan goes on from it
                key = 0 if all_run else stage
                self._bases[key] = self._warm_basis(x)
                self._bases[key].optimal = ms == highspy.HighsModelStatus.kOptimal
                self._bases[key].stages = tuple(together)
            n_done = 1
            if all_run and _dot(costs[0], x) <= 1e-6 and 3 in together:
                # no shortage: no fairness stages to prove (their costs were 0 at this point)
                keep = [i for i, st in enumerate(together) if st not in (3, 4)]
                together, costs = [together[i] for i in keep], [costs[i] for i in keep]
            if all_run:
                self.all_run_proved = 0
            if len(together) > 1:
                n_done = self._certified_prefix(costs, x) if info.basis_validity == 1 else 0
                if 1 in together[:n_done] and 3 in together:
                    if _dot(costs[0], x) > 1e-6:
                        # a shortage: the fairness stages follow stage 2, some proved already
                        pending = [1, 2, 3, 4] + [s for s in pending if s > 4]
                        shortage_added = True
                    else:
                        n_done = min(n_done, 2)
                elif 1 in together[:n_done] and _dot(costs[0], x) > 1e-6 and fair:
                    n_done = min(n_done, together.index(2) + 1 if 2 in together else 1)
                if all_run:
                    self.all_run_proved = n_done
                if n_done == 0 and stage >= 3:
                    # the proof fails at once: this stage alone, from the basis at hand
                    single = True
                    continue
                if n_done == 0:
                    continue_with = [stage]
                    c = costs[0]
                    self._set_costs(c)
                    h.run()
                    self.n_runs += 1
                    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                        name = h.modelStatusToString(h.getModelStatus())
                        if x_best is None or stage <= 2:
                            return StageOutcome(
                                False, name, self._empty(), values, None, f"stage {stage}: {name}"
                            )
                        break
                    x = np.asarray(h.getSolution().col_value, dtype=float)
                    x_best = x
                    together, costs, n_done = continue_with, [c], 1
            for i, cost in zip(together[:n_done], costs[:n_done], strict=True):
                v = _dot(cost, x)
                values.append(v)
                fixed[i] = v
                if i < 6:
                    self._fix_stage(i, v, rel_tol, abs_tol)
            pending = pending[n_done:]
            if values and not shortage_added and fair and values[0] > 1e-6:
                pending = _fairness_after_stage_2(pending)  # (or after the stage-1+2 run)
                shortage_added = True
            if status == "feasible" and not self.mip:
                break
        assert x_best is not None
        power = x_best[: self.K * self.T].reshape(self.K, self.T)
        power = np.clip(power, 0.0, self.p_hi)
        # snap solver noise (feasibility tolerance 1e-7) onto the bounds it stands for
        power = np.where(self.p_hi - power < 1e-6, self.p_hi, power)
        power[power < 1e-7] = 0.0
        return StageOutcome(True, status, power, values, gap, message=note, x=x_best)

    def _set_costs(self, c: FloatArray) -> None:
        """Hand HiGHS only the costs that differ from its current ones (one call)."""
        cur = self._costs
        idx = (
            np.flatnonzero(c != cur).astype(np.int32)
            if cur is not None
            else np.arange(self.n_col, dtype=np.int32)
        )
        if idx.size:
            self.h.changeColsCost(idx.size, idx, c[idx])
        self._costs = c.copy()

    def _warm_basis(self, x: FloatArray) -> WarmBasis:
        """The basis HiGHS ended with, and its status codes (see `WarmBasis`)."""
        h = self.h
        _, bv = h.getBasicVariables()
        bv = np.asarray(bv, dtype=np.int64)
        act = np.asarray(h.getSolution().row_value, dtype=float)
        col = np.where(
            (self.col_hi > self.col_lo) & np.isfinite(self.col_hi) & (x >= self.col_hi - 1e-9), UPPER, LOWER
        ).astype(np.int8)
        col[bv[bv >= 0]] = BASIC
        lo_inf, hi_inf = np.isinf(self.row_lo), np.isinf(self.row_hi)
        at_hi = ~hi_inf & (lo_inf | (np.abs(act - self.row_hi) < np.abs(act - self.row_lo)))
        row = np.where(lo_inf & hi_inf, ZERO, np.where(at_hi, UPPER, LOWER)).astype(np.int8)
        row[-bv[bv < 0] - 1] = BASIC
        return WarmBasis(h.getBasis(), col, row)

    def set_start(self, x: FloatArray) -> None:
        """Hand a feasible point of a model without binaries to this MIP as its incumbent."""
        full = np.zeros(self.n_col)
        full[: self.c_y] = x[: self.c_y]
        if self.mip:
            n = self.K * self.T
            # binaries fixed on (past the exact horizon, the rule relaxed) stay on
            full[self.c_y :] = np.maximum((x[:n] > 1e-7).astype(float), self.col_lo[self.c_y :])
        self._set_incumbent(full)

    def _set_incumbent(self, x: FloatArray) -> None:
        sol = highspy.HighsSolution()
        sol.col_value = x.tolist()
        sol.value_valid = True
        self.h.setSolution(sol)

    # ---- the one-shot path: a weighted solve proved lexicographically optimal ----------------
    def _stage_row(self, stage: int) -> int:
        return self.r_stage + {1: 0, 2: 1, 3: 2, 4: 3, 5: 4}[stage]

    def _fix_stage(self, stage: int, value: float, rel_tol: float, abs_tol: float) -> None:
        """Hold a solved stage (1-5) at its optimum for the stages after it: unmet energy 0
        stays exactly 0; other optima get a small relative slack."""
        slack = 0.0 if (stage == 1 and value <= abs_tol) else abs_tol + rel_tol * abs(value)
        self._set_row_bounds(self._stage_row(stage), -INF, (max(value, 0.0) if stage == 1 else value) + slack)

    def _set_row_bounds(self, row: int, lo: float, hi: float) -> None:
        self.h.changeRowBounds(row, lo, hi)
        self.row_lo[row] = lo
        self.row_hi[row] = hi

    @staticmethod
    def _combined_costs(costs: list[FloatArray], ratio: float = 100.0) -> FloatArray:
        """Σ_i ratio^-i·c_i/max|c_i|: each stage's objective well above the next one's."""
        out = np.zeros_like(costs[0])
        for i, c in enumerate(costs):
            scale = float(np.abs(c).max())
            if scale > 0:
                out += (ratio**-i / scale) * c
        return out

    def _a_t(self, y: FloatArray) -> FloatArray:
        """`Aᵀy` for the current matrix: the built one plus the coefficients changed since."""
        out: FloatArray = np.asarray(self.a_mat.T @ y, dtype=float)
        if self._stage_coef_cache:
            if self._coef_delta is None:  # rebuilt only after a coefficient changed
                keys = np.array(list(self._stage_coef_cache.keys()), dtype=np.int64)
                new = np.fromiter(self._stage_coef_cache.values(), dtype=float, count=len(keys))
                rows, cols = keys[:, 0], keys[:, 1]
                orig = np.where(rows >= self.r_mip, -1.0, 1.0)  # the placeholders written at build
                self._coef_delta = (rows, cols, new - orig)
            rows, cols, delta = self._coef_delta
            np.add.at(out, cols, delta * y[rows])
        return out

    def _certified_prefix(self, costs: list[FloatArray], x: FloatArray) -> int:
        """How many leading stage objectives the final basis proves lexicographically optimal.

        With y_i = B⁻ᵀ c_i,B the reduced costs are d_i = c_i − Aᵀy_i for columns and y_i for
        rows (the change of c_i per unit increase of a row's activity). A nonbasic variable
        that may move up (at its lower bound) or down (at its upper bound) gives the vector
        (±d_1, ±d_2, ...); if every such vector is lexicographically >= 0, no feasible move
        improves stage 1, or stage 2 without worsening stage 1, and so on: the point is the
        lexicographic optimum. The first stage where some vector turns negative ends the proof.
        """
        h = self.h
        _, bv = h.getBasicVariables()
        bv = np.asarray(bv, dtype=np.int64)
        basic_col = np.zeros(self.n_col, dtype=bool)
        basic_row = np.zeros(self.n_row, dtype=bool)
        basic_col[bv[bv >= 0]] = True
        basic_row[-bv[bv < 0] - 1] = True
        row_act = np.asarray(h.getSolution().row_value, dtype=float)

        def signs(
            val: FloatArray, lo: FloatArray, hi: FloatArray, basic: npt.NDArray[np.bool_]
        ) -> FloatArray:
            movable = ~basic & (hi - lo > 1e-9)
            at_lo = np.abs(val - lo) <= np.abs(hi - val)
            sign = np.where(at_lo, 1.0, -1.0)
            free = movable & np.isinf(lo) & np.isinf(hi)
            sign[free] = 0.0  # a free nonbasic variable may move both ways: its costs must be 0
            return np.where(movable, sign, np.nan)

        sc = signs(x, self.col_lo, self.col_hi, basic_col)
        sr = signs(row_act, self.row_lo, self.row_hi, basic_row)
        # the still undecided nonbasic variables, as indices (they shrink stage by stage)
        idx_c = np.flatnonzero(~np.isnan(sc))
        idx_r = np.flatnonzero(~np.isnan(sr))
        basic_of = np.maximum(bv, 0)
        structural = bv >= 0
        for i, c in enumerate(costs):
            cb = np.where(structural, c[basic_of], 0.0)
            status, y = h.getBasisTransposeSolve(cb)
            if status != highspy.HighsStatus.kOk:
                return i
            y = np.asarray(y, dtype=float)
            d_col = c[idx_c] - self._a_t(y)[idx_c]
            tol = 1e-9 * max(1.0, float(np.abs(c).max()))
            kept = []
            for d, sgn in ((d_col, sc[idx_c]), (y[idx_r], sr[idx_r])):
                v = np.where(sgn == 0.0, -np.abs(d), sgn * d)
                if np.any(v < -tol):
                    return i
                kept.append(~(v > tol))
            idx_c, idx_r = idx_c[kept[0]], idx_r[kept[1]]
        return len(costs)

    def _fix_binaries(self, x: FloatArray | None) -> None:
        """After the MIP stages: fix y at its incumbent and go on as an LP."""
        assert x is not None
        n = self.K * self.T
        y = np.round(x[self.c_y : self.c_y + n])
        idx = (self.c_y + np.arange(n)).astype(np.int32)
        self._col_bounds(n, idx, y, y)
        self.h.changeColsIntegrality(n, idx, np.zeros(n, dtype=np.int32))

    def _empty(self) -> FloatArray:
        return np.zeros((self.K, self.T))
