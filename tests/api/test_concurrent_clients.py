"""Many CPO connections at once: 200 keep-alive connections, each with its numbered PATCHes, lose
none; and a client that sends headers, then silence, holds up nobody else and is hung up on."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from api.app import create_app
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.store.models import ChargingPeriod, ChargingSession
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import charging_period, session
from tests.support.servers import ThreadedServer, free_port

CONNECTIONS = 200
PATCHES_PER_CONNECTION = 5
BOUND_S = 240.0


async def _one_connection(url: str, headers: dict[str, str], number: int) -> list[int]:
    """PUT a session, then PATCH it with periods numbered 1..N, on one kept-alive connection."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    codes: list[int] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        path = f"/ocpi/2.2.1/sessions/NL/CPO/load-{number}"
        codes.append((await client.put(path, json=session(f"load-{number}"))).json()["status_code"])
        for k in range(1, PATCHES_PER_CONNECTION + 1):
            stamp = f"2026-06-01T08:{10 + k:02d}:00Z"
            body = {"kwh": float(k), "last_updated": stamp, "charging_periods": [charging_period(stamp, 1.0)]}
            codes.append((await client.patch(path, json=body)).json()["status_code"])
    return codes


def test_200_keep_alive_connections_lose_no_patch(ems: RunningEms) -> None:
    headers = auth(add_registered_partner(ems.ctx))

    async def everyone() -> list[list[int]]:
        tasks = [_one_connection(ems.url, headers, n) for n in range(CONNECTIONS)]
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=BOUND_S)

    # A loop of its own in a thread of its own: a browser test before this one may have left
    # Playwright's loop running in the main thread, where asyncio.run refuses to start.
    with ThreadPoolExecutor(max_workers=1) as runner:
        answers = runner.submit(asyncio.run, everyone()).result()
    assert all(code == 1000 for codes in answers for code in codes)
    with ems.ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(ChargingSession)) == CONNECTIONS
        assert (
            db.scalar(select(func.count()).select_from(ChargingPeriod))
            == CONNECTIONS * PATCHES_PER_CONNECTION
        )
        assert set(db.scalars(select(ChargingSession.kwh))) == {float(PATCHES_PER_CONNECTION)}


def test_a_silent_client_does_not_stall_the_others_and_is_dropped(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ems.db'}",
        public_url=f"http://127.0.0.1:{port}",
        request_body_timeout_s=1.0,
    )
    ctx = EmsContext.create(settings)
    headers = auth(add_registered_partner(ctx))
    silent: list[socket.socket] = []
    with ThreadedServer(create_app(context=ctx, background=False), port=port) as server:
        try:
            for n in range(20):  # headers announcing a body that never comes
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.sendall(
                    f"PUT /ocpi/2.2.1/sessions/NL/CPO/slow-{n} HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: {headers['Authorization']}\r\nContent-Type: application/json\r\n"
                    "Content-Length: 1000\r\n\r\n{".encode()
                )
                silent.append(sock)
            # A stalled server would fail this with a timeout.
            reply = httpx.put(
                f"{server.url}/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=headers, timeout=10
            )
            assert reply.json()["status_code"] == 1000
            # Past request_body_timeout_s the server answers each silent client and hangs up.
            for sock in silent:
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
                assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
                assert b'"status_code": 2000' in answer and b"incomplete" in answer
        finally:
            for sock in silent:
                sock.close()
    with ctx.db() as db:
        ids = set(db.scalars(select(ChargingSession.session_id)))
    ctx.close()
    assert ids == {"s1"}  # nothing of the half-sent requests was stored
