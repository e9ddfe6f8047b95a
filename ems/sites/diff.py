"""What changed between two versions of a site file, element by element.

The version list says who saved and why; the diff says what: an element added or removed, one
moved under another protection (or a connector onto another charge point), a field changed
from one value to another, for the site's own fields and its grid connection too. It compares
the stored files, so fields the EMS does not know (kept on a round trip) show up as well.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ems.core.context import EmsContext
from ems.sites.versions import get_site

ChangeKind = Literal["added", "removed", "moved", "changed"]

ELEMENTS: tuple[tuple[str, str, str], ...] = (
    ("protections", "protection", "parent"),
    ("charge_points", "charge_point", "protection"),
    ("pv_plants", "pv_plant", "protection"),
    ("loads", "load", "protection"),
)
"""Collections addressed by id: their element kind and the field naming what feeds them."""

_NOT_SITE_FIELDS = frozenset({"grid_connection", "ocpi_locations", *(c for c, _, _ in ELEMENTS)})
_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    """One change between two versions: `old`/`new` are the values (a parent for a move)."""

    change: ChangeKind
    element_kind: str
    element_id: str
    field: str = ""
    old: Any = None
    new: Any = None

    @property
    def text(self) -> str:
        kind = self.element_kind.replace("_", " ")
        name = kind if self.element_kind == "grid_connection" else f"{kind} {self.element_id}"
        if self.change == "added":
            return f"added {name}" + (f" {_where(self.element_kind, self.new)}" if self.field else "")
        if self.change == "removed":
            return f"removed {name}" + (f" (was {_where(self.element_kind, self.old)})" if self.field else "")
        if self.change == "moved":
            preposition = "on" if self.element_kind == "connector" else "under"
            return f"{name}: {preposition} {_parent(self.old)} → {_parent(self.new)}"
        return f"{name} {self.field}: {_show(self.field, self.old)} → {_show(self.field, self.new)}"

    def __str__(self) -> str:
        return self.text


def _parent(value: Any) -> str:
    return "the grid connection" if value is None else str(value)


def _where(kind: str, parent: Any) -> str:
    if kind == "connector":
        return f"on charge point {parent}"
    return f"under {_parent(parent)}"


def _show(field: str, value: Any) -> str:
    """A value as the editor shows it: phases as L2-L3-L1, absent as such, others as JSON."""
    if value is _ABSENT:
        return "(absent)"
    if field == "phases" and isinstance(value, list):
        return "-".join(str(p) for p in value) or "(none)"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _fields(
    kind: str, element_id: str, old: dict[str, Any], new: dict[str, Any], skip: set[str]
) -> Iterator[Difference]:
    for key in [*old, *(k for k in new if k not in old)]:
        if key in skip:
            continue
        before, after = old.get(key, _ABSENT), new.get(key, _ABSENT)
        if before != after:
            yield Difference("changed", kind, element_id, key, before, after)


def _by_id(items: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {str(e.get("id")): e for e in items if isinstance(e, dict)}


def _collection(
    kind: str,
    parent_field: str,
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    skip: set[str],
) -> Iterator[Difference]:
    for element_id, before in old.items():
        if element_id not in new:
            yield Difference("removed", kind, element_id, parent_field, old=before.get(parent_field))
    for element_id, after in new.items():
        before_or_none = old.get(element_id)
        if before_or_none is None:
            yield Difference("added", kind, element_id, parent_field, new=after.get(parent_field))
            continue
        if before_or_none.get(parent_field) != after.get(parent_field):
            yield Difference(
                "moved",
                kind,
                element_id,
                parent_field,
                before_or_none.get(parent_field),
                after.get(parent_field),
            )
        yield from _fields(kind, element_id, before_or_none, after, {parent_field, "id", *skip})


def _connectors(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every connector by id, with the charge point it is on (`charge_point`, not a file field)."""
    out: dict[str, dict[str, Any]] = {}
    for cp_id, cp in _by_id(data.get("charge_points")).items():
        for connector_id, connector in _by_id(cp.get("connectors")).items():
            out[connector_id] = {"charge_point": cp_id, **connector}
    return out


def _location_key(ref: dict[str, Any]) -> str:
    return "/".join(str(ref.get(k)) for k in ("country_code", "party_id", "location_id"))


def diff_site_files(old: dict[str, Any], new: dict[str, Any]) -> list[Difference]:
    """Every difference from site file `old` to `new`: site fields, grid connection, then each
    collection (removed, then added, moved and changed in the new file's order)."""
    site_id = str(new.get("id", old.get("id")))
    out = list(
        _fields(
            "site",
            site_id,
            {k: v for k, v in old.items() if k not in _NOT_SITE_FIELDS},
            {k: v for k, v in new.items() if k not in _NOT_SITE_FIELDS},
            set(),
        )
    )
    old_grid, new_grid = old.get("grid_connection"), new.get("grid_connection")
    out += _fields(
        "grid_connection",
        "grid",
        old_grid if isinstance(old_grid, dict) else {},
        new_grid if isinstance(new_grid, dict) else {},
        set(),
    )
    for collection, kind, parent_field in ELEMENTS:
        skip = {"connectors"} if kind == "charge_point" else set()
        out += _collection(kind, parent_field, _by_id(old.get(collection)), _by_id(new.get(collection)), skip)
        if kind == "charge_point":
            out += _collection("connector", "charge_point", _connectors(old), _connectors(new), set())
    old_refs = {_location_key(r): r for r in old.get("ocpi_locations") or [] if isinstance(r, dict)}
    new_refs = {_location_key(r): r for r in new.get("ocpi_locations") or [] if isinstance(r, dict)}
    out += [Difference("removed", "ocpi_location", key) for key in old_refs if key not in new_refs]
    for key, ref in new_refs.items():
        if key not in old_refs:
            out.append(Difference("added", "ocpi_location", key))
        else:
            out += _fields(
                "ocpi_location", key, old_refs[key], ref, {"country_code", "party_id", "location_id"}
            )
    return out


def diff_versions(ctx: EmsContext, site_id: str, old_version: int, new_version: int) -> list[Difference]:
    """The differences between two stored versions of a site (`SiteNotFoundError` if one is not)."""
    old = get_site(ctx, site_id, old_version)
    new = get_site(ctx, site_id, new_version)
    return diff_site_files(old.data, new.data)
