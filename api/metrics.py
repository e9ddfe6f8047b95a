"""`GET /metrics`: Prometheus exposition, behind the admin API's bearer token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api.deps import AdminDep, ContextDep
from ems.admin.metrics import StoreCollector

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
def metrics(ctx: ContextDep, _admin: AdminDep) -> Response:
    """Counters of this process, then the store's states read now."""
    store = CollectorRegistry()
    store.register(StoreCollector(ctx))
    body = generate_latest(ctx.metrics.registry) + generate_latest(store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
