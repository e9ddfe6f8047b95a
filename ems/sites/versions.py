"""Storage of versioned sites: every change a new, whole-site-validated version.

Every change is one transaction that loads the current site file, applies the change to it,
re-validates the WHOLE site with `grid_models` (so a bad change stores nothing and names every
problem) and stores the result as a new version. Old versions are never rewritten: a plan
records the version it was computed on. `SiteChanged` is published after the commit.

Apart from `elements` and `unplaced` because both build on it: they are changes (`_change`)
to the file this module stores, and it knows nothing of either.
"""

from __future__ import annotations

import copy
import json
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from ems.core.context import EmsContext
from ems.core.events import SiteChanged
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.models import Site as SiteRow
from ems.store.models import SiteVersion as SiteVersionRow
from grid_models.site import Site
from grid_models.sitefile import site_from_dict, site_to_dict
from grid_models.validation import Problem, SiteValidationError

MAX_SITE_ID_CHARS = 255


class SiteNotFoundError(LookupError):
    """An unknown site, version, element or unplaced connector."""


class SiteExistsError(Exception):
    """Creating a site whose id is already in use."""


class SiteConflictError(Exception):
    """Another change to the same site committed first; the caller may retry."""


@dataclass(frozen=True)
class Change:
    """Who made a change and why, kept with the version it creates."""

    comment: str | None = None
    author: str | None = None


@dataclass(frozen=True)
class StoredSite:
    """One version of a site: the validated model and the site file exactly as stored."""

    site: Site
    version: int
    data: dict[str, Any]
    created_at: datetime
    comment: str | None
    author: str | None


