"""Tests for tanhui.zonal: exact coverage-weighted zonal sums, tile by tile.

Oracles are independent of the code under test: hand-computed coverage fractions
(exactextract's own 3×3 example), exactextract's ``sum``/``count``/``weighted_sum`` run on
the whole raster, cell-by-cell shapely intersection areas, plain NumPy totals over a
partition, and the ellipsoidal cell-area formula of science.md §6.1.
"""
from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from numpy.testing import assert_allclose, assert_array_equal
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from tanhui.errors import (
    GridMismatchError,
    InputValueError,
    MissingCRSError,
    ZoneLayerError,
)
from tanhui.zonal import (
    BASE_COLUMNS,
    TileCoverage,
    combine,
    finalize,
    partial_sums,
    polygon_area_m2,
    tile_coverage,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
UTM51 = "EPSG:32651"
ALBERS = "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +ellps=WGS84 +units=m +no_defs"


# --------------------------------------------------------------------------- helpers
def authalic_cell_area_m2(lat_top: float, lat_bottom: float, dlon_deg: float) -> float:
    """Ellipsoidal area of a lon/lat cell, science.md §6.1 rule 2 (WGS84)."""
    a = 6378137.0
    f = 1 / 298.257223563
    b = a * (1 - f)
    e2 = f * (2 - f)
    e = math.sqrt(e2)

    def q(phi_deg: float) -> float:
        s = math.sin(math.radians(phi_deg))
        return s / (1 - e2 * s * s) + (1 / (2 * e)) * math.log((1 + e * s) / (1 - e * s))

    return abs(b * b * math.radians(dlon_deg) / 2 * (q(lat_top) - q(lat_bottom)))


def row_areas_m2(transform: Affine, ny: int) -> np.ndarray:
    """Per-row cell area of a geographic grid (science.md §6.1), as the caller supplies it."""
    tops = transform.f + transform.e * np.arange(ny)
    return np.array([authalic_cell_area_m2(t, t + transform.e, transform.a) for t in tops])


def iter_tiles(shape, tile_shape):
    """(row0, col0, ny, nx) windows of odd size covering the raster, the last ones smaller."""
    ny, nx = shape
    ty, tx = tile_shape
    for r0 in range(0, ny, ty):
        for c0 in range(0, nx, tx):
            yield r0, c0, min(ty, ny - r0), min(tx, nx - c0)


def run_tiled(geoms, transform, values, tile_shape, area=None, groups=None, n_groups=1):
    """Coverage + partial sums per tile window, then combine; area(row0, ny) -> per-row."""
    shape = next(iter(values.values())).shape
    partials = []
    for r0, c0, ny, nx in iter_tiles(shape, tile_shape):
        tile_tf = transform @ Affine.translation(c0, r0)
        cov = tile_coverage(geoms, tile_tf, (ny, nx), geoms.crs)
        tile_vals = {k: v[r0 : r0 + ny, c0 : c0 + nx] for k, v in values.items()}
        tile_area = 1.0 if area is None else area(r0, ny)
        tile_groups = None if groups is None else groups[r0 : r0 + ny, c0 : c0 + nx]
        partials.append(partial_sums(cov, tile_area, tile_vals, tile_groups, n_groups))
    return combine(partials, value_names=list(values))


def dense_coverage_tiled(geoms, transform, shape, tile_shape):
    """Assemble per-tile TileCoverage into a dense (n_features, ny, nx) fraction array."""
    out = np.zeros((len(geoms),) + shape)
    for r0, c0, ny, nx in iter_tiles(shape, tile_shape):
        cov = tile_coverage(geoms, transform @ Affine.translation(c0, r0), (ny, nx), geoms.crs)
        assert cov.shape == (ny, nx)
        out[cov.feature, cov.row + r0, cov.col + c0] += cov.frac
    return out


def shapely_coverage(geoms, transform, shape):
    """Independent oracle: area(polygon ∩ cell) / area(cell) for every cell."""
    ny, nx = shape
    cols, rows = np.meshgrid(np.arange(nx), np.arange(ny))
    x0, y0 = transform @ (cols.ravel(), rows.ravel())
    x1, y1 = transform @ (cols.ravel() + 1, rows.ravel() + 1)
    cells = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1),
                        np.maximum(y0, y1))
    cell_area = abs(transform.a * transform.e)
    return np.stack(
        [shapely.area(shapely.intersection(cells, g)).reshape(shape) / cell_area for g in geoms]
    )


def frame_per_feature(sums: pd.DataFrame, n_features: int, column: str) -> np.ndarray:
    """Column of a combined table as a dense per-feature vector (0 where absent)."""
    out = np.zeros(n_features)
    grouped = sums.groupby("feature")[column].sum()
    out[grouped.index.to_numpy()] = grouped.to_numpy()
    return out


def exactextract_stats(values, transform, geoms, ops, weights=None):
    ny, nx = values.shape
    ext = (transform.c, transform.f + transform.e * ny, transform.c + transform.a * nx,
           transform.f)
    rast = NumPyRasterSource(values, *ext)
    w = None if weights is None else NumPyRasterSource(weights, *ext)
    gdf = gpd.GeoDataFrame(geometry=geoms.reset_index(drop=True), crs=None)
    return exact_extract(rast, gdf, ops, weights=w, output="pandas")


