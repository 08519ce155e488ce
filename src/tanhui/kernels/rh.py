"""Soil heterotrophic respiration (Pei et al. 2009 regression) and NEP = NPP − Rh.

Formulas (science.md §2.1, §2.3)::

    Rh(x,t)  = 0.22 [exp(0.0912 T) + ln(0.3145 R + 1)] * days * 0.465   g C m-2 month-1
    NEP(x,t) = NPP(x,t) - Rh(x,t)                                        g C m-2 month-1
    CO2 sink (t CO2 ha-1) = NEP (g C m-2) * 0.01 * 44/12

T = monthly mean air temperature (°C); R = precipitation (mm): the monthly total (default,
as in the Chinese NEP literature) or the mean daily precipitation (monthly total / days);
days = 30 (default, matches published numbers) or the actual days of the month. The bracket
is a daily soil-respiration flux (g C m-2 d-1); 0.465 is the heterotrophic share.

Caveats (put them in any report): the regression was fitted at one Tibetan alpine-steppe
site on daily data — transferring it to the Horqin sandy land is an assumption; it ignores
soil carbon and vegetation, so it cannot see restoration effects on Rh; it gives Rh > 0 in
frozen months (3.07 g C m-2 month-1 at T = 0, P = 0). NEP > 0 = carbon sink (sink-positive;
eddy-covariance NEE = −NEP).

Nodata: NaN in any month of T or P gives NaN for all 12 months of that pixel (consistent with
NPP, whose Topt needs the whole year). Rh is computed for every class (soil respires under
sand and bare land too); NEP is NaN for class 0 and for non-vegetated classes (water,
built-up, snow/ice), science.md §2.3.

References
----------
Pei Zhiyuan (Zhiyong), Ouyang Hua, Zhou Caiping, Xu Xingliang (2009) Carbon balance in an
alpine steppe in the Qinghai-Tibet Plateau. J. Integr. Plant Biol. 51(5):521-526,
doi 10.1111/j.1744-7909.2009.00813.x.
"""
from __future__ import annotations

import calendar
from typing import Literal

import numba
import numpy as np
from numpy.typing import NDArray

from ..errors import ConfigError, GridMismatchError, InputValueError, ParameterTableError

N_MONTHS = 12

# Pei et al. (2009) coefficients in the form used by Chinese NEP studies [S: widely quoted;
# the abstract [V] prints the rounded 0.22, 0.09, 0.31 and 46 %; the exact 0.0912 / 0.3145 /
# 46.5 % come from the full text, not read here — science.md §2.1, §13.2].
RH_SCALE_GC_M2_D = 0.22  # g C m-2 d-1
RH_TEMP_COEF_PER_C = 0.0912  # °C-1
RH_PRECIP_COEF_PER_MM = 0.3145  # mm-1
RH_HETEROTROPHIC_SHARE = 0.465  # microbial share of soil respiration
RH_DAYS_DEFAULT = 30.0  # "×30" convention of the published NEP maps

# Unit conversions (science.md §0.1) [V: WRI flux model c_to_co2 = 44.0/12.0]
C_TO_CO2 = 44.0 / 12.0
GC_M2_TO_T_HA = 0.01  # 1 g C m-2 = 0.01 t C ha-1

DaysPerMonth = Literal["30", "actual"]
PrecipForm = Literal["monthly", "daily_mean"]


