"""Admin API of groups of sites (territories) and of limits from outside: thin routes over
`ems.sites.groups`, behind the admin token, with the sites API's error body (`AdminRoute`).

`PUT /api/admin/groups/{id}/limits` is where a grid operator's adapter (OpenADR 3, IEC 61850:
README "Limits from outside") hands a limit over; the group is re-planned at once.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from fastapi.responses import JSONResponse

from api.admin.sites import AdminRoute
from api.deps import ContextDep, admin_user
from ems.admin.groups import group_board
from ems.sites.groups import (
    StoredGroup,
    delete_group,
    delete_limit,
    get_group,
    list_groups,
    put_group,
    put_limit,
)
from grid_models.groupfile import group_to_dict

router = APIRouter(
    prefix="/api/admin",
    tags=["admin: groups"],
    dependencies=[Depends(admin_user)],
    route_class=AdminRoute,
)

GroupBody = Annotated[Any, Body(description="a whole group file (README: Group file)")]
LimitBody = Annotated[
    Any, Body(description="one limit in the group file's shape: id, source, a value or series, validity")
]


def _group_reply(stored: StoredGroup) -> dict[str, Any]:
    return {
        "group_id": stored.group_id,
        "created_at": stored.created_at.isoformat(),
        "updated_at": stored.updated_at.isoformat(),
        "group": stored.data,
        "limits_from_outside": [
            {"group_id": s.group_id, "received_at": s.received_at.isoformat(), "limit": s.data}
            for s in stored.outside_limits
        ],
        "planned": group_to_dict(stored.planned()),
    }


def _reply(content: dict[str, Any], created: bool) -> JSONResponse:
    return JSONResponse(content, status_code=HTTPStatus.CREATED if created else HTTPStatus.OK)


@router.get("/groups")
def groups(ctx: ContextDep) -> list[dict[str, Any]]:
    return [
        {
            "group_id": g.group_id,
            "name": g.group.name,
            "sites": list(g.group.site_ids()),
            "limits_from_outside": len(g.outside_limits),
            "updated_at": g.updated_at.isoformat(),
        }
        for g in list_groups(ctx)
    ]


@router.get("/groups/{group_id}")
def read(ctx: ContextDep, group_id: str) -> dict[str, Any]:
    return _group_reply(get_group(ctx, group_id))


@router.put("/groups/{group_id}")
def write(ctx: ContextDep, group_id: str, body: GroupBody) -> JSONResponse:
    stored, created = put_group(ctx, group_id, body)
    return _reply(_group_reply(stored), created)


@router.delete("/groups/{group_id}", status_code=HTTPStatus.NO_CONTENT)
def remove(ctx: ContextDep, group_id: str) -> Response:
    delete_group(ctx, group_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.put("/groups/{group_id}/limits")
def write_limit(ctx: ContextDep, group_id: str, body: LimitBody) -> JSONResponse:
    """`group_id` may be a nested group of a stored tree (a feeder under a substation)."""
    stored, created = put_limit(ctx, group_id, body)
    return _reply(_group_reply(stored), created)


@router.delete("/groups/{group_id}/limits/{limit_id}")
def remove_limit(ctx: ContextDep, group_id: str, limit_id: str) -> dict[str, Any]:
    return _group_reply(delete_limit(ctx, group_id, limit_id))


@router.get("/groups/{group_id}/plan")
def plan(ctx: ContextDep, group_id: str) -> dict[str, Any]:
    """The latest joint plan: per group of the tree and step, the limit in force (its id and
    source) and the net import planned at its node; each member's planned import."""
    board = group_board(ctx, group_id)
    return {
        "group_id": group_id,
        "planned_for": board.planned_for.isoformat() if board.planned_for else None,
        "members": [{"site_id": m.site_id, "exists": m.exists, "plan_id": m.plan_id} for m in board.members],
        "group_limits": board.record,
        "site_import_kw": board.site_import_kw,
    }