# --------------------------------------------------------------------------- fixtures
def projected_layer() -> tuple[gpd.GeoSeries, Affine, tuple[int, int]]:
    """41×37 grid of 30 m pixels in UTM 51N and a layer of awkward polygons."""
    res = 30.0
    x0, y0 = 500_000.0, 4_830_000.0
    transform = Affine(res, 0, x0, 0, -res, y0)
    shape = (41, 37)

    def px(c, r):  # pixel coordinates -> map coordinates
        return (x0 + c * res, y0 - r * res)

    rng = np.random.default_rng(42)
    geoms = [
        # smaller than a pixel, strictly inside one pixel
        Polygon([px(3.2, 4.1), px(3.7, 4.3), px(3.4, 4.8)]),
        # smaller than a pixel, straddling a pixel corner and the 7×5 tile corner (r7, c5)
        box(*px(4.8, 7.2), *px(5.3, 6.9)),
        # thin diagonal strip, 0.1 pixel wide, across many tiles
        LineString([px(1.3, 2.1), px(35.7, 38.6)]).buffer(0.05 * res, cap_style="flat"),
        # thin horizontal strip along a tile boundary row (r = 14)
        box(*px(2.5, 14.05), *px(30.5, 13.95)),
        # big polygon with a hole, crossing tile boundaries
        Polygon(
            [px(5.5, 20.3), px(30.2, 18.7), px(33.1, 37.4), px(8.9, 39.2)],
            holes=[[px(12.3, 25.5), px(20.7, 25.1), px(18.2, 31.6)]],
        ),
        # overlaps the previous one
        Point(px(22.4, 27.6)).buffer(7.3 * res),
        # multipolygon
        MultiPolygon([box(*px(25.1, 5.3), *px(29.9, 1.2)), box(*px(31.2, 9.9), *px(33.4, 7.1))]),
        # partly outside the raster
        Point(px(36.0, 0.5)).buffer(3.3 * res),
        # entirely outside the raster (empty feature)
        box(*px(50, 60), *px(55, 50)),
    ]
    # random star-shaped polygons
    for _ in range(4):
        c, r = rng.uniform(3, 33), rng.uniform(3, 37)
        ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rad = rng.uniform(0.6, 4.5, 9)
        geoms.append(Polygon([px(c + q * np.cos(a), r + q * np.sin(a)) for a, q in zip(ang, rad)]))
    return gpd.GeoSeries(geoms, crs=UTM51), transform, shape


def random_values(shape, seed=0, nan_share=0.12):
    rng = np.random.default_rng(seed)
    v = rng.normal(50.0, 20.0, shape)
    v[rng.random(shape) < nan_share] = np.nan
    return v


# --------------------------------------------------------------------------- hand example
def test_exactextract_hand_example_3x3():
    # exactextract test_basic_stats: raster 1..9 row-major from the top, unit pixels,
    # square (0.5, 0.5)-(2.5, 2.5). Coverage: corners 0.25, edges 0.5, centre 1.
    # Σ v·frac = 0.25·(1+3+7+9) + 0.5·(2+4+6+8) + 1·5 = 5 + 10 + 5 = 20
    # Σ frac = 4·0.25 + 4·0.5 + 1 = 4 -> mean 20 / 4 = 5; 9 cells, 8 of them partial.
    values = np.arange(1, 10, dtype=float).reshape(3, 3)
    geoms = gpd.GeoSeries([box(0.5, 0.5, 2.5, 2.5)], crs=UTM51)
    transform = Affine(1, 0, 0, 0, -1, 3)
    cov = tile_coverage(geoms, transform, (3, 3), UTM51)
    dense = np.zeros((3, 3))
    dense[cov.row, cov.col] = cov.frac
    assert_allclose(dense, [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], rtol=1e-12)

    sums = combine([partial_sums(cov, 1.0, {"v": values})])
    table = finalize(sums, gpd.GeoDataFrame({"zone": ["sq"]}, geometry=geoms), "zone", None,
                     {"v": "t C ha-1"})
    row = table.iloc[0]
    assert row["sum_v"] == pytest.approx(20.0, rel=1e-12)
    assert row["area_m2"] == pytest.approx(4.0, rel=1e-12)
    assert row["valid_area_m2_v"] == pytest.approx(4.0, rel=1e-12)
    assert row["mean_v"] == pytest.approx(5.0, rel=1e-12)
    assert row["valid_share_v"] == pytest.approx(1.0, rel=1e-12)
    assert (row["n_cells"], row["n_partial"]) == (9, 8)
    assert table.attrs["units"]["mean_v"] == "t C ha-1"


def test_hand_example_split_into_1x1_tiles():
    # the same totals when every pixel is its own tile
    values = np.arange(1, 10, dtype=float).reshape(3, 3)
    geoms = gpd.GeoSeries([box(0.5, 0.5, 2.5, 2.5)], crs=UTM51)
    sums = run_tiled(geoms, Affine(1, 0, 0, 0, -1, 3), {"v": values}, (1, 1))
    assert sums["sum_v"].item() == pytest.approx(20.0, rel=1e-12)
    assert sums["area_m2"].item() == pytest.approx(4.0, rel=1e-12)
    assert sums["n_cells"].item() == 9


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("tile_shape", [(7, 5), (13, 11), (41, 37)])
def test_coverage_fractions_match_shapely_intersection(tile_shape):
    geoms, transform, shape = projected_layer()
    dense = dense_coverage_tiled(geoms, transform, shape, tile_shape)
    expected = shapely_coverage(geoms, transform, shape)
    # exactextract computes fractions in float32: a few ulps (2**-24) for fractions <= 1
    assert_allclose(dense, expected, rtol=0, atol=2.0**-23)
    assert dense.max() <= 1.0


