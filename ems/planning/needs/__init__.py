"""What each session still needs: energy, departure, power, phases — estimated, with sources.

`estimate` holds the ladder, pure, and why it is what it is; `evidence` turns what was metered,
and the profiles we sent, into the samples the ladder learns from. This module reads the rest
from the store in a fixed number of queries (`load_stored_inputs`), with the caches kept between
plans (`PastSessionCache`, `SentProfileCache`), and re-exports the other two: every name is
importable from `ems.planning.needs`. The reading is here rather than in a submodule so that
`HISTORY_TOKENS_PER_STATEMENT` is still the one its statements are cut by when patched here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, bindparam, select, union_all
from sqlalchemy.orm import Session as DbSession

from ems.planning.needs.estimate import (
    DECLARED_DEPARTURE_MARGIN,
    DECLARED_ENERGY_MARGIN,
    ESTIMATED_DEPARTURE_MARGIN,
    GOT_NOTHING_KWH,
    HISTORY_UPPER_RATIO,
    IDLE_POWER_KW,
    MIN_CHARGING_CURRENT_A,
    MIN_CURRENT_FOR_PHASES_A,
    MIN_WINDOW,
    OVERDUE_HORIZON,
    SELF_LIMITED_RATIO,
    SITE_HISTORY_MIN_SESSIONS,
    SURE_CURRENT_A,
    SURE_POWER_SHARE,
    Need,
    NeedInputs,
    PastSession,
    PeriodSample,
    Preference,
    SiteDefaults,
    estimate_need,
    learned_capacity_kwh,
    learned_defaults,
    learned_max_power_kw,
    learned_phases,
    max_drawn_kw,
    still_drawing_kw,
    stopped_by_itself,
    upper_energy_kwh,
)
from ems.planning.needs.evidence import (
    PROFILE_EARLY_START,
    PROFILE_SETTLE,
    SentProfile,
    StoredPeriod,
    _dimension,
    period_samples,
    read_until,
)
from ems.store.models import ChargingPeriod, ChargingPreference, ChargingSession, Partner, ProfileRequest

__all__ = [
    "DECLARED_DEPARTURE_MARGIN",
    "DECLARED_ENERGY_MARGIN",
    "ESTIMATED_DEPARTURE_MARGIN",
    "FULL_POWER_RATIO",
    "GOT_NOTHING_KWH",
    "HISTORY_SESSIONS",
    "HISTORY_TOKENS_PER_STATEMENT",
    "HISTORY_UPPER_RATIO",
    "IDLE_POWER_KW",
    "MIN_CHARGING_CURRENT_A",
    "MIN_CURRENT_FOR_PHASES_A",
    "MIN_WINDOW",
    "OVERDUE_HORIZON",
    "PROFILE_EARLY_START",
    "PROFILE_SETTLE",
    "SELF_LIMITED_RATIO",
    "SITE_HISTORY_MIN_SESSIONS",
    "SITE_HISTORY_SESSIONS",
    "SURE_CURRENT_A",
    "SURE_POWER_SHARE",
    "Need",
    "NeedInputs",
    "PastSession",
    "PastSessionCache",
    "PeriodSample",
    "Preference",
    "SentProfile",
    "SentProfileCache",
    "SiteDefaults",
    "StoredInputs",
    "StoredPeriod",
    "estimate_need",
    "learned_capacity_kwh",
    "learned_defaults",
    "learned_max_power_kw",
    "learned_phases",
    "load_stored_inputs",
    "max_drawn_kw",
    "parse_meter_id_preferences",
    "period_samples",
    "read_until",
    "site_past_sessions",
    "still_drawing_kw",
    "stopped_by_itself",
    "upper_energy_kwh",
]


# ---- reading the inputs from storage ---------------------------------------------------------


def parse_meter_id_preferences(meter_id: str | None) -> Preference | None:
    """The per-partner `meter_id` workaround: `departure=ISO;energy_kwh=N;soc_pct=N` (any subset).

    Some CPOs can pass driver input only through a free-text Session field; unknown keys and
    unparsable values are ignored rather than guessed.
    """
    if not meter_id or "=" not in meter_id:
        return None
    from ems.ocpi.datetimes import parse_ocpi_datetime

    values: dict[str, Any] = {}
    for part in meter_id.split(";"):
        key, _, raw = part.partition("=")
        key, raw = key.strip().lower(), raw.strip()
        try:
            if key == "departure":
                values["departure"] = parse_ocpi_datetime(raw)
            elif key == "energy_kwh":
                values["energy_need_kwh"] = max(0.0, float(raw))
            elif key == "soc_pct":
                values["soc_arrival_pct"] = min(100.0, max(0.0, float(raw)))
        except ValueError:
            continue
    return Preference(**values) if values else None


def _preference_of(row: Any) -> Preference:
    """A `ChargingPreference`, or a row of `_PREFERENCES`, as the estimate's `Preference`."""
    return Preference(
        departure=row.departure_time,
        energy_need_kwh=row.energy_need_kwh,
        soc_arrival_pct=row.soc_arrival_pct,
        battery_capacity_kwh=row.battery_capacity_kwh,
        target_soc_pct=row.target_soc_pct,
    )


