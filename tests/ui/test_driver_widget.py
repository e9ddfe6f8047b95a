"""The driver widget on a phone: a real session pushed through OCPI, a real plan redrawn."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ems.drivers import links as driver_links
from ems.sites import import_site
from ems.store.models import ChargingPreference, ChargingSession
from tests.conftest import add_registered_partner, auth
from tests.support.ocpi_objects import session
from tests.ui.conftest import LiveEms, office_site, screenshot

pytestmark = pytest.mark.browser
PARIS = ZoneInfo("Europe/Paris")


def push_session(live: LiveEms) -> int:
    """Plug a car into cp1 the way a CPO does: PUT through the OCPI sessions endpoint."""
    token = add_registered_partner(live.ctx)
    now = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    reply = httpx.put(
        f"{live.url}/ocpi/2.2.1/sessions/NL/CPO/s1",
        json=session(start_date_time=now, last_updated=now, kwh=1.5),
        headers=auth(token),
    )
    assert reply.json()["status_code"] == 1000, reply.text
    with live.ctx.db() as db:
        pk = db.scalar(select(ChargingSession.id).where(ChargingSession.session_id == "s1"))
    assert pk is not None
    return pk


def local_in(hours: float) -> str:
    return (datetime.now(PARIS) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def drawn_plan(page: Page) -> int:
    chart = page.get_by_test_id("plan-chart")
    expect(chart).to_have_attribute("data-plan-id", re.compile(r"^\d+$"))
    expect(chart.locator("canvas")).to_have_count(1)
    return int(chart.get_attribute("data-plan-id") or 0)


def test_a_driver_sets_departure_and_soc_and_sees_the_plan_redraw(live: LiveEms, phone: Page) -> None:
    import_site(live.ctx, office_site())
    pk = push_session(live)
    link = driver_links.mint(live.ctx, pk)

    phone.goto(live.url + link.path())
    expect(phone.get_by_test_id("driver-form")).to_be_visible()
    first_plan = drawn_plan(phone)  # planned on the session's start, with estimated needs
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling

    phone.get_by_test_id("departure-input").fill(local_in(8))
    phone.get_by_test_id("soc-input").fill("30")
    phone.get_by_text("More (optional)").click()
    phone.get_by_test_id("capacity-input").fill("40")
    phone.get_by_test_id("driver-save").click()
    expect(phone.get_by_test_id("saved")).to_be_visible()
    # The re-plan lands a moment after the save (coalescing, solve); the widget polls for it.
    expect(phone.get_by_test_id("plan-chart")).not_to_have_attribute("data-plan-id", str(first_plan))
    expect(phone.get_by_test_id("need-met")).to_be_visible()
    second_plan = drawn_plan(phone)
    assert second_plan > first_plan
    expect(phone.get_by_test_id("expected")).to_contain_text("28.0 kWh")  # 70% of 40, 1.5 of it so far
    # times are the station's, and say so
    expect(phone.get_by_test_id("departure-zone")).to_contain_text("Europe/Paris")
    expect(phone.get_by_test_id("departure")).to_have_text(re.compile(r"^\w{3} \d\d:\d\d CES?T$"))
    screenshot(phone, "driver-widget-plan")

    # the driver must leave much earlier and needs more: the plan is redrawn, the need not met
    phone.get_by_test_id("departure-input").fill(local_in(1.6))
    phone.get_by_test_id("capacity-input").fill("100")
    phone.get_by_test_id("energy-input").fill("45")
    phone.get_by_test_id("driver-save").click()
    expect(phone.get_by_test_id("need-unmet")).to_contain_text("stay is too short")
    expect(phone.get_by_test_id("plan-chart")).not_to_have_attribute("data-plan-id", str(second_plan))
    assert drawn_plan(phone) > second_plan
    screenshot(phone, "driver-widget-replanned")

    with live.ctx.db() as db:
        stated = db.scalars(select(ChargingPreference).order_by(ChargingPreference.id)).all()
    assert [(p.source, p.energy_need_kwh) for p in stated] == [("driver", None), ("driver", 45.0)]


def test_a_driver_gets_clear_messages_and_nothing_is_saved(live: LiveEms, phone: Page) -> None:
    import_site(live.ctx, office_site())
    pk = push_session(live)
    phone.goto(live.url + driver_links.mint(live.ctx, pk).path())
    phone.get_by_test_id("departure-input").fill(local_in(-3))
    phone.get_by_test_id("soc-input").fill("130")
    phone.get_by_test_id("driver-save").click()
    expect(phone.get_by_test_id("error-departure")).to_contain_text("in the future")
    expect(phone.get_by_test_id("error-soc_arrival_pct")).to_contain_text("between 0 and 100")
    screenshot(phone, "driver-widget-invalid")
    with live.ctx.db() as db:
        assert db.scalars(select(ChargingPreference)).all() == []


def test_a_forged_driver_link_is_refused(live: LiveEms, phone: Page) -> None:
    import_site(live.ctx, office_site())
    pk = push_session(live)
    genuine = driver_links.mint(live.ctx, pk).token
    pk_part, expiry, signature = genuine.split(".")
    other = "A" if signature[0] != "A" else "B"
    for forged in (
        f"{pk_part}.{expiry}.{other}{signature[1:]}",
        f"{pk_part}.{int(expiry) + 86400}.{signature}",
    ):
        response = phone.goto(f"{live.url}/driver/{forged}")
        assert response is not None and response.status == 403
        expect(phone.get_by_test_id("driver-refused")).to_be_visible()
        expect(phone.get_by_test_id("driver-form")).to_have_count(0)
    screenshot(phone, "driver-link-forged")
