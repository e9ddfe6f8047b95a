"""A small HTTP/1.1 load generator on raw asyncio streams.

httpx in threads spends more CPU per request than the servers under test on this 2-core
machine, which would hide the server's own cost; pre-serialised requests on keep-alive
connections keep the client side cheap and identical for every server measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class LoadResult:
    latencies_s: list[float]
    wall_s: float
    failures: int


def build_request(method: str, path: str, host: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    if body:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


async def _run(
    port: int, requests: list[bytes], concurrency: int, time_limit_s: float, ok: Callable[[int, bytes], bool]
) -> LoadResult:
    latencies: list[float] = []
    failures = 0
    queue = iter(requests)
    deadline = time.monotonic() + time_limit_s

    async def connection() -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in queue:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                writer.write(request)
                await writer.drain()
                status, body = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                failures += not ok(status, body)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return LoadResult(latencies, time.perf_counter() - started, failures)


def run_load(
    port: int,
    requests: list[bytes],
    concurrency: int,
    time_limit_s: float,
    ok: Callable[[int, bytes], bool] = lambda status, _body: status < 400,
) -> LoadResult:
    """Send `requests` in order over `concurrency` keep-alive connections; bounded by time."""
    return asyncio.run(_run(port, requests, concurrency, time_limit_s, ok))
