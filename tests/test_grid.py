"""Tests for tanhui.grid: tile ids, tile geometry, pixel areas (science.md §6), shipped grids.

Independent references: pyproj ``Geod.polygon_area_perimeter`` for areas, the science.md §6.1
test vectors, hand arithmetic on the numbers in grids/*.toml (read with tomllib here), and
geopandas/shapely for tile-polygon coverage.
"""
from __future__ import annotations

import json
import math
import pickle
import tomllib
import warnings
from pathlib import Path

import affine
import geopandas as gpd
import numpy as np
import pyproj
import pytest
import rasterio
import shapely

from tanhui.errors import ConfigError, GridMismatchError, InputFileError, MissingCRSError
from tanhui.grid import Shape, TileGrid, TileId, ellipsoidal_row_area_m2

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
GRIDS_DIR = Path(__file__).resolve().parents[1] / "grids"
CITY = SHARED / "tongliao-admin" / "tongliao_city.geojson"
MCD12C1 = SHARED / "mcd12c1-2019-landcover" / "mcd12c1_2019_igbp_horqin.tif"

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
GEOD_WGS84 = pyproj.Geod(ellps="WGS84")
# CGCS2000 ellipsoid (EPSG:1024), not GRS80, so the reference uses the grid's own figure.
GEOD_CGCS2000 = pyproj.Geod(a=6378137.0, rf=298.257222101)

PROJ_CHINA_ALBERS = (
    "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +ellps=GRS80 "
    "+towgs84=0,0,0,0,0,0,0 +units=m +no_defs"
)
SHIPPED = ["cgcs2000_geo_0p00025", "china_albers_250m", "china_albers_30m", "wgs84_geo_0p05"]
HORQIN_LONLAT = (117.5, 41.5, 125.0, 46.5)


def geod_cell_area_m2(geod, lon_west, lat_bottom, lat_top, dlon, n=64):
    """Geodesic area of a lat/lon cell whose N/S edges are densified along the parallels.

    Geodesics between two points on a parallel bulge poleward; with ``n`` sub-segments the
    polygon converges to the parallel-bounded cell (error ~ 1/n²).
    """
    lons = lon_west + np.linspace(0.0, dlon, n + 1)
    ring_lon = np.concatenate([lons, lons[::-1]])
    ring_lat = np.concatenate([np.full(n + 1, lat_bottom), np.full(n + 1, lat_top)])
    area, _ = geod.polygon_area_perimeter(ring_lon, ring_lat)
    return abs(area)


