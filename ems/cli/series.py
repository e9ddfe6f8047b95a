"""`ems series`: import forecast and measured series for a site (formats.md §2)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ems.cli.common import fail
from ems.cli.common import open_context as _context

app = typer.Typer(help="Forecast and measured series.", no_args_is_help=True)


@app.command("import")
def series_import(
    path: Annotated[str, typer.Argument(help="series.csv (formats.md §2)")],
    site: Annotated[str, typer.Option("--site", help="The site the series belongs to.")],
) -> None:
    """Store PV, price and base-load series for a site (whole file or nothing)."""
    from ems import sites
    from ems.sites.forecasts import import_series
    from ems.sites.series import SeriesError, read_series

    try:
        series = read_series(path)
    except SeriesError as exc:
        fail(str(exc))
    ctx = _context()
    try:
        sites.get_site(ctx, site)
    except sites.SiteNotFoundError:
        fail(f"--site {site!r}: no such site (import it with `ems site import`)")
    count = import_series(ctx, site, series)
    typer.echo(json.dumps({"site_id": site, "rows": count}))
