"""Groups of sites (territories) in the database, and the limits that come from outside.

A group is stored as its group file (`grid_models.groupfile`, validated whole against the sites
that exist and against every other stored group: a site or a group id is in one group only),
replaced whole by each PUT. Limits a grid operator's system sends (`put_limit`) are kept apart
from the file, one row per (group, limit id), replaced whole by a PUT of the same id from the
same source; the planner sees the file's limits and these together (`StoredGroup.planned`).
Every change publishes `GroupChanged` after its commit, so the group is re-planned at once.

A site deleted after the group was stored stays named in the file; the planner plans the group
without it (`grid_models.group.without_sites`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from ems.core.context import EmsContext
from ems.core.events import GroupChanged
from ems.sites.versions import list_sites
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.groups import GroupLimitRecord, GroupNode, GroupSite, SiteGroup
from grid_models.group import Group, GroupLimit, with_limits
from grid_models.groupfile import (
    GroupValidationError,
    group_from_dict,
    group_to_dict,
    limit_from_dict,
    limit_to_dict,
    validate_group,
)
from grid_models.validation import Problem

MAX_GROUP_ID_CHARS = 58
"""A top-level group's planning unit is `group:<id>` in a 64-character column."""
MAX_NODE_ID_CHARS = 64
MAX_LIMIT_ID_CHARS = 255
MAX_SOURCE_CHARS = 64
GROUP_UNIT_PREFIX = "group:"


class GroupNotFoundError(LookupError):
    """An unknown group, or an unknown limit of a group."""


class GroupConflictError(Exception):
    """Another change to the groups committed first; the caller may retry."""


@dataclass(frozen=True)
class StoredLimit:
    """A limit from outside, as stored for one group of a tree."""

    group_id: str
    limit: GroupLimit
    data: dict[str, Any]
    received_at: datetime


