"""The OCPP 1.6J central system of the simulated CPO: `ocpp` handlers over a `websockets` server.

Handlers answer at once and hand what they learn to the CPO back-end (`Bridge`), which queues
the OCPI pushes: a handler that awaited HTTP would hold the connection's receive loop, and with
it the answers to our own calls (SetChargingProfile) on that connection.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from typing import Any, Protocol

from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from ._ocpp import Connection, OcppChargePoint, on
from .limits import format_ocpp_time
from .simtime import SimClock

LOG = logging.getLogger(__name__)
OCPP16 = Subprotocol("ocpp1.6")


class Bridge(Protocol):
    """What the central system tells the CPO back-end."""

    def authorize(self, id_tag: str) -> bool: ...

    def transaction_started(
        self,
        cp_id: str,
        connector_id: int,
        transaction_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: str,
    ) -> None: ...

    def transaction_stopped(
        self, transaction_id: int, meter_stop_wh: int, timestamp: str, reason: str | None
    ) -> None: ...

    def meter_values(
        self, cp_id: str, connector_id: int, transaction_id: int | None, meter_value: list[dict[str, Any]]
    ) -> None: ...

    def status_changed(self, cp_id: str, connector_id: int, status: str) -> None: ...


class ChargePointLink(OcppChargePoint):  # type: ignore[misc]
    """The central system's end of one charge point's connection."""

    def __init__(
        self, cp_id: str, connection: Connection, bridge: Bridge, clock: SimClock, tx_ids: Any
    ) -> None:
        super().__init__(cp_id, connection)
        self.bridge = bridge
        self.clock = clock
        self.tx_ids = tx_ids

    def _now(self) -> str:
        return format_ocpp_time(self.clock.now())

    @on(Action.boot_notification)
    def on_boot_notification(
        self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any
    ) -> call_result.BootNotification:
        LOG.info("%s booted (%s %s)", self.id, charge_point_vendor, charge_point_model)
        return call_result.BootNotification(
            current_time=self._now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=self._now())

    @on(Action.status_notification)
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **kwargs: Any
    ) -> call_result.StatusNotification:
        self.bridge.status_changed(self.id, connector_id, status)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str, **kwargs: Any) -> call_result.Authorize:
        status = (
            AuthorizationStatus.accepted if self.bridge.authorize(id_tag) else AuthorizationStatus.invalid
        )
        return call_result.Authorize(id_tag_info={"status": status})

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any
    ) -> call_result.StartTransaction:
        if not self.bridge.authorize(id_tag):
            return call_result.StartTransaction(
                transaction_id=0, id_tag_info={"status": AuthorizationStatus.invalid}
            )
        transaction_id = next(self.tx_ids)
        self.bridge.transaction_started(self.id, connector_id, transaction_id, id_tag, meter_start, timestamp)
        return call_result.StartTransaction(
            transaction_id=transaction_id, id_tag_info={"status": AuthorizationStatus.accepted}
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, reason: str | None = None, **kwargs: Any
    ) -> call_result.StopTransaction:
        self.bridge.transaction_stopped(transaction_id, meter_stop, timestamp, reason)
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    @on(Action.meter_values)
    def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
        **kwargs: Any,
    ) -> call_result.MeterValues:
        self.bridge.meter_values(self.id, connector_id, transaction_id, meter_value)
        return call_result.MeterValues()


class OcppError(RuntimeError):
    """A call to a charge point failed: not connected, timed out, or a CALLERROR."""


class CentralSystem:
    """Accepts charge points at `ws://host:port/ocpp/{charge_point_id}` (subprotocol ocpp1.6)."""

    def __init__(self, bridge: Bridge, clock: SimClock, host: str = "127.0.0.1", port: int = 9000) -> None:
        self.bridge = bridge
        self.clock = clock
        self.host = host
        self.port = port
        self.links: dict[str, ChargePointLink] = {}
        self._tx_ids = itertools.count(1)
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ocpp"

    async def start(self) -> None:
        self._server = await serve(self._handle, self.host, self.port, subprotocols=[OCPP16])
        if self.port == 0:
            self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, connection: ServerConnection) -> None:
        if connection.subprotocol != OCPP16:
            await connection.close(1002, "subprotocol ocpp1.6 required")
            return
        cp_id = (connection.request.path if connection.request else "").rstrip("/").rsplit("/", 1)[-1]
        link = ChargePointLink(cp_id, connection, self.bridge, self.clock, self._tx_ids)
        self.links[cp_id] = link
        try:
            await link.start()
        except ConnectionClosed:
            pass
        finally:
            if self.links.get(cp_id) is link:
                del self.links[cp_id]

    def link(self, cp_id: str) -> ChargePointLink:
        link = self.links.get(cp_id)
        if link is None:
            raise OcppError(f"charge point {cp_id} is not connected")
        return link

    async def call(self, cp_id: str, payload: Any) -> Any:
        """Send one CALL; its CALLRESULT payload, or OcppError."""
        try:
            reply = await self.link(cp_id).call(payload, suppress=False)
        except OcppError:
            raise
        except Exception as exc:  # timeouts, CALLERRORs, a connection that went away
            raise OcppError(f"{type(payload).__name__} to {cp_id}: {exc.__class__.__name__}: {exc}") from exc
        return reply

    async def set_charging_profile(self, cp_id: str, connector_id: int, profile: dict[str, Any]) -> str:
        reply = await self.call(
            cp_id, call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=profile)
        )
        return str(reply.status)

    async def get_composite_schedule(self, cp_id: str, connector_id: int, duration_s: int, unit: str) -> Any:
        return await self.call(
            cp_id,
            call.GetCompositeSchedule(
                connector_id=connector_id, duration=duration_s, charging_rate_unit=unit
            ),
        )

    async def clear_charging_profile(self, cp_id: str, profile_id: int) -> str:
        reply = await self.call(cp_id, call.ClearChargingProfile(id=profile_id))
        return str(reply.status)
