"""``tanhui run`` and ``tanhui validate``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .report import print_summary, progress_reporter


@click.command()
@click.argument("project_file", type=click.Path(path_type=Path))
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Threads on this machine (Dask local scheduler). Default: [run] workers.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Run on an existing Dask distributed cluster, e.g. tcp://10.0.0.5:8786. "
                   "All workers must see the input files and the output folder at the same "
                   "paths as this machine (shared storage).")
@click.option("--resume", is_flag=True, help="Reuse tiles finished by an earlier, interrupted run.")
@click.option("--overwrite", is_flag=True, help="Replace a finished run in the output folder.")
@click.option("--tiles", default=None, help="Comma-separated tile ids to compute (e.g. T003_004).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.pass_context
def run(ctx, project_file: Path, workers, scheduler, resume, overwrite, tiles, as_json):
    """Compute carbon stock (and sink, if configured) for PROJECT_FILE.

    \b
    Example:
      tanhui run demo-out/project.toml --workers 2
      tanhui run project.toml --scheduler tcp://scheduler:8786
    """
    from ..project import load_project
    from ..runner import run_project

    quiet = ctx.obj.get("quiet") or as_json
    project = load_project(project_file)
    with progress_reporter(quiet=quiet) as progress:
        summary = run_project(
            project, workers=workers, scheduler=scheduler, resume=resume,
            overwrite=overwrite, tiles=tiles.split(",") if tiles else None,
            progress=progress,
        )
    if as_json:
        click.echo(json.dumps(_json_summary(summary), ensure_ascii=False, indent=2))
    elif not ctx.obj.get("quiet"):
        print_summary(summary)


def _json_summary(summary) -> dict:
    return {
        "out_dir": str(summary.out_dir),
        "tiles_computed": summary.tiles_done,
        "tiles_reused": summary.tiles_reused,
        "files": summary.files,
        "warnings": summary.warnings,
        "timings": summary.manifest.get("timings", {}),
        "totals": {k: t[t["class_id"] == "all"].drop(columns=["class_id", "class_name"]).to_dict("records")
                   for k, t in summary.tables.items()},
    }


@click.command()
@click.argument("project_file", type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx, project_file: Path):
    """Check everything a run of PROJECT_FILE needs, without computing.

    Files, CRS, grid overlap, legend completeness (every code in every land-cover raster),
    density-table columns and units, region and zone layers.
    """
    from ..context import build_context
    from ..project import load_project

    project = load_project(project_file)
    c = build_context(project)
    out = sys.stdout
    print(f"project   {project.path}", file=out)
    print(f"grid      {c.grid.name} ({c.grid.crs.name}); {len(c.tiles)} tiles of "
          f"{c.grid.tile_shape[0]}x{c.grid.tile_shape[1]} px", file=out)
    print(f"legend    {c.legend.name if c.legend else 'none (codes are table keys)'}", file=out)
    print(f"table     {c.table.path}", file=out)
    for year, info in c.epochs:
        print(f"epoch     {year}: {info.path} [{c.resampled.get(str(info.path), '')}]", file=out)
    for lay in c.layers:
        print(f"layer     {lay.key}: {lay.path} ({len(lay.gdf)} features, "
              f"{lay.n_repaired} repaired)", file=out)
    if c.flux is not None:
        for line in c.flux.describe():
            print(f"flux      {line}", file=out)
    for note in c.notes:
        print(f"note      {note}", file=out)
    print("OK: the project is ready to run.", file=out)
