"""a session's token uid as a column, and a token's history index on it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_uid", sa.String(length=36), nullable=True))
    sessions = sa.table("charging_session", sa.column("cdr_token", sa.JSON()), sa.column("token_uid"))
    op.execute(sessions.update().values(token_uid=sessions.c.cdr_token["uid"].as_string()))
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_session_history")
        batch_op.create_index(
            "ix_charging_session_token_history",
            ["partner_id", "token_uid", "status", "start_date_time"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("charging_session", schema=None) as batch_op:
        batch_op.drop_index("ix_charging_session_token_history")
        batch_op.create_index(
            "ix_charging_session_history", ["partner_id", "status", "start_date_time"], unique=False
        )
        batch_op.drop_column("token_uid")
