"""Browser tests: the app over real HTTP with the planner listening, driven by Debian's Chromium.

Playwright cannot download a browser here, so `/usr/bin/chromium` is launched directly (the
Makefile's `chromium` target installs it); each test saves a screenshot under tests/artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from api.app import create_app
from ems.admin.users import create_user
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.planning.planner import Planner, PlannerSettings
from tests.support.servers import ThreadedServer, free_port

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN = ("admin", "a long enough test password")
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


@dataclass
class LiveEms:
    ctx: EmsContext
    url: str
    planner: Planner


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser per module, not per session: Playwright's sync API keeps an event loop
    running on the main thread while it is started, and the async tests a worker of
    `pytest -n` runs after a browser module could not start theirs."""
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's /usr/bin/chromium (`make chromium` installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveEms]:
    """The EMS with a planner subscribed to its bus (plans within a fraction of a second of an
    event), an administrator, and nothing else: each test brings its own site."""
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ems.db'}",
        public_url=f"http://127.0.0.1:{port}",
        admin_token="admin-token-for-the-ui-tests",
    )
    ctx = EmsContext.create(settings)
    create_user(ctx, *ADMIN)
    planner = Planner(ctx, settings=PlannerSettings(quiet_s=0.05, max_wait_s=0.3))
    planner.start()
    try:
        with ThreadedServer(create_app(context=ctx, background=False), port=port) as server:
            yield LiveEms(ctx, server.url, planner)
    finally:
        planner.stop()
        ctx.close()


@pytest.fixture
def desktop(chromium: Browser) -> Iterator[Page]:
    context: BrowserContext = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def phone(chromium: Browser) -> Iterator[Page]:
    """A phone-sized viewport (390 x 844 CSS px, as an iPhone 12-15)."""
    context = chromium.new_context(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def office_site() -> dict[str, object]:
    data: dict[str, object] = json.loads((REPO / "examples" / "sites" / "office-pv.json").read_text())
    return data


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, url: str) -> None:
    page.goto(f"{url}/admin")
    page.get_by_test_id("login-username").fill(ADMIN[0])
    page.get_by_test_id("login-password").fill(ADMIN[1])
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{url}/admin")
