"""What a replay writes (formats §6): kpis.json, the three CSVs anyone can recompute the KPIs
from, PNG plots and a self-contained HTML report; with several strategies, a comparison.

The CSVs hold the actual series and the power each car really drew, so a reader re-checks
every limit and KPI without trusting this code.
"""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from ems.replay.kpis import KPI_KEYS, compute_kpis, protection_currents
from ems.replay.result import ReplayResult

FloatArray = npt.NDArray[np.float64]
DAILY_AGGREGATE_AFTER_DAYS = 14
"""Longer replays plot per-day figures: a year of 15-minute steps is an unreadable smear."""


def connector_power(result: ReplayResult) -> dict[tuple[str, int], FloatArray]:
    """Power per (connector, vehicle phases) and step, summed over the cars that used it."""
    rows: dict[tuple[str, int], list[int]] = {}
    for i, s in enumerate(result.sessions):
        rows.setdefault((result.session_connector[s.session_id], s.vehicle_phases), []).append(i)
    n_steps = len(result.steps)
    return {
        key: np.asarray(result.power_kw[idx, :].sum(axis=0), dtype=float).reshape(n_steps)
        for key, idx in rows.items()
    }


def result_kpis(result: ReplayResult) -> dict[str, Any]:
    return compute_kpis(
        site=result.site,
        step_s=result.step_s,
        pv_kw=result.pv_kw,
        base_load_kw=result.base_load_kw,
        price_eur_per_kwh=result.price_eur_per_kwh,
        ev_kw=result.ev_kw,
        connector_power_kw=connector_power(result),
        energy_requested_kwh=[s.energy_kwh for s in result.sessions],
        energy_delivered_kwh=[float(x) for x in result.delivered_kwh()],
        plan_ms=result.plan_ms,
        wall_s=result.wall_s,
        setpoint_changes=result.setpoint_changes,
        session_hours=result.session_hours(),
    )


def _ts(t: datetime, zone: ZoneInfo) -> str:
    return t.astimezone(zone).isoformat()


