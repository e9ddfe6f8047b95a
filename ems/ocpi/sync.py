"""Pull mode: fetch a CPO's Sessions and Locations through its SENDER interfaces.

Used after an outage (OCPI does not queue failed pushes) and on a schedule. Each object goes
through the same code path as a push, so the `last_updated` rule keeps newer pushed data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select

from ems.core.context import EmsContext
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.errors import OcpiClientError, OcpiError
from ems.ocpi.locations import put_location
from ems.ocpi.partners import Caller, PartnerStatus, partner_client
from ems.ocpi.schemas import Location, Session
from ems.ocpi.sessions import put_session
from ems.store.db import transaction
from ems.store.models import Partner

logger = logging.getLogger(__name__)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class SyncReport:
    partner_id: int
    sessions: int = 0
    locations: int = 0
    ignored: int = 0
    errors: list[str] = field(default_factory=list)


def sync_partner(ctx: EmsContext, partner_id: int, date_from: datetime | None = None) -> SyncReport:
    """Fetch everything changed since `date_from` (default: the last successful sync)."""
    started = ctx.clock.now()
    with ctx.db() as db:
        partner = db.get(Partner, partner_id)
        if partner is None or partner.status != PartnerStatus.REGISTERED:
            raise OcpiClientError(f"partner {partner_id} is not registered")
    since = date_from or partner.last_sync_at or EPOCH
    caller = Caller.of(partner, with_token_a=False)
    report = SyncReport(partner_id)
    params = {"date_from": format_ocpi_datetime(since)}
    with ctx.http_client() as http:
        client = partner_client(ctx, http, partner)
        sessions_url = partner.endpoint_url("sessions", "SENDER")
        if sessions_url:
            for raw in client.paginate(sessions_url, params):
                try:
                    session = Session.model_validate(raw)
                    outcome = put_session(
                        ctx, caller, session.country_code, session.party_id, session.id, session
                    )
                except (ValidationError, OcpiError) as exc:
                    report.errors.append(f"session {raw.get('id') if isinstance(raw, dict) else '?'}: {exc}")
                    continue
                report.sessions += 1
                report.ignored += outcome.ignored
        locations_url = partner.endpoint_url("locations", "SENDER")
        if locations_url:
            for raw in client.paginate(locations_url, params):
                try:
                    location = Location.model_validate(raw)
                    outcome = put_location(
                        ctx, caller, location.country_code, location.party_id, location.id, location
                    )
                except (ValidationError, OcpiError) as exc:
                    report.errors.append(f"location {raw.get('id') if isinstance(raw, dict) else '?'}: {exc}")
                    continue
                report.locations += 1
                report.ignored += outcome.ignored
    with transaction(ctx.db) as db:
        stored = db.get(Partner, partner_id)
        if stored is not None:
            stored.last_sync_at = started
    return report


def sync_all(ctx: EmsContext) -> list[SyncReport]:
    """One pull of every registered partner; a failing partner does not stop the others."""
    with ctx.db() as db:
        ids = list(db.scalars(select(Partner.id).where(Partner.status == PartnerStatus.REGISTERED)))
    reports = []
    for partner_id in ids:
        try:
            reports.append(sync_partner(ctx, partner_id))
        except OcpiClientError as exc:
            logger.warning("pull of partner %s failed: %s", partner_id, exc)
    return reports