@dataclass(frozen=True)
class StoredInputs:
    """What the store knows of a set of sessions, loaded in a fixed number of queries.

    A plan estimates every active session of a site; one query per session and kind made the
    snapshot, not the optimizer, the slowest part of planning at a hundred cars.
    """

    preferences: dict[int, Preference]
    periods: dict[int, list[StoredPeriod]]
    profiles: dict[int, list[SentProfile]]
    history: dict[int, list[PastSession]]


HISTORY_SESSIONS = 20
"""How many of a token's latest completed sessions at a partner make its history."""
HISTORY_TOKENS_PER_STATEMENT = 64
"""Tokens whose histories one statement reads (SQLite caps a compound SELECT at 500 parts)."""
FULL_POWER_RATIO = 0.05
"""A session whose last period drew under 5% of its peak stopped because the battery was full."""


# The statements of every plan's inputs, built once (building them cost about as much as
# running them).
# Rows, not ORM objects: a plan reads them all again, and an object costs more than its columns.
_METER_ID_PARTNERS = select(Partner.id).where(
    Partner.id.in_(bindparam("ids", expanding=True)), Partner.meter_id_preferences.is_(True)
)
_PREFERENCES = (
    select(
        ChargingPreference.session_pk,
        ChargingPreference.departure_time,
        ChargingPreference.energy_need_kwh,
        ChargingPreference.soc_arrival_pct,
        ChargingPreference.battery_capacity_kwh,
        ChargingPreference.target_soc_pct,
    )
    .where(ChargingPreference.session_pk.in_(bindparam("pks", expanding=True)))
    .order_by(ChargingPreference.received_at, ChargingPreference.id)
)
_PERIODS = (
    select(ChargingPeriod.session_pk, ChargingPeriod.start_date_time, ChargingPeriod.dimensions)
    .where(ChargingPeriod.session_pk.in_(bindparam("pks", expanding=True)))
    .order_by(ChargingPeriod.session_pk, ChargingPeriod.position)
)
_ACCEPTED_SETS = (
    select(ProfileRequest.id, ProfileRequest.session_pk, ProfileRequest.sent_at)
    .where(
        ProfileRequest.session_pk.in_(bindparam("pks", expanding=True)),
        ProfileRequest.kind == "set",
        ProfileRequest.response_result == "ACCEPTED",
    )
    .order_by(ProfileRequest.id)
)
_PROFILE_BODIES = select(ProfileRequest.id, ProfileRequest.charging_profile).where(
    ProfileRequest.id.in_(bindparam("ids", expanding=True))
)


