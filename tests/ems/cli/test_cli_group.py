"""`ems group import` / `export` and `ems group limit import` (JSON or CSV): stored as the
admin API stores them, a bad file or limit stores nothing and names every problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ems.cli.main import app
from ems.core.config import Settings, get_settings
from ems.core.context import EmsContext
from ems.sites.groups import get_group

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ems.db'}"
    monkeypatch.setenv("EMS_DATABASE_URL", url)
    get_settings.cache_clear()
    for name in ("office-pv", "public-carpark"):
        assert runner.invoke(app, ["site", "import", str(EXAMPLES / "sites" / f"{name}.json")]).exit_code == 0
    yield url
    get_settings.cache_clear()


def test_a_group_and_its_limits_from_a_file(database_url: str, tmp_path: Path) -> None:
    campus = EXAMPLES / "groups" / "campus.json"
    result = runner.invoke(app, ["group", "import", str(campus)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"group_id": "campus", "created": True}
    result = runner.invoke(app, ["group", "export", "campus"])
    assert json.loads(result.stdout) == json.loads(campus.read_text())

    series = tmp_path / "dso.csv"
    series.write_text("start,value\n2026-06-03T17:00:00+02:00,8\n2026-06-03T18:00:00+02:00,10\n")
    args = ["group", "limit", "import", str(series), "--group", "campus", "--id", "dso-1", "--source", "dso"]
    result = runner.invoke(app, [*args, "--valid-until", "2026-06-03T19:00:00+02:00"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"group_id": "campus", "limit_id": "dso-1", "created": True}
    one = tmp_path / "limit.json"
    one.write_text(json.dumps({"id": "dso-2", "source": "openadr3", "max_import_kw": 11}))
    assert runner.invoke(app, ["group", "limit", "import", str(one), "--group", "campus"]).exit_code == 0
    ctx = EmsContext.create(Settings(database_url=database_url))
    try:
        stored = get_group(ctx, "campus")
    finally:
        ctx.close()
    limits = {s.limit.id: s.limit for s in stored.outside_limits}
    assert [p.value for p in limits["dso-1"].series] == [8, 10] and limits["dso-2"].value == 11
    result = runner.invoke(app, ["group", "export", "campus", "--planned"])
    assert [lim["id"] for lim in json.loads(result.stdout)["limits"]][-2:] == ["dso-1", "dso-2"]


def test_bad_input_stores_nothing(database_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "g", "name": "", "sites": ["nowhere"], "limits": [{"id": "x"}]}))
    result = runner.invoke(app, ["group", "import", str(bad)])
    assert result.exit_code == 1
    assert "unknown site 'nowhere'" in result.stderr and "source: required field missing" in result.stderr
    assert runner.invoke(app, ["group", "export", "g"]).exit_code == 1
    runner.invoke(app, ["group", "import", str(EXAMPLES / "groups" / "campus.json")])
    series = tmp_path / "dso.csv"
    series.write_text("2026-06-03T17:00:00+02:00,lots\n")
    result = runner.invoke(
        app, ["group", "limit", "import", str(series), "--group", "campus", "--id", "a", "--source", "dso"]
    )
    assert result.exit_code == 1 and "line 1: value 'lots' is not a number" in result.stderr
    result = runner.invoke(app, ["group", "limit", "import", str(series), "--group", "campus"])
    assert result.exit_code == 1 and "needs --id and --source" in result.stderr
