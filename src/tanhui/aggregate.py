"""Coverage-weighted zonal totals of existing rasters, streamed window by window.

:func:`aggregate_rasters` sums rasters that are already on disk (a run's VRT mosaics, or any
GeoTIFF on one pixel grid) per polygon feature, with the same exact rule and the same code
as a run (:mod:`tanhui.zonal`): the raster is cut into windows aligned to its own pixel grid,
each window is read, covered (:func:`tanhui.zonal.tile_coverage`) and summed
(:func:`tanhui.zonal.partial_sums`) in its own Dask task, and the per-window partial tables
are added (:func:`tanhui.zonal.combine`). Only a few windows are in memory at a time (one
per worker thread), never the whole raster (science.md §12 item 3).

Pixel areas come from :meth:`tanhui.grid.TileGrid.window_area_m2` on the raster's own grid:
constant for equal-area projections, per row on the ellipsoid for lon/lat grids (science.md
§6.1). Each polygon layer is aggregated on its own: overlapping 三线 layers are reported per
layer and never added up (science.md §8).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import rasterio
import shapely
from affine import Affine
from rasterio.windows import Window

from . import zonal
from .errors import GridMismatchError, InputFileError, MissingCRSError, ZoneLayerError
from .grid import Shape, TileGrid

__all__ = ["aggregate_layers", "aggregate_rasters", "raster_windows"]

DEFAULT_WINDOW = 2048


def raster_windows(height: int, width: int, size: int) -> list[tuple[int, int, int, int]]:
    """``(row0, col0, ny, nx)`` windows of ``size`` pixels aligned to the raster's grid."""
    return [(r0, c0, min(size, height - r0), min(size, width - c0))
            for r0 in range(0, height, size) for c0 in range(0, width, size)]


def _open_grid(rasters: Mapping[str, str | os.PathLike]) -> tuple[pyproj.CRS, Affine, int, int]:
    ref = None
    for name, path in rasters.items():
        if not Path(path).exists():
            raise InputFileError(f"raster {name!r} at {path} does not exist. Check the path.")
        with rasterio.open(path) as src:
            if src.crs is None:
                raise MissingCRSError(f"raster {name!r} ({path}) has no CRS. Assign one first.")
            grid = (pyproj.CRS.from_user_input(src.crs), src.transform, src.height, src.width)
        if ref is None:
            ref, ref_name = grid, name
        elif not (grid[0].equals(ref[0]) and grid[1].almost_equals(ref[1], 1e-9)
                  and grid[2:] == ref[2:]):
            raise GridMismatchError(
                f"raster {name!r} is on another grid than {ref_name!r}: found CRS "
                f"{grid[0].to_string()}, transform {tuple(grid[1])[:6]}, size {grid[2:]}; expected "
                f"{ref[0].to_string()}, {tuple(ref[1])[:6]}, {ref[2:]}. Warp the rasters onto one grid."
            )
    if ref is None:
        raise InputFileError("no rasters given; expected a mapping of variable name to raster path.")
    return ref


def _prepare_layer(layer, crs: pyproj.CRS, id_field: str, layer_name: str | None) -> gpd.GeoDataFrame:
    """The layer in the raster CRS, invalid polygons repaired (polygonal part kept)."""
    if isinstance(layer, (str, os.PathLike)):
        gdf = gpd.read_file(layer, **({"layer": layer_name} if layer_name else {}))
    elif isinstance(layer, gpd.GeoDataFrame):
        gdf = layer.copy()
    else:
        raise ZoneLayerError(
            f"layer is a {type(layer).__name__}; expected a GeoDataFrame or a path to a vector file."
        )
    if id_field not in gdf.columns:
        raise ZoneLayerError(
            f"zone layer has no field {id_field!r}; found {[c for c in gdf.columns if c != gdf.geometry.name]}."
        )
    if gdf.crs is None:
        raise MissingCRSError("zone layer has no CRS. Set it (GeoDataFrame.set_crs) first.")

    def repair(gs: gpd.GeoSeries) -> gpd.GeoSeries:
        bad = ~gs.is_valid & ~(gs.is_empty | gs.isna())
        if not bad.any():
            return gs
        fixed = gs.copy()
        fixed[bad] = [_polygonal(g) for g in gs[bad].make_valid()]
        return fixed

    gdf = gdf.set_geometry(repair(gdf.geometry))
    if not gdf.crs.equals(crs, ignore_axis_order=True):
        gdf = gdf.to_crs(crs)
        gdf = gdf.set_geometry(repair(gdf.geometry))  # reprojection can create self-touches
    return gdf.reset_index(drop=True)


