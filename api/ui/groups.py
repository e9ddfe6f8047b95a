"""The group pages: the groups, and one group's sites, limits and planned power against the
limit in force (the site dashboard's chart), its live part reloaded by htmx every few seconds.
Groups are created and changed through the admin API or `ems group import` (the group file)."""

from __future__ import annotations

import json
from http import HTTPStatus

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.ui.common import AdminSession, ContextDep, logged_in_admin, render
from ems.admin.groups import group_board
from ems.sites.groups import GroupNotFoundError, get_group, list_groups

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(logged_in_admin)])


@router.get("/groups")
def groups(request: Request, ctx: ContextDep, user: AdminSession) -> Response:
    return render(request, "groups.html", groups=list_groups(ctx))


def _unknown(request: Request, exc: GroupNotFoundError) -> Response:
    return render(
        request, "error.html", status_code=HTTPStatus.NOT_FOUND, title="Unknown group", message=str(exc)
    )


@router.get("/groups/{group_id}")
def page(request: Request, ctx: ContextDep, group_id: str, user: AdminSession) -> Response:
    try:
        stored = get_group(ctx, group_id)
    except GroupNotFoundError as exc:
        return _unknown(request, exc)
    return render(request, "group.html", group_id=group_id, group=stored.group)


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
