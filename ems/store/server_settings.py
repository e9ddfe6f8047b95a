"""Named values one command leaves for the others sharing the database (see `ServerSetting`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ems.store.base import utcnow
from ems.store.models import ServerSetting

PUBLIC_URL = "public_url"


def read_server_setting(db: Session, name: str) -> str | None:
    row = db.get(ServerSetting, name)
    return None if row is None else row.value


def write_server_setting(db: Session, name: str, value: str) -> None:
    """Insert or replace; the caller's transaction decides when it is visible."""
    row = db.get(ServerSetting, name)
    if row is None:
        db.add(ServerSetting(name=name, value=value, updated_at=utcnow()))
    else:
        row.value = value
        row.updated_at = utcnow()
