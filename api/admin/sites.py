"""Admin API of sites: thin routes over `ems.sites` (groups of sites: `api.admin.groups`).

Every error answers `{"detail": ..., "problems": [...]}` (422: each problem names its element;
404 unknown id; 409 existing site or a concurrent change), converted in one place: `AdminRoute`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminDep, ContextDep, RowNumber, admin_user
from ems.core.context import EmsContext
from ems.core.json_types import Number
from ems.sites import (
    Change,
    Placement,
    SiteConflictError,
    SiteExistsError,
    SiteNotFoundError,
    StoredSite,
    UnplacedEvse,
    conservative_connector,
    create_site,
    delete_connector,
    delete_element,
    delete_site,
    get_connector,
    get_element,
    get_site,
    list_sites,
    list_versions,
    place_unplaced,
    put_connector,
    put_element,
    put_grid_connection,
    replace_site,
    unplaced_evses,
)
from ems.sites.groups import GroupConflictError, GroupNotFoundError
from grid_models.groupfile import GroupValidationError
from grid_models.site import Connector
from grid_models.sitefile import site_json_schema
from grid_models.validation import Problem, SiteValidationError


def _problems_response(status: HTTPStatus, detail: str, problems: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"detail": detail, "problems": problems}, status_code=status)


def _problem(p: Problem) -> dict[str, str]:
    return {
        "element_id": p.element_id,
        "element_kind": p.element_kind,
        "field": p.field,
        "message": p.message,
    }


def _request_problems(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        out.append(
            {
                "element_id": "",
                "element_kind": loc[0] if loc else "request",
                "field": ".".join(loc[1:]),
                "message": str(error.get("msg")),
            }
        )
    return out


class AdminRoute(APIRoute):
    """Turns the service's errors (and request validation) into the admin API's error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SiteValidationError as exc:
                shown = "; ".join(str(p) for p in exc.problems[:5])
                more = f"; and {len(exc.problems) - 5} more" if len(exc.problems) > 5 else ""
                what = "group" if isinstance(exc, GroupValidationError) else "site"
                return _problems_response(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    f"invalid {what} ({len(exc.problems)} problem(s)): {shown}{more}",
                    [_problem(p) for p in exc.problems],
                )
            except RequestValidationError as exc:
                return _problems_response(
                    HTTPStatus.UNPROCESSABLE_ENTITY, "invalid request", _request_problems(exc)
                )
            except (SiteNotFoundError, GroupNotFoundError) as exc:
                return _problems_response(HTTPStatus.NOT_FOUND, str(exc), [])
            except (SiteExistsError, SiteConflictError, GroupConflictError) as exc:
                return _problems_response(HTTPStatus.CONFLICT, str(exc), [])
            except HTTPException as exc:
                return JSONResponse(
                    {"detail": exc.detail, "problems": []}, status_code=exc.status_code, headers=exc.headers
                )

        return route


router = APIRouter(
    prefix="/api/admin",
    tags=["admin: sites"],
    dependencies=[Depends(admin_user)],
    route_class=AdminRoute,
)


def _change(admin: AdminDep, comment: Annotated[str | None, Query(max_length=1000)] = None) -> Change:
    """Who changes the site (the admin identity) and why (`?comment=`), kept with the version."""
    return Change(comment=comment, author=admin)


ChangeDep = Annotated[Change, Depends(_change)]
SiteBody = Annotated[Any, Body(description="a whole site file (formats §1)")]
ElementBody = Annotated[Any, Body(description="one element of the site file, as in the file")]


def _connector(c: Connector) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "evse_uid": c.evse_uid,
        "connector_id": c.connector_id,
        "phases": list(c.phases),
        "max_current_a": c.max_current_a,
        "min_current_a": c.min_current_a,
        "power_type": c.power_type,
        "max_power_kw": c.max_power_kw,
    }
    return out