def load_stored_inputs(
    db: DbSession,
    sessions: Sequence[ChargingSession],
    past_sessions: PastSessionCache | None = None,
    sent_profiles: SentProfileCache | None = None,
) -> StoredInputs:
    pks = [s.id for s in sessions]
    meter_id_partners = set(db.scalars(_METER_ID_PARTNERS, {"ids": list({s.partner_id for s in sessions})}))

    latest: dict[int, Any] = {}
    for row in db.execute(_PREFERENCES, {"pks": pks}):
        latest[row.session_pk] = row
    preferences: dict[int, Preference] = {}
    for session in sessions:
        if session.id in latest:
            preferences[session.id] = _preference_of(latest[session.id])
            continue
        parsed = (
            parse_meter_id_preferences(session.meter_id) if session.partner_id in meter_id_partners else None
        )
        preferences[session.id] = parsed or Preference()

    periods: dict[int, list[StoredPeriod]] = {pk: [] for pk in pks}
    for period in db.execute(_PERIODS, {"pks": pks}):
        periods[period.session_pk].append(period)

    profiles = (sent_profiles or SentProfileCache()).sent_profiles(db, pks)
    return StoredInputs(preferences, periods, profiles, _histories(db, sessions, past_sessions))


def _token_history_statement(n_tokens: int) -> CompoundSelect[int, str, int]:
    """The latest HISTORY_SESSIONS completed sessions of each of `n_tokens` tokens of one
    partner: one index range per token (`ix_charging_session_token_history`), so a plan reads
    the same few rows however many sessions the store has kept."""
    parts = []
    for i in range(n_tokens):
        latest = (
            select(
                ChargingSession.id.label("pk"),
                ChargingSession.token_uid.label("uid"),
                ChargingSession.revision.label("revision"),
            )
            .where(
                ChargingSession.partner_id == bindparam("partner_id"),
                ChargingSession.token_uid == bindparam(f"uid_{i}"),
                ChargingSession.status == "COMPLETED",
                ChargingSession.end_date_time.is_not(None),
            )
            .order_by(ChargingSession.start_date_time.desc(), ChargingSession.id.desc())
            .limit(HISTORY_SESSIONS)
            .subquery()
        )
        parts.append(select(latest.c.pk, latest.c.uid, latest.c.revision))
    return union_all(*parts)


_TOKEN_HISTORIES: dict[int, CompoundSelect[int, str, int]] = {}
"""The history statements by number of tokens, a power of two (the unused ones are NULL, which
no token matches): each is built and compiled once per process, and the first use of a size
cost 10 ms at 12 tokens, 90 ms at 100."""


def _token_histories(db: DbSession, partner_id: int, uids: Sequence[str]) -> Iterator[tuple[int, str, int]]:
    """(pk, uid, revision) of each token's history, latest first within a token."""
    for first in range(0, len(uids), HISTORY_TOKENS_PER_STATEMENT):
        chunk = uids[first : first + HISTORY_TOKENS_PER_STATEMENT]
        size = 1 << (len(chunk) - 1).bit_length()
        statement = _TOKEN_HISTORIES.get(size)
        if statement is None:
            statement = _TOKEN_HISTORIES[size] = _token_history_statement(size)
        params: dict[str, Any] = {f"uid_{i}": chunk[i] if i < len(chunk) else None for i in range(size)}
        params["partner_id"] = partner_id
        yield from ((pk, uid, revision) for pk, uid, revision in db.execute(statement, params))


# The rest of the history's statements, built once.
_PAST_FIGURES = select(
    ChargingSession.id, ChargingSession.start_date_time, ChargingSession.end_date_time, ChargingSession.kwh
).where(ChargingSession.id.in_(bindparam("pks", expanding=True)))
_PAST_SOC = (
    select(ChargingPreference.session_pk, ChargingPreference.soc_arrival_pct)
    .where(
        ChargingPreference.session_pk.in_(bindparam("pks", expanding=True)),
        ChargingPreference.soc_arrival_pct.is_not(None),
    )
    .order_by(ChargingPreference.id)
)
_PAST_PERIODS = (
    select(ChargingPeriod.session_pk, ChargingPeriod.dimensions)
    .where(ChargingPeriod.session_pk.in_(bindparam("pks", expanding=True)))
    .order_by(ChargingPeriod.session_pk, ChargingPeriod.position)
)


