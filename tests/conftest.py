"""Fixtures shared by the whole suite: real servers on 127.0.0.1 and a fresh database each."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.partners import Caller, PartnerStatus
from ems.ocpi.schemas import Session
from ems.ocpi.sessions import put_session
from ems.ocpi.tokens import new_token, token_digest
from ems.store.db import transaction
from ems.store.models import Partner
from tests.support.ocpi_objects import session
from tests.support.postgres import postgres_database
from tests.support.servers import ThreadedServer, free_port

ADMIN_TOKEN = "admin-token-for-the-tests"


@dataclass
class RunningEms:
    ctx: EmsContext
    url: str


POSTGRES_TESTED = (
    "tests/api",
    "tests/ems/store",
    "tests/ems/planning",
    "tests/ems/ocpi",
    "tests/ems/dispatch",
    "tests/ems/cluster",
    "tests/ems/sites/test_groups.py",
)
"""Where the `ems` and `database_url` fixtures run on PostgreSQL too (issue #18): the storage,
OCPI, planner, dispatch and cluster tests, and the stored groups."""
DATABASE_FIXTURES = ("ems", "database_url")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    used = [name for name in DATABASE_FIXTURES if name in metafunc.fixturenames]
    if not used:
        return
    where = Path(str(metafunc.definition.path)).resolve().relative_to(Path(__file__).resolve().parents[1])
    backends = ["sqlite"]
    if any(str(where).startswith(prefix) for prefix in POSTGRES_TESTED):
        backends.append("postgresql")
    metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database: a SQLite file, or a new PostgreSQL database where the test is
    parametrized so."""
    backend = getattr(request, "param", "sqlite")
    return postgres_database(request) if backend == "postgresql" else f"sqlite:///{tmp_path / 'ems.db'}"


@pytest.fixture
def ems(database_url: str) -> Iterator[RunningEms]:
    """The EMS app on a fresh database (`database_url`), served over real HTTP from a thread."""
    port = free_port()
    settings = Settings(
        database_url=database_url,
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


def ems_with_active_sessions(
    database: Path, session_ids: tuple[str, ...], start: datetime
) -> tuple[EmsContext, Caller]:
    """An EMS on a fresh SQLite file, a registered CPO, and these sessions of it started at
    `start`; returns the context and the CPO as a caller."""
    ctx = EmsContext.create(Settings(database_url=f"sqlite:///{database}"))
    add_registered_partner(ctx)
    caller = registered_caller(ctx)
    push_active_sessions(ctx, caller, session_ids, start)
    return ctx, caller


def registered_caller(ctx: EmsContext) -> Caller:
    """The partner `add_registered_partner` added first, as it calls us."""
    with ctx.db() as db:
        partner = db.get(Partner, 1)
        assert partner is not None
        return Caller.of(partner, with_token_a=False)


def push_active_sessions(
    ctx: EmsContext, caller: Caller, session_ids: Sequence[str], start: datetime
) -> None:
    """These sessions pushed by `caller`, started at `start`, nothing drawn yet."""
    stamp = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    for sid in session_ids:
        body = session(sid, status="ACTIVE", kwh=0.0, start_date_time=stamp, last_updated=stamp)
        put_session(ctx, caller, "NL", "CPO", sid, Session.model_validate(body))
