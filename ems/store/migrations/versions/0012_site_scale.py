"""site_scale: a site's active sessions by its EVSEs, so a plan reads only its own site's; columns
that hold a site id as long as the site table's (255), which PostgreSQL enforces

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_WIDENED = (
    ("series_point", "site_id", 64, 255),
    ("plan_record", "site_id", 64, 255),
    ("planning_demand", "unit_id", 64, 261),
)

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_charging_session_evse_status"), "charging_session", ["evse_uid", "status"])
    for table, column, before, after in _WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(after), existing_type=sa.String(before))


def downgrade() -> None:
    for table, column, before, after in _WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(before), existing_type=sa.String(after))
    op.drop_index(op.f("ix_charging_session_evse_status"), table_name="charging_session")
