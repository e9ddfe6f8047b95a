"""The charging LP as sparse matrices handed straight to HiGHS (`highspy`): the model, built
once over fixed slots and steps (`LpModel`) and loaded per problem (`LpModel.load`).

Solving it in lexicographic stages, the warm starts and the proof of lexicographic optimality
are `optimizer.lp.StagedLp`'s, a subclass of `LpModel`: building and loading the matrix is one
thing, the stage loop another, and each reads on its own.

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

How the stages are solved (one weighted run, its proof, warm starts) is in `optimizer.lp`;
`WarmBasis` is defined here because the model keeps its bases (`_bases`) and notes when bounds
open under them (`_col_bounds`).

With a negative price, `cost` values `g − x` (net import) instead of `g` alone so the LP gains
nothing by importing and exporting at once; the reported cost is still Σ max(0, net)·price·dt.
"""

from __future__ import annotations

import functools
import math
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
EARLY_BLOCK_H = 1.0
"""Hours per block of the earliness discount (4 h blocks measured ~25 % faster at 1000 sessions)."""


@functools.lru_cache(maxsize=8)
def site_constraints(site: Site, mode: int) -> list[PhaseLimit]:
    """`constraints` of `site` with every connector in vehicle-phase `mode`: a pure function of
    the (immutable) site, kept for the next model of the same site (it validates the site and
    builds every row: 6.4 ms for both modes on the 104-connector depot, of an 11 ms build, where
    hashing the site costs 0.1 ms)."""
    return constraints(site, {c.id: mode for c in site.connectors()})


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


class LpModel:
    """The charging LP as one HiGHS model over fixed slots and steps, built and loaded (see the
    module docstring); `optimizer.lp.StagedLp` solves it."""

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
        by_mode = {m: site_constraints(self.site, m) for m in (1, 3)}
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
