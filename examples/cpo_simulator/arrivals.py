"""The session log (formats.md §3, `sessions.csv`) turned into vehicle arrivals in simulated time.

The log holds the truth (arrival, departure, true energy need, vehicle power and phases) and what
the driver declared (`declared_*`), which the CPO forwards to the EMS as charging preferences.

Arrivals relative to the clock start (see `schedule`): a session that left before the clock
starts is skipped; one that arrived before but leaves after is *shifted* to plug in at the clock
start with its whole energy need (so a demo started mid-day still shows the morning's cars).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from grid_models import Site

COLUMNS = (
    "session_id",
    "evse_uid",
    "connector_id",
    "token_uid",
    "arrival",
    "departure",
    "energy_kwh",
    "max_power_kw",
    "vehicle_phases",
    "declared_departure",
    "declared_energy_kwh",
    "soc_arrival_pct",
    "battery_capacity_kwh",
)
REQUIRED_COLUMNS = ("session_id", "evse_uid", "connector_id", "arrival", "departure", "energy_kwh")


class SessionLogError(ValueError):
    """A session log the simulator cannot replay; the message names the line and the column."""


@dataclass(frozen=True)
class Arrival:
    """One vehicle visit: truth from the log plus what the driver declared. Times are aware UTC."""

    session_id: str
    evse_uid: str
    connector_id: str
    token_uid: str
    arrival: datetime
    departure: datetime
    energy_kwh: float
    max_power_kw: float | None
    vehicle_phases: int
    declared_departure: datetime | None = None
    declared_energy_kwh: float | None = None
    soc_arrival_pct: float | None = None
    battery_capacity_kwh: float | None = None


def _parse_time(text: str, zone: tzinfo, where: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SessionLogError(f"{where}: {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)  # no offset: the site's local time
    return value.astimezone(ZoneInfo("UTC"))


def _parse_float(text: str, where: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SessionLogError(f"{where}: {text!r} is not a number") from None
    if not value >= minimum or value != value or value in (float("inf"), float("-inf")):
        raise SessionLogError(f"{where}: {text!r} must be a finite number >= {minimum:g}")
    return value


def read_session_log(path: str | Path, site: Site) -> list[Arrival]:
    """Read and check a `sessions.csv`; refuse it whole with the first problem found.

    Checked: required columns and values, arrival before departure, connectors that exist in
    the site, 1 or 3 vehicle phases, and no two visits overlapping on one connector (a log of
    what really happened cannot have them).
    """
    zone = ZoneInfo(site.timezone)
    known = {(c.evse_uid, c.connector_id) for c in site.connectors()}
    arrivals: list[Arrival] = []
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SessionLogError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):

            def cell(name: str, row: dict[str, str | None] = row) -> str:
                return (row.get(name) or "").strip()

            def where(name: str, line: int = line) -> str:
                return f"{path}:{line}: {name}"

            for name in REQUIRED_COLUMNS:
                if not cell(name):
                    raise SessionLogError(f"{where(name)}: empty")
            if (cell("evse_uid"), cell("connector_id")) not in known:
                raise SessionLogError(
                    f"{where('evse_uid')}: {cell('evse_uid')}/{cell('connector_id')} is no connector"
                    f" of site {site.id}"
                )
            phases = int(_parse_float(cell("vehicle_phases") or "3", where("vehicle_phases"), minimum=1))
            if phases not in (1, 3):
                raise SessionLogError(f"{where('vehicle_phases')}: 1 or 3 expected, got {phases}")
            arrival = _parse_time(cell("arrival"), zone, where("arrival"))
            departure = _parse_time(cell("departure"), zone, where("departure"))
            if departure <= arrival:
                raise SessionLogError(f"{where('departure')}: not after the arrival")

            def optional_float(name: str) -> float | None:
                return _parse_float(cell(name), where(name)) if cell(name) else None

            declared = cell("declared_departure")
            max_power_kw = optional_float("max_power_kw")
            if max_power_kw is not None and max_power_kw <= 0:
                raise SessionLogError(f"{where('max_power_kw')}: must be positive")
            arrivals.append(
                Arrival(
                    session_id=cell("session_id"),
                    evse_uid=cell("evse_uid"),
                    connector_id=cell("connector_id"),
                    token_uid=cell("token_uid") or f"TOK-{cell('session_id')}",
                    arrival=arrival,
                    departure=departure,
                    energy_kwh=_parse_float(cell("energy_kwh"), where("energy_kwh")),
                    max_power_kw=max_power_kw,
                    vehicle_phases=phases,
                    declared_departure=_parse_time(declared, zone, where("declared_departure"))
                    if declared
                    else None,
                    declared_energy_kwh=optional_float("declared_energy_kwh"),
                    soc_arrival_pct=optional_float("soc_arrival_pct"),
                    battery_capacity_kwh=optional_float("battery_capacity_kwh"),
                )
            )
    _check_unique_and_disjoint(arrivals)
    return sorted(arrivals, key=lambda a: (a.arrival, a.session_id))


def _check_unique_and_disjoint(arrivals: Sequence[Arrival]) -> None:
    ids = [a.session_id for a in arrivals]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SessionLogError(f"duplicate session_id(s): {', '.join(duplicates)}")
    by_connector: dict[tuple[str, str], list[Arrival]] = {}
    for a in arrivals:
        by_connector.setdefault((a.evse_uid, a.connector_id), []).append(a)
    for (evse_uid, connector_id), visits in by_connector.items():
        visits.sort(key=lambda a: a.arrival)
        for before, after in itertools.pairwise(visits):
            if after.arrival < before.departure:
                raise SessionLogError(
                    f"sessions {before.session_id} and {after.session_id} overlap on"
                    f" {evse_uid}/{connector_id}"
                )


def shift_to_day(arrivals: Iterable[Arrival], day: date, zone: ZoneInfo) -> list[Arrival]:
    """Move a log by whole days so its first arrival falls on `day` (in the site's time zone).

    Wall-clock times are kept across a DST change: 08:05 stays 08:05 local.
    """
    items = list(arrivals)
    if not items:
        return []
    first_day = min(a.arrival for a in items).astimezone(zone).date()
    days = (day - first_day).days

    def move(moment: datetime) -> datetime:
        local = moment.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
        return local.replace(tzinfo=zone).astimezone(ZoneInfo("UTC"))

    return [
        replace(
            a,
            arrival=move(a.arrival),
            departure=move(a.departure),
            declared_departure=move(a.declared_departure) if a.declared_departure else None,
        )
        for a in items
    ]


@dataclass(frozen=True)
class Schedule:
    """What the simulator will replay, and what it left out (with the reason)."""

    arrivals: tuple[Arrival, ...]
    skipped: tuple[tuple[str, str], ...]


def schedule(arrivals: Iterable[Arrival], clock_start: datetime) -> Schedule:
    """Arrivals the simulation replays from `clock_start` on (see the module docstring)."""
    kept: list[Arrival] = []
    skipped: list[tuple[str, str]] = []
    for a in arrivals:
        if a.departure <= clock_start:
            skipped.append((a.session_id, "departed before the clock start"))
        elif a.arrival < clock_start:
            kept.append(replace(a, arrival=clock_start))
        else:
            kept.append(a)
    return Schedule(tuple(sorted(kept, key=lambda a: (a.arrival, a.session_id))), tuple(skipped))
