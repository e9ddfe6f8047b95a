"""Groups made in a browser: a group of two sites created on /admin/groups, a DSO limit pasted
as CSV rows on its page, and the group's chart then drawn against that limit (the planner
re-planned the group on each change); the group deleted after its confirm."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Dialog, Page, expect

from ems.sites import import_site
from ems.sites.groups import get_group, list_groups
from tests.ui.conftest import REPO, LiveEms, log_in, office_site, screenshot
from tests.ui.test_driver_widget import push_session

pytestmark = pytest.mark.browser


def test_an_admin_groups_two_sites_sets_a_limit_and_sees_it_drawn(live: LiveEms, desktop: Page) -> None:
    import_site(live.ctx, office_site())
    import_site(live.ctx, json.loads((REPO / "examples" / "sites" / "public-carpark.json").read_text()))
    push_session(live)  # a car on the office's cp1, so the joint plan has something to share
    log_in(desktop, live.url)
    desktop.get_by_test_id("nav-groups").click()

    form = desktop.get_by_test_id("new-group-form")
    form.get_by_label("Id", exact=True).fill("campus")
    form.get_by_label("Name", exact=True).fill("Campus")
    form.get_by_role("checkbox", name=re.compile(r"^office-pv")).check()
    carpark = form.get_by_role("checkbox", name=re.compile(r"^public-carpark"))
    carpark.focus()
    desktop.keyboard.press("Space")  # the site list works from the keyboard
    expect(carpark).to_be_checked()
    cap = form.get_by_label("Import cap (kW, optional)")
    cap.fill("lots")
    cap.press("Enter")  # refused whole, the form back as posted
    expect(desktop.get_by_role("alert")).to_contain_text("max_import_kw: must be a number, got 'lots'")
    expect(carpark).to_be_checked()
    screenshot(desktop, "group-refused")
    assert list_groups(live.ctx) == []
    cap.fill("30")
    cap.press("Enter")
    desktop.wait_for_url(f"{live.url}/admin/groups/campus?done=created")
    expect(desktop.get_by_test_id("message")).to_contain_text("Group created")
    expect(desktop.get_by_test_id("group-sites")).to_contain_text("public-carpark")

    now = datetime.now(UTC).replace(microsecond=0)
    limit = desktop.get_by_test_id("limit-form")
    limit.get_by_label("Limit id").fill("dso-evening")
    limit.get_by_label("Source").fill("dso")
    rows = [(now - timedelta(minutes=1), 5), (now + timedelta(hours=1), 8)]
    limit.get_by_label("or CSV rows").fill(
        "start,limit_kw\n" + "".join(f"{t.isoformat()},{kw}\n" for t, kw in rows)
    )
    limit.get_by_label("Valid until").fill((now + timedelta(hours=2)).isoformat())
    limit.get_by_test_id("limit-submit").click()
    desktop.wait_for_url(f"{live.url}/admin/groups/campus?done=limit")
    expect(desktop.get_by_test_id("group-limit-dso-evening")).to_contain_text("outside")
    expect(desktop.get_by_test_id("group-limit-cap-kw")).to_contain_text("group file")

    # the chart of the plan made after the limit (the live part reloads every 5 s): its dashed
    # limit line starts at the 5 kW the CSV set
    desktop.wait_for_function(
        """() => {
            const node = document.getElementById("group-chart-data");
            const data = node && JSON.parse(node.textContent || "null");
            const line = data && data.series.find((s) => s.label === "Limit in force");
            return Boolean(line) && line.values[0] === 5;
        }""",
        timeout=20_000,
    )
    data = json.loads(desktop.locator("#group-chart-data").text_content() or "null")
    limit_line = next(s for s in data["series"] if s["label"] == "Limit in force")
    assert limit_line["dash"] is True
    group_import = next(s for s in data["series"] if s["label"] == "Group import")
    steps = list(zip(group_import["values"], limit_line["values"], strict=True))
    assert all(cap is not None and kw <= cap + 1e-3 for kw, cap in steps)  # the 30 kW cap after the DSO's
    assert {cap for _kw, cap in steps} >= {5, 8, 30}
    expect(desktop.locator("#group-chart canvas")).to_have_count(1)
    expect(desktop.locator("#group-chart .u-legend")).to_contain_text("Limit in force")
    expect(desktop.locator("#group-chart .u-legend")).to_contain_text("public-carpark")
    screenshot(desktop, "group-made-on-the-page")
    assert get_group(live.ctx, "campus").group.site_ids() == ("office-pv", "public-carpark")

    dialogs: list[str] = []

    def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    desktop.once("dialog", accept)
    desktop.get_by_test_id("delete-submit").click()
    desktop.wait_for_url(f"{live.url}/admin/groups?done=deleted")
    assert dialogs and "Delete group campus" in dialogs[0]
    expect(desktop.get_by_test_id("message")).to_contain_text("planned alone again")
    assert list_groups(live.ctx) == []
