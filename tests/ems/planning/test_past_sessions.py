"""What a plan reads through the planner's caches (past sessions, sent profiles) equals a fresh read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.drivers.view import DriverPreferences, save_preferences
from ems.ocpi.schemas import ChargingPreferences, Session, SessionPatch
from ems.ocpi.sessions import patch_session, put_charging_preferences, put_session
from ems.planning.needs import PastSessionCache, SentProfileCache, load_stored_inputs
from ems.store.db import transaction
from ems.store.models import ChargingSession, ProfileRequest
from tests.conftest import add_registered_partner, ems_with_active_sessions, registered_caller
from tests.support.ocpi_objects import session

DAY = datetime(2026, 6, 1, 8, tzinfo=UTC)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _periods(start: datetime, powers: list[float]) -> list[dict[str, object]]:
    return [
        {
            "start_date_time": _stamp(start + timedelta(minutes=15 * i)),
            "dimensions": [{"type": "ENERGY", "volume": p / 4}, {"type": "POWER", "volume": p}],
        }
        for i, p in enumerate(powers)
    ]


def test_cached_history_follows_every_later_change(database_url: str) -> None:
    """A late meter update, a corrected energy, a whole new PUT: each bumps the session's
    revision, and the cached history follows it."""
    ctx = EmsContext.create(Settings(database_url=database_url))
    add_registered_partner(ctx)
    caller = registered_caller(ctx)
    past = DAY - timedelta(days=1)
    body = session(
        "past", status="COMPLETED", kwh=14.0, start_date_time=_stamp(past), last_updated=_stamp(past)
    )
    body["end_date_time"] = _stamp(past + timedelta(hours=9))
    body["charging_periods"] = _periods(past, [7.0, 7.0])
    put_session(ctx, caller, "NL", "CPO", "past", Session.model_validate(body))
    now = session("now", status="ACTIVE", kwh=0.0, start_date_time=_stamp(DAY), last_updated=_stamp(DAY))
    put_session(ctx, caller, "NL", "CPO", "now", Session.model_validate(now))
    with ctx.db() as db:
        now_pk = db.scalars(select(ChargingSession.id).where(ChargingSession.session_id == "now")).one()
    cache = PastSessionCache()

    def history(with_cache: bool) -> list[tuple[float, bool]]:
        with ctx.db() as db:
            rows = list(db.scalars(select(ChargingSession).where(ChargingSession.status == "ACTIVE")))
            stored = load_stored_inputs(db, rows, cache if with_cache else None)
        return [(h.energy_kwh, h.stopped_full) for h in stored.history[rows[0].id]]

    def revision(session_id: str = "past") -> int:
        with ctx.db() as db:
            query = select(ChargingSession.revision).where(ChargingSession.session_id == session_id)
            return db.scalars(query).one()

    assert history(True) == history(False) == [(14.0, False)]
    assert revision() == 0
    # A late meter update of the finished session: it stopped because the battery was full.
    late = _stamp(past + timedelta(hours=10))
    patch = {"charging_periods": _periods(past + timedelta(minutes=30), [0.1]), "last_updated": late}
    patch_session(ctx, caller, "NL", "CPO", "past", SessionPatch.model_validate(patch))
    assert history(True) == history(False) == [(14.0, True)]
    # The CPO corrects the energy, with the same last_updated (not older: applied).
    patch = {"kwh": 14.5, "last_updated": late}
    patch_session(ctx, caller, "NL", "CPO", "past", SessionPatch.model_validate(patch))
    assert history(True) == history(False) == [(14.5, True)]
    # A PUT replaces the session and its periods.
    body["kwh"], body["last_updated"] = 15.0, _stamp(past + timedelta(hours=11))
    put_session(ctx, caller, "NL", "CPO", "past", Session.model_validate(body))
    assert history(True) == history(False) == [(15.0, False)]
    assert revision() == 3
    # Preferences change a session too (a history reads the stated state of charge).
    prefs = ChargingPreferences.model_validate({"profile_type": "REGULAR", "energy_need": 9})
    put_charging_preferences(ctx, caller, "NL", "CPO", "now", prefs, now=DAY)
    save_preferences(ctx, now_pk, DriverPreferences(DAY + timedelta(hours=8), 40.0, None, None))
    assert revision("now") == 2
    ctx.close()


def test_cached_profiles_follow_every_answer(tmp_path: Path) -> None:
    """The profiles a plan reads through the planner's cache equal a fresh read: a new one, one
    answered only later, one refused, and one of another session."""
    ctx, _ = ems_with_active_sessions(tmp_path / "p.db", ("a", "b"), DAY)
    with ctx.db() as db:
        pks = {row.session_id: row.id for row in db.scalars(select(ChargingSession))}
    cache = SentProfileCache()

    def send(sid: str, minutes: int, limit_a: float, answer: str | None) -> int:
        at = DAY + timedelta(minutes=minutes)
        profile = {
            "start_date_time": _stamp(at),
            "charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": 0, "limit": limit_a}],
        }
        with transaction(ctx.db) as db:
            request = ProfileRequest(
                request_id=str(uuid.uuid4()),
                partner_id=1,
                session_pk=pks[sid],
                session_id=sid,
                kind="set",
                charging_profile=profile,
                sent_at=at,
                response_result=answer,
            )
            db.add(request)
            db.flush()
            return request.id

    def read(with_cache: bool) -> dict[str, list[tuple[datetime, float | None]]]:
        with ctx.db() as db:
            profiles = (cache if with_cache else SentProfileCache()).sent_profiles(db, list(pks.values()))
        at = (DAY + timedelta(hours=2)).timestamp()
        return {sid: [(p.sent_at, p.limit(at)) for p in profiles[pk]] for sid, pk in pks.items()}

    send("a", 0, 16.0, "ACCEPTED")
    assert read(True) == read(False) == {"a": [(DAY, 16.0)], "b": []}
    late = send("a", 15, 10.0, None)
    send("a", 30, 8.0, "REJECTED")
    send("b", 30, 6.0, "ACCEPTED")
    assert read(True) == read(False)
    assert [limit for _, limit in read(True)["a"]] == [16.0]
    with transaction(ctx.db) as db:
        db.get(ProfileRequest, late).response_result = "ACCEPTED"  # type: ignore[union-attr]
    assert read(True) == read(False)
    assert [limit for _, limit in read(True)["a"]] == [16.0, 10.0]
    assert [limit for _, limit in read(True)["b"]] == [6.0]
    ctx.close()