def _unplaced(stored: StoredSite, u: UnplacedEvse) -> dict[str, Any]:
    worst = conservative_connector(stored.site, u)
    return {
        "country_code": u.country_code,
        "party_id": u.party_id,
        "location_id": u.location_id,
        "evse_uid": u.evse_uid,
        "connector_id": u.connector_id,
        "evse_status": u.evse_status,
        "power_type": u.power_type,
        "max_voltage_v": u.max_voltage_v,
        "max_amperage_a": u.max_amperage_a,
        "max_electric_power_w": u.max_electric_power_w,
        "active_session": u.active_session,
        "proposal": {
            "charge_point_id": u.proposal.charge_point_id,
            "protection": u.proposal.protection,
            "connector": _connector(u.proposal.connector),
            "notes": list(u.proposal.notes),
        },
        "conservative": {
            "protection": worst.charge_point.protection,
            "per_phase_a": worst.per_phase_a,
            "reserved_power_kw": worst.reserved_power_kw,
            "flags": list(worst.flags),
        },
    }


def _site_reply(ctx: EmsContext, stored: StoredSite) -> dict[str, Any]:
    unplaced = unplaced_evses(ctx, stored.site.id, stored.version)
    return {
        "site_id": stored.site.id,
        "version": stored.version,
        "created_at": stored.created_at.isoformat(),
        "comment": stored.comment,
        "author": stored.author,
        "unplaced": {
            "connectors": len(unplaced),
            "with_active_session": sum(1 for u in unplaced if u.active_session),
        },
        "site": stored.data,
    }


def _element_reply(site_id: str, version: int, element: dict[str, Any]) -> dict[str, Any]:
    return {"site_id": site_id, "version": version, "element": element}


def _created(content: dict[str, Any], created: bool) -> JSONResponse:
    return JSONResponse(content, status_code=HTTPStatus.CREATED if created else HTTPStatus.OK)


@router.get("/schema/site.json")
def site_schema() -> dict[str, Any]:
    return site_json_schema()


@router.get("/sites")
def sites(ctx: ContextDep) -> list[dict[str, Any]]:
    return [
        {
            "site_id": s.site_id,
            "name": s.name,
            "current_version": s.current_version,
            "created_at": s.created_at.isoformat(),
            "updated_at": s.updated_at.isoformat(),
        }
        for s in list_sites(ctx)
    ]


@router.post("/sites", status_code=HTTPStatus.CREATED)
def create(ctx: ContextDep, change: ChangeDep, body: SiteBody) -> JSONResponse:
    stored = create_site(ctx, body, change)
    return JSONResponse(
        _site_reply(ctx, stored),
        status_code=HTTPStatus.CREATED,
        headers={"Location": f"/api/admin/sites/{stored.site.id}"},
    )


@router.get("/sites/{site_id}")
def read(
    ctx: ContextDep, site_id: str, version: Annotated[RowNumber | None, Query()] = None
) -> dict[str, Any]:
    return _site_reply(ctx, get_site(ctx, site_id, version))


@router.put("/sites/{site_id}")
def replace(ctx: ContextDep, change: ChangeDep, site_id: str, body: SiteBody) -> dict[str, Any]:
    return _site_reply(ctx, replace_site(ctx, site_id, body, change))


@router.delete("/sites/{site_id}", status_code=HTTPStatus.NO_CONTENT)
def delete(ctx: ContextDep, site_id: str) -> Response:
    delete_site(ctx, site_id)
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/sites/{site_id}/versions")
def versions(ctx: ContextDep, site_id: str) -> list[dict[str, Any]]:
    return [
        {
            "version": v.version,
            "created_at": v.created_at.isoformat(),
            "comment": v.comment,
            "author": v.author,
        }
        for v in list_versions(ctx, site_id)
    ]


@router.put("/sites/{site_id}/grid_connection")
def grid_connection(ctx: ContextDep, change: ChangeDep, site_id: str, body: ElementBody) -> dict[str, Any]:
    stored = put_grid_connection(ctx, site_id, body, change)
    return _element_reply(site_id, stored.version, stored.data["grid_connection"])