@dataclass(frozen=True)
class StoredGroup:
    """A top-level group: its file as stored, and the limits from outside on its groups."""

    group: Group
    data: dict[str, Any]
    outside_limits: tuple[StoredLimit, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def group_id(self) -> str:
        return self.group.id

    def planned(self) -> Group:
        """The tree the planner plans: the file's limits and the limits from outside together."""
        added: dict[str, list[GroupLimit]] = {}
        for stored in self.outside_limits:
            added.setdefault(stored.group_id, []).append(stored.limit)
        return with_limits(self.group, added)


def group_unit_id(group_id: str) -> str:
    """The planning unit (and the unit of the cluster's lease) of every site under the group."""
    return GROUP_UNIT_PREFIX + group_id


def _stored(db: DbSession, row: SiteGroup) -> StoredGroup:
    limits = db.scalars(
        select(GroupLimitRecord)
        .where(GroupLimitRecord.root_id == row.id)
        .order_by(GroupLimitRecord.group_id, GroupLimitRecord.received_at, GroupLimitRecord.limit_id)
    ).all()
    return StoredGroup(
        group=group_from_dict(row.data),
        data=row.data,
        outside_limits=tuple(
            StoredLimit(r.group_id, limit_from_dict(r.data), r.data, r.received_at) for r in limits
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _publish(ctx: EmsContext, group_id: str, deleted: bool = False) -> None:
    ctx.bus.publish(GroupChanged(group_id, utcnow(), deleted))


def _length_problems(group: Group) -> list[Problem]:
    problems = []
    if len(group.id) > MAX_GROUP_ID_CHARS:
        problems.append(Problem(group.id[:40] + "...", "group", "id", f"longer than {MAX_GROUP_ID_CHARS}"))
    for g in group.walk():
        if g is not group and len(g.id) > MAX_NODE_ID_CHARS:
            problems.append(Problem(g.id[:40] + "...", "group", "id", f"longer than {MAX_NODE_ID_CHARS}"))
        for lim in g.limits:
            problems += _limit_length_problems(lim)
    return problems


def _limit_length_problems(lim: GroupLimit) -> list[Problem]:
    problems = []
    if len(lim.id) > MAX_LIMIT_ID_CHARS:
        problems.append(
            Problem(lim.id[:40] + "...", "group_limit", "id", f"longer than {MAX_LIMIT_ID_CHARS}")
        )
    if len(lim.source) > MAX_SOURCE_CHARS:
        problems.append(Problem(lim.id, "group_limit", "source", f"longer than {MAX_SOURCE_CHARS}"))
    return problems


def _outside_by_group(db: DbSession, root_id: str) -> dict[str, list[GroupLimitRecord]]:
    out: dict[str, list[GroupLimitRecord]] = {}
    for r in db.scalars(select(GroupLimitRecord).where(GroupLimitRecord.root_id == root_id)):
        out.setdefault(r.group_id, []).append(r)
    return out


def put_group(ctx: EmsContext, group_id: str, data: Any) -> tuple[StoredGroup, bool]:
    """Create or replace the whole group file of top-level group `group_id`; True when created.

    Refused whole (`GroupValidationError`, every problem named) when the file is invalid, names
    a site that does not exist, or a site or group id another stored group holds, or a limit id
    a limit from outside holds in the same group. Limits from outside on a group the new file
    no longer has are dropped with it. A PUT of the file as stored changes nothing.
    """
    known = {s.site_id for s in list_sites(ctx)}
    given_id = data.get("id") if isinstance(data, dict) else None
    problems = (
        []
        if given_id == group_id
        else [Problem(group_id, "group", "id", f"must be {group_id!r}, the group put; got {given_id!r}")]
    )
    try:
        group = group_from_dict(data, known)
    except GroupValidationError as exc:
        raise GroupValidationError([*exc.problems, *problems]) from None
    problems += _length_problems(group)
    if problems:
        raise GroupValidationError(problems)
    stored_data = group_to_dict(group)
    nodes = [g.id for g in group.walk()]
    try:
        with transaction(ctx.db) as db:
            row = db.get(SiteGroup, group_id, with_for_update=True)
            if row is not None and row.data == stored_data:
                return _stored(db, row), False
            taken_nodes = db.execute(
                select(GroupNode.id, GroupNode.root_id).where(
                    GroupNode.id.in_(nodes), GroupNode.root_id != group_id
                )
            ).all()
            taken_sites = db.execute(
                select(GroupSite.site_id, GroupSite.root_id).where(
                    GroupSite.site_id.in_(group.site_ids()), GroupSite.root_id != group_id
                )
            ).all()
            problems += [
                Problem(n, "group", "id", f"group id already used in group {r!r}") for n, r in taken_nodes
            ]
            problems += [
                Problem(group_id, "group", "sites", f"site {s!r} is already in group {r!r}")
                for s, r in taken_sites
            ]
            outside = _outside_by_group(db, group_id) if row is not None else {}
            for g in group.walk():
                for lim in g.limits:
                    for r in outside.get(g.id, ()):
                        if r.limit_id == lim.id:
                            problems.append(
                                Problem(
                                    lim.id,
                                    "group_limit",
                                    "id",
                                    f"a limit from {r.source!r} in group {g.id!r} has this id",
                                )
                            )
            if problems:
                raise GroupValidationError(problems)
            now = utcnow()
            created = row is None
            if row is None:
                row = SiteGroup(id=group_id, data=stored_data, created_at=now, updated_at=now)
                db.add(row)
            else:
                row.data, row.updated_at = stored_data, now
                db.execute(delete(GroupNode).where(GroupNode.root_id == group_id))
                db.execute(delete(GroupSite).where(GroupSite.root_id == group_id))
                db.execute(
                    delete(GroupLimitRecord).where(
                        GroupLimitRecord.root_id == group_id, GroupLimitRecord.group_id.not_in(nodes)
                    )
                )
            db.flush()
            db.add_all([GroupNode(id=n, root_id=group_id) for n in nodes])
            db.add_all([GroupSite(site_id=s, root_id=group_id) for s in group.site_ids()])
            db.flush()
            result = _stored(db, row)
    except IntegrityError as exc:
        raise GroupConflictError(
            f"group {group_id!r} or one of its sites changed meanwhile: try again"
        ) from exc
    _publish(ctx, group_id)
    return result, created


def get_group(ctx: EmsContext, group_id: str) -> StoredGroup:
    with ctx.db() as db:
        row = db.get(SiteGroup, group_id)
        if row is None:
            raise GroupNotFoundError(f"unknown group {group_id!r}")
        return _stored(db, row)


def list_groups(ctx: EmsContext) -> list[StoredGroup]:
    with ctx.db() as db:
        return [_stored(db, row) for row in db.scalars(select(SiteGroup).order_by(SiteGroup.id))]


def delete_group(ctx: EmsContext, group_id: str) -> None:
    """Forget the group and its limits from outside; its sites are planned alone again."""
    with transaction(ctx.db) as db:
        row = db.get(SiteGroup, group_id, with_for_update=True)
        if row is None:
            raise GroupNotFoundError(f"unknown group {group_id!r}")
        for table in (GroupLimitRecord, GroupSite, GroupNode):
            db.execute(delete(table).where(table.root_id == group_id))
        db.delete(row)
    _publish(ctx, group_id, deleted=True)


def _root_of(db: DbSession, group_id: str) -> SiteGroup:
    root_id = db.scalar(select(GroupNode.root_id).where(GroupNode.id == group_id))
    row = db.get(SiteGroup, root_id, with_for_update=True) if root_id is not None else None
    if row is None:
        raise GroupNotFoundError(f"unknown group {group_id!r}")
    return row


def put_limit(ctx: EmsContext, group_id: str, data: Any) -> tuple[StoredGroup, bool]:
    """Store a limit from outside on `group_id` (a top-level or a nested group), in the group
    file's limit shape; True when new. A limit of the same id from the same source is replaced
    whole; refused whole when invalid or when its id is the group file's, or another source's, in
    that group. The group is re-planned at once (`GroupChanged`)."""
    limit = limit_from_dict(data)
    problems = _limit_length_problems(limit)
    if problems:
        raise GroupValidationError(problems)
    stored_data = limit_to_dict(limit)
    try:
        with transaction(ctx.db) as db:
            root = _root_of(db, group_id)
            node = group_from_dict(root.data).find(group_id)
            assert node is not None
            if any(lim.id == limit.id for lim in node.limits):
                problems.append(
                    Problem(
                        limit.id,
                        "group_limit",
                        "id",
                        f"is a limit of group {group_id!r}'s file: change the file",
                    )
                )
            existing = db.get(GroupLimitRecord, (group_id, limit.id), with_for_update=True)
            if existing is not None and existing.source != limit.source:
                problems.append(
                    Problem(
                        limit.id,
                        "group_limit",
                        "source",
                        f"limit id already used by source {existing.source!r}",
                    )
                )
            if problems:
                raise GroupValidationError(problems)
            now = utcnow()
            if existing is None:
                db.add(
                    GroupLimitRecord(
                        group_id=group_id,
                        limit_id=limit.id,
                        root_id=root.id,
                        source=limit.source,
                        data=stored_data,
                        received_at=now,
                    )
                )
            else:
                existing.data, existing.received_at = stored_data, now
            root.updated_at = now
            db.flush()
            result = _stored(db, root)
            problems = validate_group(result.planned())
            if problems:  # nothing above lets this happen; refused whole if it ever does
                raise GroupValidationError(problems)
    except IntegrityError as exc:
        raise GroupConflictError(
            f"limit {limit.id!r} of group {group_id!r} changed meanwhile: try again"
        ) from exc
    _publish(ctx, result.group_id)
    return result, existing is None


def delete_limit(ctx: EmsContext, group_id: str, limit_id: str) -> StoredGroup:
    """Withdraw a limit from outside (a grid operator cancelling its request)."""
    with transaction(ctx.db) as db:
        root = _root_of(db, group_id)
        row = db.get(GroupLimitRecord, (group_id, limit_id), with_for_update=True)
        if row is None:
            raise GroupNotFoundError(f"group {group_id!r} has no limit {limit_id!r} from outside")
        db.delete(row)
        root.updated_at = utcnow()
        db.flush()
        result = _stored(db, root)
    _publish(ctx, result.group_id)
    return result


def groups_of_sites(ctx: EmsContext) -> Mapping[str, str]:
    """Each site under a stored group, with its top-level group's id."""
    with ctx.db() as db:
        return {site: root for site, root in db.execute(select(GroupSite.site_id, GroupSite.root_id))}


def groups_stamp(ctx: EmsContext) -> tuple[datetime | None, int]:
    """Changes whenever a group or one of its limits changes, or a group is deleted: a cache of
    the groups (the planner's) checks it instead of hearing every process's events."""
    with ctx.db() as db:
        latest, count = db.execute(select(func.max(SiteGroup.updated_at), func.count(SiteGroup.id))).one()
    return latest, int(count or 0)
