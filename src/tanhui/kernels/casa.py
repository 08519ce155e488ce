"""CASA light-use-efficiency NPP: FPAR, temperature stress, water stress and monthly NPP.

Formulas (science.md §1; Potter et al. 1993; the Chinese "improved CASA" of Zhu et al.
2006/2007), per pixel x and month t::

    NPP(x,t)  = SOL(x,t) * FPAR(x,t) * 0.5 * eps(x,t)            g C m-2 month-1
    eps(x,t)  = Te1(x,t) * Te2(x,t) * We(x,t) * eps_max(class)    g C MJ-1

Inputs are monthly stacks ``(12, ny, nx)`` (January first): NDVI (unitless, already scaled),
air temperature T (°C, monthly mean), precipitation P (mm month-1) and total shortwave
radiation SOL (MJ m-2 month-1); a class raster ``(ny, nx)`` of canonical class ids
(science.md §7.1, 0 = nodata) and per-class parameter vectors indexed by class id
(:class:`tanhui.casa_params.CasaParams`).

Nodata rules shared by every kernel here:

* NaN = nodata in every float array; outputs are float32.
* Topt and the Thornthwaite heat index need the whole year, so NaN in *any* month of a pixel
  makes *all* months of that pixel NaN (temperature stress, water stress, NPP). FPAR alone is
  computed month by month.
* Class 0, a class id outside the parameter vectors, or a class whose ``eps_max`` is NaN
  (no parameters) gives NaN.
* Non-vegetated classes (``vegetated[c]`` False: water, built-up, snow/ice) give NPP = 0 in
  every month, whatever the NDVI and climate inputs hold: NPP is not computed there
  (science.md §1.2, Appendix A).
* Vegetated pixels give NPP = 0, not NaN, in months where a stress term is 0 (Te1 = 0 at
  T <= -10 °C), so annual sums are defined (science.md §1.8).

Each quantity comes as a triple (style.md B2): ``_x_kernel(..., out)`` (Numba loop, writes
into ``out``), ``x_numba(...)`` (allocates, calls the kernel) and ``x_reference(...)``
(vectorised NumPy, same signature: the test oracle and the ``engine="numpy"`` path).

References
----------
Potter C.S. et al. (1993) Terrestrial ecosystem production: a process model based on global
satellite and surface data. Global Biogeochemical Cycles 7(4):811-841.
Zhu Wenquan, Pan Yaozhong, He Hao, Yu Deyong, Hu Haibo (2006) Chinese Science Bulletin
51(4):457-463. Pan Jinghu et al. (2017) 生态学报 37(6):1888-1899, doi 10.5846/stxb201511012207.
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, GridMismatchError, InputValueError, ParameterTableError

N_MONTHS = 12

# FPAR scaling (science.md §1.2) [V: Pan et al. 2017 Table 1; Li Shiyao et al. 2022]
FPAR_MIN = 0.001
FPAR_MAX = 0.95
FPAR_NDVI_WEIGHT = 0.5  # alpha: FPAR = alpha*FPAR_NDVI + (1 - alpha)*FPAR_SR [V Pan et al. 2017]

# PAR share of total shortwave (science.md §1.1) [V Pan et al. 2017; MOD17 uses 0.45]
PAR_FRACTION = 0.5

# Temperature stress (science.md §1.3) [V Potter 1993; remotepp calc_TSC1/calc_TSC2]
TE2_SCALE = 1.1814  # several Chinese papers print 1.184, a print variant
TE1_FROZEN_C = -10.0  # Te1 = 0 in months with T <= -10 °C
TE2_HALF_ABOVE_C = 10.0  # T - Topt > 10  -> Te2 = Te2(Topt) / 2 [V Pan 2017; Chi 2018]
TE2_HALF_BELOW_C = 13.0  # T - Topt < -13 -> Te2 = Te2(Topt) / 2

# Water stress bounds (science.md §1.4) [V 刘雪佳 et al.]
WE_MIN = 0.5
WE_MAX = 1.0

# Thornthwaite (1948) PET as used by Chinese CASA (science.md §1.4 W2) [V Hadian et al. 2019]
THORNTHWAITE_EXP_HEAT = 1.514
THORNTHWAITE_A_COEF = (0.675e-6, -77.1e-6, 17920e-6, 492390e-6)  # a = c3 I^3 + c2 I^2 + c1 I + c0
# Zhou & Zhang (1995) regional ET, Rn from E0 and P (science.md §1.4) [V Li Xiaodong et al.]
ZZ_RN_C0 = 0.369
ZZ_RN_C1 = 0.598

WaterStressMethod = Literal["zhou_zhang", "none"]
_WATER_STRESS_CODES: dict[str, int] = {"zhou_zhang": 1, "none": 0}
# Variants of science.md §1.4 that the dispatch reserves a name for but does not implement yet.
_WATER_STRESS_PLANNED: dict[str, str] = {
    "potter_bucket": "W1 Potter soil-moisture bucket (needs soil water holding capacity)",
    "zhou_zhang_rn": "W3 Zhou-Zhang with measured/estimated net radiation",
    "remote_sensing_et": "W4 remote-sensing ET/PET (MOD16)",
}


class ZhouZhangTerms(NamedTuple):
    """Intermediate terms of the W2 water stress (science.md §1.4), NumPy arrays.

    ``heat_index`` and ``exponent_a`` have the pixel shape; the others are monthly stacks.
    """

    heat_index: NDArray[np.float64]
    exponent_a: NDArray[np.float64]
    e0_mm: NDArray[np.float64]
    rn_mm: NDArray[np.float64]
    e_mm: NDArray[np.float64]
    ep_mm: NDArray[np.float64]
    w_eps: NDArray[np.float64]


# ---------------------------------------------------------------------------------------------
# Input checks and argument preparation (shared by the numba and reference paths)
# ---------------------------------------------------------------------------------------------


def water_stress_code(method: str) -> int:
    """Map a water-stress method name to its kernel code; raise ConfigError otherwise."""
    if method in _WATER_STRESS_CODES:
        return _WATER_STRESS_CODES[method]
    implemented = ", ".join(repr(m) for m in _WATER_STRESS_CODES)
    if method in _WATER_STRESS_PLANNED:
        raise ConfigError(
            f"water_stress = {method!r} ({_WATER_STRESS_PLANNED[method]}, science.md §1.4) is not "
            f"implemented yet; implemented methods: {implemented}. Use 'zhou_zhang' (default)."
        )
    raise ConfigError(
        f"water_stress = {method!r} is not a known method; expected one of {implemented} "
        f"(planned: {', '.join(repr(m) for m in _WATER_STRESS_PLANNED)}). Fix the spelling."
    )


def _monthly(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 3 or a.shape[0] != N_MONTHS:
        raise InputValueError(
            f"monthly input {name!r} has shape {a.shape}; expected (12, ny, nx) with January "
            "first. Stack the 12 monthly rasters along the first axis."
        )
    return np.ascontiguousarray(a, dtype=np.float32)


def _same_pixels(shape: tuple[int, ...], arr: np.ndarray, name: str, ref: str) -> None:
    if arr.shape[-2:] != tuple(shape[-2:]):
        raise GridMismatchError(
            f"input {name!r} covers {arr.shape[-2:]} pixels but {ref!r} covers "
            f"{tuple(shape[-2:])}; read all inputs on the same grid tile."
        )


def _classes(classes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    c = np.asarray(classes)
    if c.ndim != 2 or not np.issubdtype(c.dtype, np.integer):
        raise InputValueError(
            f"class raster has shape {c.shape} and dtype {c.dtype}; expected a 2-D integer "
            "raster of canonical class ids (science.md §7.1, 0 = nodata). Map the land cover "
            "through its legend first."
        )
    _same_pixels(shape, c, "classes", "ndvi")
    return np.ascontiguousarray(c)


def _class_vectors(**vectors: np.ndarray) -> dict[str, np.ndarray]:
    out = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in vectors.items()}
    lengths = {k: v.shape for k, v in out.items()}
    if len({v for v in lengths.values()}) != 1 or any(len(s) != 1 for s in lengths.values()):
        raise ParameterTableError(
            f"per-class parameter vectors must be 1-D and of equal length (indexed by class id); "
            f"found shapes {lengths}. Build them with tanhui.casa_params.CasaParams.load()."
        )
    return out


def _vegetated(vegetated: np.ndarray, n_classes: int) -> np.ndarray:
    v = np.ascontiguousarray(vegetated, dtype=np.bool_)
    if v.shape != (n_classes,):
        raise ParameterTableError(
            f"'vegetated' flag vector has shape {v.shape}; expected ({n_classes},) like the other "
            "per-class vectors. Build them with tanhui.casa_params.CasaParams.load()."
        )
    return v


_NO_PX = np.full((1, 1), np.nan, dtype=np.float32)  # placeholder when no per-pixel bound given
_NO_MONTH = np.zeros((1, 1), dtype=np.int8)


def _pixel_bound(
    arr: np.ndarray | None, shape: tuple[int, ...], name: str
) -> tuple[np.ndarray, bool]:
    if arr is None:
        return _NO_PX, False
    a = np.asarray(arr)
    if a.ndim != 2:
        raise InputValueError(f"{name!r} has shape {a.shape}; expected a (ny, nx) NDVI raster.")
    _same_pixels(shape, a, name, "ndvi")
    return np.ascontiguousarray(a, dtype=np.float32), True


def _topt_months(
    topt_month: int | np.ndarray | None, shape: tuple[int, ...]
) -> tuple[np.ndarray, bool]:
    """Check ``topt_month``: None, a month 1..12, or a (ny, nx) raster of 0..12 (0 = own NDVI)."""
    if topt_month is None:
        return _NO_MONTH, False
    a = np.asarray(topt_month)
    scalar_ok = a.ndim != 0 or 1 <= a <= N_MONTHS
    if not np.issubdtype(a.dtype, np.integer) or not scalar_ok or (
            a.size and (a.min() < 0 or a.max() > N_MONTHS)):
        found = f"{a.min()}..{a.max()}" if a.size else "empty"
        raise InputValueError(
            f"topt_month holds {found} ({a.dtype}); expected integer months 1..12 (0 = use the "
            "month of maximum NDVI for that pixel). Use regional_topt_month() for a region."
        )
    if a.ndim == 0:
        a = np.full(shape[-2:], int(a), dtype=np.int8)
    _same_pixels(shape, a, "topt_month", "ndvi")
    return np.ascontiguousarray(a, dtype=np.int8), True


def _check_par_fraction(par_fraction: float) -> float:
    if not 0.0 < par_fraction <= 1.0:
        raise ConfigError(
            f"par_fraction = {par_fraction}; expected the PAR share of shortwave in (0, 1] "
            "(CASA default 0.5, MOD17 0.45)."
        )
    return float(par_fraction)


def check_climate_ranges(
    t: np.ndarray | None,
    p: np.ndarray | None,
    sol: np.ndarray | None,
    source_name: str,
) -> None:
    """Raise if monthly climate inputs are outside their physical ranges.

    NaN values are ignored (they are nodata). Limits: temperature -60…60 °C (monthly mean),
    precipitation >= 0 mm month-1, radiation 0…1000 MJ m-2 month-1 (the Horqin peak month is
    600-750, science.md §10.2). Pass None to skip a variable.

    Parameters
    ----------
    t, p, sol : array or None
        Temperature (°C), precipitation (mm month-1), total radiation (MJ m-2 month-1).
    source_name : str
        Name of the input (file or project key) used in the message.

    Raises
    ------
    tanhui.errors.InputValueError
        Naming the input, the range found, the range expected and the likely unit fix.
    """
    checks = (
        (t, "temperature", "°C", -60.0, 60.0,
         "expected monthly mean air temperature in °C; if the source is in kelvin subtract "
         "273.15, if it is stored in 0.1 °C (CMA station files) multiply by 0.1"),
        (p, "precipitation", "mm month-1", 0.0, np.inf,
         "expected monthly totals in mm >= 0; negative values are usually an unmasked fill value "
         "(e.g. -9999 or -32768): set the raster's nodata or mask them to NaN"),
        (sol, "radiation", "MJ m-2 month-1", 0.0, 1000.0,
         "expected monthly totals in MJ m-2 month-1; convert a daily-mean flux in W m-2 with "
         "x 0.0864 x days in month, divide kJ m-2 by 1000, or check for unmasked fill values"),
    )
    for arr, label, units, lo, hi, fix in checks:
        if arr is None:
            continue
        a = np.asarray(arr, dtype=np.float64)
        vals = a[~np.isnan(a)]  # NaN is nodata; +-inf counts as out of range
        bad = vals[(vals < lo) | (vals > hi) | np.isinf(vals)]
        if bad.size:
            rng = f"{lo:g}…{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
            raise InputValueError(
                f"climate input {source_name!r}, {label}: {bad.size} value(s) outside {rng} "
                f"{units} (found min {vals.min():.4g}, max {vals.max():.4g}); {fix}."
            )


# ---------------------------------------------------------------------------------------------
# Scalar building blocks (Numba, inlined into the loop kernels)
# ---------------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _clamp(v, lo, hi):
    # NaN-preserving: comparisons with NaN are False, so NaN passes through
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@numba.njit(nogil=True, cache=True)
def _fpar_scalar(ndvi, nmin, nmax, smin, smax):
    if ndvi <= 0.0:
        return FPAR_MIN
    span = FPAR_MAX - FPAR_MIN
    f_ndvi = _clamp((ndvi - nmin) / (nmax - nmin) * span + FPAR_MIN, FPAR_MIN, FPAR_MAX)
    if ndvi >= 1.0:  # SR -> infinity
        f_sr = FPAR_MAX
    else:
        sr = (1.0 + ndvi) / (1.0 - ndvi)
        f_sr = _clamp((sr - smin) / (smax - smin) * span + FPAR_MIN, FPAR_MIN, FPAR_MAX)
    return FPAR_NDVI_WEIGHT * f_ndvi + (1.0 - FPAR_NDVI_WEIGHT) * f_sr


@numba.njit(nogil=True, cache=True)
def _usable_bound(v):
    return np.isfinite(v) and -1.0 < v < 1.0


@numba.njit(nogil=True, cache=True)
def _pixel_bounds(c, i, j, ndvi_min, ndvi_max, sr_min, sr_max, min_px, max_px, has_min, has_max):
    # class bounds, optionally overridden per pixel (SR from the SR formula); a degenerate
    # per-pixel pair (max <= min) falls back to the class pair
    nmin = ndvi_min[c]
    nmax = ndvi_max[c]
    smin = sr_min[c]
    smax = sr_max[c]
    qmin, rmin, qmax, rmax = nmin, smin, nmax, smax
    if has_min:
        v = np.float64(min_px[i, j])
        if _usable_bound(v):
            qmin = v
            rmin = (1.0 + v) / (1.0 - v)
    if has_max:
        v = np.float64(max_px[i, j])
        if _usable_bound(v):
            qmax = v
            rmax = (1.0 + v) / (1.0 - v)
    if qmax > qmin:
        return qmin, qmax, rmin, rmax
    return nmin, nmax, smin, smax


@numba.njit(nogil=True, cache=True)
def _bounds_ok(nmin, nmax, smin, smax):
    return (np.isfinite(nmin) and np.isfinite(nmax) and np.isfinite(smin)
            and np.isfinite(smax) and nmax > nmin and smax > smin)


@numba.njit(nogil=True, cache=True)
def _te1_scalar(topt):
    # clipped at 0: the parabola turns negative for Topt < -24.7 °C (tanhui guard)
    v = 0.8 + 0.02 * topt - 0.0005 * topt * topt
    return v if v > 0.0 else 0.0


@numba.njit(nogil=True, cache=True)
def _te2_raw_scalar(t, topt):
    return (TE2_SCALE / (1.0 + np.exp(0.2 * (topt - 10.0 - t)))
            / (1.0 + np.exp(0.3 * (-topt - 10.0 + t))))


@numba.njit(nogil=True, cache=True)
def _te2_scalar(t, topt):
    d = t - topt
    if d > TE2_HALF_ABOVE_C or d < -TE2_HALF_BELOW_C:
        return 0.5 * _te2_raw_scalar(topt, topt)
    return _te2_raw_scalar(t, topt)


@numba.njit(nogil=True, cache=True)
def _pixel_has_nan(a, i, j):
    for k in range(a.shape[0]):
        if np.isnan(a[k, i, j]):
            return True
    return False


@numba.njit(nogil=True, cache=True)
def _topt_pixel(ndvi, t, i, j, topt_month, has_month):
    if has_month:
        m = topt_month[i, j]
        if m > 0:
            return np.float64(t[m - 1, i, j])
    best = 0
    for k in range(1, ndvi.shape[0]):
        if ndvi[k, i, j] > ndvi[best, i, j]:  # strict: ties keep the first month
            best = k
    return np.float64(t[best, i, j])


@numba.njit(nogil=True, cache=True)
def _heat_index(t, i, j):
    s = 0.0
    for k in range(t.shape[0]):
        tk = np.float64(t[k, i, j])
        if tk > 0.0:
            s += (tk / 5.0) ** THORNTHWAITE_EXP_HEAT
    return s


@numba.njit(nogil=True, cache=True)
def _thornthwaite_a(heat):
    c3, c2, c1, c0 = THORNTHWAITE_A_COEF
    return ((c3 * heat + c2) * heat + c1) * heat + c0


@numba.njit(nogil=True, cache=True)
def _we_zhou_zhang(tk, pk, heat, a):
    if tk <= 0.0 or heat <= 0.0:
        return WE_MIN  # E0 = 0 -> Ep = 0: set to the extreme-drought floor (documented choice)
    e0 = 16.0 * (10.0 * tk / heat) ** a
    if pk <= 0.0:
        return WE_MIN  # E = 0, Ep = E0/2 > 0 -> 0.5 exactly
    rn = np.sqrt(e0 * pk) * (ZZ_RN_C0 + ZZ_RN_C1 * np.sqrt(e0 / pk))
    p2 = pk * pk
    r2 = rn * rn
    e = pk * rn * (p2 + r2 + pk * rn) / ((pk + rn) * (p2 + r2))
    ep = 0.5 * (e + e0)
    return _clamp(0.5 + 0.5 * e / ep, WE_MIN, WE_MAX)


@numba.njit(nogil=True, cache=True)
def _fill_pixel(out, i, j, value):
    for k in range(out.shape[0]):
        out[k, i, j] = value


# ---------------------------------------------------------------------------------------------
# FPAR (science.md §1.2)
# ---------------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _fpar_kernel(ndvi, classes, ndvi_min, ndvi_max, sr_min, sr_max,
                 min_px, max_px, has_min, has_max, out):
    nt, ny, nx = ndvi.shape
    n_classes = ndvi_min.shape[0]
    for i in range(ny):
        for j in range(nx):
            c = classes[i, j]
            if c <= 0 or c >= n_classes:
                _fill_pixel(out, i, j, np.nan)
                continue
            nmin, nmax, smin, smax = _pixel_bounds(c, i, j, ndvi_min, ndvi_max, sr_min, sr_max,
                                                   min_px, max_px, has_min, has_max)
            if not _bounds_ok(nmin, nmax, smin, smax):
                _fill_pixel(out, i, j, np.nan)
                continue
            for k in range(nt):
                out[k, i, j] = _fpar_scalar(np.float64(ndvi[k, i, j]), nmin, nmax, smin, smax)


def _fpar_args(ndvi, classes, ndvi_min, ndvi_max, sr_min, sr_max, ndvi_min_px, ndvi_max_px):
    nd = np.asarray(ndvi)
    if nd.ndim != 3:
        raise InputValueError(
            f"NDVI has shape {nd.shape}; expected a (n_months, ny, nx) stack."
        )
    nd = np.ascontiguousarray(nd, dtype=np.float32)
    cls = _classes(classes, nd.shape)
    vec = _class_vectors(ndvi_min=ndvi_min, ndvi_max=ndvi_max, sr_min=sr_min, sr_max=sr_max)
    min_px, has_min = _pixel_bound(ndvi_min_px, nd.shape, "ndvi_min_px")
    max_px, has_max = _pixel_bound(ndvi_max_px, nd.shape, "ndvi_max_px")
    return nd, cls, vec, min_px, has_min, max_px, has_max


def fpar_numba(
    ndvi: np.ndarray,
    classes: np.ndarray,
    ndvi_min: np.ndarray,
    ndvi_max: np.ndarray,
    sr_min: np.ndarray,
    sr_max: np.ndarray,
    ndvi_min_px: np.ndarray | None = None,
    ndvi_max_px: np.ndarray | None = None,
) -> NDArray[np.float32]:
    """Fraction of absorbed PAR from NDVI and SR, averaged (Numba kernel).

    ::

        SR        = (1 + NDVI) / (1 - NDVI)
        FPAR_NDVI = (NDVI - NDVI_min) / (NDVI_max - NDVI_min) * (FPAR_max - FPAR_min) + FPAR_min
        FPAR_SR   = (SR - SR_min) / (SR_max - SR_min) * (FPAR_max - FPAR_min) + FPAR_min
        FPAR      = 0.5 * FPAR_NDVI + 0.5 * FPAR_SR

    Each of FPAR_NDVI and FPAR_SR is clamped to [FPAR_min, FPAR_max] = [0.001, 0.95] before
    averaging; NDVI <= 0 (water, snow, bare soil) gives FPAR_min; NDVI >= 1 gives FPAR_SR =
    FPAR_max.

    Parameters
    ----------
    ndvi : (n_months, ny, nx) float
        NDVI, unitless, already scaled; NaN = nodata.
    classes : (ny, nx) int
        Canonical class ids (0 = nodata).
    ndvi_min, ndvi_max, sr_min, sr_max : (n_classes,) float
        Per-class NDVI bounds (5th/95th percentiles) and SR bounds, indexed by class id.
    ndvi_min_px, ndvi_max_px : (ny, nx) float, optional
        Per-pixel NDVI bounds (e.g. the BESS climatology) overriding the class bounds where
        they are finite and in (-1, 1); SR bounds then follow from the SR formula. Where the
        overridden pair is degenerate (max <= min) the class pair is used.

    Returns
    -------
    (n_months, ny, nx) float32
        FPAR, unitless in [0.001, 0.95]; NaN for NaN NDVI (month by month), class 0, ids
        outside the vectors and classes without finite, increasing bounds.

    References
    ----------
    Potter et al. (1993); Pan Jinghu et al. (2017) 生态学报 37(6), Table 1; bounds of Zhu
    Wenquan as reproduced by Zhang Jingjing et al. (2021) ChinaXiv 202106.00083 (science.md §1.2).
    """
    nd, cls, vec, min_px, has_min, max_px, has_max = _fpar_args(
        ndvi, classes, ndvi_min, ndvi_max, sr_min, sr_max, ndvi_min_px, ndvi_max_px)
    out = np.empty(nd.shape, dtype=np.float32)
    _fpar_kernel(nd, cls, vec["ndvi_min"], vec["ndvi_max"], vec["sr_min"], vec["sr_max"],
                 min_px, max_px, has_min, has_max, out)
    return out


def simple_ratio(ndvi: np.ndarray) -> NDArray[np.float64]:
    """Simple ratio SR = (1 + NDVI) / (1 - NDVI) (unitless; +inf at NDVI = 1)."""
    nd = np.asarray(ndvi, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1.0 + nd) / (1.0 - nd)


def _effective_bounds_reference(classes, vec, ndvi_min_px, ndvi_max_px):
    """Per-pixel (nmin, nmax, smin, smax, valid_class, bounds_ok) in NumPy."""
    c = np.asarray(classes).astype(np.int64)
    n = vec["ndvi_min"].shape[0]
    valid = (c > 0) & (c < n)
    safe = np.where(valid, c, 0)
    nmin, nmax = vec["ndvi_min"][safe], vec["ndvi_max"][safe]
    smin, smax = vec["sr_min"][safe], vec["sr_max"][safe]
    qmin, rmin, qmax, rmax = nmin, smin, nmax, smax
    for px, is_min in ((ndvi_min_px, True), (ndvi_max_px, False)):
        if px is None:
            continue
        v = np.asarray(px, dtype=np.float32).astype(np.float64)
        with np.errstate(invalid="ignore"):
            use = np.isfinite(v) & (v > -1.0) & (v < 1.0)
        sr = simple_ratio(np.where(use, v, 0.0))
        if is_min:
            qmin, rmin = np.where(use, v, qmin), np.where(use, sr, rmin)
        else:
            qmax, rmax = np.where(use, v, qmax), np.where(use, sr, rmax)
    with np.errstate(invalid="ignore"):
        take = qmax > qmin
        nmin, nmax = np.where(take, qmin, nmin), np.where(take, qmax, nmax)
        smin, smax = np.where(take, rmin, smin), np.where(take, rmax, smax)
        ok = (np.isfinite(nmin) & np.isfinite(nmax) & np.isfinite(smin) & np.isfinite(smax)
              & (nmax > nmin) & (smax > smin))
    return nmin, nmax, smin, smax, valid, ok


def fpar_components_reference(
    ndvi: np.ndarray | float,
    ndvi_min: np.ndarray | float,
    ndvi_max: np.ndarray | float,
    sr_min: np.ndarray | float,
    sr_max: np.ndarray | float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """FPAR_NDVI and FPAR_SR (each clamped to [0.001, 0.95]) for given bounds, NumPy float64.

    All arguments broadcast; no NDVI <= 0 rule (see :func:`fpar_numba` for the full FPAR).
    Example (science.md §1.7, grassland, NDVI 0.55): 0.820 and 0.667.
    """
    nd = np.asarray(ndvi, dtype=np.float64)
    span = FPAR_MAX - FPAR_MIN
    with np.errstate(divide="ignore", invalid="ignore"):
        f_ndvi = np.clip((nd - ndvi_min) / (np.subtract(ndvi_max, ndvi_min)) * span + FPAR_MIN,
                         FPAR_MIN, FPAR_MAX)
        f_sr = np.clip((simple_ratio(nd) - sr_min) / np.subtract(sr_max, sr_min) * span
                       + FPAR_MIN, FPAR_MIN, FPAR_MAX)
        f_sr = np.where(nd >= 1.0, FPAR_MAX, f_sr)  # SR -> infinity
    return f_ndvi, f_sr


def _fpar_from_bounds(ndvi, nmin, nmax, smin, smax):
    """Element-wise FPAR in NumPy (broadcasting), float64."""
    nd = np.asarray(ndvi, dtype=np.float64)
    f_ndvi, f_sr = fpar_components_reference(nd, nmin, nmax, smin, smax)
    f = FPAR_NDVI_WEIGHT * f_ndvi + (1.0 - FPAR_NDVI_WEIGHT) * f_sr
    with np.errstate(invalid="ignore"):
        return np.where(nd <= 0.0, FPAR_MIN, f)  # NaN NDVI stays NaN (NaN <= 0 is False)


def fpar_reference(
    ndvi: np.ndarray,
    classes: np.ndarray,
    ndvi_min: np.ndarray,
    ndvi_max: np.ndarray,
    sr_min: np.ndarray,
    sr_max: np.ndarray,
    ndvi_min_px: np.ndarray | None = None,
    ndvi_max_px: np.ndarray | None = None,
) -> NDArray[np.float32]:
    """Plain-NumPy reference of :func:`fpar_numba` (the test oracle and ``engine="numpy"``)."""
    nd, cls, vec, *_ = _fpar_args(ndvi, classes, ndvi_min, ndvi_max, sr_min, sr_max,
                                  ndvi_min_px, ndvi_max_px)
    nmin, nmax, smin, smax, valid, ok = _effective_bounds_reference(
        cls, vec, ndvi_min_px, ndvi_max_px)
    f = _fpar_from_bounds(nd, nmin, nmax, smin, smax)
    return np.where((valid & ok)[None], f, np.nan).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Temperature stress (science.md §1.3)
# ---------------------------------------------------------------------------------------------


def t_epsilon1(
    topt_c: np.ndarray | float, t_c: np.ndarray | float | None = None
) -> NDArray[np.float64]:
    """Te1 = 0.8 + 0.02·Topt − 0.0005·Topt², and 0 in months with T <= −10 °C.

    Parameters
    ----------
    topt_c : array or float
        Optimum temperature Topt, °C (mean T of the month of maximum NDVI).
    t_c : array or float, optional
        Monthly mean temperature, °C; where T <= -10 °C the result is 0 (Potter 1993;
        ``remotepp::calc_TSC1``). Omit to get the month-independent value.

    Returns
    -------
    ndarray of float64
        Te1, unitless; clipped at 0 (the parabola is negative for Topt < -24.7 °C, a tanhui
        guard). Te1(20) = 1.000, Te1(24) = 0.992.

    References
    ----------
    Potter et al. (1993); Pan Jinghu et al. (2017) Table 1 (science.md §1.3).
    """
    topt = np.asarray(topt_c, dtype=np.float64)
    te1 = np.maximum(0.8 + 0.02 * topt - 0.0005 * topt**2, 0.0)
    if t_c is None:
        return te1
    t = np.asarray(t_c, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        te1 = np.where(t <= TE1_FROZEN_C, 0.0, te1)
    return np.where(np.isnan(t), np.nan, te1)


def t_epsilon2(
    t_c: np.ndarray | float, topt_c: np.ndarray | float, half_rule: bool = True
) -> NDArray[np.float64]:
    """Te2 = 1.1814 / (1 + exp[0.2(Topt − 10 − T)]) / (1 + exp[0.3(−Topt − 10 + T)]).

    With ``half_rule`` (default, the published rule): where T − Topt > 10 °C or
    T − Topt < −13 °C, Te2 = ½·Te2(T = Topt) = 0.4956. The boundaries are exclusive (the
    papers do not say); note the jump at −13 °C (raw 0.4182 → 0.4956), which is the rule.

    Parameters
    ----------
    t_c : array or float
        Monthly mean air temperature, °C.
    topt_c : array or float
        Optimum temperature, °C.
    half_rule : bool
        Apply the ½·Te2(Topt) rule outside [Topt − 13, Topt + 10].

    Returns
    -------
    ndarray of float64
        Te2, unitless. Te2(Topt) = 0.9912 for any Topt.

    References
    ----------
    Potter et al. (1993); ``valentingar/remotepp::calc_TSC2``; Pan et al. (2017); Chi Yuan et
    al. (2018) 生态学报, doi 10.5846/stxb201705301000 (science.md §1.3).

    Examples
    --------
    >>> [round(float(t_epsilon2(t, 20.0)), 4) for t in (20.0, 7.0, 6.9)]
    [0.9912, 0.4182, 0.4956]
    """
    t = np.asarray(t_c, dtype=np.float64)
    topt = np.asarray(topt_c, dtype=np.float64)

    def raw(tt):
        return (TE2_SCALE / (1.0 + np.exp(0.2 * (topt - 10.0 - tt)))
                / (1.0 + np.exp(0.3 * (-topt - 10.0 + tt))))

    te2 = raw(t)
    if not half_rule:
        return te2
    d = t - topt
    with np.errstate(invalid="ignore"):
        outside = (d > TE2_HALF_ABOVE_C) | (d < -TE2_HALF_BELOW_C)
    return np.where(outside, 0.5 * raw(topt), te2)


def regional_topt_month(ndvi: np.ndarray) -> int:
    """Month (1..12) of maximum regional-mean NDVI, for the per-region Topt option.

    Chinese CASA papers sometimes fix Topt to the temperature of the month in which the
    *regional mean* NDVI peaks (e.g. August in the Yellow River delta, Chi et al. 2018).
    Pass the whole region's NDVI here (not one tile), then give the result as
    ``topt_month`` to the CASA functions. Ties: the first month.
    """
    nd = _monthly(ndvi, "ndvi")
    with np.errstate(invalid="ignore"):
        means = np.array([np.nanmean(m) if np.isfinite(m).any() else -np.inf for m in nd])
    return int(np.argmax(means)) + 1


@numba.njit(nogil=True, cache=True)
def _temperature_stress_kernel(ndvi, t, topt_month, has_month, out):
    # out: (2, 12, ny, nx) = Te1, Te2
    nt, ny, nx = t.shape
    for i in range(ny):
        for j in range(nx):
            if _pixel_has_nan(ndvi, i, j) or _pixel_has_nan(t, i, j):
                for k in range(nt):
                    out[0, k, i, j] = np.nan
                    out[1, k, i, j] = np.nan
                continue
            topt = _topt_pixel(ndvi, t, i, j, topt_month, has_month)
            te1 = _te1_scalar(topt)
            for k in range(nt):
                tk = np.float64(t[k, i, j])
                out[0, k, i, j] = te1 if tk > TE1_FROZEN_C else 0.0
                out[1, k, i, j] = _te2_scalar(tk, topt)


def _temperature_args(ndvi, t, topt_month):
    nd = _monthly(ndvi, "ndvi")
    tt = _monthly(t, "t")
    _same_pixels(nd.shape, tt, "t", "ndvi")
    months, has_month = _topt_months(topt_month, nd.shape)
    return nd, tt, months, has_month


def temperature_stress_numba(
    ndvi: np.ndarray, t: np.ndarray, topt_month: int | np.ndarray | None = None
) -> NDArray[np.float32]:
    """Temperature stress Te1 and Te2 per pixel and month (Numba kernel).

    Topt(x) = T(x) of the month of maximum NDVI at pixel x (ties: first month), or of the
    month given by ``topt_month``. Te1 and Te2 as in :func:`t_epsilon1` and
    :func:`t_epsilon2` (with the ½ rule).

    Parameters
    ----------
    ndvi, t : (12, ny, nx) float
        Monthly NDVI (unitless) and mean air temperature (°C), January first.
    topt_month : int or (ny, nx) int array, optional
        Fix Topt to the temperature of this month (1..12) — the per-region option, see
        :func:`regional_topt_month`; in a raster, 0 means "per pixel from NDVI".

    Returns
    -------
    (2, 12, ny, nx) float32
        Te1 and Te2, unitless; NaN for all months of a pixel with NaN in any month.

    References
    ----------
    Potter et al. (1993); Pan et al. (2017); Chi et al. (2018) (science.md §1.3).
    """
    nd, tt, months, has_month = _temperature_args(ndvi, t, topt_month)
    out = np.empty((2,) + tt.shape, dtype=np.float32)
    _temperature_stress_kernel(nd, tt, months, has_month, out)
    return out


def _topt_reference(nd, tt, months, has_month):
    # argmax returns the first maximum; NaN pixels are masked by the callers
    idx = np.argmax(np.where(np.isnan(nd), -np.inf, nd), axis=0)
    if has_month:
        idx = np.where(months > 0, months.astype(np.int64) - 1, idx)
    return np.take_along_axis(tt.astype(np.float64), idx[None], axis=0)[0]


def _pixel_nan_reference(*stacks):
    bad = np.zeros(stacks[0].shape[1:], dtype=bool)
    for s in stacks:
        bad |= np.isnan(s).any(axis=0)
    return bad


def temperature_stress_reference(
    ndvi: np.ndarray, t: np.ndarray, topt_month: int | np.ndarray | None = None
) -> NDArray[np.float32]:
    """Plain-NumPy reference of :func:`temperature_stress_numba`."""
    nd, tt, months, has_month = _temperature_args(ndvi, t, topt_month)
    topt = _topt_reference(nd, tt, months, has_month)
    t64 = tt.astype(np.float64)
    te1 = t_epsilon1(topt[None], t64)
    te2 = t_epsilon2(t64, topt[None])
    bad = _pixel_nan_reference(nd, tt)[None]
    out = np.stack([np.where(bad, np.nan, te1), np.where(bad, np.nan, te2)])
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Water stress (science.md §1.4)
# ---------------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _water_stress_kernel(t, p, method_code, out):
    nt, ny, nx = t.shape
    for i in range(ny):
        for j in range(nx):
            if _pixel_has_nan(t, i, j) or _pixel_has_nan(p, i, j):
                _fill_pixel(out, i, j, np.nan)
                continue
            if method_code == 0:
                _fill_pixel(out, i, j, WE_MAX)
                continue
            heat = _heat_index(t, i, j)
            a = _thornthwaite_a(heat)
            for k in range(nt):
                out[k, i, j] = _we_zhou_zhang(np.float64(t[k, i, j]), np.float64(p[k, i, j]),
                                              heat, a)


def _water_args(t, p, method):
    code = water_stress_code(method)
    tt = _monthly(t, "t")
    pp = _monthly(p, "p")
    _same_pixels(tt.shape, pp, "p", "t")
    return tt, pp, code


def water_stress_numba(
    t: np.ndarray, p: np.ndarray, method: WaterStressMethod = "zhou_zhang"
) -> NDArray[np.float32]:
    """Water stress coefficient Wε per pixel and month (Numba kernel).

    Method ``"zhou_zhang"`` (W2, the Chinese CASA default; needs only monthly T and P)::

        I   = sum_{T_i > 0} (T_i / 5)^1.514                               heat index
        a   = (0.675 I^3 - 77.1 I^2 + 17920 I + 492390) * 1e-6
        E0  = 16 (10 T / I)^a  for T > 0, else 0        mm month-1  (Thornthwaite PET)
        Rn  = sqrt(E0 P) [0.369 + 0.598 sqrt(E0 / P)]   mm month-1
        E   = P Rn (P^2 + Rn^2 + P Rn) / [(P + Rn)(P^2 + Rn^2)]   mm month-1 (Zhou & Zhang)
        Ep  = (E + E0) / 2                              mm month-1 (Bouchet)
        We  = 0.5 + 0.5 E / Ep,  clamped to [0.5, 1]

    Edge cases (documented choices): P = 0 gives E = 0 and We = 0.5 (as the formula's
    limit when Ep > 0); E0 = 0 (T <= 0, or no month above 0 °C) gives Ep = 0, and tanhui
    sets We = 0.5 (the extreme-drought floor) rather than NaN — NPP in those months is ~0
    anyway through FPAR and Te1. The Thornthwaite day-length/month-length correction is
    omitted, as in the Chinese CASA form. The clamp at 1 matters only when P exceeds about
    1.2·E0 (then E > E0).

    Method ``"none"`` (W5): We = 1 (sensitivity runs only).

    Parameters
    ----------
    t, p : (12, ny, nx) float
        Monthly mean air temperature (°C) and precipitation (mm month-1), January first.
    method : {"zhou_zhang", "none"}
        Water-stress variant; W1/W3/W4 raise :class:`tanhui.errors.ConfigError`.

    Returns
    -------
    (12, ny, nx) float32
        We, unitless in [0.5, 1]; NaN for all months of a pixel with NaN in any month.

    References
    ----------
    Zhou Guangsheng & Zhang Xinshi (1995) 植物生态学报 19(3):193-200; Thornthwaite (1948);
    Hadian et al. (2019) J. Arid Land (ChinaXiv 201909.00014); Zhu Wenquan et al. (2007)
    (science.md §1.4).
    """
    tt, pp, code = _water_args(t, p, method)
    out = np.empty(tt.shape, dtype=np.float32)
    _water_stress_kernel(tt, pp, code, out)
    return out


def zhou_zhang_terms(t: np.ndarray, p: np.ndarray) -> ZhouZhangTerms:
    """All intermediate terms of the W2 water stress in NumPy (float64, no NaN masking).

    Same formulas and edge cases as :func:`water_stress_numba`. Accepts any ``(12, ...)``
    shape (e.g. a single 12-month vector). Where E0 = 0 the terms Rn, E and Ep are 0.
    """
    tt = np.asarray(t, dtype=np.float32).astype(np.float64)
    pp = np.asarray(p, dtype=np.float32).astype(np.float64)
    c3, c2, c1, c0 = THORNTHWAITE_A_COEF
    with np.errstate(divide="ignore", invalid="ignore"):
        heat = np.where(tt > 0.0, (np.maximum(tt, 0.0) / 5.0) ** THORNTHWAITE_EXP_HEAT, 0.0)
        heat = heat.sum(axis=0)
        a = ((c3 * heat + c2) * heat + c1) * heat + c0
        warm = (tt > 0.0) & (heat > 0.0)
        e0 = np.where(warm, 16.0 * (10.0 * np.maximum(tt, 0.0) / heat) ** a, 0.0)
        wet = warm & (pp > 0.0)
        rn = np.where(wet, np.sqrt(e0 * pp) * (ZZ_RN_C0 + ZZ_RN_C1 * np.sqrt(e0 / pp)),
                      np.where(warm, ZZ_RN_C1 * e0, 0.0))  # P -> 0 limit of Rn
        e = np.where(wet, pp * rn * (pp**2 + rn**2 + pp * rn) / ((pp + rn) * (pp**2 + rn**2)), 0.0)
        ep = 0.5 * (e + e0)
        w = np.where(warm, np.clip(0.5 + 0.5 * e / ep, WE_MIN, WE_MAX), WE_MIN)
        w = np.where(np.isnan(tt) | np.isnan(pp), np.nan, w)
    return ZhouZhangTerms(heat, a, e0, rn, e, ep, w)


def water_stress_reference(
    t: np.ndarray, p: np.ndarray, method: WaterStressMethod = "zhou_zhang"
) -> NDArray[np.float32]:
    """Plain-NumPy reference of :func:`water_stress_numba`."""
    tt, pp, code = _water_args(t, p, method)
    bad = _pixel_nan_reference(tt, pp)[None]
    w = np.ones(tt.shape) if code == 0 else zhou_zhang_terms(tt, pp).w_eps
    return np.where(bad, np.nan, w).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# NPP (science.md §1.1)
# ---------------------------------------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _casa_npp_kernel(ndvi, t, p, sol, classes, eps_max, ndvi_min, ndvi_max, sr_min, sr_max,
                     vegetated, min_px, max_px, has_min, has_max, topt_month, has_month,
                     par_fraction, water_code, uniform, we_month, out):
    # Row by row, months in the middle loop and pixels innermost, so that every array is read
    # along contiguous memory (a pixel's 12 months lie ny*nx values apart). Per-pixel terms
    # (class checks, NaN in any month, Topt, heat index) go into row buffers first.
    # ``uniform``: T and P are the same on every pixel; Te1, Te2 and We then come from
    # tables computed with the same scalar functions (identical numbers).
    nt, ny, nx = ndvi.shape
    n_classes = eps_max.shape[0]
    state = np.empty(nx, np.int8)  # 0: NaN out, 1: 0 out (not vegetated), 2: compute
    best = np.empty(nx, np.int64)  # month index of Topt
    best_ndvi = np.empty(nx, np.float32)
    heat = np.zeros(nx)
    bnd = np.empty((4, nx))
    te1 = np.empty(nx)
    topt = np.empty(nx)
    te2_half = np.empty(nx)  # the ½·Te2(Topt) of months outside [Topt - 13, Topt + 10]
    a_exp = np.empty(nx)
    scale = np.empty(nx)
    te1_tab = np.empty(nt)
    te2_tab = np.empty((nt, nt))
    if uniform:
        for b in range(nt):
            tb = np.float64(t[b, 0, 0])
            te1_tab[b] = _te1_scalar(tb)
            for k in range(nt):
                te2_tab[b, k] = _te2_scalar(np.float64(t[k, 0, 0]), tb)
    for i in range(ny):
        for j in range(nx):
            c = classes[i, j]
            if c <= 0 or c >= n_classes or np.isnan(eps_max[c]):
                state[j] = 0  # nodata or class without parameters
            elif not vegetated[c]:
                state[j] = 1  # water, built-up, snow: NPP not computed
            else:
                state[j] = 2
            heat[j] = 0.0
            best[j] = 0
        for k in range(nt):
            for j in range(nx):
                if state[j] != 2:
                    continue
                nd = ndvi[k, i, j]
                tk = t[k, i, j]
                if np.isnan(nd) or np.isnan(tk) or np.isnan(p[k, i, j]) or np.isnan(sol[k, i, j]):
                    state[j] = 0
                    continue
                if k == 0 or nd > best_ndvi[j]:  # strict: ties keep the first month
                    best[j] = k
                    best_ndvi[j] = nd
                if water_code == 1 and not uniform:
                    tk64 = np.float64(tk)
                    if tk64 > 0.0:
                        heat[j] += (tk64 / 5.0) ** THORNTHWAITE_EXP_HEAT
        for j in range(nx):
            if state[j] != 2:
                continue
            c = classes[i, j]
            nmin, nmax, smin, smax = _pixel_bounds(c, i, j, ndvi_min, ndvi_max, sr_min, sr_max,
                                                   min_px, max_px, has_min, has_max)
            if not _bounds_ok(nmin, nmax, smin, smax):
                state[j] = 0
                continue
            bnd[0, j], bnd[1, j], bnd[2, j], bnd[3, j] = nmin, nmax, smin, smax
            if has_month and topt_month[i, j] > 0:
                best[j] = topt_month[i, j] - 1
            topt[j] = np.float64(t[best[j], i, j])
            te1[j] = te1_tab[best[j]] if uniform else _te1_scalar(topt[j])
            te2_half[j] = 0.5 * _te2_raw_scalar(topt[j], topt[j])
            if water_code == 1 and not uniform:
                a_exp[j] = _thornthwaite_a(heat[j])
            scale[j] = par_fraction * eps_max[c]
        for k in range(nt):
            for j in range(nx):
                s = state[j]
                if s == 0:
                    out[k, i, j] = np.nan
                    continue
                tk = np.float64(t[k, i, j])
                if s == 1 or tk <= TE1_FROZEN_C or te1[j] == 0.0:
                    out[k, i, j] = 0.0
                    continue
                fpar = _fpar_scalar(np.float64(ndvi[k, i, j]), bnd[0, j], bnd[1, j], bnd[2, j],
                                    bnd[3, j])
                we = WE_MAX
                if water_code == 1:
                    if uniform:
                        we = we_month[k]
                    else:
                        we = _we_zhou_zhang(tk, np.float64(p[k, i, j]), heat[j], a_exp[j])
                if uniform:
                    te2 = te2_tab[best[j], k]
                else:  # _te2_scalar, with the per-pixel half value computed once
                    d = tk - topt[j]
                    if d > TE2_HALF_ABOVE_C or d < -TE2_HALF_BELOW_C:
                        te2 = te2_half[j]
                    else:
                        te2 = _te2_raw_scalar(tk, topt[j])
                out[k, i, j] = sol[k, i, j] * fpar * scale[j] * te1[j] * te2 * we


def _npp_args(ndvi, t, p, sol, classes, eps_max, ndvi_min, ndvi_max, sr_min, sr_max, vegetated,
              par_fraction, water_stress, ndvi_min_px, ndvi_max_px, topt_month):
    nd = _monthly(ndvi, "ndvi")
    tt, pp, ss = _monthly(t, "t"), _monthly(p, "p"), _monthly(sol, "sol")
    for arr, name in ((tt, "t"), (pp, "p"), (ss, "sol")):
        _same_pixels(nd.shape, arr, name, "ndvi")
    cls = _classes(classes, nd.shape)
    vec = _class_vectors(eps_max=eps_max, ndvi_min=ndvi_min, ndvi_max=ndvi_max,
                         sr_min=sr_min, sr_max=sr_max)
    veg = _vegetated(vegetated, vec["eps_max"].shape[0])
    min_px, has_min = _pixel_bound(ndvi_min_px, nd.shape, "ndvi_min_px")
    max_px, has_max = _pixel_bound(ndvi_max_px, nd.shape, "ndvi_max_px")
    months, has_month = _topt_months(topt_month, nd.shape)
    return dict(
        ndvi=nd, t=tt, p=pp, sol=ss, classes=cls, vec=vec, vegetated=veg, min_px=min_px,
        has_min=has_min, max_px=max_px, has_max=has_max, months=months, has_month=has_month,
        par_fraction=_check_par_fraction(par_fraction), water_code=water_stress_code(water_stress),
    )


def casa_npp_numba(
    ndvi: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    sol: np.ndarray,
    classes: np.ndarray,
    eps_max: np.ndarray,
    ndvi_min: np.ndarray,
    ndvi_max: np.ndarray,
    sr_min: np.ndarray,
    sr_max: np.ndarray,
    vegetated: np.ndarray,
    *,
    par_fraction: float = PAR_FRACTION,
    water_stress: WaterStressMethod = "zhou_zhang",
    ndvi_min_px: np.ndarray | None = None,
    ndvi_max_px: np.ndarray | None = None,
    topt_month: int | np.ndarray | None = None,
    uniform_climate: bool = False,
) -> NDArray[np.float32]:
    """Monthly CASA net primary production (Numba kernel).

    ::

        NPP = SOL * FPAR * par_fraction * Te1 * Te2 * We * eps_max(class)   g C m-2 month-1

    FPAR as :func:`fpar_numba`, Te1/Te2 as :func:`temperature_stress_numba` (per-pixel Topt
    unless ``topt_month``), We as :func:`water_stress_numba`. The per-class vectors come from
    :meth:`tanhui.casa_params.CasaParams.kernel_kwargs`.

    Parameters
    ----------
    ndvi : (12, ny, nx) float
        Monthly NDVI (unitless, scaled, monthly maximum-value composite), January first.
    t : (12, ny, nx) float
        Monthly mean air temperature, °C.
    p : (12, ny, nx) float
        Monthly precipitation, mm month-1.
    sol : (12, ny, nx) float
        Monthly total shortwave radiation, MJ m-2 month-1.
    classes : (ny, nx) int
        Canonical class ids (science.md §7.1), 0 = nodata.
    eps_max : (n_classes,) float
        Maximum light-use efficiency per class, g C MJ-1 (NaN = class without parameters).
    ndvi_min, ndvi_max, sr_min, sr_max : (n_classes,) float
        Per-class NDVI and SR bounds.
    vegetated : (n_classes,) bool
        False for classes where NPP is not computed (water, built-up, snow/ice) -> NPP = 0.
    par_fraction : float
        PAR share of total shortwave (default 0.5, CASA; MOD17 uses 0.45).
    water_stress : {"zhou_zhang", "none"}
        Water-stress variant (science.md §1.4).
    ndvi_min_px, ndvi_max_px : (ny, nx) float, optional
        Per-pixel NDVI bounds overriding the class bounds (e.g. BESS climatology).
    topt_month : int or (ny, nx) int, optional
        Fix Topt to the temperature of this month (per-region option).
    uniform_climate : bool
        The caller promises that ``t`` and ``p`` are the same on every pixel (climate given
        as 12 monthly values): Te1, Te2 and We are then computed once per month and
        Topt month. Same numbers, several times faster.

    Returns
    -------
    (12, ny, nx) float32
        NPP in g C m-2 month-1. 0 for non-vegetated classes and for months with T <= -10 °C;
        NaN for class 0, ids outside the vectors, classes with NaN eps_max or invalid bounds,
        and for all months of a vegetated pixel with NaN in any month of any input.

    Raises
    ------
    tanhui.errors.ConfigError
        Unknown or not-yet-implemented ``water_stress``; ``par_fraction`` outside (0, 1].
    tanhui.errors.InputValueError, tanhui.errors.GridMismatchError
        Wrong shapes or dtypes (message names the input).

    References
    ----------
    Potter et al. (1993); Zhu Wenquan et al. (2006, 2007); Pan Jinghu et al. (2017)
    (science.md §1.1-1.8). Test vector §1.7: July grassland, NDVI 0.55, SOL 721, T = Topt =
    24.6 °C, We 0.920 -> NPP ≈ 131 g C m-2 month-1.
    """
    a = _npp_args(ndvi, t, p, sol, classes, eps_max, ndvi_min, ndvi_max, sr_min, sr_max,
                  vegetated, par_fraction, water_stress, ndvi_min_px, ndvi_max_px, topt_month)
    v = a["vec"]
    uniform, we_month = False, np.ones(N_MONTHS)
    t12, p12 = a["t"][:, :1, :1], a["p"][:, :1, :1]
    if uniform_climate and a["t"].size and not (np.isnan(t12).any() or np.isnan(p12).any()):
        # Same T and P on every pixel (12 monthly values): Te1, Te2 and We are functions of
        # the month and the Topt month only; compute them once with the same arithmetic.
        uniform = True
        if a["water_code"] == 1:
            we_month = water_stress_monthly_vector(t12, p12)
    out = np.empty(a["ndvi"].shape, dtype=np.float32)
    _casa_npp_kernel(a["ndvi"], a["t"], a["p"], a["sol"], a["classes"], v["eps_max"],
                     v["ndvi_min"], v["ndvi_max"], v["sr_min"], v["sr_max"], a["vegetated"],
                     a["min_px"], a["max_px"], a["has_min"], a["has_max"], a["months"],
                     a["has_month"], a["par_fraction"], a["water_code"], uniform, we_month, out)
    return out


@numba.njit(nogil=True, cache=True)
def _we_month_kernel(t, p, out):
    heat = _heat_index(t, 0, 0)
    a = _thornthwaite_a(heat)
    for k in range(t.shape[0]):
        out[k] = _we_zhou_zhang(np.float64(t[k, 0, 0]), np.float64(p[k, 0, 0]), heat, a)


def water_stress_monthly_vector(t: np.ndarray, p: np.ndarray) -> NDArray[np.float64]:
    """Zhou-Zhang We for one 12-month climate (float64, the kernel's own arithmetic).

    ``t``, ``p``: 12 monthly values (any shape with 12 elements), °C and mm month-1.
    """
    tt = np.ascontiguousarray(np.asarray(t, dtype=np.float32).reshape(N_MONTHS, 1, 1))
    pp = np.ascontiguousarray(np.asarray(p, dtype=np.float32).reshape(N_MONTHS, 1, 1))
    out = np.empty(N_MONTHS)
    _we_month_kernel(tt, pp, out)
    return out


def casa_npp_reference(
    ndvi: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    sol: np.ndarray,
    classes: np.ndarray,
    eps_max: np.ndarray,
    ndvi_min: np.ndarray,
    ndvi_max: np.ndarray,
    sr_min: np.ndarray,
    sr_max: np.ndarray,
    vegetated: np.ndarray,
    *,
    par_fraction: float = PAR_FRACTION,
    water_stress: WaterStressMethod = "zhou_zhang",
    ndvi_min_px: np.ndarray | None = None,
    ndvi_max_px: np.ndarray | None = None,
    topt_month: int | np.ndarray | None = None,
) -> NDArray[np.float32]:
    """Plain-NumPy reference of :func:`casa_npp_numba` (the test oracle and ``engine="numpy"``)."""
    a = _npp_args(ndvi, t, p, sol, classes, eps_max, ndvi_min, ndvi_max, sr_min, sr_max,
                  vegetated, par_fraction, water_stress, ndvi_min_px, ndvi_max_px, topt_month)
    v = a["vec"]
    nmin, nmax, smin, smax, valid, ok = _effective_bounds_reference(
        a["classes"], v, ndvi_min_px, ndvi_max_px)
    safe = np.where(valid, a["classes"].astype(np.int64), 0)
    eps = np.where(valid, v["eps_max"][safe], np.nan)
    veg = valid & a["vegetated"][safe]

    t64 = a["t"].astype(np.float64)
    topt = _topt_reference(a["ndvi"], a["t"], a["months"], a["has_month"])
    te1 = t_epsilon1(topt[None], t64)
    te2 = t_epsilon2(t64, topt[None])
    fpar = _fpar_from_bounds(a["ndvi"], nmin, nmax, smin, smax)
    we = 1.0 if a["water_code"] == 0 else zhou_zhang_terms(a["t"], a["p"]).w_eps
    npp = a["sol"].astype(np.float64) * fpar * a["par_fraction"] * te1 * te2 * we * eps
    npp = np.where(te1 == 0.0, 0.0, npp)  # frozen months: exactly 0, as in the kernel

    bad = _pixel_nan_reference(a["ndvi"], a["t"], a["p"], a["sol"]) | ~ok
    npp = np.where(bad[None], np.nan, npp)
    npp = np.where((valid & ~np.isnan(eps) & ~veg)[None], 0.0, npp)
    npp = np.where((~valid | np.isnan(eps))[None], np.nan, npp)
    return npp.astype(np.float32)


ENGINES = {
    "numba": {
        "fpar": fpar_numba,
        "temperature_stress": temperature_stress_numba,
        "water_stress": water_stress_numba,
        "casa_npp": casa_npp_numba,
    },
    "numpy": {
        "fpar": fpar_reference,
        "temperature_stress": temperature_stress_reference,
        "water_stress": water_stress_reference,
        "casa_npp": casa_npp_reference,
    },
}
