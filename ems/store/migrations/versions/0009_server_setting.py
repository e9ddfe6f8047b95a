"""server settings: the public URL the last `ems serve` advertises, for the other commands

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ems.store.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "server_setting",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=2048), nullable=False),
        sa.Column("updated_at", ems.store.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_setting")),
    )


def downgrade() -> None:
    op.drop_table("server_setting")
