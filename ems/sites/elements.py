"""Changes to one element of a site file: a protection, charge point, PV plant or load, a
connector of a charge point, or the grid connection.

Apart from the storage (`versions`) because these are edits of the JSON site file as the
administrator writes it (by id, the URL naming the element), each stored through `_change`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session as DbSession

from ems.core.context import EmsContext
from ems.sites.versions import Change, SiteNotFoundError, StoredSite, _change, get_site
from grid_models.validation import Problem, SiteValidationError

COLLECTIONS: dict[str, str] = {
    "protections": "protection",
    "charge_points": "charge_point",
    "pv_plants": "pv_plant",
    "loads": "load",
}
"""Element collections of a site file addressed by id, and the element kind of each."""


def _kind(collection: str) -> str:
    if collection not in COLLECTIONS:
        raise SiteNotFoundError(f"unknown collection {collection!r} (one of {', '.join(COLLECTIONS)})")
    return COLLECTIONS[collection]


def _items(data: dict[str, Any], key: str) -> list[Any]:
    """The list under `key`, empty if the file has none (read only)."""
    items = data.get(key)
    return items if isinstance(items, list) else []


def _writable(data: dict[str, Any], key: str) -> list[Any]:
    """The list under `key` of a working copy, added if the file had none."""
    items = data.get(key)
    if not isinstance(items, list):
        items = []
        data[key] = items
    return items


def _position(items: Sequence[Any], element_id: str) -> int | None:
    return next((i for i, e in enumerate(items) if isinstance(e, dict) and e.get("id") == element_id), None)


def _replace_or_append(items: list[Any], element_id: str, element: dict[str, Any]) -> bool:
    """Replace the element with this id in `items`, or append it; True when it was appended."""
    i = _position(items, element_id)
    if i is None:
        items.append(element)
        return True
    items[i] = element
    return False


def _body(body: Any, element_id: str, kind: str) -> dict[str, Any]:
    """The element as given, its id taken from the URL (a differing `id` in the body is refused)."""
    if not isinstance(body, dict):
        raise SiteValidationError(
            [Problem(element_id, kind, "", f"must be an object, got {type(body).__name__}")]
        )
    if "id" in body and body["id"] != element_id:
        raise SiteValidationError(
            [Problem(element_id, kind, "id", f"must be {element_id!r} as in the URL, got {body['id']!r}")]
        )
    return {"id": element_id, **{k: v for k, v in body.items() if k != "id"}}


def _charge_point(data: dict[str, Any], charge_point_id: str) -> dict[str, Any]:
    charge_points = _items(data, "charge_points")
    i = _position(charge_points, charge_point_id)
    if i is None:
        raise SiteNotFoundError(f"unknown charge point {charge_point_id!r}")
    cp: dict[str, Any] = charge_points[i]
    return cp


def get_element(
    ctx: EmsContext, site_id: str, collection: str, element_id: str
) -> tuple[dict[str, Any], int]:
    """One element of the current version, and that version."""
    kind = _kind(collection)
    stored = get_site(ctx, site_id)
    items = _items(stored.data, collection)
    i = _position(items, element_id)
    if i is None:
        raise SiteNotFoundError(f"unknown {kind} {element_id!r} in site {site_id!r}")
    element: dict[str, Any] = items[i]
    return element, stored.version


def put_element(
    ctx: EmsContext, site_id: str, collection: str, element_id: str, body: Any, change: Change = Change()
) -> tuple[StoredSite, bool]:
    """Create or replace one protection, charge point, PV plant or load; True when created."""
    kind = _kind(collection)
    element = _body(body, element_id, kind)
    created = False

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal created
        created = _replace_or_append(_writable(data, collection), element_id, element)
        return data

    return _change(ctx, site_id, apply, change), created


def _children(data: dict[str, Any], protection_id: str) -> list[Problem]:
    """One problem per element still fed by the protection, naming it."""
    problems = []
    message = f"still fed by protection {protection_id!r}: move or delete it first"
    for p in _items(data, "protections"):
        if isinstance(p, dict) and p.get("parent") == protection_id:
            problems.append(Problem(str(p.get("id")), "protection", "parent", message))
    for collection in ("charge_points", "pv_plants", "loads"):
        for e in _items(data, collection):
            if isinstance(e, dict) and e.get("protection") == protection_id:
                problems.append(Problem(str(e.get("id")), COLLECTIONS[collection], "protection", message))
    return problems


def delete_element(
    ctx: EmsContext, site_id: str, collection: str, element_id: str, change: Change = Change()
) -> StoredSite:
    """Remove one element; a protection that still feeds anything is refused, naming each child."""
    kind = _kind(collection)

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        items = _items(data, collection)
        i = _position(items, element_id)
        if i is None:
            raise SiteNotFoundError(f"unknown {kind} {element_id!r} in site {site_id!r}")
        if collection == "protections":
            children = _children(data, element_id)
            if children:
                raise SiteValidationError(children)
        del items[i]
        return data

    return _change(ctx, site_id, apply, change)


def get_connector(
    ctx: EmsContext, site_id: str, charge_point_id: str, connector_id: str
) -> tuple[dict[str, Any], int]:
    """One connector of the current version, and that version."""
    stored = get_site(ctx, site_id)
    connectors = _items(_charge_point(stored.data, charge_point_id), "connectors")
    i = _position(connectors, connector_id)
    if i is None:
        raise SiteNotFoundError(f"unknown connector {connector_id!r} of charge point {charge_point_id!r}")
    connector: dict[str, Any] = connectors[i]
    return connector, stored.version


def put_connector(
    ctx: EmsContext,
    site_id: str,
    charge_point_id: str,
    connector_id: str,
    body: Any,
    change: Change = Change(),
) -> tuple[StoredSite, bool]:
    """Create or replace one connector of a charge point; True when created."""
    element = _body(body, connector_id, "connector")
    created = False

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        nonlocal created
        created = _replace_or_append(
            _writable(_charge_point(data, charge_point_id), "connectors"), connector_id, element
        )
        return data

    return _change(ctx, site_id, apply, change), created


def delete_connector(
    ctx: EmsContext, site_id: str, charge_point_id: str, connector_id: str, change: Change = Change()
) -> StoredSite:
    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        connectors = _writable(_charge_point(data, charge_point_id), "connectors")
        i = _position(connectors, connector_id)
        if i is None:
            raise SiteNotFoundError(f"unknown connector {connector_id!r} of charge point {charge_point_id!r}")
        del connectors[i]
        return data

    return _change(ctx, site_id, apply, change)


def put_grid_connection(ctx: EmsContext, site_id: str, body: Any, change: Change = Change()) -> StoredSite:
    """Replace the grid connection (`max_power_kw` and any extra field)."""
    if not isinstance(body, dict):
        raise SiteValidationError(
            [Problem(site_id, "grid_connection", "", f"must be an object, got {type(body).__name__}")]
        )

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        data["grid_connection"] = body
        return data

    return _change(ctx, site_id, apply, change)


MOVABLE: dict[str, tuple[str, str]] = {
    "protection": ("protections", "parent"),
    "charge_point": ("charge_points", "protection"),
    "pv_plant": ("pv_plants", "protection"),
    "load": ("loads", "protection"),
}
"""Element kinds that can hang under another protection: their collection and parent field."""


def _move_problem(data: dict[str, Any], kind: str, element_id: str, new_parent: str | None) -> Problem | None:
    """Why this move cannot be made, said plainly, before the whole-site validation sees a cycle."""
    name = kind.replace("_", " ")
    field = MOVABLE[kind][1]
    parents = {str(p.get("id")): p.get("parent") for p in _items(data, "protections") if isinstance(p, dict)}
    if new_parent is None:
        if kind == "protection":
            return None
        return Problem(element_id, kind, field, f"a {name} hangs under a protection, not on the grid itself")
    if new_parent not in parents:
        return Problem(element_id, kind, field, f"unknown protection {new_parent!r}")
    if kind != "protection":
        return None
    if new_parent == element_id:
        return Problem(element_id, kind, field, "a protection cannot be its own parent")
    node: Any = new_parent
    seen: set[str] = set()
    while isinstance(node, str) and node not in seen:
        if node == element_id:
            return Problem(
                element_id,
                kind,
                field,
                f"cannot go under {new_parent!r}: {new_parent!r} is fed by {element_id!r} "
                "(it is in its own subtree, which would make a cycle)",
            )
        seen.add(node)
        node = parents.get(node)
    return None


def move_element(
    ctx: EmsContext,
    site_id: str,
    kind: str,
    element_id: str,
    new_parent: str | None,
    change: Change = Change(),
) -> StoredSite:
    """Hang one element under another protection (`None`: a protection on the grid itself).

    Only the parent field changes, so the move is what the diagram's drag says and nothing
    else; a connector is refused (it belongs to its charge point), as is a protection moved
    into its own subtree. The result is validated as a whole like any other change.
    """
    if kind == "connector":
        message = "a connector belongs to its charge point: move the charge point instead"
        raise SiteValidationError([Problem(element_id, kind, "", message)])
    if kind not in MOVABLE:
        raise SiteValidationError([Problem(element_id, kind, "", f"a {kind!r} cannot be moved")])
    collection, field = MOVABLE[kind]

    def apply(_db: DbSession, data: dict[str, Any]) -> dict[str, Any]:
        items = _items(data, collection)
        i = _position(items, element_id)
        if i is None:
            raise SiteNotFoundError(f"unknown {kind.replace('_', ' ')} {element_id!r} in site {site_id!r}")
        problem = _move_problem(data, kind, element_id, new_parent)
        if problem is not None:
            raise SiteValidationError([problem])
        items[i][field] = new_parent
        return data

    return _change(ctx, site_id, apply, change)
