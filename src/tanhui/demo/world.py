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
from statistics import NormalDist

import numba
import numpy as np
import pyproj

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
# 保康 (科左中旗), 库伦, 大沁他拉 (奈曼), 鲁北 (扎鲁特), 霍林郭勒. Approximate positions.
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
# Hand-placed from public maps; the real courses differ in detail.
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


CROP_THRESHOLD = 0.33  # on agri + noise; sets the cropland share (~32 %)
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
    lc[(sand > 0.25) & (n["shrub"] > _z(0.05))] = SHRUB  # Caragana / Salix on dunes
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
    afforest = np.isin(lc, (SAND, GRASS_LOW)) & (w["sand"] > 0.2) & (aff > _z(0.08 * progress))
    out[afforest] = np.where(kind[afforest] > 0.0, FOREST, SPARSE_WOOD)
    # sand fixation: mobile sand -> medium-cover grassland or shrub (Caragana)
    fixed = (lc == SAND) & ~afforest & (fix > _z(0.12 * progress))
    out[fixed] = np.where(kind[fixed] > 0.6, SHRUB, GRASS_MEDIUM)
    # reclamation at the edge of the farmland: grassland -> dry land
    edge = (ctx["crop_score"] > CROP_THRESHOLD - 0.25) & (ctx["crop_score"] <= CROP_THRESHOLD)
    reclaim = np.isin(lc, (GRASS_HIGH, GRASS_MEDIUM, GRASS_LOW)) & edge \
        & (exp > _z(0.15 * progress))
    out[reclaim] = DRYLAND
    return out


def landcover_lonlat(lon: np.ndarray, lat: np.ndarray, year: int, seed: int = 42) -> np.ndarray:
    """Synthetic CNLUCC land cover (uint8) at points ``lon``, ``lat`` (degrees, WGS84)."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    lc, ctx = _base_landcover(lon, lat, seed)
    lc = _apply_changes(lc, ctx, change_progress(year), seed)
    w, s, e, n = STUDY_BOUNDS_LONLAT
    lc[(lon < w) | (lon > e) | (lat < s) | (lat > n)] = NODATA
    return lc


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
    """
    lon, lat = pixel_lonlat(transform, shape, crs)
    return landcover_lonlat(lon, lat, year, seed)
