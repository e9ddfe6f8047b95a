"""The charging LP of `optimizer.lp_model` solved in lexicographic stages (`StagedLp`), with
the warm starts kept between re-plans and across a rebuild (`_warm_basis`, `inherit_bases`) and
the proof of lexicographic optimality from a final basis (`_certified_prefix`).

The sets, variables, constraints and stage objectives are in `optimizer.lp_model`'s docstring;
the model is built and loaded there, this module holds what runs HiGHS on it. `StagedLp` and
the data it loads (`SlotData`, `StepData`, `FAIR_PIECES`) are imported from here.

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
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

from optimizer.lp_model import (
    BASIC,
    FAIR_PIECES,
    INF,
    LOWER,
    UPPER,
    ZERO,
    LpModel,
    SlotData,
    StepData,
    WarmBasis,
)

__all__ = ["FAIR_PIECES", "SlotData", "StageOutcome", "StagedLp", "StepData"]

FloatArray = npt.NDArray[np.float64]
TIE_BREAK_INFEASIBILITY = 1e-6
"""Largest primal infeasibility of a tie-break iterate cut by the budget that is still kept."""
ALL_STAGES_ROW_ITERATIONS = 2
"""The all-stage run stops after this many simplex iterations per row (then the stages go the
usual way from where it stopped); measured cold: 0.4 (N = 200) and 0.17 (N = 1000) per row."""
ALL_STAGES_RATIO = 10.0
"""Weight ratio between consecutive stages in the warm all-stage run (`StagedLp.solve`): with
100 the later stages' costs fall to 1e-8..1e-10 of the first, below HiGHS's tolerances; with
10 the proof held for all six stages on every bench event (N = 200 and 1000)."""


def _dot(c: FloatArray, x: FloatArray) -> float:
    """c·x without BLAS: numpy's OpenBLAS splits a dot product of this length (~20 000 columns
    at 200 sessions) over threads that then spin; on this 2-core machine shared with other jobs
    each call cost ~9 ms of CPU and waited for the other core (measured: 200 calls with a 2 ms
    pause between, 1.8 s CPU and 5.4 s wall vs 0.07 s CPU and 0.9 s wall)."""
    return float(np.multiply(c, x).sum())


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


def _fairness_after_stage_2(pending: list[int]) -> list[int]:
    """Under shortage: the fairness stages 3–4 right after stage 2."""
    return [s for s in pending if s <= 2] + [3, 4] + [s for s in pending if s > 4]


class StagedLp(LpModel):
    """One HiGHS model of the charging LP over fixed slots and steps, solved in stages; see the
    module docstrings (this one and `optimizer.lp_model`'s)."""

    # ---- warm start across a rebuild -----------------------------------------------------
    def _index_maps(self, old: StagedLp) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Where each column and row of `old` sits in this model, which must hold all of its
        slots (in any order), at least its steps, and the same sites and couplings (else
        `KeyError`)."""
        if old.sites != self.sites or old.couplings != self.couplings:
            raise KeyError("other sites or couplings")
        slot_new = {(m, *sl): k for k, (sl, m) in enumerate(zip(self.slots, self.slot_sites, strict=True))}
        ks = np.array(
            [slot_new[(m, *sl)] for sl, m in zip(old.slots, old.slot_sites, strict=True)], dtype=np.int64
        )
        to, tn, m_count = old.T, self.T, self.M
        t_ar = np.arange(to, dtype=np.int64)
        # (site, step) blocks: site m's step t at m·T + t
        mt_old = (np.arange(m_count, dtype=np.int64)[:, None] * tn + t_ar[None, :]).ravel()
        cols = np.empty(old.n_col, dtype=np.int64)
        cols[old.c_p : old.c_p + old.K * to] = (self.c_p + ks[:, None] * tn + t_ar[None, :]).ravel()
        cols[old.c_u : old.c_u + old.K] = self.c_u + ks
        for a, b in ((old.c_ev, self.c_ev), (old.c_g, self.c_g), (old.c_x, self.c_x)):
            cols[a : a + m_count * to] = b + mt_old
        cols[old.c_peak : old.c_peak + m_count] = self.c_peak + np.arange(m_count)
        cols[old.c_z] = self.c_z
        j = np.arange(old.S, dtype=np.int64)
        cols[old.c_s : old.c_s + old.K * old.S] = (self.c_s + ks[:, None] * self.S + j[None, :]).ravel()
        cols[old.c_e : old.c_e + old.K] = self.c_e + ks
        lim_new = {r: i for i, r in enumerate(self.limit_rows)}
        rs = np.array([lim_new[r] for r in old.limit_rows], dtype=np.int64)
        rows = np.empty(old.n_row, dtype=np.int64)
        rows[old.r_energy : old.r_energy + old.K] = self.r_energy + ks
        for a, b in ((old.r_evdef, self.r_evdef), (old.r_bal, self.r_bal), (old.r_peak, self.r_peak)):
            rows[a : a + m_count * to] = b + mt_old
        rows[old.r_lim : old.r_lim + old.R * to] = (self.r_lim + rs[:, None] * tn + t_ar[None, :]).ravel()
        q_ar = np.arange(old.Q, dtype=np.int64)
        rows[old.r_cpl : old.r_cpl + old.Q * to] = (self.r_cpl + q_ar[:, None] * tn + t_ar[None, :]).ravel()
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
