"""OCPI DateTime: lenient parsing, strict ``...Z`` output, and the Pydantic field type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from ems.ocpi.datetimes import (
    MAX_OCPI_DATETIME_LENGTH,
    OcpiDateTime,
    ensure_utc,
    format_ocpi_datetime,
    parse_ocpi_datetime,
)

REFERENCE = datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2015-06-29T20:39:09Z",
        "2015-06-29T20:39:09z",
        "2015-06-29T20:39:09",  # no zone: UTC by definition
        "2015-06-29T20:39:09+00:00",
        "2015-06-29T22:39:09+02:00",
        "2015-06-29T15:39:09-05:00",
        "2015-06-29T22:39:09+0200",
        "2015-06-29 20:39:09Z",
        " 2015-06-29T20:39:09Z ",
    ],
)
def test_parse_accepts_every_form_peers_send(text: str) -> None:
    parsed = parse_ocpi_datetime(text)
    assert parsed == REFERENCE
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "microsecond"),
    [
        ("2015-06-29T20:39:09.1Z", 100_000),
        ("2015-06-29T20:39:09.123Z", 123_000),
        ("2015-06-29T20:39:09.123456", 123_456),
        ("2015-06-29T20:39:09.123456789+00:00", 123_456),  # beyond µs: truncated
    ],
)
def test_parse_keeps_fractional_seconds(text: str, microsecond: int) -> None:
    assert parse_ocpi_datetime(text) == REFERENCE.replace(microsecond=microsecond)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2015-06-29",
        "2015-06-29T20:39Z",
        "2015-13-01T00:00:00Z",
        "2015-02-30T00:00:00Z",
        "2015-06-29T25:00:00Z",
        "2015-06-29T20:39:09+25:00",
        "2015-06-29T20:39:09Zjunk",
        "1435610349",
        "0001-01-01T00:00:00+00:01",  # before year 1 in UTC (found by tests/api/test_fuzz.py)
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC
    ],
)
def test_parse_rejects_garbage_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match="invalid OCPI DateTime") as excinfo:
        parse_ocpi_datetime(text)
    assert repr(text) in str(excinfo.value)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_ocpi_datetime(1435610349)  # type: ignore[arg-type]


def test_format_whole_seconds_with_z() -> None:
    assert format_ocpi_datetime(REFERENCE) == "2015-06-29T20:39:09Z"


def test_format_converts_offsets_and_treats_naive_as_utc() -> None:
    cest = timezone(timedelta(hours=2))
    assert format_ocpi_datetime(datetime(2015, 6, 29, 22, 39, 9, tzinfo=cest)) == "2015-06-29T20:39:09Z"
    assert format_ocpi_datetime(datetime(2015, 6, 29, 20, 39, 9)) == "2015-06-29T20:39:09Z"


def test_format_milliseconds_only_when_present() -> None:
    assert format_ocpi_datetime(REFERENCE.replace(microsecond=123_456)) == "2015-06-29T20:39:09.123Z"
    assert format_ocpi_datetime(REFERENCE.replace(microsecond=5_000)) == "2015-06-29T20:39:09.005Z"
    # Below a millisecond: whole seconds (truncated, never rounded up).
    assert format_ocpi_datetime(REFERENCE.replace(microsecond=999)) == "2015-06-29T20:39:09Z"


def test_ensure_utc() -> None:
    assert ensure_utc(datetime(2020, 1, 1)).tzinfo is UTC
    local = datetime(2020, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert ensure_utc(local) == datetime(2020, 1, 1, tzinfo=UTC)


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_format_parse_round_trip(value: datetime) -> None:
    text = format_ocpi_datetime(value)
    assert len(text) <= MAX_OCPI_DATETIME_LENGTH
    assert text.endswith("Z")
    assert "+" not in text
    expected = value.astimezone(UTC).replace(microsecond=value.microsecond // 1000 * 1000)
    assert parse_ocpi_datetime(text) == expected


class _Stamped(BaseModel):
    at: OcpiDateTime
    until: OcpiDateTime | None = None


def test_field_parses_leniently_and_dumps_with_z() -> None:
    model = _Stamped.model_validate({"at": "2015-06-29T22:39:09+02:00"})
    assert model.at == REFERENCE
    assert model.at.tzinfo is UTC
    assert model.model_dump(mode="json") == {"at": "2015-06-29T20:39:09Z", "until": None}
    assert model.model_dump_json() == '{"at":"2015-06-29T20:39:09Z","until":null}'
    # Python-mode dumps keep a datetime (for the database layer).
    assert model.model_dump()["at"] == REFERENCE


def test_field_accepts_datetime_objects() -> None:
    naive = _Stamped(at=datetime(2015, 6, 29, 20, 39, 9))
    assert naive.at == REFERENCE
    offset = _Stamped(at=datetime(2015, 6, 29, 21, 39, 9, tzinfo=timezone(timedelta(hours=1))))
    assert offset.at == REFERENCE
    assert offset.at.tzinfo is UTC


@pytest.mark.parametrize("bad", ["not a date", 1435610349, None, ["2015-06-29T20:39:09Z"]])
def test_field_error_names_the_field(bad: object) -> None:
    with pytest.raises(ValidationError) as excinfo:
        _Stamped.model_validate({"at": bad})
    errors = excinfo.value.errors()
    assert errors[0]["loc"] == ("at",)
    assert "at" in str(excinfo.value)
    if isinstance(bad, str):
        assert "invalid OCPI DateTime" in errors[0]["msg"]


def test_json_schema_is_a_string() -> None:
    schema = _Stamped.model_json_schema()["properties"]["at"]
    assert {"type": "string", "format": "date-time", "maxLength": 25}.items() <= schema.items()
