"""CASA kernels (FPAR, temperature and water stress, NPP) and the CASA class table.

Expected numbers are the hand-computed [D] test vectors of science.md §1.3, §1.4 and §1.7;
the Numba kernels are compared with the NumPy references (an independent vectorised code
path) on hypothesis-drawn tiles.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose

from tanhui.casa_params import CasaParams, EpsilonSetRWarning
from tanhui.errors import ConfigError, InputFileError, InputValueError, ParameterTableError
from tanhui.kernels import casa

# science.md §10.1: Tongyu 1991-2020 monthly mean T (°C) and the synthetic 404 mm P fixture
TONGYU_T_C = np.array([-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0])
FIXTURE_P_MM = np.array([2, 3, 8, 18, 35, 70, 120, 85, 40, 15, 5, 3], dtype=float)
JUL, MAY = 6, 4
GRASS, WATER, BUILT, SNOW, SAND, BARREN = 7, 10, 13, 14, 11, 12
NON_VEGETATED = (WATER, BUILT, SNOW)

PARAMS = CasaParams.load()
KW = PARAMS.kernel_kwargs()
PROPS = settings(max_examples=30, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _px(v, dtype=np.float32):
    """A 12-month vector as a (12, 1, 1) stack."""
    return np.asarray(v, dtype=dtype).reshape(12, 1, 1)


def _july_pixel(ndvi_jul=0.55, sol_jul=721.0):
    """Grassland pixel of science.md §1.7: NDVI peaks in July, Topt = T(July) = 24.6 °C."""
    ndvi = np.full(12, 0.2)
    ndvi[JUL] = ndvi_jul
    sol = np.full(12, 300.0)
    sol[JUL] = sol_jul
    return _px(ndvi), _px(TONGYU_T_C), _px(FIXTURE_P_MM), _px(sol), np.array([[GRASS]], np.int16)


# --------------------------------------------------------------------------- temperature stress


def test_te2_hand_values_science_1_3():
    # tolerance 5e-5: the science.md values are printed to 4 decimals
    topt = 24.0
    assert_allclose(casa.t_epsilon2(topt, topt), 0.9912, atol=5e-5)
    assert_allclose(casa.t_epsilon2(-5.0, -5.0), 0.9912, atol=5e-5)  # any Topt
    raw = casa.t_epsilon2(np.array([topt - 10, topt + 10, topt - 13]), topt, half_rule=False)
    assert_allclose(raw, [0.5892, 0.5801, 0.4182], atol=5e-5)


def test_te2_half_rule_and_jump_at_minus_13():
    topt = 20.0
    half = 0.4956
    # inside the window the raw value holds (boundaries exclusive)
    assert_allclose(casa.t_epsilon2(topt - 13.0, topt), 0.4182, atol=5e-5)
    assert_allclose(casa.t_epsilon2(topt + 10.0, topt), 0.5801, atol=5e-5)
    # just past the thresholds: ½·Te2(Topt)
    assert_allclose(casa.t_epsilon2(topt - 13.01, topt), half, atol=5e-5)
    assert_allclose(casa.t_epsilon2(topt + 10.01, topt), half, atol=5e-5)
    assert_allclose(casa.t_epsilon2(topt - 30.0, topt), half, atol=5e-5)
    # the published rule makes Te2 jump upward at -13 °C: keep it
    assert casa.t_epsilon2(topt - 13.01, topt) - casa.t_epsilon2(topt - 13.0, topt) > 0.07


def test_te1_hand_values_and_frozen_months():
    # tolerance 5e-4: science.md prints 3 decimals
    assert_allclose(casa.t_epsilon1(20.0), 1.000, atol=5e-4)
    assert_allclose(casa.t_epsilon1(24.0), 0.992, atol=5e-4)
    assert_allclose(casa.t_epsilon1(24.0, np.array([-10.0, -25.0, -9.99])), [0.0, 0.0, 0.992],
                    atol=5e-4)
    assert casa.t_epsilon1(-40.0) == 0.0  # parabola clipped at 0


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_temperature_stress_kernel_on_tongyu(engine):
    ndvi, t, *_ = _july_pixel()
    out = casa.ENGINES[engine]["temperature_stress"](ndvi, t)
    te1, te2 = out[0, :, 0, 0], out[1, :, 0, 0]
    topt = 24.6
    expect_te1 = 0.8 + 0.02 * topt - 0.0005 * topt**2  # 0.98942, hand formula
    # January (-15.1) and December (-13.0) are <= -10 °C -> 0; February (-9.9) is not
    assert te1[0] == 0.0 and te1[11] == 0.0
    assert_allclose(te1[1], expect_te1, rtol=1e-6)
    assert_allclose(te2[JUL], 0.9912, atol=5e-5)
    # 8.8 °C in April is 15.8 °C below Topt -> half rule
    assert_allclose(te2[3], 0.4956, atol=5e-5)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_topt_month_option_and_first_month_ties(engine):
    ndvi, t, *_ = _july_pixel()
    fn = casa.ENGINES[engine]["temperature_stress"]
    fixed = fn(ndvi, t, topt_month=8)  # Topt = T(August) = 22.7 °C
    expect = 0.8 + 0.02 * 22.7 - 0.0005 * 22.7**2
    assert_allclose(fixed[0, 6, 0, 0], expect, rtol=1e-6)
    # ties: the first month of maximum NDVI wins (June, 22.1 °C, before July)
    tie = ndvi.copy()
    tie[5] = tie[6]
    expect = 0.8 + 0.02 * 22.1 - 0.0005 * 22.1**2
    assert_allclose(fn(tie, t)[0, 6, 0, 0], expect, rtol=1e-6)
    # a raster with 0 = per pixel
    both = fn(np.concatenate([ndvi, ndvi], axis=2), np.concatenate([t, t], axis=2),
              topt_month=np.array([[8, 0]]))
    assert_allclose(both[0, 6, 0], [0.8 + 0.02 * 22.7 - 0.0005 * 22.7**2,
                                    0.8 + 0.02 * 24.6 - 0.0005 * 24.6**2], rtol=1e-6)


def test_regional_topt_month():
    ndvi = np.full((12, 2, 2), 0.2, np.float32)
    ndvi[7] = 0.6
    ndvi[6, 0, 0] = 0.9  # one pixel peaks in July, the region in August
    ndvi[3, 1, 1] = np.nan
    assert casa.regional_topt_month(ndvi) == 8


@pytest.mark.parametrize("bad", [0, 13, 7.5, np.array([[13]])])
def test_topt_month_rejects_bad_months(bad):
    ndvi, t, *_ = _july_pixel()
    with pytest.raises(InputValueError, match="topt_month"):
        casa.temperature_stress_numba(ndvi, t, topt_month=bad)


# --------------------------------------------------------------------------- water stress


def test_zhou_zhang_terms_science_1_4():
    z = casa.zhou_zhang_terms(TONGYU_T_C, FIXTURE_P_MM)
    assert_allclose(z.heat_index, 47.0, atol=0.05)
    assert_allclose(z.exponent_a, 1.2343, atol=5e-5)
    assert_allclose(z.e0_mm.sum(), 558.0, atol=0.5)
    # July, tolerance = half the last printed digit
    assert_allclose(z.e0_mm[JUL], 123.4, atol=0.05)
    assert_allclose(z.rn_mm[JUL], 118.7, atol=0.05)
    assert_allclose(z.e_mm[JUL], 89.5, atol=0.05)
    assert_allclose(z.ep_mm[JUL], 106.5, atol=0.05)
    assert_allclose(z.w_eps[JUL], 0.920, atol=5e-4)
    # May
    assert_allclose(z.e0_mm[MAY], 76.5, atol=0.05)
    assert_allclose(z.w_eps[MAY], 0.796, atol=5e-4)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_water_stress_kernel_on_tongyu(engine):
    w = casa.ENGINES[engine]["water_stress"](_px(TONGYU_T_C), _px(FIXTURE_P_MM))[:, 0, 0]
    assert_allclose(w[JUL], 0.920, atol=5e-4)
    assert_allclose(w[MAY], 0.796, atol=5e-4)
    # months with T <= 0 have E0 = 0 -> the documented choice We = 0.5
    assert_allclose(w[[0, 1, 2, 10, 11]], 0.5)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_water_stress_edge_cases(engine):
    fn = casa.ENGINES[engine]["water_stress"]
    dry = FIXTURE_P_MM.copy()
    dry[JUL] = 0.0  # P = 0 with E0 > 0 -> E = 0 -> We = 0.5
    assert fn(_px(TONGYU_T_C), _px(dry))[JUL, 0, 0] == pytest.approx(0.5)
    frozen = np.full(12, -5.0)  # no month above 0 °C: I = 0, E0 = 0 everywhere
    assert_allclose(fn(_px(frozen), _px(FIXTURE_P_MM)), 0.5)
    wet = np.full(12, 300.0)  # P >> E0: E > E0, clamp at 1
    w = fn(_px(TONGYU_T_C), _px(wet))
    assert np.all((w >= 0.5) & (w <= 1.0))
    assert_allclose(fn(_px(TONGYU_T_C), _px(FIXTURE_P_MM), method="none"), 1.0)


def test_water_stress_dispatch_errors():
    with pytest.raises(ConfigError, match=r"potter_bucket.*not implemented.*'zhou_zhang', 'none'"):
        casa.water_stress_numba(_px(TONGYU_T_C), _px(FIXTURE_P_MM), method="potter_bucket")
    with pytest.raises(ConfigError, match=r"'zhou'.*not a known method"):
        casa.water_stress_reference(_px(TONGYU_T_C), _px(FIXTURE_P_MM), method="zhou")


# --------------------------------------------------------------------------- FPAR


def test_fpar_july_grassland_science_1_7():
    # tolerance 5e-4 (3 printed decimals)
    assert_allclose(casa.simple_ratio(0.55), 3.444, atol=5e-4)
    f_ndvi, f_sr = casa.fpar_components_reference(0.55, 0.023, 0.634, 1.05, 4.46)
    assert_allclose(f_ndvi, 0.820, atol=5e-4)
    assert_allclose(f_sr, 0.667, atol=5e-4)
    for fn in (casa.fpar_numba, casa.fpar_reference):
        f = fn(np.full((1, 1, 1), 0.55, np.float32), np.array([[GRASS]], np.int16),
               KW["ndvi_min"], KW["ndvi_max"], KW["sr_min"], KW["sr_max"])
        assert_allclose(f[0, 0, 0], 0.743, atol=5e-4)


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_fpar_clamps_and_nodata(engine):
    fn = casa.ENGINES[engine]["fpar"]
    ndvi = np.array([-0.3, 0.0, 0.01, 0.634, 0.9, 1.0, np.nan], np.float32).reshape(7, 1, 1)
    f = fn(ndvi, np.array([[GRASS]], np.int16), KW["ndvi_min"], KW["ndvi_max"], KW["sr_min"],
           KW["sr_max"])[:, 0, 0]
    assert_allclose(f[:3], 0.001, rtol=1e-6)  # NDVI <= 0 and below NDVI_min
    assert_allclose(f[3:6], 0.95, atol=2e-3)  # at/above NDVI_max (SR_max rounded in the table)
    assert_allclose(f[4:6], 0.95, rtol=1e-6)
    assert np.isnan(f[6])
    for cls in (0, WATER, 99):  # nodata, class without bounds, id outside the vectors
        g = fn(ndvi[:1], np.array([[cls]], np.int16), KW["ndvi_min"], KW["ndvi_max"],
               KW["sr_min"], KW["sr_max"])
        assert np.isnan(g).all()


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_fpar_per_pixel_bounds_override(engine):
    fn = casa.ENGINES[engine]["fpar"]
    cls = np.full((1, 4), GRASS, np.int16)
    nmin = np.array([[0.1, np.nan, 0.1, 0.5]], np.float32)
    nmax = np.array([[0.8, 0.8, np.nan, 0.4]], np.float32)  # last pair degenerate -> class
    ndvi = np.broadcast_to(np.array([0.1, 0.8], np.float32)[:, None, None], (2, 1, 4)).copy()
    f = fn(ndvi, cls, KW["ndvi_min"], KW["ndvi_max"], KW["sr_min"], KW["sr_max"],
           ndvi_min_px=nmin, ndvi_max_px=nmax)
    # pixel 0: both bounds from the raster -> FPAR spans exactly 0.001..0.95
    assert_allclose(f[:, 0, 0], [0.001, 0.95], rtol=1e-5)
    # pixel 1: class NDVI_min (0.023) with pixel max 0.8 -> top at 0.95
    assert_allclose(f[1, 0, 1], 0.95, rtol=1e-5)
    assert f[0, 0, 1] > 0.001
    # pixel 2: raster min 0.1 (SR from the formula), class max 0.634 / SR 4.46
    # pixel 3: degenerate raster pair (0.5 >= 0.4) -> the class pair 0.023/0.634, 1.05/4.46
    nd = np.array([0.1, 0.8])
    for px, (nmin_e, smin_e) in ((2, (0.1, 1.1 / 0.9)), (3, (0.023, 1.05))):
        fn_, fs_ = casa.fpar_components_reference(nd, nmin_e, 0.634, smin_e, 4.46)
        assert_allclose(f[:, 0, px], 0.5 * fn_ + 0.5 * fs_, rtol=1e-5)


# --------------------------------------------------------------------------- NPP


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_npp_july_grassland_science_1_7(engine):
    ndvi, t, p, sol, cls = _july_pixel()
    npp = casa.ENGINES[engine]["casa_npp"](ndvi, t, p, sol, cls, **KW)
    jul = float(npp[JUL, 0, 0])
    assert_allclose(jul, 131.0, rtol=5e-3)  # "NPP ≈ 131"
    fpar = 0.743
    eps = jul / (721.0 * fpar * 0.5)
    assert_allclose(eps, 0.489, atol=1e-3)  # ε = Te1 Te2 We eps_max
    # frozen months (T <= -10 °C) give exactly 0, not NaN
    assert npp[0, 0, 0] == 0.0 and npp[11, 0, 0] == 0.0
    assert np.isfinite(npp).all()
    # annual grassland NPP in Inner Mongolia is ~280-300 g C m-2 (science.md §10.3)
    assert 150.0 < npp.sum() < 450.0


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_npp_options(engine):
    ndvi, t, p, sol, cls = _july_pixel()
    fn = casa.ENGINES[engine]["casa_npp"]
    base = fn(ndvi, t, p, sol, cls, **KW)
    no_water = fn(ndvi, t, p, sol, cls, **KW, water_stress="none")
    w = casa.water_stress_reference(t, p)
    assert_allclose(base[JUL] / no_water[JUL], w[JUL], rtol=1e-5)
    half_par = fn(ndvi, t, p, sol, cls, **KW, par_fraction=0.45)
    assert_allclose(half_par[JUL] / base[JUL], 0.9, rtol=1e-5)
    aug = fn(ndvi, t, p, sol, cls, **KW, topt_month=8)
    assert not np.allclose(aug[JUL], base[JUL])
    with pytest.raises(ConfigError, match="par_fraction"):
        fn(ndvi, t, p, sol, cls, **KW, par_fraction=1.5)
    with pytest.raises(ConfigError, match="remote_sensing_et"):
        fn(ndvi, t, p, sol, cls, **KW, water_stress="remote_sensing_et")


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_npp_class_rules(engine):
    ndvi, t, p, sol, _ = _july_pixel()
    fn = casa.ENGINES[engine]["casa_npp"]
    ids = [0, GRASS, WATER, BUILT, SNOW, SAND, BARREN, 20, 200]
    cls = np.array([ids], np.int16)
    rep = lambda a: np.repeat(a, len(ids), axis=2)  # noqa: E731
    nd = rep(ndvi)
    nd[3, 0, 2] = np.nan  # water with a NaN month: still 0
    npp = fn(nd, rep(t), rep(p), rep(sol), cls, **KW)
    assert np.isnan(npp[:, 0, 0]).all()  # class 0 = nodata
    assert (npp[:, 0, 2:5] == 0.0).all()  # water, built-up, snow: NPP = 0
    assert (npp[JUL, 0, [1, 5, 6]] > 0).all()  # grassland, sand, barren computed
    assert np.isnan(npp[:, 0, 7:]).all()  # ids beyond the table (20) / the vectors (200)
    # NaN in one month of one input -> NaN in all months of that vegetated pixel
    for k, name in enumerate(("ndvi", "t", "p", "sol")):
        arrays = [rep(ndvi), rep(t), rep(p), rep(sol)]
        arrays[k][5, 0, 1] = np.nan
        out = fn(*arrays, cls, **KW)
        assert np.isnan(out[:, 0, 1]).all(), name
        assert np.isfinite(out[:, 0, 5]).all(), name


def test_npp_uint8_classes_match_int16():
    ndvi, t, p, sol, cls = _july_pixel()
    assert_allclose(casa.casa_npp_numba(ndvi, t, p, sol, cls.astype(np.uint8), **KW),
                    casa.casa_npp_numba(ndvi, t, p, sol, cls, **KW))


def test_npp_shape_errors_name_the_input():
    ndvi, t, p, sol, cls = _july_pixel()
    with pytest.raises(InputValueError, match="'sol'.*\\(12, ny, nx\\)"):
        casa.casa_npp_numba(ndvi, t, p, sol[:11], cls, **KW)
    with pytest.raises(InputValueError, match="class raster"):
        casa.casa_npp_numba(ndvi, t, p, sol, cls.astype(np.float32), **KW)
    with pytest.raises(ParameterTableError, match="equal length"):
        casa.casa_npp_numba(ndvi, t, p, sol, cls, **{**KW, "eps_max": KW["eps_max"][:5]})


# --------------------------------------------------------------------------- climate ranges


def test_check_climate_ranges():
    t, p, sol = _px(TONGYU_T_C), _px(FIXTURE_P_MM), _px(np.full(12, 500.0))
    casa.check_climate_ranges(t, p, sol, "station normals")  # passes
    nan_t = t.copy()
    nan_t[0] = np.nan
    casa.check_climate_ranges(nan_t, None, None, "with nodata")  # NaN ignored
    with pytest.raises(InputValueError, match=r"'era5'.*temperature.*kelvin"):
        casa.check_climate_ranges(t + 273.15, p, sol, "era5")
    with pytest.raises(InputValueError, match=r"'cmfd'.*precipitation.*-9999"):
        casa.check_climate_ranges(t, np.where(p > 100, -9999.0, p), sol, "cmfd")
    with pytest.raises(InputValueError, match=r"'rad'.*radiation.*found min 5e\+0?5"):
        casa.check_climate_ranges(t, p, sol * 1000.0, "rad")


# --------------------------------------------------------------------------- CASA class table


def test_casa_table_default_values():
    # science.md Appendix A (Set Z) and §1.2 bounds
    assert PARAMS.eps_set == "Z"
    assert len(PARAMS.eps_max) >= 15 and np.isnan(PARAMS.eps_max[0])
    assert_allclose(PARAMS.eps_max[[1, 2, 3, 5, 6, 7, 8, 12]],
                    [0.692, 0.389, 0.485, 0.542, 0.429, 0.542, 0.542, 0.389])
    assert_allclose(PARAMS.ndvi_max[[1, 2, 3, 6, 7]], [0.747, 0.647, 0.738, 0.636, 0.634])
    assert_allclose(PARAMS.sr_max[[1, 7]], [6.91, 4.46])
    assert not PARAMS.vegetated[[0, 10, 13, 14]].any()
    assert PARAMS.vegetated[[1, 7, 11, 12]].all()
    assert (PARAMS.eps_max[list(NON_VEGETATED)] == 0).all()
    assert PARAMS.names[7] == "grassland" and "swap" in PARAMS.status[1].lower()


def test_casa_table_set_r_warns_and_falls_back():
    with pytest.warns(EpsilonSetRWarning, match=r"GPP.*2x.*5 sparse_woodland.*9 wetland"):
        r = CasaParams.load(eps_set="R")
    assert_allclose(r.eps_max[[1, 2, 6, 7, 8]], [1.044, 1.008, 0.768, 0.608, 0.604])
    assert_allclose(r.eps_max[[5, 9]], PARAMS.eps_max[[5, 9]])
    with pytest.raises(ConfigError, match="eps_max_set"):
        CasaParams.load(eps_set="X")


def _table(tmp_path: Path, edit=None, drop: str | None = None) -> Path:
    import pandas as pd

    frame = pd.read_csv(PARAMS.path, dtype=str, keep_default_na=False)
    if drop:
        frame = frame.drop(columns=[drop])
    if edit:
        edited = edit(frame)
        frame = frame if edited is None else edited
    path = tmp_path / "casa_test.csv"
    frame.to_csv(path, index=False)
    return path


def test_casa_table_errors(tmp_path):
    with pytest.raises(ParameterTableError, match=r"missing column\(s\) \['sr_min'\]"):
        CasaParams.load(_table(tmp_path, drop="sr_min"))

    def bad_sr(f):
        f.loc[f.class_id == "7", "sr_max"] = "4.60"
    with pytest.raises(ParameterTableError, match=r"class_id 7.*'sr_max'.*gives SR.*4.46"):
        CasaParams.load(_table(tmp_path, bad_sr))

    def bad_number(f):
        f.loc[f.class_id == "6", "eps_max_gC_MJ"] = "0,429"
    with pytest.raises(ParameterTableError, match=r"'eps_max_gC_MJ', class_id 6: value '0,429'"):
        CasaParams.load(_table(tmp_path, bad_number))

    def gpp_units(f):
        f.loc[f.class_id == "7", "eps_max_gC_MJ"] = "542"
    with pytest.raises(ParameterTableError, match=r"class_id 7.*outside \(0, 3.0\]"):
        CasaParams.load(_table(tmp_path, gpp_units))

    def no_row(f):
        return f[f.class_id != "9"]
    with pytest.raises(ParameterTableError, match=r"canonical classes \[9\]"):
        CasaParams.load(_table(tmp_path, no_row))

    def no_status(f):
        f.loc[f.class_id == "3", "status"] = ""
    with pytest.raises(ParameterTableError, match=r"'status', class_id 3"):
        CasaParams.load(_table(tmp_path, no_status))

    with pytest.raises(ParameterTableError, match=r"no column 'eps_max_set_r_gC_MJ'"):
        CasaParams.load(_table(tmp_path, drop="eps_max_set_r_gC_MJ"), eps_set="R")


def test_casa_table_extra_class_and_path_lookup(tmp_path):
    def extra(f):
        row = f[f.class_id == "7"].copy()
        row["class_id"] = "21"
        f.loc[len(f)] = row.iloc[0]
    p = CasaParams.load(_table(tmp_path, extra))
    assert len(p.eps_max) == 22 and p.eps_max[21] == 0.542
    assert np.isnan(p.eps_max[15:21]).all()  # gap ids have no parameters -> NaN NPP
    assert CasaParams.load("casa_classes").sha256 == PARAMS.sha256
    with pytest.raises(InputFileError, match="no_such_table"):
        CasaParams.load("no_such_table")


def test_shipped_table_sr_consistent_with_ndvi():
    # independent of the loader: SR = (1 + NDVI) / (1 - NDVI) within 0.02 (science.md §1.2)
    veg = PARAMS.vegetated
    for nd, sr in ((PARAMS.ndvi_min, PARAMS.sr_min), (PARAMS.ndvi_max, PARAMS.sr_max)):
        assert_allclose(sr[veg], (1 + nd[veg]) / (1 - nd[veg]), atol=0.02)


# --------------------------------------------------------------------------- properties


def _f32(lo: float, hi: float):
    return st.floats(float(np.float32(lo)), float(np.float32(hi)), width=32)


@st.composite
def tiles(draw):
    ny, nx = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = (12, ny, nx)

    def stack(lo, hi):
        return draw(hnp.arrays(np.float32, shape, elements=_f32(lo, hi)))

    arrays = {"ndvi": stack(-0.2, 0.95), "t": stack(-30, 35), "p": stack(0, 300),
              "sol": stack(50, 800)}
    for name, arr in arrays.items():  # a few NaNs anywhere
        for k, i, j in draw(st.lists(st.tuples(st.integers(0, 11), st.integers(0, ny - 1),
                                               st.integers(0, nx - 1)), max_size=2)):
            arr[k, i, j] = np.nan
    arrays["classes"] = draw(hnp.arrays(np.int16, (ny, nx), elements=st.integers(0, 14)))
    return arrays


@st.composite
def options(draw, ny, nx):
    opts = {}
    if draw(st.booleans()):
        opts["ndvi_min_px"] = draw(hnp.arrays(np.float32, (ny, nx), elements=st.one_of(
            _f32(-0.2, 0.5), st.just(np.float32(np.nan)))))
        opts["ndvi_max_px"] = draw(hnp.arrays(np.float32, (ny, nx), elements=st.one_of(
            _f32(0.3, 0.95), st.just(np.float32(np.nan)))))
    choice = draw(st.sampled_from(["none", "scalar", "raster"]))
    if choice == "scalar":
        opts["topt_month"] = draw(st.integers(1, 12))
    elif choice == "raster":
        opts["topt_month"] = draw(hnp.arrays(np.int8, (ny, nx), elements=st.integers(0, 12)))
    opts["water_stress"] = draw(st.sampled_from(["zhou_zhang", "none"]))
    return opts


@PROPS
@given(data=st.data())
def test_property_npp_numba_equals_reference_and_rules(data):
    x = data.draw(tiles())
    ny, nx = x["classes"].shape
    opts = data.draw(options(ny, nx))
    args = (x["ndvi"], x["t"], x["p"], x["sol"], x["classes"])
    got = casa.casa_npp_numba(*args, **KW, **opts)
    ref = casa.casa_npp_reference(*args, **KW, **opts)
    # rtol 1e-5 on values up to ~300 g C m-2 month-1; atol 1e-5 only for values near 0
    assert_allclose(got, ref, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert got.dtype == np.float32 and got.shape == x["ndvi"].shape
    assert (got[~np.isnan(got)] >= 0).all()

    cls = x["classes"]
    any_nan = np.zeros((ny, nx), bool)
    for k in ("ndvi", "t", "p", "sol"):
        any_nan |= np.isnan(x[k]).any(axis=0)
    non_veg = np.isin(cls, NON_VEGETATED)
    veg = (cls > 0) & ~non_veg
    assert (got[:, non_veg] == 0).all()  # non-vegetated -> 0 whatever the inputs
    assert np.isnan(got[:, cls == 0]).all()
    assert np.isnan(got[:, veg & any_nan]).all()  # NaN in -> NaN out (whole year)
    assert np.isfinite(got[:, veg & ~any_nan]).all()


@PROPS
@given(data=st.data())
def test_property_uniform_climate_shortcut_equals_per_pixel(data):
    """Climate given as 12 values: the once-per-month water stress gives the same bits as the
    per-pixel kernel, and matches the NumPy reference."""
    x = data.draw(tiles())
    ny, nx = x["classes"].shape
    opts = data.draw(options(ny, nx))
    t12 = data.draw(hnp.arrays(np.float32, 12, elements=_f32(-25.0, 30.0)))
    p12 = data.draw(hnp.arrays(np.float32, 12, elements=_f32(0.0, 250.0)))
    t = np.broadcast_to(t12[:, None, None], (12, ny, nx))
    p = np.broadcast_to(p12[:, None, None], (12, ny, nx))
    args = (x["ndvi"], t, p, x["sol"], x["classes"])
    fast = casa.casa_npp_numba(*args, **KW, **opts, uniform_climate=True)
    per_pixel = casa.casa_npp_numba(*args, **KW, **opts)
    np.testing.assert_array_equal(fast, per_pixel)
    ref = casa.casa_npp_reference(*args, **KW, **opts)
    assert_allclose(fast, ref, rtol=1e-5, atol=1e-5, equal_nan=True)


@PROPS
@given(data=st.data())
def test_property_fpar_numba_equals_reference(data):
    x = data.draw(tiles())
    ny, nx = x["classes"].shape
    opts = {k: v for k, v in data.draw(options(ny, nx)).items() if k.endswith("_px")}
    vec = {k: KW[k] for k in ("ndvi_min", "ndvi_max", "sr_min", "sr_max")}
    got = casa.fpar_numba(x["ndvi"], x["classes"], **vec, **opts)
    ref = casa.fpar_reference(x["ndvi"], x["classes"], **vec, **opts)
    assert_allclose(got, ref, rtol=1e-5, equal_nan=True)
    ok = got[~np.isnan(got)]
    assert ((ok >= 0.001 - 1e-7) & (ok <= 0.95 + 1e-7)).all()
    # NaN NDVI -> NaN FPAR in that month
    assert np.isnan(got[np.isnan(x["ndvi"])]).all()


@PROPS
@given(x=tiles(), method=st.sampled_from(["zhou_zhang", "none"]))
def test_property_water_stress_numba_equals_reference(x, method):
    got = casa.water_stress_numba(x["t"], x["p"], method)
    ref = casa.water_stress_reference(x["t"], x["p"], method)
    assert_allclose(got, ref, rtol=1e-5, equal_nan=True)
    bad = (np.isnan(x["t"]) | np.isnan(x["p"])).any(axis=0)
    assert np.isnan(got[:, bad]).all()
    assert ((got[:, ~bad] >= 0.5) & (got[:, ~bad] <= 1.0)).all()


@PROPS
@given(x=tiles())
def test_property_temperature_stress_numba_equals_reference(x):
    got = casa.temperature_stress_numba(x["ndvi"], x["t"])
    ref = casa.temperature_stress_reference(x["ndvi"], x["t"])
    assert_allclose(got, ref, rtol=1e-5, equal_nan=True)


def test_no_warnings_from_default_table():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CasaParams.load()