def _monthly(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 3 or a.shape[0] != N_MONTHS:
        raise InputValueError(
            f"monthly input {name!r} has shape {a.shape}; expected (12, ny, nx) with January "
            "first. Stack the 12 monthly rasters along the first axis."
        )
    return np.ascontiguousarray(a, dtype=np.float32)


def month_days(days_per_month: DaysPerMonth = "30", year: int | None = None) -> NDArray[np.float64]:
    """Days used for each month: all 30 (``"30"``) or the calendar days of ``year``."""
    if days_per_month == "30":
        return np.full(N_MONTHS, RH_DAYS_DEFAULT)
    if days_per_month == "actual":
        if year is None:
            raise ConfigError(
                "rh_days = 'actual' needs the year (February has 28 or 29 days); pass year=..."
                " or use rh_days = '30'."
            )
        return np.array([calendar.monthrange(int(year), m)[1] for m in range(1, 13)], float)
    raise ConfigError(
        f"rh_days = {days_per_month!r}; expected '30' (published convention) or 'actual'."
    )


def _precip_divisor(precip: PrecipForm, days: np.ndarray) -> NDArray[np.float64]:
    if precip == "monthly":
        return np.ones(N_MONTHS)
    if precip == "daily_mean":
        return days.copy()
    raise ConfigError(
        f"rh_precip = {precip!r}; expected 'monthly' (monthly total in the ln term, the "
        "published convention) or 'daily_mean' (monthly total / days, as fitted)."
    )


def _rh_args(t, p, days_per_month, precip, year):
    tt = _monthly(t, "t")
    pp = _monthly(p, "p")
    if pp.shape != tt.shape:
        raise GridMismatchError(
            f"input 'p' has shape {pp.shape} but 't' has {tt.shape}; read both on the same tile."
        )
    days = month_days(days_per_month, year)
    return tt, pp, days, _precip_divisor(precip, days)


@numba.njit(nogil=True, cache=True)
def _rh_kernel(t, p, days, precip_div, out):
    # row by row with pixels innermost: contiguous reads (a pixel's months are ny*nx apart)
    nt, ny, nx = t.shape
    bad = np.empty(nx, np.bool_)
    for i in range(ny):
        bad[:] = False
        for k in range(nt):
            for j in range(nx):
                if np.isnan(t[k, i, j]) or np.isnan(p[k, i, j]):
                    bad[j] = True
        for k in range(nt):
            for j in range(nx):
                if bad[j]:
                    out[k, i, j] = np.nan
                    continue
                r = np.float64(p[k, i, j]) / precip_div[k]
                daily = RH_SCALE_GC_M2_D * (np.exp(RH_TEMP_COEF_PER_C * np.float64(t[k, i, j]))
                                            + np.log(RH_PRECIP_COEF_PER_MM * r + 1.0))
                out[k, i, j] = daily * days[k] * RH_HETEROTROPHIC_SHARE


def rh_pei_numba(
    t: np.ndarray,
    p: np.ndarray,
    days_per_month: DaysPerMonth = "30",
    precip: PrecipForm = "monthly",
    year: int | None = None,
) -> NDArray[np.float32]:
    """Monthly soil heterotrophic respiration after Pei et al. (2009) (Numba kernel).

    ::

        Rh = 0.22 [exp(0.0912 T) + ln(0.3145 R + 1)] * days * 0.465    g C m-2 month-1

    Parameters
    ----------
    t : (12, ny, nx) float
        Monthly mean air temperature, °C, January first.
    p : (12, ny, nx) float
        Monthly precipitation, mm month-1 (>= 0).
    days_per_month : {"30", "actual"}
        Days multiplying the daily flux: 30 for every month (default, matches the published
        maps) or the calendar days of ``year``.
    precip : {"monthly", "daily_mean"}
        R in the ln term: the monthly total (default, the usual application) or the mean
        daily precipitation P / days (closer to the daily data the regression was fitted on).
    year : int, optional
        Calendar year; required for ``days_per_month="actual"``.

    Returns
    -------
    (12, ny, nx) float32
        Rh in g C m-2 month-1; NaN for all months of a pixel with NaN in any month.
        Rh(20 °C, 100 mm) = 29.70; Rh(25, 150) = 41.90; Rh(0, 0) = 3.07.

    Raises
    ------
    tanhui.errors.ConfigError
        Unknown option, or ``"actual"`` without ``year``.

    References
    ----------
    Pei et al. (2009) J. Integr. Plant Biol. 51(5):521-526 (science.md §2.1).

    Examples
    --------
    >>> t = np.full((12, 1, 1), 20.0, np.float32)
    >>> p = np.full((12, 1, 1), 100.0, np.float32)
    >>> round(float(rh_pei_numba(t, p)[0, 0, 0]), 2)
    29.7
    """
    tt, pp, days, div = _rh_args(t, p, days_per_month, precip, year)
    out = np.empty(tt.shape, dtype=np.float32)
    _rh_kernel(tt, pp, days, div, out)
    return out


def rh_pei_reference(
    t: np.ndarray,
    p: np.ndarray,
    days_per_month: DaysPerMonth = "30",
    precip: PrecipForm = "monthly",
    year: int | None = None,
) -> NDArray[np.float32]:
    """Plain-NumPy reference of :func:`rh_pei_numba` (the test oracle and ``engine="numpy"``)."""
    tt, pp, days, div = _rh_args(t, p, days_per_month, precip, year)
    t64, p64 = tt.astype(np.float64), pp.astype(np.float64)
    r = p64 / div[:, None, None]
    with np.errstate(invalid="ignore"):
        daily = RH_SCALE_GC_M2_D * (np.exp(RH_TEMP_COEF_PER_C * t64)
                                    + np.log(RH_PRECIP_COEF_PER_MM * r + 1.0))
    rh = daily * days[:, None, None] * RH_HETEROTROPHIC_SHARE
    bad = (np.isnan(tt) | np.isnan(pp)).any(axis=0)
    return np.where(bad[None], np.nan, rh).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# NEP (science.md §2.3)
# ---------------------------------------------------------------------------------------------


def _nep_args(npp, rh, classes, vegetated):
    n = np.asarray(npp)
    r = np.asarray(rh)
    if n.ndim != 3 or n.shape != r.shape:
        raise GridMismatchError(
            f"NPP has shape {n.shape} and Rh {r.shape}; expected equal (n_months, ny, nx) stacks "
            "from the same tile."
        )
    c = np.asarray(classes)
    if c.shape != n.shape[1:] or not np.issubdtype(c.dtype, np.integer):
        raise InputValueError(
            f"class raster has shape {c.shape} and dtype {c.dtype}; expected an integer raster "
            f"of shape {n.shape[1:]} (canonical class ids, 0 = nodata)."
        )
    v = np.ascontiguousarray(vegetated, dtype=np.bool_)
    if v.ndim != 1:
        raise ParameterTableError(
            f"'vegetated' flag vector has shape {v.shape}; expected (n_classes,) indexed by "
            "class id. Use CasaParams.load().vegetated."
        )
    return (np.ascontiguousarray(n, dtype=np.float32), np.ascontiguousarray(r, dtype=np.float32),
            np.ascontiguousarray(c), v)


@numba.njit(nogil=True, cache=True)
def _nep_kernel(npp, rh, classes, vegetated, out):
    nt, ny, nx = npp.shape
    n_classes = vegetated.shape[0]
    masked = np.empty(nx, np.bool_)
    for i in range(ny):
        for j in range(nx):
            c = classes[i, j]
            masked[j] = c <= 0 or c >= n_classes or not vegetated[c]
        for k in range(nt):  # pixels innermost: contiguous reads
            for j in range(nx):
                out[k, i, j] = np.nan if masked[j] else npp[k, i, j] - rh[k, i, j]


def nep_numba(
    npp: np.ndarray, rh: np.ndarray, classes: np.ndarray, vegetated: np.ndarray
) -> NDArray[np.float32]:
    """Net ecosystem production NEP = NPP − Rh, sink-positive (Numba kernel).

    Parameters
    ----------
    npp, rh : (n_months, ny, nx) float
        NPP and Rh in g C m-2 month-1 (or both annual, in g C m-2 yr-1, with n_months = 1).
    classes : (ny, nx) int
        Canonical class ids, 0 = nodata.
    vegetated : (n_classes,) bool
        Per-class flag (CasaParams.vegetated); False = water, built-up, snow/ice.

    Returns
    -------
    (n_months, ny, nx) float32
        NEP in g C m-2 per period; positive = sink. NaN for class 0, ids outside ``vegetated``
        and non-vegetated classes (NEP undefined, science.md §2.3), and where NPP or Rh is NaN.
        Bare and sandy classes keep NEP = NPP − Rh (often < 0).

    References
    ----------
    science.md §2.3; sign convention §0.2 (NEE = −NEP).
    """
    n, r, c, v = _nep_args(npp, rh, classes, vegetated)
    out = np.empty(n.shape, dtype=np.float32)
    _nep_kernel(n, r, c, v, out)
    return out


def nep_reference(
    npp: np.ndarray, rh: np.ndarray, classes: np.ndarray, vegetated: np.ndarray
) -> NDArray[np.float32]:
    """Plain-NumPy reference of :func:`nep_numba`."""
    n, r, c, v = _nep_args(npp, rh, classes, vegetated)
    ci = c.astype(np.int64)
    valid = (ci > 0) & (ci < v.shape[0])
    keep = valid & v[np.where(valid, ci, 0)]
    return np.where(keep[None], n - r, np.float32(np.nan)).astype(np.float32)


def nep_to_tco2_ha(nep_gC_m2: np.ndarray | float) -> NDArray[np.float64]:
    """Convert NEP in g C m-2 (per period) to t CO2 ha-1: × 0.01 × 44/12 (science.md §2.3)."""
    return np.asarray(nep_gC_m2, dtype=np.float64) * GC_M2_TO_T_HA * C_TO_CO2


ENGINES = {
    "numba": {"rh": rh_pei_numba, "nep": nep_numba},
    "numpy": {"rh": rh_pei_reference, "nep": nep_reference},
}
