"""Fixtures of the grid_models tests: the sample sites, loaded once."""

from __future__ import annotations

import pytest

from grid_models.site import Site
from grid_models.sitefile import load_site
from tests.grid_models.helpers import SITES_DIR


@pytest.fixture(scope="session")
def office() -> Site:
    return load_site(SITES_DIR / "office-pv.json")


@pytest.fixture(scope="session")
def carpark() -> Site:
    return load_site(SITES_DIR / "public-carpark.json")


@pytest.fixture(scope="session")
def depot() -> Site:
    return load_site(SITES_DIR / "depot.json")
