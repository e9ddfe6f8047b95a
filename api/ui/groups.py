"""The group pages: the groups (and a form for a new one), and one group's sites, limits and
planned power against the limit in force (the site dashboard's chart, its live part reloaded
by htmx every few seconds), with forms to change it, delete it and set or withdraw a limit
from outside.

Thin routes over `ems.sites.groups`, as the site editor's are over `ems.sites`: a form is
turned into the group file's shape and stored through the same functions (and checks, and
re-planning) as the admin API and the CLI; a refused form shows every problem and stores
nothing. A group's *cap* on the page is its file's first limit of a quantity with a constant
value (`contract` limits, a feeder's rating); a limit with a series is set from outside.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from api.ui.common import AdminSession, ContextDep, CsrfChecked, form_number, is_htmx, logged_in_admin, render
from ems import sites
from ems.admin.groups import group_board
from ems.core.context import EmsContext
from ems.sites.groups import (
    GroupConflictError,
    GroupNotFoundError,
    StoredGroup,
    delete_limit,
    delete_node,
    list_groups,
    put_limit,
    put_node,
    tree_of,
)
from grid_models.group import LIMIT_QUANTITIES, Group
from grid_models.groupfile import GroupValidationError, group_to_dict, limit_dict_from_csv
from grid_models.validation import Problem

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(logged_in_admin)])

CAP_FIELDS = {"max_import_kw": "cap_kw", "max_current_a": "cap_a"}
"""The page's field of each cap's value; `<field>_from` / `<field>_until` its validity."""
NEW_CAP_IDS = {"max_import_kw": "cap-kw", "max_current_a": "cap-a"}
NEW_CAP_SOURCE = "contract"
DONE = {
    "created": "Group created; it is planned as one unit now.",
    "saved": "Saved; the group is re-planned.",
    "limit": "Limit stored; the group is re-planned.",
    "withdrawn": "Limit withdrawn; the group is re-planned.",
    "deleted": "Group deleted; its sites are planned alone again.",
}
"""What a redirect after a change says (by code, so no text of the URL reaches the page)."""


def _page_url(group_id: str, done: str | None = None) -> str:
    return f"/admin/groups/{quote(group_id, safe='')}" + (f"?done={done}" if done else "")


def _done(request: Request) -> str | None:
    return DONE.get(request.query_params.get("done", ""))


def _fields(form: Any) -> dict[str, Any]:
    """The posted fields, `sites` as the list of ticked sites."""
    fields: dict[str, Any] = {k: str(v) for k, v in form.items() if k != "sites"}
    fields["sites"] = [str(s) for s in form.getlist("sites")]
    return fields


# ---- caps: the group file's constant limits, as the page edits them ----------------------------


def _cap_index(limits: list[Any], quantity: str) -> int | None:
    for i, lim in enumerate(limits):
        if isinstance(lim, dict) and quantity in lim and not isinstance(lim[quantity], list):
            return i
    return None


def _with_caps(limits: list[Any], form: Mapping[str, Any]) -> list[Any]:
    """The file's limits with the form's caps written over them (an empty value removes that
    cap; a new one is `cap-kw` / `cap-a` from `contract`); every other limit kept as stored."""
    out = copy.deepcopy(limits)
    for quantity, field in CAP_FIELDS.items():
        value = form_number(form.get(field))
        i = _cap_index(out, quantity)
        if value is None:
            if i is not None:
                del out[i]
            continue
        cap = dict(out[i]) if i is not None else {"id": NEW_CAP_IDS[quantity], "source": NEW_CAP_SOURCE}
        cap[quantity] = value
        for key, name in (("valid_from", f"{field}_from"), ("valid_until", f"{field}_until")):
            raw = str(form.get(name) or "").strip()
            if raw:
                cap[key] = raw
            else:
                cap.pop(key, None)
        if i is None:
            out.append(cap)
        else:
            out[i] = cap
    return out


def _edit_fields(node: Group, parent: Group | None) -> dict[str, Any]:
    """The edit form as stored: what the page shows before any change."""
    data = group_to_dict(node)
    limits = data.get("limits") or []
    fields: dict[str, Any] = {
        "name": node.name,
        "sites": list(node.sites),
        "parent": parent.id if parent else "",
    }
    for quantity, field in CAP_FIELDS.items():
        i = _cap_index(limits, quantity)
        cap = limits[i] if i is not None else {}
        fields[field] = "" if cap.get(quantity) is None else str(cap[quantity])
        fields[f"{field}_from"] = cap.get("valid_from") or ""
        fields[f"{field}_until"] = cap.get("valid_until") or ""
    return fields


# ---- what the forms offer -------------------------------------------------------------------------


def _choices(ctx: EmsContext, groups: list[StoredGroup], exclude: Group | None = None) -> dict[str, Any]:
    """The sites to choose from (with the group holding each), and the groups a group may go
    under (every stored one, less `exclude` and the groups under it)."""
    holder = {site: g.id for stored in groups for g in stored.group.walk() for site in g.sites}
    excluded = {g.id for g in exclude.walk()} if exclude is not None else set()
    parents = [
        (g.id, depth) for stored in groups for g, depth in _with_depth(stored.group) if g.id not in excluded
    ]
    return {"all_sites": sites.list_sites(ctx), "site_holder": holder, "parent_choices": parents}


def _with_depth(group: Group, depth: int = 0) -> list[tuple[Group, int]]:
    return [(group, depth), *(item for child in group.groups for item in _with_depth(child, depth + 1))]


def _problems(exc: GroupValidationError) -> list[str]:
    return [str(p) for p in exc.problems]


# ---- the list and a new group ---------------------------------------------------------------------


def _list_page(
    request: Request,
    ctx: EmsContext,
    status: int = HTTPStatus.OK,
    problems: list[str] | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    groups = list_groups(ctx)
    return render(
        request,
        "groups.html",
        status_code=status,
        groups=groups,
        rows=[(g, depth, stored) for stored in groups for g, depth in _with_depth(stored.group)],
        problems=problems or [],
        message=_done(request),
        form=form or {"sites": []},
        **_choices(ctx, groups),
    )


@router.get("/groups")
def groups(request: Request, ctx: ContextDep, user: AdminSession) -> Response:
    return _list_page(request, ctx)


@router.post("/groups", dependencies=[CsrfChecked])
async def new_group(request: Request, ctx: ContextDep, user: AdminSession) -> Response:
    """A new group (top-level, or under `parent`) with its sites and its cap in kW."""
    form = _fields(await request.form())
    group_id = form.get("id", "").strip()
    data: dict[str, Any] = {"id": group_id, "name": form.get("name", "").strip(), "sites": form["sites"]}
    limits = _with_caps([], form)
    if limits:
        data["limits"] = limits
    try:
        put_node(ctx, group_id, data, form.get("parent") or None, create=True)
    except GroupValidationError as exc:
        return _list_page(request, ctx, HTTPStatus.UNPROCESSABLE_ENTITY, _problems(exc), form)
    except GroupConflictError as exc:
        return _list_page(request, ctx, HTTPStatus.CONFLICT, [str(exc)], form)
    return RedirectResponse(_page_url(group_id, "created"), status_code=HTTPStatus.SEE_OTHER)


# ---- one group --------------------------------------------------------------------------------------


def _unknown(request: Request, exc: GroupNotFoundError) -> Response:
    return render(
        request, "error.html", status_code=HTTPStatus.NOT_FOUND, title="Unknown group", message=str(exc)
    )


def _group_page(
    request: Request,
    ctx: EmsContext,
    group_id: str,
    status: int = HTTPStatus.OK,
    problems: list[str] | None = None,
    failed: str = "",
    form: dict[str, Any] | None = None,
) -> Response:
    """The group's page; after a refused form (`failed` names it) with its problems and the
    values as posted, so they can be corrected."""
    try:
        stored = tree_of(ctx, group_id)
    except GroupNotFoundError as exc:
        return _unknown(request, exc)
    node = stored.group.find(group_id)
    assert node is not None
    parent = stored.group.parent_of(group_id)
    fields = _edit_fields(node, parent)
    if form is not None:
        fields.update(form)
    return render(
        request,
        "group.html",
        status_code=status,
        group_id=group_id,
        group=node,
        parent=parent,
        top=stored.group,
        outside=[s for s in stored.outside_limits if s.group_id == group_id],
        quantities=LIMIT_QUANTITIES,
        form=fields,
        problems=problems or [],
        failed=failed,
        message=_done(request),
        **_choices(ctx, list_groups(ctx), exclude=node),
    )


def _refused(
    request: Request, ctx: EmsContext, group_id: str, failed: str, problems: list[str], form: dict[str, Any]
) -> Response:
    """A refused form: the page again with its problems; 200 for htmx, which swaps only a 2xx."""
    status = HTTPStatus.OK if is_htmx(request) else HTTPStatus.UNPROCESSABLE_ENTITY
    return _group_page(request, ctx, group_id, status, problems, failed, form)


def _changed(request: Request, url: str) -> Response:
    if is_htmx(request):
        return Response(status_code=HTTPStatus.OK, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=HTTPStatus.SEE_OTHER)


@router.get("/groups/{group_id}")
def page(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    return _group_page(request, ctx, group_id)


@router.get("/groups/{group_id}/live")
def live(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    try:
        board = group_board(ctx, group_id)
    except GroupNotFoundError as exc:
        return _unknown(request, exc)
    chart = board.chart()
    return render(
        request,
        "group_live.html",
        board=board,
        group_id=group_id,
        chart=json.dumps(chart) if chart else "null",
    )


@router.post("/groups/{group_id}", dependencies=[CsrfChecked])
async def edit(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    """The group's name, its own sites, the group it is under and its caps; its nested groups
    and its other limits stay as stored."""
    form = _fields(await request.form())
    try:
        stored = tree_of(ctx, group_id)
    except GroupNotFoundError as exc:
        return _unknown(request, exc)
    node = stored.group.find(group_id)
    assert node is not None
    data = group_to_dict(node)
    data["name"] = form.get("name", "").strip()
    data["sites"] = form["sites"]
    limits = _with_caps(data.get("limits") or [], form)
    if limits or "limits" in data:
        data["limits"] = limits
    try:
        put_node(ctx, group_id, data, form.get("parent") or None, create=False)
    except GroupValidationError as exc:
        return _refused(request, ctx, group_id, "edit", _problems(exc), form)
    except (GroupNotFoundError, GroupConflictError) as exc:
        return _refused(request, ctx, group_id, "edit", [str(exc)], form)
    return _changed(request, _page_url(group_id, "saved"))


@router.post("/groups/{group_id}/delete", dependencies=[CsrfChecked])
def delete(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    """The group and the groups under it, with their limits from outside."""
    try:
        delete_node(ctx, group_id)
    except GroupNotFoundError as exc:
        return _unknown(request, exc)
    except GroupValidationError as exc:
        return _refused(request, ctx, group_id, "delete", _problems(exc), {})
    except GroupConflictError as exc:
        return _refused(request, ctx, group_id, "delete", [str(exc)], {})
    return _changed(request, "/admin/groups?done=deleted")


def _limit_data(form: Mapping[str, Any]) -> dict[str, Any]:
    """The limit form in the group file's limit shape: a constant value, or CSV rows
    `start,value` parsed as `ems group limit import` parses a .csv."""
    limit_id = str(form.get("limit_id", "")).strip()
    source = str(form.get("limit_source", "")).strip()
    quantity = str(form.get("limit_quantity") or "max_import_kw")
    rows = str(form.get("limit_csv", ""))
    value = form_number(form.get("limit_value"))
    valid = {
        key: raw
        for key, name in (("valid_from", "limit_from"), ("valid_until", "limit_until"))
        if (raw := str(form.get(name) or "").strip())
    }
    if rows.strip():
        if value is not None:
            raise GroupValidationError(
                [Problem(limit_id, "group_limit", quantity, "give a value or CSV rows, not both")]
            )
        return limit_dict_from_csv(
            rows, limit_id, source, quantity, valid.get("valid_from"), valid.get("valid_until")
        )
    if value is None:
        raise GroupValidationError(
            [Problem(limit_id, "group_limit", quantity, "give a value, or CSV rows start,value")]
        )
    return {"id": limit_id, "source": source, quantity: value, **valid}


@router.post("/groups/{group_id}/limits", dependencies=[CsrfChecked])
async def set_limit(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    """A limit from outside on this group, stored as `PUT /api/admin/groups/{id}/limits` stores it."""
    form = _fields(await request.form())
    try:
        put_limit(ctx, group_id, _limit_data(form))
    except GroupNotFoundError as exc:
        return _unknown(request, exc)
    except GroupValidationError as exc:
        return _refused(request, ctx, group_id, "limit", _problems(exc), form)
    except GroupConflictError as exc:
        return _refused(request, ctx, group_id, "limit", [str(exc)], form)
    return _changed(request, _page_url(group_id, "limit"))


@router.post("/groups/{group_id}/limits/withdraw", dependencies=[CsrfChecked])
async def withdraw_limit(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    form = _fields(await request.form())
    try:
        delete_limit(ctx, group_id, form.get("limit_id", ""))
    except GroupNotFoundError as exc:
        return _refused(request, ctx, group_id, "withdraw", [str(exc)], {})
    return _changed(request, _page_url(group_id, "withdrawn"))
