"""OCPI objects for the tests, built the way a CPO would send them."""

from __future__ import annotations

from typing import Any


def session(
    session_id: str = "s1",
    *,
    status: str = "ACTIVE",
    last_updated: str = "2026-06-01T08:05:00Z",
    kwh: Any = 0.0,
    evse_uid: str = "FR*INE*E0001",
    connector_id: str = "1",
    country_code: str = "NL",
    party_id: str = "CPO",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": session_id,
        "start_date_time": "2026-06-01T08:05:00Z",
        "kwh": kwh,
        "cdr_token": {
            "uid": "TOK1",
            "type": "RFID",
            "contract_id": "NL-ACM-C12345678",
            "country_code": "NL",
            "party_id": "ACM",
        },
        "auth_method": "WHITELIST",
        "location_id": "LOC1",
        "evse_uid": evse_uid,
        "connector_id": connector_id,
        "currency": "EUR",
        "status": status,
        "last_updated": last_updated,
    }
    body.update(extra)
    return body


def charging_period(start: str, kwh: float, current_a: float | None = None) -> dict[str, Any]:
    dimensions: list[dict[str, Any]] = [{"type": "ENERGY", "volume": kwh}]
    if current_a is not None:
        dimensions.append({"type": "CURRENT", "volume": current_a})
    return {"start_date_time": start, "dimensions": dimensions}


def connector(
    connector_id: str = "1", power_type: str = "AC_3_PHASE", amps: int = 32, **extra: Any
) -> dict[str, Any]:
    return {
        "id": connector_id,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": power_type,
        "max_voltage": 230,
        "max_amperage": amps,
        "last_updated": "2026-06-01T07:00:00Z",
        **extra,
    }


def evse(
    uid: str = "FR*INE*E0001", connectors: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "uid": uid,
        "evse_id": uid,
        "status": "AVAILABLE",
        "capabilities": ["CHARGING_PROFILE_CAPABLE", "RFID_READER"],
        "connectors": connectors if connectors is not None else [connector()],
        "last_updated": "2026-06-01T07:00:00Z",
        **extra,
    }


def location(
    location_id: str = "LOC1", evses: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": location_id,
        "publish": True,
        "address": "1 Rue de la Gare",
        "city": "Le Bourget-du-Lac",
        "country": "FRA",
        "coordinates": {"latitude": "45.640000", "longitude": "5.870000"},
        "time_zone": "Europe/Paris",
        "evses": evses if evses is not None else [evse()],
        "last_updated": "2026-06-01T07:00:00Z",
        **extra,
    }
