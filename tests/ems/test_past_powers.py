"""A token's history read through the planner's cache of past periods equals a fresh read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from ems.config import Settings
from ems.context import EmsContext
from ems.needs import PastPowerCache, load_stored_inputs
from ems.ocpi.partners import Caller
from ems.ocpi.schemas import Session, SessionPatch
from ems.ocpi.sessions import patch_session, put_session
from ems.store.models import ChargingSession, Partner
from tests.conftest import add_registered_partner
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


def test_cached_history_follows_periods_appended_later(tmp_path: Path) -> None:
    ctx = EmsContext.create(Settings(database_url=f"sqlite:///{tmp_path / 'p.db'}"))
    add_registered_partner(ctx)
    with ctx.db() as db:
        caller = Caller.of(db.get(Partner, 1), with_token_a=False)  # type: ignore[arg-type]
    past = DAY - timedelta(days=1)
    body = session(
        "past", status="COMPLETED", kwh=14.0, start_date_time=_stamp(past), last_updated=_stamp(past)
    )
    body["end_date_time"] = _stamp(past + timedelta(hours=9))
    body["charging_periods"] = _periods(past, [7.0, 7.0])
    put_session(ctx, caller, "NL", "CPO", "past", Session.model_validate(body))
    now = session("now", status="ACTIVE", kwh=0.0, start_date_time=_stamp(DAY), last_updated=_stamp(DAY))
    put_session(ctx, caller, "NL", "CPO", "now", Session.model_validate(now))
    cache = PastPowerCache()

    def history(with_cache: bool) -> list[bool]:
        with ctx.db() as db:
            rows = list(db.scalars(select(ChargingSession).where(ChargingSession.status == "ACTIVE")))
            stored = load_stored_inputs(db, rows, cache if with_cache else None)
        return [h.stopped_full for h in stored.history[rows[0].id]]

    assert history(True) == history(False) == [False]
    # A late meter update of the finished session: it stopped because the battery was full.
    late = _stamp(past + timedelta(hours=10))
    patch = {"charging_periods": _periods(past + timedelta(minutes=30), [0.1]), "last_updated": late}
    patch_session(ctx, caller, "NL", "CPO", "past", SessionPatch.model_validate(patch))
    assert history(True) == history(False) == [True]
    ctx.close()
