"""Real data through the whole flux path: MOD13A1 NDVI 2016 over Lake Como (23 composites,
sinusoidal, mixed int16/float32 scaling), MCD12C1 land cover and BESS NDVI climatology.

Climate is constant monthly values stated here (a plausible Lombardy pre-Alpine climate;
not observations): the test checks the NDVI handling, the seasonal cycle and plausible NPP.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner

from tanhui.cli.main import cli

T_C = [2.0, 3.5, 7.5, 11.5, 15.5, 19.5, 22.0, 21.5, 17.5, 12.5, 7.0, 3.0]
P_MM = [60, 55, 70, 95, 120, 100, 85, 95, 100, 115, 110, 70]
SOL_MJ = [150, 230, 370, 480, 590, 640, 680, 570, 420, 280, 160, 120]


def _project(d, shared, engine):
    nd = shared / "modis-mod13a1-ndvi-2016-lombardy"
    (d / "project.toml").write_text(f"""
[project]
name = "Lake Como 2016"
output_dir = "out"
grid = "{nd / 'MOD13A1_NDVI_2016_001.tif'}"
tile_shape = [64, 48]
[landcover]
legend = "modis_igbp_mcd12c1"
[[landcover.epochs]]
year = 2019
path = "{shared / 'mcd12c1-2019-landcover' / 'mcd12c1_2019_igbp_lombardy.tif'}"
[stock]
density_table = "carbon_density_horqin"
[flux]
year = 2016
ndvi = "{nd}/MOD13A1_NDVI_2016_*.tif"
ndvi_int_scale = 0.0001
ndvi_min = "{shared / 'bess-ndvi-climatology' / 'ndvi_minimum_lombardy.tif'}"
ndvi_max = "{shared / 'bess-ndvi-climatology' / 'ndvi_maximum_lombardy.tif'}"
write_monthly = true
[flux.climate]
temperature_C = {T_C}
precipitation_mm = {P_MM}
radiation_MJ_m2 = {SOL_MJ}
[run]
engine = "{engine}"
""", encoding="utf-8")
    res = CliRunner().invoke(cli, ["-q", "run", str(d / "project.toml")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return d / "out"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data):
    return {e: _project(tmp_path_factory.mktemp(e), shared_data, e) for e in ("numba", "numpy")}


def test_npp_plausible_per_class(runs):
    t = pd.read_csv(runs["numba"] / "tables" / "raster_totals.csv")
    t = t[t["class_id"] != "all"].set_index("class_id")
    npp = t["mean_npp_gC_m2_yr_2016"]
    # temperate forest and grass/crop NPP ranges (g C m-2 yr-1), generous on purpose
    assert 350 < npp["1"] < 1200      # deciduous broadleaf forest
    for cls in ("4", "5", "7", "8"):  # mixed forest, sparse woodland, grassland, cropland
        assert 200 < npp[cls] < 1000, cls
    assert npp["10"] == 0 and npp["13"] == 0  # water, built-up: NPP not computed
    assert np.isnan(t.loc["10", "mean_nep_gC_m2_yr_2016"])  # NEP masked on water


def test_monthly_npp_peaks_in_summer(runs):
    with rasterio.open(runs["numba"] / "npp_gC_m2_month_2016.vrt") as src:
        monthly = src.read(masked=True)
    means = np.array([float(m.mean()) for m in monthly])
    assert int(np.argmax(means)) + 1 in (6, 7, 8)
    assert means[[0, 1, 11]].max() < 0.35 * means.max()


def test_mixed_scaling_of_the_series_is_handled(runs):
    """Dec composites are float32 already scaled; the others int16 x 10000: both give NDVI."""
    with rasterio.open(runs["numba"] / "npp_gC_m2_month_2016.vrt") as src:
        dec = src.read(12, masked=True)
    assert dec.count() > 0.5 * dec.size and float(dec.max()) < 60  # small, but computed


def test_numba_engine_equals_numpy_reference_end_to_end(runs):
    for stem in ("npp_gC_m2_yr_2016", "rh_gC_m2_yr_2016", "nep_gC_m2_yr_2016"):
        with rasterio.open(runs["numba"] / f"{stem}.vrt") as a, rasterio.open(runs["numpy"] / f"{stem}.vrt") as b:
            np.testing.assert_allclose(a.read(1), b.read(1), rtol=2e-5, atol=1e-3, equal_nan=True)
