"""Versions and version details."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import AnyCaller, ContextDep
from api.ocpi.envelope import envelope
from ems.ocpi.partners import OCPI_VERSION, own_endpoints, own_versions

router = APIRouter(tags=["ocpi: versions"])


@router.get("/ocpi/versions")
def get_versions(ctx: ContextDep, _caller: AnyCaller) -> JSONResponse:
    return envelope(own_versions(ctx))


@router.get(f"/ocpi/{OCPI_VERSION}")
def get_version_details(ctx: ContextDep, _caller: AnyCaller) -> JSONResponse:
    return envelope({"version": OCPI_VERSION, "endpoints": own_endpoints(ctx)})