@router.get("/sites/{site_id}/unplaced")
def unplaced(ctx: ContextDep, site_id: str) -> dict[str, Any]:
    stored = get_site(ctx, site_id)
    items = unplaced_evses(ctx, site_id, stored.version)
    return {"site_id": site_id, "version": stored.version, "unplaced": [_unplaced(stored, u) for u in items]}


class PlaceBody(BaseModel):
    """How to wire an unplaced connector; anything left out takes the proposal's value."""

    model_config = ConfigDict(extra="forbid")

    charge_point_id: str | None = Field(default=None, min_length=1)
    protection: str | None = Field(default=None, min_length=1)
    site_connector_id: str | None = Field(default=None, min_length=1)
    phases: list[str] | None = None
    max_current_a: Number | None = None
    min_current_a: Number | None = None
    max_power_kw: Number | None = None


@router.post("/sites/{site_id}/unplaced/{evse_uid}/{connector_id}/place", status_code=HTTPStatus.CREATED)
def place(
    ctx: ContextDep,
    change: ChangeDep,
    site_id: str,
    evse_uid: str,
    connector_id: str,
    body: Annotated[PlaceBody | None, Body()] = None,
) -> JSONResponse:
    placement = Placement(**(body or PlaceBody()).model_dump())
    stored = place_unplaced(ctx, site_id, evse_uid, connector_id, placement, change)
    return JSONResponse(_site_reply(ctx, stored), status_code=HTTPStatus.CREATED)


CONNECTOR_PATH = "/sites/{site_id}/charge_points/{charge_point_id}/connectors/{connector_id}"


@router.get(CONNECTOR_PATH)
def read_connector(ctx: ContextDep, site_id: str, charge_point_id: str, connector_id: str) -> dict[str, Any]:
    element, version = get_connector(ctx, site_id, charge_point_id, connector_id)
    return _element_reply(site_id, version, element)


@router.put(CONNECTOR_PATH)
def write_connector(
    ctx: ContextDep,
    change: ChangeDep,
    site_id: str,
    charge_point_id: str,
    connector_id: str,
    body: ElementBody,
) -> JSONResponse:
    stored, created = put_connector(ctx, site_id, charge_point_id, connector_id, body, change)
    cp = next(c for c in stored.data["charge_points"] if c["id"] == charge_point_id)
    element = next(c for c in cp["connectors"] if c["id"] == connector_id)
    return _created(_element_reply(site_id, stored.version, element), created)


@router.delete(CONNECTOR_PATH)
def remove_connector(
    ctx: ContextDep, change: ChangeDep, site_id: str, charge_point_id: str, connector_id: str
) -> dict[str, Any]:
    stored = delete_connector(ctx, site_id, charge_point_id, connector_id, change)
    return {"site_id": site_id, "version": stored.version}


ELEMENT_PATH = "/sites/{site_id}/{collection}/{element_id}"


@router.get(ELEMENT_PATH)
def read_element(ctx: ContextDep, site_id: str, collection: str, element_id: str) -> dict[str, Any]:
    element, version = get_element(ctx, site_id, collection, element_id)
    return _element_reply(site_id, version, element)


@router.put(ELEMENT_PATH)
def write_element(
    ctx: ContextDep, change: ChangeDep, site_id: str, collection: str, element_id: str, body: ElementBody
) -> JSONResponse:
    stored, created = put_element(ctx, site_id, collection, element_id, body, change)
    element = next(e for e in stored.data[collection] if e.get("id") == element_id)
    return _created(_element_reply(site_id, stored.version, element), created)


@router.delete(ELEMENT_PATH)
def remove_element(
    ctx: ContextDep, change: ChangeDep, site_id: str, collection: str, element_id: str
) -> dict[str, Any]:
    stored = delete_element(ctx, site_id, collection, element_id, change)
    return {"site_id": site_id, "version": stored.version}