def test_parity_with_exactextract_projected_grid_in_odd_tiles():
    geoms, transform, shape = projected_layer()
    values = random_values(shape, seed=1)
    sums = run_tiled(geoms, transform, {"v": values}, (7, 5))
    n = len(geoms)

    ref = exactextract_stats(values, transform, geoms, ["sum", "count"])
    ones = exactextract_stats(np.ones(shape), transform, geoms, ["count"])
    assert_allclose(frame_per_feature(sums, n, "sum_v"), ref["sum"], rtol=1e-6, atol=1e-9)
    assert_allclose(frame_per_feature(sums, n, "valid_area_m2_v"), ref["count"], rtol=1e-6,
                    atol=1e-12)
    assert_allclose(frame_per_feature(sums, n, "area_m2"), ones["count"], rtol=1e-6, atol=1e-12)

    # cell counts from the independent shapely oracle
    frac = shapely_coverage(geoms, transform, shape)
    covered = frac > 1e-12
    assert_array_equal(frame_per_feature(sums, n, "n_cells"), covered.sum(axis=(1, 2)))
    assert_array_equal(frame_per_feature(sums, n, "n_partial"),
                       (covered & (frac < 1 - 1e-12)).sum(axis=(1, 2)))
    # the sub-pixel polygon and the thin strip got their share, not zero
    assert 0 < frame_per_feature(sums, n, "area_m2")[0] < 1


def test_parity_with_exactextract_geographic_grid_with_row_areas():
    # 0.01° grid at Tongliao (EPSG:4326): area per row from the ellipsoid (science.md §6.1)
    transform = Affine(0.01, 0, 121.5, 0, -0.01, 44.0)
    shape = (30, 26)
    area_rows = row_areas_m2(transform, shape[0])
    geoms = gpd.GeoSeries(
        [
            Polygon([(121.53, 43.97), (121.71, 43.95), (121.74, 43.77), (121.55, 43.73)]),
            Point(121.62, 43.86).buffer(0.061),
            box(121.6012, 43.8344, 121.6049, 43.8371),  # sub-pixel
            LineString([(121.503, 43.993), (121.757, 43.708)]).buffer(0.0005, cap_style="flat"),
            box(121.70, 43.60, 121.80, 43.65),  # partly outside
        ],
        crs="EPSG:4326",
    )
    values = random_values(shape, seed=2)
    sums = run_tiled(geoms, transform, {"v": values}, (5, 7),
                     area=lambda r0, ny: area_rows[r0 : r0 + ny])

    weights = np.repeat(area_rows[:, None], shape[1], axis=1)
    ref = exactextract_stats(values, transform, geoms, ["weighted_sum"], weights=weights)
    valid_ones = np.where(np.isnan(values), np.nan, 1.0)
    ref_valid = exactextract_stats(valid_ones, transform, geoms, ["weighted_sum"], weights=weights)
    ref_area = exactextract_stats(np.ones(shape), transform, geoms, ["weighted_sum"],
                                  weights=weights)
    n = len(geoms)
    assert_allclose(frame_per_feature(sums, n, "sum_v"), ref["weighted_sum"], rtol=1e-6)
    assert_allclose(frame_per_feature(sums, n, "valid_area_m2_v"), ref_valid["weighted_sum"],
                    rtol=1e-6)
    assert_allclose(frame_per_feature(sums, n, "area_m2"), ref_area["weighted_sum"], rtol=1e-6)


def test_tiling_does_not_change_totals():
    geoms, transform, shape = projected_layer()
    values = {"a": random_values(shape, seed=3), "b": random_values(shape, seed=4, nan_share=0.5)}
    area = lambda r0, ny: np.linspace(880.0, 920.0, shape[0])[r0 : r0 + ny, None]  # noqa: E731
    whole = run_tiled(geoms, transform, values, shape, area=area)
    for tile_shape in [(7, 5), (3, 11), (1, 37)]:
        tiled = run_tiled(geoms, transform, values, tile_shape, area=area)
        assert_array_equal(tiled[["feature", "group", "n_cells", "n_partial"]],
                           whole[["feature", "group", "n_cells", "n_partial"]])
        for col in ["area_m2", "sum_a", "valid_area_m2_a", "sum_b", "valid_area_m2_b"]:
            assert_allclose(tiled[col], whole[col], rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------- conservation
def voronoi_partition(extent: Polygon, n: int, seed: int) -> list[Polygon]:
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = extent.bounds
    pts = shapely.points(rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n))
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=extent)
    return [c.intersection(extent) for c in shapely.get_parts(cells)]


def test_partition_conserves_totals_and_groups_add_up():
    transform = Affine(30.0, 0, 400_000.0, 0, -30.0, 4_800_000.0)
    shape = (53, 47)
    ny, nx = shape
    extent = box(400_000.0, 4_800_000.0 - 30.0 * ny, 400_000.0 + 30.0 * nx, 4_800_000.0)
    geoms = gpd.GeoSeries(voronoi_partition(extent, 23, seed=5), crs=UTM51)
    rng = np.random.default_rng(6)
    v = random_values(shape, seed=7, nan_share=0.2)
    area_full = rng.uniform(850.0, 950.0, shape)  # any per-pixel area, (ny, nx)
    classes = rng.integers(-1, 15, shape).astype(np.int32)  # -1 = outside every class

    per_feature = _run_tiled_full_area(geoms, transform, {"v": v}, (7, 5), area_full)
    grouped = _run_tiled_full_area(geoms, transform, {"v": v}, (7, 5), area_full, classes, 15)

    ok = np.isfinite(v)
    # exactextract's float32 fractions (error ~2**-24 each) are renormalised per pixel by
    # tile_coverage, so a partition conserves the total to float64 rounding
    rel = 1e-9
    assert per_feature["sum_v"].sum() == pytest.approx(np.sum(v[ok] * area_full[ok]), rel=rel)
    assert per_feature["valid_area_m2_v"].sum() == pytest.approx(area_full[ok].sum(), rel=rel)
    assert per_feature["area_m2"].sum() == pytest.approx(area_full.sum(), rel=rel)

    # per class, over all features: the plain NumPy total of that class
    by_group = grouped.groupby("group")[["sum_v", "area_m2"]].sum()
    for g in range(15):
        sel = classes == g
        assert by_group.loc[g, "sum_v"] == pytest.approx(np.sum((v * area_full)[sel & ok]), rel=rel)
        assert by_group.loc[g, "area_m2"] == pytest.approx(area_full[sel].sum(), rel=rel)
    assert grouped["group"].between(0, 14).all()

    # per feature: the groups add up to the feature total over cells with a class
    with_class = _run_tiled_full_area(geoms, transform, {"v": np.where(classes >= 0, v, np.nan)},
                                      (7, 5), area_full)
    summed = grouped.groupby("feature")[["sum_v", "valid_area_m2_v"]].sum()
    assert_allclose(summed["sum_v"], with_class.set_index("feature")["sum_v"], rtol=1e-9)
    assert_allclose(summed["valid_area_m2_v"],
                    with_class.set_index("feature")["valid_area_m2_v"], rtol=1e-9)


