"""Reading a session log for replay (formats §3): `sessions.csv` or recorded OCPI JSON Lines.

Both forms become the same `LoggedSession` values, the truth the simulated vehicles follow
(arrival, departure, energy they would take, power they can draw) and what the driver
declared (possibly wrong, possibly nothing), so the EMS estimates exactly as it would live.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ems.sites.series import SeriesError, format_number, parse_timestamp

CSV_COLUMNS = (
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
SITE_COLUMN = "site"
"""Optional: the site id of each row, for one log of a whole group (`ems replay --group`); not
written by `sessions_csv_text`, so a site's own log stays exactly formats §3."""
REQUIRED_COLUMNS = ("session_id", "evse_uid", "connector_id", "arrival", "departure", "energy_kwh")
NOMINAL_PHASE_VOLTAGE_V = 230.0
"""Used only to tell 1- from 3-phase vehicles in recorded OCPI traffic (POWER vs CURRENT)."""


class LogError(ValueError):
    """A session log refused; the message names the file, row and column."""


@dataclass(frozen=True)
class LoggedSession:
    """One session as it really happened, and what the driver told the EMS."""

    session_id: str
    evse_uid: str
    connector_id: str
    token_uid: str
    arrival: datetime
    departure: datetime
    energy_kwh: float
    max_power_kw: float | None = None
    vehicle_phases: int = 3
    declared_departure: datetime | None = None
    declared_energy_kwh: float | None = None
    soc_arrival_pct: float | None = None
    battery_capacity_kwh: float | None = None
    site_id: str | None = None
    """The log's `site` column, when it has one (a group's log)."""


def _number(cell: str, where: str, *, minimum: float | None = 0.0) -> float | None:
    text = cell.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise LogError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LogError(f"{where}: {text!r} is not finite")
    if minimum is not None and value < minimum:
        raise LogError(f"{where}: {value} is below {minimum}")
    return value


def _time(cell: str, where: str) -> datetime | None:
    if not cell.strip():
        return None
    try:
        return parse_timestamp(cell, where)
    except SeriesError as exc:
        raise LogError(str(exc)) from None


