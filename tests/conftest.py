"""Fixtures shared by the whole suite: real servers on 127.0.0.1 and a fresh database each."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from ems.config import Settings
from ems.context import EmsContext
from ems.ocpi.partners import PartnerStatus
from ems.ocpi.tokens import new_token, token_digest
from ems.store.db import transaction
from ems.store.models import Partner
from tests.support.servers import ThreadedServer, free_port

ADMIN_TOKEN = "admin-token-for-the-tests"


@dataclass
class RunningEms:
    ctx: EmsContext
    url: str


@pytest.fixture
def ems(tmp_path: Path) -> Iterator[RunningEms]:
    """The EMS app on a fresh SQLite file, served over real HTTP from a thread."""
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ems.db'}",
        public_url=f"http://127.0.0.1:{port}",
        sqlite_synchronous="NORMAL",
        admin_token=ADMIN_TOKEN,
    )
    ctx = EmsContext.create(settings)
    with ThreadedServer(create_app(context=ctx, background=False), port=port) as server:
        yield RunningEms(ctx, server.url)
    ctx.close()


def add_registered_partner(
    ctx: EmsContext,
    country_code: str = "NL",
    party_id: str = "CPO",
    endpoints: list[dict[str, str]] | None = None,
) -> str:
    """A partner already through the handshake; returns the token it calls us with."""
    token = new_token()
    with transaction(ctx.db) as db:
        db.add(
            Partner(
                country_code=country_code,
                party_id=party_id,
                role="CPO",
                status=PartnerStatus.REGISTERED,
                roles=[
                    {
                        "role": "CPO",
                        "country_code": country_code,
                        "party_id": party_id,
                        "business_details": {"name": "Test CPO"},
                    }
                ],
                endpoints=endpoints or [],
                version="2.2.1",
                token_incoming=token,
                token_incoming_sha256=token_digest(token),
                token_outgoing=new_token(),
            )
        )
    return token


def auth(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


@pytest.fixture
def cpo_client(ems: RunningEms) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as a registered CPO (NL/CPO)."""
    token = add_registered_partner(ems.ctx)
    with httpx.Client(base_url=ems.url, headers=auth(token), timeout=10) as client:
        yield client


@pytest.fixture
def admin_client(ems: RunningEms) -> Iterator[httpx.Client]:
    """An HTTP client of the admin API, with the admin bearer token."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=ems.url + "/api/admin", headers=headers, timeout=10) as client:
        yield client
