"""Fill missing months of a monthly NDVI year by circular linear interpolation in time.

Cloud and snow gaps in winter composites would otherwise remove a pixel from CASA for the
whole year (Topt and Thornthwaite need all 12 months). A missing month is interpolated
linearly between the nearest valid months before and after it, wrapping December to
January; pixels with fewer than ``min_valid`` valid months stay missing.
"""
from __future__ import annotations

import numba
import numpy as np

MIN_VALID_MONTHS = 6


@numba.njit(nogil=True, cache=True)
def _gapfill_kernel(x, min_valid, out):
    nt, ny, nx = x.shape
    n_valid = np.empty(nx, np.int64)
    for i in range(ny):
        # copy and count valid months with pixels innermost (contiguous reads)
        n_valid[:] = 0
        for k in range(nt):
            for j in range(nx):
                v = x[k, i, j]
                out[k, i, j] = v
                if not np.isnan(v):
                    n_valid[j] += 1
        for j in range(nx):
            if n_valid[j] == nt:
                continue
            if n_valid[j] < min_valid:
                for k in range(nt):
                    out[k, i, j] = np.nan
                continue
            for k in range(nt):
                if not np.isnan(x[k, i, j]):
                    continue
                b = 1  # distance back to the previous valid month (circular)
                while np.isnan(x[(k - b) % nt, i, j]):
                    b += 1
                f = 1
                while np.isnan(x[(k + f) % nt, i, j]):
                    f += 1
                v0 = x[(k - b) % nt, i, j]
                v1 = x[(k + f) % nt, i, j]
                out[k, i, j] = v0 + (v1 - v0) * b / (b + f)


def gapfill_numba(x: np.ndarray, min_valid: int = MIN_VALID_MONTHS) -> np.ndarray:
    """(12, ny, nx) float32 with NaN gaps -> gaps filled; see module docstring."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty_like(x)
    _gapfill_kernel(x, min_valid, out)
    return out


def gapfill_reference(x: np.ndarray, min_valid: int = MIN_VALID_MONTHS) -> np.ndarray:
    """Plain-NumPy reference of :func:`gapfill_numba` (np.interp on a tripled year)."""
    x = np.asarray(x, dtype=np.float32)
    nt = x.shape[0]
    out = x.copy()
    flat = out.reshape(nt, -1)
    for p in range(flat.shape[1]):
        col = flat[:, p]
        ok = ~np.isnan(col)
        if ok.sum() < min_valid:
            col[:] = np.nan
            continue
        if ok.all():
            continue
        t = np.arange(nt)
        tt = np.concatenate([t[ok] - nt, t[ok], t[ok] + nt])
        vv = np.tile(col[ok].astype(np.float64), 3)
        col[~ok] = np.interp(t[~ok], tt, vv).astype(np.float32)
    return out