def sliced_partition(extent: Polygon, res: float, n: int, seed: int) -> list:
    """Voronoi cells of ``extent`` with a 0.026-pixel-wide diagonal sliver and a sub-pixel
    triangle carved out as features of their own: edges cut pixels at arbitrary places."""
    xmin, ymin, xmax, ymax = extent.bounds
    sliver = (LineString([(xmin + 0.37 * res, ymin + 0.11 * res),
                          (xmax - 0.23 * res, ymax - 0.41 * res)])
              .buffer(0.013 * res, cap_style="flat").intersection(extent))
    sub = Polygon([(xmin + 10.21 * res, ymax - 5.33 * res), (xmin + 10.64 * res, ymax - 5.41 * res),
                   (xmin + 10.40 * res, ymax - 5.92 * res)])
    carve = sliver.union(sub)
    cells = [c.difference(carve) for c in voronoi_partition(extent, n, seed)]
    return cells + [sliver, sub.difference(sliver)]


def _grid_case(kind: str):
    """(crs, transform, shape, per-row pixel area m², extent) of a projected or lon/lat grid."""
    shape = (61, 73)
    if kind == "projected":
        transform, crs = Affine(30.0, 0, 400_000.0, 0, -30.0, 4_800_000.0), UTM51
        area_rows = np.full(shape[0], 900.0)
    else:  # 0.01° cells at Tongliao; ellipsoidal area per row (science.md §6.1)
        transform, crs = Affine(0.01, 0, 121.5, 0, -0.01, 44.0), "EPSG:4326"
        area_rows = row_areas_m2(transform, shape[0])
    ny, nx = shape
    extent = box(transform.c, transform.f + transform.e * ny, transform.c + transform.a * nx,
                 transform.f)
    return crs, transform, shape, area_rows, extent


def _tiled_sums(geoms, transform, shape, values, area_rows, tile_shape=(17, 23), normalize=True):
    partials = []
    for r0, c0, ny, nx in iter_tiles(shape, tile_shape):
        cov = tile_coverage(geoms, transform @ Affine.translation(c0, r0), (ny, nx), geoms.crs,
                            normalize=normalize)
        partials.append(partial_sums(cov, area_rows[r0 : r0 + ny],
                                     {k: a[r0 : r0 + ny, c0 : c0 + nx] for k, a in values.items()}))
    return combine(partials)


def _pixel_coverage_sum(geoms, transform, shape, tile_shape=(17, 23), normalize=True):
    """Σ over features of the coverage fraction, per pixel (test-only dense array)."""
    out = np.zeros(shape)
    for r0, c0, ny, nx in iter_tiles(shape, tile_shape):
        cov = tile_coverage(geoms, transform @ Affine.translation(c0, r0), (ny, nx), geoms.crs,
                            normalize=normalize)
        np.add.at(out, (cov.row + r0, cov.col + c0), cov.frac)
    return out


@pytest.mark.parametrize("kind", ["projected", "geographic"])
def test_partition_feature_totals_add_up_to_raster_total(kind):
    crs, transform, shape, area_rows, extent = _grid_case(kind)
    geoms = gpd.GeoSeries(sliced_partition(extent, transform.a, 150, seed=11), crs=crs)
    rng = np.random.default_rng(12)
    v = rng.uniform(10.0, 100.0, shape)
    v[rng.random(shape) < 0.1] = np.nan
    area = np.broadcast_to(area_rows[:, None], shape)
    ok = np.isfinite(v)
    # independent totals: plain NumPy over the raster
    raster_total = np.sum(v[ok] * area[ok])

    sums = _tiled_sums(geoms, transform, shape, {"v": v}, area_rows)
    assert sums["sum_v"].sum() == pytest.approx(raster_total, rel=1e-12)
    assert sums["valid_area_m2_v"].sum() == pytest.approx(area[ok].sum(), rel=1e-12)
    assert sums["area_m2"].sum() == pytest.approx(area.sum(), rel=1e-12)
    # the sliver and the sub-pixel triangle are features with area, not lost
    n = len(geoms)
    assert 0 < frame_per_feature(sums, n, "area_m2")[n - 1] < area_rows.max()
    assert frame_per_feature(sums, n, "n_partial")[n - 2] > 50

    # per pixel, the fractions of the partition add up to 1 to float64 rounding; without
    # the renormalisation exactextract's float32 fractions miss that by ~1e-7
    assert_allclose(_pixel_coverage_sum(geoms, transform, shape), 1.0, rtol=0, atol=1e-12)
    raw = _pixel_coverage_sum(geoms, transform, shape, normalize=False)
    assert np.abs(raw - 1.0).max() > 1e-9
    assert_allclose(raw, 1.0, rtol=0, atol=1e-6)


