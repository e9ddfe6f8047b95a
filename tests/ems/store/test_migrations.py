"""Migrations on a database holding data: what an upgrade derives from stored rows."""

from __future__ import annotations

from alembic import command
from sqlalchemy import select

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.schemas import Session
from ems.ocpi.sessions import put_session
from ems.planning.needs import load_stored_inputs
from ems.store.migrate import alembic_config, upgrade
from ems.store.models import ChargingSession
from tests.conftest import add_registered_partner, registered_caller
from tests.support.ocpi_objects import session


def test_token_uid_is_filled_from_the_stored_tokens(database_url: str) -> None:
    """0007 copies each stored session's `cdr_token.uid` into the column its history is read by:
    a server upgraded in place keeps its drivers' habits."""
    url = database_url
    ctx = EmsContext.create(Settings(database_url=url))
    add_registered_partner(ctx)
    caller = registered_caller(ctx)
    past = session("past", status="COMPLETED", kwh=11.0, start_date_time="2026-05-31T08:00:00Z")
    past["end_date_time"] = "2026-05-31T17:00:00Z"
    past["last_updated"] = "2026-05-31T17:00:00Z"
    put_session(ctx, caller, "NL", "CPO", "past", Session.model_validate(past))
    put_session(ctx, caller, "NL", "CPO", "now", Session.model_validate(session("now")))

    command.downgrade(alembic_config(url), "0006")
    upgrade(ctx.engine)

    with ctx.db() as db:
        rows = {row.session_id: row for row in db.scalars(select(ChargingSession))}
        assert {sid: row.token_uid for sid, row in rows.items()} == {"past": "TOK1", "now": "TOK1"}
        history = load_stored_inputs(db, [rows["now"]]).history[rows["now"].id]
    assert [h.energy_kwh for h in history] == [11.0]
    ctx.close()
