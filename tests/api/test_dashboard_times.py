"""The dashboard's times are in the site's zone, labelled; on simulated time it says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.app import create_app
from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from tests.conftest import RunningEms
from tests.support.delivered import admin_browser, plan_and_deliver
from tests.support.servers import REPO, ThreadedServer, free_port


def test_times_are_in_the_site_zone_and_wall_clock_is_named(ems: RunningEms) -> None:
    plan_and_deliver(ems)
    with admin_browser(ems) as browser:
        page = browser.get("/admin/sites/office-pv/dashboard").text
        assert 'data-testid="simulated-time"' not in page
        live = browser.get("/admin/sites/office-pv/dashboard/live").text
    as_of = live.split('data-testid="as-of">', 1)[1].split("</p>", 1)[0]
    assert " UTC" not in live
    assert ("CET" in as_of or "CEST" in as_of) and "by the wall clock" in as_of


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[RunningEms]:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ems.db'}",
        public_url=f"http://127.0.0.1:{port}",
        clock_start=datetime(2026, 6, 1, 6, 0, tzinfo=UTC),
        clock_speed=60.0,
    )
    ctx = EmsContext.create(settings)
    sites.import_site(ctx, json.loads((REPO / "examples/sites/office-pv.json").read_text()))
    with ThreadedServer(create_app(context=ctx, background=False), port=port) as server:
        yield RunningEms(ctx, server.url)
    ctx.close()


def test_a_dashboard_on_simulated_time_says_so(simulated: RunningEms) -> None:
    with admin_browser(simulated) as browser:
        page = browser.get("/admin/sites/office-pv/dashboard").text
    notice = page.split('data-testid="simulated-time">', 1)[1].split("</p>", 1)[0]
    assert "2026-06-01 08:00 CEST" in notice and "60×" in notice


def test_editor_versions_say_when_in_the_site_zone_who_and_why(ems: RunningEms) -> None:
    data = json.loads((REPO / "examples/sites/office-pv.json").read_text())
    sites.import_site(ems.ctx, data, sites.Change("first wiring", "alice"))
    with admin_browser(ems) as browser:
        page = browser.get("/admin/sites/office-pv").text
    line = page.split('data-testid="version-1">', 1)[1].split("</li>", 1)[0]
    assert line.startswith("v1 · ") and ("CET" in line or "CEST" in line)
    assert line.endswith("· by alice · first wiring"), line