@dataclass(frozen=True)
class SiteSummary:
    site_id: str
    name: str
    current_version: int
    created_at: datetime
    updated_at: datetime
    timezone: str = "UTC"
    """The site's zone, in which its times are shown."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    created_at: datetime
    comment: str | None
    author: str | None


def _parse(data: Any) -> tuple[Site, dict[str, Any]]:
    """The site and its file as it will be stored; `SiteValidationError` naming every problem."""
    site = site_from_dict(data)
    stored = site_to_dict(site)
    problems: list[Problem] = []
    if len(site.id) > MAX_SITE_ID_CHARS:
        problems.append(Problem(site.id[:40] + "...", "site", "id", f"longer than {MAX_SITE_ID_CHARS}"))
    try:
        json.dumps(stored, allow_nan=False)
    except ValueError:
        problems.append(Problem(site.id, "site", "", "NaN or Infinity is not valid JSON"))
    if problems:
        raise SiteValidationError(problems)
    return site, stored


def _live(db: DbSession, site_id: str, *, lock: bool = False) -> SiteRow | None:
    row = db.get(SiteRow, site_id, with_for_update=lock)
    return row if row is not None and row.deleted_at is None else None


def _require(db: DbSession, site_id: str, *, lock: bool = False) -> SiteRow:
    row = _live(db, site_id, lock=lock)
    if row is None:
        raise SiteNotFoundError(f"unknown site {site_id!r}")
    return row


def _version_row(db: DbSession, site_id: str, version: int) -> SiteVersionRow:
    row = db.scalars(
        select(SiteVersionRow).where(SiteVersionRow.site_id == site_id, SiteVersionRow.version == version)
    ).one_or_none()
    if row is None:
        raise SiteNotFoundError(f"site {site_id!r} has no version {version}")
    return row


_PARSED: weakref.WeakKeyDictionary[sessionmaker[DbSession], dict[tuple[str, int], Site]] = (
    weakref.WeakKeyDictionary()
)
_PARSED_LOCK = threading.Lock()
PARSED_PER_DATABASE = 256
"""Parsed site versions kept per database (a version is never rewritten, so never stale)."""


def _parsed(ctx: EmsContext, site_id: str, version: int) -> Site | None:
    with _PARSED_LOCK:
        return _PARSED.get(ctx.db, {}).get((site_id, version))


def _remember(ctx: EmsContext, site: Site, version: int) -> Site:
    with _PARSED_LOCK:
        cache = _PARSED.setdefault(ctx.db, {})
        if len(cache) >= PARSED_PER_DATABASE:
            cache.pop(next(iter(cache)))
        cache[(site.id, version)] = site
    return site


def _stored(row: SiteVersionRow, site: Site | None = None) -> StoredSite:
    return StoredSite(
        site=site if site is not None else site_from_dict(row.data),
        version=row.version,
        data=row.data,
        created_at=row.created_at,
        comment=row.comment,
        author=row.author,
    )


def _add_version(
    db: DbSession, row: SiteRow, version: int, data: dict[str, Any], change: Change
) -> SiteVersionRow:
    now = utcnow()
    version_row = SiteVersionRow(
        site_id=row.id,
        version=version,
        data=data,
        created_at=now,
        comment=change.comment,
        author=change.author,
    )
    db.add(version_row)
    row.current_version = version
    row.updated_at = now
    return version_row


def _publish(ctx: EmsContext, stored: StoredSite) -> None:
    """After the commit, so a subscriber reads the version the event announces."""
    ctx.bus.publish(SiteChanged(stored.site.id, stored.version, utcnow()))


def _change(
    ctx: EmsContext,
    site_id: str,
    apply: Callable[[DbSession, dict[str, Any]], dict[str, Any]],
    change: Change,
) -> StoredSite:
    """Apply `apply` to a copy of the current site file and store the result as a new version.

    Nothing is stored (and nothing published) when the result is refused or equals the current
    version: a repeated PUT is idempotent.
    """
    try:
        with transaction(ctx.db) as db:
            row = _require(db, site_id, lock=True)
            current = _version_row(db, site_id, row.current_version)
            site, data = _parse(apply(db, copy.deepcopy(current.data)))
            if data == current.data:
                return _stored(current)
            stored = _stored(_add_version(db, row, row.current_version + 1, data, change), site)
    except IntegrityError as exc:
        raise SiteConflictError(f"site {site_id!r} changed meanwhile: try again") from exc
    _publish(ctx, stored)
    return stored


def create_site(ctx: EmsContext, data: Any, change: Change = Change()) -> StoredSite:
    """Store a new site as version 1 (or, for the id of a deleted site, as its next version)."""
    site, stored_data = _parse(data)
    try:
        with transaction(ctx.db) as db:
            row = db.get(SiteRow, site.id, with_for_update=True)
            if row is not None and row.deleted_at is None:
                raise SiteExistsError(f"site {site.id!r} already exists (version {row.current_version})")
            if row is None:
                row = SiteRow(id=site.id, current_version=0, created_at=utcnow())
                db.add(row)
                db.flush()
            row.deleted_at = None
            stored = _stored(_add_version(db, row, row.current_version + 1, stored_data, change), site)
    except IntegrityError as exc:
        raise SiteConflictError(f"site {site.id!r} was created meanwhile") from exc
    _publish(ctx, stored)
    return stored


def replace_site(ctx: EmsContext, site_id: str, data: Any, change: Change = Change()) -> StoredSite:
    """Replace the whole site file; its `id` must stay `site_id` (a rename is an import + delete)."""
    if isinstance(data, dict) and data.get("id") != site_id:
        problem = Problem(
            site_id, "site", "id", f"must be {site_id!r}, the site replaced; got {data.get('id')!r}"
        )
        raise SiteValidationError([problem])
    return _change(ctx, site_id, lambda _db, _current: data, change)


def import_site(ctx: EmsContext, data: Any, change: Change = Change()) -> tuple[StoredSite, bool]:
    """Create the site, or store the file as its next version if it exists; True when created."""
    site, _ = _parse(data)
    with ctx.db() as db:
        exists = _live(db, site.id) is not None
    if exists:
        return replace_site(ctx, site.id, data, change), False
    return create_site(ctx, data, change), True


def get_site(
    ctx: EmsContext, site_id: str, version: int | None = None, *, include_deleted: bool = False
) -> StoredSite:
    """The current version, or the given one (old versions stay readable); `include_deleted`
    reaches the versions of a deleted site too (a plan made on it names one)."""
    with ctx.db() as db:
        row = db.get(SiteRow, site_id) if include_deleted else _live(db, site_id)
        if row is None:
            raise SiteNotFoundError(f"unknown site {site_id!r}")
        wanted = row.current_version if version is None else version
        version_row = _version_row(db, site_id, wanted)
        site = _parsed(ctx, site_id, wanted)
        stored = _stored(version_row, site)
    if site is None:
        _remember(ctx, stored.site, wanted)
    return stored


_CURRENT_VERSION = select(SiteRow.current_version).where(
    SiteRow.id == bindparam("site_id"), SiteRow.deleted_at.is_(None)
)
"""Built once: the planner asks at every plan."""


def current_site(ctx: EmsContext, site_id: str) -> tuple[Site, int]:
    """The current version's model and number, read and parsed once per version: what the
    planner needs at every plan, without the site file."""
    with ctx.db() as db:
        version = db.scalar(_CURRENT_VERSION, {"site_id": site_id})
        if version is None:
            raise SiteNotFoundError(f"unknown site {site_id!r}")
        site = _parsed(ctx, site_id, version)
        if site is not None:
            return site, version
        data = _version_row(db, site_id, version).data
    return _remember(ctx, site_from_dict(data), version), version


def list_sites(ctx: EmsContext) -> list[SiteSummary]:
    with ctx.db() as db:
        rows = db.execute(
            select(SiteRow, SiteVersionRow)
            .join(
                SiteVersionRow,
                (SiteVersionRow.site_id == SiteRow.id) & (SiteVersionRow.version == SiteRow.current_version),
            )
            .where(SiteRow.deleted_at.is_(None))
            .order_by(SiteRow.id)
        ).all()
        return [
            SiteSummary(
                site.id,
                str(v.data.get("name", "")),
                site.current_version,
                site.created_at,
                site.updated_at,
                _zone_of(v.data),
            )
            for site, v in rows
        ]


def wiring_stamp(ctx: EmsContext) -> tuple[int | None, int, datetime | None]:
    """Changes whenever any site gets a version or is deleted: a cache of every site's wiring
    (the planner's connector index) checks it instead of hearing every process's events."""
    with ctx.db() as db:
        latest = db.scalar(select(func.max(SiteVersionRow.id)))
        count = db.scalar(select(func.count()).select_from(SiteRow).where(SiteRow.deleted_at.is_(None)))
        deleted = db.scalar(select(func.max(SiteRow.deleted_at)))
    return latest, int(count or 0), deleted


def list_versions(ctx: EmsContext, site_id: str) -> list[VersionInfo]:
    with ctx.db() as db:
        _require(db, site_id)
        rows = db.scalars(
            select(SiteVersionRow).where(SiteVersionRow.site_id == site_id).order_by(SiteVersionRow.version)
        ).all()
        return [VersionInfo(r.version, r.created_at, r.comment, r.author) for r in rows]


def delete_site(ctx: EmsContext, site_id: str) -> None:
    """Mark the site deleted; its versions stay for the plans that name them."""
    with transaction(ctx.db) as db:
        row = _require(db, site_id, lock=True)
        row.deleted_at = utcnow()
        version = row.current_version
    ctx.bus.publish(SiteChanged(site_id, version, utcnow(), deleted=True))


def _zone_of(data: dict[str, Any]) -> str:
    """The stored site file's time zone (validated when it was stored; UTC if it is not there)."""
    zone = data.get("timezone")
    return zone if isinstance(zone, str) and zone else "UTC"
