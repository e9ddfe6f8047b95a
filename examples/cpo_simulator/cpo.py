"""The CPO back-end: OCPP events in, OCPI objects out, and the chargingprofiles Receiver.

It keeps the Location of the site and one OCPI Session per OCPP transaction, pushes every change
to the EMS (Session PUT at start, PATCH per MeterValues with `kwh` and one appended charging
period, PATCH COMPLETED at stop; EVSE status PATCHes), forwards the driver's declared departure
and energy once through the EMS's `charging_preferences` extension, and turns the EMS's
chargingprofiles calls into OCPP SetChargingProfile / GetCompositeSchedule /
ClearChargingProfile, answering the EMS's `response_url` with the charge point's verdict.

Pushes go through one FIFO outbox worker, so a session's PUT always precedes its PATCHes and
the OCPP receive loops never wait for HTTP. OCPI has no queueing: a failed push is not retried,
except that a PATCH the EMS does not know (404) is followed by a PUT of the whole session, as
the spec advises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from ocpp.v16.datatypes import ChargingProfile as OcppChargingProfile
from ocpp.v16.datatypes import ChargingSchedule, ChargingSchedulePeriod
from ocpp.v16.enums import ChargingProfileKindType, ChargingProfilePurposeType

from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.schemas import ChargingProfile
from grid_models import Connector as SiteConnector
from grid_models import Site

from .arrivals import Arrival
from .central_system import CentralSystem, OcppError
from .limits import floor_one_decimal, format_ocpp_time, parse_ocpp_time
from .ocpi_client import EmsClient, OcpiCallError, Registration, new_token
from .simtime import SimClock
from .state import SimulatorState

LOG = logging.getLogger(__name__)

PROFILE_RESULT_TIMEOUT_S = 30
ACTIVE_PROFILE_HORIZON_S = 3600
"""Horizon of the ActiveChargingProfile we push (OCPI advises 5-60 min)."""

_EVSE_STATUS = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}
_ALPHA3 = {
    "FR": "FRA",
    "NL": "NLD",
    "DE": "DEU",
    "BE": "BEL",
    "CH": "CHE",
    "IT": "ITA",
    "ES": "ESP",
    "GB": "GBR",
}


def ocpi_time(moment: datetime) -> str:
    return format_ocpi_datetime(moment)


@dataclass
class CpoSession:
    """One OCPI Session, born from an OCPP transaction."""

    id: str
    cp_id: str
    connector_number: int
    site_connector: SiteConnector
    transaction_id: int
    token_uid: str
    start: datetime
    meter_start_wh: float
    last_meter_wh: float
    last_sample_at: datetime
    last_updated: datetime
    profile_id: int
    """The OCPP chargingProfileId this session's profiles use: a new PUT replaces the old one."""
    kwh: float = 0.0
    status: str = "ACTIVE"
    end: datetime | None = None
    charging_periods: list[dict[str, Any]] = field(default_factory=list)
    phases_seen: int | None = None
    ems_profile: bool = False
    """Set once the EMS got an ACCEPTED SetChargingProfile: only then do we push ActiveChargingProfiles."""
    offered_a: float | None = None
    declared: Arrival | None = None

    def cdr_token(self, country_code: str, party_id: str) -> dict[str, Any]:
        return {
            "country_code": country_code,
            "party_id": party_id,
            "uid": self.token_uid,
            "type": "RFID",
            "contract_id": f"{country_code}-{party_id}-C{self.token_uid}"[:36],
        }