def _polygonal(geom):
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _read_window(path, r0, c0, ny, nx) -> np.ndarray:
    with rasterio.open(path) as src:
        arr = src.read(1, window=Window(c0, r0, nx, ny), masked=True)
    out = np.asarray(arr.filled(np.nan) if arr.dtype.kind == "f"
                     else arr.astype(np.float64).filled(np.nan))
    return out


def _window_partials(rasters, layers: dict, grid: TileGrid, transform: Affine,
                     window) -> dict[str, pd.DataFrame]:
    """Partial sums of one window for every layer: the rasters are read once per window."""
    r0, c0, ny, nx = window
    win_tf = transform * Affine.translation(c0, r0)
    names = list(rasters)
    covs = {key: zonal.tile_coverage(geoms, win_tf, (ny, nx), grid.crs)
            for key, geoms in layers.items()}
    out = {key: zonal.combine([], value_names=names) for key, cov in covs.items() if len(cov) == 0}
    if len(out) == len(covs):
        return out
    area = grid.window_area_m2(win_tf, Shape(ny, nx))
    values = {name: _read_window(path, r0, c0, ny, nx) for name, path in rasters.items()}
    for key, cov in covs.items():
        if key not in out:
            out[key] = zonal.partial_sums(cov, area, values)
    return out


