"""`ems.sites.series`: the one reader of series.csv (formats §2) and its step averages (§7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ems.sites.series import Series, SeriesError, parse_series, read_series, resample

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)

CSV = """timestamp,pv_kw,price_eur_per_kwh,base_load_kw
2026-06-01T02:00:00+02:00,0.0,0.1200,3.1
2026-06-01T02:15:00+02:00,4.0,0.2000,3.0
2026-06-01T02:30:00+02:00,8.0,-0.0500,2.0
"""


def test_parse_reads_every_column_with_offsets() -> None:
    s = parse_series(CSV)
    assert s.timestamps[0] == T0
    assert s.timestamps[1] - s.timestamps[0] == timedelta(minutes=15)
    assert s.pv_kw == (0.0, 4.0, 8.0)
    assert s.price_eur_per_kwh == (0.12, 0.2, -0.05)
    assert s.base_load_kw == (3.1, 3.0, 2.0)


def test_missing_columns_are_none_and_resample_to_defaults() -> None:
    s = parse_series("timestamp,pv_kw\n2026-06-01T00:00:00Z,2\n2026-06-01T01:00:00Z,4\n")
    assert s.price_eur_per_kwh is None and s.base_load_kw is None
    r = resample(s, T0, 3600, 3)
    assert r.pv_kw == (2.0, 4.0, 0.0)
    assert r.base_load_kw == (0.0, 0.0, 0.0)
    assert r.price_eur_per_kwh is None


def test_resample_is_time_weighted_and_holds_price_after_the_end() -> None:
    s = parse_series(CSV)
    # 30-minute steps from 23:45 UTC: before the data, then two quarter hours each
    r = resample(s, T0 - timedelta(minutes=15), 1800, 4)
    # the last row (00:30) lasts 15 min like the one before it; after 00:45 nothing
    assert r.pv_kw == pytest.approx((0.0, 6.0, 0.0, 0.0))
    assert r.base_load_kw == pytest.approx((3.1 / 2, 2.5, 0.0, 0.0))
    assert r.price_eur_per_kwh == pytest.approx((0.12, 0.075, -0.05, -0.05))


def test_resample_finer_than_the_series() -> None:
    s = Series((T0, T0 + timedelta(hours=1)), pv_kw=(6.0, 3.0))
    r = resample(s, T0 + timedelta(minutes=30), 900, 6)
    assert r.pv_kw == pytest.approx((6.0, 6.0, 3.0, 3.0, 3.0, 3.0))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty file"),
        ("pv_kw\n1\n", "no 'timestamp' column"),
        ("timestamp,pv_kw\n2026-06-01T00:00:00,1\n", "row 2 column timestamp.*no UTC offset"),
        ("timestamp,pv_kw\nyesterday,1\n", "row 2 column timestamp.*not an ISO 8601"),
        ("timestamp,pv_kw\n2026-06-01T00:00:00Z,abc\n", "row 2 column pv_kw.*not a number"),
        ("timestamp,base_load_kw\n2026-06-01T00:00:00Z,-1\n", "row 2 column base_load_kw.*negative"),
        (
            "timestamp,pv_kw\n2026-06-01T01:00:00Z,1\n2026-06-01T00:00:00Z,1\n",
            "row 3 column timestamp.*not after",
        ),
        ("timestamp,pv_kw\n2026-06-01T00:00:00Z,1,2\n", "row 2: 3 cells"),
        ("timestamp,pv_kw,pv_kw\n2026-06-01T00:00:00Z,1,2\n", "repeated"),
        ("timestamp,pv_kw\n", "no data rows"),
        ("timestamp,pv_kw\n2026-06-01T00:00:00Z,nan\n", "not finite"),
    ],
)
def test_bad_files_name_row_and_column(text: str, match: str) -> None:
    with pytest.raises(SeriesError, match=match):
        parse_series(text, "s.csv")


def test_read_series_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "series.csv"
    f.write_text(CSV, encoding="utf-8")
    assert read_series(f).pv_kw == (0.0, 4.0, 8.0)
    with pytest.raises(SeriesError, match="cannot read"):
        read_series(tmp_path / "missing.csv")