def toml_of(name):
    with (GRIDS_DIR / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


@pytest.fixture(scope="module")
def city():
    return gpd.read_file(CITY)


# --- science.md §6.1 test vectors -----------------------------------------------------------------

# (lat of the cell's southern edge, cell size in degrees, science.md value in m², tolerance on
# that rounded value, densification for the Geod reference, tolerance against Geod)
VECTORS = [
    pytest.param(43.6, 0.00025, 560.68, 0.005, 4, ("abs", 0.01), id="0.00025deg@43.6N"),
    pytest.param(43.6, 1 / 120, 0.622938e6, 0.5, 16, ("abs", 0.01), id="1/120deg@43.6N"),
    pytest.param(43.6, 0.05, 22.418e6, 500.0, 256, ("rel", 1e-7), id="0.05deg@43.6N"),
    pytest.param(43.0, 1.0, 8985.5e6, 0.05e6, 4000, ("rel", 1e-7), id="1deg_43-44N"),
    pytest.param(42.25, 0.00025, 572.9, 0.05, 4, ("abs", 0.01), id="0.00025deg@42.25N"),
    pytest.param(45.98, 0.00025, 538.3, 0.05, 4, ("abs", 0.01), id="0.00025deg@45.98N"),
]


@pytest.mark.parametrize(("lat", "d", "expected_m2", "tol_doc", "n", "tol_geod"), VECTORS)
def test_ellipsoidal_row_area_matches_science_vectors_and_geod(
    lat, d, expected_m2, tol_doc, n, tol_geod
):
    area = float(ellipsoidal_row_area_m2(lat + d, lat, d, WGS84_A, WGS84_F))
    assert abs(area - expected_m2) <= tol_doc
    ref = geod_cell_area_m2(GEOD_WGS84, 122.0, lat, lat + d, d, n=n)
    kind, tol = tol_geod
    if kind == "abs":
        assert abs(area - ref) < tol
    else:
        assert abs(area - ref) / ref < tol


def test_degree_times_111km_shortcut_is_38_percent_off():
    true_m2 = geod_cell_area_m2(GEOD_WGS84, 122.0, 43.6, 43.60025, 0.00025, n=4)
    shortcut_m2 = (0.00025 * 111_320.0) ** 2
    assert shortcut_m2 == pytest.approx(774.5, abs=0.05)
    assert shortcut_m2 / true_m2 - 1 == pytest.approx(0.38, abs=0.01)
    ours = float(ellipsoidal_row_area_m2(43.60025, 43.6, 0.00025, WGS84_A, WGS84_F))
    assert abs(ours - true_m2) < 0.01


def test_row_area_order_of_latitudes_and_sphere():
    a1 = ellipsoidal_row_area_m2(44.0, 43.0, 1.0, WGS84_A, WGS84_F)
    a2 = ellipsoidal_row_area_m2(43.0, 44.0, -1.0, WGS84_A, WGS84_F)
    assert a1 == a2 > 0
    r = 6_371_007.181  # MODIS authalic sphere
    sphere = pyproj.Geod(a=r, f=0.0)
    ref = geod_cell_area_m2(sphere, 10.0, 43.0, 44.0, 1.0, n=4000)
    assert float(ellipsoidal_row_area_m2(44.0, 43.0, 1.0, r, 0.0)) == pytest.approx(ref, rel=1e-7)


def test_row_area_vectorised_over_rows():
    lat_top = np.array([46.5, 45.0, 43.65])
    out = ellipsoidal_row_area_m2(lat_top, lat_top - 0.05, 0.05, WGS84_A, WGS84_F)
    assert out.shape == (3,) and out.dtype == np.float64
    for top, got in zip(lat_top, out, strict=True):
        assert got == pytest.approx(geod_cell_area_m2(GEOD_WGS84, 0, top - 0.05, top, 0.05, 256),
                                    rel=1e-8)


# --- pixel areas on grids -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected_m2"), [("china_albers_30m", 900.0),
                                                   ("china_albers_250m", 62500.0)])