def write_csvs(result: ReplayResult, out: Path) -> None:
    zone = ZoneInfo(result.site.timezone)
    ev = result.ev_kw
    grid = np.maximum(0.0, ev + result.base_load_kw - result.pv_kw)
    with (out / "timeline.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "pv_kw", "base_load_kw", "ev_kw", "grid_import_kw", "price_eur_per_kwh"])
        for k, t in enumerate(result.steps):
            price = "" if result.price_eur_per_kwh is None else repr(float(result.price_eur_per_kwh[k]))
            w.writerow(
                [
                    _ts(t, zone),
                    repr(float(result.pv_kw[k])),
                    repr(float(result.base_load_kw[k])),
                    repr(float(ev[k])),
                    repr(float(grid[k])),
                    price,
                ]
            )
    with (out / "session_power.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "session_id", "power_kw"])
        drawn = result.power_kw.tocoo()
        for j in np.lexsort((drawn.row, drawn.col)):  # step-major, like the timeline
            if drawn.data[j] > 0:
                w.writerow(
                    [
                        _ts(result.steps[drawn.col[j]], zone),
                        result.sessions[drawn.row[j]].session_id,
                        repr(float(drawn.data[j])),
                    ]
                )
    delivered = result.delivered_kwh()
    with (out / "sessions_out.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["session_id", "arrival", "departure", "energy_requested_kwh", "energy_delivered_kwh"])
        for i, s in enumerate(result.sessions):
            w.writerow(
                [
                    s.session_id,
                    s.arrival.isoformat(),
                    s.departure.isoformat(),
                    repr(s.energy_kwh),
                    repr(float(delivered[i])),
                ]
            )


# ---- plots ------------------------------------------------------------------------------------


def _local_times(result: ReplayResult) -> npt.NDArray[np.datetime64]:
    """Step starts as naive local times: matplotlib's axis then reads like the site's clock."""
    zone = ZoneInfo(result.site.timezone)
    return np.array([t.astimezone(zone).replace(tzinfo=None) for t in result.steps], dtype="datetime64[s]")


def _daily(
    result: ReplayResult, values: FloatArray, how: str
) -> tuple[npt.NDArray[np.datetime64], FloatArray]:
    zone = ZoneInfo(result.site.timezone)
    days: dict[datetime, list[float]] = {}
    for t, v in zip(result.steps, values, strict=True):
        local = t.astimezone(zone)
        key = datetime(local.year, local.month, local.day)
        days.setdefault(key, []).append(float(v))
    keys = sorted(days)
    x = np.array(keys, dtype="datetime64[s]")
    if how == "max":
        return x, np.array([max(days[d]) for d in keys])
    dt_h = result.step_s / 3600.0
    return x, np.array([sum(days[d]) * dt_h for d in keys])


def _long(result: ReplayResult) -> bool:
    return len(result.steps) * result.step_s > DAILY_AGGREGATE_AFTER_DAYS * 86400


def plot_power(result: ReplayResult, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(11, 4))
    grid = np.maximum(0.0, result.ev_kw + result.base_load_kw - result.pv_kw)
    limit = result.site.grid_connection.max_power_kw
    if _long(result):
        for values, label in (
            (result.pv_kw, "PV"),
            (result.base_load_kw, "base load"),
            (result.ev_kw, "EV"),
            (grid, "grid import"),
        ):
            days, peak = _daily(result, values, "max")
            ax.plot(days, peak, label=f"{label} (daily max)", lw=1)
    else:
        x = _local_times(result)
        ax.fill_between(x, 0, result.base_load_kw, step="post", alpha=0.4, label="base load")
        ax.fill_between(
            x, result.base_load_kw, result.base_load_kw + result.ev_kw, step="post", alpha=0.5, label="EV"
        )
        ax.step(x, result.pv_kw, where="post", color="orange", label="PV")
        ax.step(x, grid, where="post", color="black", lw=0.8, label="grid import")
    ax.axhline(limit, color="red", ls="--", lw=1, label=f"grid limit {limit:g} kW")
    ax.set_ylabel("kW")
    ax.set_title(f"Site power — {result.strategy}")
    ax.legend(loc="upper right", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_energy(result: ReplayResult, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5))
    requested = np.array([s.energy_kwh for s in result.sessions])
    delivered = result.delivered_kwh()
    ax.scatter(requested, delivered, s=10, alpha=0.6)
    top = float(max(requested.max(initial=0.0), delivered.max(initial=0.0))) * 1.05 + 1e-9
    ax.plot([0, top], [0, top], color="grey", lw=1, ls="--")
    ax.set_xlabel("requested (true need), kWh")
    ax.set_ylabel("delivered, kWh")
    ax.set_title(f"Energy per session — {result.strategy}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_protections(result: ReplayResult, path: Path) -> None:
    rows, currents, rated = protection_currents(
        result.site, connector_power(result), result.pv_kw, result.base_load_kw
    )
    protections = list(dict.fromkeys(pid for pid, _ in rows))
    fig, axes = plt.subplots(
        len(protections), 1, figsize=(11, 2.2 * len(protections)), sharex=True, squeeze=False
    )
    long = _long(result)
    x = _local_times(result)
    for ax, pid in zip(axes[:, 0], protections, strict=True):
        rating = 0.0
        for r, (row_pid, phase) in enumerate(rows):
            if row_pid != pid:
                continue
            rating = float(rated[r])
            if long:
                days, peak = _daily(result, np.abs(currents[r]), "max")
                ax.plot(days, peak, lw=1, label=f"{phase} (daily max |I|)")
            else:
                ax.step(x, np.abs(currents[r]), where="post", lw=1, label=f"{phase} |I|")
        ax.axhline(rating, color="red", ls="--", lw=1, label=f"rating {rating:g} A")
        ax.set_ylabel(f"{pid}, A")
        ax.legend(loc="upper right", fontsize=7, ncol=4)
    axes[0, 0].set_title(f"Protection loading per phase — {result.strategy}")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_daily(result: ReplayResult, path: Path) -> None:
    ev = result.ev_kw
    grid = np.maximum(0.0, ev + result.base_load_kw - result.pv_kw)
    ev_pv = np.minimum(ev, np.maximum(0.0, result.pv_kw - result.base_load_kw))
    days, ev_day = _daily(result, ev, "sum")
    _, pv_day = _daily(result, result.pv_kw, "sum")
    _, grid_day = _daily(result, grid, "sum")
    _, evpv_day = _daily(result, ev_pv, "sum")
    fig, ax = plt.subplots(figsize=(11, 4))
    idx = np.arange(len(days))
    ax.bar(idx - 0.3, pv_day, width=0.2, label="PV produced", color="orange")
    ax.bar(idx - 0.1, ev_day, width=0.2, label="EV delivered", color="tab:blue")
    ax.bar(idx + 0.1, evpv_day, width=0.2, label="EV from PV", color="tab:green")
    ax.bar(idx + 0.3, grid_day, width=0.2, label="grid import", color="grey")
    step = max(1, len(days) // 15)
    ax.set_xticks(idx[::step], [str(d)[5:10] for d in days[::step]], rotation=45)
    ax.set_ylabel("kWh per day")
    ax.set_title(f"Daily summary — {result.strategy}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


PLOTS = (
    ("power.png", "Site power against the grid limit", plot_power),
    ("energy.png", "Energy delivered vs requested", plot_energy),
    ("protections.png", "Protection loading per phase", plot_protections),
    ("daily.png", "Daily summary", plot_daily),
)


def img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def format_cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return html.escape(str(value))


def kpi_table(kpis_by_strategy: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(kpis_by_strategy)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{key}</td>"
        + "".join(f"<td>{format_cell(kpis_by_strategy[n].get(key))}</td>" for n in names)
        + "</tr>"
        for key in KPI_KEYS
    )
    return f"<table><tr><th>KPI</th>{head}</tr>{body}</table>"


STYLE = (
    "<style>body{font-family:sans-serif;max-width:1150px;margin:auto}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child{text-align:left}img{max-width:100%}</style>"
)


def html_page(title: str, parts: Sequence[str]) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>{STYLE}</head>'
        f"<body><h1>{html.escape(title)}</h1>{''.join(parts)}</body></html>"
    )


@dataclass(frozen=True)
class Written:
    out: Path
    kpis: dict[str, Any]


def write_outputs(result: ReplayResult, out: Path) -> Written:
    """kpis.json, the CSVs, the plots and report.html of one strategy, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    kpis = result_kpis(result)
    (out / "kpis.json").write_text(json.dumps(kpis, indent=2) + "\n", encoding="utf-8")
    write_csvs(result, out)
    parts = [f"<h2>KPIs</h2>{kpi_table({result.strategy: kpis})}"]
    for name, title, plot in PLOTS:
        plot(result, out / name)
        parts.append(f"<h2>{html.escape(title)}</h2>{img_tag(out / name)}")
    (out / "report.html").write_text(
        html_page(f"Replay of {result.site.id} — {result.strategy}", parts), encoding="utf-8"
    )
    return Written(out, kpis)


def write_comparison(
    results: Sequence[ReplayResult], kpis: Mapping[str, Mapping[str, Any]], out: Path
) -> None:
    """DIR/report.html with a side-by-side KPI table and overlaid plots of every strategy."""
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for r in results:
        grid = np.maximum(0.0, r.ev_kw + r.base_load_kw - r.pv_kw)
        ev_pv = np.minimum(r.ev_kw, np.maximum(0.0, r.pv_kw - r.base_load_kw))
        days, peak = _daily(r, grid, "max")
        _, share_num = _daily(r, ev_pv, "sum")
        _, ev_day = _daily(r, r.ev_kw, "sum")
        axes[0].plot(days, peak, marker=".", lw=1, label=r.strategy)
        share = np.divide(share_num, ev_day, out=np.zeros_like(share_num), where=ev_day > 0)
        axes[1].plot(days, share, marker=".", lw=1, label=r.strategy)
    if results:
        axes[0].axhline(results[0].site.grid_connection.max_power_kw, color="red", ls="--", lw=1)
    axes[0].set_ylabel("daily grid peak, kW")
    axes[1].set_ylabel("daily EV PV share")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Strategies compared")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "compare_daily.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 4))
    for r in results:
        grid = np.maximum(0.0, r.ev_kw + r.base_load_kw - r.pv_kw)
        ax.plot(_local_times(r), np.cumsum(grid) * r.step_s / 3600.0, lw=1, label=r.strategy)
    ax.set_ylabel("cumulative grid import, kWh")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "compare_import.png", dpi=90)
    plt.close(fig)
    links = " · ".join(f'<a href="{html.escape(n)}/report.html">{html.escape(n)}</a>' for n in kpis)
    parts = [
        f"<p>Per-strategy reports: {links}</p>",
        f"<h2>KPIs</h2>{kpi_table(kpis)}",
        f"<h2>Daily grid peak and EV PV share</h2>{img_tag(out / 'compare_daily.png')}",
        f"<h2>Cumulative grid import</h2>{img_tag(out / 'compare_import.png')}",
    ]
    site_id = results[0].site.id if results else ""
    (out / "report.html").write_text(
        html_page(f"Replay of {site_id} — strategies compared", parts), encoding="utf-8"
    )