def test_two_partitions_of_one_region_give_the_same_grand_total():
    # like 三区 (3 zones, multipart, with holes) vs 8 counties over the same region
    crs, transform, shape, area_rows, extent = _grid_case("geographic")
    counties = gpd.GeoSeries(sliced_partition(extent, transform.a, 8, seed=21), crs=crs)
    cells = voronoi_partition(extent, 60, seed=22)
    zone_of = np.random.default_rng(23).integers(0, 3, len(cells))
    sanqu = gpd.GeoSeries([shapely.union_all([c for c, z in zip(cells, zone_of) if z == k])
                           for k in range(3)], crs=crs)
    assert sanqu.is_valid.all() and (sanqu.geom_type == "MultiPolygon").any()
    rng = np.random.default_rng(24)
    values = {"v": rng.uniform(0.0, 250.0, shape), "w": rng.normal(0.0, 30.0, shape)}
    values["v"][rng.random(shape) < 0.05] = np.nan
    area = np.broadcast_to(area_rows[:, None], shape)

    a = _tiled_sums(counties, transform, shape, values, area_rows, tile_shape=(13, 29))
    b = _tiled_sums(sanqu, transform, shape, values, area_rows, tile_shape=(31, 7))
    for col in ("sum_v", "valid_area_m2_v", "area_m2"):
        assert a[col].sum() == pytest.approx(b[col].sum(), rel=1e-12)
    ok = np.isfinite(values["v"])
    assert a["sum_v"].sum() == pytest.approx(np.sum(values["v"][ok] * area[ok]), rel=1e-12)
    # a total near zero (values of both signs): absolute agreement at float64 rounding
    w_total = np.sum(values["w"] * area)
    scale = np.sum(np.abs(values["w"]) * area)
    assert abs(a["sum_w"].sum() - w_total) < 1e-12 * scale
    assert abs(b["sum_w"].sum() - w_total) < 1e-12 * scale


def test_overlapping_layer_is_not_forced_to_the_raster_total():
    # a 三线-like overlay: a partition plus features overlapping it; pixels covered twice
    # count twice, and their fractions are exactly exactextract's (not renormalised)
    crs, transform, shape, area_rows, extent = _grid_case("projected")
    cells = voronoi_partition(extent, 20, seed=31)
    xmin, ymin, xmax, ymax = extent.bounds
    extra = [Point(xmin + 700.3, ymin + 900.7).buffer(333.3),
             box(xmin + 1011.1, ymin + 250.2, xmin + 1499.9, ymax - 333.3)]
    geoms = gpd.GeoSeries(cells + extra, crs=crs)
    rng = np.random.default_rng(32)
    v = rng.uniform(10.0, 100.0, shape)
    area = np.broadcast_to(area_rows[:, None], shape)
    raster_total = np.sum(v * area)
    # independent: the overlap counts once more, weighted by its shapely coverage
    extra_cov = shapely_coverage(gpd.GeoSeries(extra, crs=crs), transform, shape).sum(axis=0)
    expected = raster_total + np.sum(v * area * extra_cov)

    sums = _tiled_sums(geoms, transform, shape, {"v": v}, area_rows)
    assert sums["sum_v"].sum() > raster_total * 1.05
    assert sums["sum_v"].sum() == pytest.approx(expected, rel=1e-6)
    # every feature equals exactextract's own weighted sum (1e-6), overlaps included
    ref = exactextract_stats(v, transform, geoms, ["sum"])
    assert_allclose(frame_per_feature(sums, len(geoms), "sum_v"), ref["sum"] * 900.0, rtol=1e-6)

    # pixels covered more than once keep exactextract's fractions bit for bit
    ny, nx = shape
    raw = tile_coverage(geoms, transform, shape, crs, normalize=False)
    norm = tile_coverage(geoms, transform, shape, crs)
    total = np.zeros(shape)
    np.add.at(total, (raw.row, raw.col), raw.frac)
    twice = total[raw.row, raw.col] > 1.0 + 1e-6
    assert twice.sum() > 100
    assert_array_equal(norm.frac[twice], raw.frac[twice])
    assert_array_equal(norm.feature, raw.feature)
    # only pixels within 1e-6 of full coverage were changed, and by at most 1e-6
    changed = norm.frac != raw.frac
    assert changed.any()
    assert (np.abs(total[raw.row, raw.col][changed] - 1.0) <= 1e-6).all()
    assert_allclose(norm.frac, raw.frac, rtol=1e-6, atol=0)


def _run_tiled_full_area(geoms, transform, values, tile_shape, area_full, groups=None,
                         n_groups=1):
    shape = area_full.shape
    partials = []
    for r0, c0, ny, nx in iter_tiles(shape, tile_shape):
        cov = tile_coverage(geoms, transform @ Affine.translation(c0, r0), (ny, nx), geoms.crs)
        win = (slice(r0, r0 + ny), slice(c0, c0 + nx))
        partials.append(
            partial_sums(cov, area_full[win], {k: a[win] for k, a in values.items()},
                         None if groups is None else groups[win], n_groups)
        )
    return combine(partials)


