"""The driver widget: opened only through a signed link, for phones, framed by any eMSP app.

The link's token is the only credential (no cookie, so it works in a third-party iframe), and
an invalid, forged or expired one gets a 403 page that tells nothing about any session. The
admin API mints links: `POST /api/admin/sessions/{session_pk}/driver_link`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.deps import AdminDep, RowNumber
from api.ui.common import ContextDep, is_htmx, render
from ems.core.context import EmsContext
from ems.drivers import links as driver_links
from ems.drivers.view import DriverInputError, DriverView, driver_view, parse_preferences, save_preferences
from ems.store.base import utcnow

router = APIRouter(prefix="/driver", include_in_schema=False)
api_router = APIRouter(prefix="/api/admin", tags=["admin: driver links"])

POLL_S = 3


def _refused(request: Request, message: str) -> Response:
    return render(request, "driver_refused.html", status_code=HTTPStatus.FORBIDDEN, message=message)


def _chart(view: DriverView) -> str:
    if view.curve is None:
        return "null"
    return json.dumps(
        {
            "plan_id": view.curve.plan_id,
            "t": view.curve.times_unix,
            "power_kw": view.curve.power_kw,
            "step_s": view.curve.step_s,
            "delivered_kwh": view.delivered_kwh,
            "departure": view.departure.timestamp() if view.departure else None,
            "tz": str(view.tz),
        }
    )


def _form_values(view: DriverView) -> dict[str, str]:
    pref = view.preference
    departure = pref.departure_time if pref is not None and pref.departure_time else view.departure

    def text(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    return {
        "departure": departure.astimezone(view.tz).strftime("%Y-%m-%dT%H:%M") if departure else "",
        "soc_arrival_pct": text(pref.soc_arrival_pct if pref else None),
        "energy_need_kwh": text(pref.energy_need_kwh if pref else None),
        "battery_capacity_kwh": text(pref.battery_capacity_kwh if pref else None),
        "target_soc_pct": text(pref.target_soc_pct if pref else None),
    }


def _context(view: DriverView, token: str, **extra: Any) -> dict[str, Any]:
    return {
        "view": view,
        "token": token,
        "chart": _chart(view),
        "poll_s": POLL_S,
        "values": _form_values(view),
        "errors": {},
        "message": None,
        **extra,
    }


def _open(ctx: EmsContext, token: str) -> int:
    return driver_links.session_of(ctx, token)


@router.get("/{token}")
async def page(request: Request, ctx: ContextDep, token: str) -> Response:
    try:
        session_pk = await run_in_threadpool(_open, ctx, token)
    except driver_links.InvalidLinkError as exc:
        return _refused(request, str(exc))
    view = await run_in_threadpool(driver_view, ctx, session_pk)
    return render(request, "driver.html", **_context(view, token))


@router.get("/{token}/status")
async def status(request: Request, ctx: ContextDep, token: str) -> Response:
    try:
        session_pk = await run_in_threadpool(_open, ctx, token)
    except driver_links.InvalidLinkError as exc:
        return _refused(request, str(exc))
    view = await run_in_threadpool(driver_view, ctx, session_pk)
    return render(request, "driver_status.html", **_context(view, token))


@router.post("/{token}")
async def save(request: Request, ctx: ContextDep, token: str) -> Response:
    """The token in the URL is the credential, and a forged cross-site POST cannot know it."""
    try:
        session_pk = await run_in_threadpool(_open, ctx, token)
    except driver_links.InvalidLinkError as exc:
        return _refused(request, str(exc))
    form = {k: str(v) for k, v in (await request.form()).items()}
    view = await run_in_threadpool(driver_view, ctx, session_pk)
    try:
        prefs = parse_preferences(form, view.tz, ctx.clock.now())
        await run_in_threadpool(save_preferences, ctx, session_pk, prefs)
    except DriverInputError as exc:
        context = _context(view, token, errors=exc.errors, values={**_form_values(view), **form})
        if is_htmx(request):
            return render(request, "driver_form.html", **context)
        return render(request, "driver.html", status_code=HTTPStatus.UNPROCESSABLE_ENTITY, **context)
    if not is_htmx(request):
        return RedirectResponse(f"/driver/{token}", status_code=HTTPStatus.SEE_OTHER)
    view = await run_in_threadpool(driver_view, ctx, session_pk)
    response = render(
        request, "driver_form.html", **_context(view, token, message="Saved. Your plan is being updated…")
    )
    response.headers["HX-Trigger"] = "prefs-saved"
    return response


@api_router.post("/sessions/{session_pk}/driver_link")
def mint(ctx: ContextDep, _admin: AdminDep, session_pk: RowNumber) -> Response:
    """A signed link to the driver widget of one session (admin bearer token)."""
    try:
        link = driver_links.mint(ctx, session_pk)
    except LookupError as exc:
        return Response(
            json.dumps({"detail": str(exc)}), status_code=HTTPStatus.NOT_FOUND, media_type="application/json"
        )
    body = {
        "session_pk": session_pk,
        "url": f"{ctx.settings.public_url}{link.path()}",
        "path": link.path(),
        "expires_at": link.expires_at.isoformat(),
        "minted_at": utcnow().isoformat(),
    }
    return Response(json.dumps(body), media_type="application/json")
