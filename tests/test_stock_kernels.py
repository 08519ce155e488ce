"""Stock kernels: Numba equals the NumPy reference; InVEST unit-test vectors; Dask = in-memory."""
from __future__ import annotations

import json

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tanhui.kernels.stock import change_numba, change_reference, stock_numba, stock_reference
from tanhui.legends import DensityTable
from tanhui.pipeline import carbon_stock, stock_change

# bounded domains: codes -1..20 (with -1 = nodata and some codes absent from the LUT)
codes_st = arrays(np.int32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                  elements=st.integers(-1, 20))
lut_st = arrays(np.float32, st.tuples(st.just(4), st.integers(1, 16)),
                elements=st.one_of(st.floats(0, 500, width=32), st.just(np.nan)))


@given(codes_st, lut_st)
def test_stock_numba_equals_reference(codes, lut):
    np.testing.assert_array_equal(stock_numba(codes, lut), stock_reference(codes, lut))


@given(codes_st, lut_st)
def test_stock_is_nan_exactly_where_code_is_nodata_or_unknown(codes, lut):
    out = stock_reference(codes, lut)
    outside = (codes < 0) | (codes >= lut.shape[1])
    assert np.isnan(out[:, outside]).all()


@given(arrays(np.float32, (5, 7), elements=st.one_of(st.floats(0, 300, width=32), st.just(np.nan))),
       arrays(np.float32, (5, 7), elements=st.floats(0, 300, width=32)),
       st.integers(1, 50))
def test_change_numba_equals_reference(a, b, years):
    np.testing.assert_allclose(change_numba(a, b, years), change_reference(a, b, years),
                               rtol=1e-6, equal_nan=True)


def test_invest_unit_test_vectors(shared_data):
    """InVEST tests/test_carbon.py: 10x10 rasters of 1 m pixels, pools per lucode."""
    vec = json.loads((shared_data / "invest-carbon-reference" / "invest_carbon_test_vectors.json").read_text())
    table = DensityTable.load(shared_data / "invest-carbon-reference" / "carbon_pools_willamette.csv")
    lut = table.lut(3)
    bas = stock_numba(np.ones((10, 10), np.int32), lut)
    alt = stock_numba(np.full((10, 10), 2, np.int32), lut)
    change = change_numba(bas[4], alt[4], 14)
    # hand-typed from the InVEST test: 86, 28, -58 t C/ha; totals over 100 m2 = 0.86, 0.28, -0.58 t
    np.testing.assert_allclose(bas[4], 86.0)
    np.testing.assert_allclose(alt[4], 28.0)
    np.testing.assert_allclose(change[0], -58.0)
    area_ha = 1.0 / 1e4
    assert bas[4].sum(dtype=np.float64) * area_ha == pytest.approx(0.86, rel=1e-9)
    assert alt[4].sum(dtype=np.float64) * area_ha == pytest.approx(0.28, rel=1e-9)
    assert change[0].sum(dtype=np.float64) * area_ha == pytest.approx(-0.58, rel=1e-9)
    assert json.dumps(vec)  # the vectors file is readable (values above are hand-typed from it)


@pytest.mark.parametrize("seed", range(4))
def test_dask_equals_in_memory_for_random_chunkings(seed):
    rng = np.random.default_rng(seed)
    codes = rng.choice([0, 11, 12, 21, 23, 31, 32, 33, 41, 51, 61, 64], size=(37, 53)).astype(np.uint8)
    ny = sorted(set(rng.integers(1, 37, 3).tolist()))
    nx = sorted(set(rng.integers(1, 53, 3).tolist()))
    chunks = (tuple(np.diff([0, *ny, 37]).tolist()), tuple(np.diff([0, *nx, 53]).tolist()))
    eager = xr.DataArray(codes, dims=("y", "x"))
    lazy = xr.DataArray(da.from_array(codes, chunks=chunks), dims=("y", "x"))
    a = carbon_stock(eager, "carbon_density_horqin", legend="cnlucc", nodata=0)
    b = carbon_stock(lazy, "carbon_density_horqin", legend="cnlucc", nodata=0)
    assert b["total"].chunks == lazy.chunks
    for name in ("above", "below", "soil", "dead", "total"):
        np.testing.assert_array_equal(a[name].values, b[name].compute().values)
        assert b[name].attrs["units"] == "t C ha-1"
    ch = stock_change(a["total"], b["total"], 8)
    assert ch["change"].attrs["units"] == "t C ha-1"


def test_single_class_tile_is_density_times_area():
    """A tile of one class: total = density x area (hand computation with the shipped table)."""
    table = DensityTable.load("carbon_density_horqin")
    expected = float(table.table.loc[7, ["c_above_tC_ha", "c_below_tC_ha", "c_soil_tC_ha", "c_dead_tC_ha"]].sum())
    ds = carbon_stock(xr.DataArray(np.full((4, 5), 31, np.uint8), dims=("y", "x")),
                      table, legend="cnlucc")
    np.testing.assert_allclose(ds["total"].values, expected, rtol=1e-6)
    # 20 pixels of 30 m: total stock in t C
    assert float(ds["total"].values.sum(dtype=np.float64)) * 0.09 == pytest.approx(expected * 20 * 0.09, rel=1e-6)