def test_one_dimensional_row_areas_are_per_row_not_per_column():
    # square tile: a (ny,) vector must not be broadcast along x
    geoms = gpd.GeoSeries([box(0.2, 0.0, 1.0, 4.0), box(0.0, 3.0, 4.0, 4.0)], crs=UTM51)
    transform = Affine(1, 0, 0, 0, -1, 4)
    cov = tile_coverage(geoms, transform, (4, 4), UTM51)
    rows = np.array([1.0, 10.0, 100.0, 1000.0])
    v = np.ones((4, 4))
    as_vector = partial_sums(cov, rows, {"v": v})
    as_column = partial_sums(cov, rows[:, None], {"v": v})
    as_full = partial_sums(cov, np.repeat(rows[:, None], 4, axis=1), {"v": v})
    pd.testing.assert_frame_equal(as_vector, as_column)
    pd.testing.assert_frame_equal(as_vector, as_full)
    # feature 0: column 0 at 0.8 coverage in all rows; feature 1: the top row (area 1) fully
    assert as_vector["area_m2"].tolist() == pytest.approx([0.8 * 1111.0, 4.0])


# --------------------------------------------------------------------------- nodata
def test_nan_and_inf_never_counted_and_empty_features_keep_their_row():
    transform = Affine(10.0, 0, 0.0, 0, -10.0, 100.0)
    shape = (10, 10)
    v = np.full(shape, 2.0)
    v[:5, :5] = np.nan  # top-left block is nodata
    v[9, 9] = np.inf
    layer = gpd.GeoDataFrame(
        {"code": ["nodata_zone", "mixed", "outside", "inf_cell"], "name": ["a", "b", "c", "d"]},
        geometry=[box(0, 50, 50, 100), box(25, 25, 75, 75), box(500, 500, 600, 600),
                  box(90, 0, 100, 10)],
        crs=ALBERS,
    )
    sums = run_tiled(layer.geometry, transform, {"v": v}, (3, 4), area=lambda r0, ny: 100.0)
    table = finalize(sums, layer, "code", "name", {"v": "g C m-2"}).set_index("code")
    assert len(table) == 4

    nod = table.loc["nodata_zone"]
    assert nod["area_m2"] == pytest.approx(2500.0)
    assert (nod["sum_v"], nod["valid_area_m2_v"], nod["valid_share_v"]) == (0.0, 0.0, 0.0)
    assert np.isnan(nod["mean_v"])

    mixed = table.loc["mixed"]  # a quarter of it (625 m²) lies on NaN pixels
    assert mixed["area_m2"] == pytest.approx(2500.0)
    assert mixed["valid_area_m2_v"] == pytest.approx(1875.0)
    assert mixed["sum_v"] == pytest.approx(2.0 * 1875.0)
    assert mixed["mean_v"] == pytest.approx(2.0)
    assert mixed["valid_share_v"] == pytest.approx(0.75)

    out = table.loc["outside"]
    assert (out["area_m2"], out["n_cells"], out["n_partial"], out["sum_v"]) == (0.0, 0, 0, 0.0)
    assert np.isnan(out["mean_v"]) and np.isnan(out["valid_share_v"])
    assert out["polygon_area_m2"] == pytest.approx(10_000.0, rel=1e-12)  # planar: equal-area

    inf = table.loc["inf_cell"]
    assert (inf["sum_v"], inf["valid_area_m2_v"], inf["n_cells"]) == (0.0, 0.0, 1)


def test_nodata_only_tile():
    geoms = gpd.GeoSeries([box(0, 0, 3, 3), box(1, 1, 2, 2)], crs=UTM51)
    cov = tile_coverage(geoms, Affine(1, 0, 0, 0, -1, 3), (3, 3), UTM51)
    part = partial_sums(cov, 1.0, {"v": np.full((3, 3), np.nan, np.float32)})
    assert part["feature"].tolist() == [0, 1]
    assert part["area_m2"].tolist() == pytest.approx([9.0, 1.0])
    assert part["sum_v"].tolist() == [0.0, 0.0]
    assert part["valid_area_m2_v"].tolist() == [0.0, 0.0]


def test_tile_missing_every_feature_gives_empty_partial_with_columns():
    geoms = gpd.GeoSeries([box(100, 100, 110, 110)], crs=UTM51)
    cov = tile_coverage(geoms, Affine(1, 0, 0, 0, -1, 3), (3, 3), UTM51)
    assert len(cov) == 0 and cov.shape == (3, 3)
    part = partial_sums(cov, 1.0, {"v": np.ones((3, 3))}, np.zeros((3, 3), int), 15)
    assert list(part.columns) == list(BASE_COLUMNS) + ["sum_v", "valid_area_m2_v"]
    assert len(part) == 0


def test_combine_empty_input_and_finalize_all_empty():
    empty = combine([], value_names=["v"])
    assert list(empty.columns) == list(BASE_COLUMNS) + ["sum_v", "valid_area_m2_v"]
    assert empty["feature"].dtype == np.int64 and len(empty) == 0
    layer = gpd.GeoDataFrame({"id": [7, 8]}, geometry=[box(0, 0, 1, 1), box(1, 1, 2, 3)],
                             crs=ALBERS)
    table = finalize(empty, layer, "id", None, {"v": "t C ha-1"})
    assert table["id"].tolist() == [7, 8]
    assert table["n_cells"].tolist() == [0, 0]
    assert table["area_m2"].tolist() == [0.0, 0.0]
    assert table["polygon_area_m2"].tolist() == pytest.approx([1.0, 2.0])
    assert table["mean_v"].isna().all()
    # an empty combine without variable names still finalizes (units for no variable)
    assert len(finalize(combine([]), layer, "id", None, {"v": "t C ha-1"})) == 2


