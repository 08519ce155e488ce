"""One tile of a run: read inputs onto the tile, run the kernels, write rasters, sum per zone.

A tile job is a pure function of the run context and the tile id; it writes only its own
files (each atomically) and returns a :class:`TileResult` whose partial sums the run adds
up across tiles. This is the unit Dask schedules and the unit ``--resume`` skips or redoes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import variables as V
from . import zonal
from .context import RunContext
from .grid import TileId
from .kernels.stock import ENGINES as STOCK_ENGINES
from .outputs import write_cog
from .rasterio_io import read_codes


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class TileResult:
    tile: str
    partials: dict[str, pd.DataFrame]  # '<layer key>@<epoch year>' -> partial sums per (feature, group)
    outputs: list[str]  # relative paths of tile rasters written
    seconds: float
    n_pixels: int
    stats: dict[str, float] = field(default_factory=dict)


def tile_dir(out_dir: Path, stem: str) -> Path:
    return out_dir / "tiles" / stem


def tile_raster_path(out_dir: Path, stem: str, tid: TileId) -> Path:
    return tile_dir(out_dir, stem) / f"{tid}.tif"


def _write(out_dir: Path, var: V.Variable, tid: TileId, array: np.ndarray, ctx: RunContext,
           transform, written: list[str], **kw) -> None:
    path = tile_raster_path(out_dir, var.stem, tid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tags = {
        "units": var.units,
        "long_name": var.long_name,
        "formula": var.formula,
        "tanhui_project": ctx.project.name,
        "tile": str(tid),
        "grid": ctx.grid.name,
    }
    if var.sign:
        tags["sign_convention"] = var.sign
    if ctx.project.synthetic:
        tags["SYNTHETIC"] = "inputs are synthetic demo data, not observations"
    names = ([f"{var.long_name}: {m}" for m in MONTHS] if array.ndim == 3 else [var.long_name])
    # 512-px blocks suit QGIS; small tiles get 256-px blocks so they still carry an overview
    kw.setdefault("blocksize", 512 if min(array.shape[-2:]) > 1024 else 256)
    write_cog(path, array, transform, ctx.grid.crs, band_names=names, units=var.units,
              long_name=var.long_name, tags=tags, **kw)
    written.append(str(path.relative_to(out_dir)))


def run_tile(ctx: RunContext, tid: TileId, out_dir: Path) -> TileResult:
    """Compute and write every output of one tile; return its partial sums per layer."""
    t0 = time.perf_counter()
    grid = ctx.grid
    transform = grid.tile_transform(tid)
    shape = tuple(grid.tile_shape)
    area_m2 = grid.pixel_area_m2(tid)
    engine = STOCK_ENGINES[ctx.project.engine]
    written: list[str] = []
    nodata_group = ctx.n_groups  # an extra group collects nodata pixels (area still counted)

    per_epoch: list[tuple[int, np.ndarray, np.ndarray]] = []
    for year, info in ctx.epochs:
        codes, _how = read_codes(info, grid.crs, transform, shape)
        n_codes = ctx.class_lut.size
        inside = (codes >= 0) & (codes < n_codes)
        groups = np.full(codes.shape, nodata_group, np.int32)
        groups[inside] = ctx.class_lut[codes[inside]]
        codes_lut = np.where(codes < ctx.pool_lut.shape[1], codes, -1)
        stock = engine["stock"](codes_lut, ctx.pool_lut)  # (5, ny, nx) t C/ha
        groups[np.isnan(stock[4])] = nodata_group
        per_epoch.append((year, stock, groups))
        for k, pool in enumerate(("above", "below", "soil", "dead")):
            _write(out_dir, V.stock_pool(pool, year), tid, stock[k], ctx, transform, written)
        _write(out_dir, V.stock_total(year), tid, stock[4], ctx, transform, written)
        cls8 = np.where(groups == nodata_group, 255, groups).astype(np.uint8) if ctx.n_groups <= 255 else None
        if cls8 is not None:
            _write(out_dir, V.landcover_class(year), tid, cls8, ctx, transform, written,
                   nodata=255, resampling="nearest")

    changes: dict[tuple[int, int], np.ndarray] = {}
    for (y1, s1, _), (y2, s2, _) in zip(per_epoch, per_epoch[1:]):
        ch = engine["change"](s1[4], s2[4], float(y2 - y1))  # (2, ny, nx)
        changes[(y1, y2)] = ch
        _write(out_dir, V.stock_change(y1, y2), tid, ch[0], ctx, transform, written)
        _write(out_dir, V.stock_rate(y1, y2), tid, ch[1], ctx, transform, written)

    flux_values: dict[str, np.ndarray] = {}
    if ctx.flux is not None:
        from .flux_tile import run_flux_tile

        flux_values = run_flux_tile(ctx, tid, transform, shape, per_epoch, out_dir, written, _write)

    partials: dict[str, pd.DataFrame] = {}
    # "extent": every pixel of the tile with full weight -> whole-raster totals (InVEST's total)
    layer_covs = [("extent", None)]
    layer_covs += [(layer.key, zonal.tile_coverage(layer.gdf.geometry, transform, shape, grid.crs))
                   for layer in ctx.layers]
    for key, cov in layer_covs:
        for i, (year, stock, groups) in enumerate(per_epoch):
            values = {f"stock_{p}_tC_ha_{year}": stock[k] for k, p in enumerate(("above", "below", "soil", "dead"))}
            values[f"stock_total_tC_ha_{year}"] = stock[4]
            if i > 0:
                y1 = per_epoch[i - 1][0]
                values[f"stock_change_tC_ha_{y1}_{year}"] = changes[(y1, year)][0]
            if i == len(per_epoch) - 1:
                values.update(flux_values)
            if cov is None:
                partials[f"{key}@{year}"] = zonal.grid_sums(area_m2, values, groups, ctx.n_groups + 1)
            else:
                partials[f"{key}@{year}"] = zonal.partial_sums(
                    cov, area_m2, values, groups=groups, n_groups=ctx.n_groups + 1)

    return TileResult(
        tile=str(tid), partials=partials, outputs=written,
        seconds=time.perf_counter() - t0, n_pixels=int(shape[0] * shape[1]),
    )

