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

from collections.abc import Callable, Iterator, Mapping, Sequence
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

MAX_GROUP_ID_CHARS = 64
"""The group tables' id column (a top-level group's planning unit, `group:<id>`, fits its own)."""
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


def _unique(problems: Sequence[Problem]) -> list[Problem]:
    """Each problem once, in the order first named (two checks may see the same)."""
    return list(dict.fromkeys(problems))


def _dict_walk(tree: Any) -> Iterator[dict[str, Any]]:
    """The groups of a group file as given, valid or not: each object with a string id."""
    if not isinstance(tree, dict):
        return
    if isinstance(tree.get("id"), str):
        yield tree
    children = tree.get("groups")
    for child in children if isinstance(children, list) else []:
        yield from _dict_walk(child)


def _ids(items: Any) -> list[str]:
    """The string ids in a list of ids or of objects with an id, valid or not."""
    if not isinstance(items, list):
        return []
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    return [i for i in ids if isinstance(i, str) and i]


def _held_problems(db: DbSession, trees: Mapping[str, Any], affected: Sequence[str]) -> list[Problem]:
    """What the stored groups hold against the group files `trees` (by top-level id) replacing
    the trees `affected`: a group id or a site in another stored tree or in two of `trees`, a
    file limit taking the id of a limit from outside in its group. Read from the files as given
    (valid or not), so a refused file names these problems with its own."""
    problems: list[Problem] = []
    node_root: dict[str, str] = {}
    site_root: dict[str, str] = {}
    for root_id, tree in trees.items():
        for node in _dict_walk(tree):
            node_id = node["id"]
            if node_root.setdefault(node_id, root_id) != root_id:
                problems.append(
                    Problem(node_id, "group", "id", f"group id already used in group {node_root[node_id]!r}")
                )
            for site in _ids(node.get("sites")):
                if site_root.setdefault(site, root_id) != root_id:
                    problems.append(
                        Problem(
                            node_id,
                            "group",
                            "sites",
                            f"site {site!r} is already in group {site_root[site]!r}",
                        )
                    )
    taken_nodes = db.execute(
        select(GroupNode.id, GroupNode.root_id).where(
            GroupNode.id.in_(node_root), GroupNode.root_id.not_in(affected)
        )
    ).all()
    taken_sites = db.execute(
        select(GroupSite.site_id, GroupSite.root_id).where(
            GroupSite.site_id.in_(site_root), GroupSite.root_id.not_in(affected)
        )
    ).all()
    problems += [Problem(n, "group", "id", f"group id already used in group {r!r}") for n, r in taken_nodes]
    problems += [
        Problem(site_root[s], "group", "sites", f"site {s!r} is already in group {r!r}")
        for s, r in taken_sites
    ]
    limit_ids = {
        node["id"]: set(_ids(node.get("limits"))) for tree in trees.values() for node in _dict_walk(tree)
    }
    outside = db.scalars(select(GroupLimitRecord).where(GroupLimitRecord.root_id.in_(affected))).all()
    for record in outside:
        if record.limit_id in limit_ids.get(record.group_id, ()):
            problems.append(
                Problem(
                    record.limit_id,
                    "group_limit",
                    "id",
                    f"a limit from {record.source!r} in group {record.group_id!r} has this id",
                )
            )
    return problems


def _write_trees(
    db: DbSession, trees: Mapping[str, Group | None]
) -> tuple[dict[str, StoredGroup], set[str], bool]:
    """Store whole top-level trees by id (None: delete that tree) in the caller's transaction:
    the stored trees, the ids created, and whether anything changed (False: every tree was
    already stored as given, nothing written).

    Refused whole (`GroupValidationError`) when a group id or a site is held by a tree not
    written here or by two of those written, or a file limit takes the id a limit from outside
    has in its group. A limit from outside follows its group into the tree now holding it;
    one on a group no tree has any more is dropped.
    """
    affected = sorted(trees)
    rows = {root_id: db.get(SiteGroup, root_id, with_for_update=True) for root_id in affected}
    data = {root_id: group_to_dict(g) for root_id, g in trees.items() if g is not None}
    stored_data = {root_id: row.data for root_id, row in rows.items() if row is not None}
    if stored_data == data:
        return {root_id: _stored(db, row) for root_id, row in rows.items() if row is not None}, set(), False
    problems = _held_problems(db, data, affected)
    node_root = {g.id: root_id for root_id, group in trees.items() if group for g in group.walk()}
    site_root = {s: root_id for root_id, group in trees.items() if group for s in group.site_ids()}
    outside = db.scalars(select(GroupLimitRecord).where(GroupLimitRecord.root_id.in_(affected))).all()
    if problems:
        raise GroupValidationError(problems)
    now = utcnow()
    created: set[str] = set()
    for root_id in affected:
        row = rows[root_id]
        if root_id not in data:
            continue
        if row is None:
            rows[root_id] = SiteGroup(id=root_id, data=data[root_id], created_at=now, updated_at=now)
            db.add(rows[root_id])
            created.add(root_id)
        else:
            row.data, row.updated_at = data[root_id], now
    db.execute(delete(GroupNode).where(GroupNode.root_id.in_(affected)))
    db.execute(delete(GroupSite).where(GroupSite.root_id.in_(affected)))
    db.flush()
    for record in outside:
        if record.group_id in node_root:
            record.root_id = node_root[record.group_id]
        else:
            db.delete(record)
    db.flush()
    for root_id in affected:
        row = rows[root_id]
        if root_id not in data and row is not None:
            db.delete(row)
    db.add_all([GroupNode(id=n, root_id=r) for n, r in node_root.items()])
    db.add_all([GroupSite(site_id=s, root_id=r) for s, r in site_root.items()])
    db.flush()
    return (
        {root_id: _stored(db, row) for root_id, row in rows.items() if root_id in data and row},
        created,
        True,
    )


