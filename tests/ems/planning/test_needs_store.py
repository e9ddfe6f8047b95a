"""What the planner reads of a session from the store: preferences, periods, profiles, history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest import MonkeyPatch
from sqlalchemy import select

from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.partners import Caller
from ems.ocpi.schemas import ChargingPreferences, Session, SessionPatch
from ems.ocpi.sessions import patch_session, put_charging_preferences, put_session
from ems.planning import needs
from ems.planning.needs import Preference, load_stored_inputs
from ems.planning.planner import Planner
from ems.store.db import transaction
from ems.store.models import ChargingPreference, ChargingSession, Partner, ProfileRequest
from tests.conftest import add_registered_partner, registered_caller
from tests.support.ocpi_objects import charging_period, session

OFFICE = Path(__file__).resolve().parents[3] / "examples" / "sites" / "office-pv.json"


def test_history_preferences_and_meter_id(database_url: str) -> None:
    ctx = EmsContext.create(Settings(database_url=database_url))
    add_registered_partner(ctx)
    with transaction(ctx.db) as db:
        partner = db.get(Partner, 1)
        assert partner is not None
        partner.meter_id_preferences = True
        caller = Caller.of(partner, with_token_a=False)
    day = datetime(2026, 6, 1, 8, tzinfo=UTC)

    def push(
        sid: str, start: datetime, status: str, kwh: float, powers: list[float], **extra: object
    ) -> None:
        periods = [
            charging_period((start + timedelta(minutes=15 * i)).strftime("%Y-%m-%dT%H:%M:%SZ"), p / 4)
            | {"dimensions": [{"type": "POWER", "volume": p}]}
            for i, p in enumerate(powers)
        ]
        stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = session(sid, status=status, kwh=kwh, start_date_time=stamp, last_updated=stamp, **extra)
        if status == "COMPLETED":
            body["end_date_time"] = (start + timedelta(hours=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body["charging_periods"] = periods
        put_session(ctx, caller, "NL", "CPO", sid, Session.model_validate(body))

    # Two past days of the same token: the first charged until the battery was full.
    push("d1", day - timedelta(days=2), "COMPLETED", 20.0, [7.0, 7.0, 0.0])
    push("d2", day - timedelta(days=1), "COMPLETED", 12.0, [7.0, 7.0, 7.0])
    with transaction(ctx.db) as db:
        d1 = db.scalars(select(ChargingSession.id).where(ChargingSession.session_id == "d1")).one()
        db.add(
            ChargingPreference(session_pk=d1, source="driver", profile_type="REGULAR", soc_arrival_pct=50.0)
        )
    push("today", day, "ACTIVE", 1.0, [7.0], meter_id="departure=2026-06-01T17:00:00Z;energy_kwh=18")
    push("other", day, "ACTIVE", 0.0, [], evse_uid="FR*INE*E0002")
    put_charging_preferences(
        ctx,
        caller,
        "NL",
        "CPO",
        "other",
        ChargingPreferences.model_validate({"profile_type": "GREEN", "energy_need": 9}),
        now=day,
    )

    with ctx.db() as db:
        rows = list(db.scalars(select(ChargingSession).where(ChargingSession.status == "ACTIVE")))
        stored = load_stored_inputs(db, rows)
    by_id = {row.session_id: row.id for row in rows}
    today, other = by_id["today"], by_id["other"]

    assert stored.preferences[today] == Preference(
        departure=datetime(2026, 6, 1, 17, tzinfo=UTC), energy_need_kwh=18.0
    )
    assert stored.preferences[other].energy_need_kwh == 9.0
    assert len(stored.periods[today]) == 1 and stored.periods[other] == []
    history = stored.history[today]
    assert [h.energy_kwh for h in history] == [12.0, 20.0]
    assert [h.stopped_full for h in history] == [False, True]
    assert history[1].soc_arrival_pct == 50.0
    ctx.close()


def test_history_is_each_tokens_latest_completed_sessions(
    database_url: str, monkeypatch: MonkeyPatch
) -> None:
    """Only that token's, only completed, latest first, at most HISTORY_SESSIONS; read in
    several statements when many tokens plug in at once; a PATCH moving a session to another
    token moves it to that token's history."""
    monkeypatch.setattr(needs, "HISTORY_TOKENS_PER_STATEMENT", 3)  # 3 tokens (padded to 4), then 2
    ctx = EmsContext.create(Settings(database_url=database_url))
    add_registered_partner(ctx)
    caller = registered_caller(ctx)
    day = datetime(2026, 6, 1, 8, tzinfo=UTC)

    def push(sid: str, uid: str, start: datetime, status: str, kwh: float) -> None:
        stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = session(sid, status=status, kwh=kwh, start_date_time=stamp, last_updated=stamp)
        body["cdr_token"] = body["cdr_token"] | {"uid": uid}
        if status == "COMPLETED":
            body["end_date_time"] = (start + timedelta(hours=8)).strftime("%Y-%m-%dT%H:%M:%SZ")
        put_session(ctx, caller, "NL", "CPO", sid, Session.model_validate(body))

    days_of_a = needs.HISTORY_SESSIONS + 3
    for i in range(days_of_a):  # kWh tell the days apart: 1 the oldest, days_of_a the latest
        push(f"a{i}", "A", day - timedelta(days=days_of_a - i), "COMPLETED", float(i + 1))
    push("b-old", "B", day - timedelta(days=40), "COMPLETED", 100.0)
    push("b-late", "B", day - timedelta(hours=30), "COMPLETED", 101.0)
    push("b-void", "B", day - timedelta(hours=20), "INVALID", 102.0)
    push("moved", "C", day - timedelta(hours=10), "COMPLETED", 200.0)
    patch = {"cdr_token": session()["cdr_token"] | {"uid": "D"}, "last_updated": "2026-06-01T07:00:00Z"}
    patch_session(ctx, caller, "NL", "CPO", "moved", SessionPatch.model_validate(patch))
    for uid in "ABCDE":
        push(f"now-{uid}", uid, day, "ACTIVE", 0.0)

    with ctx.db() as db:
        rows = list(db.scalars(select(ChargingSession).where(ChargingSession.status == "ACTIVE")))
        stored = load_stored_inputs(db, rows)
    kwh = {row.token_uid: [h.energy_kwh for h in stored.history[row.id]] for row in rows}
    assert kwh == {
        "A": [float(i) for i in range(days_of_a, days_of_a - needs.HISTORY_SESSIONS, -1)],
        "B": [101.0, 100.0],
        "C": [],
        "D": [200.0],
        "E": [],
    }
    ctx.close()


