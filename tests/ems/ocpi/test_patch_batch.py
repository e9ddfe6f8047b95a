"""`patch_sessions` stores what the same PATCHes one by one store, whole or not at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ems.core.context import EmsContext
from ems.core.events import SessionChange, SessionEvent
from ems.ocpi.errors import OcpiError
from ems.ocpi.partners import Caller
from ems.ocpi.schemas import SessionPatch
from ems.ocpi.sessions import get_session, patch_session, patch_sessions
from tests.conftest import ems_with_active_sessions

DAY = datetime(2026, 6, 1, 8, tzinfo=UTC)


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ems(tmp_path: Path, name: str) -> tuple[EmsContext, Caller]:
    return ems_with_active_sessions(tmp_path / name, ("a", "b"), DAY)


def _patches() -> list[tuple[str, SessionPatch]]:
    t1 = DAY + timedelta(minutes=15)
    period = {"start_date_time": _stamp(DAY), "dimensions": [{"type": "ENERGY", "volume": 1.75}]}
    meter: dict[str, Any] = {"kwh": 1.75, "charging_periods": [period], "last_updated": _stamp(t1)}
    done = {"status": "COMPLETED", "end_date_time": _stamp(t1), "last_updated": _stamp(t1)}
    return [
        ("a", SessionPatch.model_validate(meter)),
        ("b", SessionPatch.model_validate(meter)),
        ("b", SessionPatch.model_validate(done)),
        ("a", SessionPatch.model_validate(meter)),  # a retry: its period is not stored twice
    ]


def test_batch_equals_one_by_one_and_publishes_after_commit(tmp_path: Path) -> None:
    one, one_caller = _ems(tmp_path, "one.db")
    batch, batch_caller = _ems(tmp_path, "batch.db")
    for sid, patch in _patches():
        patch_session(one, one_caller, "NL", "CPO", sid, patch)
    seen: list[tuple[str, SessionChange, str]] = []

    def on_event(event: object) -> None:
        if isinstance(event, SessionEvent):
            # Published after the commit: what the event announces is already readable.
            stored = get_session(batch, batch_caller, "NL", "CPO", event.key.session_id)
            seen.append((event.key.session_id, event.change, stored["status"]))

    batch.bus.subscribe(on_event)
    outcomes = patch_sessions(batch, batch_caller, "NL", "CPO", _patches())
    assert [o.ignored for o in outcomes] == [False] * 4
    for sid in ("a", "b"):
        assert get_session(batch, batch_caller, "NL", "CPO", sid) == get_session(
            one, one_caller, "NL", "CPO", sid
        )
    assert seen == [
        ("a", SessionChange.UPDATED, "ACTIVE"),
        ("b", SessionChange.UPDATED, "COMPLETED"),
        ("b", SessionChange.STOPPED, "COMPLETED"),
        ("a", SessionChange.UPDATED, "ACTIVE"),
    ]
    one.close()
    batch.close()


def test_a_refused_patch_rolls_the_batch_back(tmp_path: Path) -> None:
    ctx, caller = _ems(tmp_path, "p.db")
    good = SessionPatch.model_validate({"kwh": 3.0, "last_updated": _stamp(DAY + timedelta(hours=1))})
    with pytest.raises(OcpiError):
        patch_sessions(ctx, caller, "NL", "CPO", [("a", good), ("nope", good)])
    assert get_session(ctx, caller, "NL", "CPO", "a")["kwh"] == 0.0
    ctx.close()
