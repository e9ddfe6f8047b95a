"""A reverse proxy that sends each request to the next of several backends in turn, as a load
balancer in front of API replicas would (the cluster e2e test: every replica gets pushes)."""

from __future__ import annotations

import itertools
from collections import Counter

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def round_robin_app(backends: list[str]) -> tuple[Starlette, Counter[str]]:
    """The proxy app and its count of requests per backend."""
    turns = itertools.cycle(backends)
    served: Counter[str] = Counter()
    client = httpx.AsyncClient(timeout=30.0)

    async def forward(request: Request) -> Response:
        backend = next(turns)
        served[backend] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream = await client.request(
            request.method,
            f"{backend}{request.url.path}",
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        excluded = {"content-length", "transfer-encoding", "connection", "content-encoding"}
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in excluded},
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", forward, methods=methods)])
    return app, served
