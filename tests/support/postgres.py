"""A fresh PostgreSQL database per test, on the throw-away cluster `make test` starts.

`make test` (the Makefile's `postgres` target) starts a cluster from Debian's packages on a
Unix socket and exports `EMS_TEST_POSTGRES_URL` (a maintenance URL). Without it, the PostgreSQL
half of a test is skipped, saying why; with it, each test gets a database of its own, dropped
after.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL_ENV = "EMS_TEST_POSTGRES_URL"


def postgres_database(request: pytest.FixtureRequest) -> str:
    """The SQLAlchemy URL of a new empty database, dropped when the test ends."""
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_URL_ENV} (`make test` starts a cluster and sets it)")
    url = make_url(base)
    name = f"t_{uuid.uuid4().hex[:16]}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    request.addfinalizer(drop)
    return url.set(database=name).render_as_string(hide_password=False)
