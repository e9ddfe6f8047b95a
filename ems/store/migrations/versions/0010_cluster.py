"""cluster: shared event log, planning demands with leases, once-per-cluster job runs, log-in failures

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import ems.store.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "domain_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", ems.store.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_domain_event")),
    )
    op.create_table(
        "planning_demand",
        sa.Column("unit_id", sa.String(length=64), nullable=False),
        sa.Column("dirty_seq", sa.Integer(), nullable=False),
        sa.Column("planned_seq", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("first_dirty_wall", ems.store.base.UtcDateTime(), nullable=True),
        sa.Column("last_dirty_wall", ems.store.base.UtcDateTime(), nullable=True),
        sa.Column("triggers", sa.String(length=256), nullable=False),
        sa.Column("triggered_at", ems.store.base.UtcDateTime(), nullable=True),
        sa.Column("lease_holder", sa.String(length=96), nullable=True),
        sa.Column("lease_until_wall", ems.store.base.UtcDateTime(), nullable=True),
        sa.Column("queued_wall", ems.store.base.UtcDateTime(), nullable=True),
        sa.Column("replan_at", ems.store.base.UtcDateTime(), nullable=True),
        sa.Column("phase_waits", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("unit_id", name=op.f("pk_planning_demand")),
    )
    op.create_index("ix_planning_demand_pending", "planning_demand", ["pending", "last_dirty_wall"])
    op.create_table(
        "cluster_job_run",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=96), nullable=False),
        sa.Column("started_at", ems.store.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "slot", name=op.f("pk_cluster_job_run")),
    )

    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("at", ems.store.base.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    op.create_index("ix_login_failure_key_at", "login_failure", ["key", "at"])


def downgrade() -> None:
    op.drop_index("ix_login_failure_key_at", table_name="login_failure")
    op.drop_table("login_failure")
    op.drop_table("cluster_job_run")
    op.drop_index("ix_planning_demand_pending", table_name="planning_demand")
    op.drop_table("planning_demand")
    op.drop_table("domain_event")
