"""The NDVI flux path on one tile: monthly NDVI + climate -> CASA NPP, Rh, NEP (annual sums).

Classes come from the last land-cover epoch. Rh is computed wherever the class is
vegetated or bare/sand (soil respires); NEP = NPP - Rh and Rh are masked (NaN) for water,
built-up and snow/ice (science.md §2.3). Annual values are sums of the 12 months.

Memory: every kernel is per pixel (Topt needs only that pixel's year), so the tile is
processed in strips of rows. A (12, 2048, 2048) float32 stack is 192 MiB and the flux path
needs about eight of them; strips of 256 rows keep that at about 200 MiB per tile whatever
the tile size. Strips give the same values as a whole tile (same inputs per pixel).
"""
from __future__ import annotations

import numpy as np
from rasterio.transform import Affine

from . import variables as V
from .kernels.casa import casa_npp_numba, casa_npp_reference
from .kernels.gapfill import gapfill_numba, gapfill_reference
from .kernels.rh import ENGINES as RH_ENGINES
from .rasterio_io import read_continuous

GAPFILL = {"numba": gapfill_numba, "numpy": gapfill_reference}
NPP_ENGINES = {"numba": casa_npp_numba, "numpy": casa_npp_reference}
STRIP_ROWS = 256


def _climate_strip(src, crs, transform, shape) -> np.ndarray:
    """(12, ny, nx) climate on a strip; monthly values become a read-only broadcast view."""
    if src.monthly is not None:
        return np.broadcast_to(src.monthly.astype(np.float32)[:, None, None], (12,) + tuple(shape))
    return src.read(crs, transform, shape)


def _rh_monthly(ctx, rh_fn, crs, transform, shape) -> np.ndarray:
    """Monthly Rh on a strip. With monthly-value climate Rh depends on the month only, so it
    is computed once per month and broadcast (the same numbers, without per-pixel work)."""
    fc = ctx.flux
    t_src, p_src = fc.climate["temperature"], fc.climate["precipitation"]
    kw = dict(days_per_month=fc.rh_days, precip=fc.rh_precip, year=fc.year)
    if t_src.monthly is not None and p_src.monthly is not None:
        t1 = t_src.monthly.astype(np.float32)[:, None, None]
        p1 = p_src.monthly.astype(np.float32)[:, None, None]
        return np.broadcast_to(rh_fn(t1, p1, **kw), (12,) + tuple(shape))
    t = _climate_strip(t_src, crs, transform, shape)
    p = _climate_strip(p_src, crs, transform, shape)
    return rh_fn(t, p, **kw)


def run_flux_tile(ctx, tid, transform, shape, per_epoch, out_dir, written, write) -> dict[str, np.ndarray]:
    fc = ctx.flux
    crs = ctx.grid.crs
    engine = ctx.project.engine
    rh_fn, nep_fn = RH_ENGINES[engine]["rh"], RH_ENGINES[engine]["nep"]
    _, _, groups = per_epoch[-1]
    classes_tile = np.where(groups >= ctx.n_groups, 0, groups).astype(np.int16)
    ny, nx = shape
    annual = {k: np.empty((ny, nx), np.float32) for k in ("npp", "rh", "nep")}
    monthly = ({k: np.empty((12, ny, nx), np.float32) for k in ("npp", "rh", "nep")}
               if fc.write_monthly else None)

    # numba engine: water stress once per month when T and P are 12 values for every pixel
    uniform = ({"uniform_climate": True} if engine == "numba"
               and fc.climate["temperature"].monthly is not None
               and fc.climate["precipitation"].monthly is not None else {})

    for r0 in range(0, ny, STRIP_ROWS):
        r1 = min(ny, r0 + STRIP_ROWS)
        st = transform * Affine.translation(0, r0)
        sshape = (r1 - r0, nx)
        classes = classes_tile[r0:r1]
        ndvi = fc.series.read_months(crs, st, sshape)
        if fc.gap_fill == "linear":
            ndvi = GAPFILL[engine](ndvi)
        t = _climate_strip(fc.climate["temperature"], crs, st, sshape)
        p = _climate_strip(fc.climate["precipitation"], crs, st, sshape)
        sol = _climate_strip(fc.climate["radiation"], crs, st, sshape)
        px = {}
        for key, info in (("ndvi_min_px", fc.ndvi_min_px), ("ndvi_max_px", fc.ndvi_max_px)):
            if info is not None:
                px[key] = read_continuous(info, crs, st, sshape, resampling="bilinear")[0]

        npp_m = NPP_ENGINES[engine](ndvi, t, p, sol, classes, **fc.casa.kernel_kwargs(),
                                    water_stress=fc.water_stress, **px, **uniform)
        del ndvi, t, p, sol
        rh_m = _rh_monthly(ctx, rh_fn, crs, st, sshape)
        nep_m = nep_fn(npp_m, rh_m, classes, fc.casa.vegetated)

        # Rh has no meaning where NEP is masked (water, built-up, snow) or where class is nodata
        masked = np.isnan(nep_m).all(axis=0)
        rh_m = np.array(rh_m, dtype=np.float32)  # writable copy of a broadcast view
        rh_m[:, masked] = np.nan

        for name, arr in (("npp", npp_m), ("rh", rh_m), ("nep", nep_m)):
            annual[name][r0:r1] = arr.sum(axis=0, dtype=np.float64)
            if monthly is not None:
                monthly[name][:, r0:r1] = arr
        del npp_m, rh_m, nep_m

    year = fc.year
    out = {}
    for name, var in (("npp", V.npp(year)), ("rh", V.rh(year)), ("nep", V.nep(year))):
        write(out_dir, var, tid, annual[name], ctx, transform, written)
        out[var.stem] = annual[name]
    if monthly is not None:
        for name, arr in monthly.items():
            write(out_dir, V.monthly(name, year), tid, arr, ctx, transform, written)
    return out