class PastSessionCache:
    """What a token's history takes of each past session, kept between plans.

    A token's history is read at every plan: its sessions' figures, stated states of charge
    and metered periods were most of a plan's reading. The receiver bumps a session's
    `revision` with every change to it, its periods or its preferences, and the statement
    that picks a history reads the revisions: what is kept is used while its revision is
    the stored one. Keep one per database (the planner keeps one).
    """

    def __init__(self, max_sessions: int = 50_000) -> None:
        self.max_sessions = max_sessions
        self._kept: dict[int, tuple[int, PastSession]] = {}
        self._lock = threading.Lock()

    def past_sessions(self, db: DbSession, revisions: dict[int, int]) -> dict[int, PastSession]:
        """The past sessions of these keys (with their revisions as just read); a key whose
        session is gone, or not finished, has none."""
        out: dict[int, PastSession] = {}
        missing: dict[int, int] = {}
        with self._lock:
            for pk, revision in revisions.items():
                kept = self._kept.get(pk)
                if kept is not None and kept[0] == revision:
                    out[pk] = kept[1]
                else:
                    missing[pk] = revision
        if missing:
            fresh = _read_past_sessions(db, list(missing))
            with self._lock:
                if len(self._kept) + len(fresh) > self.max_sessions:
                    self._kept.clear()
                for pk, past in fresh.items():
                    out[pk] = past
                    self._kept[pk] = (missing[pk], past)
        return out


class SentProfileCache:
    """Each accepted profile as read (`SentProfile`), kept between plans.

    A plan reads every profile it sent the site's active sessions, to judge their periods:
    decoding and reading them again at every plan cost more than the judging. A request's
    profile never changes once stored, so it is read once, by its id. Keep one per database
    (the planner keeps one).
    """

    def __init__(self, max_profiles: int = 100_000) -> None:
        self.max_profiles = max_profiles
        self._kept: dict[int, SentProfile] = {}
        self._lock = threading.Lock()

    def sent_profiles(self, db: DbSession, session_pks: list[int]) -> dict[int, list[SentProfile]]:
        """The accepted profiles of these sessions, in the order they were stored."""
        rows = db.execute(_ACCEPTED_SETS, {"pks": session_pks}).all()
        with self._lock:
            kept = {request_id: self._kept.get(request_id) for request_id, _, _ in rows}
        missing = {request_id: sent_at for request_id, _, sent_at in rows if kept[request_id] is None}
        if missing:
            fresh = {
                request_id: SentProfile.of(missing[request_id], body) if body else None
                for request_id, body in db.execute(_PROFILE_BODIES, {"ids": list(missing)})
            }
            with self._lock:
                if len(self._kept) + len(fresh) > self.max_profiles:
                    self._kept.clear()
                for request_id, profile in fresh.items():
                    kept[request_id] = profile
                    if profile is not None:
                        self._kept[request_id] = profile
        out: dict[int, list[SentProfile]] = {pk: [] for pk in session_pks}
        for request_id, session_pk, _ in rows:
            profile = kept[request_id]
            if profile is not None and session_pk is not None:
                out[session_pk].append(profile)
        return out


_PAST_DEPARTURES = (
    select(ChargingPreference.session_pk, ChargingPreference.departure_time)
    .where(
        ChargingPreference.session_pk.in_(bindparam("pks", expanding=True)),
        ChargingPreference.departure_time.is_not(None),
    )
    .order_by(ChargingPreference.id)
)
SITE_HISTORY_SESSIONS = 200
"""How many of a site's latest completed sessions its learned defaults come from."""


