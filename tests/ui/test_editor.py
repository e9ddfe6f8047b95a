"""The admin's diagram editor in a browser: log in, build a site, wire a connector, break it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from ems.sites import get_site, import_site
from tests.ui.conftest import LiveEms, log_in, office_site, screenshot

pytestmark = pytest.mark.browser


def add_child(page: Page, kind: str, new_id: str) -> None:
    panel = page.get_by_test_id("panel")
    if kind != "connector":
        panel.get_by_test_id("child-kind").select_option(kind)
    panel.get_by_test_id("new-id").fill(new_id)
    panel.get_by_test_id("add").click()
    expect(page.get_by_test_id(f"panel-{kind}-{new_id}")).to_be_visible()
    expect(page.get_by_test_id(f"node-{kind}-{new_id}")).to_be_visible()  # the diagram reloaded


def test_an_admin_builds_a_site_saves_reloads_and_finds_it(live: LiveEms, desktop: Page) -> None:
    log_in(desktop, live.url)
    desktop.get_by_test_id("new-site-id").fill("garage")
    desktop.get_by_test_id("new-site-name").fill("Garage of the tests")
    desktop.get_by_test_id("new-site-grid").fill("22")
    desktop.get_by_test_id("new-site-rating").fill("40")
    desktop.get_by_test_id("new-site-submit").click()
    desktop.wait_for_url(f"{live.url}/admin/sites/garage")

    desktop.get_by_test_id("node-protection-main").click()
    expect(desktop.get_by_test_id("panel-protection-main")).to_be_visible()
    add_child(desktop, "protection", "breaker1")
    desktop.get_by_test_id("field-rated_current_a").fill("25")
    desktop.get_by_test_id("save").click()
    expect(desktop.get_by_test_id("panel-message")).to_contain_text("Saved as version")
    add_child(desktop, "charge_point", "cpA")
    desktop.get_by_test_id("new-evse_uid").fill("FR*GAR*E0001")
    add_child(desktop, "connector", "cpA-1")

    desktop.get_by_test_id("phase-1").select_option("L2")
    desktop.get_by_test_id("phase-2").select_option("")
    desktop.get_by_test_id("phase-3").select_option("")
    desktop.get_by_test_id("field-max_current_a").fill("16")
    desktop.get_by_test_id("save").click()
    expect(desktop.get_by_test_id("panel-message")).to_contain_text("Saved as version")
    expect(desktop.get_by_test_id("wiring")).to_have_text("L2")

    desktop.reload()
    connector = desktop.get_by_test_id("node-connector-cpA-1")
    expect(connector).to_contain_text("L2")
    expect(connector).to_contain_text("16 A")
    expect(desktop.get_by_test_id("node-protection-breaker1")).to_contain_text("25 A")
    connector.click()
    expect(desktop.get_by_test_id("phase-1")).to_have_value("L2")
    screenshot(desktop, "editor-built-site")

    stored = get_site(live.ctx, "garage")
    (cp,) = stored.site.charge_points
    assert (cp.id, cp.protection) == ("cpA", "breaker1")
    assert [(c.id, c.evse_uid, c.phases, c.max_current_a) for c in cp.connectors] == [
        ("cpA-1", "FR*GAR*E0001", ("L2",), 16)
    ]
    assert [(p.id, p.parent, p.rated_current_a) for p in stored.site.protections] == [
        ("main", None, 40),
        ("breaker1", "main", 25),
    ]


def test_an_invalid_wiring_shows_a_message_and_saves_nothing(live: LiveEms, desktop: Page) -> None:
    import_site(live.ctx, office_site())
    log_in(desktop, live.url)
    desktop.goto(f"{live.url}/admin/sites/office-pv")
    desktop.get_by_test_id("node-connector-cp2-1").click()
    expect(desktop.get_by_test_id("wiring")).to_have_text("L2-L3-L1")
    desktop.get_by_test_id("phase-2").select_option("L2")  # L2 twice
    desktop.get_by_test_id("save").click()
    expect(desktop.get_by_test_id("panel-problems")).to_contain_text("repeated")
    expect(desktop.get_by_test_id("panel-problems")).to_contain_text("nothing was stored")
    expect(desktop.get_by_test_id("error-phases")).to_be_visible()
    screenshot(desktop, "editor-invalid-wiring")

    stored = get_site(live.ctx, "office-pv")
    assert stored.version == 1
    desktop.reload()
    expect(desktop.get_by_test_id("node-connector-cp2-1")).to_contain_text("L2-L3-L1")


def test_an_admin_moves_a_charge_point_under_another_protection(live: LiveEms, desktop: Page) -> None:
    import_site(live.ctx, office_site())
    log_in(desktop, live.url)
    desktop.goto(f"{live.url}/admin/sites/office-pv")
    desktop.get_by_test_id("node-charge_point-cp1").click()
    desktop.get_by_test_id("select-protection").select_option("zedbox2")
    desktop.get_by_test_id("save").click()
    expect(desktop.get_by_test_id("panel-message")).to_contain_text("Saved as version 2")
    assert get_site(live.ctx, "office-pv").site.charge_points[0].protection == "zedbox2"
