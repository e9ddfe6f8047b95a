"""Engine and session factory: one place that knows how to open the database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool


def make_engine(database_url: str, sqlite_synchronous: str = "FULL", timeout_s: float = 30.0) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    `timeout_s` bounds how long a request waits for the database (SQLite's write lock, a
    server's connection) before it fails, so that a client is told to retry rather than hang.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_timeout=timeout_s,
            connect_args={"connect_timeout": max(1, round(timeout_s))},
        )
    in_memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": timeout_s}}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={round(timeout_s * 1000)}")
        cursor.close()

    return engine


_WRITE_LOCKS: dict[int, threading.Lock] = {}


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    if engine.url.get_backend_name() == "sqlite":
        _WRITE_LOCKS[id(factory)] = threading.Lock()
    return factory


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed whole on success, rolled back whole on any error.

    SQLite has one writer at a time: threads of this process queue on a lock instead of
    polling SQLite's busy handler, whose back-off sleeps (up to 100 ms) made the tail latency.
    """
    lock = _WRITE_LOCKS.get(id(factory))
    if lock is None:
        with factory() as session, session.begin():
            yield session
        return
    with lock, factory() as session, session.begin():
        yield session
