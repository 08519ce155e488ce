"""Monthly solar radiation from latitude and sunshine: FAO-56 Ra and Ångström–Prescott Rs.

Formulas (Allen et al. 1998, FAO Irrigation and Drainage Paper 56, eqs. 21-25, 34, 35)::

    Ra = (24·60/π) Gsc dr [ωs sinφ sinδ + cosφ cosδ sin ωs]   MJ m-2 d-1       (eq. 21)
    dr = 1 + 0.033 cos(2π J / 365)                                             (eq. 23)
    δ  = 0.409 sin(2π J / 365 − 1.39)                         rad              (eq. 24)
    ωs = arccos(−tanφ tanδ)                                   rad              (eq. 25)
    N  = 24 ωs / π                                            h                (eq. 34)
    Rs = (a_s + b_s n/N) Ra,  a_s = 0.25, b_s = 0.50                           (eq. 35)

Gsc = 0.0820 MJ m-2 min-1, J = day of the year (1..365/366), φ = latitude (rad). Monthly
values are the sums of the daily values over the days of each month. At 43.6°N this gives
Ra = 397, 512, 800, 1009, 1221, 1253, 1255, 1107, 854, 635, 427, 358 MJ m-2 month-1
(annual 9827) and, with n/N = 0.6, Rs annual 5405 MJ m-2 (science.md §10.2).

This module works per latitude (a few hundred values per tile), not per pixel, so it is plain
vectorised NumPy without a Numba kernel. It is used by the synthetic demo to make SOL and by
users who have sunshine duration instead of radiation (science.md §1.6). Default a_s/b_s are
the FAO-56 values for when no local calibration exists [U — standard FAO-56]; Pan et al.
(2017) fit local coefficients [V].

References
----------
Allen R.G., Pereira L.S., Raes D., Smith M. (1998) Crop evapotranspiration. FAO Irrigation and
Drainage Paper 56, chapter 3, eqs. 21-25, 34, 35.
"""
from __future__ import annotations

import calendar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputValueError

SOLAR_CONSTANT_MJ_M2_MIN = 0.0820  # Gsc, FAO-56 eq. 21
ANGSTROM_A_S = 0.25  # FAO-56 eq. 35 default, fraction of Ra on overcast days [U standard]
ANGSTROM_B_S = 0.50  # FAO-56 eq. 35 default [U standard]
_NON_LEAP_YEAR = 2001


def _latitude_rad(lat_deg: ArrayLike) -> NDArray[np.float64]:
    lat = np.asarray(lat_deg, dtype=np.float64)
    if np.any(np.abs(lat[~np.isnan(lat)]) > 90.0):
        raise InputValueError(
            f"latitude has values outside -90…90° (found {np.nanmin(lat):g}…{np.nanmax(lat):g}); "
            "pass geographic latitude in decimal degrees, not projected y coordinates."
        )
    return np.deg2rad(lat)


def _daily_terms(lat_rad: NDArray[np.float64], doy: NDArray[np.float64]):
    """dr, δ, ωs for every (day, latitude) pair; doy broadcast against lat."""
    x = 2.0 * np.pi * doy / 365.0
    dr = 1.0 + 0.033 * np.cos(x)
    decl = 0.409 * np.sin(x - 1.39)
    # clip: polar day/night, where -tanφ tanδ leaves [-1, 1]
    ws = np.arccos(np.clip(-np.tan(lat_rad) * np.tan(decl), -1.0, 1.0))
    return dr, decl, ws


def extraterrestrial_radiation_daily(lat_deg: ArrayLike, doy: ArrayLike) -> NDArray[np.float64]:
    """Daily extraterrestrial radiation Ra (FAO-56 eq. 21), MJ m-2 d-1.

    Parameters
    ----------
    lat_deg : array-like
        Latitude, decimal degrees (north positive).
    doy : array-like
        Day of the year J (1..366); broadcast against ``lat_deg``.

    Returns
    -------
    ndarray of float64
        Ra in MJ m-2 d-1.
    """
    lat = _latitude_rad(lat_deg)
    dr, decl, ws = _daily_terms(lat, np.asarray(doy, dtype=np.float64))
    return (24.0 * 60.0 / np.pi * SOLAR_CONSTANT_MJ_M2_MIN * dr
            * (ws * np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.sin(ws)))


def daylight_hours_daily(lat_deg: ArrayLike, doy: ArrayLike) -> NDArray[np.float64]:
    """Daylight hours N = 24 ωs / π (FAO-56 eq. 34), h; ``doy`` broadcast against ``lat_deg``."""
    lat = _latitude_rad(lat_deg)
    _, _, ws = _daily_terms(lat, np.asarray(doy, dtype=np.float64))
    return 24.0 / np.pi * ws


def _month_day_index(year: int | None) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    y = _NON_LEAP_YEAR if year is None else int(year)
    n_days = 366 if calendar.isleap(y) else 365
    doy = np.arange(1, n_days + 1, dtype=np.float64)
    lengths = [calendar.monthrange(y, m)[1] for m in range(1, 13)]
    month = np.repeat(np.arange(12), lengths)
    return doy, month


def _sum_by_month(daily: NDArray[np.float64], month: NDArray[np.int64]) -> NDArray[np.float64]:
    # daily: (n_days, *lat_shape) -> (12, *lat_shape)
    out = np.zeros((12,) + daily.shape[1:])
    np.add.at(out, month, daily)
    return out


