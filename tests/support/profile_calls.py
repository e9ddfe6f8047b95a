"""Send PUT, GET and DELETE chargingprofiles calls for one session, from a process of its own.

Run with the EMS's environment (EMS_DATABASE_URL, EMS_PUBLIC_URL) while the EMS serves the
callbacks; prints the synchronous answers and, once they arrived, the asynchronous results.
"""

from __future__ import annotations

import json
import sys
import time

from sqlalchemy import select

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi import profiles
from ems.store.models import ChargingSession, ProfileRequest

PROFILE = {
    "start_date_time": "2026-06-01T08:15:00Z",
    "charging_rate_unit": "A",
    "charging_profile_period": [{"start_period": 0, "limit": 16.0}, {"start_period": 900, "limit": 8.5}],
}


def main(session_id: str) -> None:
    ctx = EmsContext.create(Settings())
    with ctx.db() as db:
        pk = db.scalars(select(ChargingSession.id).where(ChargingSession.session_id == session_id)).one()
    outcomes = [
        profiles.send_charging_profile(ctx, pk, PROFILE),
        profiles.request_active_profile(ctx, pk, 900),
        profiles.clear_profile(ctx, pk),
    ]
    deadline = time.monotonic() + 10
    rows: list[ProfileRequest] = []
    while time.monotonic() < deadline:
        with ctx.db() as db:
            rows = list(db.scalars(select(ProfileRequest).order_by(ProfileRequest.id)))
        if all(r.result for r in rows):
            break
        time.sleep(0.1)
    answers = [o.response_result for o in outcomes]
    results = [(r.kind, r.response_result, r.result) for r in rows]
    print(json.dumps([answers, results]))


if __name__ == "__main__":
    main(sys.argv[1])
