"""Alembic, driven from code: the server applies migrations on start; `make test` runs the check.

Run as `python -m ems.store.migrate upgrade|check|revision -m MSG` with `EMS_DATABASE_URL` set.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Bring the schema to the latest revision on the given engine's database."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def main(argv: list[str] | None = None) -> int:
    from ems.config import get_settings
    from ems.store.db import make_engine

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in {"upgrade", "check", "revision"}:
        print("usage: python -m ems.store.migrate upgrade|check|revision -m MESSAGE", file=sys.stderr)
        return 2
    settings = get_settings()
    engine = make_engine(settings.database_url)
    if args[0] == "upgrade":
        upgrade(engine)
    elif args[0] == "check":
        upgrade(engine)
        command.check(alembic_config(settings.database_url))
        print("alembic check: the models and the migrations agree")
    else:
        upgrade(engine)
        message = args[args.index("-m") + 1] if "-m" in args else "change"
        command.revision(alembic_config(settings.database_url), message=message, autogenerate=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
