"""The NDVI flux path on one tile: monthly NDVI + climate -> CASA NPP, Rh, NEP (annual sums).

Classes come from the last land-cover epoch. Rh is computed wherever the class is
vegetated or bare/sand (soil respires); NEP = NPP - Rh and Rh are masked (NaN) for water,
built-up and snow/ice (science.md §2.3). Annual values are sums of the 12 months.
"""
from __future__ import annotations

import numpy as np

from . import variables as V
from .kernels.casa import casa_npp_numba, casa_npp_reference
from .kernels.gapfill import gapfill_numba, gapfill_reference
from .kernels.rh import ENGINES as RH_ENGINES
from .rasterio_io import read_continuous

GAPFILL = {"numba": gapfill_numba, "numpy": gapfill_reference}
NPP_ENGINES = {"numba": casa_npp_numba, "numpy": casa_npp_reference}


def run_flux_tile(ctx, tid, transform, shape, per_epoch, out_dir, written, write) -> dict[str, np.ndarray]:
    fc = ctx.flux
    crs = ctx.grid.crs
    engine = ctx.project.engine
    _, _, groups = per_epoch[-1]
    classes = np.where(groups >= ctx.n_groups, 0, groups).astype(np.int16)

    ndvi = fc.series.read_months(crs, transform, shape)
    if fc.gap_fill == "linear":
        ndvi = GAPFILL[engine](ndvi)
    t = fc.climate["temperature"].read(crs, transform, shape)
    p = fc.climate["precipitation"].read(crs, transform, shape)
    sol = fc.climate["radiation"].read(crs, transform, shape)
    px = {}
    for key, info in (("ndvi_min_px", fc.ndvi_min_px), ("ndvi_max_px", fc.ndvi_max_px)):
        if info is not None:
            px[key] = read_continuous(info, crs, transform, shape, resampling="bilinear")[0]

    npp_m = NPP_ENGINES[engine](ndvi, t, p, sol, classes, **fc.casa.kernel_kwargs(),
                                water_stress=fc.water_stress, **px)
    rh_m = RH_ENGINES[engine]["rh"](t, p, days_per_month=fc.rh_days, precip=fc.rh_precip, year=fc.year)
    nep_m = RH_ENGINES[engine]["nep"](npp_m, rh_m, classes, fc.casa.vegetated)

    # Rh has no meaning where NEP is masked (water, built-up, snow) or where class is nodata
    masked = np.isnan(nep_m).all(axis=0)
    rh_m = np.where(masked[None], np.float32(np.nan), rh_m).astype(np.float32)

    year = fc.year
    npp_a = npp_m.sum(axis=0, dtype=np.float64).astype(np.float32)
    rh_a = rh_m.sum(axis=0, dtype=np.float64).astype(np.float32)
    nep_a = nep_m.sum(axis=0, dtype=np.float64).astype(np.float32)
    for var, arr in ((V.npp(year), npp_a), (V.rh(year), rh_a), (V.nep(year), nep_a)):
        write(out_dir, var, tid, arr, ctx, transform, written)
    if fc.write_monthly:
        for name, arr in (("npp", npp_m), ("rh", rh_m), ("nep", nep_m)):
            var = V.monthly(name, year)
            write(out_dir, var, tid, arr, ctx, transform, written)
    return {V.npp(year).stem: npp_a, V.rh(year).stem: rh_a, V.nep(year).stem: nep_a}
