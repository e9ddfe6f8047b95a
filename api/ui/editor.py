"""The admin diagram editor: thin routes over `ems.sites`, each change a new validated version.

Each form posts one element; the route merges the form into the element as stored (fields it
does not know survive), hands the result to `ems.sites` (the same validation as the REST API)
and answers with the side panel again: saved, or the problems shown next to their fields and
nothing stored. A saved change triggers `site-changed`, on which the diagram and the versions
list reload themselves. An element dragged onto a new parent in the diagram is one more such
change (`/move`); `/diff` says what changed between two versions.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile

from api.ui.common import (
    AdminSession,
    ContextDep,
    CsrfChecked,
    form_number,
    is_htmx,
    logged_in_admin,
    render,
)
from api.ui.diagram import phases_label, render_svg
from ems import sites
from ems.core.context import EmsContext
from grid_models.site import PHASES
from grid_models.validation import Problem, SiteValidationError

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(logged_in_admin)])

KINDS = {
    "protection": "protections",
    "charge_point": "charge_points",
    "pv_plant": "pv_plants",
    "load": "loads",
}
CHILD_KINDS = ("protection", "charge_point", "pv_plant", "load")
MAX_UPLOAD_BYTES = 1_000_000
VERSIONS_LISTED = 10
"""The versions list shows the latest ones; the compare selects offer every version."""


def _phases(form: Mapping[str, Any]) -> list[str]:
    return [str(form[f"phase_{i}"]) for i in (1, 2, 3) if form.get(f"phase_{i}")]


def _all_ids(data: dict[str, Any]) -> set[str]:
    ids = {str(e.get("id")) for key in KINDS.values() for e in data.get(key) or [] if isinstance(e, dict)}
    for cp in data.get("charge_points") or []:
        ids |= {str(c.get("id")) for c in cp.get("connectors") or [] if isinstance(c, dict)}
    return ids


def _find(data: dict[str, Any], kind: str, element_id: str, cp: str | None = None) -> dict[str, Any] | None:
    if kind == "connector":
        parent = _find(data, "charge_point", cp or "")
        items = (parent or {}).get("connectors") or []
    else:
        items = data.get(KINDS.get(kind, ""), []) or []
    found = next((e for e in items if isinstance(e, dict) and e.get("id") == element_id), None)
    return found


class _Panel:
    """What the side panel shows for one element, and the messages of the last action."""

    def __init__(
        self,
        stored: sites.StoredSite,
        kind: str,
        element_id: str,
        cp: str | None = None,
        element: dict[str, Any] | None = None,
    ) -> None:
        self.stored = stored
        self.kind = kind
        self.element_id = element_id
        self.cp = cp
        if kind in ("site", "grid"):
            self.element = element or stored.data
        else:
            self.element = element or _find(stored.data, kind, element_id, cp) or {"id": element_id}

    def context(self, **extra: Any) -> dict[str, Any]:
        data = self.stored.data
        protections = [str(p.get("id")) for p in data.get("protections") or []]
        raw_phases = self.element.get("phases")
        phases: list[Any] = raw_phases if isinstance(raw_phases, list) else []
        stored_element = (
            _find(data, self.kind, self.element_id, self.cp) if self.kind in KINDS or self.cp else None
        )
        stored_phases = (stored_element or {}).get("phases")
        return {
            "site_id": self.stored.site.id,
            "version": self.stored.version,
            "kind": self.kind,
            "element_id": self.element_id,
            "cp": self.cp,
            "element": self.element,
            "protections": protections,
            "phase_choices": PHASES,
            "phases": [*phases, "", "", ""][:3],
            "phases_label": phases_label(stored_phases) if isinstance(stored_phases, list) else "",
            "child_kinds": CHILD_KINDS,
            "problems": [],
            "field_errors": {},
            "message": None,
            **extra,
        }


def _problem_context(problems: tuple[Problem, ...] | list[Problem], element_id: str) -> dict[str, Any]:
    field_errors: dict[str, str] = {}
    for p in problems:
        if p.element_id == element_id and p.field and p.field not in field_errors:
            field_errors[p.field] = p.message
    return {"problems": [str(p) for p in problems], "field_errors": field_errors}


def _panel(request: Request, panel: _Panel, status: int = HTTPStatus.OK, **extra: Any) -> Response:
    response = render(request, "editor_panel.html", status_code=status, **panel.context(**extra))
    return response


def _changed(response: Response) -> Response:
    response.headers["HX-Trigger"] = "site-changed"
    return response


def _apply(
    request: Request,
    ctx: EmsContext,
    site_id: str,
    panel: _Panel,
    action: Callable[[], sites.StoredSite],
    ok_message: Callable[[sites.StoredSite], str],
    after: Callable[[sites.StoredSite], _Panel] | None = None,
    refused_status: int = HTTPStatus.OK,
) -> Response:
    """Run a change: on success the panel (of `after`) with a message, else the problems inline.

    The forms' refusals answer 200 so htmx swaps the panel in; a caller that reads the status
    itself (the diagram's drag) asks for `refused_status` (422, 404 for what is not there).
    """
    try:
        stored = action()
    except SiteValidationError as exc:
        problems = _problem_context(exc.problems, panel.element_id)
        return _panel(request, panel, status=refused_status, **problems)
    except sites.SiteNotFoundError as exc:
        not_found = HTTPStatus.NOT_FOUND if refused_status != HTTPStatus.OK else HTTPStatus.OK
        return _panel(request, panel, status=not_found, problems=[str(exc)])
    except (sites.SiteConflictError, sites.SiteExistsError) as exc:
        conflict = HTTPStatus.CONFLICT if refused_status != HTTPStatus.OK else HTTPStatus.OK
        return _panel(request, panel, status=conflict, problems=[str(exc)])
    next_panel = (
        after(stored) if after is not None else _Panel(stored, panel.kind, panel.element_id, panel.cp)
    )
    return _changed(_panel(request, next_panel, message=ok_message(stored)))


# ---- site list, new site, import, export --------------------------------------------------------


@router.get("")
def site_list(request: Request, ctx: ContextDep, user: AdminSession) -> Response:
    return render(request, "sites.html", sites=sites.list_sites(ctx), problems=[], form={})


def _site_list_error(
    request: Request, ctx: EmsContext, problems: list[str], form: dict[str, Any]
) -> Response:
    return render(
        request,
        "sites.html",
        status_code=HTTPStatus.UNPROCESSABLE_ENTITY,
        sites=sites.list_sites(ctx),
        problems=problems,
        form=form,
    )


@router.post("/sites", dependencies=[CsrfChecked])
async def new_site(request: Request, ctx: ContextDep, user: AdminSession) -> Response:
    form = {k: str(v) for k, v in (await request.form()).items()}
    site_id = form.get("id", "").strip()
    data = {
        "id": site_id,
        "name": form.get("name", "").strip() or site_id,
        "timezone": form.get("timezone", "").strip() or "UTC",
        "latitude": form_number(form.get("latitude")) or 0,
        "longitude": form_number(form.get("longitude")) or 0,
        "phase_voltage_v": form_number(form.get("phase_voltage_v")) or 230,
        "grid_connection": {"max_power_kw": form_number(form.get("max_power_kw"))},
        "protections": [
            {
                "id": form.get("root_id", "").strip() or "main",
                "parent": None,
                "rated_current_a": form_number(form.get("rated_current_a")),
            }
        ],
    }
    try:
        stored = sites.create_site(ctx, data, sites.Change("created in the editor", user))
    except SiteValidationError as exc:
        return _site_list_error(request, ctx, [str(p) for p in exc.problems], form)
    except (sites.SiteExistsError, sites.SiteConflictError) as exc:
        return _site_list_error(request, ctx, [str(exc)], form)
    return RedirectResponse(f"/admin/sites/{stored.site.id}", status_code=HTTPStatus.SEE_OTHER)


@router.post("/sites/import", dependencies=[CsrfChecked])
async def import_file(request: Request, ctx: ContextDep, user: AdminSession) -> Response:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return _site_list_error(request, ctx, ["choose a site.json file to import"], {})
    raw = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(raw) > MAX_UPLOAD_BYTES:
        return _site_list_error(request, ctx, [f"the file is larger than {MAX_UPLOAD_BYTES} bytes"], {})
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _site_list_error(request, ctx, [f"{upload.filename}: not valid JSON ({exc})"], {})
    try:
        stored, _created = sites.import_site(ctx, data, sites.Change(f"imported {upload.filename}", user))
    except SiteValidationError as exc:
        return _site_list_error(request, ctx, [str(p) for p in exc.problems], {})
    except (sites.SiteExistsError, sites.SiteConflictError) as exc:
        return _site_list_error(request, ctx, [str(exc)], {})
    return RedirectResponse(f"/admin/sites/{stored.site.id}", status_code=HTTPStatus.SEE_OTHER)


@router.get("/sites/{site_id}/export")
def export(ctx: ContextDep, site_id: str, user: AdminSession) -> Response:
    try:
        stored = sites.get_site(ctx, site_id)
    except sites.SiteNotFoundError as exc:
        return Response(str(exc), status_code=HTTPStatus.NOT_FOUND, media_type="text/plain")
    body = json.dumps(stored.data, indent=1, ensure_ascii=False) + "\n"
    filename = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in site_id) or "site"
    return Response(
        body,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}.json"'},
    )


# ---- the editor ---------------------------------------------------------------------------------


def _site_or_404(request: Request, ctx: EmsContext, site_id: str) -> sites.StoredSite | Response:
    try:
        return sites.get_site(ctx, site_id)
    except sites.SiteNotFoundError as exc:
        return render(
            request, "error.html", status_code=HTTPStatus.NOT_FOUND, title="Unknown site", message=str(exc)
        )


@router.get("/sites/{site_id}")
def editor(request: Request, ctx: ContextDep, site_id: str, user: AdminSession) -> Response:
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    unplaced = sites.unplaced_evses(ctx, site_id, stored.version)
    return render(
        request,
        "editor.html",
        stored=stored,
        svg=render_svg(site_id, stored.data),
        unplaced=unplaced,
        **{**_versions_context(ctx, stored), **_Panel(stored, "site", site_id).context()},
    )


def _versions_context(ctx: EmsContext, stored: sites.StoredSite) -> dict[str, Any]:
    """The versions list and the compare form, whose default is the last change."""
    every = sites.list_versions(ctx, stored.site.id)
    return {
        "site_id": stored.site.id,
        "timezone": stored.site.timezone,
        "versions": every[-VERSIONS_LISTED:],
        "all_versions": every,
        "compare_to": stored.version,
        "compare_from": max(stored.version - 1, 1),
    }


@router.get("/sites/{site_id}/versions")
def versions(request: Request, ctx: ContextDep, site_id: str, user: AdminSession) -> Response:
    """The versions card alone: it reloads on `site-changed`, so a save shows up in it."""
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    return render(request, "editor_versions.html", **_versions_context(ctx, stored))


@router.get("/sites/{site_id}/diff")
def diff(
    request: Request,
    ctx: ContextDep,
    site_id: str,
    user: AdminSession,
    from_version: Annotated[int, Query(alias="from")],
    to_version: Annotated[int, Query(alias="to")],
) -> Response:
    """What changed from one version to another: a fragment for htmx, else a page of its own."""
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    try:
        changes = sites.diff_versions(ctx, site_id, from_version, to_version)
    except sites.SiteNotFoundError as exc:
        return render(
            request, "error.html", status_code=HTTPStatus.NOT_FOUND, title="Unknown version", message=str(exc)
        )
    by_number = {v.version: v for v in sites.list_versions(ctx, site_id)}
    return render(
        request,
        "editor_diff.html" if is_htmx(request) else "editor_diff_page.html",
        site_id=site_id,
        stored=stored,
        timezone=stored.site.timezone,
        old=by_number[from_version],
        new=by_number[to_version],
        changes=changes,
    )


@router.get("/sites/{site_id}/diagram")
def diagram(
    request: Request, ctx: ContextDep, site_id: str, user: AdminSession, selected: str | None = None
) -> Response:
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    return render(
        request,
        "editor_diagram.html",
        site_id=site_id,
        version=stored.version,
        svg=render_svg(site_id, stored.data, selected),
        unplaced=sites.unplaced_evses(ctx, site_id, stored.version),
        protections=[p.id for p in stored.site.protections],
        phase_choices=PHASES,
    )


@router.get("/sites/{site_id}/panel")
def panel(
    request: Request,
    ctx: ContextDep,
    site_id: str,
    user: AdminSession,
    kind: str = "site",
    id: str = "",
    cp: str | None = None,
) -> Response:
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    if kind not in ("site", "grid", "connector", *KINDS):
        kind = "site"
    if kind not in ("site", "grid") and _find(stored.data, kind, id, cp) is None:
        return _panel(
            request, _Panel(stored, "site", site_id), problems=[f"no {kind} {id!r} in this version"]
        )
    return _panel(request, _Panel(stored, kind, id or site_id, cp))


def _merged(kind: str, current: dict[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    """The element as stored with the form's fields written over it."""
    element = copy.deepcopy(current)
    if kind == "protection":
        element["parent"] = form.get("parent") or None
        element["rated_current_a"] = form_number(form.get("rated_current_a"))
    elif kind == "charge_point":
        element["protection"] = form.get("protection")
    elif kind == "connector":
        for name in ("evse_uid", "connector_id"):
            element[name] = str(form.get(name, "")).strip()
        element["phases"] = _phases(form)
        element["max_current_a"] = form_number(form.get("max_current_a"))
        element["min_current_a"] = form_number(form.get("min_current_a"))
        element["power_type"] = form.get("power_type") or "AC"
        max_power = form_number(form.get("max_power_kw"))
        if max_power is None:
            element.pop("max_power_kw", None)
        else:
            element["max_power_kw"] = max_power
    elif kind == "pv_plant":
        element["protection"] = form.get("protection")
        for name in ("peak_power_kw", "tilt_deg", "azimuth_deg"):
            element[name] = form_number(form.get(name))
    elif kind == "load":
        element["protection"] = form.get("protection")
        element["phases"] = _phases(form)
    return element


def _merged_site(current: dict[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(current)
    data["name"] = str(form.get("name", "")).strip()
    data["timezone"] = str(form.get("timezone", "")).strip()
    for name in ("latitude", "longitude", "phase_voltage_v"):
        data[name] = form_number(form.get(name))
    grid = dict(data.get("grid_connection") or {})
    grid["max_power_kw"] = form_number(form.get("max_power_kw"))
    data["grid_connection"] = grid
    return data


@router.post("/sites/{site_id}/save", dependencies=[CsrfChecked])
async def save(
    request: Request,
    ctx: ContextDep,
    site_id: str,
    user: AdminSession,
    kind: str,
    id: str,
    cp: str | None = None,
) -> Response:
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    form = {k: str(v) for k, v in (await request.form()).items()}
    change = sites.Change(f"editor: {kind} {id}", user)
    version = stored.version

    def saved(s: sites.StoredSite) -> str:
        return f"Saved as version {s.version}." if s.version != version else "No change."

    if kind in ("site", "grid"):
        data = _merged_site(stored.data, form)
        panel = _Panel(stored, "site", site_id, element=data)
        return _apply(
            request, ctx, site_id, panel, lambda: sites.replace_site(ctx, site_id, data, change), saved
        )
    current = _find(stored.data, kind, id, cp)
    if current is None:
        return _panel(
            request, _Panel(stored, "site", site_id), problems=[f"no {kind} {id!r} in this version"]
        )
    element = _merged(kind, current, form)
    panel = _Panel(stored, kind, id, cp, element=element)
    if kind == "connector":
        return _apply(
            request,
            ctx,
            site_id,
            panel,
            lambda: sites.put_connector(ctx, site_id, cp or "", id, element, change)[0],
            saved,
        )
    collection = KINDS[kind]
    return _apply(
        request,
        ctx,
        site_id,
        panel,
        lambda: sites.put_element(ctx, site_id, collection, id, element, change)[0],
        saved,
    )


def _new_element(kind: str, new_id: str, parent: str, form: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "protection":
        return {
            "id": new_id,
            "parent": parent or None,
            "rated_current_a": form_number(form.get("rated_current_a")) or 16,
        }
    if kind == "charge_point":
        return {"id": new_id, "protection": parent, "connectors": []}
    if kind == "pv_plant":
        return {"id": new_id, "protection": parent, "peak_power_kw": 10, "tilt_deg": 30, "azimuth_deg": 180}
    if kind == "load":
        return {"id": new_id, "protection": parent, "phases": ["L1", "L2", "L3"]}
    return {
        "id": new_id,
        "evse_uid": str(form.get("evse_uid") or "").strip() or new_id,
        "connector_id": str(form.get("connector_id") or "").strip() or "1",
        "phases": ["L1", "L2", "L3"],
        "max_current_a": 32,
        "min_current_a": 6,
    }


@router.post("/sites/{site_id}/add", dependencies=[CsrfChecked])
async def add_child(
    request: Request,
    ctx: ContextDep,
    site_id: str,
    user: AdminSession,
    parent_kind: str,
    parent: str = "",
) -> Response:
    """A new child of a protection (or of the grid: a root protection), or a charge point's connector."""
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    form = {k: str(v) for k, v in (await request.form()).items()}
    kind = "connector" if parent_kind == "charge_point" else form.get("child_kind", "protection")
    new_id = form.get("new_id", "").strip()
    back = _Panel(stored, parent_kind if parent_kind in KINDS else "site", parent or site_id)
    if kind not in (*CHILD_KINDS, "connector"):
        return _panel(request, back, problems=[f"cannot add a {kind!r}"])
    if not new_id:
        return _panel(
            request, back, problems=["give the new element an id"], field_errors={"new_id": "required"}
        )
    if new_id in _all_ids(stored.data):
        return _panel(
            request,
            back,
            problems=[f"id {new_id!r} is already used in this site"],
            field_errors={"new_id": "already used"},
        )
    if parent_kind in ("site", "grid") and kind != "protection":
        return _panel(request, back, problems=["under the grid connection only a protection can be added"])
    element = _new_element(kind, new_id, parent, form)
    change = sites.Change(f"editor: add {kind} {new_id}", user)
    if kind == "connector":

        def action() -> sites.StoredSite:
            return sites.put_connector(ctx, site_id, parent, new_id, element, change)[0]

    else:

        def action() -> sites.StoredSite:
            return sites.put_element(ctx, site_id, KINDS[kind], new_id, element, change)[0]

    return _apply(
        request,
        ctx,
        site_id,
        back,
        action,
        lambda s: f"Added {kind.replace('_', ' ')} {new_id} (version {s.version}).",
        after=lambda s: _Panel(s, kind, new_id, parent if kind == "connector" else None),
    )


@router.post("/sites/{site_id}/delete", dependencies=[CsrfChecked])
def delete(
    request: Request,
    ctx: ContextDep,
    site_id: str,
    user: AdminSession,
    kind: str,
    id: str,
    cp: str | None = None,
) -> Response:
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    panel = _Panel(stored, kind, id, cp)
    change = sites.Change(f"editor: delete {kind} {id}", user)
    if kind == "connector":

        def action() -> sites.StoredSite:
            return sites.delete_connector(ctx, site_id, cp or "", id, change)

    elif kind in KINDS:

        def action() -> sites.StoredSite:
            return sites.delete_element(ctx, site_id, KINDS[kind], id, change)

    else:
        return _panel(request, panel, problems=["the site itself is deleted from the REST API"])
    return _apply(
        request,
        ctx,
        site_id,
        panel,
        action,
        lambda s: f"Deleted {kind.replace('_', ' ')} {id} (version {s.version}).",
        after=lambda s: _Panel(s, "site", site_id),
    )


@router.post("/sites/{site_id}/place", dependencies=[CsrfChecked])
async def place(
    request: Request, ctx: ContextDep, site_id: str, user: AdminSession, evse_uid: str, connector_id: str
) -> Response:
    """Wire an EVSE the CPO pushed but the diagram lacks, from its proposal and the form."""
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    form = {k: str(v) for k, v in (await request.form()).items()}
    phases = _phases(form)
    max_current = form_number(form.get("max_current_a"))
    placement = sites.Placement(
        charge_point_id=form.get("charge_point_id") or None,
        protection=form.get("protection") or None,
        phases=phases or None,
        max_current_a=max_current if isinstance(max_current, int | float) else None,
    )
    panel = _Panel(stored, "site", site_id)
    return _apply(
        request,
        ctx,
        site_id,
        panel,
        lambda: sites.place_unplaced(
            ctx, site_id, evse_uid, connector_id, placement, sites.Change(f"editor: place {evse_uid}", user)
        ),
        lambda s: f"Placed EVSE {evse_uid} connector {connector_id} (version {s.version}).",
    )


@router.post("/sites/{site_id}/move", dependencies=[CsrfChecked])
async def move(request: Request, ctx: ContextDep, site_id: str, user: AdminSession) -> Response:
    """Hang an element under another protection, as dropped in the diagram (or by keyboard).

    The form names the element (`kind`, `id`) and where it goes (`to_kind` `protection` with
    `to`, or `grid` for a protection on the grid itself). Refusals answer 4xx with the panel
    naming the problem; nothing is stored then.
    """
    stored = _site_or_404(request, ctx, site_id)
    if isinstance(stored, Response):
        return stored
    form = {k: str(v) for k, v in (await request.form()).items()}
    kind, element_id = form.get("kind", ""), form.get("id", "")
    to_kind, to = form.get("to_kind", "protection"), form.get("to", "")
    site_panel = _Panel(stored, "site", site_id)
    if kind not in (*sites.MOVABLE, "connector") or (
        kind != "connector" and _find(stored.data, kind, element_id) is None
    ):
        name = kind.replace("_", " ") or "element"
        return _panel(
            request,
            site_panel,
            status=HTTPStatus.NOT_FOUND,
            problems=[f"no {name} {element_id!r} in this version"],
        )
    if to_kind not in ("grid", "protection"):
        return _panel(
            request,
            site_panel,
            status=HTTPStatus.UNPROCESSABLE_ENTITY,
            problems=[f"drop onto a protection or the grid connection, not a {to_kind.replace('_', ' ')}"],
        )
    new_parent = None if to_kind == "grid" else to
    where = "the grid connection" if new_parent is None else new_parent
    version = stored.version
    panel = _Panel(stored, kind, element_id) if kind in sites.MOVABLE else site_panel

    def moved(s: sites.StoredSite) -> str:
        if s.version == version:
            return f"No change: {element_id} is already under {where}."
        return f"Moved {kind.replace('_', ' ')} {element_id} under {where} (version {s.version})."

    return _apply(
        request,
        ctx,
        site_id,
        panel,
        lambda: sites.move_element(
            ctx,
            site_id,
            kind,
            element_id,
            new_parent,
            sites.Change(f"moved {element_id} under {where}", user),
        ),
        moved,
        refused_status=HTTPStatus.UNPROCESSABLE_ENTITY,
    )
