"""The database unavailable: the EMS answers OCPI 3000 with HTTP 503 and stores nothing; it never
acknowledges a push it could not keep. The CPO's retry, once the database is back, is stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from ems.core.config import Settings
from ems.core.context import EmsContext
from tests.conftest import add_registered_partner, auth
from tests.support.ocpi_objects import location, session
from tests.support.servers import ThreadedServer, free_port

SESSION_URL = "/ocpi/2.2.1/sessions/NL/CPO/s1"
LOCATION_URL = "/ocpi/2.2.1/locations/NL/CPO/LOC1"


@pytest.fixture
def ems_and_file(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path]]:
    path = tmp_path / "ems.db"
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{path}", public_url=f"http://127.0.0.1:{port}", database_timeout_s=0.5
    )
    ctx = EmsContext.create(settings)
    token = add_registered_partner(ctx)
    with (
        ThreadedServer(create_app(context=ctx, background=False), port=port) as server,
        httpx.Client(base_url=server.url, headers=auth(token), timeout=10) as client,
    ):
        yield client, path
    ctx.close()


def test_a_locked_database_is_a_3000_and_the_retry_is_stored(ems_and_file: tuple[httpx.Client, Path]) -> None:
    client, path = ems_and_file
    other_writer = sqlite3.connect(path, isolation_level=None)
    other_writer.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        for method, url, body in (("PUT", SESSION_URL, session()), ("PUT", LOCATION_URL, location())):
            reply = client.request(method, url, json=body)
            assert reply.status_code == 503, reply.text
            envelope = reply.json()
            assert envelope["status_code"] == 3000 and "nothing was stored" in envelope["status_message"]
            assert reply.headers["Retry-After"] == "5"
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()
    assert client.get(SESSION_URL).status_code == 404
    assert client.put(SESSION_URL, json=session()).json()["status_code"] == 1000
    assert client.get(SESSION_URL).json()["data"]["id"] == "s1"


def test_a_read_only_database_is_a_3000(tmp_path: Path) -> None:
    """The file opened read-only (a read-only mount, a replica): pushes are refused, reads served."""
    path = tmp_path / "ems.db"
    writable = EmsContext.create(Settings(database_url=f"sqlite:///{path}"))
    token = add_registered_partner(writable)
    writable.close()
    port = free_port()
    read_only = EmsContext.create(
        Settings(
            database_url=f"sqlite:///file:{path}?mode=ro&uri=true", public_url=f"http://127.0.0.1:{port}"
        ),
        migrate=False,
    )
    with (
        ThreadedServer(create_app(context=read_only, background=False), port=port) as server,
        httpx.Client(base_url=server.url, headers=auth(token), timeout=10) as client,
    ):
        reply = client.put(SESSION_URL, json=session())
        assert reply.status_code == 503, reply.text
        assert reply.json()["status_code"] == 3000
        assert client.get(SESSION_URL).status_code == 404
    read_only.close()
