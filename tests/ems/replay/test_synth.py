"""`ems synth` and `ems.replay.synth`: seeded session logs (formats §3) and a year of series (§2).

Every generated row is read back with the csv module and checked against the format; the logs
are also read by the CPO simulator's own reader (an independent oracle), the committed example
files must regenerate byte for byte, and the distributions must look like the documented ones.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ems.cli.synth import synth_command
from ems.replay.log import CSV_COLUMNS as SESSION_COLUMNS
from ems.replay.log import sessions_csv_text
from ems.replay.synth import (
    DeclarationRule,
    SynthError,
    redeclare,
    series_csv_text,
    synth_log,
    synth_sessions,
    synth_year_series,
)
from ems.sites.series import Series, parse_series, read_series
from examples.cpo_simulator.arrivals import read_session_log
from grid_models.site import Site
from grid_models.sitefile import load_site

REPO = Path(__file__).resolve().parents[3]
OFFICE_PATH = REPO / "examples" / "sites" / "office-pv.json"
CARPARK_PATH = REPO / "examples" / "sites" / "public-carpark.json"
OFFICE = load_site(OFFICE_PATH)
CARPARK = load_site(CARPARK_PATH)
JUNE = date(2026, 6, 1)
HEADER = (
    "session_id,evse_uid,connector_id,token_uid,arrival,departure,energy_kwh,max_power_kw,"
    "vehicle_phases,declared_departure,declared_energy_kwh,soc_arrival_pct,battery_capacity_kwh"
)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _hours(t: datetime) -> float:
    return t.hour + t.minute / 60


@pytest.fixture(scope="module")
def office_june() -> str:
    return sessions_csv_text(synth_sessions(OFFICE, "workplace", JUNE, 30, 1))


@pytest.fixture(scope="module")
def carpark_june() -> str:
    return sessions_csv_text(synth_sessions(CARPARK, "public", JUNE, 30, 2))


# ---- sessions -----------------------------------------------------------------------------------


def test_same_seed_same_csv_different_seed_different() -> None:
    for site, pattern in ((OFFICE, "workplace"), (CARPARK, "public")):
        a = sessions_csv_text(synth_sessions(site, pattern, JUNE, 14, 7))  # type: ignore[arg-type]
        b = sessions_csv_text(synth_sessions(site, pattern, JUNE, 14, 7))  # type: ignore[arg-type]
        c = sessions_csv_text(synth_sessions(site, pattern, JUNE, 14, 8))  # type: ignore[arg-type]
        assert a == b
        assert a != c


@pytest.mark.parametrize(("site", "fixture"), [(OFFICE, "office_june"), (CARPARK, "carpark_june")])
def test_every_row_follows_formats_3(site: Site, fixture: str, request: pytest.FixtureRequest) -> None:
    text: str = request.getfixturevalue(fixture)
    assert text.splitlines()[0] == HEADER
    assert tuple(HEADER.split(",")) == SESSION_COLUMNS
    rows = _rows(text)
    assert len(rows) > 100
    zone = ZoneInfo(site.timezone)
    connectors = {(c.evse_uid, c.connector_id) for c in site.connectors()}
    assert len({r["session_id"] for r in rows}) == len(rows)
    for r in rows:
        assert len(r) == len(SESSION_COLUMNS) and None not in r, r
        arrival = datetime.fromisoformat(r["arrival"])
        departure = datetime.fromisoformat(r["departure"])
        # ISO 8601 with the site's own offset at that moment
        for t in (arrival, departure):
            assert t.utcoffset() == t.astimezone(zone).utcoffset(), r
        assert arrival < departure, r
        assert (r["evse_uid"], r["connector_id"]) in connectors, r
        assert r["token_uid"]
        energy_kwh = float(r["energy_kwh"])
        assert 0.5 <= energy_kwh <= 100.0, r
        phases = int(r["vehicle_phases"])
        max_kw = float(r["max_power_kw"])
        assert phases in (1, 3), r
        assert max_kw in ((3.7, 7.4) if phases == 1 else (11.0, 22.0)), r
        if r["declared_departure"]:
            assert datetime.fromisoformat(r["declared_departure"]) > arrival, r
        if r["declared_energy_kwh"]:
            assert float(r["declared_energy_kwh"]) >= 1.0
        # SOC and capacity come together, and the need fits in the battery
        assert bool(r["soc_arrival_pct"]) == bool(r["battery_capacity_kwh"]), r
        if r["battery_capacity_kwh"]:
            capacity_kwh = float(r["battery_capacity_kwh"])
            soc_pct = float(r["soc_arrival_pct"])
            assert 40.0 <= capacity_kwh <= 100.0 and 0.0 <= soc_pct <= 100.0, r
            assert energy_kwh <= capacity_kwh * (1.0 - soc_pct / 100.0) + 1e-9, r


@pytest.mark.parametrize(("site", "fixture"), [(OFFICE, "office_june"), (CARPARK, "carpark_june")])
def test_no_two_sessions_overlap_on_a_connector(
    site: Site, fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    text: str = request.getfixturevalue(fixture)
    by_connector: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    by_token: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in _rows(text):
        window = (datetime.fromisoformat(r["arrival"]), datetime.fromisoformat(r["departure"]))
        by_connector[(r["evse_uid"], r["connector_id"])].append(window)
        by_token[r["token_uid"]].append(window)
    for windows in itertools.chain(by_connector.values(), by_token.values()):
        windows.sort()
        for (_, end), (begin, _) in itertools.pairwise(windows):
            assert end <= begin
    # the CPO simulator's reader refuses overlaps and unknown connectors on its own
    path = tmp_path / "sessions.csv"
    path.write_text(text, encoding="utf-8")
    assert len(read_session_log(path, site)) == len(_rows(text))


def test_workplace_habits(office_june: str) -> None:
    rows = _rows(office_june)
    arrivals = [datetime.fromisoformat(r["arrival"]) for r in rows]
    stays_h = [
        (datetime.fromisoformat(r["departure"]) - a).total_seconds() / 3600
        for r, a in zip(rows, arrivals, strict=True)
    ]
    assert 8.0 <= statistics.mean(_hours(a) for a in arrivals) <= 9.0
    assert all(6.5 <= _hours(a) <= 11.0 for a in arrivals)
    assert 7.5 <= statistics.median(stays_h) <= 9.5
    weekend = sum(a.weekday() >= 5 for a in arrivals)
    assert 0 < weekend / len(rows) < 0.08
    per_weekday = Counter(a.weekday() for a in arrivals)
    n_days = Counter((JUNE + timedelta(days=k)).weekday() for k in range(30))
    mon_thu = sum(per_weekday[d] for d in range(4)) / sum(n_days[d] for d in range(4))
    assert per_weekday[4] / n_days[4] < mon_thu  # fewer on Fridays
    # regular drivers: a few tokens make most sessions, each with its own habit
    tokens = Counter(r["token_uid"] for r in rows)
    assert sum(n for n in tokens.values() if n >= 5) / len(rows) > 0.85
    spread_all_h = statistics.stdev(_hours(a) for a in arrivals)
    by_token: dict[str, list[float]] = defaultdict(list)
    vehicles: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for r, a in zip(rows, arrivals, strict=True):
        by_token[r["token_uid"]].append(_hours(a))
        vehicles[r["token_uid"]].add((r["max_power_kw"], r["vehicle_phases"]))
    within_h = statistics.mean(statistics.stdev(v) for v in by_token.values() if len(v) >= 5)
    assert within_h < 0.75 * spread_all_h
    assert all(len(v) == 1 for v in vehicles.values())  # a token keeps its car
    # declarations as documented: ~60% departure, ~40% energy, ~30% SOC
    for column, share in (
        ("declared_departure", 0.6),
        ("declared_energy_kwh", 0.4),
        ("soc_arrival_pct", 0.3),
    ):
        assert abs(sum(bool(r[column]) for r in rows) / len(rows) - share) < 0.25, column


def test_public_car_park_spread_and_short_stays(carpark_june: str) -> None:
    rows = _rows(carpark_june)
    arrivals = [_hours(datetime.fromisoformat(r["arrival"])) for r in rows]
    stays_h = [
        (datetime.fromisoformat(r["departure"]) - datetime.fromisoformat(r["arrival"])).total_seconds() / 3600
        for r in rows
    ]
    assert all(7.0 <= h <= 21.0 for h in arrivals)
    assert 1.5 <= statistics.median(stays_h) <= 2.6
    late_morning = sum(10 <= h < 12 for h in arrivals)
    afternoon = sum(13.5 <= h < 15.5 for h in arrivals)
    evening = sum(17 <= h < 19 for h in arrivals)
    assert late_morning > 2 * afternoon and evening > 2 * afternoon
    tokens = Counter(r["token_uid"] for r in rows)
    assert max(tokens.values()) >= 5  # regulars come back
    n_days = 30
    assert 0.7 * 15 * n_days <= len(rows) <= 1.1 * 15 * n_days  # ~3 per connector and day


def test_default_and_explicit_rate_and_skipped_cars() -> None:
    year = synth_log(OFFICE, "workplace", date(2026, 1, 1), 365, 3)
    working_days = sum((date(2026, 1, 1) + timedelta(days=k)).weekday() < 5 for k in range(365))
    on_working_days = sum(s.arrival.weekday() < 5 for s in year.sessions)
    assert 10.5 <= on_working_days / working_days <= 12.5
    assert year.skipped > 0  # some days the 12 connectors are all taken
    half = synth_log(OFFICE, "workplace", JUNE, 30, 3, sessions_per_day=6)
    assert half.skipped == 0 and 100 <= len(half.sessions) <= 160
    assert year.energy_kwh == pytest.approx(sum(s.energy_kwh for s in year.sessions))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": "depot"}, "pattern"),
        ({"days": 0}, "days"),
        ({"seed": -1}, "seed"),
        ({"sessions_per_day": 0.0}, "sessions_per_day"),
        ({"sessions_per_day": float("nan")}, "sessions_per_day"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"pattern": "workplace", "days": 1, "seed": 0, "sessions_per_day": None}
    args.update(kwargs)
    with pytest.raises(SynthError, match=message):
        synth_log(OFFICE, args["pattern"], JUNE, args["days"], args["seed"], args["sessions_per_day"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "site", "pattern", "start", "days", "seed"),
    [
        ("office-pv-2026-06", OFFICE, "workplace", JUNE, 30, 1),
        ("public-carpark-2026-06", CARPARK, "public", JUNE, 30, 2),
        ("office-pv-2026", OFFICE, "workplace", date(2026, 1, 1), 365, 3),
    ],
)
def test_committed_logs_regenerate(
    name: str, site: Site, pattern: str, start: date, days: int, seed: int
) -> None:
    committed = (REPO / "examples" / "logs" / f"{name}.csv").read_text(encoding="utf-8")
    fresh = sessions_csv_text(synth_sessions(site, pattern, start, days, seed))  # type: ignore[arg-type]
    assert fresh == committed, f"examples/logs/{name}.csv is stale: regenerate it (examples/README.md)"


# ---- a year of series ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def office_year() -> Series:
    return synth_year_series(OFFICE, 2026, 3)


def test_year_series_rows_and_round_trip(office_year: Series, tmp_path: Path) -> None:
    s = office_year
    assert len(s.timestamps) == 365 * 96
    zone = ZoneInfo(OFFICE.timezone)
    assert s.timestamps[0].astimezone(zone) == datetime(2026, 1, 1, tzinfo=zone)
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(s.timestamps))
    assert s.pv_kw is not None and s.base_load_kw is not None and s.price_eur_per_kwh is not None
    text = series_csv_text(s, OFFICE.timezone)
    assert text.splitlines()[0] == "timestamp,pv_kw,price_eur_per_kwh,base_load_kw"
    assert text.splitlines()[1] == "2026-01-01T00:00:00+01:00,0,0.169,3.351"
    assert len(text.encode()) < 2_000_000
    path = tmp_path / "series.csv"
    path.write_text(text, encoding="utf-8")
    assert read_series(path) == s  # values already rounded to 3 decimals
    committed = (REPO / "examples" / "series" / "office-pv-2026.csv").read_text(encoding="utf-8")
    assert text == committed, (
        "examples/series/office-pv-2026.csv is stale: regenerate it (examples/README.md)"
    )


def test_year_pv_is_zero_at_night_and_larger_in_summer(office_year: Series) -> None:
    zone = ZoneInfo(OFFICE.timezone)
    local = [t.astimezone(zone) for t in office_year.timestamps]
    pv = np.array(office_year.pv_kw)
    night = np.array([t.hour < 4 or t.hour >= 22 for t in local])
    assert np.all(pv[night] == 0.0)
    assert pv.max() <= 35.0 and pv.min() >= 0.0
    daily_kwh = pv.reshape(365, 96).sum(axis=1) / 4
    june, december = daily_kwh[151:181], daily_kwh[334:365]
    assert june.mean() > 2.5 * december.mean()
    assert june.max() > 3 * june.min()  # good and bad days
    assert 800 <= daily_kwh.sum() / 35.0 <= 1400  # kWh per kWp and year, plausible in the Alps' foothills


def test_year_price_and_base_load(office_year: Series) -> None:
    zone = ZoneInfo(OFFICE.timezone)
    local = [t.astimezone(zone) for t in office_year.timestamps]
    price = np.array(office_year.price_eur_per_kwh)
    base = np.array(office_year.base_load_kw)
    peak = np.array([17 <= t.hour < 21 for t in local])
    night = np.array([t.hour < 6 for t in local])
    assert price[peak].min() > price[night].max()
    january = np.array([t.month == 1 for t in local])
    july = np.array([t.month == 7 for t in local])
    assert price[january & night].mean() > price[july & night].mean()  # the seasonal term
    working = np.array([t.weekday() < 5 and 9 <= t.hour < 17 for t in local])
    assert base.min() >= 0.0
    assert base[working].mean() > 3 * base[night].mean()


def test_public_series_has_only_prices_and_seeds_matter() -> None:
    s = synth_year_series(CARPARK, 2026, 3)
    assert s.pv_kw is None and s.base_load_kw is None and len(s.timestamps) == 365 * 96
    text = series_csv_text(s, CARPARK.timezone)
    assert text.splitlines()[0] == "timestamp,price_eur_per_kwh"
    assert parse_series(text) == s
    committed = (REPO / "examples" / "series" / "public-carpark-2026.csv").read_text(encoding="utf-8")
    assert text == committed
    office_no_pv = dataclasses.replace(OFFICE, pv_plants=())
    a, b, c = (synth_year_series(office_no_pv, 2028, seed) for seed in (1, 1, 2))
    assert a == b and a != c
    assert len(a.timestamps) == 366 * 96  # a leap year


# ---- the command --------------------------------------------------------------------------------


def _ems() -> typer.Typer:
    """`ems` as the lead mounts it: the command registered by name beside another."""
    ems = typer.Typer()
    ems.command("synth")(synth_command)

    @ems.command("version")
    def version() -> None:
        typer.echo("0")

    return ems


def test_cli_writes_the_log_and_a_one_line_summary(tmp_path: Path) -> None:
    out = tmp_path / "sessions.csv"
    args = ["synth", "--site", str(OFFICE_PATH), "--pattern", "workplace", "--start", "2026-06-01"]
    r = CliRunner().invoke(_ems(), [*args, "--days", "30", "--seed", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    committed = (REPO / "examples" / "logs" / "office-pv-2026-06.csv").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed
    assert summary["sessions_written"] == len(committed.splitlines()) - 1
    assert summary["sessions_skipped"] >= 0
    assert summary["energy_kwh"] == pytest.approx(sum(float(r["energy_kwh"]) for r in _rows(committed)))
    r = CliRunner().invoke(
        _ems(), [*args, "--days", "3", "--seed", "1", "--sessions-per-day", "2.5", "--out", str(out)]
    )
    assert r.exit_code == 0 and json.loads(r.stdout)["sessions_written"] < 15


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--site": None}, "missing --site"),
        ({"--site": "nowhere.json"}, "--site: file"),
        ({"--site": "BAD_JSON"}, "--site"),
        ({"--site": "NO_CONNECTOR"}, "no connector"),
        ({"--pattern": "depot"}, "--pattern must be workplace or public"),
        ({"--pattern": None}, "missing --pattern"),
        ({"--start": "2026-13-01"}, "--start must be a date"),
        ({"--start": None}, "missing --start"),
        ({"--days": "0"}, "--days must be between 1"),
        ({"--days": "two"}, "--days must be a whole number"),
        ({"--seed": "-1"}, "--seed must be >= 0"),
        ({"--seed": None}, "missing --seed"),
        ({"--sessions-per-day": "many"}, "--sessions-per-day must be a number"),
        ({"--sessions-per-day": "-3"}, "--sessions-per-day must be a positive"),
        ({"--out": None}, "missing --out"),
        ({"--out": "FOLDER"}, "is a folder"),
        ({"--declare-energy-error": "1.5"}, "--declare-energy-error must be >= 0 and < 1"),
        ({"--declare-departure-missing": "2"}, "--declare-departure-missing must be a share"),
        ({"--declare-energy-missing": "some"}, "--declare-energy-missing must be a number"),
        ({"--declare-departure-error": "-0.1"}, "--declare-departure-error must be >= 0"),
    ],
)
def test_cli_bad_input_one_line_exit_2(tmp_path: Path, change: dict[str, str | None], message: str) -> None:
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json", encoding="utf-8")
    no_connector = tmp_path / "empty.json"
    data = json.loads(OFFICE_PATH.read_text(encoding="utf-8"))
    data["charge_points"] = []
    no_connector.write_text(json.dumps(data), encoding="utf-8")
    special = {"BAD_JSON": str(bad_json), "NO_CONNECTOR": str(no_connector), "FOLDER": str(tmp_path)}
    options: dict[str, str | None] = {
        "--site": str(OFFICE_PATH),
        "--pattern": "workplace",
        "--start": "2026-06-01",
        "--days": "2",
        "--seed": "1",
        "--out": str(tmp_path / "out.csv"),
    }
    options.update(change)
    argv = ["synth"]
    for key, value in options.items():
        if value is not None:
            argv += [key, special.get(value, value)]
    r = CliRunner().invoke(_ems(), argv)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ems synth: error:"), r.stderr
    assert message in lines[0], lines[0]
    assert r.stdout == ""


# ---- declarations by rule ------------------------------------------------------------------------


def test_harsh_declarations_follow_the_rule() -> None:
    truth = synth_sessions(OFFICE, "workplace", JUNE, 30, 1)
    rule = DeclarationRule(
        departure_error_ratio=0.2, departure_missing=0.15, energy_missing=0.25, energy_error_ratio=0.2
    )
    told = redeclare(truth, rule, seed=7)
    assert redeclare(truth, rule, seed=7) == told  # same seed, same log
    assert [
        dataclasses.replace(
            s,
            declared_departure=None,
            declared_energy_kwh=None,
            soc_arrival_pct=None,
            battery_capacity_kwh=None,
        )
        for s in told
    ] == [
        dataclasses.replace(
            s,
            declared_departure=None,
            declared_energy_kwh=None,
            soc_arrival_pct=None,
            battery_capacity_kwh=None,
        )
        for s in truth
    ]
    n = len(told)
    no_departure = sum(s.declared_departure is None for s in told) / n
    no_energy = sum(s.declared_energy_kwh is None for s in told) / n
    assert 0.08 <= no_departure <= 0.22 and 0.17 <= no_energy <= 0.33
    assert all(s.soc_arrival_pct is None and s.battery_capacity_kwh is None for s in told)
    for real, s in zip(truth, told, strict=True):
        stay_s = (real.departure - real.arrival).total_seconds()
        if s.declared_departure is not None:
            off_s = abs((s.declared_departure - real.departure).total_seconds())
            assert off_s <= 0.2 * stay_s + 1 or s.declared_departure == (real.arrival + timedelta(minutes=15))
            assert s.declared_departure >= real.arrival + timedelta(minutes=15)
        if s.declared_energy_kwh is not None:
            assert 0.8 * real.energy_kwh - 0.01 <= s.declared_energy_kwh <= 1.2 * real.energy_kwh + 0.01
    errors = [
        abs((s.declared_departure - r.departure).total_seconds()) / (r.departure - r.arrival).total_seconds()
        for r, s in zip(truth, told, strict=True)
        if s.declared_departure is not None
    ]
    assert 0.07 <= statistics.mean(errors) <= 0.13  # Uniform(-0.2, 0.2): a mean of 0.1


def test_no_declarations_at_all() -> None:
    truth = synth_sessions(OFFICE, "workplace", JUNE, 7, 1)
    told = redeclare(truth, DeclarationRule(departure_missing=1.0, energy_missing=1.0), seed=1)
    assert all(s.declared_departure is None and s.declared_energy_kwh is None for s in told)
    with pytest.raises(SynthError, match="energy_error_ratio"):
        redeclare(truth, DeclarationRule(energy_error_ratio=1.0), seed=1)


def test_cli_declares_by_rule(tmp_path: Path) -> None:
    out = tmp_path / "harsh.csv"
    argv = [
        "synth",
        "--site",
        str(OFFICE_PATH),
        "--pattern",
        "workplace",
        "--start",
        "2026-06-01",
        "--days",
        "7",
    ]
    argv += [
        "--seed",
        "3",
        "--out",
        str(out),
        "--declare-departure-missing",
        "1",
        "--declare-energy-error",
        "0.1",
    ]
    r = CliRunner().invoke(_ems(), argv)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["declarations"] == {
        "departure_error_ratio": 0.0,
        "departure_missing": 1.0,
        "energy_missing": 0.0,
        "energy_error_ratio": 0.1,
    }
    rows = _rows(out.read_text(encoding="utf-8"))
    assert rows and all(row["declared_departure"] == "" and row["declared_energy_kwh"] != "" for row in rows)