def test_a_site_past_sessions_are_its_completed_ones_that_drew(database_url: str) -> None:
    ctx = EmsContext.create(Settings(database_url=database_url))
    add_registered_partner(ctx)
    with transaction(ctx.db) as db:
        partner = db.get(Partner, 1)
        assert partner is not None
        caller = Caller.of(partner, with_token_a=False)
    day = datetime(2026, 6, 1, 8, tzinfo=UTC)
    for i, (status, kwh, evse) in enumerate(
        [
            ("COMPLETED", 6.0, "FR*INE*E0001"),
            ("COMPLETED", 0.0, "FR*INE*E0001"),  # got nothing: says how we did, not what it needed
            ("COMPLETED", 9.0, "FR*OTHER*E9"),  # another site's EVSE
            ("ACTIVE", 3.0, "FR*INE*E0001"),  # not over yet
            ("COMPLETED", 4.0, "FR*INE*E0002"),
        ]
    ):
        start = day + timedelta(hours=i)
        stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = session(
            f"s{i}", status=status, kwh=kwh, start_date_time=stamp, last_updated=stamp, evse_uid=evse
        )
        if status == "COMPLETED":
            body["end_date_time"] = (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
        put_session(ctx, caller, "NL", "CPO", f"s{i}", Session.model_validate(body))
    with transaction(ctx.db) as db:
        s0 = db.scalars(select(ChargingSession.id).where(ChargingSession.session_id == "s0")).one()
        for hours in (1.5, 2.5):  # the driver changed their mind: the latest declaration counts
            db.add(
                ChargingPreference(
                    session_pk=s0,
                    source="driver",
                    profile_type="REGULAR",
                    departure_time=day + timedelta(hours=hours),
                )
            )
    with ctx.db() as db:
        past = needs.site_past_sessions(db, ["FR*INE*E0001", "FR*INE*E0002"])
    # newest first, both EVSEs of the site, two-hour stays, with what was declared
    assert [p.energy_kwh for p in past] == [4.0, 6.0]
    assert all(p.end - p.start == timedelta(hours=2) for p in past)
    assert past[0].declared_departure is None
    declared = past[1].declared_departure
    assert declared is not None and declared.replace(tzinfo=None) == (day + timedelta(hours=2.5)).replace(
        tzinfo=None
    )
    ctx.close()


def test_the_planner_judges_the_latest_period_until_the_cpo_read_it(database_url: str) -> None:
    """The CPO read the quarter hour from 8:00 at 8:15 (its `last_updated`): nothing drawn, our
    profile holding the car at 0 A until 8:15 and at 16 A after. A plan at 8:30 judges that
    period until 8:15, not until 8:30: the car is not taken for full, its declared need stays."""
    ctx = EmsContext.create(Settings(database_url=database_url))
    sites.import_site(ctx, json.loads(OFFICE.read_text()))
    add_registered_partner(ctx)
    caller = registered_caller(ctx)
    day = datetime(2026, 6, 1, 8, tzinfo=UTC)

    def at(minutes: int) -> str:
        return (day + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")

    put_session(ctx, caller, "NL", "CPO", "s1", Session.model_validate(session(
        "s1", start_date_time=at(0), last_updated=at(0), evse_uid="FR*INE*E0001"
    )))  # fmt: skip
    put_charging_preferences(
        ctx,
        caller,
        "NL",
        "CPO",
        "s1",
        ChargingPreferences.model_validate(
            {"profile_type": "REGULAR", "energy_need": 10, "departure_time": at(600)}
        ),
        now=day,
    )
    with transaction(ctx.db) as db:
        pk = db.scalars(select(ChargingSession.id).where(ChargingSession.session_id == "s1")).one()
        db.add(
            ProfileRequest(
                request_id="r1",
                partner_id=1,
                session_pk=pk,
                session_id="s1",
                kind="set",
                sent_at=day - timedelta(minutes=1),
                response_result="ACCEPTED",
                charging_profile={
                    "start_date_time": at(0),
                    "charging_rate_unit": "A",
                    "charging_profile_period": [
                        {"start_period": 0, "limit": 0.0},
                        {"start_period": 900, "limit": 16.0},
                    ],
                },
            )
        )
    idle = charging_period(at(0), 0.0) | {"dimensions": [{"type": "POWER", "volume": 0.0}]}
    patch_session(ctx, caller, "NL", "CPO", "s1", SessionPatch.model_validate(
        {"kwh": 0.0, "charging_periods": [idle], "last_updated": at(15)}
    ))  # fmt: skip

    [planned] = Planner(ctx).snapshot("office-pv", day + timedelta(minutes=30)).sessions
    assert planned.need.energy_source == "declared"
    assert planned.need.energy_needed_kwh + planned.need.energy_extra_kwh == pytest.approx(12.5)
