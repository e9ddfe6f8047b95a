"""Stored XSS: what a CPO pushes (Location names, EVSE uids, session ids) and what an admin types
(a site name) is shown as text on the dashboard and in the editor; no script of theirs runs."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from ems.sites import import_site
from ems.sites.groups import put_group
from tests.conftest import add_registered_partner, auth
from tests.support.ocpi_objects import connector, evse, location, session
from tests.ui.conftest import LiveEms, log_in, office_site, screenshot

pytestmark = pytest.mark.browser

SITE_NAME = "<script>alert('site')</script>"
LOCATION_NAME = "<script>alert('location')</script>"
EVSE_UID = "<img src=x onerror=alert(1)>"
SESSION_ID = '"><svg onload=alert(2)>'
GROUP_NAME = "<img src=x onerror=alert('group')>"


def test_pushed_and_typed_markup_stays_text(live: LiveEms, desktop: Page) -> None:
    site = office_site() | {
        "name": SITE_NAME,
        "ocpi_locations": [{"country_code": "NL", "party_id": "CPO", "location_id": "LOC1"}],
    }
    import_site(live.ctx, site)
    headers = auth(add_registered_partner(live.ctx))
    ocpi = f"{live.url}/ocpi/2.2.1"
    pushed = location(name=LOCATION_NAME, evses=[evse(), evse(EVSE_UID, [connector()])])
    assert (
        httpx.put(f"{ocpi}/locations/NL/CPO/LOC1", json=pushed, headers=headers).json()["status_code"] == 1000
    )
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    body = session(SESSION_ID, start_date_time=now, last_updated=now, kwh=1.0)
    reply = httpx.put(f"{ocpi}/sessions/NL/CPO/{quote(SESSION_ID, safe='')}", json=body, headers=headers)
    assert reply.json()["status_code"] == 1000, reply.text

    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    desktop.on("dialog", record)
    log_in(desktop, live.url)
    desktop.goto(f"{live.url}/admin")
    expect(desktop.get_by_text(SITE_NAME)).to_be_visible()

    desktop.goto(f"{live.url}/admin/sites/office-pv/dashboard")
    expect(desktop.get_by_role("heading", name=SITE_NAME)).to_be_visible()
    expect(desktop.get_by_test_id(f"session-{SESSION_ID}")).to_contain_text(SESSION_ID)
    screenshot(desktop, "stored-xss-dashboard")

    desktop.goto(f"{live.url}/admin/sites/office-pv")
    expect(desktop.get_by_test_id("unplaced")).to_contain_text(EVSE_UID)
    screenshot(desktop, "stored-xss-editor")
    assert desktop.locator("img[src=x], svg[onload]").count() == 0

    put_group(live.ctx, "campus", {"id": "campus", "name": GROUP_NAME, "sites": ["office-pv"]})
    desktop.goto(f"{live.url}/admin/groups")
    expect(desktop.get_by_test_id("group-row-campus")).to_contain_text(GROUP_NAME)
    expect(desktop.get_by_test_id("site-choices")).to_contain_text(SITE_NAME)
    desktop.goto(f"{live.url}/admin/groups/campus")
    expect(desktop.get_by_role("heading", name=GROUP_NAME)).to_be_visible()
    expect(desktop.get_by_test_id("site-choices")).to_contain_text(SITE_NAME)
    assert desktop.locator("img[src=x], svg[onload]").count() == 0
    assert dialogs == []