def _per_day(lat_deg: ArrayLike, year: int | None, fn) -> NDArray[np.float64]:
    lat = np.asarray(lat_deg, dtype=np.float64)
    doy, month = _month_day_index(year)
    daily = fn(lat[None, ...], doy.reshape((-1,) + (1,) * lat.ndim))
    return _sum_by_month(daily, month)


def extraterrestrial_radiation_monthly(
    lat_deg: ArrayLike, year: int | None = None
) -> NDArray[np.float64]:
    """Monthly extraterrestrial radiation Ra, MJ m-2 month-1 (daily FAO-56 eq. 21 summed).

    Parameters
    ----------
    lat_deg : array-like
        Latitude(s), decimal degrees; any shape (scalar, per-row vector, raster).
    year : int, optional
        Calendar year (February gets 29 days in leap years); default a non-leap year.

    Returns
    -------
    (12, *lat_shape) float64
        Ra per month, January first, MJ m-2 month-1.

    References
    ----------
    Allen et al. (1998) FAO-56, eqs. 21-25 (science.md §1.6, §10.2).

    Examples
    --------
    >>> ra = extraterrestrial_radiation_monthly(43.6)
    >>> ra.shape, round(float(ra[6])), round(float(ra.sum()))
    ((12,), 1253, 9817)
    """
    return _per_day(lat_deg, year, extraterrestrial_radiation_daily)


def daylight_hours_monthly(lat_deg: ArrayLike, year: int | None = None) -> NDArray[np.float64]:
    """Maximum possible sunshine hours per month, Σ N (FAO-56 eq. 34), h month-1."""
    return _per_day(lat_deg, year, daylight_hours_daily)


def sunshine_fraction(
    sunshine_hours: ArrayLike, lat_deg: ArrayLike, year: int | None = None
) -> NDArray[np.float64]:
    """Relative sunshine duration n/N per month from measured monthly sunshine hours.

    Parameters
    ----------
    sunshine_hours : (12, ...) array-like
        Measured sunshine duration n per month, h month-1 (e.g. CMA station normals).
    lat_deg : array-like
        Latitude, decimal degrees, broadcast against ``sunshine_hours[0]``.
    year : int, optional
        Calendar year for the month lengths.

    Returns
    -------
    (12, ...) float64
        n/N, unitless.
    """
    n = np.asarray(sunshine_hours, dtype=np.float64)
    if n.shape[:1] != (12,):
        raise InputValueError(
            f"sunshine_hours has shape {n.shape}; expected 12 monthly values first (January first)."
        )
    return n / daylight_hours_monthly(lat_deg, year)


def angstrom_prescott(
    ra: ArrayLike,
    sunshine_frac: ArrayLike,
    a_s: float = ANGSTROM_A_S,
    b_s: float = ANGSTROM_B_S,
) -> NDArray[np.float64]:
    """Global (shortwave) radiation Rs = (a_s + b_s n/N) Ra (FAO-56 eq. 35).

    Parameters
    ----------
    ra : array-like
        Extraterrestrial radiation, any unit (the result has the same unit), e.g.
        MJ m-2 month-1 from :func:`extraterrestrial_radiation_monthly`.
    sunshine_frac : array-like
        Relative sunshine duration n/N in [0, 1], broadcast against ``ra``.
    a_s, b_s : float
        Ångström coefficients; FAO-56 defaults 0.25 and 0.50 when not calibrated locally.

    Returns
    -------
    ndarray of float64
        Rs in the unit of ``ra``. With n/N = 0.6 at 43.6°N the annual sum is 5405 MJ m-2.

    References
    ----------
    Allen et al. (1998) FAO-56, eq. 35; Pan et al. (2017) for locally fitted coefficients.
    """
    frac = np.asarray(sunshine_frac, dtype=np.float64)
    if np.any((frac < 0.0) | (frac > 1.0)):
        raise InputValueError(
            f"sunshine fraction n/N has values outside 0…1 (found {np.nanmin(frac):g}…"
            f"{np.nanmax(frac):g}); pass n/N, not sunshine hours (use sunshine_fraction())."
        )
    return (a_s + b_s * frac) * np.asarray(ra, dtype=np.float64)


def global_radiation_monthly(
    lat_deg: ArrayLike,
    sunshine_frac: ArrayLike,
    year: int | None = None,
    a_s: float = ANGSTROM_A_S,
    b_s: float = ANGSTROM_B_S,
) -> NDArray[np.float64]:
    """Monthly global radiation SOL = (a_s + b_s n/N) Ra, MJ m-2 month-1.

    ``sunshine_frac`` is a scalar, or (12,) monthly, or (12, *lat_shape); n/N is taken as
    constant within each month. Returns (12, *lat_shape) float64, January first.
    """
    ra = extraterrestrial_radiation_monthly(lat_deg, year)
    frac = np.asarray(sunshine_frac, dtype=np.float64)
    if frac.ndim >= 1 and frac.shape[0] == 12 and frac.ndim < ra.ndim:
        frac = frac.reshape((12,) + (1,) * (ra.ndim - 1))
    return angstrom_prescott(ra, frac, a_s, b_s)
