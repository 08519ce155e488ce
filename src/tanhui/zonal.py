"""Exact, coverage-weighted zonal sums computed tile by tile.

A zone total is ``Σ value × pixel area × coverage fraction`` over the pixels a polygon
touches, where the coverage fraction is the share of the pixel's area inside the polygon
(science.md §8; exactextract's rule). Centroid or all-touched rasterisation is biased for
small and thin polygons and misses polygons smaller than a pixel (science.md §12 item 2),
so tanhui never uses it for totals.

The work is split so that no whole-region array is ever built (science.md §12 item 3):

1. :func:`tile_coverage` -- for one tile window and one polygon layer, the coverage
   fraction of every (feature, cell) pair, computed once by exactextract and reused for
   every variable of that tile.
2. :func:`partial_sums` -- per (feature, group) sums of area, value × area and valid area
   on that tile, with one :func:`numpy.bincount` per column (no per-cell data frames).
3. :func:`combine` -- adds the partials of all tiles. The fraction of a pixel covered by a
   polygon depends only on the pixel and the polygon, so the totals do not depend on how
   the raster is cut into tiles; :func:`combine` also sums in a canonical order, so the
   result is bit-identical whatever order the tiles finished in.
4. :func:`finalize` -- attaches feature ids and names, the polygon's own area, hectares,
   coverage-weighted means and the valid-data share; every feature gets a row.

Nodata policy (science.md §12 item 4): NaN (and ±inf) values are never counted; a zone
with no valid pixel has sum 0, valid area 0 and a NaN mean; a zone that touches no pixel
has area 0 and count 0, never a missing row.

Precision and conservation: exactextract stores coverage fractions as 32-bit floats, so
each fraction carries a relative rounding error of at most 2⁻²⁴ ≈ 6e-8, and the fractions
of a pixel split between neighbouring features of a partition sum to 1 ± ~1e-7 instead of
1. :func:`tile_coverage` therefore renormalises per layer: where the fractions of one
pixel over all features of the layer sum to within :data:`PARTITION_TOLERANCE` (1e-6) of
1, they are divided by that sum (in float64), so they add up to 1 to float64 rounding and
the features of a partition (三区, counties) add up to the raster total to ~1e-12 relative
instead of ~1e-7. Pixels whose fractions sum to clearly more than 1 (overlapping features,
e.g. 三线 layers) or clearly less (polygon edges, gaps, the layer's outer boundary) are
left exactly as exactextract computed them, so each fraction moves by at most 1e-6 of a
pixel and per-feature sums stay within 1e-6 relative of exactextract's. Splitting the
raster into tiles does not change the fractions.

Units: ``sum_<v>`` is (unit of ``v``) × m². The caller converts: t C ha⁻¹ × m² / 1e4 = t C,
g C m⁻² × m² / 1e6 = t C.

References
----------
Baston, D. exactextract: fast and accurate raster zonal statistics.
https://github.com/isciences/exactextract (Python package 0.3; ``coverage`` and
``cell_id`` operations, ``weighted_sum``).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import affine
import numba
import geopandas
import numpy as np
import pandas as pd
import pyproj
import shapely
from exactextract import exact_extract
from exactextract.feature import Feature, FeatureSource
from exactextract.raster import NumPyRasterSource

from tanhui.errors import (
    GridMismatchError,
    InputValueError,
    MissingCRSError,
    ZoneLayerError,
)

__all__ = [
    "PARTITION_TOLERANCE",
    "TileCoverage",
    "tile_coverage",
    "partial_sums",
    "combine",
    "finalize",
    "BASE_COLUMNS",
]

#: Columns of every partial-sum table before the per-variable ``sum_<v>`` /
#: ``valid_area_m2_<v>`` pairs.
BASE_COLUMNS = ("feature", "group", "area_m2", "n_cells", "n_partial")
_INT_COLUMNS = ("feature", "group", "n_cells", "n_partial")

# shapely geometry type ids accepted as zones (exactextract needs areal geometries)
_POLYGON_TYPE_IDS = (3, 6)  # Polygon, MultiPolygon

# PROJ method names of projections that preserve area (pyproj CRS.coordinate_operation)
_EQUAL_AREA_METHODS = frozenset(
    {
        "Albers Equal Area",
        "Lambert Azimuthal Equal Area",
        "Lambert Azimuthal Equal Area (Spherical)",
        "Lambert Cylindrical Equal Area",
        "Lambert Cylindrical Equal Area (Spherical)",
        "Equal Earth",
        "Mollweide",
        "Sinusoidal",
    }
)

#: A pixel whose coverage fractions over a layer's features sum to 1 within this
#: tolerance is taken as split between features of a partition and its fractions are
#: rescaled to sum to exactly 1 (float32 fractions: ~6e-8 relative error each).
PARTITION_TOLERANCE = 1e-6

# Densify edges before geodesic area: a straight edge in lon/lat (e.g. along a parallel)
# is not a geodesic; 0.01° (about 1 km) segments make the difference negligible.
_DENSIFY_DEG = 0.01
_DENSIFY_M = 1000.0


@dataclass(frozen=True)
class TileCoverage:
    """Coverage of one tile window by the features of one polygon layer.

    One entry per (feature, cell) pair with a coverage fraction > 0, grouped by feature
    in ascending feature order.

    Attributes
    ----------
    feature : (n,) int64
        Position of the feature in the layer passed to :func:`tile_coverage` (0-based).
    row, col : (n,) int32
        Cell position inside the tile.
    frac : (n,) float64
        Share of the cell's area covered by the feature, in (0, 1].
    shape : tuple of int
        Tile shape ``(ny, nx)``.
    """

    feature: np.ndarray
    row: np.ndarray
    col: np.ndarray
    frac: np.ndarray
    shape: tuple[int, int]

    def __len__(self) -> int:
        return int(self.frac.size)


def _empty_coverage(shape: tuple[int, int]) -> TileCoverage:
    return TileCoverage(
        feature=np.empty(0, np.int64),
        row=np.empty(0, np.int32),
        col=np.empty(0, np.int32),
        frac=np.empty(0, np.float64),
        shape=shape,
    )


def _tile_bounds(transform: affine.Affine, shape: tuple[int, int]) -> tuple[float, ...]:
    """(xmin, ymin, xmax, ymax) of a north-up window; raise for rotated/south-up grids."""
    ny, nx = shape
    if transform.b != 0 or transform.d != 0 or transform.a <= 0 or transform.e >= 0:
        raise GridMismatchError(
            f"tile transform {tuple(transform)[:6]} is rotated or not north-up: found "
            f"a={transform.a}, b={transform.b}, d={transform.d}, e={transform.e}; expected "
            "b = d = 0, a > 0, e < 0. Warp the raster onto a north-up grid tile first."
        )
    xmin, ymax = transform.c, transform.f
    return (xmin, ymax + transform.e * ny, xmin + transform.a * nx, ymax)


def _check_layer_crs(geoms: geopandas.GeoSeries, crs) -> None:
    if crs is None:
        return
    if geoms.crs is None:
        raise MissingCRSError(
            "zone polygons have no CRS; expected the grid CRS "
            f"{pyproj.CRS.from_user_input(crs).to_string()}. Set the layer's CRS "
            "(GeoDataFrame.set_crs) and reproject it to the grid CRS."
        )
    grid_crs = pyproj.CRS.from_user_input(crs)
    if not geoms.crs.equals(grid_crs, ignore_axis_order=True):
        raise GridMismatchError(
            f"zone polygons are in {geoms.crs.to_string()} but the tile grid is in "
            f"{grid_crs.to_string()}; expected the same CRS. Reproject the layer with "
            "GeoDataFrame.to_crs(grid_crs) before computing coverage."
        )


def _check_polygonal(geoms: geopandas.GeoSeries, positions: np.ndarray) -> None:
    candidates = np.asarray(geoms.values[positions])
    bad = ~np.isin(shapely.get_type_id(candidates), _POLYGON_TYPE_IDS)
    if bad.any():
        names = sorted({g.geom_type for g in candidates[bad]})
        raise ZoneLayerError(
            f"zone layer features at positions {positions[bad][:10].tolist()} are {names}; "
            "expected Polygon or MultiPolygon. Explode geometry collections and drop "
            "points/lines (e.g. gdf[gdf.geom_type.isin(['Polygon', 'MultiPolygon'])])."
        )
    # exactextract silently returns wrong fractions for self-intersecting rings
    invalid = ~shapely.is_valid(candidates)
    if invalid.any():
        first = int(np.flatnonzero(invalid)[0])
        raise ZoneLayerError(
            f"zone layer features at positions {positions[invalid][:10].tolist()} are "
            f"invalid polygons (first: {shapely.is_valid_reason(candidates[first])}); "
            "expected valid geometries, or coverage fractions would be wrong. Repair the "
            "layer with GeoSeries.make_valid() before aggregating."
        )


def tile_coverage(
    geoms: geopandas.GeoSeries,
    transform: affine.Affine,
    shape: tuple[int, int],
    crs,
    *,
    normalize: bool = True,
) -> TileCoverage:
    """Coverage fractions of one tile's cells by every feature of a polygon layer.

    Features whose bounding box misses the window are skipped through the layer's
    spatial index (built once and cached on ``geoms``; pass the same GeoSeries for every
    tile). The rest go to exactextract's ``cell_id`` and ``coverage`` operations on a
    dummy raster of the tile's shape, so fractions are computed once per tile and layer
    and reused for every variable by :func:`partial_sums`.

    Parameters
    ----------
    geoms : geopandas.GeoSeries
        Valid Polygon/MultiPolygon features, already in the grid CRS. Feature numbers in
        the result are positions in this series (not its index labels). Features touching
        the tile are checked for type and validity on every call (a few ms).
    transform : affine.Affine
        North-up transform of the tile window (pixel corner to grid CRS coordinates).
    shape : tuple of int
        Tile shape ``(ny, nx)``.
    crs : pyproj.CRS-like or None
        Grid CRS; ``geoms.crs`` must equal it. ``None`` skips the check.
    normalize : bool, default True
        Rescale the fractions of every pixel whose fractions over all features of the
        layer sum to 1 within :data:`PARTITION_TOLERANCE` so that they sum to exactly 1
        (float64). exactextract's fractions are float32: the pieces of a pixel split
        between neighbouring features of a partition add up to 1 ± ~1e-7 only, and the
        feature totals of a partition would miss the raster total by ~1e-7 relative.
        Pixels covered by overlapping features (sum ≈ 2) or only partly covered (sum
        < 1 − 1e-6) are left untouched, so overlays are never forced to the raster total
        and per-feature sums stay within 1e-6 of exactextract's. ``False`` returns
        exactextract's fractions as they are (clipped to 1).

    Returns
    -------
    TileCoverage
        One entry per (feature, cell) pair with coverage > 0, sorted by feature.

    Raises
    ------
    GridMismatchError
        The transform is rotated or south-up, or the layer is in another CRS.
    MissingCRSError
        The layer has no CRS while ``crs`` is given.
    ZoneLayerError
        A feature touching the tile is not a Polygon or MultiPolygon, or is invalid
        (self-intersecting), for which exactextract would return wrong fractions.

    Notes
    -----
    The coverage fraction is the planar share of the cell in the grid CRS. For
    geographic grids this is the share in lon/lat; multiplying it by the cell's
    ellipsoidal area errs by at most about tan φ · Δφ / 2 of a partly covered cell's
    area (4e-4 for 0.05° cells at 44°N), and only boundary cells carry that error: on
    Tongliao's counties on a 0.05° grid, covered pixel area and geodesic polygon area
    agree to 3e-6.

    References
    ----------
    exactextract 0.3, operations ``cell_id`` and ``coverage`` (isciences/exactextract).
    """
    shape = (int(shape[0]), int(shape[1]))
    ny, nx = shape
    xmin, ymin, xmax, ymax = _tile_bounds(transform, shape)
    _check_layer_crs(geoms, crs)
    if ny == 0 or nx == 0 or len(geoms) == 0:
        return _empty_coverage(shape)

    # bbox-only query: cheap; features that merely touch the bbox get no cells anyway
    hits = geoms.sindex.query(shapely.box(xmin, ymin, xmax, ymax))
    positions = np.unique(np.asarray(hits, dtype=np.int64))
    if positions.size == 0:
        return _empty_coverage(shape)
    _check_polygonal(geoms, positions)

    # geometries go to exactextract as WKB (GeoJSON text would cost more than the coverage)
    wkbs = shapely.to_wkb(geoms.values[positions])
    # values of the dummy raster are irrelevant but must be valid: exactextract drops
    # nodata cells from `coverage`; a contiguous array is faster than a broadcast view
    dummy = NumPyRasterSource(np.ones(shape, np.uint8), xmin, ymin, xmax, ymax)
    results = exact_extract(
        dummy,
        _WKBFeatureSource(positions, wkbs),
        ["cell_id", "coverage"],
        include_cols=["pos"],
        strategy="feature-sequential",
    )
    cov = _coverage_from_results(results, shape)
    if normalize and len(cov):
        _normalize_partition(cov.row, cov.col, cov.frac, ny, nx, PARTITION_TOLERANCE)
    return cov


class _WKBFeature(Feature):
    """A feature for exactextract: its position in the layer and its geometry as WKB."""

    def __init__(self, pos: int, wkb: bytes):
        Feature.__init__(self)
        self.pos = pos
        self.wkb = wkb

    def get(self, name):
        return self.pos

    def set(self, name, value):
        raise NotImplementedError("input features are read-only")

    def geometry(self):
        return self.wkb

    def set_geometry(self, wkb):
        self.wkb = wkb

    def set_geometry_format(self):
        return "wkb"

    def fields(self):
        return ["pos"]


class _WKBFeatureSource(FeatureSource):
    def __init__(self, positions: np.ndarray, wkbs: np.ndarray):
        super().__init__()
        self.items = list(zip(positions.tolist(), wkbs.tolist()))

    def count(self):
        return len(self.items)

    def __iter__(self):
        for pos, wkb in self.items:
            yield _WKBFeature(pos, wkb)

    def srs_wkt(self):
        return None


@numba.njit(nogil=True, cache=True)
def _normalize_partition(row, col, frac, ny, nx, tol):
    """In place: divide the fractions of each pixel by their sum where |sum − 1| ≤ tol.

    The per-pixel sums live in one transient (ny, nx) float64 array (32 MiB for a 2048²
    tile); the coverage itself stays sparse (one entry per (feature, cell) pair).
    """
    total = np.zeros((ny, nx), np.float64)
    for k in range(frac.size):
        total[row[k], col[k]] += frac[k]
    for k in range(frac.size):
        t = total[row[k], col[k]]
        if t != 1.0 and abs(t - 1.0) <= tol:
            frac[k] = frac[k] / t


def _coverage_from_results(results: list[dict], shape: tuple[int, int]) -> TileCoverage:
    props = [r["properties"] for r in results]
    props.sort(key=lambda p: p["pos"])
    lengths = np.array([len(p["cell_id"]) for p in props], dtype=np.int64)
    if lengths.sum() == 0:
        return _empty_coverage(shape)
    pos = np.array([p["pos"] for p in props], dtype=np.int64)
    cell = np.concatenate([np.asarray(p["cell_id"], dtype=np.int64) for p in props])
    frac = np.concatenate([np.asarray(p["coverage"], dtype=np.float64) for p in props])
    feature = np.repeat(pos, lengths)
    keep = frac > 0.0
    if not keep.all():
        feature, cell, frac = feature[keep], cell[keep], frac[keep]
    nx = shape[1]
    return TileCoverage(
        feature=feature,
        row=(cell // nx).astype(np.int32),
        col=(cell % nx).astype(np.int32),
        frac=np.minimum(frac, 1.0),  # guard against round-off above 1
        shape=shape,
    )


def _flat_index(cov: TileCoverage) -> np.ndarray:
    """Row-major cell index into the tile: one gather per array instead of 2-D indexing."""
    return cov.row.astype(np.int64) * cov.shape[1] + cov.col


def _gather(arr: np.ndarray, flat: np.ndarray) -> np.ndarray:
    return np.take(np.asarray(arr).reshape(-1), flat)


def _cell_area_m2(area_m2, cov: TileCoverage, flat: np.ndarray) -> np.ndarray:
    """Pixel area of every covered cell, from a scalar, per-row or full-tile area array."""
    ny, nx = cov.shape
    area = np.asarray(area_m2, dtype=np.float64)
    if area.ndim == 0:
        per_cell = np.full(cov.frac.size, float(area))
    elif area.ndim == 1 and area.shape[0] == ny:
        # TileGrid.pixel_area_m2 returns one area per row; never broadcast (ny,) along x
        per_cell = area[cov.row]
    elif area.ndim == 2 and area.shape[0] == ny and area.shape[1] in (1, nx):
        per_cell = area[cov.row, 0] if area.shape[1] == 1 else _gather(area, flat)
    else:
        raise GridMismatchError(
            f"area_m2 has shape {area.shape}; expected a scalar, ({ny},), ({ny}, 1) or "
            f"({ny}, {nx}) for a tile of shape {cov.shape}. Pass TileGrid.pixel_area_m2(tile)."
        )
    if per_cell.size and not (np.isfinite(per_cell).all() and (per_cell >= 0).all()):
        raise InputValueError(
            "area_m2 has NaN, infinite or negative pixel areas under the zone polygons; "
            "expected finite areas >= 0 m². Compute areas with TileGrid.pixel_area_m2."
        )
    return per_cell


def _check_value_shapes(values: Mapping[str, np.ndarray], shape: tuple[int, int]) -> None:
    for name, arr in values.items():
        if np.shape(arr) != shape:
            raise GridMismatchError(
                f"value array {name!r} has shape {np.shape(arr)}; expected the tile shape "
                f"{shape}. Read every variable on the same grid tile as the coverage."
            )


def _cell_groups(groups, cov: TileCoverage, flat: np.ndarray, n_groups: int) -> np.ndarray:
    if np.shape(groups) != cov.shape:
        raise GridMismatchError(
            f"groups array has shape {np.shape(groups)}; expected the tile shape "
            f"{cov.shape}. Read the class raster on the same grid tile."
        )
    groups = np.asarray(groups)
    if not np.issubdtype(groups.dtype, np.integer):
        raise InputValueError(
            f"groups array has dtype {groups.dtype}; expected an integer array with "
            "negative values for cells to ignore. Cast class codes to int32 first."
        )
    g = _gather(groups, flat).astype(np.int64)
    if g.size and g.max() >= n_groups:
        raise InputValueError(
            f"groups array has group id {int(g.max())} under the zone polygons; expected "
            f"ids 0..{n_groups - 1} (n_groups={n_groups}). Raise n_groups or remap ids."
        )
    return g


def _local_feature_ids(feature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compact feature numbers to 0..k-1 without sorting millions of cells."""
    if feature.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    present = np.zeros(int(feature.max()) + 1, dtype=bool)
    present[feature] = True
    uniq = np.flatnonzero(present)
    lut = np.cumsum(present) - 1
    return uniq.astype(np.int64), lut[feature]


