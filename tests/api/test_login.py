"""Admin log-in over real HTTP: scrypt hashes, the session cookie, CSRF on every POST, throttling."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.app import create_app
from api.ui import auth
from ems.admin.users import UserError, authenticate, create_user, hash_password, verify_password
from ems.core.config import Settings, get_settings
from ems.core.context import EmsContext
from ems.drivers import links as driver_links
from ems.sites import list_sites
from ems.store.db import transaction
from ems.store.models import ChargingSession
from tests.conftest import RunningEms, add_registered_partner
from tests.support.servers import ThreadedServer, free_port

PASSWORD = "correct horse battery"


@pytest.fixture
def browser(ems: RunningEms) -> Iterator[httpx.Client]:
    create_user(ems.ctx, "alice", PASSWORD)
    with httpx.Client(base_url=ems.url, timeout=10) as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html[:500]
    return match.group(1)


def log_in(client: httpx.Client, password: str = PASSWORD, next_path: str = "/admin") -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"username": "alice", "password": password, "csrf_token": token, "next": next_path}
    )


def test_passwords_are_scrypt_hashed_with_a_salt() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first.startswith("scrypt$") and PASSWORD not in first
    assert first != second  # a random salt each time
    assert verify_password(PASSWORD, first) and not verify_password("wrong password!", first)
    assert not verify_password(PASSWORD, "md5$garbage")


def test_users_refuse_short_passwords_and_duplicates(ems: RunningEms) -> None:
    with pytest.raises(UserError, match="at least"):
        create_user(ems.ctx, "bob", "short")
    create_user(ems.ctx, "bob", PASSWORD)
    with pytest.raises(UserError, match="already exists"):
        create_user(ems.ctx, "bob", PASSWORD)
    assert authenticate(ems.ctx, "bob", PASSWORD) == "bob"
    assert authenticate(ems.ctx, "bob", "not the password") is None
    assert authenticate(ems.ctx, "nobody", PASSWORD) is None


def test_admin_pages_need_a_login(browser: httpx.Client) -> None:
    reply = browser.get("/admin")
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?next=/admin"
    htmx = browser.get("/admin/sites/x/diagram", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith("/login?next=")


def test_log_in_and_out(browser: httpx.Client) -> None:
    reply = log_in(browser)
    assert reply.status_code == 303 and reply.headers["location"] == "/admin"
    cookie = reply.headers["set-cookie"]
    assert "ems_admin=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    page = browser.get("/admin")
    assert page.status_code == 200 and 'data-testid="who">alice<' in page.text
    out = browser.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    assert browser.get("/admin").status_code == 303


def test_wrong_password_is_refused(browser: httpx.Client) -> None:
    reply = log_in(browser, "not the password")
    assert reply.status_code == 401 and "Wrong username or password" in reply.text
    assert browser.get("/admin").status_code == 303


def test_the_login_form_itself_needs_its_csrf_token(browser: httpx.Client) -> None:
    browser.get("/login")
    reply = browser.post("/login", data={"username": "alice", "password": PASSWORD})
    assert reply.status_code == 403
    assert browser.get("/admin").status_code == 303


def test_every_post_needs_the_session_csrf_token(ems: RunningEms, browser: httpx.Client) -> None:
    log_in(browser)
    page = browser.get("/admin").text
    site = {"id": "csrf-site", "max_power_kw": "20", "rated_current_a": "32"}
    assert browser.post("/admin/sites", data=site).status_code == 403
    assert browser.post("/admin/sites", data={**site, "csrf_token": "forged" * 8}).status_code == 403
    assert browser.post("/admin/sites", data=site, headers={"X-CSRF-Token": "nope"}).status_code == 403
    assert list_sites(ems.ctx) == []
    # the form field, or the header htmx sends
    reply = browser.post("/admin/sites", data=site, headers={"X-CSRF-Token": csrf_of(page)})
    assert reply.status_code == 303 and reply.headers["location"] == "/admin/sites/csrf-site"
    assert [s.site_id for s in list_sites(ems.ctx)] == ["csrf-site"]


def test_a_csrf_token_from_another_session_does_not_work(ems: RunningEms, browser: httpx.Client) -> None:
    log_in(browser)
    with httpx.Client(base_url=ems.url, timeout=10) as other:
        stolen = csrf_of(other.get("/login").text)
    reply = browser.post(
        "/admin/sites", data={"id": "x", "max_power_kw": "20", "rated_current_a": "32", "csrf_token": stolen}
    )
    assert reply.status_code == 403
    assert list_sites(ems.ctx) == []


def test_login_is_throttled_after_repeated_failures(browser: httpx.Client) -> None:
    for _ in range(auth.throttle.max_failures):
        assert log_in(browser, "wrong password!").status_code == 401
    reply = log_in(browser)  # even the right password, for a while
    assert reply.status_code == 429 and "Too many failed attempts" in reply.text
    assert browser.get("/admin").status_code == 303


def test_the_throttle_holds_across_replicas(ems: RunningEms) -> None:
    """Failures are counted in the database: a second replica on it refuses as the first does."""
    create_user(ems.ctx, "alice", PASSWORD)
    port = free_port()
    with (
        ThreadedServer(create_app(context=ems.ctx, background=False), port=port) as other,
        httpx.Client(base_url=ems.url, timeout=10) as first,
        httpx.Client(base_url=other.url, timeout=10) as second,
    ):
        for i in range(auth.throttle.max_failures):
            assert log_in(first if i % 2 else second, "wrong password!").status_code == 401
        assert log_in(first).status_code == 429
        assert log_in(second).status_code == 429


def test_the_redirect_after_login_stays_on_this_site(browser: httpx.Client) -> None:
    reply = log_in(browser, next_path="//evil.example/steal")
    assert reply.headers["location"] == "/admin"


def test_admin_pages_cannot_be_framed(browser: httpx.Client) -> None:
    page = browser.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"


# ---- the command line --------------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("EMS_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_ems_admin_create_user_then_log_in(database_url: str) -> None:
    from ems.cli.main import app

    runner = CliRunner()
    made = runner.invoke(app, ["admin", "create-user", "carol", "--password", PASSWORD])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout) == {"username": "carol", "status": "created"}
    again = runner.invoke(app, ["admin", "create-user", "carol", "--password", PASSWORD])
    assert again.exit_code == 1 and "already exists" in again.output
    short = runner.invoke(app, ["admin", "create-user", "dave"], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    piped = runner.invoke(app, ["admin", "create-user", "erin", "--password-stdin"], input=PASSWORD + "\n")
    assert piped.exit_code == 0, piped.output
    reset = runner.invoke(
        app, ["admin", "create-user", "carol", "--replace", "--password", "another password!"]
    )
    assert reset.exit_code == 0
    ctx = EmsContext.create(Settings(database_url=database_url))
    assert authenticate(ctx, "erin", PASSWORD) == "erin"
    assert authenticate(ctx, "carol", PASSWORD) is None
    assert authenticate(ctx, "carol", "another password!") == "carol"
    ctx.close()


def test_ems_driver_link_mints_a_working_link(database_url: str) -> None:
    from ems.cli.main import app

    runner = CliRunner()
    unknown = runner.invoke(app, ["driver", "link", "41"])
    assert unknown.exit_code == 1 and "unknown session 41" in unknown.output

    ctx = EmsContext.create(Settings(database_url=database_url))
    add_registered_partner(ctx)
    now = datetime.now(UTC)
    with transaction(ctx.db) as db:
        row = ChargingSession(
            partner_id=1,
            country_code="NL",
            party_id="CPO",
            session_id="s1",
            start_date_time=now,
            kwh=0.0,
            cdr_token={"uid": "TOK1"},
            auth_method="WHITELIST",
            location_id="LOC1",
            evse_uid="E1",
            connector_id="1",
            currency="EUR",
            status="ACTIVE",
            last_updated=now,
        )
        db.add(row)
        db.flush()
        pk = row.id
    made = runner.invoke(app, ["driver", "link", str(pk)])
    assert made.exit_code == 0, made.output
    link = json.loads(made.stdout)
    token = link["url"].rsplit("/driver/", 1)[1]
    assert driver_links.session_of(ctx, token) == pk
    assert datetime.fromisoformat(link["expires_at"]) > now + timedelta(hours=47)
    ctx.close()
