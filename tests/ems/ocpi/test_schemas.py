"""OCPI 2.2.1 models against the spec's own examples, plus the inputs they must refuse."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from ems.ocpi.schemas import (
    EVSE,
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    CdrDimensionType,
    ChargingPreferences,
    ChargingPreferencesResponse,
    ChargingProfile,
    ChargingProfilePeriod,
    ChargingProfileResponse,
    ChargingProfileResponseType,
    ChargingProfileResult,
    ChargingProfileResultType,
    ChargingRateUnit,
    ClearProfileResult,
    Connector,
    ConnectorPatch,
    ConnectorType,
    Credentials,
    Endpoint,
    EvsePatch,
    Location,
    LocationPatch,
    ModuleID,
    OcpiResponse,
    PowerType,
    ProfileType,
    Session,
    SessionPatch,
    SessionStatus,
    SetChargingProfile,
    Version,
    VersionDetails,
    VersionNumber,
    floor_one_decimal,
)
from ems.ocpi.status import OcpiStatus, is_client_error, is_hub_error, is_server_error, is_success

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ocpi_examples"

# Which model each spec example is (PUT/GET body, PATCH body, list ...).
VALID_EXAMPLES: dict[str, Any] = {
    "session_example_1_simple_start.json": Session,
    "session_example_2_short_finished.json": Session,
    "session_patch_example_charging_period.json": SessionPatch,
    "session_patch_example_total_cost.json": SessionPatch,
    "location_example.json": Location,
    "location_example_parking_garage_opening_hours.json": Location,
    "location_example_uc2_destination_charger.json": Location,
    "location_example_uc3_destination_charger_not_published.json": Location,
    "location_example_uc4_limited_visibility.json": Location,
    "location_example_uc5_home_charge_point.json": Location,
    "location_patch_example_location.json": LocationPatch,
    "location_patch_example_status.json": EvsePatch,
    "location_patch_example_remove_evse.json": EvsePatch,
    "location_patch_example_tariff.json": ConnectorPatch,
    "credentials_example.json": Credentials,
    "credentials_example2.json": Credentials,
    "credentials_example3.json": Credentials,
    "credentials_example4.json": Credentials,
    "version_details_example.json": VersionDetails,
    "version_details_example2.json": VersionDetails,
    "versions_info_example.json": list[Version],
}
# The spec's own example that is not a valid 2.2.1 object (see the README).
ERRATA = {"location_put_example_add_evse.json"}

_DATETIME_SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _locs(error: ValidationError) -> set[tuple[int | str, ...]]:
    return {tuple(e["loc"]) for e in error.errors()}


def test_every_fixture_is_accounted_for() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    assert on_disk == set(VALID_EXAMPLES) | ERRATA
    assert (FIXTURES / "README.md").is_file()


@pytest.mark.parametrize("name", sorted(VALID_EXAMPLES))
def test_spec_example_validates_and_round_trips(name: str) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(VALID_EXAMPLES[name])
    original = _load(name)
    model = adapter.validate_python(original)

    dumped = adapter.dump_python(model, mode="json", exclude_unset=True)
    # Same document (JSON numbers compare by value: 0.00 == 0.0, 120 == 120.0).
    assert dumped == original
    # Validate the dump again: equal model.
    assert adapter.validate_python(dumped) == model
    assert adapter.validate_json(adapter.dump_json(model)) == model

    for text in _strings(dumped):
        if _DATETIME_SHAPE.match(text):
            assert text.endswith("Z") and len(text) <= 25, text


def test_put_example_add_evse_is_a_spec_erratum() -> None:
    """The 2.2.1 'add an EVSE' PUT example is not a complete EVSE: we refuse it, naming why."""
    raw = _load("location_put_example_add_evse.json")
    with pytest.raises(ValidationError) as excinfo:
        EVSE.model_validate(raw)
    assert _locs(excinfo.value) == {
        ("connectors", 0, "power_type"),
        ("connectors", 0, "max_voltage"),
        ("connectors", 0, "max_amperage"),
        ("connectors", 0, "last_updated"),
        ("physical_reference",),
    }
    # Completed, it validates; the unknown `floor` (spec typo for floor_level) is kept, not lost.
    raw["connectors"][0].update(power_type="AC_3_PHASE", max_voltage=230, max_amperage=16)
    raw["connectors"][0]["last_updated"] = raw["last_updated"]
    raw["physical_reference"] = "3"
    evse = EVSE.model_validate(raw)
    assert evse.model_extra == {"floor": -1}
    assert evse.model_dump(mode="json")["floor"] == -1


def test_session_example_values() -> None:
    session = Session.model_validate(_load("session_example_2_short_finished.json"))
    assert session.status is SessionStatus.COMPLETED
    assert session.charging_periods is not None
    assert session.charging_periods[0].dimensions[0].type is CdrDimensionType.ENERGY
    assert session.charging_periods[2].tariff_id == "12"
    assert session.total_cost is not None and session.total_cost.incl_vat == 9.35
    assert session.end_date_time is not None and session.end_date_time.tzinfo is not None


def test_session_patch_keeps_only_what_was_sent() -> None:
    patch = SessionPatch.model_validate(_load("session_patch_example_charging_period.json"))
    assert patch.model_fields_set == {"kwh", "charging_periods", "total_cost", "last_updated"}
    assert patch.status is None


def test_versions_tolerate_unknown_numbers_and_custom_modules() -> None:
    versions = TypeAdapter(list[Version]).validate_python(
        [{"version": "2.2.1", "url": "https://x/2.2.1"}, {"version": "2.3.0", "url": "https://x/2.3.0"}]
    )
    assert versions[0].version is VersionNumber.V2_2_1
    assert versions[1].version == "2.3.0"
    known = Endpoint.model_validate({"identifier": "sessions", "role": "RECEIVER", "url": "https://x/s"})
    custom = Endpoint.model_validate({"identifier": "nltnm-x", "role": "SENDER", "url": "https://x/c"})
    assert known.identifier is ModuleID.SESSIONS
    assert custom.identifier == "nltnm-x"
    assert custom.model_dump(mode="json")["identifier"] == "nltnm-x"


# --------------------------------------------------------------------------------------------
# Refused inputs: each names the field
# --------------------------------------------------------------------------------------------


def _session() -> dict[str, Any]:
    data: dict[str, Any] = _load("session_example_1_simple_start.json")
    return data


def _location() -> dict[str, Any]:
    data: dict[str, Any] = _load("location_example.json")
    return data


def _assert_rejected(model: type[BaseModel], data: Any, loc: tuple[int | str, ...]) -> None:
    with pytest.raises(ValidationError) as excinfo:
        model.model_validate(data)
    assert loc in _locs(excinfo.value), excinfo.value.errors()
    assert str(loc[-1]) in str(excinfo.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "x" * 37),
        ("country_code", "NLD"),
        ("party_id", "STKX"),
        ("location_id", "L" * 37),
        ("evse_uid", "E" * 37),
        ("connector_id", "C" * 37),
        ("currency", "EURO"),
        ("meter_id", "m" * 256),
        ("authorization_reference", "a" * 37),
    ],
)
def test_session_too_long(field: str, value: str) -> None:
    data = _session()
    data[field] = value
    _assert_rejected(Session, data, (field,))


def test_session_nested_too_long_and_non_ascii_cistring() -> None:
    data = _session()
    data["cdr_token"]["uid"] = "u" * 37
    _assert_rejected(Session, data, ("cdr_token", "uid"))
    data = _session()
    data["id"] = "séance"
    _assert_rejected(Session, data, ("id",))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", "CHARGING"),
        ("status", "active"),
        ("auth_method", "RFID"),
    ],
)
def test_session_wrong_enum(field: str, value: str) -> None:
    data = _session()
    data[field] = value
    _assert_rejected(Session, data, (field,))


def test_wrong_enum_in_nested_objects() -> None:
    data = _session()
    data["cdr_token"]["type"] = "CARD"
    _assert_rejected(Session, data, ("cdr_token", "type"))
    data = _location()
    data["evses"][0]["connectors"][0]["power_type"] = "AC_4_PHASE"
    _assert_rejected(Location, data, ("evses", 0, "connectors", 0, "power_type"))
    data = _location()
    data["evses"][0]["capabilities"] = ["TELEPORT"]
    _assert_rejected(Location, data, ("evses", 0, "capabilities", 0))


@pytest.mark.parametrize(
    "field",
    [
        "country_code",
        "party_id",
        "id",
        "start_date_time",
        "kwh",
        "cdr_token",
        "auth_method",
        "location_id",
        "evse_uid",
        "connector_id",
        "currency",
        "status",
        "last_updated",
    ],
)
def test_session_put_missing_required_field(field: str) -> None:
    data = _session()
    del data[field]
    _assert_rejected(Session, data, (field,))


@pytest.mark.parametrize(
    "field",
    ["country_code", "party_id", "id", "publish", "address", "city", "country", "coordinates", "time_zone"],
)
def test_location_put_missing_required_field(field: str) -> None:
    data = _location()
    del data[field]
    _assert_rejected(Location, data, (field,))


def test_location_bad_values() -> None:
    data = _location()
    data["address"] = "a" * 46
    _assert_rejected(Location, data, ("address",))
    data = _location()
    data["coordinates"]["latitude"] = "51.04"  # spec: 5 to 7 decimals
    _assert_rejected(Location, data, ("coordinates", "latitude"))
    data = _location()
    data["evses"][0]["connectors"] = []  # cardinality +
    _assert_rejected(Location, data, ("evses", 0, "connectors"))
    data = _location()
    data["evses"][0]["evse_id"] = "E" * 49
    _assert_rejected(Location, data, ("evses", 0, "evse_id"))
    data = _location()
    data["evses"][0]["connectors"][0]["max_voltage"] = "lots"
    _assert_rejected(Location, data, ("evses", 0, "connectors", 0, "max_voltage"))
    data = _location()
    data["last_updated"] = "last tuesday"
    _assert_rejected(Location, data, ("last_updated",))


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (SessionPatch, {"kwh": 15.0}),
        (LocationPatch, {"name": "Interparking Gent Zuid"}),
        (EvsePatch, {"status": "CHARGING"}),
        (ConnectorPatch, {"tariff_ids": ["15"]}),
    ],
)
def test_patch_without_last_updated(model: type[BaseModel], body: dict[str, Any]) -> None:
    _assert_rejected(model, body, ("last_updated",))


def test_patch_fields_keep_their_limits() -> None:
    stamp = "2019-06-24T12:39:09Z"
    _assert_rejected(SessionPatch, {"id": "x" * 37, "last_updated": stamp}, ("id",))
    _assert_rejected(SessionPatch, {"status": "CHARGING", "last_updated": stamp}, ("status",))
    _assert_rejected(EvsePatch, {"status": "BROKEN", "last_updated": stamp}, ("status",))
    _assert_rejected(ConnectorPatch, {"tariff_ids": ["t" * 37], "last_updated": stamp}, ("tariff_ids", 0))
    _assert_rejected(LocationPatch, {"city": "c" * 46, "last_updated": stamp}, ("city",))


@pytest.mark.parametrize(
    ("full", "patch"),
    [(Session, SessionPatch), (Location, LocationPatch), (EVSE, EvsePatch), (Connector, ConnectorPatch)],
)
def test_patch_models_mirror_the_full_objects(full: type[BaseModel], patch: type[BaseModel]) -> None:
    assert list(patch.model_fields) == list(full.model_fields)
    required = {name for name, info in patch.model_fields.items() if info.is_required()}
    assert required == {"last_updated"}


def test_patch_keeps_unknown_fields_for_the_extras_bucket() -> None:
    patch = SessionPatch.model_validate({"vendor_x": {"a": 1}, "last_updated": "2019-06-23T08:11:00Z"})
    assert patch.model_extra == {"vendor_x": {"a": 1}}
    assert patch.model_dump(exclude_unset=True, mode="json") == {
        "vendor_x": {"a": 1},
        "last_updated": "2019-06-23T08:11:00Z",
    }


def test_string_and_cistring_character_sets() -> None:
    data = _location()
    data["name"] = "Gent Zuid\u0007"  # control character in a string
    _assert_rejected(Location, data, ("name",))
    data = _location()
    data["directions"] = [{"language": "nl", "text": "Ingang links,\nnaast de lift"}]
    assert Location.model_validate(data).directions is not None  # line breaks tolerated in free text
    data = _location()
    data["city"] = "Köln"  # string: Unicode allowed
    assert Location.model_validate(data).city == "Köln"
    data = _location()
    data["evses"][0]["evse_id"] = "BE*BEC*E04150300ü"  # CiString: printable ASCII only
    _assert_rejected(Location, data, ("evses", 0, "evse_id"))


def test_credentials_token_rules() -> None:
    data = _load("credentials_example.json")
    data["token"] = "has space"
    _assert_rejected(Credentials, data, ("token",))
    data["token"] = "t" * 65
    _assert_rejected(Credentials, data, ("token",))
    data["token"] = ""
    _assert_rejected(Credentials, data, ("token",))
    data = _load("credentials_example.json")
    data["roles"] = []
    _assert_rejected(Credentials, data, ("roles",))
    data = _load("credentials_example.json")
    data["roles"].append(dict(data["roles"][0], party_id="exa"))  # same party, other case
    _assert_rejected(Credentials, data, ("roles",))
    data = _load("credentials_example.json")
    data["roles"][0]["role"] = "SCSP"
    assert Credentials.model_validate(data).roles[0].role == "SCSP"


# --------------------------------------------------------------------------------------------
# Serialisation policy
# --------------------------------------------------------------------------------------------


def test_absent_optionals_are_omitted_not_null() -> None:
    session = Session.model_validate(_session())
    dumped = session.model_dump(mode="json")
    assert "meter_id" not in dumped
    assert "charging_periods" not in dumped
    assert "null" not in session.model_dump_json()


def test_unknown_fields_survive_store_and_forward() -> None:
    data = _session()
    data["x_vendor"] = {"soc_percent": 40}
    session = Session.model_validate(data)
    assert session.model_extra == {"x_vendor": {"soc_percent": 40}}
    assert json.loads(session.model_dump_json()) == data


def test_datetimes_with_offsets_are_re_emitted_with_z() -> None:
    data = _session()
    data["start_date_time"] = "2020-03-09T11:17:09+01:00"
    data["last_updated"] = "2020-03-09T10:17:09"
    dumped = Session.model_validate(data).model_dump(mode="json")
    assert dumped["start_date_time"] == "2020-03-09T10:17:09Z"
    assert dumped["last_updated"] == "2020-03-09T10:17:09Z"


def test_envelope_omits_data_when_absent() -> None:
    ack = OcpiResponse[None].success()
    dumped = ack.model_dump(mode="json")
    assert set(dumped) == {"status_code", "timestamp"}
    assert dumped["status_code"] == 1000
    assert dumped["timestamp"].endswith("Z") and len(dumped["timestamp"]) <= 25
    assert '"data"' not in ack.model_dump_json()

    error = OcpiResponse[None].error(OcpiStatus.INVALID_OR_MISSING_PARAMETERS, "last_updated missing")
    assert set(error.model_dump(mode="json")) == {"status_code", "status_message", "timestamp"}
    assert error.status_code == 2001


def test_envelope_with_data() -> None:
    reply = OcpiResponse[ChargingProfileResponse].success(
        ChargingProfileResponse(result=ChargingProfileResponseType.ACCEPTED, timeout=30)
    )
    assert reply.model_dump(mode="json")["data"] == {"result": "ACCEPTED", "timeout": 30}
    sessions = OcpiResponse[list[Session]].model_validate(
        {"data": [_session()], "status_code": 1000, "timestamp": "2020-03-09T10:17:09Z"}
    )
    assert sessions.data is not None and sessions.data[0].id == "101"


def test_envelope_received_tolerates_null_data_and_unknown_keys() -> None:
    reply = OcpiResponse[Any].model_validate(
        {
            "data": None,
            "status_code": 2001,
            "status_message": "no",
            "timestamp": "2020-03-09T10:17:09",
            "x": 1,
        }
    )
    assert reply.data is None
    assert reply.model_dump(mode="json") == {
        "status_code": 2001,
        "status_message": "no",
        "timestamp": "2020-03-09T10:17:09Z",
    }


# --------------------------------------------------------------------------------------------
# Charging profiles and preferences
# --------------------------------------------------------------------------------------------


def _set_profile(*periods: tuple[int, float], **profile: Any) -> dict[str, Any]:
    return {
        "charging_profile": {
            "charging_rate_unit": "A",
            "charging_profile_period": [{"start_period": s, "limit": lim} for s, lim in periods],
            **profile,
        },
        "response_url": "https://ems.example.com/ocpi/2.2.1/chargingprofiles/result/4b1e",
    }


def test_set_charging_profile_limits_have_one_decimal_rounded_down() -> None:
    body = SetChargingProfile.model_validate(_set_profile((0, 16.06), (900, 7.45), (1800, 6.0)))
    dumped = body.model_dump(mode="json")
    assert [p["limit"] for p in dumped["charging_profile"]["charging_profile_period"]] == [16.0, 7.4, 6.0]
    body = SetChargingProfile.model_validate(_set_profile((0, 11040.0), min_charging_rate=1380.55))
    assert body.charging_profile.min_charging_rate == 1380.5
    assert floor_one_decimal(16.1) == 16.1  # binary float noise must not push it down


def test_set_charging_profile_does_not_mutate_the_callers_profile() -> None:
    profile = ChargingProfile(
        charging_rate_unit=ChargingRateUnit.A,
        charging_profile_period=[ChargingProfilePeriod(start_period=0, limit=9.99)],
    )
    body = SetChargingProfile(charging_profile=profile, response_url="https://ems.example.com/r/1")
    assert body.charging_profile.charging_profile_period is not None
    assert body.charging_profile.charging_profile_period[0].limit == 9.9
    assert profile.charging_profile_period is not None
    assert profile.charging_profile_period[0].limit == 9.99


def test_set_charging_profile_periods_start_at_zero_and_increase() -> None:
    with pytest.raises(ValidationError, match="start_period must be 0"):
        SetChargingProfile.model_validate(_set_profile((60, 16.0)))
    with pytest.raises(ValidationError, match="must increase"):
        SetChargingProfile.model_validate(_set_profile((0, 16.0), (900, 10.0), (900, 8.0)))
    _assert_rejected(
        SetChargingProfile,
        _set_profile((0, -1.0)),
        ("charging_profile", "charging_profile_period", 0, "limit"),
    )
    no_url = _set_profile((0, 16.0))
    del no_url["response_url"]
    _assert_rejected(SetChargingProfile, no_url, ("response_url",))


def test_active_charging_profile_push_and_results() -> None:
    push = ActiveChargingProfile.model_validate(
        {
            "start_date_time": "2024-05-01T12:00:00+02:00",
            "charging_profile": {
                "charging_rate_unit": "W",
                "charging_profile_period": [{"start_period": 0, "limit": 11000.25}],
            },
        }
    )
    # Received limits are kept as sent (the one-decimal rule binds senders).
    assert push.charging_profile.charging_profile_period is not None
    assert push.charging_profile.charging_profile_period[0].limit == 11000.25
    assert push.model_dump(mode="json")["start_date_time"] == "2024-05-01T10:00:00Z"

    result = ActiveChargingProfileResult.model_validate(
        {"result": "ACCEPTED", "profile": push.model_dump(mode="json")}
    )
    assert result.result is ChargingProfileResultType.ACCEPTED
    assert result.profile == push
    assert (
        ChargingProfileResult.model_validate({"result": "REJECTED"}).result
        is ChargingProfileResultType.REJECTED
    )
    assert (
        ClearProfileResult.model_validate({"result": "UNKNOWN"}).result is ChargingProfileResultType.UNKNOWN
    )
    _assert_rejected(ChargingProfileResult, {"result": "TOO_OFTEN"}, ("result",))
    _assert_rejected(ChargingProfileResponse, {"result": "ACCEPTED"}, ("timeout",))
    assert ChargingProfileResponse.model_validate({"result": "TOO_OFTEN", "timeout": 0}).result == "TOO_OFTEN"


def test_charging_preferences() -> None:
    prefs = ChargingPreferences.model_validate(
        {"profile_type": "GREEN", "departure_time": "2024-05-01T17:00:00Z", "energy_need": 20.5}
    )
    assert prefs.profile_type is ProfileType.GREEN
    assert prefs.discharge_allowed is None
    _assert_rejected(ChargingPreferences, {"profile_type": "SLOW"}, ("profile_type",))
    _assert_rejected(ChargingPreferences, {"energy_need": 10}, ("profile_type",))
    assert {r.value for r in ChargingPreferencesResponse} == {
        "ACCEPTED",
        "DEPARTURE_REQUIRED",
        "ENERGY_NEED_REQUIRED",
        "NOT_POSSIBLE",
        "PROFILE_TYPE_NOT_SUPPORTED",
    }


def test_enums_match_the_221_lists() -> None:
    assert {p.value for p in PowerType} == {
        "AC_1_PHASE",
        "AC_2_PHASE",
        "AC_2_PHASE_SPLIT",
        "AC_3_PHASE",
        "DC",
    }
    values = {c.value for c in ConnectorType}
    assert len(values) == 40
    assert {"CHAOJI", "GBT_AC", "GBT_DC", "NEMA_14_50", "DOMESTIC_O", "IEC_60309_2_single_16"} <= values
    assert {s.value for s in SessionStatus} == {"ACTIVE", "COMPLETED", "INVALID", "PENDING", "RESERVATION"}


def test_status_codes() -> None:
    assert int(OcpiStatus.SUCCESS) == 1000
    assert int(OcpiStatus.INVALID_OR_MISSING_PARAMETERS) == 2001
    assert int(OcpiStatus.NO_MATCHING_ENDPOINTS) == 3003
    assert int(OcpiStatus.HUB_CONNECTION_PROBLEM) == 4003
    assert [int(s) for s in OcpiStatus] == [
        1000,
        2000,
        2001,
        2002,
        2003,
        2004,
        3000,
        3001,
        3002,
        3003,
        4000,
        4001,
        4002,
        4003,
    ]
    assert is_success(1900) and not is_success(2000)
    assert is_client_error(2004) and is_server_error(3001) and is_hub_error(4000)