class CpoBackend:
    """Implements the central system's `Bridge` and the OCPI logic behind the routes."""

    def __init__(
        self,
        site: Site,
        clock: SimClock,
        state: SimulatorState,
        *,
        country_code: str,
        party_id: str,
        public_url: str,
        business_name: str = "CPO simulator",
    ) -> None:
        self.site = site
        self.clock = clock
        self.state = state
        self.country_code = country_code.upper()
        self.party_id = party_id.upper()
        self.public_url = public_url.rstrip("/")
        self.business_name = business_name
        self.registration = Registration()
        self.central: CentralSystem | None = None
        self.ems: EmsClient | None = None
        self.sessions: dict[str, CpoSession] = {}
        self._by_tx: dict[int, str] = {}
        self._expected: dict[tuple[str, int], Arrival] = {}
        self._outbox: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self.location_id = self._location_id()
        self._connectors: dict[tuple[str, int], SiteConnector] = {
            (cp.id, n): c for cp in site.charge_points for n, c in enumerate(cp.connectors, start=1)
        }
        self.evse_status: dict[str, str] = {c.evse_uid: "AVAILABLE" for c in site.connectors()}
        self.evse_updated: dict[str, datetime] = {c.evse_uid: clock.now() for c in site.connectors()}
        self.location_updated = clock.now()

    # ---- identity, Location ------------------------------------------------------------------

    def _location_id(self) -> str:
        """The site file's OCPI Location for our party if it names one, else the site id."""
        for ref in getattr(self.site, "ocpi_locations", ()):
            if (ref.country_code.upper(), ref.party_id.upper()) == (self.country_code, self.party_id):
                return str(ref.location_id)
        return self.site.id[:36]

    @property
    def versions_url(self) -> str:
        return f"{self.public_url}/ocpi/versions"

    @property
    def base_url(self) -> str:
        return f"{self.public_url}/ocpi/2.2.1"

    def endpoints(self) -> list[dict[str, str]]:
        """Our modules. chargingprofiles ends in `/`: partners build `{url}{session_id}`."""
        return [
            {"identifier": "credentials", "role": "SENDER", "url": f"{self.base_url}/credentials"},
            {"identifier": "sessions", "role": "SENDER", "url": f"{self.base_url}/sessions"},
            {"identifier": "locations", "role": "SENDER", "url": f"{self.base_url}/locations"},
            {
                "identifier": "chargingprofiles",
                "role": "RECEIVER",
                "url": f"{self.base_url}/chargingprofiles/",
            },
        ]

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": self.versions_url,
            "roles": [
                {
                    "role": "CPO",
                    "business_details": {"name": self.business_name},
                    "party_id": self.party_id,
                    "country_code": self.country_code,
                }
            ],
        }

    def connector_object(self, c: SiteConnector) -> dict[str, Any]:
        v = self.site.phase_voltage_v
        power_type = "DC" if c.power_type == "DC" else ("AC_3_PHASE" if len(c.phases) == 3 else "AC_1_PHASE")
        data: dict[str, Any] = {
            "id": c.connector_id,
            "standard": "IEC_62196_T2_COMBO" if c.power_type == "DC" else "IEC_62196_T2",
            "format": "CABLE" if c.power_type == "DC" else "SOCKET",
            "power_type": power_type,
            "max_voltage": round(v),
            "max_amperage": round(c.max_current_a),
            "last_updated": ocpi_time(self.evse_updated[c.evse_uid]),
        }
        if c.max_power_kw is not None:
            data["max_electric_power"] = round(c.max_power_kw * 1000)
        return data

    def evse_object(self, c: SiteConnector) -> dict[str, Any]:
        return {
            "uid": c.evse_uid,
            "evse_id": c.evse_uid,
            "status": self.evse_status[c.evse_uid],
            "capabilities": ["CHARGING_PROFILE_CAPABLE", "RFID_READER"],
            "connectors": [self.connector_object(c)],
            "last_updated": ocpi_time(self.evse_updated[c.evse_uid]),
        }

    def location_object(self) -> dict[str, Any]:
        site = self.site
        extra = site.extra
        return {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": self.location_id,
            "publish": True,
            "name": site.name[:255],
            "address": str(extra.get("address", site.name))[:45],
            "city": str(extra.get("city", "Unknown"))[:45],
            "country": str(extra.get("country", _ALPHA3.get(self.country_code, "FRA"))),
            "coordinates": {"latitude": f"{site.latitude:.6f}", "longitude": f"{site.longitude:.6f}"},
            "evses": [self.evse_object(c) for c in site.connectors()],
            "time_zone": site.timezone,
            "last_updated": ocpi_time(max([self.location_updated, *self.evse_updated.values()])),
        }

    # ---- registration ------------------------------------------------------------------------

    async def register_with_ems(self, versions_url: str, token_a: str) -> None:
        """We initiate: fetch the EMS's endpoints with A, store our B *before* POSTing it (the
        EMS calls our versions back with B while our POST is open), keep the C it returns."""
        assert self.ems is not None
        reg = self.registration
        endpoints = await self.ems.fetch_endpoints(versions_url, token_a)
        credentials_url = next((e["url"] for e in endpoints if e["identifier"] == "credentials"), None)
        if credentials_url is None:
            raise OcpiCallError(f"{versions_url}: the EMS offers no credentials module")
        reg.incoming = new_token()
        reg.status = "REGISTERING"
        try:
            reply = await self.ems.request(
                "POST", credentials_url, body=self.credentials(reg.incoming), routed=False, token=token_a
            )
        except OcpiCallError:
            reg.incoming, reg.status = None, "UNREGISTERED"
            raise
        theirs = reply.data
        if not isinstance(theirs, dict) or not theirs.get("token"):
            reg.incoming, reg.status = None, "UNREGISTERED"
            raise OcpiCallError(f"POST {credentials_url}: no credentials in the answer")
        reg.take_credentials(theirs)
        reg.endpoints = endpoints
        if reg.versions_url and reg.versions_url != versions_url:
            reg.endpoints = await self.ems.fetch_endpoints(reg.versions_url, str(reg.outgoing))
        reg.status = "REGISTERED"
        self.state.event(
            "registered", {"ems": reg.versions_url, "party": f"{reg.country_code}/{reg.party_id}"}
        )
        await self._put_location()  # before any session, so the EMS knows the EVSEs they name

    async def accept_registration(self, credentials: dict[str, Any], renew: bool) -> dict[str, Any]:
        """The EMS initiates (POST) or updates (PUT): fetch its endpoints with its token, issue ours."""
        assert self.ems is not None
        endpoints = await self.ems.fetch_endpoints(str(credentials["url"]), str(credentials["token"]))
        reg = self.registration
        reg.take_credentials(credentials)
        reg.endpoints = endpoints
        reg.incoming = new_token()
        reg.token_a = None
        reg.status = "REGISTERED"
        self.state.event("registered", {"ems": reg.versions_url, "renewed": renew})
        if not renew:
            self.spawn(self._push_location_when_ready())
        return self.credentials(reg.incoming)

    async def _push_location_when_ready(self) -> None:
        # The EMS stores our token only once our answer to its POST reached it: retry briefly.
        for _ in range(40):
            await asyncio.sleep(0.25)
            with contextlib.suppress(OcpiCallError):
                await self._put_location()
                return
        self.state.event("push_failed", {"what": "location", "why": "EMS never accepted our token"})

    def unregister(self) -> None:
        reg = self.registration
        reg.status, reg.incoming, reg.outgoing = "UNREGISTERED", None, None
        self.state.event("unregistered", {})

    @property
    def registered(self) -> bool:
        return self.registration.status == "REGISTERED" and self.ems is not None

    # ---- pushes ------------------------------------------------------------------------------

    def spawn(self, coroutine: Awaitable[None]) -> None:
        async def run() -> None:
            await coroutine

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def enqueue(self, what: str, push: Callable[[], Awaitable[None]]) -> None:
        if self.registered:
            self._outbox.put_nowait((what, push))

    async def outbox_worker(self) -> None:
        while True:
            what, push = await self._outbox.get()
            try:
                await self.push_now(what, push)
            finally:
                self._outbox.task_done()

    async def push_now(self, what: str, push: Callable[[], Awaitable[None]]) -> None:
        """One push, its failure logged and counted, never raised (OCPI does not queue)."""
        try:
            await push()
            self.state.count("pushes_ok")
        except OcpiCallError as exc:
            LOG.warning("push %s failed: %s", what, exc)
            self.state.event("push_failed", {"what": what, "why": str(exc)})
        except Exception as exc:  # keep the worker alive whatever one push does
            LOG.exception("push %s crashed", what)
            self.state.event("push_failed", {"what": what, "why": repr(exc)})

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every queued push went out (used before stopping)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout_s)

    def _ems_url(self, identifier: str, *parts: str) -> str:
        url = self.registration.endpoint(identifier, "RECEIVER") or self.registration.endpoint(identifier)
        if url is None:
            raise OcpiCallError(f"the EMS offers no {identifier} endpoint")
        return url.rstrip("/") + "".join("/" + quote(p, safe="") for p in parts)

    async def _put_location(self) -> None:
        assert self.ems is not None
        url = self._ems_url("locations", self.country_code, self.party_id, self.location_id)
        await self.ems.request("PUT", url, body=self.location_object())
        self.state.event("location_pushed", {"location_id": self.location_id})

    def session_object(self, s: CpoSession) -> dict[str, Any]:
        data: dict[str, Any] = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": s.id,
            "start_date_time": ocpi_time(s.start),
            "kwh": round(s.kwh, 4),
            "cdr_token": s.cdr_token(self.country_code, self.party_id),
            "auth_method": "WHITELIST",
            "location_id": self.location_id,
            "evse_uid": s.site_connector.evse_uid,
            "connector_id": s.site_connector.connector_id,
            "meter_id": f"{s.cp_id}-{s.connector_number}",
            "currency": "EUR",
            "charging_periods": s.charging_periods,
            "status": s.status,
            "last_updated": ocpi_time(s.last_updated),
        }
        if s.end is not None:
            data["end_date_time"] = ocpi_time(s.end)
        return data

    def _session_url(self, s: CpoSession) -> str:
        return self._ems_url("sessions", self.country_code, self.party_id, s.id)

    def _put_session(self, s: CpoSession) -> Callable[[], Awaitable[None]]:
        body = self.session_object(s)

        async def push() -> None:
            assert self.ems is not None
            await self.ems.request("PUT", self._session_url(s), body=body)

        return push

    def _patch_session(self, s: CpoSession, patch: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def push() -> None:
            assert self.ems is not None
            try:
                await self.ems.request("PATCH", self._session_url(s), body=patch)
            except OcpiCallError as exc:
                if exc.http_status != 404:
                    raise
                # Unknown to the EMS (a lost PUT): send the whole session, as OCPI advises.
                await self.ems.request("PUT", self._session_url(s), body=self.session_object(s))

        return push

    def _put_preferences(self, s: CpoSession, declared: Arrival) -> Callable[[], Awaitable[None]]:
        body: dict[str, Any] = {"profile_type": "REGULAR"}
        if declared.declared_departure is not None:
            body["departure_time"] = ocpi_time(declared.declared_departure)
        if declared.declared_energy_kwh is not None:
            body["energy_need"] = declared.declared_energy_kwh

        async def push() -> None:
            assert self.ems is not None
            url = self._session_url(s) + "/charging_preferences"
            reply = await self.ems.request("PUT", url, body=body)
            self.state.event("preferences_sent", {"session_id": s.id, "body": body, "answer": reply.data})

        return push

    # ---- Bridge: what the central system reports ----------------------------------------------

    def expect(self, cp_id: str, connector_number: int, arrival: Arrival) -> None:
        """The next transaction on this connector is this logged visit (its id and declarations)."""
        self._expected[(cp_id, connector_number)] = arrival

    def authorize(self, id_tag: str) -> bool:
        return bool(id_tag)

    def transaction_started(
        self,
        cp_id: str,
        connector_id: int,
        transaction_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: str,
    ) -> None:
        connector = self._connectors.get((cp_id, connector_id))
        if connector is None:
            LOG.warning("transaction on unknown connector %s/%s", cp_id, connector_id)
            return
        start = parse_ocpp_time(timestamp)
        declared = self._expected.pop((cp_id, connector_id), None)
        if declared is not None and declared.token_uid != id_tag:
            declared = None
        session_id = declared.session_id if declared else f"{cp_id}-{connector_id}-{transaction_id}"
        s = CpoSession(
            id=session_id[:36],
            cp_id=cp_id,
            connector_number=connector_id,
            site_connector=connector,
            transaction_id=transaction_id,
            token_uid=id_tag,
            start=start,
            meter_start_wh=meter_start_wh,
            last_meter_wh=meter_start_wh,
            last_sample_at=start,
            last_updated=start,
            profile_id=100_000 + transaction_id,
            declared=declared,
        )
        self.sessions[s.id] = s
        self._by_tx[transaction_id] = s.id
        self.state.session_started(
            s.id, cp_id, connector.evse_uid, connector.connector_id, transaction_id, start
        )
        self.enqueue(f"session {s.id} PUT", self._put_session(s))
        if declared and (declared.declared_departure or declared.declared_energy_kwh is not None):
            self.enqueue(f"session {s.id} charging_preferences", self._put_preferences(s, declared))

    def _session_of(self, cp_id: str, connector_id: int, transaction_id: int | None) -> CpoSession | None:
        if transaction_id is not None and transaction_id in self._by_tx:
            return self.sessions[self._by_tx[transaction_id]]
        return next(
            (
                s
                for s in self.sessions.values()
                if s.cp_id == cp_id and s.connector_number == connector_id and s.status == "ACTIVE"
            ),
            None,
        )

    def meter_values(
        self, cp_id: str, connector_id: int, transaction_id: int | None, meter_value: list[dict[str, Any]]
    ) -> None:
        s = self._session_of(cp_id, connector_id, transaction_id)
        if s is None or s.status != "ACTIVE":
            return
        for mv in meter_value:
            at = parse_ocpp_time(str(mv["timestamp"]))
            sample = _read_sample(mv.get("sampled_value") or [])
            if sample.energy_wh is None or at <= s.last_sample_at:
                continue
            self.state.meter_value(
                s.id, at, sample.energy_wh, sample.power_w, sample.current_a, sample.offered_a, sample.soc_pct
            )
            drawing = [p for p, a in sample.current_a.items() if a > 0.1]
            if drawing:
                s.phases_seen = len(drawing)
            period = self._period(s, at, sample)
            s.last_meter_wh, s.last_sample_at, s.last_updated = sample.energy_wh, at, at
            s.kwh = max(0.0, (sample.energy_wh - s.meter_start_wh) / 1000.0)
            s.charging_periods.append(period)
            self.state.session_kwh(s.id, s.kwh)
            patch = {"kwh": round(s.kwh, 4), "charging_periods": [period], "last_updated": ocpi_time(at)}
            self.enqueue(f"session {s.id} PATCH", self._patch_session(s, patch))
            self._watch_offered(s, sample.offered_a)

    def _period(self, s: CpoSession, at: datetime, sample: Sample) -> dict[str, Any]:
        """One charging period from the previous sample to this one: averages over it."""
        assert sample.energy_wh is not None
        energy_kwh = max(0.0, (sample.energy_wh - s.last_meter_wh) / 1000.0)
        hours = (at - s.last_sample_at).total_seconds() / 3600.0
        power_kw = energy_kwh / hours if hours > 0 else 0.0
        phases = s.phases_seen or len(s.site_connector.phases)
        dimensions = [
            {"type": "ENERGY", "volume": round(energy_kwh, 4)},
            {"type": "POWER", "volume": round(power_kw, 3)},
            {"type": "CURRENT", "volume": round(power_kw * 1000.0 / (self.site.phase_voltage_v * phases), 2)},
        ]
        if sample.soc_pct is not None:
            dimensions.append({"type": "STATE_OF_CHARGE", "volume": round(sample.soc_pct, 1)})
        return {"start_date_time": ocpi_time(s.last_sample_at), "dimensions": dimensions}

    def _watch_offered(self, s: CpoSession, offered_a: float | None) -> None:
        """Push the ActiveChargingProfile when the limit in force moved, for EMS-profiled sessions."""
        if offered_a is None:
            return
        previous, s.offered_a = s.offered_a, offered_a
        if s.ems_profile and previous is not None and abs(previous - offered_a) >= 0.1:
            self.spawn(self._push_active_profile(s))

    def transaction_stopped(
        self, transaction_id: int, meter_stop_wh: int, timestamp: str, reason: str | None
    ) -> None:
        session_id = self._by_tx.get(transaction_id)
        if session_id is None:
            return
        s = self.sessions[session_id]
        end = max(parse_ocpp_time(timestamp), s.last_sample_at)
        patch: dict[str, Any] = {}
        if meter_stop_wh > s.last_meter_wh + 0.5 and end > s.last_sample_at:
            period = self._period(s, end, Sample(energy_wh=float(meter_stop_wh)))
            s.charging_periods.append(period)
            patch["charging_periods"] = [period]
            s.last_meter_wh = meter_stop_wh
        s.kwh = max(0.0, (meter_stop_wh - s.meter_start_wh) / 1000.0)
        s.status, s.end, s.last_updated = "COMPLETED", end, end
        patch |= {
            "status": "COMPLETED",
            "end_date_time": ocpi_time(end),
            "kwh": round(s.kwh, 4),
            "last_updated": ocpi_time(end),
        }
        self.state.session_stopped(s.id, end, s.kwh, reason)
        self.enqueue(f"session {s.id} COMPLETED", self._patch_session(s, patch))

    def status_changed(self, cp_id: str, connector_id: int, status: str) -> None:
        connector = self._connectors.get((cp_id, connector_id))
        if connector is None:
            return
        ocpi_status = _EVSE_STATUS.get(status, "UNKNOWN")
        if self.evse_status.get(connector.evse_uid) == ocpi_status:
            return
        now = self.clock.now()
        self.evse_status[connector.evse_uid] = ocpi_status
        self.evse_updated[connector.evse_uid] = now
        body = {"status": ocpi_status, "last_updated": ocpi_time(now)}

        async def push() -> None:
            assert self.ems is not None
            url = self._ems_url(
                "locations", self.country_code, self.party_id, self.location_id, connector.evse_uid
            )
            await self.ems.request("PATCH", url, body=body)

        self.enqueue(f"evse {connector.evse_uid} PATCH", push)

    # ---- chargingprofiles Receiver -----------------------------------------------------------

    def ongoing(self, session_id: str) -> CpoSession | None:
        s = self.sessions.get(session_id)
        return s if s is not None and s.status == "ACTIVE" else None

    def set_profile(self, session_id: str, profile: ChargingProfile, response_url: str) -> dict[str, Any]:
        s = self.ongoing(session_id)
        if s is None:
            return {"result": "UNKNOWN_SESSION", "timeout": 0}
        self.spawn(self._apply_profile(s, profile, response_url))
        return {"result": "ACCEPTED", "timeout": PROFILE_RESULT_TIMEOUT_S}

    def ocpp_profile(self, s: CpoSession, profile: ChargingProfile) -> OcppChargingProfile:
        """OCPI ChargingProfile → OCPP 1.6 TxProfile for the session's transaction.

        stackLevel 0, Absolute from `start_date_time` when given, else Relative (to the
        transaction start); limits kept in their unit (A per phase or W total), one decimal;
        numberPhases from the phases the vehicle was seen drawing on, when known.
        """
        unit = str(profile.charging_rate_unit)
        phases = s.phases_seen if unit == "A" else None
        periods = [
            ChargingSchedulePeriod(
                start_period=p.start_period, limit=floor_one_decimal(p.limit), number_phases=phases
            )
            for p in profile.charging_profile_period or []
        ]
        schedule = ChargingSchedule(
            charging_rate_unit=unit,
            charging_schedule_period=periods,
            duration=profile.duration,
            start_schedule=format_ocpp_time(profile.start_date_time) if profile.start_date_time else None,
            min_charging_rate=floor_one_decimal(profile.min_charging_rate)
            if profile.min_charging_rate
            else None,
        )
        return OcppChargingProfile(
            charging_profile_id=s.profile_id,
            stack_level=0,
            charging_profile_purpose=ChargingProfilePurposeType.tx_profile,
            charging_profile_kind=ChargingProfileKindType.absolute
            if profile.start_date_time
            else ChargingProfileKindType.relative,
            charging_schedule=schedule,
            transaction_id=s.transaction_id,
        )

    async def _apply_profile(self, s: CpoSession, profile: ChargingProfile, response_url: str) -> None:
        assert self.central is not None
        ocpp_profile = self.ocpp_profile(s, profile)
        try:
            if not profile.charging_profile_period:
                raise OcppError("a profile without periods")
            status = await self.central.set_charging_profile(s.cp_id, s.connector_number, ocpp_profile)
        except OcppError as exc:
            status = f"error: {exc}"
        result = "ACCEPTED" if status == "Accepted" else "REJECTED"
        if result == "ACCEPTED":
            s.ems_profile = True
        self.state.limit_applied(
            s.id, profile.model_dump(mode="json", exclude_none=True), status, self.clock.now()
        )
        await self._post_result(response_url, {"result": result}, "ChargingProfileResult")

    def get_profile(self, session_id: str, duration_s: int, response_url: str) -> dict[str, Any]:
        s = self.ongoing(session_id)
        if s is None:
            return {"result": "UNKNOWN_SESSION", "timeout": 0}
        self.spawn(self._report_active_profile(s, duration_s, response_url))
        return {"result": "ACCEPTED", "timeout": PROFILE_RESULT_TIMEOUT_S}

    async def active_profile(self, s: CpoSession, duration_s: int) -> dict[str, Any] | None:
        """GetCompositeSchedule → OCPI ActiveChargingProfile (None if the station refused)."""
        assert self.central is not None
        unit = "W" if s.site_connector.power_type == "DC" else "A"
        try:
            reply = await self.central.get_composite_schedule(s.cp_id, s.connector_number, duration_s, unit)
        except OcppError as exc:
            LOG.warning("GetCompositeSchedule for %s failed: %s", s.id, exc)
            return None
        if str(reply.status) != "Accepted" or not reply.charging_schedule:
            return None
        schedule = reply.charging_schedule
        start = parse_ocpp_time(str(reply.schedule_start or schedule.get("start_schedule")))
        periods = [
            {"start_period": int(p["start_period"]), "limit": floor_one_decimal(float(p["limit"]))}
            for p in schedule.get("charging_schedule_period", [])
        ]
        charging_profile: dict[str, Any] = {
            "start_date_time": ocpi_time(start),
            "charging_rate_unit": str(schedule.get("charging_rate_unit", unit)),
            "charging_profile_period": periods,
        }
        if schedule.get("duration") is not None:
            charging_profile["duration"] = int(schedule["duration"])
        return {"start_date_time": ocpi_time(start), "charging_profile": charging_profile}

    async def _report_active_profile(self, s: CpoSession, duration_s: int, response_url: str) -> None:
        profile = await self.active_profile(s, duration_s)
        body: dict[str, Any] = (
            {"result": "ACCEPTED", "profile": profile} if profile else {"result": "REJECTED"}
        )
        await self._post_result(response_url, body, "ActiveChargingProfileResult")

    def clear_profile(self, session_id: str, response_url: str) -> dict[str, Any]:
        s = self.ongoing(session_id)
        if s is None:
            return {"result": "UNKNOWN_SESSION", "timeout": 0}
        self.spawn(self._clear(s, response_url))
        return {"result": "ACCEPTED", "timeout": PROFILE_RESULT_TIMEOUT_S}

    async def _clear(self, s: CpoSession, response_url: str) -> None:
        assert self.central is not None
        try:
            status = await self.central.clear_charging_profile(s.cp_id, s.profile_id)
        except OcppError as exc:
            status = f"error: {exc}"
        result = {"Accepted": "ACCEPTED", "Unknown": "UNKNOWN"}.get(status, "REJECTED")
        self.state.event("profile_cleared", {"session_id": s.id, "result": result})
        await self._post_result(response_url, {"result": result}, "ClearProfileResult")

    async def _post_result(self, response_url: str, body: dict[str, Any], kind: str) -> None:
        if self.ems is None:
            return
        try:
            await self.ems.request("POST", response_url, body=body)
            self.state.event("result_posted", {"kind": kind, "result": body["result"], "url": response_url})
        except OcpiCallError as exc:
            self.state.event("push_failed", {"what": kind, "why": str(exc)})

    async def _push_active_profile(self, s: CpoSession) -> None:
        profile = await self.active_profile(s, ACTIVE_PROFILE_HORIZON_S)
        if profile is None or self.ems is None:
            return
        url = self.registration.endpoint("chargingprofiles", "SENDER")
        if url is None:
            return
        try:
            await self.ems.request("PUT", url.rstrip("/") + "/" + quote(s.id, safe=""), body=profile)
            self.state.event("active_profile_pushed", {"session_id": s.id, "profile": profile})
        except OcpiCallError as exc:
            self.state.event("push_failed", {"what": "ActiveChargingProfile", "why": str(exc)})


@dataclass
class Sample:
    """The measurands of one OCPP MeterValue we use."""

    energy_wh: float | None = None
    power_w: float | None = None
    current_a: dict[str, float] = field(default_factory=dict)
    offered_a: float | None = None
    soc_pct: float | None = None


_SCALE = {"Wh": 1.0, "kWh": 1000.0, "W": 1.0, "kW": 1000.0, "A": 1.0, "Percent": 1.0}


def _read_sample(values: list[dict[str, Any]]) -> Sample:
    sample = Sample()
    for v in values:
        measurand = v.get("measurand", "Energy.Active.Import.Register")
        unit = v.get("unit") or ("Wh" if measurand.startswith("Energy") else "")
        try:
            value = float(v["value"]) * _SCALE.get(unit, 1.0)
        except (KeyError, ValueError):
            continue
        if measurand == "Energy.Active.Import.Register":
            sample.energy_wh = value
        elif measurand == "Power.Active.Import":
            sample.power_w = value
        elif measurand == "Current.Import" and v.get("phase"):
            sample.current_a[str(v["phase"])[:2]] = value
        elif measurand == "Current.Offered":
            sample.offered_a = value
        elif measurand == "SoC":
            sample.soc_pct = value
    return sample
