"""`ems site import` / `ems site export`: a stored file comes back exactly; a bad one stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from ems.cli.main import app
from ems.core.config import Settings, get_settings
from ems.core.context import EmsContext
from ems.store.cluster import DomainEventRecord
from ems.store.models import SiteVersion

SITES_DIR = Path(__file__).resolve().parents[3] / "examples" / "sites"

runner = CliRunner()


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'ems.db'}"
    monkeypatch.setenv("EMS_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _versions(database_url: str) -> int:
    ctx = EmsContext.create(Settings(database_url=database_url))
    try:
        with ctx.db() as db:
            return int(db.scalar(select(func.count()).select_from(SiteVersion)) or 0)
    finally:
        ctx.close()


@pytest.mark.parametrize("name", ["office-pv.json", "public-carpark.json", "depot.json"])
def test_import_then_export_gives_the_file_back(database_url: str, name: str) -> None:
    path = SITES_DIR / name
    result = runner.invoke(app, ["site", "import", str(path)])
    assert result.exit_code == 0, result.output
    site_id = json.loads(path.read_text())["id"]
    assert json.loads(result.stdout) == {"site_id": site_id, "version": 1}

    result = runner.invoke(app, ["site", "export", site_id])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(path.read_text())
    assert result.stdout.rstrip("\n") == path.read_text().rstrip("\n")  # the samples are written this way


def test_reimport_makes_a_new_version_and_old_ones_export(database_url: str, tmp_path: Path) -> None:
    original = SITES_DIR / "public-carpark.json"
    runner.invoke(app, ["site", "import", str(original)])
    data = json.loads(original.read_text())
    data["grid_connection"]["max_power_kw"] = 22
    changed = tmp_path / "site.json"
    changed.write_text(json.dumps(data))
    result = runner.invoke(app, ["site", "import", str(changed), "--comment", "bigger connection"])
    assert json.loads(result.stdout) == {"site_id": "public-carpark", "version": 2}
    assert json.loads(runner.invoke(app, ["site", "export", "public-carpark"]).stdout) == data
    old = runner.invoke(app, ["site", "export", "public-carpark", "--version", "1"])
    assert json.loads(old.stdout) == json.loads(original.read_text())

    for args in (["public-carpark", "--version", "3"], ["nowhere"]):
        result = runner.invoke(app, ["site", "export", *args])
        assert result.exit_code == 1
        assert result.stderr.startswith("error: ")


def test_a_bad_file_lists_every_problem_and_stores_nothing(database_url: str, tmp_path: Path) -> None:
    data = json.loads((SITES_DIR / "office-pv.json").read_text())
    data["protections"][3]["parent"] = "ghost"
    data["protections"][2]["rated_current_a"] = -1
    data["charge_points"][0]["connectors"][0]["phases"] = ["L1", "L5", "L3"]
    path = tmp_path / "site.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["site", "import", str(path)])
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert len(errors) == 3 and all(line.startswith("error: ") for line in errors)
    for element in ("'zedbox2'", "'zedbox1'", "'cp1-1'"):
        assert any(element in line for line in errors), element
    assert result.stdout == ""
    assert _versions(database_url) == 0

    path.write_text("{not json")
    result = runner.invoke(app, ["site", "import", str(path)])
    assert result.exit_code == 1 and "not valid JSON" in result.stderr
    result = runner.invoke(app, ["site", "import", str(tmp_path / "missing.json")])
    assert result.exit_code == 1 and "cannot read" in result.stderr
    assert _versions(database_url) == 0


def test_an_import_beside_a_cluster_reaches_its_workers_through_the_event_log(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EMS_BROKER_URL set, the command's SiteChanged goes to the log the workers read."""
    monkeypatch.setenv("EMS_BROKER_URL", "memory://")
    get_settings.cache_clear()
    result = runner.invoke(app, ["site", "import", str(SITES_DIR / "office-pv.json")])
    assert result.exit_code == 0, result.output
    ctx = EmsContext.create(Settings(database_url=database_url))
    try:
        with ctx.db() as db:
            logged = [(row.kind, row.payload["site_id"]) for row in db.scalars(select(DomainEventRecord))]
    finally:
        ctx.close()
    assert logged == [("SiteChanged", "office-pv")]
