"""``write_demo_project``: the demo inputs on a shipped grid, with the flux path switched on."""
from __future__ import annotations

from pathlib import Path

from ..grid import TileGrid
from .world import write_demo_inputs

DEMO_GRIDS = {250: "china_albers_250m", 30: "china_albers_30m"}
DEMO_YEARS = (2015, 2023)


def write_demo_project(directory: str | Path, *, resolution: int = 250, seed: int = 42,
                       flux: bool = True) -> Path:
    """Write the synthetic Horqin demo (land cover 2015/2023, NDVI and climate 2023, real
    county polygons) on the 250 m or 30 m China Albers grid; return its project.toml."""
    grid = TileGrid.load(DEMO_GRIDS[int(resolution)])
    return write_demo_inputs(Path(directory), grid, seed=seed, years=DEMO_YEARS,
                             ndvi_year=DEMO_YEARS[-1] if flux else None)
