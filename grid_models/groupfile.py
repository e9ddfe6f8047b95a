"""The group file (README "Group file"): a territory of sites under shared limits.

Read like the site file (`grid_models.sitefile`): every structural and semantic problem is
collected with its element named, and a bad file is refused once with the whole list
(`GroupValidationError`, a `SiteValidationError`). Writing gives back the file that was read:
unknown fields are kept in `extra`, optional keys that were absent stay absent.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from grid_models.group import LIMIT_QUANTITIES, Group, GroupLimit, LimitPoint, LimitQuantity
from grid_models.sitefile import _MISSING, _element, _Reader
from grid_models.validation import Problem, SiteValidationError

_GROUP_KEYS = ("id", "name", "sites", "groups", "limits")
_LIMIT_KEYS = ("id", "source", *LIMIT_QUANTITIES, "valid_from", "valid_until")
_POINT_KEYS = ("start", "value")


class GroupValidationError(SiteValidationError):
    """A group file refused as a whole; `.problems` lists every reason."""

    def __init__(self, problems: Any) -> None:
        super().__init__(problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        self.args = (f"invalid group ({len(self.problems)} problem(s)):\n{lines}",)

    def __str__(self) -> str:
        return str(self.args[0])


def _datetime(r: _Reader, value: Any, field: str) -> datetime | None:
    """An ISO 8601 time with its offset, or a Problem on `field`."""
    if not isinstance(value, str):
        r._bad(field, f"must be an ISO 8601 time with offset, got {value!r}")
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        r._bad(field, f"not an ISO 8601 time: {value!r}")
        return None
    if at.tzinfo is None:
        r._bad(field, f"must carry a UTC offset: {value!r}")
        return None
    return at


def _optional_datetime(r: _Reader, key: str) -> datetime | None:
    value = r._get(key, False)
    if value is _MISSING or value is None:
        return None
    return _datetime(r, value, key)


def _number(r: _Reader, value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        r._bad(field, f"must be a number, got {value!r}")
        return math.nan
    if value < 0:
        r._bad(field, f"must be >= 0, got {value!r}")
    return value


def _read_limit(r: _Reader, element_id: str, path: str) -> GroupLimit | None:
    limit_id = r.string("id") or element_id
    if r.obj.get("id") == "":
        r._bad("id", "must be a non-empty string")
    source = r.string("source")
    if not source and "source" in r.obj:
        r._bad("source", "must be a non-empty string")
    given = [q for q in LIMIT_QUANTITIES if q in r.obj]
    if len(given) != 1:
        r._bad(
            "max_import_kw",
            "exactly one of max_import_kw and max_current_a is required"
            + (f", got {' and '.join(given)}" if given else ""),
        )
    quantity: LimitQuantity = given[0] if given else "max_import_kw"
    raw = r.obj.get(quantity)
    value: float | None = None
    points: list[LimitPoint] = []
    if isinstance(raw, list):
        if not raw:
            r._bad(quantity, "a series needs at least one point")
        for j, item in enumerate(raw):
            where = f"{quantity}[{j}]"
            if not isinstance(item, dict):
                r._bad(where, f"must be an object {{start, value}}, got {type(item).__name__}")
                continue
            start = _datetime(r, item.get("start"), f"{where}.start")
            v = _number(r, item.get("value"), f"{where}.value")
            unknown = sorted(set(item) - set(_POINT_KEYS))
            if unknown:
                r._bad(where, f"unknown field(s) {', '.join(unknown)}")
            if start is not None:
                if points and start <= points[-1].start:
                    r._bad(f"{where}.start", "points must be in increasing time order")
                points.append(LimitPoint(start, v))
    elif raw is not None or given:
        value = _number(r, raw, quantity)
    valid_from = _optional_datetime(r, "valid_from")
    valid_until = _optional_datetime(r, "valid_until")
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        r._bad("valid_until", f"must be after valid_from ({valid_from.isoformat()})")
    omitted = set(r.omitted) | {q for q in LIMIT_QUANTITIES if q not in r.obj}
    return GroupLimit(
        id=limit_id,
        source=source,
        quantity=quantity,
        value=value,
        series=tuple(points),
        valid_from=valid_from,
        valid_until=valid_until,
        extra=r.extra(_LIMIT_KEYS),
        omitted=frozenset(omitted),
    )


def _read_group(problems: list[Problem], data: Any, path: str) -> Group | None:
    found = _element(problems, data, path, "group")
    if found is None:
        return None
    r, element_id = found
    group_id = r.string("id") or element_id
    if r.obj.get("id") == "":
        r._bad("id", "must be a non-empty string")
    name = r.string("name")
    site_ids: list[str] = []
    for i, s in enumerate(r.objects("sites", False)):
        if isinstance(s, str) and s:
            site_ids.append(s)
        else:
            r._bad(f"sites[{i}]", f"must be a site id (a non-empty string), got {s!r}")
    children = [
        child
        for i, item in enumerate(r.objects("groups", False))
        if (child := _read_group(problems, item, f"{path}.groups[{i}]")) is not None
    ]
    limits: list[GroupLimit] = []
    for i, item in enumerate(r.objects("limits", False)):
        limit_found = _element(problems, item, f"{group_id}.limits[{i}]", "group_limit")
        if limit_found is not None:
            limit = _read_limit(limit_found[0], limit_found[1], f"{path}.limits[{i}]")
            if limit is not None:
                limits.append(limit)
    return Group(
        id=group_id,
        name=name,
        sites=tuple(site_ids),
        groups=tuple(children),
        limits=tuple(limits),
        extra=r.extra(_GROUP_KEYS),
        omitted=frozenset(r.omitted),
    )


def validate_group(group: Group, known_sites: set[str] | None = None) -> list[Problem]:
    """What is wrong with the tree as a whole: ids repeated across it, a site in two groups, a
    group with no site under it, a limit id repeated in its group, a site not in `known_sites`
    (when given)."""
    problems: list[Problem] = []
    seen_groups: set[str] = set()
    site_owner: dict[str, str] = {}
    for g in group.walk():
        if not g.id:
            problems.append(Problem(g.id, "group", "id", "must be a non-empty string"))
        elif g.id in seen_groups:
            problems.append(Problem(g.id, "group", "id", "duplicate group id in the tree"))
        seen_groups.add(g.id)
        for s in g.sites:
            if s in site_owner:
                problems.append(
                    Problem(g.id, "group", "sites", f"site {s!r} is already in group {site_owner[s]!r}")
                )
            else:
                site_owner[s] = g.id
            if known_sites is not None and s not in known_sites:
                problems.append(Problem(g.id, "group", "sites", f"unknown site {s!r}"))
        if not g.site_ids():
            problems.append(Problem(g.id, "group", "sites", "no site under this group"))
        limit_ids: set[str] = set()
        for lim in g.limits:
            if lim.id in limit_ids:
                problems.append(Problem(lim.id, "group_limit", "id", f"duplicate limit id in group {g.id!r}"))
            limit_ids.add(lim.id)
    return problems


def group_from_dict(data: Any, known_sites: set[str] | None = None) -> Group:
    """The group described by a parsed group file; `GroupValidationError` naming every problem."""
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise GroupValidationError(
            [Problem("", "group", "", f"must be an object, got {type(data).__name__}")]
        )
    group = _read_group(problems, data, "(group)")
    if group is not None:
        problems += validate_group(group, known_sites)
    if problems or group is None:
        raise GroupValidationError(problems)
    return group


def limit_from_dict(data: Any) -> GroupLimit:
    """One limit in the group file's shape (`limits[]`), as a grid operator's system sends it;
    `id` and `source` are required here (nothing else names it); `GroupValidationError`
    naming every problem."""
    problems: list[Problem] = []
    found = _element(problems, data, "(limit)", "group_limit")
    limit: GroupLimit | None = None
    if found is not None:
        r, element_id = found
        limit = _read_limit(r, element_id, "(limit)")
    if problems or limit is None:
        raise GroupValidationError(problems)
    return limit


def limit_dict_from_csv(
    text: str,
    limit_id: str,
    source: str,
    quantity: str = "max_import_kw",
    valid_from: str | None = None,
    valid_until: str | None = None,
) -> dict[str, Any]:
    """A limit given as CSV rows `start,value` (a first row starting `start` is a header), each
    value holding until the next start, in the group file's limit shape: what `ems group limit
    import` reads from a .csv and the group page from a paste. Checked like `limit_from_dict`
    (`GroupValidationError` naming every bad line and every other problem at once)."""
    problems: list[Problem] = []
    if quantity not in LIMIT_QUANTITIES:
        problems.append(
            Problem(limit_id, "group_limit", "quantity", f"must be one of {', '.join(LIMIT_QUANTITIES)}")
        )
    points: list[dict[str, Any]] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or (number == 1 and row[0].strip().lower() == "start"):
            continue
        where = f"line {number}"
        if len(row) != 2:
            problems.append(
                Problem(limit_id, "group_limit", where, f"expected start,value, got {len(row)} field(s)")
            )
            continue
        try:
            value = float(row[1])
        except ValueError:
            problems.append(
                Problem(limit_id, "group_limit", where, f"value {row[1].strip()!r} is not a number")
            )
            continue
        points.append({"start": row[0].strip(), "value": value})
    limit: dict[str, Any] = {"id": limit_id, "source": source}
    limit[quantity if quantity in LIMIT_QUANTITIES else "max_import_kw"] = points
    if valid_from is not None:
        limit["valid_from"] = valid_from
    if valid_until is not None:
        limit["valid_until"] = valid_until
    try:
        limit_from_dict(limit)
    except GroupValidationError as exc:
        problems += exc.problems
    if problems:
        raise GroupValidationError(problems)
    return limit


def limit_to_dict(lim: GroupLimit) -> dict[str, Any]:
    """The group file's form of a limit: the inverse of `limit_from_dict`."""
    return _limit_to_dict(lim)


def _limit_to_dict(lim: GroupLimit) -> dict[str, Any]:
    out: dict[str, Any] = {"id": lim.id, "source": lim.source}
    if lim.series:
        out[lim.quantity] = [{"start": p.start.isoformat(), "value": p.value} for p in lim.series]
    else:
        out[lim.quantity] = lim.value
    if lim.valid_from is not None or "valid_from" not in lim.omitted:
        out["valid_from"] = None if lim.valid_from is None else lim.valid_from.isoformat()
    if lim.valid_until is not None or "valid_until" not in lim.omitted:
        out["valid_until"] = None if lim.valid_until is None else lim.valid_until.isoformat()
    return {**out, **lim.extra}


def group_to_dict(group: Group) -> dict[str, Any]:
    """The group file of a group: the inverse of `group_from_dict`, key for key."""
    out: dict[str, Any] = {"id": group.id, "name": group.name}
    for key, value in (
        ("sites", list(group.sites)),
        ("groups", [group_to_dict(g) for g in group.groups]),
        ("limits", [_limit_to_dict(lim) for lim in group.limits]),
    ):
        if value or key not in group.omitted:
            out[key] = value
    out.update(group.extra)
    return out


def load_group(path: str | Path, known_sites: set[str] | None = None) -> Group:
    """Read and validate a group file; a file that is not JSON is refused like a bad group."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GroupValidationError([Problem(str(path), "file", "", f"not valid JSON: {exc}")]) from exc
    return group_from_dict(data, known_sites)


def save_group(group: Group, path: str | Path) -> None:
    """Write a group file; an invalid group is refused and nothing is written."""
    problems = validate_group(group)
    if problems:
        raise GroupValidationError(problems)
    Path(path).write_text(
        json.dumps(group_to_dict(group), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
