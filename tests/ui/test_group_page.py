"""The group page in a browser: the group's sites and limits, and its planned import drawn
against the limit in force (the dashed line of a DSO limit put through the admin API)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from ems.sites import import_site
from ems.sites.groups import put_group, put_limit
from tests.ui.conftest import REPO, LiveEms, log_in, office_site, screenshot
from tests.ui.test_driver_widget import push_session

pytestmark = pytest.mark.browser


def test_the_group_page_draws_its_import_against_the_limit(live: LiveEms, desktop: Page) -> None:
    import_site(live.ctx, office_site())
    import_site(live.ctx, json.loads((REPO / "examples" / "sites" / "public-carpark.json").read_text()))
    put_group(
        live.ctx, "campus", {"id": "campus", "name": "Campus", "sites": ["office-pv", "public-carpark"]}
    )
    push_session(live)
    now = datetime.now(UTC)
    put_limit(
        live.ctx,
        "campus",
        {
            "id": "dso-evening",
            "source": "dso",
            "max_import_kw": 5,
            "valid_from": (now - timedelta(minutes=1)).isoformat(),
            "valid_until": (now + timedelta(hours=2)).isoformat(),
        },
    )
    log_in(desktop, live.url)
    desktop.get_by_test_id("nav-groups").click()
    desktop.get_by_test_id("open-group-campus").click()
    expect(desktop.get_by_test_id("group-sites")).to_contain_text("public-carpark")
    expect(desktop.get_by_test_id("group-limit-dso-evening")).to_contain_text("outside")
    expect(desktop.get_by_test_id("group-as-of")).to_contain_text("Joint plan for")
    expect(desktop.locator("#group-chart canvas")).to_have_count(1)
    expect(desktop.locator("#group-chart .u-legend")).to_contain_text("Limit in force")
    data = json.loads(desktop.locator("#group-chart-data").text_content() or "null")
    limit = next(s for s in data["series"] if s["label"] == "Limit in force")
    assert limit["values"][0] == 5 and limit["dash"] is True
    group_import = next(s for s in data["series"] if s["label"] == "Group import")
    capped = [kw for kw, cap in zip(group_import["values"], limit["values"], strict=True) if cap is not None]
    assert capped and max(capped) <= 5 + 1e-3  # under the limit while it is in force (2 h)
    screenshot(desktop, "group")
