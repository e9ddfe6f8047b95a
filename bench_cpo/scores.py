"""Scores of each SCSP, from what its cars drew and what it sent, never from what it reports.

The energy, PV, grid and protection figures are the replay's KPIs (formats §6, `ems.replay.kpis`)
on the bench's own physics; beside them: protection violations per (protection, phase), how
long the SCSP took from a session's start to its first profile, how many profiles were late,
malformed or for sessions it did not have, and every OCPI error it caused either way.
`n_reoptimizations` and `reopt_ms_*` are null: how an SCSP plans is not on the wire.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_cpo.bench import BenchOutcome, ScspRun, percentile_s
from ems.replay.kpis import protection_violations_by_phase
from ems.replay.report import (
    connector_power,
    format_cell,
    html_page,
    img_tag,
    kpi_table,
    result_kpis,
    write_outputs,
)
from ems.replay.result import ReplayResult

UNSEEN_KPIS = ("n_reoptimizations", "reopt_ms_p50", "reopt_ms_p95")
"""Figures of the SCSP's inside: the bench cannot see them."""
RANKING = ("protection_violations", "unmet_kwh", "grid_import_kwh")
"""SCSPs are ranked by these, in order, each lower is better: safety first, then the drivers'
energy, then the objective (`self_consumption`), as the optimizer's own priorities."""
UNMET_RESOLUTION_KWH = 0.1
"""Unmet energies closer than this tie, so the objective decides."""


def rank_key(kpis: Mapping[str, Any]) -> tuple[float, ...]:
    return (
        float(kpis["protection_violations"]),
        round(float(kpis["unmet_kwh"]) / UNMET_RESOLUTION_KWH),
        float(kpis["grid_import_kwh"]),
    )


