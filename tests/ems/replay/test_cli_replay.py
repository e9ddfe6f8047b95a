"""`ems replay` on bad input: one clear line on stderr, exit code 2, nothing replayed."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ems.cli.replay import app
from ems.replay.log import read_session_log
from tests.ems.replay.helpers import SITE_FILE, month_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return month_inputs(tmp_path_factory.mktemp("cli-in"), date(2026, 6, 2), 1)


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stderr


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--strategy", "magic"], "--strategy"),
        (["--strategy", "optimized,optimized"], "twice"),
        (["--step-min", "7"], "--step-min"),
        (["--min-current", "maybe"], "--min-current"),
        (["--mip-max-binaries", "-1"], "--mip-max-binaries"),
        (["--forecast-error", "-1"], "--forecast-error"),
        (["--objective", "fastest"], "--objective"),
    ],
)
def test_bad_options(inputs: tuple[Path, Path], tmp_path: Path, extra: list[str], needle: str) -> None:
    log, series = inputs
    code, err = _run(["--site", str(SITE_FILE), "--sessions", str(log), "--series", str(series),
                      "--out", str(tmp_path / "o"), *extra])  # fmt: skip
    assert code == 2
    assert needle in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_bad_files(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    log, _series = inputs
    header = log.read_text().splitlines()[0]
    cases = [
        (["--site", str(tmp_path / "none.json"), "--sessions", str(log)], "not found"),
        (["--site", str(_bad(tmp_path, "s.json", "{")), "--sessions", str(log)], "--site"),
        (["--site", str(SITE_FILE), "--sessions", str(_bad(tmp_path, "e.csv", ""))], "empty"),
        (["--site", str(SITE_FILE), "--sessions", str(_bad(tmp_path, "n.csv", "a,b\n1,2\n"))], "missing"),
        (
            ["--site", str(SITE_FILE), "--sessions",
             str(_bad(tmp_path, "x.csv", header + "\ns1,FR*INE*E0001,1,T,2026-06-01T08:00:00+02:00,"
                      "2026-06-01T07:00:00+02:00,5,7,3,,,,\n"))],
            "before the arrival",
        ),
        (
            ["--site", str(SITE_FILE), "--sessions",
             str(_bad(tmp_path, "y.csv", header + "\ns1,FR*INE*E0001,1,T,2026-06-01T08:00:00+02:00,"
                      "2026-06-01T17:00:00+02:00,lots,7,3,,,,\n"))],
            "energy_kwh",
        ),
        (
            ["--site", str(SITE_FILE), "--sessions",
             str(_bad(tmp_path, "z.csv", header + "\ns1,XX*NOPE,1,T,2026-06-01T08:00:00+02:00,"
                      "2026-06-01T17:00:00+02:00,5,7,3,,,,\n"))],
            "not on site",
        ),
        (["--site", str(SITE_FILE), "--sessions", str(_bad(tmp_path, "j.jsonl", "{not json\n"))], "JSON"),
        (["--site", str(SITE_FILE), "--sessions", str(log), "--series", str(_bad(tmp_path, "se.csv", "x\n"))],
         "--series"),
    ]  # fmt: skip
    for args, needle in cases:
        code, err = _run([*args, "--out", str(tmp_path / "o")])
        assert code == 2, (args, err)
        assert needle in err and err.count("\n") == 1, (needle, err)


def test_ocpi_jsonl_log(tmp_path: Path) -> None:
    """The recorded OCPI form of §3 reads into the same sessions as the CSV form."""
    lines = [
        '{"at": "2026-06-01T06:00:00Z", "method": "PUT", "path": "/sessions/FR/ABC/s001", "body": '
        '{"id": "s001", "start_date_time": "2026-06-01T06:00:00Z", "kwh": 0, "evse_uid": "FR*INE*E0007", '
        '"connector_id": "1", "cdr_token": {"uid": "TOK1"}, "status": "ACTIVE"}}',
        '{"at": "2026-06-01T06:01:00Z", "method": "PUT", '
        '"path": "/sessions/FR/ABC/s001/charging_preferences", '
        '"body": {"profile_type": "REGULAR", "departure_time": "2026-06-01T15:00:00Z", "energy_need": 12}}',
        '{"at": "2026-06-01T07:00:00Z", "method": "PATCH", "path": "/sessions/FR/ABC/s001", "body": '
        '{"kwh": 7.4, "charging_periods": [{"start_date_time": "2026-06-01T06:00:00Z", "dimensions": '
        '[{"type": "POWER", "volume": 7.4}, {"type": "CURRENT", "volume": 32.2}]}]}}',
        '{"at": "2026-06-01T15:30:00Z", "method": "PATCH", "path": "/sessions/FR/ABC/s001", "body": '
        '{"kwh": 11.5, "status": "COMPLETED", "end_date_time": "2026-06-01T15:30:00Z"}}',
    ]
    path = _bad(tmp_path, "log.jsonl", "\n".join(lines) + "\n")
    (s,) = read_session_log(path)
    assert (s.session_id, s.evse_uid, s.token_uid, s.energy_kwh, s.max_power_kw, s.vehicle_phases) == (
        "s001", "FR*INE*E0007", "TOK1", 11.5, 7.4, 1,
    )  # fmt: skip
    assert s.declared_energy_kwh == 12 and s.declared_departure is not None
    assert s.departure.isoformat() == "2026-06-01T15:30:00+00:00"
