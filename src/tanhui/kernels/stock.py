"""Carbon stock by pools and stock-difference change (IPCC stock difference, InVEST Carbon arithmetic).

Formulas (science.md §3.1; identical to InVEST Carbon 3.15+, natcap/invest ``carbon.py``)::

    C_pool(x)  = table[class(x)].pool                 t C ha-1, pool in above, below, soil, dead
    C_total(x) = C_above + C_below + C_soil + C_dead  t C ha-1
    dC(x)      = C_total,t2(x) - C_total,t1(x)         t C ha-1   (sink-positive)
    rate(x)    = dC(x) / (t2 - t1)                     t C ha-1 yr-1

Inputs are land-cover codes as int32 with -1 for nodata, and a dense look-up table
``pool_lut`` of shape (4, n_codes) float32 holding the four pool densities per code
(NaN for codes that have no density: nodata classes). Outputs are float32 with NaN for nodata.
"""
from __future__ import annotations

import numba
import numpy as np

N_POOLS = 4
POOLS = ("above", "below", "soil", "dead")


@numba.njit(nogil=True, cache=True)
def _stock_kernel(codes, pool_lut, out):
    # out: (5, ny, nx) = 4 pools + total; codes outside the LUT are nodata.
    ny, nx = codes.shape
    n_codes = pool_lut.shape[1]
    for i in range(ny):
        for j in range(nx):
            c = codes[i, j]
            if c < 0 or c >= n_codes:
                for k in range(N_POOLS + 1):
                    out[k, i, j] = np.nan
                continue
            total = pool_lut[0, c]  # float32 arithmetic in pool order, like the reference
            out[0, i, j] = total
            for k in range(1, N_POOLS):
                v = pool_lut[k, c]
                out[k, i, j] = v
                total = total + v
            out[N_POOLS, i, j] = total  # NaN propagates when any pool is NaN


def stock_numba(codes: np.ndarray, pool_lut: np.ndarray) -> np.ndarray:
    """Pool and total carbon density per pixel (Numba kernel).

    Parameters
    ----------
    codes : (ny, nx) int array
        Land-cover codes; negative values are nodata.
    pool_lut : (4, n_codes) float32
        Density of the above, below, soil and dead pools per code, t C ha-1.

    Returns
    -------
    (5, ny, nx) float32
        Bands above, below, soil, dead, total in t C ha-1; NaN where nodata.
    """
    codes = np.ascontiguousarray(codes, dtype=np.int32)
    lut = np.ascontiguousarray(pool_lut, dtype=np.float32)
    out = np.empty((N_POOLS + 1,) + codes.shape, dtype=np.float32)
    _stock_kernel(codes, lut, out)
    return out


def stock_reference(codes: np.ndarray, pool_lut: np.ndarray) -> np.ndarray:
    """Plain-NumPy reference of :func:`stock_numba` (the test oracle and ``engine="numpy"``)."""
    codes = np.asarray(codes, dtype=np.int64)
    lut = np.asarray(pool_lut, dtype=np.float32)
    valid = (codes >= 0) & (codes < lut.shape[1])
    safe = np.where(valid, codes, 0)
    pools = np.where(valid[None], lut[:, safe], np.float32(np.nan)).astype(np.float32)
    # sequential float32 sum in pool order, as the kernel adds them (np.sum is pairwise)
    total = ((pools[0] + pools[1]) + pools[2]) + pools[3]
    return np.concatenate([pools, total[None]], axis=0)


@numba.njit(nogil=True, cache=True)
def _change_kernel(total_t1, total_t2, years, out):
    # out: (2, ny, nx) = change, annual rate
    ny, nx = total_t1.shape
    for i in range(ny):
        for j in range(nx):
            d = total_t2[i, j] - total_t1[i, j]  # NaN if either epoch is nodata
            out[0, i, j] = d
            out[1, i, j] = d / years


def change_numba(total_t1: np.ndarray, total_t2: np.ndarray, years: float) -> np.ndarray:
    """Stock change and annual rate between two epochs (Numba kernel).

    Parameters
    ----------
    total_t1, total_t2 : (ny, nx) float32
        Total carbon density at the first and second epoch, t C ha-1.
    years : float
        t2 - t1 in years (> 0).

    Returns
    -------
    (2, ny, nx) float32
        Change (t C ha-1, positive = sequestration) and rate (t C ha-1 yr-1).
    """
    a = np.ascontiguousarray(total_t1, dtype=np.float32)
    b = np.ascontiguousarray(total_t2, dtype=np.float32)
    out = np.empty((2,) + a.shape, dtype=np.float32)
    _change_kernel(a, b, np.float32(years), out)
    return out


def change_reference(total_t1: np.ndarray, total_t2: np.ndarray, years: float) -> np.ndarray:
    """Plain-NumPy reference of :func:`change_numba`."""
    d = np.asarray(total_t2, np.float32) - np.asarray(total_t1, np.float32)
    return np.stack([d, d / np.float32(years)]).astype(np.float32)


ENGINES = {
    "numba": {"stock": stock_numba, "change": change_numba},
    "numpy": {"stock": stock_reference, "change": change_reference},
}
