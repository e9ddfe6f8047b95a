"""Driver links over real HTTP: HMAC signing, expiry, forgeries refused, preferences saved whole
or not at all and announced to the planner, and the live view of a real plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from api.app import create_app
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.core.events import DomainEvent, PreferencesChanged
from ems.drivers import links as driver_links
from ems.planning.planner import Planner
from ems.sites import import_site
from ems.sites.forecasts import import_series
from ems.sites.series import parse_series
from ems.store.models import AppSecret, ChargingPreference
from tests.conftest import ADMIN_TOKEN, RunningEms
from tests.support.ocpi_objects import session
from tests.support.servers import ThreadedServer, free_port

REPO = Path(__file__).resolve().parents[2]
SESSION_URL = "/ocpi/2.2.1/sessions/NL/CPO/s1"


def _now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@pytest.fixture
def session_pk(ems: RunningEms, cpo_client: httpx.Client) -> int:
    """An active session on cp1 of the office site, pushed through the OCPI endpoint."""
    import_site(ems.ctx, json.loads((REPO / "examples/sites/office-pv.json").read_text()))
    now = _now_iso()
    reply = cpo_client.put(SESSION_URL, json=session(start_date_time=now, last_updated=now))
    assert reply.json()["status_code"] == 1000, reply.text
    return 1


def mint(ems: RunningEms, pk: int) -> httpx.Response:
    return httpx.post(
        f"{ems.url}/api/admin/sessions/{pk}/driver_link", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )


def departure_local(hours: float) -> str:
    return (datetime.now(ZoneInfo("Europe/Paris")) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def preferences(ems: RunningEms) -> int:
    with ems.ctx.db() as db:
        return int(db.scalar(select(func.count()).select_from(ChargingPreference)) or 0)


def test_a_link_is_an_hmac_of_the_session_and_its_expiry() -> None:
    secret = "s" * 16 + "e" * 16 + "cret-key-of-the-test"
    expires = datetime.now(UTC) + timedelta(hours=1)
    token = driver_links.sign(secret, 42, expires)
    pk, expiry, signature = token.split(".")
    assert (pk, int(expiry)) == ("42", int(expires.timestamp())) and len(signature) == 43
    assert driver_links.verify(secret, token, datetime.now(UTC)) == 42
    for forged in (
        f"43.{expiry}.{signature}",  # another session with the same signature
        f"42.{int(expiry) + 3600}.{signature}",  # a later expiry
        f"42.{expiry}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        driver_links.sign("another secret entirely, 32 chars+", 42, expires),
        "42",
        "../../etc/passwd",
    ):
        with pytest.raises(driver_links.InvalidLinkError):
            driver_links.verify(secret, forged, datetime.now(UTC))
    with pytest.raises(driver_links.InvalidLinkError, match="expired"):
        driver_links.verify(secret, token, expires + timedelta(seconds=1))


def test_the_generated_secret_is_kept_in_the_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ems.db'}")
    first = EmsContext.create(settings)
    secret = driver_links.server_secret(first)
    first.close()
    second = EmsContext.create(settings)
    assert driver_links.server_secret(second) == secret and len(secret) >= 48
    with second.db() as db:
        assert db.get(AppSecret, driver_links.SECRET_NAME) is not None
    second.close()
    configured = EmsContext.create(settings.model_copy(update={"secret_key": "k" * 20 + "configured-secret"}))
    assert driver_links.server_secret(configured) == "k" * 20 + "configured-secret"
    configured.close()


def test_a_short_secret_key_is_refused() -> None:
    with pytest.raises(ValueError, match="EMS_SECRET_KEY"):
        Settings(secret_key="too-short")


def test_admin_api_mints_links_and_the_widget_opens(ems: RunningEms, session_pk: int) -> None:
    assert httpx.post(f"{ems.url}/api/admin/sessions/{session_pk}/driver_link").status_code == 401
    assert mint(ems, 999).status_code == 404
    reply = mint(ems, session_pk)
    assert reply.status_code == 200
    body = reply.json()
    assert body["url"] == ems.url + body["path"] and body["path"].startswith(f"/driver/{session_pk}.")
    page = httpx.get(body["url"])
    assert page.status_code == 200 and 'data-testid="driver-form"' in page.text
    assert "frame-ancestors *" in page.headers["content-security-policy"]
    assert "x-frame-options" not in page.headers
    assert "set-cookie" not in page.headers
    assert page.headers["referrer-policy"] == "no-referrer"


def test_forged_and_expired_links_are_refused(ems: RunningEms, session_pk: int) -> None:
    token = mint(ems, session_pk).json()["path"].removeprefix("/driver/")
    pk, expiry, signature = token.split(".")
    secret = driver_links.server_secret(ems.ctx)
    expired = driver_links.sign(secret, session_pk, datetime.now(UTC) - timedelta(seconds=5))
    unknown = driver_links.sign(secret, 77, datetime.now(UTC) + timedelta(hours=1))
    for bad in (f"2.{expiry}.{signature}", f"{pk}.{expiry}.{'A' * 43}", expired, unknown, str(session_pk)):
        for path in (f"/driver/{bad}", f"/driver/{bad}/status"):
            reply = httpx.get(ems.url + path)
            assert reply.status_code == 403, path
            assert 'data-testid="driver-refused"' in reply.text
            assert 'data-testid="driver-form"' not in reply.text
        post = httpx.post(
            f"{ems.url}/driver/{bad}", data={"departure": departure_local(3), "soc_arrival_pct": "40"}
        )
        assert post.status_code == 403
    assert preferences(ems) == 0


def test_invalid_preferences_are_explained_and_store_nothing(ems: RunningEms, session_pk: int) -> None:
    url = ems.url + mint(ems, session_pk).json()["path"]
    cases = [
        ({"departure": "", "soc_arrival_pct": "40"}, "departure"),
        ({"departure": departure_local(-2), "soc_arrival_pct": "40"}, "in the future"),
        ({"departure": departure_local(24 * 9), "soc_arrival_pct": "40"}, "within 7 days"),
        ({"departure": "tomorrow", "soc_arrival_pct": "40"}, "not a valid date"),
        ({"departure": departure_local(3), "soc_arrival_pct": "140"}, "between 0 and 100"),
        ({"departure": departure_local(3)}, "state of charge"),
        ({"departure": departure_local(3), "soc_arrival_pct": "20", "energy_need_kwh": "lots"}, "a number"),
        (
            {
                "departure": departure_local(3),
                "soc_arrival_pct": "80",
                "battery_capacity_kwh": "50",
                "energy_need_kwh": "30",
            },
            "at most 10.0 kWh",
        ),
    ]
    for form, message in cases:
        reply = httpx.post(url, data=form)
        assert reply.status_code == 422, form
        assert message in reply.text, (form, reply.text[-2000:])
        htmx = httpx.post(url, data=form, headers={"HX-Request": "true"})
        assert htmx.status_code == 200 and 'data-testid="driver-errors"' in htmx.text
        assert "HX-Trigger" not in htmx.headers
    assert preferences(ems) == 0


def test_preferences_are_saved_announced_and_planned(ems: RunningEms, session_pk: int) -> None:
    events: list[DomainEvent] = []
    ems.ctx.bus.subscribe(events.append)
    url = ems.url + mint(ems, session_pk).json()["path"]
    form = {"departure": departure_local(6), "soc_arrival_pct": "30", "battery_capacity_kwh": "40"}
    reply = httpx.post(url, data=form, headers={"HX-Request": "true"})
    assert reply.status_code == 200 and reply.headers["HX-Trigger"] == "prefs-saved"
    with ems.ctx.db() as db:
        pref = db.scalars(select(ChargingPreference)).one()
    assert (pref.source, pref.soc_arrival_pct, pref.battery_capacity_kwh) == ("driver", 30.0, 40.0)
    assert pref.departure_time is not None
    assert (
        pref.departure_time.astimezone(ZoneInfo("Europe/Paris")).strftime("%Y-%m-%dT%H:%M")
        == form["departure"]
    )
    assert [e.source for e in events if isinstance(e, PreferencesChanged)] == ["driver"]

    assert (
        'data-testid="plan-updating"' in httpx.get(url + "/status").text or "no-plan" in httpx.get(url).text
    )
    Planner(ems.ctx).plan_site("office-pv")
    status = httpx.get(url + "/status").text
    assert 'data-testid="need-met"' in status  # 28 kWh in 6 h at up to 22 kW
    assert "28.0 kWh" in status
    data = json.loads(status.split('id="plan-data">')[1].split("</script>")[0])
    assert data["plan_id"] >= 1 and len(data["t"]) == len(data["power_kw"]) > 0
    assert sum(data["power_kw"]) * data["step_s"] / 3600 == pytest.approx(28.0, abs=0.2)


def test_a_too_short_stay_is_explained(ems: RunningEms, session_pk: int) -> None:
    url = ems.url + mint(ems, session_pk).json()["path"]
    form = {"departure": departure_local(1.1), "soc_arrival_pct": "5", "energy_need_kwh": "60"}
    httpx.post(url, data=form, headers={"HX-Request": "true"})
    Planner(ems.ctx).plan_site("office-pv")
    status = httpx.get(url + "/status").text
    assert 'data-testid="need-unmet"' in status
    assert "stay is too short" in status


def test_links_survive_a_restart(tmp_path: Path) -> None:
    """The secret is kept in the database: a link minted before a restart opens after it."""
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ems.db'}", public_url=f"http://127.0.0.1:{port}"
    )
    ctx = EmsContext.create(settings)
    secret = driver_links.server_secret(ctx)
    token = driver_links.sign(secret, 1, datetime.now(UTC) + timedelta(hours=1))
    ctx.close()
    ctx = EmsContext.create(settings)
    with ThreadedServer(create_app(context=ctx, background=False), port=port) as server:
        # no session 1 in this database: refused for that reason, not for the signature
        reply = httpx.get(f"{server.url}/driver/{token}")
        assert reply.status_code == 403 and "no known charging session" in reply.text
    ctx.close()


def test_a_charge_planned_on_pv_says_so(ems: RunningEms, session_pk: int) -> None:
    """Sunny hours ahead, no price: self-consumption plans the car on the PV, and the widget tells."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    rows = ["timestamp,pv_kw,base_load_kw"]
    for hour in range(12):
        pv_kw = 25.0 if 2 <= hour <= 8 else 0.0
        rows.append(f"{(start + timedelta(hours=hour)).isoformat()},{pv_kw},2.0")
    import_series(ems.ctx, "office-pv", parse_series("\n".join(rows) + "\n"))
    url = ems.url + mint(ems, session_pk).json()["path"]
    httpx.post(url, data={"departure": departure_local(9), "soc_arrival_pct": "50", "energy_need_kwh": "20"})
    Planner(ems.ctx).plan_site("office-pv")
    status = httpx.get(url + "/status").text
    assert 'data-testid="need-met"' in status
    assert "from the site&#39;s solar panels" in status or "from the site's solar panels" in status