def partial_sums(
    cov: TileCoverage,
    area_m2: np.ndarray,
    values: Mapping[str, np.ndarray],
    groups: np.ndarray | None = None,
    n_groups: int = 1,
) -> pd.DataFrame:
    """Coverage-weighted per-(feature, group) sums of one tile.

    For each feature f and group g, over the covered cells c of the tile::

        area_m2          = Σ A_c · w_fc
        n_cells          = #{c : w_fc > 0},   n_partial = #{c : 0 < w_fc < 1}
        sum_<v>          = Σ v_c · A_c · w_fc     over cells where v_c is finite
        valid_area_m2_<v> = Σ A_c · w_fc          over cells where v_c is finite

    with ``A_c`` the pixel area (m²) and ``w_fc`` the coverage fraction (science.md §8).
    Each column is one :func:`numpy.bincount` over a combined feature × group index.

    Parameters
    ----------
    cov : TileCoverage
        Coverage of this tile by one layer (from :func:`tile_coverage`).
    area_m2 : array_like
        Pixel area in m²: a scalar, a per-row vector ``(ny,)`` or ``(ny, 1)``
        (geographic grids), or ``(ny, nx)``.
    values : mapping of str to (ny, nx) float arrays
        Variables to sum; NaN (or ±inf) is nodata and never counted.
    groups : (ny, nx) int array, optional
        Group id per cell (e.g. canonical class 0..14); cells with a negative id are
        ignored. ``None`` puts every cell in group 0.
    n_groups : int, default 1
        Number of group ids; ids must be < ``n_groups``.

    Returns
    -------
    pandas.DataFrame
        One row per (feature, group) with at least one covered cell, sorted by feature
        then group; columns ``feature, group, area_m2, n_cells, n_partial`` then
        ``sum_<v>, valid_area_m2_<v>`` per variable in the order of ``values``.
        ``sum_<v>`` is in (unit of v) × m².

    Raises
    ------
    GridMismatchError
        An array does not match the tile shape.
    InputValueError
        Bad pixel areas, non-integer groups, or a group id ≥ ``n_groups``.

    Examples
    --------
    exactextract's 3×3 example: values 1..9, square (0.5, 0.5)-(2.5, 2.5), unit pixels.

    >>> import geopandas, numpy as np, shapely
    >>> from affine import Affine
    >>> square = geopandas.GeoSeries([shapely.box(0.5, 0.5, 2.5, 2.5)], crs="EPSG:32651")
    >>> cov = tile_coverage(square, Affine(1, 0, 0, 0, -1, 3), (3, 3), "EPSG:32651")
    >>> values = {"v": np.arange(1.0, 10.0).reshape(3, 3)}
    >>> partial_sums(cov, 1.0, values)[["area_m2", "n_cells", "n_partial", "sum_v"]]
       area_m2  n_cells  n_partial  sum_v
    0      4.0        9          8   20.0
    """
    _check_value_shapes(values, cov.shape)
    if n_groups < 1:
        raise InputValueError(f"n_groups is {n_groups}; expected >= 1.")
    frac, feature, flat = cov.frac, cov.feature, _flat_index(cov)
    cell_area = _cell_area_m2(area_m2, cov, flat)

    if groups is None:
        group = np.zeros(frac.size, np.int64)
        n_groups = 1
    else:
        group = _cell_groups(groups, cov, flat, n_groups)
        keep = group >= 0
        if not keep.all():
            frac, feature, flat = frac[keep], feature[keep], flat[keep]
            cell_area, group = cell_area[keep], group[keep]

    uniq, local = _local_feature_ids(feature)
    key = local * n_groups + group
    n_bins = uniq.size * n_groups
    weight = cell_area * frac  # m² of the cell inside the polygon

    n_cells = np.bincount(key, minlength=n_bins)
    bins = np.flatnonzero(n_cells)
    out: dict[str, np.ndarray] = {
        "feature": uniq[bins // n_groups],
        "group": (bins % n_groups).astype(np.int64),
        "area_m2": np.bincount(key, weights=weight, minlength=n_bins)[bins],
        "n_cells": n_cells[bins].astype(np.int64),
        "n_partial": np.bincount(key[frac < 1.0], minlength=n_bins)[bins].astype(np.int64),
    }
    for name, arr in values.items():
        # one pass per variable without per-cell temporaries (memory-flat on 4 M-cell tiles);
        # same summation order as np.bincount, so the sums are identical
        sums = np.zeros(n_bins, np.float64)
        valid = np.zeros(n_bins, np.float64)
        _accumulate(np.ascontiguousarray(arr).reshape(-1), flat, key, weight, sums, valid)
        out[f"sum_{name}"] = sums[bins]
        out[f"valid_area_m2_{name}"] = valid[bins]
    return pd.DataFrame(out)


@numba.njit(nogil=True, cache=True)
def _accumulate(values_flat, flat, key, weight, sums, valid):
    for c in range(key.size):
        v = values_flat[flat[c]]
        if np.isfinite(v):
            w = weight[c]
            sums[key[c]] += np.float64(v) * w
            valid[key[c]] += w


def grid_sums(area_m2: np.ndarray, values: Mapping[str, np.ndarray], groups: np.ndarray,
              n_groups: int) -> pd.DataFrame:
    """Per-group sums over every cell of a tile with full weight (whole-raster totals).

    The same columns as :func:`partial_sums` with a single feature 0, computed straight on
    the 2-D arrays: no coverage arrays are built for a layer that covers every cell.
    """
    ny, nx = groups.shape
    area = np.broadcast_to(np.asarray(area_m2, np.float64), (ny, nx))
    g = np.ascontiguousarray(groups, dtype=np.int64)
    area_c = np.ascontiguousarray(area)
    n_cells = np.bincount(g[g >= 0].ravel(), minlength=n_groups)
    bins = np.flatnonzero(n_cells)
    out: dict[str, np.ndarray] = {
        "feature": np.zeros(bins.size, np.int64),
        "group": bins.astype(np.int64),
        "n_cells": n_cells[bins].astype(np.int64),
        "n_partial": np.zeros(bins.size, np.int64),
    }
    area_sum = np.zeros(n_groups, np.float64)
    _grid_area(g, area_c, area_sum)
    out["area_m2"] = area_sum[bins]
    for name, arr in values.items():
        sums = np.zeros(n_groups, np.float64)
        valid = np.zeros(n_groups, np.float64)
        _grid_accumulate(np.ascontiguousarray(arr), g, area_c, sums, valid)
        out[f"sum_{name}"] = sums[bins]
        out[f"valid_area_m2_{name}"] = valid[bins]
    cols = ["feature", "group", "area_m2", "n_cells", "n_partial"]
    cols += [c for c in out if c not in cols]
    return pd.DataFrame({c: out[c] for c in cols})


@numba.njit(nogil=True, cache=True)
def _grid_area(g, area, out):
    ny, nx = g.shape
    for i in range(ny):
        for j in range(nx):
            if g[i, j] >= 0:
                out[g[i, j]] += area[i, j]


@numba.njit(nogil=True, cache=True)
def _grid_accumulate(v, g, area, sums, valid):
    ny, nx = g.shape
    for i in range(ny):
        for j in range(nx):
            k = g[i, j]
            x = v[i, j]
            if k >= 0 and np.isfinite(x):
                sums[k] += np.float64(x) * area[i, j]
                valid[k] += area[i, j]


def _value_columns(names: Iterable[str]) -> list[str]:
    cols: list[str] = []
    for name in names:
        cols += [f"sum_{name}", f"valid_area_m2_{name}"]
    return cols


def _empty_sums(value_names: Iterable[str]) -> pd.DataFrame:
    cols = list(BASE_COLUMNS) + _value_columns(value_names)
    return pd.DataFrame(
        {c: np.empty(0, np.int64 if c in _INT_COLUMNS else np.float64) for c in cols}
    )


def combine(
    partials: Iterable[pd.DataFrame], *, value_names: Sequence[str] = ()
) -> pd.DataFrame:
    """Add per-tile partial sums into per-(feature, group) totals.

    Float columns are summed in a canonical order (within each (feature, group), values
    sorted ascending), so the totals are bit-identical whatever order the tiles arrive
    in -- reruns of a parallel batch reproduce the same digits.

    Parameters
    ----------
    partials : iterable of pandas.DataFrame
        Outputs of :func:`partial_sums` (or of :func:`combine`) for one layer and one set
        of variables.
    value_names : sequence of str, optional
        Variable names, used only to give an empty result its ``sum_<v>`` columns.

    Returns
    -------
    pandas.DataFrame
        Same columns as the partials, one row per (feature, group), sorted.

    Raises
    ------
    InputValueError
        The partials do not all have the same columns.
    """
    frames = [p for p in partials]
    columns = list(frames[0].columns) if frames else None
    for i, frame in enumerate(frames):
        if list(frame.columns) != columns:
            raise InputValueError(
                f"partial sums #{i} has columns {list(frame.columns)}; expected {columns} "
                "like partial #0. Combine partials of one layer and one variable set only."
            )
    frames = [f for f in frames if len(f)]
    if not frames:
        if columns is not None:
            return _empty_sums([c[4:] for c in columns if c.startswith("sum_")])
        return _empty_sums(value_names)

    df = pd.concat(frames, ignore_index=True)
    feature = df["feature"].to_numpy(np.int64)
    group = df["group"].to_numpy(np.int64)
    order = np.lexsort((group, feature))
    f_sorted, g_sorted = feature[order], group[order]
    change = np.ones(f_sorted.size, dtype=bool)
    change[1:] = (f_sorted[1:] != f_sorted[:-1]) | (g_sorted[1:] != g_sorted[:-1])
    starts = np.flatnonzero(change)

    out: dict[str, np.ndarray] = {"feature": f_sorted[starts], "group": g_sorted[starts]}
    for col in columns:
        if col in ("feature", "group"):
            continue
        vals = df[col].to_numpy()
        if col in _INT_COLUMNS:
            out[col] = np.add.reduceat(vals.astype(np.int64)[order], starts)
        else:
            canonical = np.lexsort((vals, group, feature))
            out[col] = np.add.reduceat(vals.astype(np.float64)[canonical], starts)
    return pd.DataFrame(out)[columns]


def _is_equal_area(crs: pyproj.CRS) -> bool:
    op = crs.coordinate_operation if crs.is_projected else None
    return op is not None and op.method_name in _EQUAL_AREA_METHODS


def polygon_area_m2(features: geopandas.GeoDataFrame | geopandas.GeoSeries) -> np.ndarray:
    """Area of each polygon on the ground, m².

    Planar area when the CRS is an equal-area projection (Albers, LAEA, ...; science.md
    §6.1 rule 1), scaled to metres; otherwise the geodesic area on the CRS's ellipsoid
    (pyproj ``Geod.geometry_area_perimeter``) after densifying edges to 0.01° / 1 km and
    converting to the CRS's geographic coordinates (science.md §6.1 rule 2).

    Parameters
    ----------
    features : geopandas.GeoDataFrame or GeoSeries
        Polygons with a CRS. Empty or missing geometries get area 0.

    Returns
    -------
    (n,) float64
        Area per feature in m².

    Raises
    ------
    MissingCRSError
        The layer has no CRS.

    References
    ----------
    Karney, C. F. F. (2013). Algorithms for geodesics. J. Geodesy 87:43-55 (pyproj Geod).
    """
    geoms = features.geometry if isinstance(features, geopandas.GeoDataFrame) else features
    if geoms.crs is None:
        raise MissingCRSError(
            "zone layer has no CRS, so its polygon areas cannot be computed; expected a "
            "CRS such as EPSG:4326 or an Albers projection. Set it with set_crs()."
        )
    crs = geoms.crs
    missing = geoms.isna().to_numpy() | geoms.is_empty.to_numpy()
    if _is_equal_area(crs):
        unit_m = crs.axis_info[0].unit_conversion_factor
        area = geoms.area.to_numpy(np.float64) * unit_m**2
        return np.where(missing, 0.0, area)

    if crs.is_geographic:
        dense = geoms.segmentize(_DENSIFY_DEG)
        lonlat = dense.to_crs(crs.geodetic_crs) if crs != crs.geodetic_crs else dense
    else:
        unit_m = crs.axis_info[0].unit_conversion_factor
        lonlat = geoms.segmentize(_DENSIFY_M / unit_m).to_crs(crs.geodetic_crs)
    geod = crs.get_geod()
    # exterior counter-clockwise, holes clockwise: Geod areas are then positive
    oriented = shapely.orient_polygons(lonlat.values, exterior_cw=False)
    area = np.array(
        [0.0 if m else geod.geometry_area_perimeter(g)[0] for g, m in zip(oriented, missing)],
        dtype=np.float64,
    )
    return area


def _check_fields(features: geopandas.GeoDataFrame, fields: Sequence[str]) -> None:
    reserved = set(BASE_COLUMNS) | {"area_ha", "polygon_area_m2", "polygon_area_ha"}
    for field in fields:
        if field not in features.columns:
            raise ZoneLayerError(
                f"zone layer has no field {field!r}; found fields "
                f"{[c for c in features.columns if c != features.geometry.name]}. "
                "Name an existing field as the zone id/name."
            )
        if field in reserved:
            raise ZoneLayerError(
                f"zone layer field {field!r} clashes with an output column of the zonal "
                f"table ({sorted(reserved)}). Rename the field in the layer."
            )


def _value_names_checked(sums: pd.DataFrame, value_units: Mapping[str, str]) -> list[str]:
    in_sums = [c[4:] for c in sums.columns if c.startswith("sum_")]
    unknown = [n for n in in_sums if n not in value_units]
    if unknown:
        raise InputValueError(
            f"zonal sums have variables {unknown} without a unit in value_units "
            f"(given: {sorted(value_units)}); expected a unit for every variable. "
            "Add e.g. {'stock': 't C ha-1'}."
        )
    missing = [n for n in value_units if n not in in_sums]
    if missing and len(sums):
        raise InputValueError(
            f"value_units names variables {missing} that the zonal sums do not have "
            f"(found {in_sums}). Pass units only for the summed variables."
        )
    return list(value_units)


def finalize(
    sums: pd.DataFrame,
    features: geopandas.GeoDataFrame,
    id_field: str,
    name_field: str | None,
    value_units: Mapping[str, str],
    *,
    groups: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Per-feature (and per-group) zonal table with ids, areas and means.

    Every feature gets a row for every group -- features that touched no pixel get area
    0, counts 0, sums 0 and NaN means (science.md §12 item 4).

    Parameters
    ----------
    sums : pandas.DataFrame
        Output of :func:`combine` over all tiles, for this layer.
    features : geopandas.GeoDataFrame
        The layer, in the same row order as the GeoSeries given to :func:`tile_coverage`
        (``feature`` is a row position) and with a CRS.
    id_field, name_field : str
        Fields of ``features`` copied to the table (``name_field`` may be None).
    value_units : mapping of str to str
        Unit of each variable, e.g. ``{"stock_total": "t C ha-1"}``; one per ``sum_<v>``.
    groups : sequence of int, optional
        Group ids to report for every feature. Default: the groups present in ``sums``,
        or ``[0]`` when there are none.

    Returns
    -------
    pandas.DataFrame
        Columns ``feature, <id_field>, [<name_field>], group, polygon_area_m2,
        polygon_area_ha, area_m2, area_ha, n_cells, n_partial`` and per variable
        ``sum_<v>`` (unit × m²), ``valid_area_m2_<v>``, ``mean_<v>`` (coverage-weighted
        mean, unit of v) and ``valid_share_<v>`` (valid area / covered area).
        ``polygon_area_m2`` is the polygon's own area (:func:`polygon_area_m2`), repeated
        on each group row; ``area_m2`` is the covered pixel area of the row. Units per
        column are in ``df.attrs["units"]``.

    Raises
    ------
    ZoneLayerError
        A field is missing or clashes with an output column, or ``sums`` refers to a
        feature position outside the layer.
    InputValueError
        ``value_units`` does not match the variables in ``sums``, or ``sums`` has a
        group that is not in ``groups``.
    """
    fields = [id_field] + ([name_field] if name_field else [])
    _check_fields(features, fields)
    names = _value_names_checked(sums, value_units)
    n_features = len(features)
    if len(sums) and int(sums["feature"].max()) >= n_features:
        raise ZoneLayerError(
            f"zonal sums refer to feature position {int(sums['feature'].max())} but the "
            f"zone layer has {n_features} features. Pass the same layer, in the same "
            "order, as the one used for tile_coverage."
        )
    present = sorted(set(sums["group"].tolist()))
    if groups is None:
        groups = present or [0]
    groups = [int(g) for g in groups]
    dropped = sorted(set(present) - set(groups))
    if dropped:
        raise InputValueError(
            f"zonal sums have groups {dropped} that are not in groups={groups}; their sums "
            "would be dropped. Pass every group id present, or groups=None."
        )

    full = pd.MultiIndex.from_product(
        [np.arange(n_features, dtype=np.int64), np.asarray(groups, dtype=np.int64)],
        names=["feature", "group"],
    )
    value_cols = _value_columns(names)
    indexed = sums.set_index(["feature", "group"])
    for col in ["area_m2", "n_cells", "n_partial"] + value_cols:
        if col not in indexed.columns:  # an empty `combine` result without variables
            indexed[col] = np.zeros(len(indexed))
    table = indexed.reindex(full, fill_value=0).reset_index()

    pos = table["feature"].to_numpy()
    poly_area = polygon_area_m2(features)[pos]
    attrs = features.iloc[pos]
    out = {"feature": pos}
    for field in fields:
        out[field] = attrs[field].to_numpy()
    out["group"] = table["group"].to_numpy(np.int64)
    out["polygon_area_m2"] = poly_area
    out["polygon_area_ha"] = poly_area / 1e4
    area = table["area_m2"].to_numpy(np.float64)
    out["area_m2"] = area
    out["area_ha"] = area / 1e4
    out["n_cells"] = table["n_cells"].to_numpy(np.int64)
    out["n_partial"] = table["n_partial"].to_numpy(np.int64)
    units = {"polygon_area_m2": "m2", "polygon_area_ha": "ha", "area_m2": "m2", "area_ha": "ha"}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in names:
            total = table[f"sum_{name}"].to_numpy(np.float64)
            valid = table[f"valid_area_m2_{name}"].to_numpy(np.float64)
            out[f"sum_{name}"] = total
            out[f"valid_area_m2_{name}"] = valid
            out[f"mean_{name}"] = np.where(valid > 0, total / valid, np.nan)
            out[f"valid_share_{name}"] = np.where(area > 0, valid / area, np.nan)
            unit = value_units[name]
            units.update(
                {
                    f"sum_{name}": f"({unit}) * m2",
                    f"valid_area_m2_{name}": "m2",
                    f"mean_{name}": unit,
                    f"valid_share_{name}": "1",
                }
            )
    result = pd.DataFrame(out)
    result.attrs["units"] = units
    return result
