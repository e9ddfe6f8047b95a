"""The admin's list of sites over real HTTP: each site's time in its own zone, said so."""

from __future__ import annotations

import re

import httpx

from ems.sites import import_site
from tests.conftest import RunningEms
from tests.ui.conftest import office_site
from tests.ui.test_editor_forms import admin

__all__ = ["admin"]  # the fixture, used by name


def test_each_site_is_updated_in_its_own_zone(
    ems: RunningEms, admin: tuple[httpx.Client, dict[str, str]]
) -> None:
    client, _ = admin
    paris = office_site()
    import_site(ems.ctx, paris)
    import_site(ems.ctx, {**paris, "id": "far", "name": "Far away", "timezone": "Asia/Tokyo"})
    page = client.get("/admin").text
    cells = {
        site: (when, zone)
        for site, when, zone in re.findall(
            r'data-testid="updated-([^"]+)">([^<]+)<small>([^<]+)</small>', page
        )
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d CES?T ", cells["office-pv"][0]), cells
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d JST ", cells["far"][0]), cells
    assert cells["office-pv"][1] == "Europe/Paris" and cells["far"][1] == "Asia/Tokyo"
