"""What the simulator did, for tests, the demo and `GET /simulator/state`: plain JSON-able records.

Times are simulated UTC instants as OCPI strings. Lists are bounded so a long demo cannot grow
without limit (the oldest records are dropped first).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ems.ocpi.datetimes import format_ocpi_datetime

MAX_RECORDS = 50_000


def _deque() -> deque[dict[str, Any]]:
    return deque(maxlen=MAX_RECORDS)


@dataclass
class SimulatorState:
    events: deque[dict[str, Any]] = field(default_factory=_deque)
    """Everything notable, in order: {"kind": ..., **details}."""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per OCPI session id: where, when, transaction id, kWh, status."""
    limits_applied: deque[dict[str, Any]] = field(default_factory=_deque)
    """Every SetChargingProfile the EMS asked for, with the charge point's answer."""
    meter_values: deque[dict[str, Any]] = field(default_factory=_deque)
    """Every sample the central system received, per session."""
    counters: Counter[str] = field(default_factory=Counter)

    def event(self, kind: str, details: dict[str, Any]) -> None:
        self.events.append({"kind": kind, **details})
        self.counters[kind] += 1

    def count(self, kind: str) -> None:
        self.counters[kind] += 1

    def session_started(
        self, session_id: str, cp_id: str, evse_uid: str, connector_id: str, transaction_id: int, at: datetime
    ) -> None:
        self.sessions[session_id] = {
            "session_id": session_id,
            "cp_id": cp_id,
            "evse_uid": evse_uid,
            "connector_id": connector_id,
            "transaction_id": transaction_id,
            "start": format_ocpi_datetime(at),
            "end": None,
            "kwh": 0.0,
            "status": "ACTIVE",
        }
        self.event("session_started", {"session_id": session_id, "at": format_ocpi_datetime(at)})

    def session_stopped(self, session_id: str, at: datetime, kwh: float, reason: str | None) -> None:
        record = self.sessions.get(session_id)
        if record is not None:
            record.update(end=format_ocpi_datetime(at), kwh=round(kwh, 4), status="COMPLETED")
        self.event("session_stopped", {"session_id": session_id, "kwh": round(kwh, 4), "reason": reason})

    def meter_value(
        self,
        session_id: str,
        at: datetime,
        energy_wh: float,
        power_w: float | None,
        current_a: dict[str, float],
        offered_a: float | None,
        soc_pct: float | None,
    ) -> None:
        self.meter_values.append(
            {
                "session_id": session_id,
                "at": format_ocpi_datetime(at),
                "energy_wh": energy_wh,
                "power_w": power_w,
                "current_a": dict(current_a),
                "offered_a": offered_a,
                "soc_pct": soc_pct,
            }
        )
        self.counters["meter_values"] += 1

    def session_kwh(self, session_id: str, kwh: float) -> None:
        record = self.sessions.get(session_id)
        if record is not None:
            record["kwh"] = round(kwh, 4)

    def limit_applied(self, session_id: str, profile: dict[str, Any], ocpp_status: str, at: datetime) -> None:
        self.limits_applied.append(
            {
                "session_id": session_id,
                "profile": profile,
                "ocpp_status": ocpp_status,
                "at": format_ocpi_datetime(at),
            }
        )
        self.counters["limits_applied"] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "sessions": list(self.sessions.values()),
            "limits_applied": list(self.limits_applied),
            "meter_values": list(self.meter_values),
            "events": list(self.events),
            "counters": dict(self.counters),
        }
