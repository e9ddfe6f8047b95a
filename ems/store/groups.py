"""Tables of site groups (territories, issue #19): the group file as stored, which node and
site belong to which group, and the limits that came from outside (a grid operator's system).

A group is kept as its current file plus `updated_at` (touched by every change to it or to one
of its limits), not versioned like a site: a plan already records every limit value and id it
kept at each step (`plan_record.result["group_limits"]`), which is what an audit of a plan
needs; the membership at a plan's time is in the same record.

`group_node` and `group_site` hold, per nested group id and per site id, the top-level group
it belongs to: the database refuses a site or a group id in two groups, even for two PUTs
racing on two replicas, and the planner finds a site's group by one indexed read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from ems.store.base import Base, utcnow


class SiteGroup(Base):
    """A top-level group: its group file exactly as `grid_models.group_to_dict` writes it."""

    __tablename__ = "site_group"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupNode(Base):
    """Every group of a stored tree (the top-level one included), by its id."""

    __tablename__ = "group_node"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    root_id: Mapped[str] = mapped_column(ForeignKey("site_group.id", ondelete="CASCADE"), index=True)


class GroupSite(Base):
    """A site under a stored group (a site is in at most one)."""

    __tablename__ = "group_site"

    site_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    root_id: Mapped[str] = mapped_column(ForeignKey("site_group.id", ondelete="CASCADE"), index=True)


class GroupLimitRecord(Base):
    """A limit PUT from outside for one group of a tree (`group_id`, nested or not), in the
    group file's limit shape; a PUT of the same id and source replaces it whole."""

    __tablename__ = "group_limit"

    group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    root_id: Mapped[str] = mapped_column(ForeignKey("site_group.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
