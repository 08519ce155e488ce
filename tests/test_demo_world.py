"""Tests of the synthetic Horqin demo world (tanhui.demo) and its shipped county polygons.

Pattern checks run on coarse (1–2 km) windows over Tongliao so the file stays fast.
Expected numbers are typed in by hand from science.md and the tongliao-admin README.
"""
from __future__ import annotations

import calendar
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.crs import CRS
from shapely.geometry import shape as to_shape

from tanhui.demo import world
from tanhui.demo import (
    counties_path,
    landcover_window,
    ndvi_window,
    tongliao_climate,
    write_demo_inputs,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# Albers of the tongliao-admin README (WGS84 ellipsoid) and of the tanhui grids (CGCS2000 =
# GRS80; the two differ by < 1e-7 in area).
ALBERS_WGS84 = (
    "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
)
ALBERS_CGCS2000 = CRS.from_proj4(
    "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs"
)

# science.md §7.6, every CNLUCC code (typed in by hand).
CNLUCC_SCIENCE_MD = {11, 12, 21, 22, 23, 24, 31, 32, 33, 41, 42, 43, 44, 45, 46, 47,
                     51, 52, 53, 61, 62, 63, 64, 65, 66, 67}

# /work/shared/data/tongliao-admin/README.md, area_km2 on Albers (typed in by hand).
README_AREAS_KM2 = {
    "150502": 3495.5, "150521": 9573.6, "150522": 11517.5, "150523": 4378.5,
    "150524": 4712.5, "150525": 8129.0, "150526": 16493.6, "150581": 584.4,
}
README_CITY_KM2 = 58884.4
README_NAMES = {
    "150502": "科尔沁区", "150521": "科尔沁左翼中旗", "150522": "科尔沁左翼后旗", "150523": "开鲁县",
    "150524": "库伦旗", "150525": "奈曼旗", "150526": "扎鲁特旗", "150581": "霍林郭勒市",
}

CROP, GRASS, SAND = (11, 12), (31, 32, 33), (61,)
FOREST, SHRUB = (21, 23), (22,)
WATER_WET, BUILT = (41, 42, 43, 45, 46, 64), (51, 52, 53)


# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------
def _counties() -> list[dict]:
    return json.loads(counties_path().read_text(encoding="utf-8"))["features"]


def _to_albers(geom, crs=ALBERS_WGS84):
    t = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def _city_window(res_m: float):
    """Albers window (transform, shape) covering Tongliao at ``res_m``, and the city mask."""
    geoms = [_to_albers(to_shape(f["geometry"]), ALBERS_CGCS2000.to_proj4()) for f in _counties()]
    minx, miny, maxx, maxy = shapely.union_all(geoms).bounds
    x0 = math.floor(minx / res_m) * res_m
    y0 = math.ceil(maxy / res_m) * res_m
    shape = (math.ceil((y0 - miny) / res_m), math.ceil((maxx - x0) / res_m))
    transform = Affine(res_m, 0, x0, 0, -res_m, y0)
    mask = rasterio.features.rasterize(geoms, out_shape=shape, transform=transform) > 0
    return transform, shape, mask


@pytest.fixture(scope="module")
def city_2km():
    transform, shape, mask = _city_window(2000.0)
    lc = {y: landcover_window(transform, shape, ALBERS_CGCS2000, y) for y in (2015, 2019, 2023)}
    return transform, shape, mask, lc


def _share_pct(codes: np.ndarray, group) -> float:
    return 100.0 * float(np.isin(codes, group).mean())


class FakeGrid:
    """Minimal stand-in for tanhui.grid.TileGrid (Albers, square tiles from a fixed origin)."""

    def __init__(self, res_m: float, tile_shape=(64, 64), name="demo_test_grid"):
        self.crs = ALBERS_CGCS2000
        self.res_x = res_m
        self.tile_shape = tile_shape
        self.name = name
        self._x0, self._y0 = -2_600_000.0, 6_000_000.0

    def tile_transform(self, tid):
        row, col = tid
        ny, nx = self.tile_shape
        return Affine(self.res_x, 0, self._x0 + col * nx * self.res_x,
                      0, -self.res_x, self._y0 - row * ny * self.res_x)

    def tile_ids(self):  # not needed by the writer; here for completeness
        raise NotImplementedError

    def tiles_intersecting(self, geom, crs):
        g = _to_albers(geom, self.crs.to_proj4()) if str(crs).upper() == "EPSG:4326" else geom
        ny, nx = self.tile_shape
        tw, th = nx * self.res_x, ny * self.res_x
        minx, miny, maxx, maxy = g.bounds
        out = []
        for r in range(int((self._y0 - maxy) // th), int((self._y0 - miny) // th) + 1):
            for c in range(int((minx - self._x0) // tw), int((maxx - self._x0) // tw) + 1):
                t = self.tile_transform((r, c))
                if shapely.box(t.c, t.f - th, t.c + tw, t.f).intersects(g):
                    out.append((r, c))
        return out


# --------------------------------------------------------------------------------------------
# noise kernel
# --------------------------------------------------------------------------------------------
def test_fbm_numba_equals_reference():
    rng = np.random.default_rng(3)
    x = rng.uniform(-400, 400, (37, 23))
    y = rng.uniform(-400, 400, (37, 23))
    for cell, octaves, salt in ((5.0, 3, 11), (0.7, 1, 18), (30.0, 2, 1)):
        np.testing.assert_allclose(world.fbm_numba(x, y, cell, octaves, 42, salt),
                                   world.fbm_reference(x, y, cell, octaves, 42, salt),
                                   rtol=0, atol=1e-12)


def test_fbm_is_roughly_standardised_and_smooth():
    rng = np.random.default_rng(4)
    x = rng.uniform(-5000, 5000, 200_000)
    y = rng.uniform(-5000, 5000, 200_000)
    v = world.fbm_numba(x, y, 2.0, 3, 42, 7)
    assert abs(v.mean()) < 0.02 and 0.95 < v.std() < 1.05
    # neighbours 10 m apart on a 2 km field are nearly equal (smooth, not pixel noise)
    dv = world.fbm_numba(x + 0.01, y, 2.0, 3, 42, 7) - v
    assert np.abs(dv).max() < 0.1


# --------------------------------------------------------------------------------------------
# land cover: determinism, tile consistency, cross-resolution consistency
# --------------------------------------------------------------------------------------------
def test_landcover_is_deterministic_for_a_seed(city_2km):
    transform, shape, _, lc = city_2km
    again = landcover_window(transform, shape, ALBERS_CGCS2000, 2015)
    np.testing.assert_array_equal(again, lc[2015])
    other = landcover_window(transform, shape, ALBERS_CGCS2000, 2015, seed=7)
    assert (other != lc[2015]).mean() > 0.2


def test_tiles_equal_the_union_window():
    res = 500.0
    x0, y0 = 1_300_000.0, 4_860_000.0  # Albers, over the Xiliao plain and Tongliao city
    whole = landcover_window(Affine(res, 0, x0, 0, -res, y0), (120, 160), ALBERS_CGCS2000, 2023)
    left = landcover_window(Affine(res, 0, x0, 0, -res, y0), (120, 70), ALBERS_CGCS2000, 2023)
    right = landcover_window(Affine(res, 0, x0 + 70 * res, 0, -res, y0), (120, 90),
                             ALBERS_CGCS2000, 2023)
    top = landcover_window(Affine(res, 0, x0, 0, -res, y0), (45, 160), ALBERS_CGCS2000, 2023)
    bottom = landcover_window(Affine(res, 0, x0, 0, -res, y0 - 45 * res), (75, 160),
                              ALBERS_CGCS2000, 2023)
    np.testing.assert_array_equal(np.hstack([left, right]), whole)
    np.testing.assert_array_equal(np.vstack([top, bottom]), whole)
    assert len(np.unique(whole)) >= 6  # a real mosaic, not one class


def test_tiles_equal_the_union_window_geographic():
    res = 0.01
    whole = landcover_window(Affine(res, 0, 121.0, 0, -res, 43.2), (60, 80), "EPSG:4326", 2015)
    a = landcover_window(Affine(res, 0, 121.0, 0, -res, 43.2), (60, 30), "EPSG:4326", 2015)
    b = landcover_window(Affine(res, 0, 121.3, 0, -res, 43.2), (60, 50), "EPSG:4326", 2015)
    assert (np.hstack([a, b]) == whole).mean() > 0.999  # last-bit coordinate differences only


def test_fine_and_coarse_grids_show_the_same_pattern():
    # 150 m pixel centres fall on every 5th 30 m pixel centre (offset 2): codes must match
    x0, y0 = 1_340_000.0, 4_830_000.0
    fine = landcover_window(Affine(30, 0, x0, 0, -30, y0), (300, 300), ALBERS_CGCS2000, 2023)
    coarse = landcover_window(Affine(150, 0, x0, 0, -150, y0), (60, 60), ALBERS_CGCS2000, 2023)
    np.testing.assert_array_equal(coarse, fine[2::5, 2::5])


def test_shares_agree_between_1km_and_2km(city_2km):
    _, _, mask2, lc2 = city_2km
    t1, s1, mask1 = _city_window(1000.0)
    lc1 = landcover_window(t1, s1, ALBERS_CGCS2000, 2015)
    for group in (CROP, GRASS, SAND, FOREST):
        assert abs(_share_pct(lc1[mask1], group) - _share_pct(lc2[2015][mask2], group)) < 1.5


# --------------------------------------------------------------------------------------------
# land cover: codes, shares, geography
# --------------------------------------------------------------------------------------------
def test_codes_are_cnlucc_and_city_is_fully_classified(city_2km):
    _, _, mask, lc = city_2km
    for year, codes in lc.items():
        present = set(np.unique(codes).tolist())
        assert present - {0} <= CNLUCC_SCIENCE_MD, (year, present - CNLUCC_SCIENCE_MD)
        assert (codes[mask] != 0).all()
    assert set(world.CNLUCC_CODES) == CNLUCC_SCIENCE_MD


def test_zero_only_outside_the_study_rectangle():
    # a window straddling the rectangle's west edge (119.0 E) at 43.5 N
    lc = landcover_window(Affine(0.05, 0, 118.5, 0, -0.05, 43.6), (4, 20), "EPSG:4326", 2015)
    lon_centres = 118.5 + 0.05 * (np.arange(20) + 0.5)
    np.testing.assert_array_equal(lc == 0, np.broadcast_to(lon_centres < 119.0, lc.shape))


@pytest.mark.parametrize("year", [2015, 2023])
def test_city_class_shares_within_targets(city_2km, year):
    _, _, mask, lc = city_2km
    codes = lc[year][mask]
    targets = {  # brief: cropland 30–35 %, grassland 35–40 %, sand 10–15 %, forest 6–10 %,
        "cropland": (CROP, 30, 35),  # shrub ~3 %, water+wetland ~3 %, built-up 2–3 %
        "grassland": (GRASS, 35, 40),
        "sandy land": (SAND, 10, 15),
        "forest + sparse woodland": (FOREST, 6, 10),
        "shrub": (SHRUB, 2, 5),
        "water + wetland": (WATER_WET, 2, 4.5),
        "built-up": (BUILT, 2, 3),
    }
    for name, (group, lo, hi) in targets.items():
        pct = _share_pct(codes, group)
        assert lo <= pct <= hi, f"{year} {name}: {pct:.1f} % not in {lo}–{hi} %"
    assert _share_pct(codes, (11,)) > 0.2  # some paddy


def test_geography_is_where_the_brief_puts_it(city_2km):
    transform, shape, mask, lc = city_2km
    codes = lc[2015]
    rows, cols = np.indices(shape)
    x, y = transform * (cols + 0.5, rows + 0.5)
    to_lonlat = pyproj.Transformer.from_crs(ALBERS_CGCS2000, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(x, y)
    plain = mask & (lat > 43.5) & (lat < 43.9) & (lon > 121.0) & (lon < 123.0)
    sand_belt = mask & (lat > 42.7) & (lat < 43.3) & (lon > 120.5) & (lon < 123.0)
    north = mask & (lat > 44.6)
    assert _share_pct(codes[plain], CROP) > 50
    assert _share_pct(codes[sand_belt], SAND) > 25
    assert _share_pct(codes[sand_belt], SAND) > 3 * _share_pct(codes[north], SAND)
    assert _share_pct(codes[north], (31,)) > 30
    assert _share_pct(codes[north], SHRUB) > _share_pct(codes[plain], SHRUB)
    # every county seat is urban (51) at its centre
    seats = [(122.26, 43.62), (121.30, 43.60), (122.35, 42.95), (123.30, 44.17),
             (121.77, 42.73), (120.66, 42.84), (120.90, 44.55), (119.66, 45.53)]
    lon_s, lat_s = np.array(seats).T
    np.testing.assert_array_equal(world.landcover_lonlat(lon_s, lat_s, 2015), 51)


# --------------------------------------------------------------------------------------------
# land-cover change between epochs
# --------------------------------------------------------------------------------------------
def test_later_epoch_changes_a_few_percent_in_the_intended_directions(city_2km):
    _, _, mask, lc = city_2km
    before, after = lc[2015][mask], lc[2023][mask]
    changed = before != after
    assert 2.0 < 100 * changed.mean() < 8.0
    b, a = before[changed], after[changed]
    restoration = np.isin(b, (61, 33, 32)) & np.isin(a, (21, 22, 23, 32))
    reclamation = np.isin(b, GRASS) & (a == 12)
    assert (restoration | reclamation).mean() > 0.9
    assert restoration.mean() > 0.4 and reclamation.mean() > 0.15
    # sand shrinks, forest and cropland grow
    assert _share_pct(after, SAND) < _share_pct(before, SAND) - 1
    assert _share_pct(after, FOREST) > _share_pct(before, FOREST) + 0.5
    assert _share_pct(after, CROP) > _share_pct(before, CROP) + 0.5


def test_changes_are_nested_in_time_and_absent_before_2015(city_2km):
    transform, shape, _, lc = city_2km
    np.testing.assert_array_equal(landcover_window(transform, shape, ALBERS_CGCS2000, 2010),
                                  lc[2015])
    changed_2019 = lc[2019] != lc[2015]
    changed_2023 = lc[2023] != lc[2015]
    assert changed_2019.any()
    assert not (changed_2019 & ~changed_2023).any()
    assert changed_2019.sum() < changed_2023.sum()


def test_changes_come_in_coherent_patches():
    res = 500.0  # 60 km x 60 km of the sand belt (科左后旗)
    t = Affine(res, 0, 1_380_000.0, 0, -res, 4_780_000.0)
    ch = (landcover_window(t, (120, 120), ALBERS_CGCS2000, 2015)
          != landcover_window(t, (120, 120), ALBERS_CGCS2000, 2023))
    p = np.pad(ch, 1)
    neighbours = p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    # salt-and-pepper change at this rate would give ~4p ≈ 0.3; patches give far more
    assert ch.mean() > 0.03
    assert (neighbours[ch]).mean() > 0.75


# --------------------------------------------------------------------------------------------
# county polygons shipped with the package
# --------------------------------------------------------------------------------------------
def test_counties_file_has_the_eight_units():
    feats = _counties()
    assert len(feats) == 8
    assert {f["properties"]["adcode"]: f["properties"]["name_zh"] for f in feats} == README_NAMES
    assert all(f["properties"]["name_en"] for f in feats)
    assert counties_path().stat().st_size < 150 * 1024
    for f in feats:
        assert to_shape(f["geometry"]).is_valid, f["properties"]["adcode"]


def test_counties_do_not_overlap_and_keep_their_areas():
    feats = _counties()
    geoms = {f["properties"]["adcode"]: _to_albers(to_shape(f["geometry"])) for f in feats}
    codes = sorted(geoms)
    for i, a in enumerate(codes):
        for b in codes[i + 1:]:
            assert geoms[a].intersection(geoms[b]).area / 1e6 < 0.01, (a, b)
    union = shapely.union_all(list(geoms.values()))
    assert abs(union.area / 1e6 / README_CITY_KM2 - 1) < 0.005
    assert sum(len(p.interiors) for p in getattr(union, "geoms", [union])) == 0  # no gaps
    for code, area_km2 in README_AREAS_KM2.items():
        assert abs(geoms[code].area / 1e6 / area_km2 - 1) < 0.01, code


@pytest.mark.skipif(not (SHARED / "tongliao-admin").is_dir(), reason="shared data not present")
def test_counties_match_the_unsimplified_source():
    src = json.loads((SHARED / "tongliao-admin" / "tongliao_districts.geojson").read_text("utf-8"))
    full = {f["properties"]["adcode"]: _to_albers(to_shape(f["geometry"])) for f in src["features"]}
    for f in _counties():
        code = f["properties"]["adcode"]
        simple = _to_albers(to_shape(f["geometry"]))
        # the 150 m simplification moves < 0.5 % of a county's area
        assert simple.symmetric_difference(full[code]).area < 0.005 * full[code].area, code


# --------------------------------------------------------------------------------------------
# NDVI and climate
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ndvi_city():
    transform, shape, mask = _city_window(2000.0)
    lon, lat = world.pixel_lonlat(transform, shape, ALBERS_CGCS2000)
    lc = world.landcover_lonlat(lon, lat, 2023)
    ndvi = world.ndvi_months_lonlat(lon, lat, 2023, range(1, 13), landcover=lc)
    return transform, shape, mask, lc, ndvi


def test_ndvi_peaks_in_july_august_for_vegetated_classes(ndvi_city):
    _, _, mask, lc, ndvi = ndvi_city
    for code in (11, 12, 21, 22, 23, 31, 32, 33, 46, 61, 64):
        sel = mask & (lc == code)
        assert sel.sum() > 5, code
        curve = ndvi[:, sel].mean(axis=1)
        assert int(np.argmax(curve)) + 1 in (7, 8), (code, curve.round(2))


def test_ndvi_values_are_plausible_for_horqin(ndvi_city):
    _, _, mask, lc, ndvi = ndvi_city
    peak = ndvi[6:8].max(axis=0)  # July/August

    def mean_peak(codes):
        return float(peak[mask & np.isin(lc, codes)].mean())

    assert 0.45 <= mean_peak((31, 32, 33)) <= 0.65
    assert 0.70 <= mean_peak((11, 12)) <= 0.80
    assert 0.75 <= mean_peak((21,)) <= 0.85
    assert 0.15 <= mean_peak((61,)) <= 0.25
    land = mask & ~np.isin(lc, (41, 42))
    winter = ndvi[0][land]
    assert 0.05 <= winter.mean() <= 0.15 and winter.max() <= 0.2
    water = mask & np.isin(lc, (41, 42))
    assert (ndvi[:, water] < 0).all()
    assert np.nanmax(ndvi) <= 0.92


def test_cropland_greens_up_later_and_sharper_than_grassland(ndvi_city):
    _, _, mask, lc, ndvi = ndvi_city

    def curve(codes):
        c = ndvi[:, mask & np.isin(lc, codes)].mean(axis=1)
        return (c - c.min()) / (c.max() - c.min())

    crop, grass = curve((12,)), curve((31, 32, 33))
    assert crop[5] < grass[5]  # June: maize still small
    assert (crop > 0.5).sum() < (grass > 0.5).sum()  # shorter green season


def test_ndvi_window_matches_the_monthly_stack_and_is_nan_outside():
    t = Affine(0.05, 0, 118.8, 0, -0.05, 43.5)
    july = ndvi_window(t, (6, 10), "EPSG:4326", 2023, 7)
    lon, lat = world.pixel_lonlat(t, (6, 10), "EPSG:4326")
    stack = world.ndvi_months_lonlat(lon, lat, 2023, range(1, 13))
    np.testing.assert_array_equal(july, stack[6])
    assert july.dtype == np.float32
    assert np.isnan(july[:, :4]).all() and not np.isnan(july[:, 4:]).any()
    with pytest.raises(ValueError, match="month"):
        ndvi_window(t, (6, 10), "EPSG:4326", 2023, 13)


def _fao56_monthly_rs(lat_deg: float, sunshine_frac: float) -> np.ndarray:
    """Independent FAO-56 eqs. 21–25, 35: daily Ra summed per month (non-leap year)."""
    phi = math.radians(lat_deg)
    out = np.zeros(12)
    doy = 0
    for m in range(12):
        for _ in range(calendar.monthrange(2001, m + 1)[1]):
            doy += 1
            x = 2 * math.pi * doy / 365
            dr = 1 + 0.033 * math.cos(x)
            decl = 0.409 * math.sin(x - 1.39)
            ws = math.acos(-math.tan(phi) * math.tan(decl))
            ra = 24 * 60 / math.pi * 0.0820 * dr * (
                ws * math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.sin(ws))
            out[m] += (0.25 + 0.50 * sunshine_frac) * ra
    return out


def test_tongliao_climate():
    c = tongliao_climate()
    np.testing.assert_array_equal(
        c.temperature_C, [-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0])
    np.testing.assert_array_equal(c.precipitation_mm, [2, 3, 8, 18, 35, 70, 120, 85, 40, 15, 5, 3])
    assert c.precipitation_mm.sum() == 404
    np.testing.assert_allclose(c.radiation_MJ_m2, _fao56_monthly_rs(43.6, 0.65), rtol=1e-9)
    # science.md §10.2: Ra at 43.6°N (mid-month values), Rs = (0.25 + 0.5·0.65)·Ra
    ra_science = np.array([397, 512, 800, 1009, 1221, 1253, 1255, 1107, 854, 635, 427, 358])
    np.testing.assert_allclose(c.radiation_MJ_m2, 0.575 * ra_science, rtol=0.025)
    assert 4800 < c.radiation_MJ_m2.sum() < 6000  # science.md §10.2 plausible range
    assert "SYNTHETIC" in c.sources["precipitation_mm"]
    assert "Tongyu" in c.sources["temperature_C"]


def test_climate_window_has_gentle_gradients():
    t = Affine(0.5, 0, 120.0, 0, -0.5, 45.5)
    clim = world.climate_window(t, (6, 6), "EPSG:4326")
    for key in ("temperature_C", "precipitation_mm", "radiation_MJ_m2"):
        assert clim[key].shape == (12, 6, 6) and clim[key].dtype == np.float32
    temp = clim["temperature_C"]
    assert (temp[:, 0, :] < temp[:, -1, :]).all()  # colder in the north
    assert np.ptp(temp[6]) < 4.0
    # radiation follows latitude: in January the south gets more
    assert clim["radiation_MJ_m2"][0, -1, 0] > clim["radiation_MJ_m2"][0, 0, 0]


# --------------------------------------------------------------------------------------------
# writing the demo project
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_project(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    grid = FakeGrid(2000.0, tile_shape=(64, 64))
    project = write_demo_inputs(out, grid, seed=42, years=(2015, 2023), ndvi_year=2023)
    return out, grid, project


def test_write_demo_inputs_files(demo_project):
    out, _, project = demo_project
    assert project == out / "project.toml"
    names = {p.name for p in out.iterdir()}
    assert {"landcover_2015.tif", "landcover_2023.tif", "counties.geojson", "project.toml",
            "README.md", "ndvi"} <= names
    assert not any(n.endswith(".partial") for n in names)
    assert (out / "counties.geojson").read_bytes() == counties_path().read_bytes()
    assert "SYNTHETIC" in (out / "README.md").read_text(encoding="utf-8")
    assert len(list((out / "ndvi").glob("ndvi_2023_*.tif"))) == 12


def test_written_landcover_matches_the_generator(demo_project):
    out, grid, _ = demo_project
    with rasterio.open(out / "landcover_2023.tif") as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        assert src.compression is not None
        assert src.tags()["SYNTHETIC"] == "true"
        assert "not an observation" in src.tags()["TIFFTAG_IMAGEDESCRIPTION"]
        assert src.colormap(1)[12][:3] == (255, 225, 53)  # colour table written
        assert CRS.from_user_input(src.crs) == grid.crs
        tid = grid.tiles_intersecting(world.tongliao_outline(), "EPSG:4326")[0]
        t = grid.tile_transform(tid)
        window = rasterio.windows.from_bounds(t.c, t.f - 64 * 2000, t.c + 64 * 2000, t.f,
                                              src.transform)
        data = src.read(1, window=window.round_offsets().round_lengths())
        whole = src.read(1)
    np.testing.assert_array_equal(data, landcover_window(t, (64, 64), grid.crs, 2023))
    # whole raster: the generator inside the tiles over Tongliao, nodata in the other tiles
    with rasterio.open(out / "landcover_2023.tif") as src:
        expected = landcover_window(src.transform, whole.shape, src.crs, 2023)
        covered = np.zeros(whole.shape, dtype=bool)
        for tid in grid.tiles_intersecting(world.tongliao_outline(), "EPSG:4326"):
            centre = grid.tile_transform(tid) * (0.5, 0.5)
            r, c = rasterio.transform.rowcol(src.transform, *centre)
            covered[r:r + 64, c:c + 64] = True
    assert not covered.all()
    np.testing.assert_array_equal(whole, np.where(covered, expected, 0))
    assert (whole != 0).mean() > 0.3


def test_written_ndvi_is_scaled_int16_like_modis(demo_project):
    out, grid, _ = demo_project
    with rasterio.open(out / "ndvi" / "ndvi_2023_08.tif") as src:
        assert src.dtypes[0] == "int16" and src.nodata == -3000
        assert src.scales == (0.0001,) and src.offsets == (0.0,)
        assert src.tags()["SYNTHETIC"] == "true"
        raw = src.read(1)
        expected = ndvi_window(src.transform, raw.shape, src.crs, 2023, 8)
    # tiles that do not intersect Tongliao are left unwritten (fill); the rest is the generator
    assert (raw[np.isnan(expected)] == -3000).all()
    ok = raw != -3000
    assert ok.mean() > 0.3
    assert np.abs(raw[ok] * 0.0001 - expected[ok]).max() <= 0.00005 + 1e-7


def test_project_file_follows_the_schema(demo_project):
    out, _, project = demo_project
    raw = tomllib.loads(project.read_text(encoding="utf-8"))
    assert raw["project"]["synthetic"] is True
    assert raw["project"]["output_dir"] == "out"
    assert raw["project"]["grid"] == "demo_test_grid"
    assert raw["landcover"]["legend"] == "cnlucc"
    assert [e["year"] for e in raw["landcover"]["epochs"]] == [2015, 2023]
    assert raw["stock"]["density_table"] == "carbon_density_horqin"
    assert raw["regions"] == {"path": "counties.geojson", "id_field": "adcode",
                              "name_field": "name_zh"}
    assert raw["flux"]["climate"]["precipitation_mm"][6] == 120.0
    project_mod = pytest.importorskip("tanhui.project")
    parsed = project_mod.load_project(project)
    assert parsed.synthetic and parsed.legend == "cnlucc"
    assert [e.path.name for e in parsed.epochs] == ["landcover_2015.tif", "landcover_2023.tif"]
    assert len(parsed.flux.ndvi) == 12


def test_write_demo_inputs_refuses_bad_years(tmp_path):
    with pytest.raises(ValueError, match="increasing"):
        write_demo_inputs(tmp_path, FakeGrid(2000.0), years=(2023, 2015))


def test_write_with_the_real_tile_grid(tmp_path):
    grid_mod = pytest.importorskip("tanhui.grid")
    base = grid_mod.TileGrid.load("china_albers_250m")
    coarse = grid_mod.TileGrid(
        name="coarse_demo_test", crs=base.crs, res_x=4000.0, res_y=4000.0,
        origin_x=base.origin_x, origin_y=base.origin_y, tile_shape=grid_mod.Shape(32, 32),
        n_tile_rows=6, n_tile_cols=6)
    project = write_demo_inputs(tmp_path, coarse, years=(2015, 2023))
    assert 'grid = "coarse_demo_test"' in project.read_text(encoding="utf-8")
    tid = coarse.tiles_intersecting(world.tongliao_outline(), "EPSG:4326")[0]
    t = coarse.tile_transform(tid)
    with rasterio.open(tmp_path / "landcover_2015.tif") as src:
        row, col = rasterio.transform.rowcol(src.transform, t.c + 2000.0, t.f - 2000.0)
        data = src.read(1, window=rasterio.windows.Window(col, row, 32, 32))
    np.testing.assert_array_equal(data, landcover_window(t, (32, 32), coarse.crs, 2015))


@pytest.mark.slow
def test_full_250m_demo_matches_the_targets(tmp_path):
    grid_mod = pytest.importorskip("tanhui.grid")
    grid = grid_mod.TileGrid.load("china_albers_250m")
    write_demo_inputs(tmp_path, grid, years=(2015, 2023), ndvi_year=2023)
    geoms = [_to_albers(to_shape(f["geometry"]), ALBERS_CGCS2000.to_proj4()) for f in _counties()]
    with rasterio.open(tmp_path / "landcover_2015.tif") as src:
        lc = src.read(1)
        mask = rasterio.features.rasterize(geoms, out_shape=lc.shape, transform=src.transform) > 0
    codes = lc[mask]
    assert (codes != 0).all()
    assert 30 <= _share_pct(codes, CROP) <= 35 and 35 <= _share_pct(codes, GRASS) <= 40
    assert 10 <= _share_pct(codes, SAND) <= 15 and 6 <= _share_pct(codes, FOREST) <= 10
    with rasterio.open(tmp_path / "ndvi" / "ndvi_2023_08.tif") as src:
        august = src.read(1)[mask] * 0.0001
    assert 0.4 < august.mean() < 0.7