# --------------------------------------------------------------------------- combine
def test_combine_is_bit_identical_for_any_tile_order():
    geoms, transform, shape = projected_layer()
    values = {"v": random_values(shape, seed=8) * 1e3}
    partials = []
    for r0, c0, ny, nx in iter_tiles(shape, (7, 5)):
        cov = tile_coverage(geoms, transform @ Affine.translation(c0, r0), (ny, nx), UTM51)
        partials.append(partial_sums(cov, 900.0, {"v": values["v"][r0:r0 + ny, c0:c0 + nx]}))
    first = combine(partials)
    rng = np.random.default_rng(9)
    for _ in range(3):
        shuffled = [partials[i] for i in rng.permutation(len(partials))]
        pd.testing.assert_frame_equal(combine(shuffled), first, check_exact=True)
    # sorted rows, unique keys, and re-combining a combined table is a no-op
    keys = list(zip(first["feature"], first["group"]))
    assert keys == sorted(set(keys))
    pd.testing.assert_frame_equal(combine([first]), first, check_exact=True)


def test_combine_rejects_mixed_variable_sets():
    a = partial_sums(TileCoverage(np.array([0]), np.array([0], np.int32),
                                  np.array([0], np.int32), np.array([1.0]), (1, 1)),
                     1.0, {"v": np.ones((1, 1))})
    b = a.rename(columns={"sum_v": "sum_w", "valid_area_m2_v": "valid_area_m2_w"})
    with pytest.raises(InputValueError, match="columns"):
        combine([a, b])


def test_partial_sums_groups_ignore_negative_ids():
    cov = TileCoverage(
        feature=np.array([0, 0, 0, 2, 2], np.int64),
        row=np.array([0, 0, 1, 1, 0], np.int32),
        col=np.array([0, 1, 0, 1, 1], np.int32),
        frac=np.array([1.0, 0.5, 1.0, 0.25, 1.0]),
        shape=(2, 2),
    )
    groups = np.array([[3, -1], [3, 1]], np.int32)
    v = np.array([[1.0, 2.0], [4.0, np.nan]])
    part = partial_sums(cov, np.array([10.0, 100.0]), {"v": v}, groups, n_groups=4)
    # feature 0: cells (0,0) g3 w=10 v=1, (0,1) ignored, (1,0) g3 w=100 v=4
    # feature 2: cell (1,1) g1 w=25 v=NaN, (0,1) ignored
    assert part[["feature", "group"]].values.tolist() == [[0, 3], [2, 1]]
    assert part["area_m2"].tolist() == pytest.approx([110.0, 25.0])
    assert part["sum_v"].tolist() == pytest.approx([410.0, 0.0])
    assert part["valid_area_m2_v"].tolist() == pytest.approx([110.0, 0.0])
    assert part["n_cells"].tolist() == [2, 1] and part["n_partial"].tolist() == [0, 1]

    # finalize reports every feature × every requested group, absent pairs as zeros
    layer = gpd.GeoDataFrame({"code": ["a", "b", "c"]},
                             geometry=[box(0, 0, 1, 1), box(0, 0, 2, 1), box(0, 0, 1, 2)],
                             crs=ALBERS)
    table = finalize(combine([part]), layer, "code", None, {"v": "t C ha-1"},
                     groups=range(4))
    assert len(table) == 12
    assert table[["code", "group"]].values.tolist()[:5] == [
        ["a", 0], ["a", 1], ["a", 2], ["a", 3], ["b", 0]]
    assert table.groupby("code")["sum_v"].sum().tolist() == pytest.approx([410.0, 0.0, 0.0])
    b_rows = table[table["code"] == "b"]
    assert (b_rows["n_cells"] == 0).all() and b_rows["mean_v"].isna().all()
    assert table["polygon_area_m2"].tolist()[4:8] == pytest.approx([2.0] * 4)
    a3 = table[(table["code"] == "a") & (table["group"] == 3)].iloc[0]
    assert a3["mean_v"] == pytest.approx(410.0 / 110.0)


# --------------------------------------------------------------------------- polygon area
def test_polygon_area_equal_area_and_units():
    sq = box(0, 0, 2, 3)
    assert polygon_area_m2(gpd.GeoSeries([sq], crs=ALBERS))[0] == pytest.approx(6.0)
    km = ALBERS.replace("+units=m", "+units=km")
    assert polygon_area_m2(gpd.GeoSeries([sq], crs=km))[0] == pytest.approx(6.0e6)
    assert polygon_area_m2(gpd.GeoSeries([None, Polygon()], crs=ALBERS)).tolist() == [0.0, 0.0]


def test_polygon_area_geographic_one_degree_cell():
    # science.md §6.1 test vector: 1° × 1° cell at 43–44°N = 8 985.5 km²
    cell = gpd.GeoSeries([box(122, 43, 123, 44)], crs="EPSG:4326")
    area = polygon_area_m2(cell)[0]
    assert area == pytest.approx(authalic_cell_area_m2(44, 43, 1.0), rel=1e-6)
    assert area / 1e6 == pytest.approx(8985.5, abs=0.05)
    holed = gpd.GeoSeries([box(122, 43, 123, 44).difference(box(122.25, 43.25, 122.75, 43.75))],
                          crs="EPSG:4326")
    hole = authalic_cell_area_m2(43.75, 43.25, 0.5)
    assert polygon_area_m2(holed)[0] == pytest.approx(area - hole, rel=1e-6)


def test_polygon_area_utm_uses_geodesic_area():
    # 10 km square on UTM 51N's central meridian (123°E): planar area = true area × k0²
    x, y = 500_000.0, 4_830_000.0
    sq = gpd.GeoSeries([box(x - 5000, y - 5000, x + 5000, y + 5000)], crs=UTM51)
    assert polygon_area_m2(sq)[0] == pytest.approx(1e8 / 0.9996**2, rel=2e-6)


