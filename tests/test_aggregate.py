"""Tests for tanhui.aggregate.aggregate_rasters: streamed zonal totals of rasters on disk.

Oracles: exactextract run on the whole raster file (``sum``/``count`` times the constant
pixel area, or ``weighted_sum`` with an independently computed per-row ellipsoidal area),
and plain NumPy totals for a partition.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from affine import Affine
from exactextract import exact_extract
from exactextract.raster import NumPyRasterSource
from numpy.testing import assert_allclose
from shapely.geometry import LineString, Point, Polygon, box

from tanhui.aggregate import aggregate_layers, aggregate_rasters, raster_windows
from tanhui.errors import GridMismatchError, ZoneLayerError

from .test_zonal import row_areas_m2, sliced_partition

ALBERS = "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +ellps=WGS84 +units=m +no_defs"


def write_raster(path, array, transform, crs, nodata=None):
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[0], width=array.shape[1],
                       count=1, dtype=array.dtype, crs=crs, transform=transform, nodata=nodata,
                       tiled=True, blockxsize=32, blockysize=32) as dst:
        dst.write(array, 1)
        dst.update_tags(1, units="t C ha-1")
    return path


def awkward_layer(transform, shape, crs):
    """Polygons crossing window edges, a sub-pixel one, a thin strip, overlaps, one outside."""
    res = transform.a

    def px(c, r):
        return transform * (c, r)

    geoms = [
        Polygon([px(3.2, 4.1), px(3.7, 4.3), px(3.4, 4.8)]),  # sub-pixel
        LineString([px(1.3, 2.1), px(shape[1] - 2.7, shape[0] - 3.4)]).buffer(
            0.05 * res, cap_style="flat"),  # thin strip across many windows
        Polygon([px(10.5, 20.3), px(90.2, 18.7), px(95.1, 110.4), px(8.9, 100.2)],
                holes=[[px(30.3, 40.5), px(60.7, 45.1), px(50.2, 80.6)]]),
        Point(px(70.4, 70.6)).buffer(33.3 * res),  # overlaps the previous one
        box(*px(shape[1] - 10.5, 30.2), *px(shape[1] + 20.0, 10.7)),  # partly outside
        box(*px(shape[1] + 50, 60), *px(shape[1] + 55, 50)),  # outside: empty row
    ]
    return gpd.GeoDataFrame({"zid": [f"z{i}" for i in range(len(geoms))]},
                            geometry=gpd.GeoSeries(geoms, crs=crs))


def values_with_nodata(shape, seed):
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0, 150.0, shape).astype(np.float32)
    v[rng.random(shape) < 0.1] = np.nan
    return v


def test_raster_windows_cover_the_raster_once():
    wins = raster_windows(150, 170, 64)
    count = np.zeros((150, 170), int)
    for r0, c0, ny, nx in wins:
        assert r0 % 64 == 0 and c0 % 64 == 0
        count[r0:r0 + ny, c0:c0 + nx] += 1
    assert (count == 1).all() and len(wins) == 9


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
def test_equal_area_raster_matches_exactextract(tmp_path, scheduler):
    shape = (150, 170)
    transform = Affine(30.0, 0, 1_200_000.0, 0, -30.0, 4_900_000.0)
    v = values_with_nodata(shape, 1)
    codes = np.random.default_rng(2).integers(0, 20, shape).astype(np.uint8)
    codes[:5] = 255
    paths = {"stock": write_raster(tmp_path / "stock.tif", v, transform, ALBERS, nodata=np.nan),
             "code": write_raster(tmp_path / "code.tif", codes, transform, ALBERS, nodata=255)}
    layer = awkward_layer(transform, shape, ALBERS)

    table = aggregate_rasters(paths, layer, "zid", window=64, scheduler=scheduler, workers=2)
    assert table["zid"].tolist() == layer["zid"].tolist()
    for name, path in paths.items():
        ref = exact_extract(str(path), layer, ["sum", "count"], output="pandas")
        assert_allclose(table[f"sum_{name}"], ref["sum"] * 900.0, rtol=1e-6, atol=1e-6)
        assert_allclose(table[f"valid_area_m2_{name}"], ref["count"] * 900.0, rtol=1e-6,
                        atol=1e-9)
    assert table.attrs["units"]["mean_stock"] == "t C ha-1"
    assert 0 < table.loc[0, "area_m2"] < 900.0  # the sub-pixel polygon got its share
    assert table.loc[5, "area_m2"] == 0 and np.isnan(table.loc[5, "mean_stock"])


def test_geographic_raster_uses_ellipsoidal_row_areas(tmp_path):
    shape = (130, 110)
    transform = Affine(0.002, 0, 121.5, 0, -0.002, 44.0)
    v = values_with_nodata(shape, 3)
    path = write_raster(tmp_path / "v.tif", v, transform, "EPSG:4326", nodata=np.nan)
    layer = awkward_layer(transform, shape, "EPSG:4326")

    table = aggregate_rasters({"v": path}, layer, "zid", window=48)
    area_rows = row_areas_m2(transform, shape[0])  # independent formula (science.md §6.1)
    ext = (transform.c, transform.f + transform.e * shape[0],
           transform.c + transform.a * shape[1], transform.f)
    weights = NumPyRasterSource(np.repeat(area_rows[:, None], shape[1], axis=1), *ext)
    ref = exact_extract(str(path), layer, ["weighted_sum"], weights=weights, output="pandas")
    assert_allclose(table["sum_v"], ref["weighted_sum"], rtol=1e-6, atol=1e-6)


def test_partition_conserves_raster_total_and_layer_is_reprojected(tmp_path):
    shape = (150, 170)
    transform = Affine(30.0, 0, 1_200_000.0, 0, -30.0, 4_900_000.0)
    v = values_with_nodata(shape, 4)
    path = write_raster(tmp_path / "v.tif", v, transform, ALBERS, nodata=np.nan)
    xmin, ymax = transform.c, transform.f
    extent = box(xmin, ymax - 30.0 * shape[0], xmin + 30.0 * shape[1], ymax)
    parts = sliced_partition(extent, 30.0, 40, seed=5)
    layer = gpd.GeoDataFrame({"zid": range(len(parts))}, geometry=parts, crs=ALBERS)

    table = aggregate_rasters({"v": path}, layer, "zid", window=64)
    ok = np.isfinite(v)
    total = np.sum(v[ok].astype(np.float64) * 900.0)
    assert table["sum_v"].sum() == pytest.approx(total, rel=1e-12)
    assert table["area_m2"].sum() == pytest.approx(900.0 * v.size, rel=1e-12)

    # the same layer given in lon/lat is reprojected to the raster CRS: close, not identical
    lonlat = aggregate_rasters({"v": path}, layer.to_crs("EPSG:4326"), "zid", window=64)
    assert lonlat["sum_v"].sum() == pytest.approx(total, rel=1e-6)


def test_several_layers_in_one_pass_match_exactextract_per_layer(tmp_path):
    """aggregate_layers reads each window once for all layers; every layer's table still
    matches exactextract on that layer alone, and the overlapping layers are kept apart."""
    shape = (150, 170)
    transform = Affine(30.0, 0, 1_200_000.0, 0, -30.0, 4_900_000.0)
    v = values_with_nodata(shape, 6)
    path = write_raster(tmp_path / "v.tif", v, transform, ALBERS, nodata=np.nan)
    xmin, ymax = transform.c, transform.f
    extent = box(xmin, ymax - 30.0 * shape[0], xmin + 30.0 * shape[1], ymax)
    parts = sliced_partition(extent, 30.0, 25, seed=7)
    layers = {
        "awkward": awkward_layer(transform, shape, ALBERS),
        "partition": gpd.GeoDataFrame({"pid": range(len(parts))}, geometry=parts, crs=ALBERS),
    }
    tables = aggregate_layers({"v": path}, layers, {"awkward": "zid", "partition": "pid"},
                              window=64, workers=2)
    assert set(tables) == {"awkward", "partition"}
    for key, gdf in layers.items():
        ref = exact_extract(str(path), gdf, ["sum"], output="pandas")
        assert_allclose(tables[key]["sum_v"], ref["sum"] * 900.0, rtol=1e-6, atol=1e-6)
    ok = np.isfinite(v)
    total = np.sum(v[ok].astype(np.float64) * 900.0)
    assert tables["partition"]["sum_v"].sum() == pytest.approx(total, rel=1e-12)


def test_errors_name_the_problem(tmp_path):
    transform = Affine(30.0, 0, 1_200_000.0, 0, -30.0, 4_900_000.0)
    a = write_raster(tmp_path / "a.tif", np.ones((20, 20), np.float32), transform, ALBERS)
    b = write_raster(tmp_path / "b.tif", np.ones((20, 21), np.float32), transform, ALBERS)
    layer = gpd.GeoDataFrame({"zid": [1]}, geometry=[box(1_200_000, 4_899_500, 1_200_300, 4_900_000)],
                             crs=ALBERS)
    with pytest.raises(GridMismatchError, match="another grid"):
        aggregate_rasters({"a": a, "b": b}, layer, "zid")
    with pytest.raises(ZoneLayerError, match="no field 'nope'"):
        aggregate_rasters({"a": a}, layer, "nope")