def site_past_sessions(db: DbSession, evse_uids: Sequence[str]) -> list[PastSession]:
    """The latest completed sessions on these EVSEs (a site's) that drew energy, with the
    departure their drivers declared: what its cars stay and take, and how early they leave
    against what they say (`learned_defaults`). A session that got nothing says how the planner did, not
    what the car needed."""
    rows = db.execute(
        select(
            ChargingSession.id,
            ChargingSession.start_date_time,
            ChargingSession.end_date_time,
            ChargingSession.kwh,
        )
        .where(
            ChargingSession.status == "COMPLETED",
            ChargingSession.evse_uid.in_(list(evse_uids)),
            ChargingSession.end_date_time.is_not(None),
            ChargingSession.kwh >= GOT_NOTHING_KWH,
        )
        .order_by(ChargingSession.id.desc())
        .limit(SITE_HISTORY_SESSIONS)
    )
    found = [(pk, start, end, kwh) for pk, start, end, kwh in rows if end is not None and end > start]
    declared: dict[int, datetime] = {}
    for session_pk, departure in db.execute(_PAST_DEPARTURES, {"pks": [pk for pk, _, _, _ in found]}):
        if departure is not None:
            declared[session_pk] = departure  # the latest one, by id
    return [
        PastSession(start, end, kwh, declared_departure=declared.get(pk)) for pk, start, end, kwh in found
    ]


def _read_past_sessions(db: DbSession, session_pks: Sequence[int]) -> dict[int, PastSession]:
    figures: dict[int, tuple[datetime, datetime, float]] = {}
    for pk, start, end, kwh in db.execute(_PAST_FIGURES, {"pks": list(session_pks)}):
        if end is not None:
            figures[pk] = (start, end, kwh)
    soc: dict[int, float] = {}
    for session_pk, soc_pct in db.execute(_PAST_SOC, {"pks": list(session_pks)}):
        if soc_pct is not None:
            soc[session_pk] = soc_pct
    powers: dict[int, list[float]] = {pk: [] for pk in figures}
    for session_pk, dimensions in db.execute(_PAST_PERIODS, {"pks": list(figures)}):
        powers[session_pk].append(_dimension(dimensions, "POWER") or 0.0)
    past: dict[int, PastSession] = {}
    for pk, (start, end, kwh) in figures.items():
        drawn = powers[pk]
        stopped_full = bool(drawn) and max(drawn) > 0 and drawn[-1] < FULL_POWER_RATIO * max(drawn)
        past[pk] = PastSession(start, end, kwh, soc.get(pk), stopped_full)
    return past


def _histories(
    db: DbSession, sessions: Sequence[ChargingSession], cache: PastSessionCache | None = None
) -> dict[int, list[PastSession]]:
    """Each session's token's last completed sessions at the same partner (the driver's habits).

    The database picks each token's sessions, then the chosen sessions' figures are read (or
    taken from `cache`); ties in start time are broken by the latest key. A token without a
    uid has no history.
    """
    wanted = {(s.partner_id, s.token_uid) for s in sessions}
    past_keys: dict[tuple[int, Any], list[int]] = {key: [] for key in wanted}
    revisions: dict[int, int] = {}
    for partner_id in {s.partner_id for s in sessions}:
        uids = sorted(uid for p, uid in wanted if p == partner_id and uid is not None)
        for pk, uid, revision in _token_histories(db, partner_id, uids):
            key = (partner_id, uid)
            if key in past_keys and len(past_keys[key]) < HISTORY_SESSIONS:
                past_keys[key].append(pk)
                revisions[pk] = revision
    past = (cache or PastSessionCache()).past_sessions(db, revisions)
    histories: dict[int, list[PastSession]] = {}
    for session in sessions:
        histories[session.id] = [
            past[pk]
            for pk in past_keys[(session.partner_id, session.token_uid)]
            if pk != session.id and pk in past
        ]
    return histories
