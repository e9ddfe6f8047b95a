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
    M   sites: one, or the member sites of a group planned jointly (`optimizer.group`); each
        slot belongs to one site (`slot_sites`), each site has its own EV total, grid import,
        export and peak, its own series, grid connection and protection rows.
    C   couplings: a group's rows over its member sites' imports (`Coupling`).

Variables (all >= 0 unless said)
    p[k,t]   mean power of slot k in step t, kW; ub pmax_k inside the charging window, else 0
    u[k]     unmet energy, kWh
    ev[m,t]  total EV power of site m, kW
    g[m,t]   grid import of site m, kW, ub its grid_connection.max_power_kw;  x[m,t] export, kW
    peak[m]  highest g[m,t], kW;  z  highest unmet share u[k]/E[k] (fairness, over all sites)
    s[k,j]   j-th of S = 10 equal pieces of u[k], ub E_k/S (piecewise-linear fairness)
    e[k]     extra energy beyond the need, kWh, ub X_k (`Session.energy_extra_kwh`)
    y[k,t]   (MIP only) binary on/off for the minimum-current rule

Constraints
    energy[k]     Σ_t dt·p[k,t] + u[k] − e[k] = E_k
    ev_def[m,t]   ev[m,t] − Σ_{k of m} p[k,t] = 0
    balance[m,t]  g[m,t] − x[m,t] − ev[m,t] = base[m,t] − pv[m,t]
    limit[r,t]    −I_r − c_r[t] <= Σ_k a[r,k]·p[k,t] <= I_r − c_r[t],
                  c_r[t] = a_pv[r]·pv[m(r),t] + a_base[r]·base[m(r),t]  (both directions, every phase)
    peak_def[m,t] peak[m] − g[m,t] >= 0
    import[c,t]   Σ_{m in c} ev[m,t] <= max(0, G_c[t] − Σ_{m in c} (base[m,t] − pv[m,t]))
                  (a group's net import at its node; no row bound where no limit is in force)
    current[c,φ,t] Σ_{k of c} b[φ,k]·p[k,t] <= max(0, A_c[t] − Σ_{m in c} (b_pv·pv + b_base·base))
                  (b: A on phase φ at the site's grid connection, `site_entry_currents`)
    fair[k]       E_k·z − u[k] >= 0
    pieces[k]     u[k] − Σ_j s[k,j] = 0
    on_max[k,t]   p[k,t] − pmax_k·y[k,t] <= 0;  on_min[k,t]  p[k,t] − pmin_k·y[k,t] >= 0  (MIP)
    stage_s       f_s(x) <= f_s* (1 + rel) + abs   once stage s is solved

Stages (strict priorities, each optimum fixed by its stage row before the next)
    1  min Σ_k w_k·u[k]                       least unmet energy, weighted by priority
    2  min Σ_t dt·g[t] (self_consumption) | Σ_t price[t]·dt·(g[t] − x[t]·[price<0]) (cost)
           | peak (peak), or a weighted sum of these, summed over the sites (each with its own
           weights and prices);  − Σ_k ε_k·e[k], ε_k from half to 0.9
           of the cheapest import kWh, more for a window ending sooner
           (`optimizer.problem.extra_values_per_kwh`): extra energy only from PV that no need
           takes, first to the car with fewer PV hours left
    3  min z                                  only under shortage: unmet split in proportion
                                              to need, never all on one driver
    4  min Σ_k,j (2j+1)/S·s[k,j]             only under shortage: = Σ_k E_k·φ(u_k/E_k) with φ a
                                              piecewise-linear r², which spreads the unmet share
                                              evenly over every bottleneck, not only the worst
    5  min Σ_m,t dt·(h(t)+1)·ev[m,t]          earlier: a coarse discount by the hour h(t) of
                                              step t (no tiny costs, few ties to explore)
    6  min Σ_m peak[m]                        flatter grid draw within what stage 5 left free

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
from grid_models.group import PhaseCurrent, site_entry_currents
from grid_models.site import PHASES, Site
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


@functools.lru_cache(maxsize=64)
def site_entry_rows(site: Site, mode: int) -> tuple[PhaseCurrent, ...]:
    """`site_entry_currents` of `site` with every connector in vehicle-phase `mode` (cached as
    `site_constraints`): the coefficients of a group's per-phase rows."""
    return site_entry_currents(site, {c.id: mode for c in site.connectors()})


@dataclass(frozen=True)
class Coupling:
    """One group's rows in a joint model: its member sites (indices into the model's sites),
    a net-import row per step if it has an import limit, a row per phase and step if it has a
    current limit. Which rows exist is the model's structure; their bounds are loaded per
    problem (`GroupStepData`)."""

    group_id: str
    sites: tuple[int, ...]
    import_limit: bool
    current_limit: bool


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
class GroupStepData:
    """What a joint model loads per step: each site's `StepData` (all over the same steps) and
    each coupling's limits, `(couplings, steps)` arrays with `inf` where none is in force."""

    sites: tuple[StepData, ...]
    max_import_kw: FloatArray
    max_current_a: FloatArray

    @property
    def n_steps(self) -> int:
        return self.sites[0].n_steps


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
        site: Site | Sequence[Site],
        slots: Sequence[tuple[str, int]],
        n_steps: int,
        step_s: int,
        *,
        mip: bool = False,
        threads: int = 1,
        slot_sites: Sequence[int] | None = None,
        couplings: Sequence[Coupling] = (),
    ) -> None:
        self.sites: tuple[Site, ...] = (site,) if isinstance(site, Site) else tuple(site)
        self.site = self.sites[0]
        self.M = len(self.sites)
        self.slots = list(slots)
        self.slot_sites = [0] * len(self.slots) if slot_sites is None else list(slot_sites)
        """The site (index into `sites`) of each slot."""
        self.couplings = tuple(couplings)
        self.K = len(self.slots)
        self.T = n_steps
        self.dt_h = step_s / 3600.0
        self.mip = mip
        self.threads = threads
        self._build(threads)

    def same_structure(self, other: LpModel) -> bool:
        """Whether `other` has this model's sites, slots, steps and couplings (a MIP twin, a
        model whose bases carry over)."""
        return (
            other.sites == self.sites
            and other.slots == self.slots
            and other.slot_sites == self.slot_sites
            and other.couplings == self.couplings
            and (other.T, other.dt_h) == (self.T, self.dt_h)
        )

    # ---- step 1: sets and index layout ----------------------------------------------------
    def _create_sets(self) -> None:
        k_count, t_count, m_count = self.K, self.T, self.M
        slots_of: dict[tuple[int, str, int], list[int]] = {}
        for k, (pair, m) in enumerate(zip(self.slots, self.slot_sites, strict=True)):
            slots_of.setdefault((m, *pair), []).append(k)
        rows: list[tuple[int, int]] = []
        coefs: list[dict[int, float]] = []
        rated: list[float] = []
        pv_a: list[float] = []
        base_a: list[float] = []
        for m, site in enumerate(self.sites):
            by_mode = {mode: site_constraints(site, mode) for mode in (1, 3)}
            modes = sorted(
                {mode for (_, mode), sm in zip(self.slots, self.slot_sites, strict=True) if sm == m}
            )
            for r in range(len(by_mode[3])):
                # each row's own connectors, not every slot (N = 1000: 255 rows × 1000 slots of
                # dictionary look-ups were most of the cold build)
                found: list[tuple[int, float]] = []
                for mode in modes:
                    for cid, a in by_mode[mode][r].connector_a_per_kw.items():
                        if a:
                            found.extend((k, a) for k in slots_of.get((m, cid, mode), ()))
                if found:
                    lim = by_mode[3][r]
                    rows.append((m, r))
                    coefs.append(dict(sorted(found)))
                    rated.append(lim.rated_current_a)
                    pv_a.append(lim.pv_a_per_kw)
                    base_a.append(lim.base_load_a_per_kw)
        self.limit_rows = rows
        """(site index, site-wide index in `constraints`) of each limit row kept."""
        self.limit_site = np.array([m for m, _ in rows], dtype=np.int64)
        self.limit_rated_a = np.array(rated)
        self.limit_pv_a = np.array(pv_a)
        self.limit_base_a = np.array(base_a)
        self.limit_coefs = coefs
        self.R = len(rows)
        # a group's rows: net import over its sites' EV totals, current per phase at its node
        self.coupling_rows: list[tuple[int, int]] = []
        """(coupling index, -1 for the import row or the phase index) of each coupling row."""
        self.coupling_coefs: list[dict[int, float]] = []
        """Slot -> coefficient of each current row (the import row's are on the ev columns)."""
        self.coupling_pv_a = np.zeros((0, m_count))
        self.coupling_base_a = np.zeros((0, m_count))
        pv_rows: list[FloatArray] = []
        base_rows: list[FloatArray] = []
        for c, cpl in enumerate(self.couplings):
            if cpl.import_limit:
                self.coupling_rows.append((c, -1))
                self.coupling_coefs.append({})
                member = np.zeros(m_count)
                member[list(cpl.sites)] = 1.0
                pv_rows.append(-member)
                base_rows.append(member)
            if cpl.current_limit:
                for ph in range(len(PHASES)):
                    coef: dict[int, float] = {}
                    pv_row, base_row = np.zeros(m_count), np.zeros(m_count)
                    for m in cpl.sites:
                        entry = {mode: site_entry_rows(self.sites[m], mode)[ph] for mode in (1, 3)}
                        pv_row[m] = entry[3].pv_a_per_kw
                        base_row[m] = entry[3].base_load_a_per_kw
                        for k, ((cid, mode), sm) in enumerate(zip(self.slots, self.slot_sites, strict=True)):
                            a = entry[mode].connector_a_per_kw.get(cid, 0.0) if sm == m else 0.0
                            if a:
                                coef[k] = a
                    self.coupling_rows.append((c, ph))
                    self.coupling_coefs.append(coef)
                    pv_rows.append(pv_row)
                    base_rows.append(base_row)
        if pv_rows:
            self.coupling_pv_a = np.array(pv_rows)
            self.coupling_base_a = np.array(base_rows)
        self.Q = len(self.coupling_rows)
        # column offsets
        self.c_p = 0
        self.c_u = k_count * t_count
        mt = m_count * t_count
        self.c_ev = self.c_u + k_count
        self.c_g = self.c_ev + mt
        self.c_x = self.c_g + mt
        self.c_peak = self.c_x + mt
        self.c_z = self.c_peak + m_count
        self.S = FAIR_PIECES
        self.c_s = self.c_z + 1
        self.c_e = self.c_s + k_count * self.S
        self.c_y = self.c_e + k_count
        self.n_col = self.c_y + (k_count * t_count if self.mip else 0)
        # row offsets
        self.r_energy = 0
        self.r_evdef = k_count
        self.r_bal = self.r_evdef + mt
        self.r_lim = self.r_bal + mt
        self.r_peak = self.r_lim + self.R * t_count
        self.r_cpl = self.r_peak + mt
        self.r_fair = self.r_cpl + self.Q * t_count
        self.r_pieces = self.r_fair + k_count
        self.r_stage = self.r_pieces + k_count
        self.n_stage_rows = 5
        self.r_mip = self.r_stage + self.n_stage_rows
        self.n_row = self.r_mip + (2 * k_count * t_count if self.mip else 0)

    # ---- step 2 and 3: variables and constraints as one sparse matrix --------------------------
    def _build(self, threads: int) -> None:
        self._create_sets()
        k_count, t_count, m_count, dt = self.K, self.T, self.M, self.dt_h
        mt = m_count * t_count
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
        # ev_def[m,t]: each slot on its own site's row
        t_ar = np.arange(t_count)
        mt_ar = np.arange(mt)
        site_of = np.asarray(self.slot_sites, dtype=np.int64).reshape(k_count, 1)
        add(self.r_evdef + mt_ar, self.c_ev + mt_ar, 1.0)
        add(self.r_evdef + site_of * t_count + tt, p_idx, -1.0)
        # balance[m,t]
        add(self.r_bal + mt_ar, self.c_g + mt_ar, 1.0)
        add(self.r_bal + mt_ar, self.c_x + mt_ar, -1.0)
        add(self.r_bal + mt_ar, self.c_ev + mt_ar, -1.0)
        # limit[r,t]
        for r, coef in enumerate(self.limit_coefs):
            ks = np.fromiter(coef.keys(), dtype=np.int64)
            a = np.fromiter(coef.values(), dtype=float)
            rows = self.r_lim + r * t_count + np.repeat(t_ar[None, :], ks.size, axis=0)
            cols = self.c_p + ks[:, None] * t_count + t_ar[None, :]
            add(rows, cols, np.repeat(a[:, None], t_count, axis=1))
        # peak_def[m,t]
        add(self.r_peak + mt_ar, self.c_peak + mt_ar // t_count, 1.0)
        add(self.r_peak + mt_ar, self.c_g + mt_ar, -1.0)
        # a group's rows: its sites' EV totals (import), its slots' currents at the node
        for q, ((c, ph), coef) in enumerate(zip(self.coupling_rows, self.coupling_coefs, strict=True)):
            row0 = self.r_cpl + q * t_count
            if ph < 0:
                for m in self.couplings[c].sites:
                    add(row0 + t_ar, self.c_ev + m * t_count + t_ar, 1.0)
            elif coef:
                ks = np.fromiter(coef.keys(), dtype=np.int64)
                a = np.fromiter(coef.values(), dtype=float)
                rows = row0 + np.repeat(t_ar[None, :], ks.size, axis=0)
                cols = self.c_p + ks[:, None] * t_count + t_ar[None, :]
                add(rows, cols, np.repeat(a[:, None], t_count, axis=1))
        # fair[k]: E_k·z − u_k >= 0 (E_k set per update; placeholder 1)
        add(self.r_fair + np.arange(k_count), np.full(k_count, self.c_z), 1.0)
        add(self.r_fair + np.arange(k_count), self.c_u + np.arange(k_count), -1.0)
        # stage rows: coefficients set per update (placeholders on every column they may use)
        add(np.full(k_count, self.r_stage), self.c_u + np.arange(k_count), 1.0)
        add(
            np.full(2 * mt + m_count, self.r_stage + 1),
            np.concatenate([self.c_g + mt_ar, self.c_x + mt_ar, self.c_peak + np.arange(m_count)]),
            1.0,
        )
        add(np.full(k_count, self.r_stage + 1), self.c_e + np.arange(k_count), 1.0)
        add([self.r_stage + 2], [self.c_z], 1.0)
        # pieces[k]: u_k − Σ_j s_kj = 0, and the stage-4 row over the pieces
        s_idx = self.c_s + np.arange(k_count * self.S)
        add(self.r_pieces + np.arange(k_count), self.c_u + np.arange(k_count), 1.0)
        add(self.r_pieces + np.repeat(np.arange(k_count), self.S), s_idx, -1.0)
        add(np.full(s_idx.size, self.r_stage + 3), s_idx, np.tile(self._piece_costs(), k_count))
        add(np.full(mt, self.r_stage + 4), self.c_ev + mt_ar, 1.0)
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
        col_upper[self.c_peak : self.c_peak + m_count] = INF
        col_upper[self.c_z] = INF
        col_upper[self.c_x : self.c_x + mt] = INF
        col_upper[self.c_ev : self.c_ev + mt] = INF
        lp.col_upper_ = col_upper
        row_lo = np.full(self.n_row, -INF)
        row_hi = np.full(self.n_row, INF)
        row_lo[: self.r_lim] = 0.0
        row_hi[: self.r_lim] = 0.0
        row_hi[self.r_pieces : self.r_stage] = 0.0
        row_lo[self.r_peak : self.r_cpl] = 0.0
        row_lo[self.r_fair : self.r_stage] = 0.0
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
        steps: StepData | GroupStepData,
        slots: Sequence[SlotData],
        pattern: FloatArray | None = None,
        binary_steps: int | None = None,
    ) -> None:
        """Set bounds, right-hand sides and coefficients for one problem.

        `pattern` (K, T): fixes the on/off decisions of the minimum-current rule (1 on, 0 off,
        nan free); used by the LP-rounding heuristic and after a MIP.
        """
        k_count, t_count, m_count = self.K, self.T, self.M
        h = self.h
        n = steps.n_steps
        self.steps = steps
        self.site_steps = steps.sites if isinstance(steps, GroupStepData) else (steps,)
        if len(self.site_steps) != m_count or any(st.n_steps != n for st in self.site_steps):
            raise ValueError(f"load: {m_count} site(s) over {n} steps expected")
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
        # the grid: each site's import bounded by its connection, steps past the horizon off
        pv = np.zeros((m_count, t_count))
        base = np.zeros((m_count, t_count))
        for m, st in enumerate(self.site_steps):
            pv[m, :n] = st.pv_kw[:n]
            base[m, :n] = st.base_load_kw[:n]
        live = np.arange(t_count) < n
        gmax = np.array([float(site.grid_connection.max_power_kw) for site in self.sites])
        g_hi = np.where(live[None, :], gmax[:, None], 0.0).ravel()
        mt = m_count * t_count
        g_idx = (self.c_g + np.arange(mt)).astype(np.int32)
        self._col_bounds(mt, g_idx, np.zeros(mt), g_hi)
        bal = (base - pv).ravel()
        self._row_bounds(mt, (self.r_bal + np.arange(mt)).astype(np.int32), bal, bal)
        if self.R:
            c = (
                self.limit_pv_a[:, None] * pv[self.limit_site]
                + self.limit_base_a[:, None] * base[self.limit_site]
            )
            lo = (-self.limit_rated_a[:, None] - c).ravel()
            hi = (self.limit_rated_a[:, None] - c).ravel()
            rows = (self.r_lim + np.arange(self.R * t_count)).astype(np.int32)
            self._row_bounds(rows.size, rows, lo, hi)
        if self.Q:
            assert isinstance(steps, GroupStepData)
            caps = np.array(
                [steps.max_import_kw[c] if ph < 0 else steps.max_current_a[c] for c, ph in self.coupling_rows]
            )[:, :t_count]
            fixed = self.coupling_pv_a @ pv + self.coupling_base_a @ base
            # where base load and PV alone break a limit, no charging (never an infeasible LP)
            hi = np.where(np.isfinite(caps) & live[None, :], np.maximum(0.0, caps - fixed), INF).ravel()
            rows = (self.r_cpl + np.arange(self.Q * t_count)).astype(np.int32)
            self._row_bounds(rows.size, rows, np.full(rows.size, -INF), hi)
        # fairness rows: E_k·z − u_k >= 0
        for k in range(k_count):
            self._coeff(self.r_fair + k, self.c_z, energy[k] if energy[k] > 0 else 1.0)
        # stage rows: coefficients of each stage objective, bounds free until solved
        w = np.array([s.weight if s.active else 0.0 for s in slots])
        for k in range(k_count):
            self._coeff(self.r_stage, self.c_u + k, w[k])
        c2 = self._stage2_costs()
        for j in range(2 * mt + m_count):
            self._coeff(self.r_stage + 1, self.c_g + j, c2[self.c_g + j])
        for k in range(k_count):
            self._coeff(self.r_stage + 1, self.c_e + k, c2[self.c_e + k])
        s_idx = (self.c_s + np.arange(k_count * self.S)).astype(np.int32)
        self._col_bounds(s_idx.size, s_idx, np.zeros(s_idx.size), np.repeat(u_hi / self.S, self.S))
        c5 = self._stage_costs(5)
        for j in range(mt):
            self._coeff(self.r_stage + 4, self.c_ev + j, c5[self.c_ev + j])
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
        """Each site's objective over its own columns, with its weights and prices, summed."""
        t_count, dt = self.T, self.dt_h
        n = self.site_steps[0].n_steps
        c = np.zeros(self.n_col)
        live = (np.arange(t_count) < n).astype(float)
        site_of = np.asarray(self.slot_sites, dtype=np.int64)
        for m, steps in enumerate(self.site_steps):
            g0, x0 = self.c_g + m * t_count, self.c_x + m * t_count
            for name, w in steps.weights.items():
                if name == "self_consumption":
                    c[g0 : g0 + t_count] += w * dt * live
                elif name == "cost":
                    price = np.zeros(t_count)
                    assert steps.price_eur_per_kwh is not None
                    price[:n] = steps.price_eur_per_kwh[:n]
                    c[g0 : g0 + t_count] += w * dt * price * live
                    c[x0 : x0 + t_count] += w * dt * np.maximum(0.0, -price) * live
                elif name == "peak":
                    c[self.c_peak + m] += w
            prices = steps.price_eur_per_kwh
            live_prices = None if prices is None else prices[: max(1, n)].tolist()
            mine = np.flatnonzero(site_of == m)
            ends = [self.slot_data[k].end if self.slot_data[k].active else n for k in mine]
            c[self.c_e + mine] = -np.asarray(extra_values_per_kwh(steps.weights, live_prices, ends, n))
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
            n = max(1, self.site_steps[0].n_steps)
            hour = np.floor(np.arange(t_count) * self.dt_h / EARLY_BLOCK_H + 1e-9)
            n_hours = math.floor((n - 1) * self.dt_h / EARLY_BLOCK_H + 1e-9) + 1
            c[self.c_ev : self.c_ev + self.M * t_count] = np.tile(self.dt_h * (hour + 1.0) / n_hours, self.M)
        else:
            c[self.c_peak : self.c_peak + self.M] = 1.0
        return c
