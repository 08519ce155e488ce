"""xarray/Dask flux API: Dask results equal in-memory results for random chunkings; NaN in -> NaN out."""
from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from tanhui.pipeline import carbon_sink

T_TONGYU = np.array([-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0], np.float32)
P_FIXTURE = np.array([2, 3, 8, 18, 35, 70, 120, 85, 40, 15, 5, 3], np.float32)
SOL = np.array([218, 282, 440, 555, 671, 689, 690, 609, 470, 350, 235, 197], np.float32)


def _inputs(seed, ny=13, nx=17):
    rng = np.random.default_rng(seed)
    ndvi = rng.uniform(0.05, 0.8, (12, ny, nx)).astype(np.float32)
    t = T_TONGYU[:, None, None] + rng.normal(0, 1, (12, ny, nx)).astype(np.float32)
    p = P_FIXTURE[:, None, None] * rng.uniform(0.7, 1.3, (1, ny, nx)).astype(np.float32)
    sol = np.broadcast_to(SOL[:, None, None], (12, ny, nx)).astype(np.float32)
    cls = rng.choice([0, 1, 2, 6, 7, 8, 9, 10, 11, 12, 13], (ny, nx)).astype(np.int16)
    ndvi[3, 0, 0] = np.nan  # a missing input month -> that (grassland) pixel is nodata everywhere
    cls[0, 0] = 7
    return ndvi, t, p, sol, cls


@pytest.mark.parametrize("seed", range(3))
def test_dask_equals_in_memory(seed):
    ndvi, t, p, sol, cls = _inputs(seed)
    rng = np.random.default_rng(100 + seed)
    cy, cx = int(rng.integers(1, 13)), int(rng.integers(1, 17))
    dims = ("month", "y", "x")
    eager = carbon_sink(*[xr.DataArray(v, dims=dims) for v in (ndvi, t, p, sol)], xr.DataArray(cls, dims=("y", "x")))
    lazy = carbon_sink(*[xr.DataArray(da.from_array(v, chunks=(int(rng.integers(1, 12)), cy, cx)), dims=dims)
                         for v in (ndvi, t, p, sol)],
                       xr.DataArray(da.from_array(cls, chunks=(cy, cx)), dims=("y", "x")))
    for n in ("npp", "rh", "nep"):
        np.testing.assert_array_equal(eager[n].values, lazy[n].compute().values)
        assert lazy[n].attrs["units"] == "g C m-2 month-1"
    assert np.isnan(eager["npp"].values[:, 0, 0]).all() and np.isnan(eager["nep"].values[:, 0, 0]).all()
    nonveg = np.isin(cls, [10, 13])
    assert (eager["npp"].values[:, nonveg] == 0).all() and np.isnan(eager["nep"].values[:, nonveg]).all()
