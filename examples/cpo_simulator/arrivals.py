"""The session log (formats.md §3, `sessions.csv`) turned into vehicle arrivals in simulated time.

The log holds the truth (arrival, departure, true energy need, vehicle power and phases) and what
the driver declared (`declared_*`), which the CPO forwards to the EMS as charging preferences.

Arrivals relative to the clock start (see `schedule`): a session that left before the clock
starts is skipped; one that arrived before but leaves after is *shifted* to plug in at the clock
start with its whole energy need (so a demo started mid-day still shows the morning's cars).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ems.replay.log import LogError, LoggedSession
from ems.replay.log import read_session_log as read_log
from grid_models import Site

Arrival = LoggedSession
"""One vehicle visit: the truth from the log plus what the driver declared (aware times)."""


class SessionLogError(ValueError):
    """A session log the simulator cannot replay; the message names the line and the column."""


def read_session_log(path: str | Path, site: Site) -> list[Arrival]:
    """Read a log as `ems replay` reads it (§3 CSV or recorded OCPI JSON Lines), then check it
    against the simulated site; refuse it whole with the first problem found.

    Checked here beyond the log's own rules: connectors that exist in the site, and no two
    visits overlapping on one connector (a log of what really happened cannot have them).
    """
    try:
        arrivals = read_log(path)
    except LogError as exc:
        raise SessionLogError(str(exc)) from None
    known = {(c.evse_uid, c.connector_id) for c in site.connectors()}
    for a in arrivals:
        if (a.evse_uid, a.connector_id) not in known:
            raise SessionLogError(
                f"{path}: session {a.session_id}: {a.evse_uid}/{a.connector_id} is no connector"
                f" of site {site.id}"
            )
    _check_disjoint(arrivals)
    return arrivals


def _check_disjoint(arrivals: Sequence[Arrival]) -> None:
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
