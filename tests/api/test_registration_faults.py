"""Registration that cannot complete: OCPI 3001, 3002, 3003, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ems.ocpi.partners import invite
from tests.conftest import RunningEms, auth
from tests.support.servers import ThreadedServer


class FakeCpo:
    """A CPO whose versions and endpoints a test chooses."""

    def __init__(self) -> None:
        self.versions: list[dict[str, str]] = []
        self.endpoints: list[dict[str, str]] = []
        self.app = FastAPI()

        @self.app.get("/versions")
        def versions() -> dict[str, Any]:
            return {"data": self.versions, "status_code": 1000, "timestamp": "2026-06-01T00:00:00Z"}

        @self.app.get("/2.2.1")
        def details() -> dict[str, Any]:
            return {
                "data": {"version": "2.2.1", "endpoints": self.endpoints},
                "status_code": 1000,
                "timestamp": "2026-06-01T00:00:00Z",
            }


@pytest.fixture
def fake_cpo() -> Iterator[tuple[FakeCpo, str]]:
    cpo = FakeCpo()
    with ThreadedServer(cpo.app) as server:
        yield cpo, server.url


def credentials(url: str) -> dict[str, Any]:
    return {
        "token": "cpo-token-b",
        "url": url,
        "roles": [
            {"role": "CPO", "business_details": {"name": "CPO"}, "country_code": "NL", "party_id": "CPO"}
        ],
    }


def post(ems: RunningEms, token_a: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{ems.url}/ocpi/2.2.1/credentials", json=body, headers=auth(token_a), timeout=10)


def test_3001_when_the_cpo_cannot_be_reached(ems: RunningEms) -> None:
    token_a = invite(ems.ctx, "NL", "CPO", "CPO").token_a
    reply = post(ems, token_a, credentials("http://127.0.0.1:9/versions"))
    assert reply.json()["status_code"] == 3001
    # Nothing changed: token A still works and registration can be retried.
    assert httpx.get(f"{ems.url}/ocpi/versions", headers=auth(token_a)).status_code == 200


def test_3002_without_version_2_2_1(ems: RunningEms, fake_cpo: tuple[FakeCpo, str]) -> None:
    cpo, url = fake_cpo
    cpo.versions = [{"version": "2.1.1", "url": f"{url}/2.1.1"}]
    token_a = invite(ems.ctx, "NL", "CPO", "CPO").token_a
    reply = post(ems, token_a, credentials(f"{url}/versions"))
    assert reply.json()["status_code"] == 3002
    assert "2.1.1" in reply.json()["status_message"]


def test_3003_without_a_chargingprofiles_receiver(ems: RunningEms, fake_cpo: tuple[FakeCpo, str]) -> None:
    cpo, url = fake_cpo
    cpo.versions = [{"version": "2.2.1", "url": f"{url}/2.2.1"}]
    cpo.endpoints = [{"identifier": "sessions", "role": "SENDER", "url": f"{url}/sessions"}]
    token_a = invite(ems.ctx, "NL", "CPO", "CPO").token_a
    reply = post(ems, token_a, credentials(f"{url}/versions"))
    assert reply.json()["status_code"] == 3003
    assert "chargingprofiles" in reply.json()["status_message"]
    assert httpx.get(f"{ems.url}/ocpi/versions", headers=auth(token_a)).status_code == 200


def test_roles_must_name_the_invited_party(ems: RunningEms, fake_cpo: tuple[FakeCpo, str]) -> None:
    cpo, url = fake_cpo
    cpo.versions = [{"version": "2.2.1", "url": f"{url}/2.2.1"}]
    cpo.endpoints = [{"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{url}/cp"}]
    token_a = invite(ems.ctx, "DE", "ABC", "CPO").token_a
    reply = post(ems, token_a, credentials(f"{url}/versions"))
    assert reply.json()["status_code"] == 2001 and "DE" in reply.json()["status_message"]
    # With the right party it goes through, and then token A is void.
    body = credentials(f"{url}/versions")
    body["roles"][0] |= {"country_code": "DE", "party_id": "ABC"}
    reply = post(ems, token_a, body)
    assert reply.json()["status_code"] == 1000, reply.text
    assert httpx.get(f"{ems.url}/ocpi/versions", headers=auth(token_a)).status_code == 401


def test_invalid_credentials_body(ems: RunningEms) -> None:
    token_a = invite(ems.ctx, "NL", "CPO", "CPO").token_a
    body = credentials("not a url") | {"token": "x" * 65}
    reply = post(ems, token_a, body)
    assert reply.status_code == 200
    assert reply.json()["status_code"] == 2001 and "token" in reply.json()["status_message"]
