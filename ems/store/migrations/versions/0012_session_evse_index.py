"""session_evse_index: a site's active sessions by its EVSEs, so a plan reads only its own site's

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 02:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_charging_session_evse_status"), "charging_session", ["evse_uid", "status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_charging_session_evse_status"), table_name="charging_session")