def aggregate_rasters(
    rasters: Mapping[str, str | os.PathLike],
    layer: gpd.GeoDataFrame | str | os.PathLike,
    id_field: str,
    name_field: str | None = None,
    *,
    layer_name: str | None = None,
    units: Mapping[str, str] | None = None,
    window: int = DEFAULT_WINDOW,
    scheduler=None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Coverage-weighted per-feature totals of rasters on disk, window by window.

    For every feature f and raster v: ``sum_<v> = Σ v_c · A_c · w_fc`` over the pixels c
    the polygon covers (``w_fc`` coverage fraction, ``A_c`` pixel area in m², NaN/nodata never
    counted), plus areas, counts, coverage-weighted means and valid shares
    (:func:`tanhui.zonal.finalize`). The numbers equal exactextract's ``weighted_sum`` with the
    pixel area as weight, to 1e-6 relative; the features of a partition add up to the raster
    total (see :func:`tanhui.zonal.tile_coverage`).

    Parameters
    ----------
    rasters : mapping of str to path
        Variable name -> single-band raster (GeoTIFF, VRT ...). All on the same pixel grid
        (CRS, transform, size); band 1 is read, its nodata value and NaN are nodata.
    layer : GeoDataFrame or path
        Polygon layer (any CRS; reprojected to the raster CRS, invalid polygons repaired).
    id_field, name_field : str
        Fields copied to the table.
    layer_name : str, optional
        Layer inside a multi-layer file (GeoPackage).
    units : mapping of str to str, optional
        Unit per variable (default: the raster's band unit or ``units`` tag, else ``"1"``).
    window : int, default 2048
        Window size in pixels; windows are aligned to the raster's own grid. Memory per
        worker is a few times ``window² × (n_rasters + 3) × 8`` bytes.
    scheduler : optional
        Anything ``dask.compute(scheduler=...)`` takes: ``"threads"`` (default),
        ``"sync"``, or a ``distributed.Client``.
    workers : int, optional
        Threads of the local threaded scheduler (default: Dask's, one per core).

    Returns
    -------
    pandas.DataFrame
        One row per feature (:func:`tanhui.zonal.finalize` columns; ``sum_<v>`` in unit × m²),
        units in ``df.attrs["units"]``.

    Raises
    ------
    InputFileError, MissingCRSError, GridMismatchError, ZoneLayerError
        Missing rasters, rasters on different grids, a layer without CRS or field.
    """
    tables = aggregate_layers(rasters, {"layer": (layer, layer_name)}, id_field, name_field,
                              units=units, window=window, scheduler=scheduler, workers=workers)
    return tables["layer"]


def aggregate_layers(
    rasters: Mapping[str, str | os.PathLike],
    layers: Mapping[str, object],
    id_field: str | Mapping[str, str],
    name_field: str | Mapping[str, str] | None = None,
    *,
    units: Mapping[str, str] | None = None,
    window: int = DEFAULT_WINDOW,
    scheduler=None,
    workers: int | None = None,
) -> dict[str, pd.DataFrame]:
    """:func:`aggregate_rasters` for several polygon layers in one pass over the rasters.

    Every window is read once and aggregated for every layer that touches it, so adding
    layers (counties + the six 三区三线 layers) costs their coverage, not another read of
    the rasters. Each layer still gets its own table: overlapping layers are never added.

    Parameters
    ----------
    layers : mapping of str to layer
        Table name -> GeoDataFrame, path, or ``(path, layer name)`` for a multi-layer file.
    id_field, name_field : str or mapping of str to str
        One field name for all layers, or one per table name.
    rasters, units, window, scheduler, workers
        As in :func:`aggregate_rasters`.

    Returns
    -------
    dict of str to pandas.DataFrame
        One table per layer, as :func:`aggregate_rasters` returns.
    """
    rasters = {str(k): str(v) for k, v in rasters.items()}
    crs, transform, height, width = _open_grid(rasters)
    if transform.b != 0 or transform.d != 0 or transform.e >= 0:
        raise GridMismatchError(
            f"raster transform {tuple(transform)[:6]} is rotated or not north-up; warp it first."
        )

    def field(spec, key):
        return spec.get(key) if isinstance(spec, Mapping) else spec

    gdfs, geoms = {}, {}
    for key, spec in layers.items():
        src, lname = spec if isinstance(spec, tuple) else (spec, None)
        gdfs[key] = _prepare_layer(src, crs, field(id_field, key), lname)
        geoms[key] = gdfs[key].geometry
        geoms[key].sindex  # build the spatial index once, before the threads share the series
    grid = TileGrid(name="raster", crs=crs, res_x=transform.a, res_y=-transform.e,
                    origin_x=transform.c, origin_y=transform.f, tile_shape=Shape(window, window),
                    n_tile_rows=max(1, -(-height // window)), n_tile_cols=max(1, -(-width // window)))

    # windows no layer touches are never read
    windows = []
    for w in raster_windows(height, width, int(window)):
        r0, c0, ny, nx = w
        x0, y1 = transform * (c0, r0)
        x1, y0 = transform * (c0 + nx, r0 + ny)
        box = shapely.box(x0, y0, x1, y1)
        if any(len(g.sindex.query(box)) for g in geoms.values()):
            windows.append(w)

    tasks = [dask.delayed(_window_partials)(rasters, geoms, grid, transform, w) for w in windows]
    kw = {"scheduler": scheduler if scheduler is not None else "threads"}
    if workers is not None and kw["scheduler"] == "threads":
        kw["num_workers"] = int(workers)
    (partials,) = dask.compute(tasks, **kw) if tasks else ([],)

    if units is None:
        units = {}
    value_units = {}
    for name, path in rasters.items():
        if name in units:
            value_units[name] = units[name]
            continue
        with rasterio.open(path) as src:
            value_units[name] = (src.units[0] if src.units and src.units[0] else
                                 src.tags(1).get("units") or src.tags().get("units") or "1")
    names = list(rasters)
    out = {}
    for key in layers:
        sums = zonal.combine([pw[key] for pw in partials], value_names=names)
        out[key] = zonal.finalize(sums, gdfs[key], field(id_field, key), field(name_field, key),
                                  value_units)
    return out
