"""Pei et al. (2009) Rh and NEP = NPP − Rh (science.md §2.1, §2.3).

Expected numbers are the hand-computed [D] test values of science.md §2.1; the Numba kernels
are compared with the NumPy references on hypothesis-drawn tiles.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose

from tanhui.casa_params import CasaParams
from tanhui.errors import ConfigError, GridMismatchError
from tanhui.kernels import rh

TONGYU_T_C = np.array([-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0])
FIXTURE_P_MM = np.array([2, 3, 8, 18, 35, 70, 120, 85, 40, 15, 5, 3], dtype=float)
VEGETATED = CasaParams.load().vegetated
PROPS = settings(max_examples=30, deadline=None)


def _stack(values):
    """12 monthly values as a (12, 1, 1) stack."""
    return np.asarray(values, dtype=np.float32).reshape(12, 1, 1)


def _hand_rh(t, p, days=30.0):
    # the §2.1 formula typed out independently of the module
    return 0.22 * (np.exp(0.0912 * t) + np.log(0.3145 * p + 1.0)) * days * 0.465


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rh_science_values(engine):
    fn = rh.ENGINES[engine]["rh"]
    t = _stack([20, 25, 0] * 4)
    p = _stack([100, 150, 0] * 4)
    out = fn(t, p)[:3, 0, 0]
    # tolerance 0.005 (2 printed decimals)
    assert_allclose(out, [29.70, 41.90, 3.07], atol=0.005)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rh_annual_tongyu_fixture(engine):
    annual = rh.ENGINES[engine]["rh"](_stack(TONGYU_T_C), _stack(FIXTURE_P_MM)).sum()
    assert_allclose(annual, 195.0, atol=0.5)  # science.md §2.1, printed to the unit
    assert_allclose(annual, _hand_rh(TONGYU_T_C, FIXTURE_P_MM).sum(), rtol=1e-5)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rh_options(engine):
    fn = rh.ENGINES[engine]["rh"]
    t, p = _stack(TONGYU_T_C), _stack(FIXTURE_P_MM)
    base = fn(t, p)[:, 0, 0]
    leap = fn(t, p, days_per_month="actual", year=2020)[:, 0, 0]
    days_2020 = np.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], float)
    assert_allclose(leap, base * days_2020 / 30.0, rtol=1e-6)
    assert_allclose(fn(t, p, days_per_month="actual", year=2023)[1, 0, 0], base[1] * 28 / 30,
                    rtol=1e-6)
    daily = fn(t, p, precip="daily_mean")[:, 0, 0]
    assert_allclose(daily, _hand_rh(TONGYU_T_C, FIXTURE_P_MM / 30.0), rtol=1e-5)
    assert (daily <= base + 1e-6).all()  # the ln term shrinks with daily-mean precipitation
    daily_actual = fn(t, p, days_per_month="actual", precip="daily_mean", year=2021)[:, 0, 0]
    d21 = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], float)
    assert_allclose(daily_actual, _hand_rh(TONGYU_T_C, FIXTURE_P_MM / d21, d21), rtol=1e-5)


def test_rh_option_errors():
    t, p = _stack(TONGYU_T_C), _stack(FIXTURE_P_MM)
    with pytest.raises(ConfigError, match="needs the year"):
        rh.rh_pei_numba(t, p, days_per_month="actual")
    with pytest.raises(ConfigError, match="rh_days = '31'"):
        rh.rh_pei_numba(t, p, days_per_month="31")
    with pytest.raises(ConfigError, match="rh_precip = 'daily'"):
        rh.rh_pei_reference(t, p, precip="daily")
    with pytest.raises(GridMismatchError, match="'p'"):
        rh.rh_pei_numba(t, np.zeros((12, 2, 1), np.float32))


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_rh_nan_month_masks_whole_pixel(engine):
    t = np.repeat(_stack(TONGYU_T_C), 2, axis=2)
    p = np.repeat(_stack(FIXTURE_P_MM), 2, axis=2)
    p[3, 0, 1] = np.nan
    out = rh.ENGINES[engine]["rh"](t, p)
    assert np.isnan(out[:, 0, 1]).all() and np.isfinite(out[:, 0, 0]).all()


def test_constants():
    assert rh.RH_SCALE_GC_M2_D == 0.22 and rh.RH_TEMP_COEF_PER_C == 0.0912
    assert rh.RH_PRECIP_COEF_PER_MM == 0.3145 and rh.RH_HETEROTROPHIC_SHARE == 0.465
    assert_allclose(rh.C_TO_CO2, 3.6667, atol=5e-5)
    # 100 g C m-2 a-1 = 1 t C ha-1 a-1 = 3.667 t CO2 ha-1 a-1 (science.md §0.1, §2.3)
    assert_allclose(rh.nep_to_tco2_ha(100.0), 3.6667, atol=5e-5)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_nep_masks_and_values(engine):
    fn = rh.ENGINES[engine]["nep"]
    ids = [0, 7, 10, 11, 12, 13, 14, 99]
    cls = np.array([ids], np.int16)
    npp = np.full((2, 1, len(ids)), 50.0, np.float32)
    npp[:, 0, 3:5] = 0.0  # sand and bare with no NPP
    rh_ = np.full((2, 1, len(ids)), 20.0, np.float32)
    rh_[1, 0, 1] = np.nan
    out = fn(npp, rh_, cls, VEGETATED)
    assert np.isnan(out[:, 0, [0, 2, 5, 6, 7]]).all()  # nodata, water, built-up, snow, unknown
    assert out[0, 0, 1] == 30.0 and np.isnan(out[1, 0, 1])  # NaN Rh -> NaN NEP
    assert (out[:, 0, 3:5] == -20.0).all()  # bare/sand: Rh computed, NEP = -Rh (a source)


# --------------------------------------------------------------------------- properties


def _f32(lo, hi):
    return st.floats(float(np.float32(lo)), float(np.float32(hi)), width=32)


@st.composite
def climate(draw):
    ny, nx = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (12, ny, nx)
    t = draw(hnp.arrays(np.float32, shape, elements=_f32(-30, 35)))
    p = draw(hnp.arrays(np.float32, shape, elements=_f32(0, 300)))
    for arr in (t, p):
        for k, i, j in draw(st.lists(st.tuples(st.integers(0, 11), st.integers(0, ny - 1),
                                               st.integers(0, nx - 1)), max_size=2)):
            arr[k, i, j] = np.nan
    classes = draw(hnp.arrays(np.int16, (ny, nx), elements=st.integers(0, 14)))
    return t, p, classes


@PROPS
@given(x=climate(), days=st.sampled_from(["30", "actual"]),
       precip=st.sampled_from(["monthly", "daily_mean"]), year=st.integers(1990, 2030))
def test_property_rh_numba_equals_reference(x, days, precip, year):
    t, p, _ = x
    got = rh.rh_pei_numba(t, p, days, precip, year)
    ref = rh.rh_pei_reference(t, p, days, precip, year)
    assert_allclose(got, ref, rtol=1e-5, equal_nan=True)
    bad = (np.isnan(t) | np.isnan(p)).any(axis=0)
    assert np.isnan(got[:, bad]).all()
    assert (got[:, ~bad] > 0).all()  # the formula is positive for P >= 0


@PROPS
@given(x=climate(), npp_scale=_f32(0, 300))
def test_property_nep_numba_equals_reference(x, npp_scale):
    t, p, classes = x
    r = rh.rh_pei_numba(t, p)
    npp = (np.abs(np.nan_to_num(t)) / 35.0 * npp_scale).astype(np.float32)
    got = rh.nep_numba(npp, r, classes, VEGETATED)
    assert_allclose(got, rh.nep_reference(npp, r, classes, VEGETATED), rtol=1e-5, atol=1e-5,
                    equal_nan=True)
    masked = np.isin(classes, (0, 10, 13, 14))
    assert np.isnan(got[:, masked]).all()  # non-vegetated and nodata -> NaN
    keep = ~masked & np.isfinite(r).all(axis=0)
    assert_allclose(got[:, keep], (npp - r)[:, keep], rtol=1e-6, atol=1e-5)