def ranking(kpis_by_name: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Names from best to worst (see `RANKING`)."""
    return sorted(kpis_by_name, key=lambda name: rank_key(kpis_by_name[name]))


@dataclass(frozen=True)
class Scored:
    name: str
    result: ReplayResult
    scores: dict[str, Any]


def _response(outcome: BenchOutcome, run: ScspRun) -> dict[str, Any]:
    """From each session's start (pushed, or pullable) to the SCSP's first profile for it."""
    ledger = run.backend.ledger
    window_s = outcome.config.response_window_s
    first: dict[str, Any] = {}
    for received in ledger.accepted:
        first.setdefault(received.session_id, received)
    sim_s: list[float] = []
    real_s: list[float] = []
    late = 0
    without = 0
    for car in run.cars:
        sid = car.log.session_id
        if sid not in ledger.pushed_at or car.draw_end <= car.draw_start:
            continue  # never plugged in for a whole step: nothing to answer
        got = first.get(sid)
        if got is None:
            without += 1
            late += 1
            continue
        delay_s = (got.at - ledger.pushed_at[sid]).total_seconds()
        sim_s.append(delay_s)
        real_s.append(got.real_at_s - ledger.real_pushed_at_s[sid])
        late += delay_s > window_s
    return {
        "profile_response_s_p50": percentile_s(sim_s, 50),
        "profile_response_s_p95": percentile_s(sim_s, 95),
        "profile_response_s_max": max(sim_s, default=None),
        "profile_response_real_s_p95": percentile_s(real_s, 95),
        "profiles_late": late,
        "sessions_without_profile": without,
    }


def score(outcome: BenchOutcome, run: ScspRun) -> Scored:
    result = outcome.result(run)
    kpis = result_kpis(result)
    kpis.update(dict.fromkeys(UNSEEN_KPIS))
    kpis["wall_s"] = outcome.wall_s
    by_phase = protection_violations_by_phase(
        result.site, connector_power(result), result.pv_kw, result.base_load_kw
    )
    ledger = run.backend.ledger
    pushes_failed = [e for e in run.backend.state.events if e["kind"] == "push_failed"]
    scores: dict[str, Any] = {
        "name": run.spec.name,
        "started_here": run.spec.started,
        "strategy": run.spec.strategy,
        "versions_url": run.spec.versions_url,
        "registered": run.registration_error is None and run.backend.registration.status == "REGISTERED",
        "registration_error": run.registration_error,
        "kpis": kpis,
        "protection_violations_by_phase": {f"{pid}/{phase}": n for (pid, phase), n in by_phase.items()},
        "profiles_received": len(ledger.accepted) + ledger.unknown_session_puts + ledger.malformed_profiles,
        "profiles_accepted": len(ledger.accepted),
        "profiles_malformed": ledger.malformed_profiles,
        "profiles_unknown_session": ledger.unknown_session_puts,
        **_response(outcome, run),
        "ocpi_requests": ledger.requests,
        "ocpi_errors_answered": sum(ledger.error_answers.values()),
        "ocpi_errors_answered_by_kind": dict(sorted(ledger.error_answers.items())),
        "ocpi_pushes_failed": len(pushes_failed),
        "ocpi_push_failures_first": [str(e.get("why", ""))[:200] for e in pushes_failed[:5]],
    }
    return Scored(run.spec.name, result, scores)


def _folder(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "scsp"


SCORE_ROWS = (
    "registered",
    "profiles_accepted",
    "profiles_malformed",
    "profiles_unknown_session",
    "profiles_late",
    "sessions_without_profile",
    "profile_response_s_p50",
    "profile_response_s_p95",
    "profile_response_s_max",
    "ocpi_errors_answered",
    "ocpi_pushes_failed",
)


def write_report(outcome: BenchOutcome, scored: Sequence[Scored], out: Path) -> dict[str, Any]:
    """scores.json, report.html side by side, and per SCSP the replay's files in `out/NAME/`."""
    out.mkdir(parents=True, exist_ok=True)
    kpis = {s.name: s.scores["kpis"] for s in scored}
    order = ranking(kpis)
    for s in scored:
        folder = out / _folder(s.name)
        write_outputs(s.result, folder)
        (folder / "kpis.json").write_text(json.dumps(s.scores["kpis"], indent=2) + "\n", encoding="utf-8")
        (folder / "scores.json").write_text(json.dumps(s.scores, indent=2) + "\n", encoding="utf-8")
    config = outcome.config
    document = {
        "site": config.site.id,
        "mode": config.mode,
        "speed": config.speed,
        "step_s": config.step_s,
        "response_window_s": config.response_window_s,
        "span": [outcome.start.isoformat(), outcome.result(outcome.runs[0]).steps[-1].isoformat()],
        "n_sessions": len(config.sessions),
        "ranking": order,
        "ranking_by": list(RANKING),
        "scsps": {s.name: s.scores for s in scored},
    }
    (out / "scores.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    names = [s.name for s in scored]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{key}</td>"
        + "".join(f"<td>{format_cell(s.scores.get(key))}</td>" for s in scored)
        + "</tr>"
        for key in SCORE_ROWS
    )
    phases = sorted({row for s in scored for row in s.scores["protection_violations_by_phase"]})
    rows += "".join(
        f"<tr><td>violations {html.escape(row)}</td>"
        + "".join(f"<td>{s.scores['protection_violations_by_phase'].get(row, 0)}</td>" for s in scored)
        + "</tr>"
        for row in phases
    )
    parts = [
        f"<p>Site {html.escape(config.site.id)}, {len(config.sessions)} sessions, {config.mode} mode; "
        f"ranking (by {', '.join(RANKING)}): {html.escape(' > '.join(order))}.</p>",
        f"<h2>Bench scores</h2><table><tr><th>score</th>{head}</tr>{rows}</table>",
        f"<h2>KPIs (what the cars drew)</h2>{kpi_table(kpis)}",
    ]
    for plot, title in (
        ("power.png", "Site power against the grid limit"),
        ("protections.png", "Protection loading per phase"),
        ("energy.png", "Energy delivered vs requested"),
    ):
        cells = "".join(
            f"<td><b>{html.escape(s.name)}</b><br>{img_tag(out / _folder(s.name) / plot)}</td>"
            for s in scored
        )
        parts.append(f"<h2>{title}</h2><table><tr>{cells}</tr></table>")
    links = " · ".join(f'<a href="{_folder(n)}/report.html">{html.escape(n)}</a>' for n in names)
    parts.append(f"<p>Each SCSP's replay report: {links}</p>")
    (out / "report.html").write_text(html_page(f"SCSP bench on {config.site.id}", parts), encoding="utf-8")
    return document
