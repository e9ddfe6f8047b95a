"""The admin page "why this profile", reached from the dashboard's session row."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from ems.store.models import ChargingSession
from tests.conftest import RunningEms
from tests.support.delivered import admin_browser, plan_and_deliver


def test_the_dashboard_links_each_session_to_why_its_profile(ems: RunningEms) -> None:
    plan_id = plan_and_deliver(ems)
    with ems.ctx.db() as db:
        session_pk = db.scalar(select(ChargingSession.id).where(ChargingSession.session_id == "s1"))
    with admin_browser(ems) as browser:
        live = browser.get("/admin/sites/office-pv/dashboard/live").text
        assert f'href="/admin/sessions/{session_pk}/explain"' in live
        page = browser.get(f"/admin/sessions/{session_pk}/explain")
        assert page.status_code == 200
        assert 'data-testid="explain-profile-1"' in page.text
        assert "CPO answered ACCEPTED" in page.text and f"plan {plan_id} " in page.text
        assert "need: 15.0 kWh (site_default)" in page.text and "limit: grid connection: 43 kW" in page.text
        assert browser.get("/admin/sessions/999/explain").status_code == 404
    assert httpx.get(f"{ems.url}/admin/sessions/{session_pk}/explain").status_code in (303, 307, 401, 403)