def parse_sessions_csv(text: str, source: str = "sessions.csv") -> list[LoggedSession]:
    """The sessions of a CSV log, sorted by arrival; `LogError` on the first bad cell."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise LogError(
            f"{source}: empty file (expected a header with {', '.join(REQUIRED_COLUMNS)})"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise LogError(f"{source}: column(s) {missing} missing from the header")
    index = {c: header.index(c) for c in (*CSV_COLUMNS, SITE_COLUMN) if c in header}
    out: list[LoggedSession] = []
    seen: set[tuple[str, str]] = set()
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise LogError(f"{source} row {line_no}: {len(row)} cells, the header has {len(header)}")

        def cell(name: str, row: list[str] = row) -> str:
            return row[index[name]] if name in index else ""

        def where(name: str, line_no: int = line_no) -> str:
            return f"{source} row {line_no} column {name}"

        session_id = cell("session_id").strip()
        if not session_id:
            raise LogError(f"{where('session_id')}: empty")
        key = (cell(SITE_COLUMN).strip(), session_id)  # a group's log: ids are per site
        if key in seen:
            raise LogError(f"{where('session_id')}: session {session_id!r} appears twice")
        seen.add(key)
        for name in ("evse_uid", "connector_id"):
            if not cell(name).strip():
                raise LogError(f"{where(name)}: empty")
        arrival = _time(cell("arrival"), where("arrival"))
        departure = _time(cell("departure"), where("departure"))
        energy = _number(cell("energy_kwh"), where("energy_kwh"))
        if arrival is None or departure is None or energy is None:
            empty = "arrival" if arrival is None else "departure" if departure is None else "energy_kwh"
            raise LogError(f"{where(empty)}: empty")
        if departure < arrival:
            raise LogError(f"{where('departure')}: {cell('departure').strip()} is before the arrival")
        phases_value = _number(cell("vehicle_phases"), where("vehicle_phases"))
        phases = 3 if phases_value is None else int(phases_value)
        if phases_value is not None and (phases_value != phases or phases not in (1, 3)):
            raise LogError(f"{where('vehicle_phases')}: must be 1 or 3, got {cell('vehicle_phases').strip()}")
        max_power_kw = _number(cell("max_power_kw"), where("max_power_kw"))
        if max_power_kw == 0:
            raise LogError(f"{where('max_power_kw')}: must be positive (leave it empty when unknown)")
        soc = _number(cell("soc_arrival_pct"), where("soc_arrival_pct"))
        if soc is not None and soc > 100:
            raise LogError(f"{where('soc_arrival_pct')}: {soc} is above 100")
        out.append(
            LoggedSession(
                session_id=session_id,
                evse_uid=cell("evse_uid").strip(),
                connector_id=cell("connector_id").strip(),
                token_uid=cell("token_uid").strip() or session_id,
                arrival=arrival,
                departure=departure,
                energy_kwh=energy,
                max_power_kw=max_power_kw,
                vehicle_phases=phases,
                declared_departure=_time(cell("declared_departure"), where("declared_departure")),
                declared_energy_kwh=_number(cell("declared_energy_kwh"), where("declared_energy_kwh")),
                soc_arrival_pct=soc,
                battery_capacity_kwh=_number(cell("battery_capacity_kwh"), where("battery_capacity_kwh")),
                site_id=cell(SITE_COLUMN).strip() or None,
            )
        )
    if not out:
        raise LogError(f"{source}: no sessions")
    return sorted(out, key=lambda s: (s.arrival, s.session_id))


@dataclass
class _Recorded:
    """What recorded OCPI traffic tells about one session, gathered message by message."""

    session_id: str
    evse_uid: str = ""
    connector_id: str = ""
    token_uid: str = ""
    start: datetime | None = None
    end: datetime | None = None
    kwh: float = 0.0
    max_power_kw: float | None = None
    phases: int = 3
    declared_departure: datetime | None = None
    declared_energy_kwh: float | None = None


def _periods_stats(record: _Recorded, periods: Iterable[Any]) -> None:
    for period in periods:
        dims = {str(d.get("type")): float(d.get("volume", 0.0)) for d in period.get("dimensions", [])}
        power = dims.get("POWER")
        if power is not None and power > 0:
            record.max_power_kw = max(record.max_power_kw or 0.0, power)
            current = dims.get("CURRENT")
            if current is not None and current > 0:
                ratio = power * 1000.0 / (NOMINAL_PHASE_VOLTAGE_V * current)
                record.phases = 1 if ratio < 2.0 else 3


def parse_ocpi_jsonl(text: str, source: str = "sessions.jsonl") -> list[LoggedSession]:
    """Sessions from recorded OCPI pushes (PUT/PATCH of Sessions, PUT of charging_preferences).

    The truth is what the traffic shows: start and end, the final `kwh` as the energy taken,
    the highest POWER seen as the vehicle's maximum (none seen: the connector's), phases from
    POWER/CURRENT. A session never completed in the log ends at its last message.
    """
    records: dict[str, _Recorded] = {}
    last_at: dict[str, datetime] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source} line {line_no}"
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(msg, dict):
            raise LogError(f"{where}: expected an object with at, method, path, body")
        method, path, body = msg.get("method"), msg.get("path"), msg.get("body")
        if method not in ("PUT", "PATCH") or not isinstance(path, str) or not isinstance(body, dict):
            raise LogError(f"{where}: expected method PUT or PATCH, a path and an object body")
        at = _time(str(msg.get("at", "")), f"{where} field at")
        if at is None:
            raise LogError(f"{where}: field at is missing")
        parts = [p for p in path.split("/") if p]
        if "sessions" not in parts:
            continue
        rest = parts[parts.index("sessions") + 1 :]
        if len(rest) < 3:
            raise LogError(f"{where}: path {path!r} lacks country/party/session id")
        session_id = rest[2]
        record = records.setdefault(session_id, _Recorded(session_id))
        last_at[session_id] = max(at, last_at.get(session_id, at))
        if len(rest) >= 4 and rest[3] == "charging_preferences":
            departure = body.get("departure_time")
            record.declared_departure = (
                _time(str(departure), f"{where} departure_time") if departure else None
            )
            energy = body.get("energy_need")
            record.declared_energy_kwh = None if energy is None else float(energy)
            continue
        for key, attr in (("evse_uid", "evse_uid"), ("connector_id", "connector_id")):
            if body.get(key):
                setattr(record, attr, str(body[key]))
        token = body.get("cdr_token")
        if isinstance(token, dict) and token.get("uid"):
            record.token_uid = str(token["uid"])
        if body.get("start_date_time"):
            record.start = _time(str(body["start_date_time"]), f"{where} start_date_time")
        if body.get("end_date_time"):
            record.end = _time(str(body["end_date_time"]), f"{where} end_date_time")
        if body.get("kwh") is not None:
            record.kwh = max(record.kwh, float(body["kwh"]))
        _periods_stats(record, body.get("charging_periods") or [])
    out = []
    for session_id, r in records.items():
        if r.start is None or not r.evse_uid or not r.connector_id:
            raise LogError(
                f"{source}: session {session_id!r} has no PUT with start, evse_uid and connector_id"
            )
        end = r.end or last_at[session_id]
        out.append(
            LoggedSession(
                session_id=session_id,
                evse_uid=r.evse_uid,
                connector_id=r.connector_id,
                token_uid=r.token_uid or session_id,
                arrival=r.start,
                departure=max(end, r.start),
                energy_kwh=r.kwh,
                max_power_kw=r.max_power_kw,
                vehicle_phases=r.phases,
                declared_departure=r.declared_departure,
                declared_energy_kwh=r.declared_energy_kwh,
            )
        )
    if not out:
        raise LogError(f"{source}: no sessions")
    return sorted(out, key=lambda s: (s.arrival, s.session_id))


def read_session_log(path: str | Path) -> list[LoggedSession]:
    """A log file: JSON Lines if its first non-blank character is `{`, CSV otherwise."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LogError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise LogError(f"{p}: not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        return parse_ocpi_jsonl(text, str(p))
    return parse_sessions_csv(text, str(p))


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(timespec="seconds")


def _opt(value: float | None) -> str:
    return "" if value is None else format_number(value)


def sessions_csv_text(sessions: Iterable[LoggedSession]) -> str:
    """`sessions.csv` (formats §3): the exact header, ISO 8601 times with their offset, numbers
    to 3 decimals, an empty cell for what the driver did not declare."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for s in sessions:
        writer.writerow(
            (
                s.session_id,
                s.evse_uid,
                s.connector_id,
                s.token_uid,
                _iso(s.arrival),
                _iso(s.departure),
                format_number(s.energy_kwh),
                _opt(s.max_power_kw),
                str(s.vehicle_phases),
                _iso(s.declared_departure),
                _opt(s.declared_energy_kwh),
                _opt(s.soc_arrival_pct),
                _opt(s.battery_capacity_kwh),
            )
        )
    return out.getvalue()


def write_sessions_csv(sessions: Iterable[LoggedSession], path: str | Path) -> None:
    """Write a log in the §3 CSV form (`ems synth`, tests)."""
    Path(path).write_text(sessions_csv_text(sessions), encoding="utf-8")