def _conflict(what: str) -> GroupConflictError:
    return GroupConflictError(f"{what} changed meanwhile: try again")


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
        with ctx.db() as db:
            held = _held_problems(db, {group_id: data}, [group_id])
        raise GroupValidationError(_unique([*exc.problems, *problems, *held])) from None
    problems += _length_problems(group)
    if problems:
        raise GroupValidationError(problems)
    try:
        with transaction(ctx.db) as db:
            stored, created, changed = _write_trees(db, {group_id: group})
    except IntegrityError as exc:
        raise _conflict(f"group {group_id!r} or one of its sites") from exc
    if changed:
        _publish(ctx, group_id)
    return stored[group_id], group_id in created


def _changed_node(
    tree: dict[str, Any], node_id: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """The group file `tree` with its group `node_id` replaced by `change(it)` (None: removed)."""
    if tree.get("id") == node_id:
        return change(tree)
    if not tree.get("groups"):
        return tree
    children = [_changed_node(child, node_id, change) for child in tree["groups"]]
    return {**tree, "groups": [child for child in children if child is not None]}


def _node_dict(tree: dict[str, Any], node_id: str) -> dict[str, Any] | None:
    if tree.get("id") == node_id:
        return tree
    return next(
        (found for child in tree.get("groups") or [] if (found := _node_dict(child, node_id)) is not None),
        None,
    )


def _parent_id(tree: dict[str, Any], node_id: str) -> str | None:
    for child in tree.get("groups") or []:
        if child.get("id") == node_id:
            return str(tree["id"])
        found = _parent_id(child, node_id)
        if found is not None:
            return found
    return None


def put_node(
    ctx: EmsContext, node_id: str, data: Any, parent_id: str | None, *, create: bool
) -> tuple[StoredGroup, bool]:
    """Create (`create`) or change one group of the stored trees, top-level or nested, as the
    admin page edits it: its own `name`, `sites` and `limits` from `data` (the group file's
    shape; a group's nested groups are kept as stored and go with it), under group `parent_id`
    (None: a top-level group). The top-level trees it leaves and joins are stored together, in
    one transaction, through the same checks as `put_group`; refused whole with every problem
    named (an id already used, an unknown parent, a group put under itself or one of its own
    groups, a group left with no site...). The tree now holding it, and True when created.
    """
    if not isinstance(data, dict):
        raise GroupValidationError(
            [Problem(node_id, "group", "", f"must be an object, got {type(data).__name__}")]
        )
    parent_id = parent_id or None
    known = {s.site_id for s in list_sites(ctx)}
    problems: list[Problem] = []
    if data.get("id") != node_id:
        problems.append(
            Problem(node_id, "group", "id", f"must be {node_id!r}, the group put; got {data.get('id')!r}")
        )
    node = {k: v for k, v in data.items() if k != "groups"}
    try:
        with transaction(ctx.db) as db:
            wanted = [i for i in (node_id, parent_id) if i]
            located: dict[str, str] = {
                node: root
                for node, root in db.execute(
                    select(GroupNode.id, GroupNode.root_id).where(GroupNode.id.in_(wanted))
                )
            }
            old_root_id = None if create else located.get(node_id)
            if create and node_id in located:
                problems.append(
                    Problem(node_id, "group", "id", f"group id already used in group {located[node_id]!r}")
                )
            if not create and old_root_id is None:
                raise GroupNotFoundError(f"unknown group {node_id!r}")
            parent_root_id = located.get(parent_id) if parent_id else None
            if parent_id and parent_root_id is None:
                problems.append(Problem(node_id, "group", "parent", f"unknown group {parent_id!r}"))
            stored_trees: dict[str, dict[str, Any]] = {}
            for root_id in sorted({r for r in (old_root_id, parent_root_id) if r is not None}):
                row = db.get(SiteGroup, root_id, with_for_update=True)
                assert row is not None  # group_node rows go with their tree
                stored_trees[root_id] = row.data
            old_parent_id = None
            if old_root_id is not None:
                current = _node_dict(stored_trees[old_root_id], node_id)
                assert current is not None
                if "groups" in current:
                    node["groups"] = current["groups"]
                old_parent_id = _parent_id(stored_trees[old_root_id], node_id)
                if parent_id and _node_dict(current, parent_id) is not None:
                    problems.append(
                        Problem(
                            node_id,
                            "group",
                            "parent",
                            f"group {parent_id!r} is {node_id!r} itself or one of its groups: "
                            "a group cannot be put under itself",
                        )
                    )
            if problems:  # where it would go is unclear: name what else is wrong with the group itself
                try:
                    group_from_dict(node, known)
                except GroupValidationError as exc:
                    problems += exc.problems
                problems += _held_problems(db, {node_id: node}, [r for r in (old_root_id,) if r])
                raise GroupValidationError(_unique(problems))
            new_trees: dict[str, dict[str, Any] | None] = dict(stored_trees)
            if old_root_id is not None and old_parent_id == parent_id:
                new_trees[old_root_id] = _changed_node(stored_trees[old_root_id], node_id, lambda _: node)
            else:
                if old_root_id is not None:
                    new_trees[old_root_id] = _changed_node(stored_trees[old_root_id], node_id, lambda _: None)
                if parent_id is None or parent_root_id is None:
                    new_trees[node_id] = node
                else:
                    base = new_trees[parent_root_id]
                    assert base is not None  # not the group moved: a group is not put under itself
                    new_trees[parent_root_id] = _changed_node(
                        base,
                        parent_id,
                        lambda parent: {**parent, "groups": [*(parent.get("groups") or []), node]},
                    )
            parsed: dict[str, Group | None] = {}
            for root_id, tree in new_trees.items():
                if tree is None:
                    parsed[root_id] = None
                    continue
                try:
                    group = group_from_dict(tree, known)
                except GroupValidationError as exc:
                    problems += exc.problems
                    continue
                problems += _length_problems(group)
                parsed[root_id] = group
            if problems:
                written = {root_id: tree for root_id, tree in new_trees.items() if tree is not None}
                problems += _held_problems(db, written, sorted(new_trees))
                raise GroupValidationError(_unique(problems))
            stored, _created, changed = _write_trees(db, parsed)
    except IntegrityError as exc:
        raise _conflict(f"group {node_id!r} or one of its sites") from exc
    if changed:
        for root_id, tree_group in parsed.items():
            _publish(ctx, root_id, deleted=tree_group is None)
    holder = parent_root_id if parent_id else node_id
    assert holder is not None
    return stored[holder], create


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


def delete_node(ctx: EmsContext, node_id: str) -> StoredGroup | None:
    """Forget a group of the stored trees and the groups under it, with their limits from
    outside; their sites are planned alone again. A nested group leaves its tree, which is
    stored without it (refused whole when that leaves a group with no site): that tree; None
    for a top-level group (`delete_group`)."""
    with ctx.db() as db:
        root_id = db.scalar(select(GroupNode.root_id).where(GroupNode.id == node_id))
    if root_id is None:
        raise GroupNotFoundError(f"unknown group {node_id!r}")
    if root_id == node_id:
        delete_group(ctx, node_id)
        return None
    known = {s.site_id for s in list_sites(ctx)}
    try:
        with transaction(ctx.db) as db:
            row = db.get(SiteGroup, root_id, with_for_update=True)
            tree = _changed_node(row.data, node_id, lambda _: None) if row is not None else None
            if row is None or tree is None or _node_dict(row.data, node_id) is None:
                raise GroupNotFoundError(f"unknown group {node_id!r}")  # deleted or moved meanwhile
            stored, _, _ = _write_trees(db, {root_id: group_from_dict(tree, known)})
    except IntegrityError as exc:
        raise _conflict(f"group {root_id!r}") from exc
    _publish(ctx, root_id)
    return stored[root_id]


def tree_of(ctx: EmsContext, node_id: str) -> StoredGroup:
    """The stored top-level group holding group `node_id` (itself or one of its groups)."""
    with ctx.db() as db:
        root_id = db.scalar(select(GroupNode.root_id).where(GroupNode.id == node_id))
        row = db.get(SiteGroup, root_id) if root_id is not None else None
        if row is None:
            raise GroupNotFoundError(f"unknown group {node_id!r}")
        return _stored(db, row)


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