def test_equal_area_grid_pixel_area_is_exact(name, expected_m2):
    grid = TileGrid.load(name)
    assert grid.is_equal_area and not grid.is_geographic
    tid = grid.tile_ids()[len(grid.tile_ids()) // 2]
    area = grid.pixel_area_m2(tid)
    assert area.shape == (grid.tile_shape.ny, 1)
    assert area.dtype == np.float64
    assert np.all(area == expected_m2)


def test_geographic_grid_per_row_area_uses_cgcs2000_ellipsoid():
    grid = TileGrid.load("cgcs2000_geo_0p00025")
    assert grid.is_geographic and not grid.is_equal_area
    tid = TileId(3, 5)  # 122-123 E, 43-44 N
    area = grid.pixel_area_m2(tid)
    assert area.shape == (4000, 1) and area.dtype == np.float64
    xmin, ymin, xmax, ymax = grid.tile_bounds(tid)
    assert (xmin, ymin, xmax, ymax) == pytest.approx((122.0, 43.0, 123.0, 44.0), abs=1e-9)
    for row in (0, 1, 1597, 3999):
        top = 44.0 - row * 0.00025
        ref = geod_cell_area_m2(GEOD_CGCS2000, 122.0, top - 0.00025, top, 0.00025, n=4)
        assert abs(area[row, 0] - ref) < 0.01
    # row 1600 has its southern edge at 43.6 N: science.md's 560.68 m² (WGS84 and CGCS2000
    # differ far below that rounding)
    assert area[1599, 0] == pytest.approx(560.68, abs=0.005)
    # total of the 1 degree tile = the 1 x 1 degree cell (science.md 8985.5 km²)
    assert area.sum() * 4000 / 1e6 == pytest.approx(8985.5, abs=0.05)


def test_window_area_rejects_rotated_transform():
    grid = TileGrid.load("wgs84_geo_0p05")
    rotated = affine.Affine(0.05, 0.01, 110.0, 0.0, -0.05, 50.0)
    with pytest.raises(GridMismatchError, match="rotated"):
        grid.window_area_m2(rotated, Shape(3, 3))


def _corner_geod_areas(crs, transform, shape):
    """Per-pixel pyproj geodesic area of the reprojected corners (the reference)."""
    ny, nx = shape
    to_ll = pyproj.Transformer.from_crs(crs, pyproj.CRS(crs).geodetic_crs, always_xy=True)
    geod = pyproj.CRS(crs).get_geod()
    out = np.empty((ny, nx))
    for r in range(ny):
        for c in range(nx):
            xs = [c, c + 1, c + 1, c]
            ys = [r, r, r + 1, r + 1]
            x, y = zip(*(transform @ (xx, yy) for xx, yy in zip(xs, ys, strict=True)), strict=True)
            lon, lat = to_ll.transform(x, y)
            out[r, c] = abs(geod.polygon_area_perimeter(lon, lat)[0])
    return out


@pytest.mark.parametrize(
    ("epsg", "transform"),
    [
        # UTM 51N, 30 m pixels near Tongliao (Tongliao spans UTM 50N/51N, science.md §6.1)
        (32651, affine.Affine(30.0, 0.0, 290_000.0, 0.0, -30.0, 4_830_000.0)),
        # Web Mercator, ~5.5 km pixels at 43.6 N
        (3857, affine.Affine(5565.0, 0.0, 13_580_000.0, 0.0, -5565.0, 5_405_000.0)),
    ],
    ids=["utm51n_30m", "webmercator_5km"],
)
def test_non_equal_area_grid_warns_and_matches_geod_per_pixel(epsg, transform):
    grid = TileGrid(name="t", crs=pyproj.CRS.from_epsg(epsg), res_x=transform.a,
                    res_y=-transform.e, origin_x=transform.c, origin_y=transform.f,
                    tile_shape=Shape(4, 5), n_tile_rows=1, n_tile_cols=1)
    assert not grid.is_equal_area and not grid.is_geographic
    with pytest.warns(RuntimeWarning, match="not equal-area"):
        area = grid.pixel_area_m2(TileId(0, 0))
    assert area.shape == (4, 5)
    ref = _corner_geod_areas(grid.crs, transform, (4, 5))
    np.testing.assert_allclose(area, ref, rtol=1e-7)
    # and it is not |dx·dy| (the point of the warning), and varies along a row
    assert np.all(np.abs(area / transform.a**2 - 1) > 1e-4)
    assert np.ptp(area[0]) > 0


@pytest.mark.parametrize(
    ("crs", "equal_area"),
    [
        ("EPSG:3035", True),  # LAEA Europe
        ("EPSG:6933", True),  # EASE-Grid 2.0, cylindrical equal-area
        ("ESRI:102025", True),  # Asia North Albers
        ("+proj=moll +datum=WGS84", True),
        ("+proj=eqearth +datum=WGS84", True),
        ("+proj=sinu +R=6371007.181 +units=m", True),  # MODIS sinusoidal
        (PROJ_CHINA_ALBERS, True),  # a +towgs84 BoundCRS
        ("EPSG:3857", False),
        ("EPSG:32650", False),
        ("EPSG:4326", False),
    ],
)
def test_is_equal_area_from_projection_method(crs, equal_area):
    grid = TileGrid(name="t", crs=crs, res_x=1, res_y=1, origin_x=0, origin_y=0,
                    tile_shape=Shape(1, 1), n_tile_rows=1, n_tile_cols=1)
    assert grid.is_equal_area is equal_area


def test_equal_area_in_feet_converts_units():
    # NAD83 / Conus Albers in US survey feet is not in EPSG; build it from a PROJ string.
    grid = TileGrid(name="ft", crs="+proj=aea +lat_1=29.5 +lat_2=45.5 +lon_0=-96 "
                    "+datum=NAD83 +units=us-ft", res_x=100, res_y=100, origin_x=0, origin_y=0,
                    tile_shape=Shape(2, 2), n_tile_rows=1, n_tile_cols=1)
    ft_m = 1200 / 3937
    assert grid.pixel_area_m2(TileId(0, 0))[0, 0] == pytest.approx((100 * ft_m) ** 2, rel=1e-12)


# --- tile ids and tile geometry -------------------------------------------------------------------


@pytest.mark.parametrize(("row", "col", "text"), [(0, 0, "T000_000"), (3, 12, "T003_012"),
                                                  (999, 5, "T999_005"), (1234, 7, "T1234_007")])
def test_tile_id_round_trip(row, col, text):
    assert str(TileId(row, col)) == text
    assert TileId.parse(text) == TileId(row, col)
    assert TileId.parse(str(TileId(row, col))) == (row, col)


@pytest.mark.parametrize("bad", ["T3_12", "t003_012", "T003-012", "003_012", "T003_012x", "", 3])
def test_tile_id_parse_rejects_bad_text(bad):
    with pytest.raises(ValueError, match="T003_012"):
        TileId.parse(bad)


@pytest.mark.parametrize("name", SHIPPED)
def test_tile_bounds_and_transform_are_consistent(name):
    grid = TileGrid.load(name)
    spec = toml_of(name)
    (xres, yres), (ox, oy) = spec["resolution"], spec["origin"]
    ny, nx = spec["tile_shape"]
    rows, cols = spec["n_tiles"]
    ids = grid.tile_ids()
    assert len(ids) == rows * cols
    assert ids[0] == TileId(0, 0) and ids[1] == (TileId(0, 1) if cols > 1 else TileId(1, 0))
    assert ids == sorted(ids)  # row-major
    for tid in {ids[0], ids[-1], ids[len(ids) // 2]}:
        r, c = tid
        xmin, ymin, xmax, ymax = grid.tile_bounds(tid)
        assert xmin == pytest.approx(ox + c * nx * xres, abs=1e-9 * abs(ox) + 1e-12)
        assert ymax == pytest.approx(oy - r * ny * yres, abs=1e-9 * abs(oy) + 1e-12)
        assert xmax - xmin == pytest.approx(nx * xres, rel=1e-12)
        assert ymax - ymin == pytest.approx(ny * yres, rel=1e-12)
        t = grid.tile_transform(tid)
        assert (t.a, t.b, t.d, t.e) == (xres, 0.0, 0.0, -yres)
        assert t @ (0, 0) == pytest.approx((xmin, ymax))
        assert t @ (nx, ny) == pytest.approx((xmin + nx * xres, ymax - ny * yres))
        poly = grid.tile_polygon(tid)
        assert poly.bounds == pytest.approx((xmin, ymin, xmax, ymax))
        assert grid.tile_transform(str(tid)) == t
    # neighbours share their edges exactly
    if cols > 1:
        assert grid.tile_bounds(TileId(0, 0))[2] == grid.tile_bounds(TileId(0, 1))[0]
    if rows > 1:
        assert grid.tile_bounds(TileId(0, 0))[1] == grid.tile_bounds(TileId(1, 0))[3]


def test_tile_outside_grid_is_rejected():
    grid = TileGrid.load("china_albers_250m")
    with pytest.raises(GridMismatchError, match=r"T006_000 is outside grid 'china_albers_250m'"):
        grid.tile_bounds(TileId(6, 0))
    with pytest.raises(GridMismatchError, match="outside"):
        grid.tile_transform("T000_006")


# --- tiles_intersecting ---------------------------------------------------------------------------


def _all_tiles_gdf(name):
    """Tile boxes built from the TOML numbers alone (independent of TileGrid)."""
    spec = toml_of(name)
    (xres, yres), (ox, oy) = spec["resolution"], spec["origin"]
    ny, nx = spec["tile_shape"]
    rows, cols = spec["n_tiles"]
    ids, boxes = [], []
    for r in range(rows):
        for c in range(cols):
            ids.append(TileId(r, c))
            boxes.append(shapely.box(ox + c * nx * xres, oy - (r + 1) * ny * yres,
                                     ox + (c + 1) * nx * xres, oy - r * ny * yres))
    crs = pyproj.CRS.from_user_input(spec["crs"])
    return gpd.GeoDataFrame({"tid": ids}, geometry=boxes, crs=crs)


@pytest.mark.parametrize("name", SHIPPED)
def test_tiles_intersecting_tongliao_cover_the_city_and_skip_bbox_only_tiles(name, city):
    grid = TileGrid.load(name)
    got = grid.tiles_intersecting(city)
    tiles = _all_tiles_gdf(name)
    city_grid = city.to_crs(tiles.crs).geometry.union_all()
    # area > 0 decides "really intersects"; planar area in degrees is fine for that test
    inter_area = shapely.area(shapely.intersection(tiles.geometry.to_numpy(), city_grid))
    expected = [t for t, a in zip(tiles["tid"], inter_area, strict=True) if a > 0]
    assert got == expected
    union = shapely.union_all([grid.tile_polygon(t) for t in got])
    assert union.buffer(1e-9 * max(map(abs, union.bounds))).contains(city_grid)
    bbox_tiles = set(tiles["tid"][tiles.intersects(shapely.box(*city_grid.bounds))])
    assert set(got) <= bbox_tiles
    for tid in bbox_tiles - set(got):  # bbox-only tiles really hold none of the city
        assert grid.tile_polygon(tid).intersection(city_grid).area == 0


def test_tiles_intersecting_excludes_bbox_only_tiles_on_30m_grid(city):
    grid = TileGrid.load("china_albers_30m")
    got = grid.tiles_intersecting(city)
    city_albers = city.to_crs(grid.crs).geometry.union_all()
    bbox_tiles = grid.tiles_intersecting(shapely.box(*city_albers.bounds))
    assert len(bbox_tiles) == 49  # rows 3-9 x cols 3-9 (extent_note)
    assert 0 < len(got) < len(bbox_tiles)


def test_tiles_intersecting_with_crs_argument_and_geoseries(city):
    grid = TileGrid.load("china_albers_250m")
    from_gdf = grid.tiles_intersecting(city)
    from_series = grid.tiles_intersecting(city.geometry)
    from_shapely = grid.tiles_intersecting(city.geometry.iloc[0], crs="EPSG:4326")
    assert from_gdf == from_series == from_shapely
    with pytest.raises(GridMismatchError, match="crs"):
        grid.tiles_intersecting(city, crs="EPSG:3857")
    with pytest.raises(MissingCRSError, match="set_crs"):
        grid.tiles_intersecting(gpd.GeoSeries([city.geometry.iloc[0]]))


def test_tiles_intersecting_edges_points_and_outside():
    grid = TileGrid.load("china_albers_30m")
    xmin, ymin, xmax, ymax = grid.tile_bounds(TileId(4, 4))
    # the tile's own outline touches 8 neighbours but only covers itself
    assert grid.tiles_intersecting(shapely.box(xmin, ymin, xmax, ymax)) == [TileId(4, 4)]
    # a point inside a tile, and a point on a shared edge (belongs to both)
    assert grid.tiles_intersecting(shapely.Point(xmin + 10, ymin + 10)) == [TileId(4, 4)]
    assert grid.tiles_intersecting(shapely.Point(xmin, ymin + 10)) == [TileId(4, 3), TileId(4, 4)]
    # far away / empty
    assert grid.tiles_intersecting(shapely.Point(0, 0)) == []
    assert grid.tiles_intersecting(shapely.Polygon()) == []
    # a lon/lat box is densified before reprojection: a box 0.01 degree inside the tile's
    # lon/lat outline stays in the tile
    geo = TileGrid.load("cgcs2000_geo_0p00025")
    box = shapely.box(122.01, 43.01, 122.99, 43.99)
    assert geo.tiles_intersecting(box, crs="EPSG:4490") == [TileId(3, 5)]


# --- shipped grids --------------------------------------------------------------------------------


def test_available_lists_shipped_grids():
    assert TileGrid.available() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_grid_files_are_complete(name):
    spec = toml_of(name)
    assert spec["name"] == name
    for key in ("name", "description", "crs", "resolution", "origin", "tile_shape",
                "n_tiles", "extent_note"):
        assert key in spec, key
    grid = TileGrid.load(name)
    assert grid.description and grid.extent_note
    assert TileGrid.load(GRIDS_DIR / f"{name}.toml") == grid


@pytest.mark.parametrize(
    ("name", "res", "tile"),
    [("china_albers_30m", 30.0, 2048), ("china_albers_250m", 250.0, 512)],
)
def test_albers_grids_definition(name, res, tile):
    grid = TileGrid.load(name)
    assert (grid.res_x, grid.res_y) == (res, res)
    assert grid.tile_shape == Shape(tile, tile)
    tile_m = res * tile
    assert grid.origin_x % tile_m == 0 and grid.origin_y % tile_m == 0
    assert grid.crs.geodetic_crs.datum.name == "China 2000"
    # same projection as the PROJ string in the brief / science.md §6.2
    ref = pyproj.CRS(PROJ_CHINA_ALBERS)
    lon = np.array([117.5, 119.24, 122.0, 125.0])
    lat = np.array([41.5, 45.66, 43.6, 46.5])
    x1, y1 = pyproj.Transformer.from_crs("EPSG:4490", grid.crs, always_xy=True).transform(lon, lat)
    x2, y2 = pyproj.Transformer.from_crs(ref.geodetic_crs, ref, always_xy=True).transform(lon, lat)
    np.testing.assert_allclose(x1, x2, atol=1e-3)
    np.testing.assert_allclose(y1, y2, atol=1e-3)


def test_geographic_grids_definition():
    hansen = TileGrid.load("cgcs2000_geo_0p00025")
    assert hansen.crs == pyproj.CRS.from_epsg(4490)
    assert (hansen.res_x, hansen.tile_shape) == (0.00025, Shape(4000, 4000))
    assert hansen.tile_width == 1.0 and hansen.tile_height == 1.0
    assert float(hansen.origin_x).is_integer() and float(hansen.origin_y).is_integer()
    cmg = TileGrid.load("wgs84_geo_0p05")
    assert cmg.crs == pyproj.CRS.from_epsg(4326)
    assert (cmg.res_x, cmg.res_y, cmg.tile_shape) == (0.05, 0.05, Shape(200, 200))
    # origin on the global CMG lattice (pixel edges at -180 + k*0.05, 90 - k*0.05)
    for value, start in ((cmg.origin_x, -180.0), (cmg.origin_y, 90.0)):
        k = (value - start) / 0.05
        assert abs(k - round(k)) < 1e-9


def _densified_lonlat_box(bounds):
    return shapely.segmentize(shapely.box(*bounds), 0.01)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_grids_cover_tongliao_and_horqin(name, city):
    grid = TileGrid.load(name)
    extent = shapely.box(*grid.bounds)
    city_grid = city.to_crs(grid.crs).geometry.union_all()
    assert extent.contains(city_grid)
    # a margin: the city buffered by ~5 km (0.05 degree on lon/lat grids) is still inside
    margin = 0.05 if grid.is_geographic else 5000.0
    assert extent.contains(city_grid.buffer(margin))
    horqin = gpd.GeoSeries([_densified_lonlat_box(HORQIN_LONLAT)], crs="EPSG:4326")
    horqin_grid = horqin.to_crs(grid.crs).iloc[0]
    tol = 1e-9 if grid.is_geographic else 1e-3
    assert extent.buffer(tol).contains(horqin_grid)


# --- MCD12C1 raster: from_raster and alignment ----------------------------------------------------


def test_from_raster_reproduces_mcd12c1_grid_and_row_areas():
    grid = TileGrid.from_raster(MCD12C1, tile_shape=Shape(64, 64))
    with rasterio.open(MCD12C1) as src:
        transform, height, width = src.transform, src.height, src.width
        assert grid.crs == pyproj.CRS.from_user_input(src.crs.to_wkt())
    assert grid.name == "mcd12c1_2019_igbp_horqin"
    assert grid.tile_transform(TileId(0, 0)) == transform
    assert (grid.n_tile_rows, grid.n_tile_cols) == (math.ceil(height / 64), math.ceil(width / 64))
    assert grid.is_geographic
    area = grid.window_area_m2(transform, Shape(height, width))
    assert area.shape == (height, 1)
    ref = np.array([
        geod_cell_area_m2(GEOD_WGS84, transform.c, transform.f + (r + 1) * transform.e,
                          transform.f + r * transform.e, transform.a, n=128)
        for r in range(height)
    ])
    np.testing.assert_allclose(area[:, 0], ref, rtol=1e-6)
    # tile (1, 0) starts 64 rows down
    np.testing.assert_allclose(grid.pixel_area_m2(TileId(1, 0))[:height - 64], area[64:],
                               rtol=1e-10)


def test_mcd12c1_sits_exactly_on_wgs84_geo_0p05():
    grid = TileGrid.load("wgs84_geo_0p05")
    with rasterio.open(MCD12C1) as src:
        t = src.transform
        assert pyproj.CRS.from_user_input(src.crs.to_wkt()) == grid.crs
        left, bottom, right, top = src.bounds
    assert (t.a, -t.e) == pytest.approx((grid.res_x, grid.res_y), rel=1e-12)
    for edge, origin, res in ((left, grid.origin_x, grid.res_x), (right, grid.origin_x, grid.res_x),
                              (top, grid.origin_y, -grid.res_y),
                              (bottom, grid.origin_y, -grid.res_y)):
        k = (edge - origin) / res
        assert abs(k - round(k)) < 1e-9, (edge, k)
    gxmin, gymin, gxmax, gymax = grid.bounds
    assert gxmin <= left and right <= gxmax and gymin <= bottom and top <= gymax
    # the raster's rows have the same areas as the grid's rows at the same latitudes
    row0 = round((grid.origin_y - top) / grid.res_y)
    tile_area = grid.pixel_area_m2(TileId(0, 0))
    raster_area = grid.window_area_m2(t, Shape(src.height, src.width))
    np.testing.assert_allclose(raster_area[:, 0], tile_area[row0:row0 + src.height, 0], rtol=1e-12)


def test_from_raster_errors_name_the_file(tmp_path):
    missing = tmp_path / "nope.tif"
    with pytest.raises(InputFileError, match="nope.tif"):
        TileGrid.from_raster(missing)
    no_crs = tmp_path / "no_crs.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(no_crs, "w", driver="GTiff", width=4, height=3, count=1,
                           dtype="uint8", transform=affine.Affine(1, 0, 0, 0, -1, 3)) as dst:
            dst.write(np.zeros((1, 3, 4), np.uint8))
    with pytest.raises(MissingCRSError, match="no_crs.tif"):
        TileGrid.from_raster(no_crs)


# --- load() errors, to_dict, to_geojson -----------------------------------------------------------


def test_load_unknown_name_lists_available_grids():
    with pytest.raises(ConfigError) as info:
        TileGrid.load("china_albers_10m")
    msg = str(info.value)
    assert "china_albers_10m" in msg
    for name in SHIPPED:
        assert name in msg


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name = 'x'\ncrs = 'EPSG:4326'\nresolution = [0.1, 0.1]\n", r"missing key\(s\)"),
        ("this is = not toml [", "not valid TOML"),
        ("name='x'\ncrs='EPSG:4326'\nresolution=[-0.1, 0.1]\norigin=[0,0]\ntile_shape=[2,2]\n"
         "n_tiles=[1,1]\n", "positive"),
        ("name='x'\ncrs='EPSG:4326'\nresolution=[0.1, 0.1]\norigin=[0,0]\ntile_shape=[2.5,2]\n"
         "n_tiles=[1,1]\n", "tile_shape"),
        ("name='x'\ncrs='EPSG:999999'\nresolution=[0.1, 0.1]\norigin=[0,0]\ntile_shape=[2,2]\n"
         "n_tiles=[1,1]\n", "cannot read CRS"),
        ("name='x'\ncrs='EPSG:4326'\nresolution=[0.1, 0.1]\norigin=[0,0]\ntile_shape=[2,2]\n"
         "n_tiles=[1,1]\ntileshape=[2,2]\n", r"unknown key\(s\) \['tileshape'\]"),
    ],
    ids=["missing", "syntax", "negative_res", "float_shape", "bad_crs", "unknown_key"],
)
def test_load_malformed_file_names_the_file(tmp_path, text, match):
    path = tmp_path / "bad_grid.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as info:
        TileGrid.load(path)
    assert "bad_grid.toml" in str(info.value)


