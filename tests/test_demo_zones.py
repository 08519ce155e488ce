"""Tests of the synthetic 三区三线 layers of the demo (tanhui.demo.zones).

The layers are computed once for the module on the 250 m China Albers grid and read back
from the GeoPackage. References are independent of the construction: the real county
polygons (the city = their union), the synthetic land cover sampled on a *different*
window (600 m, shifted) and at the grid's own 250 m pixels around each county seat, and
areas on an equal-area projection typed in here.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
from itertools import combinations

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import pytest
import rasterio.features
import shapely
from affine import Affine
from shapely.geometry import shape as to_shape

from tanhui.demo import counties_path, landcover_window
from tanhui.demo import world

SPACES = ("ecological_space", "agricultural_space", "urban_space")
LINES = ("ecological_protection_red_line", "permanent_basic_farmland",
         "urban_development_boundary")
KINDS = SPACES + LINES
# typed in from the brief / docs/project-file.md
PREFIX = {"ecological_space": "ES", "agricultural_space": "AS", "urban_space": "US",
          "ecological_protection_red_line": "EPR", "permanent_basic_farmland": "PBF",
          "urban_development_boundary": "UDB"}
CHINESE = {"ecological_space": "生态空间", "agricultural_space": "农业空间",
           "urban_space": "城镇空间", "ecological_protection_red_line": "生态保护红线",
           "permanent_basic_farmland": "永久基本农田", "urban_development_boundary": "城镇开发边界"}
ADCODES = {"150502", "150521", "150522", "150523", "150524", "150525", "150526", "150581"}
NOTE = "SYNTHETIC demo layer, not a planning document"
PIXEL_M2 = 250.0 * 250.0
# China Albers on CGCS2000 (GRS80), as the shipped grids (science.md 6.2)
ALBERS = ("+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=GRS80 "
          "+units=m +no_defs")
TO_ALBERS = pyproj.Transformer.from_crs("EPSG:4490", ALBERS, always_xy=True)


def _albers(geom, densify_deg: float = 0.0005):
    """lon/lat -> Albers, edges densified first (a straight lon/lat edge is curved in Albers)."""
    g = shapely.segmentize(geom, densify_deg) if densify_deg else geom
    return shapely.transform(
        g, lambda xy: np.column_stack(TO_ALBERS.transform(xy[:, 0], xy[:, 1])))


def _union(gdf):
    return shapely.union_all(shapely.make_valid(gdf.geometry.values))


@pytest.fixture(scope="module")
def grid():
    from tanhui.grid import TileGrid

    return TileGrid.load("china_albers_250m")


@pytest.fixture(scope="module")
def written(grid, tmp_path_factory):
    from tanhui.demo import write_demo_zones

    out = tmp_path_factory.mktemp("zones")
    return out, write_demo_zones(out, grid, seed=42, year=2023)


@pytest.fixture(scope="module")
def layers(written):
    _, paths = written
    return {k: gpd.read_file(paths[k], layer=k) for k in KINDS}


@pytest.fixture(scope="module")
def counties():
    feats = json.loads(counties_path().read_text(encoding="utf-8"))["features"]
    return {f["properties"]["adcode"]: to_shape(f["geometry"]) for f in feats}


@pytest.fixture(scope="module")
def city(counties):
    return shapely.union_all(list(counties.values()))


@pytest.fixture(scope="module")
def albers(layers):
    """Every layer on the equal-area projection (invalid inputs kept as they are)."""
    return {k: gdf.set_geometry([_albers(g) for g in gdf.geometry], crs=ALBERS)
            for k, gdf in layers.items()}


@pytest.fixture(scope="module")
def unions(albers):
    """Union of each layer on the equal-area projection (invalid inputs repaired first)."""
    out = {k: _union(gdf) for k, gdf in albers.items()}
    for g in out.values():
        shapely.prepare(g)
    return out


@pytest.fixture(scope="module")
def city_albers(city):
    c = _albers(city)
    shapely.prepare(c)
    return c


# --------------------------------------------------------------------------------------------
# file, fields, determinism
# --------------------------------------------------------------------------------------------
def test_one_geopackage_with_six_layers_and_the_fields(written, layers):
    out, paths = written
    assert set(paths) == set(KINDS)
    assert {p for p in paths.values()} == {out / "zones" / "sanqu_sanxian.gpkg"}
    names = {name for name, _ in pyogrio.list_layers(paths[KINDS[0]])}
    assert set(KINDS) <= names
    for kind, gdf in layers.items():
        assert gdf.crs.to_epsg() == 4490, kind  # CGCS2000 lon/lat: tanhui must reproject
        assert list(gdf.columns) == ["zone_id", "name", "kind", "county_adcode", "note",
                                     "geometry"]
        assert len(gdf) >= 3
        assert gdf["zone_id"].is_unique
        assert all(re.fullmatch(PREFIX[kind] + r"-\d{4}", z) for z in gdf["zone_id"])
        assert all(n.startswith(f"{CHINESE[kind]} {z}")
                   for n, z in zip(gdf["name"], gdf["zone_id"]))
        assert set(gdf["kind"]) == {kind}
        assert set(gdf["county_adcode"]) <= ADCODES
        assert set(gdf["note"]) == {NOTE}
        assert set(gdf.geom_type) == {"MultiPolygon"}
        # lon/lat order, inside Tongliao's box (119.24-123.71 E, 42.24-45.65 N)
        x0, y0, x1, y1 = gdf.total_bounds
        assert 119.2 <= x0 < x1 <= 123.75 and 42.2 <= y0 < y1 <= 45.7, kind
    # the 8 county seats name their development boundary
    udb = layers["urban_development_boundary"]
    for seat, *_ in world.TOWNS:
        assert udb["name"].str.endswith(" " + seat).sum() == 1, seat


def test_deterministic_for_a_seed(layers, grid):
    from tanhui.demo import demo_zones

    again = demo_zones(grid, seed=42, year=2023)
    for kind in KINDS:
        a, b = layers[kind], again[kind]
        assert list(a["zone_id"]) == list(b["zone_id"])
        assert list(a["name"]) == list(b["name"])
        assert list(a["county_adcode"]) == list(b["county_adcode"])
        assert shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=0).all()


# --------------------------------------------------------------------------------------------
# 三区: a clean partition of the city
# --------------------------------------------------------------------------------------------
def test_three_spaces_partition_the_city(layers, city, counties):
    geoms = np.concatenate([layers[k].geometry.values for k in SPACES])
    assert shapely.is_valid(geoms).all()
    union = shapely.union_all(geoms)
    area = city.area  # degrees², planar in the file's CRS
    assert abs(union.area - area) / area < 1e-6
    assert shapely.symmetric_difference(union, city).area / area < 1e-6
    # no overlaps: the parts add up to their union
    assert abs(shapely.area(geoms).sum() - union.area) / area < 1e-6
    for a, b in combinations(SPACES, 2):
        assert shapely.intersection(_union(layers[a]), _union(layers[b])).area / area < 1e-6
    # each feature lies in the county it names (up to a strip ~1 cm wide along its outline:
    # vertices are snapped to a 1e-7 degree grid)
    for kind in SPACES:
        for g, adcode in zip(layers[kind].geometry, layers[kind]["county_adcode"]):
            outside = g.area - shapely.intersection(g, counties[adcode]).area
            assert outside <= 1e-7 * g.length, (kind, adcode)


def test_partition_holds_on_an_equal_area_projection(albers, city_albers):
    # tanhui reprojects to its Albers grid: the spaces stay valid and add up to the city
    city_m2 = city_albers.area
    geoms = np.concatenate([albers[k].geometry.values for k in SPACES])
    assert shapely.is_valid(geoms).all()
    total = shapely.area(geoms).sum()
    assert abs(total - city_m2) / city_m2 < 1e-6
    assert 58_000e6 < city_m2 < 59_800e6  # Tongliao: 58 884 km² (tongliao-admin README)
    shares = {k: shapely.area(albers[k].geometry.values).sum() / city_m2 for k in SPACES}
    assert shares["ecological_space"] > 0.4 and shares["agricultural_space"] > 0.2
    assert 0.002 < shares["urban_space"] < 0.05


def test_spaces_have_no_crumbs_or_slivers(albers):
    for kind in SPACES:
        a = shapely.area(albers[kind].geometry.values)
        width = 2 * a / shapely.length(albers[kind].geometry.values)
        assert a.min() > 1e4, kind  # > 1 ha
        assert width.min() > 60.0, kind  # mean width > 60 m


# --------------------------------------------------------------------------------------------
# 三线: overlays, mostly inside their 区, with realistic faults
# --------------------------------------------------------------------------------------------
def test_lines_lie_mostly_inside_their_space(unions):
    u = unions
    for line, space in zip(LINES, SPACES):
        inside = shapely.intersection(u[line], u[space]).area / u[line].area
        assert inside > 0.9, (line, inside)
    red, farm = u["ecological_protection_red_line"], u["permanent_basic_farmland"]
    overlap = shapely.intersection(red, farm).area
    # digitising overlaps at the edges: present, but small
    assert 0.05e6 < overlap < 0.01 * min(red.area, farm.area)
    assert shapely.intersection(red, u["agricultural_space"]).area > 0.05e6
    # the lines are plausible shares of the city (sums of areas, km²)
    assert 3_000e6 < red.area < 30_000e6 and 5_000e6 < farm.area < 30_000e6
    assert 100e6 < u["urban_development_boundary"].area < 2_000e6


def test_lines_hold_sub_pixel_polygons_and_slivers(albers):
    small, slivers = {}, {}
    for kind in LINES:
        g = shapely.make_valid(albers[kind].geometry.values)
        a, p = shapely.area(g), shapely.length(g)
        small[kind] = int(((a > 0) & (a < PIXEL_M2)).sum())
        slivers[kind] = int(((2 * a / p < 60.0) & (p > 2000.0)).sum())  # < 1/4 pixel wide
    assert small["ecological_protection_red_line"] >= 2
    assert small["permanent_basic_farmland"] >= 1
    assert sum(small.values()) >= 4
    assert slivers["ecological_protection_red_line"] >= 1
    assert slivers["permanent_basic_farmland"] >= 1


def test_lines_hold_invalid_geometries_that_make_valid_repairs(layers):
    for kind in SPACES:
        assert layers[kind].is_valid.all(), kind
    invalid = {k: layers[k][~layers[k].is_valid] for k in LINES}
    n = sum(len(v) for v in invalid.values())
    assert 1 <= n <= 3
    assert len(invalid["ecological_protection_red_line"]) >= 1
    for kind, bad in invalid.items():
        for g in bad.geometry:
            fixed = shapely.make_valid(g)
            polys = [p for p in shapely.get_parts(fixed) if p.geom_type in
                     ("Polygon", "MultiPolygon")]
            assert polys and all(p.is_valid for p in polys), kind
            # repaired area is positive (a bowtie's shoelace area cancels to ~0)
            assert sum(_albers(p).area for p in polys) > 0.5 * PIXEL_M2


def test_tanhui_reads_the_layers_and_counts_the_repairs(written, layers, grid):
    from tanhui.context import read_polygon_layer

    _, paths = written
    for kind in KINDS:
        lay = read_polygon_layer(paths[kind], "zone_id", "name", kind, grid, f"zones:{kind}", kind)
        assert lay.n_repaired == int((~layers[kind].is_valid).sum()), kind
        assert len(lay.gdf) == len(layers[kind])
        assert pyproj.CRS.from_user_input(lay.gdf.crs).equals(grid.crs)
        # reprojected vertex by vertex (no densifying), every geometry must still be valid:
        # tanhui's zonal step refuses invalid polygons
        assert lay.gdf.is_valid.all(), kind


# --------------------------------------------------------------------------------------------
# consistency with the synthetic land cover
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def landcover_600m(city_albers):
    """Land cover 2015 and 2023 on a 600 m Albers window (not the construction's 500 m)."""
    c = city_albers
    minx, miny, maxx, maxy = c.bounds
    res = 600.0
    transform = Affine(res, 0.0, minx - 137.0, 0.0, -res, maxy + 91.0)
    shape = (int((maxy - miny) / res) + 2, int((maxx - minx) / res) + 2)
    inside = rasterio.features.geometry_mask([c], shape, transform, invert=True)
    lc = {y: landcover_window(transform, shape, ALBERS, y) for y in (2015, 2023)}
    return transform, shape, inside, lc


def _covered(geom, transform, shape):
    return rasterio.features.geometry_mask([geom], shape, transform, invert=True)


def test_red_line_and_farmland_cover_their_land_cover(unions, landcover_600m):
    transform, shape, inside, lc = landcover_600m
    red = _covered(unions["ecological_protection_red_line"], transform, shape)
    farm = _covered(unions["permanent_basic_farmland"], transform, shape)
    forest_wet = np.isin(lc[2023], (21, 23, 41, 42, 46, 64)) & inside
    crop = np.isin(lc[2023], (11, 12)) & inside
    sand_2015 = (lc[2015] == 61) & inside  # sand fixation areas, restored or not
    assert forest_wet.sum() > 1000 and crop.sum() > 1000
    assert (red & forest_wet).sum() / forest_wet.sum() > 0.5
    assert (red & sand_2015).sum() / sand_2015.sum() > 0.5
    assert (farm & crop).sum() / crop.sum() > 0.5
    # and they are not indiscriminate: little cropland in the red line, little red-line
    # land cover in the farmland
    assert (red & crop).sum() / crop.sum() < 0.15
    assert (farm & forest_wet).sum() / forest_wet.sum() < 0.25


def test_development_boundary_holds_every_town_pixel(unions, grid, city_albers):
    udb = unions["urban_development_boundary"]
    ox, oy = grid.origin_x, grid.origin_y
    n_town = 0
    for name, lon, lat, radius_km in world.TOWNS:
        x, y = TO_ALBERS.transform(lon, lat)
        half = 2.0 * radius_km * 1000.0 + 2000.0
        # the grid's own 250 m pixels around the seat
        c0 = math.floor((x - half - ox) / 250.0)
        r0 = math.floor((oy - (y + half)) / 250.0)
        n = int(2 * half / 250.0) + 1
        transform = Affine(250.0, 0.0, ox + c0 * 250.0, 0.0, -250.0, oy - r0 * 250.0)
        lc = landcover_window(transform, (n, n), grid.crs, 2023)
        rows, cols = np.nonzero(lc == 51)
        assert rows.size > 10, name
        n_town += rows.size
        boxes = shapely.box(transform.c + cols * 250.0, transform.f - (rows + 1) * 250.0,
                            transform.c + (cols + 1) * 250.0, transform.f - rows * 250.0)
        # the part of each pixel in the city
        edge = ~shapely.within(boxes, city_albers)
        boxes[edge] = shapely.intersection(boxes[edge], city_albers)
        boxes = boxes[~shapely.is_empty(boxes)]
        assert boxes.size > 10, name
        boxes = boxes[~shapely.covered_by(boxes, udb)]  # (fast path; then exact remainders)
        missing = np.append(shapely.area(shapely.difference(boxes, udb)), 0.0)
        assert missing.max() < 1.0, (name, missing.max())  # m²
    assert n_town > 1000


# --------------------------------------------------------------------------------------------
# project file and the demo run
# --------------------------------------------------------------------------------------------
def test_demo_project_file_lists_the_six_layers(written, grid):
    from tanhui.project import load_project

    out, _ = written
    text = world._project_toml(grid, (2015, 2023), 42, None, zones=True)
    zones = tomllib.loads(text)["zones"]
    assert [z["kind"] for z in zones] == list(KINDS)
    for z in zones:
        assert z == {"kind": z["kind"], "path": "zones/sanqu_sanxian.gpkg", "layer": z["kind"],
                     "id_field": "zone_id", "name_field": "name"}
    (out / "project.toml").write_text(text, encoding="utf-8")
    parsed = load_project(out / "project.toml")
    assert [z.kind for z in parsed.zones] == list(KINDS)
    assert all(z.path == out / "zones" / "sanqu_sanxian.gpkg" for z in parsed.zones)
    assert "[[zones]]" not in world._project_toml(grid, (2015, 2023), 42, None, zones=False)


@pytest.mark.slow
def test_demo_run_aggregates_every_zone_layer(tmp_path):
    import pandas as pd
    from click.testing import CliRunner

    from tanhui.cli.main import cli

    res = CliRunner().invoke(cli, ["-q", "demo", str(tmp_path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    tables = tmp_path / "out" / "tables"
    regions = pd.read_csv(tables / "region_totals.csv", dtype={"feature_id": str})
    city_stock = regions["stock_total_tC_2023"].sum()
    space_stock = 0.0
    for kind in KINDS:
        t = pd.read_csv(tables / f"zone_{kind}.csv", dtype={"feature_id": str, "class_id": str})
        t = t[t["class_id"] == "all"]
        ids = gpd.read_file(tmp_path / "zones" / "sanqu_sanxian.gpkg", layer=kind)["zone_id"]
        assert set(t["feature_id"]) == set(ids), kind
        if kind in SPACES:
            space_stock += t["stock_total_tC_2023"].sum()
    # the spaces partition the city: their totals add up to the counties' (polygon
    # coverage weights; reprojection of undensified edges differs by < 1e-6)
    assert abs(space_stock - city_stock) / city_stock < 1e-5
    notes = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))["notes"]
    assert sum("repaired" in n and "sanqu_sanxian.gpkg" in n for n in notes) >= 1
