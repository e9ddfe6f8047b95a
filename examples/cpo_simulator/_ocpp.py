"""Typed doorways into the `ocpp` package, which ships without type hints.

`on` keeps the decorated handler's signature for mypy; `OcppChargePoint` is the v16 engine
(both ends, central system and charge point, subclass it). The engine needs only an object with
async `send(str)` / `recv() -> str`: a `websockets` connection, or a fake one in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from ocpp.routing import on as _on
from ocpp.v16 import ChargePoint as _ChargePoint

F = TypeVar("F", bound=Callable[..., Any])

OcppChargePoint: Any = _ChargePoint


class Connection(Protocol):
    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...


def on(action: str) -> Callable[[F], F]:
    """`ocpp.routing.on`, typed: route the OCPP `action` to the decorated method."""
    return cast(Callable[[F], F], _on(action))