def test_load_missing_path():
    with pytest.raises(ConfigError, match="nowhere.toml"):
        TileGrid.load("nowhere/nowhere.toml")


@pytest.mark.parametrize("name", SHIPPED)
def test_to_dict_round_trips_and_is_json(name):
    grid = TileGrid.load(name)
    d = grid.to_dict()
    json.dumps(d)
    assert pyproj.CRS.from_wkt(d["crs"]) == grid.crs
    assert d["tile_shape"] == toml_of(name)["tile_shape"]
    assert d["n_tiles"] == toml_of(name)["n_tiles"]
    assert TileGrid.from_dict(d) == grid
    assert pickle.loads(pickle.dumps(grid)) == grid


def test_to_geojson_albers_tile_index(tmp_path):
    grid = TileGrid.load("china_albers_30m")
    out = tmp_path / "tiles.geojson"
    grid.to_geojson(out)
    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert [p.name for p in tmp_path.iterdir()] == ["tiles.geojson"]  # no temp file left
    gdf = gpd.read_file(out)
    assert len(gdf) == 144
    assert gdf.crs == pyproj.CRS("EPSG:4326")
    assert list(gdf["tile_id"]) == [str(t) for t in grid.tile_ids()]
    assert set(gdf["grid"]) == {"china_albers_30m"}
    row = gdf.iloc[13]
    assert (row["row"], row["col"]) == (1, 1)
    assert (row["xmin"], row["ymin"], row["xmax"], row["ymax"]) == grid.tile_bounds(TileId(1, 1))
    # RFC 7946: exterior rings counter-clockwise
    assert all(shapely.is_ccw(shapely.get_exterior_ring(g)) for g in gdf.geometry)
    # densified outline: back in Albers each tile is the 61.44 km square
    back = gdf.to_crs(grid.crs)
    np.testing.assert_allclose(back.area, 61440.0**2, rtol=1e-5)
    # the tile index covers the Tongliao city polygon
    assert gdf.geometry.union_all().buffer(1e-7).contains(gpd.read_file(CITY).geometry.iloc[0])


def test_to_geojson_subset_of_tiles(tmp_path, city):
    grid = TileGrid.load("cgcs2000_geo_0p00025")
    tiles = grid.tiles_intersecting(city)
    out = tmp_path / "tongliao_tiles.geojson"
    grid.to_geojson(out, tiles=tiles)
    gdf = gpd.read_file(out)
    assert list(gdf["tile_id"]) == [str(t) for t in tiles]
    for t, geom in zip(tiles, gdf.geometry, strict=True):
        assert geom.bounds == pytest.approx(grid.tile_bounds(t), abs=1e-7)


def test_to_geojson_missing_folder(tmp_path):
    from tanhui.errors import OutputError

    with pytest.raises(OutputError, match="does not exist"):
        TileGrid.load("wgs84_geo_0p05").to_geojson(tmp_path / "no" / "tiles.geojson")