def test_polygon_area_tongliao_counties_match_readme():
    # areas in shared/data/tongliao-admin/README.md (Albers 25/47/105, km², 0.1 km²)
    expected = {"150502": 3495.5, "150521": 9573.6, "150522": 11517.5, "150523": 4378.5,
                "150524": 4712.5, "150525": 8129.0, "150526": 16493.6, "150581": 584.4}
    counties = gpd.read_file(SHARED / "tongliao-admin" / "tongliao_districts.geojson")
    area_km2 = dict(zip(counties["adcode"].astype(str), polygon_area_m2(counties) / 1e6))
    for code, km2 in expected.items():
        assert area_km2[code] == pytest.approx(km2, abs=0.1), code


def test_real_counties_on_geographic_grid_pixel_area_matches_polygon_area():
    # Tongliao's 8 counties partition the city: Σ covered pixel area over counties equals
    # the city's, and each county's covered area equals its geodesic polygon area
    counties = gpd.read_file(SHARED / "tongliao-admin" / "tongliao_districts.geojson")
    city = gpd.read_file(SHARED / "tongliao-admin" / "tongliao_city.geojson")
    transform = Affine(0.05, 0, 119.2, 0, -0.05, 45.7)
    shape = (71, 91)  # 42.15–45.7 N, 119.2–123.75 E
    area_rows = row_areas_m2(transform, shape[0])
    v = np.ones(shape)
    area = lambda r0, ny: area_rows[r0 : r0 + ny]  # noqa: E731
    county_sums = run_tiled(counties.geometry, transform, {"v": v}, (23, 17), area=area)
    city_sums = run_tiled(city.geometry, transform, {"v": v}, (23, 17), area=area)
    assert county_sums["area_m2"].sum() == pytest.approx(city_sums["area_m2"].item(), rel=1e-9)

    table = finalize(county_sums, counties, "adcode", "name_en", {"v": "1"})
    assert_allclose(table["area_m2"], table["polygon_area_m2"], rtol=1e-5)
    assert (table["n_partial"] > 0).all() and (table["n_cells"] > table["n_partial"]).all()


# --------------------------------------------------------------------------- errors
def test_errors_name_the_input():
    geoms = gpd.GeoSeries([box(0, 0, 2, 2)], crs=UTM51)
    tf = Affine(1, 0, 0, 0, -1, 3)
    with pytest.raises(GridMismatchError, match="EPSG:4326"):
        tile_coverage(geoms, tf, (3, 3), "EPSG:4326")
    with pytest.raises(MissingCRSError):
        tile_coverage(gpd.GeoSeries([box(0, 0, 2, 2)]), tf, (3, 3), UTM51)
    with pytest.raises(GridMismatchError, match="north-up"):
        tile_coverage(geoms, Affine(1, 0, 0, 0, 1, 0), (3, 3), UTM51)
    with pytest.raises(ZoneLayerError, match="Point"):
        tile_coverage(gpd.GeoSeries([Point(1, 1)], crs=UTM51), tf, (3, 3), UTM51)
    bowtie = Polygon([(0, 0), (3, 3), (3, 0), (0, 3)])  # exactextract mis-measures it
    with pytest.raises(ZoneLayerError, match="Self-intersection.*make_valid"):
        tile_coverage(gpd.GeoSeries([box(0, 0, 1, 1), bowtie], crs=UTM51), tf, (3, 3), UTM51)

    cov = tile_coverage(geoms, tf, (3, 3), UTM51)
    with pytest.raises(GridMismatchError, match="'v'"):
        partial_sums(cov, 1.0, {"v": np.ones((3, 4))})
    with pytest.raises(GridMismatchError, match="area_m2"):
        partial_sums(cov, np.ones(4), {"v": np.ones((3, 3))})
    with pytest.raises(InputValueError, match="group id 15"):
        partial_sums(cov, 1.0, {"v": np.ones((3, 3))}, np.full((3, 3), 15), 15)
    with pytest.raises(InputValueError, match="dtype"):
        partial_sums(cov, 1.0, {"v": np.ones((3, 3))}, np.ones((3, 3)), 15)
    with pytest.raises(InputValueError, match="negative"):
        partial_sums(cov, -1.0, {"v": np.ones((3, 3))})

    sums = combine([partial_sums(cov, 1.0, {"v": np.ones((3, 3))})])
    layer = gpd.GeoDataFrame({"code": ["a"]}, geometry=geoms)
    with pytest.raises(ZoneLayerError, match="'zone_id'"):
        finalize(sums, layer, "zone_id", None, {"v": "1"})
    with pytest.raises(InputValueError, match=r"\['v'\]"):
        finalize(sums, layer, "code", None, {"w": "1"})
    with pytest.raises(ZoneLayerError, match="position 5"):
        finalize(sums.assign(feature=5), layer, "code", None, {"v": "1"})
    with pytest.raises(InputValueError, match=r"groups \[0\]"):
        finalize(sums, layer, "code", None, {"v": "1"}, groups=[1, 2])


# --------------------------------------------------------------------------- scale
def test_large_tile_with_fifty_polygons_completes():
    # 2048² tile, 50 polygons inside it: the per-feature coverage sum equals the polygon's
    # own area in pixel units (shapely), and nothing builds a per-cell pandas frame.
    n = 2048
    rng = np.random.default_rng(10)
    geoms = gpd.GeoSeries(
        [Point(rng.uniform(300, n - 300, 2)).buffer(rng.uniform(5, 280)) for _ in range(50)],
        crs=UTM51,
    )
    transform = Affine(1, 0, 0, 0, -1, n)
    values = {"a": rng.random((n, n), dtype=np.float32), "b": np.full((n, n), 2.0, np.float32)}
    cov = tile_coverage(geoms, transform, (n, n), UTM51)
    part = partial_sums(cov, 1.0, values)
    assert len(part) == 50
    assert_allclose(part["area_m2"], geoms.area, rtol=1e-9)
    assert_allclose(part["sum_b"], 2.0 * geoms.area, rtol=1e-6)
