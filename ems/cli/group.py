"""`ems group import` / `ems group export`: store a group file (a territory of sites) / print it
back with its limits from outside. `ems group limit import`: a limit from outside (a grid
operator's), as the admin API's `PUT /api/admin/groups/{id}/limits` takes it: a JSON limit in
the group file's shape, or a CSV of `start,value` rows with `--id` and `--source`
(`grid_models.groupfile.limit_dict_from_csv`, which the group page's paste uses too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ems.cli.common import fail, open_context
from ems.sites.groups import GroupConflictError, GroupNotFoundError, get_group, put_group, put_limit
from grid_models.groupfile import GroupValidationError, group_to_dict, limit_dict_from_csv

app = typer.Typer(help="Groups of sites: import, export, limits from outside.", no_args_is_help=True)
limit_app = typer.Typer(help="Limits from outside on a stored group.", no_args_is_help=True)
app.add_typer(limit_app, name="limit")


@app.callback()
def _group() -> None:
    """Groups of sites (territories) under shared limits, in the database."""


@limit_app.callback()
def _limit() -> None:
    """Limits from outside (a grid operator's), replaced by id and source."""


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {what} {path}: {exc.strerror or exc}")
    except json.JSONDecodeError as exc:
        fail(f"{what} {path} is not valid JSON: {exc}")


def _echo_problems(exc: GroupValidationError) -> NoReturn:
    for problem in exc.problems:
        typer.echo(f"error: {problem}", err=True)
    raise typer.Exit(1) from None


@app.command("import")
def import_command(group_json: Annotated[Path, typer.Argument(help="group.json to store")]) -> None:
    """Store a group file (create, or replace the group with its id). Prints {"group_id",
    "created"}; a bad file stores nothing and lists every problem."""
    data = _read_json(group_json, "group file")
    group_id = data.get("id") if isinstance(data, dict) else None
    ctx = open_context()
    try:
        stored, created = put_group(ctx, group_id if isinstance(group_id, str) else "", data)
    except GroupValidationError as exc:
        _echo_problems(exc)
    except GroupConflictError as exc:
        fail(str(exc))
    finally:
        ctx.close()
    typer.echo(json.dumps({"group_id": stored.group_id, "created": created}))


@app.command("export")
def export_command(
    group_id: Annotated[str, typer.Argument(help="id of a stored group")],
    planned: Annotated[
        bool, typer.Option(help="With the limits from outside in their groups (what the planner plans).")
    ] = False,
) -> None:
    """Print a stored group file exactly as stored (or, --planned, with its limits from outside)."""
    ctx = open_context()
    try:
        stored = get_group(ctx, group_id)
    except GroupNotFoundError as exc:
        fail(str(exc))
    finally:
        ctx.close()
    data = group_to_dict(stored.planned()) if planned else stored.data
    typer.echo(json.dumps(data, indent=1, ensure_ascii=False))


@limit_app.command("import")
def limit_import_command(
    limit_file: Annotated[Path, typer.Argument(help="limit.json (one limit), or a CSV of start,value")],
    group: Annotated[str, typer.Option("--group", help="the group (top-level or nested) it limits")],
    limit_id: Annotated[str | None, typer.Option("--id", help="CSV: the limit's id")] = None,
    source: Annotated[str | None, typer.Option(help="CSV: who sent it (dso, openadr3, ...)")] = None,
    quantity: Annotated[str, typer.Option(help="CSV: max_import_kw or max_current_a")] = "max_import_kw",
    valid_from: Annotated[str | None, typer.Option(help="CSV: ISO time with offset")] = None,
    valid_until: Annotated[str | None, typer.Option(help="CSV: ISO time with offset")] = None,
) -> None:
    """Store a limit from outside on a group; the group is re-planned. Prints {"group_id",
    "limit_id", "created"}; a bad limit stores nothing and lists every problem."""
    if limit_file.suffix.lower() == ".csv":
        if not limit_id or not source:
            fail("a CSV limit needs --id and --source")
        try:
            text = limit_file.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"cannot read limit {limit_file}: {exc.strerror or exc}")
        try:
            data = limit_dict_from_csv(text, limit_id, source, quantity, valid_from, valid_until)
        except GroupValidationError as exc:
            _echo_problems(exc)
    else:
        data = _read_json(limit_file, "limit")
    ctx = open_context()
    try:
        _stored, created = put_limit(ctx, group, data)
    except GroupValidationError as exc:
        _echo_problems(exc)
    except (GroupNotFoundError, GroupConflictError) as exc:
        fail(str(exc))
    finally:
        ctx.close()
    typer.echo(json.dumps({"group_id": group, "limit_id": data["id"], "created": created}))
