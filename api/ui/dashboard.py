"""The site dashboard: a page whose live part htmx reloads every few seconds."""

from __future__ import annotations

import json
from http import HTTPStatus

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import RowNumber
from api.ui.common import AdminSession, ContextDep, CsrfChecked, logged_in_admin, render
from ems import sites
from ems.admin.dashboard import power_series, site_dashboard
from ems.admin.explain import describe_profile, explain_session
from ems.drivers import links as driver_links

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(logged_in_admin)])


@router.get("/sites/{site_id}/dashboard")
def page(request: Request, ctx: ContextDep, site_id: str, user: AdminSession) -> Response:
    try:
        stored = sites.get_site(ctx, site_id)
    except sites.SiteNotFoundError as exc:
        return render(
            request, "error.html", status_code=HTTPStatus.NOT_FOUND, title="Unknown site", message=str(exc)
        )
    return render(
        request,
        "dashboard.html",
        site_id=site_id,
        site=stored.site,
        simulated_from=ctx.settings.clock_start,  # None on real time
        simulated_speed=ctx.settings.clock_speed,
    )


@router.get("/sites/{site_id}/dashboard/live")
def live(request: Request, ctx: ContextDep, site_id: str, user: AdminSession) -> Response:
    try:
        board = site_dashboard(ctx, site_id)
    except sites.SiteNotFoundError as exc:
        return render(
            request, "error.html", status_code=HTTPStatus.NOT_FOUND, title="Unknown site", message=str(exc)
        )
    chart = json.dumps(power_series(board.plan)) if board.plan is not None else "null"
    return render(request, "dashboard_live.html", board=board, site_id=site_id, chart=chart)


@router.post("/sessions/{session_pk}/driver-link", dependencies=[CsrfChecked])
async def mint_link(request: Request, ctx: ContextDep, session_pk: RowNumber, user: AdminSession) -> Response:
    try:
        link = await run_in_threadpool(driver_links.mint, ctx, session_pk)
    except LookupError as exc:
        return render(request, "driver_link.html", error=str(exc), link=None, url=None)
    url = f"{ctx.settings.public_url}{link.path()}"
    return render(request, "driver_link.html", error=None, link=link, url=url)


@router.get("/sessions/{session_pk}/explain")
def explain(request: Request, ctx: ContextDep, session_pk: RowNumber, user: AdminSession) -> Response:
    """Why this profile: the page form of `ems explain` for one session."""
    stories = explain_session(ctx, session_pk=session_pk, last=50)
    if not stories:
        return render(
            request,
            "error.html",
            status_code=HTTPStatus.NOT_FOUND,
            title="Unknown session",
            message=f"no session with key {session_pk}",
        )
    story = stories[0]
    return render(
        request, "explain.html", story=story, described=[describe_profile(p) for p in story.profiles]
    )
