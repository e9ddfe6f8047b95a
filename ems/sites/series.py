"""The one reader of `series.csv` (formats §2) and its resampling onto planning steps (§7).

`ems optimize`, the replay and the forecast import all read series through `read_series` /
`parse_series`, so a file means the same thing everywhere, and turn them into per-step
averages with `resample`.

Semantics (§2, §7): each row's values hold from its timestamp until the next row's; the last
row holds for as long as the interval before it (one row alone: one planning step). Outside
the rows PV and base load are 0; the price keeps its last value after the last row (and its
first value before the first). A missing column means no PV, no base load, no price.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

COLUMNS = ("pv_kw", "price_eur_per_kwh", "base_load_kw")


class SeriesError(ValueError):
    """A series file refused; the message names the file, row and column."""


@dataclass(frozen=True)
class Series:
    """A time series of PV, price and base load; a column absent from the file is `None`."""

    timestamps: tuple[datetime, ...]
    pv_kw: tuple[float, ...] | None = None
    price_eur_per_kwh: tuple[float, ...] | None = None
    base_load_kw: tuple[float, ...] | None = None


@dataclass(frozen=True)
class StepSeries:
    """A series averaged over planning steps: one value per step."""

    start: datetime
    step_s: int
    pv_kw: tuple[float, ...]
    base_load_kw: tuple[float, ...]
    price_eur_per_kwh: tuple[float, ...] | None


def parse_timestamp(text: str, what: str) -> datetime:
    """An ISO 8601 time with a UTC offset (`Z` allowed); `SeriesError` naming `what` otherwise."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise SeriesError(f"{what}: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise SeriesError(f"{what}: {text!r} has no UTC offset")
    return value


def parse_series(text: str, source: str = "series.csv") -> Series:
    """The series in CSV `text`; `source` names it in errors."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise SeriesError(f"{source}: empty file (expected a header with 'timestamp')") from None
    if "timestamp" not in header:
        raise SeriesError(f"{source}: no 'timestamp' column in the header {header}")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise SeriesError(f"{source}: column(s) {dup} repeated in the header")
    cols = {c: header.index(c) for c in COLUMNS if c in header}
    i_ts = header.index("timestamp")
    stamps: list[datetime] = []
    values: dict[str, list[float]] = {c: [] for c in cols}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise SeriesError(f"{source} row {line_no}: {len(row)} cells, the header has {len(header)}")
        ts = parse_timestamp(row[i_ts], f"{source} row {line_no} column timestamp")
        if stamps and ts <= stamps[-1]:
            raise SeriesError(
                f"{source} row {line_no} column timestamp: {row[i_ts].strip()} is not after the previous row"
            )
        stamps.append(ts)
        for c, i in cols.items():
            cell = row[i].strip()
            try:
                v = float(cell)
            except ValueError:
                raise SeriesError(f"{source} row {line_no} column {c}: {cell!r} is not a number") from None
            if not math.isfinite(v):
                raise SeriesError(f"{source} row {line_no} column {c}: {cell!r} is not finite")
            if c != "price_eur_per_kwh" and v < 0:
                raise SeriesError(f"{source} row {line_no} column {c}: negative value {v}")
            values[c].append(v)
    if not stamps:
        raise SeriesError(f"{source}: no data rows")

    def col(name: str) -> tuple[float, ...] | None:
        return tuple(values[name]) if name in values else None

    return Series(tuple(stamps), col("pv_kw"), col("price_eur_per_kwh"), col("base_load_kw"))


def format_number(value: float) -> str:
    """Shortest fixed-point text to 3 decimals: 7.4, 11, 0.125 (no exponent, no −0): how the
    files this project writes (series, session logs) spell numbers."""
    text = f"{round(value, 3) + 0.0:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def read_series(path: str | Path) -> Series:
    """The series in the file at `path` (UTF-8 CSV, formats §2)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SeriesError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SeriesError(f"{p}: not UTF-8 text") from None
    return parse_series(text, str(p))


def _averages(
    knots_s: npt.NDArray[np.float64], vals: Sequence[float], bounds_s: npt.NDArray[np.float64], hold: bool
) -> npt.NDArray[np.float64]:
    """Mean of a step function over each [bounds[i], bounds[i+1]).

    The function is `vals[j]` on [knots[j], knots[j+1]); outside [knots[0], knots[-1]) it is 0,
    or with `hold` the first/last value."""
    v = np.asarray(vals, dtype=float)
    seg = np.diff(knots_s) * v  # area of each interval
    area = np.concatenate([[0.0], np.cumsum(seg)])  # integral from knots[0] to each knot

    def integral(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        clipped = np.clip(x, knots_s[0], knots_s[-1])
        inner: npt.NDArray[np.float64] = np.asarray(np.interp(clipped, knots_s, area))
        if hold:
            inner = inner + np.minimum(0.0, x - knots_s[0]) * v[0] + np.maximum(0.0, x - knots_s[-1]) * v[-1]
        return inner

    f = integral(bounds_s)
    out: npt.NDArray[np.float64] = np.asarray(np.diff(f) / np.diff(bounds_s), dtype=float)
    return out


def resample(series: Series, start: datetime, step_s: int, n_steps: int) -> StepSeries:
    """Time-weighted mean of each column over steps `[start + k·step, start + (k+1)·step)`.

    Past the last row PV and base load are 0 and the price keeps its last value; a missing
    column gives PV 0, base load 0, price `None`.
    """
    if step_s <= 0 or n_steps < 0:
        raise ValueError("step_s must be positive and n_steps non-negative")
    t0 = series.timestamps[0]
    knots = [(ts - t0).total_seconds() for ts in series.timestamps]
    last_len = knots[-1] - knots[-2] if len(knots) > 1 else float(step_s)
    knots_s = np.array([*knots, knots[-1] + last_len])
    offset = (start - t0).total_seconds()
    bounds_s = offset + step_s * np.arange(n_steps + 1, dtype=float)

    def avg(vals: tuple[float, ...] | None, hold: bool) -> tuple[float, ...] | None:
        if vals is None:
            return None
        if n_steps == 0:
            return ()
        return tuple(float(x) for x in _averages(knots_s, vals, bounds_s, hold))

    zeros = (0.0,) * n_steps
    return StepSeries(
        start=start,
        step_s=step_s,
        pv_kw=avg(series.pv_kw, False) or zeros,
        base_load_kw=avg(series.base_load_kw, False) or zeros,
        price_eur_per_kwh=avg(series.price_eur_per_kwh, True),
    )


def step_starts(start: datetime, step_s: int, n_steps: int) -> tuple[datetime, ...]:
    return tuple(start + timedelta(seconds=k * step_s) for k in range(n_steps))
