"""The Horqin demo end to end (250 m): per-county totals against an independent computation.

The reference is a few lines of NumPy over the demo's own input rasters: the legend and
density CSVs read with pandas, coverage fractions from exactextract, pixel area 250 m x 250 m
(equal-area Albers grid) -- not tanhui's tile, zonal or table code.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner

from tanhui._data import data_dir
from tanhui.cli.main import cli

COUNTY_AREA_KM2 = {  # ../shared/data/tongliao-admin/README.md (Albers, unsimplified polygons)
    "150502": 3495.5, "150521": 9573.6, "150522": 11517.5, "150523": 4378.5,
    "150524": 4712.5, "150525": 8129.0, "150526": 16493.6, "150581": 584.4,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    res = CliRunner().invoke(cli, ["-q", "demo", str(d)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return d


def _density_by_code() -> dict[int, float]:
    root = data_dir("landcover")
    legend = pd.read_csv(root / "legends" / "cnlucc.csv")
    dens = pd.read_csv(root / "params" / "carbon_density_horqin.csv").set_index("class_id")
    pools = dens[["c_above_tC_ha", "c_below_tC_ha", "c_soil_tC_ha", "c_dead_tC_ha"]].astype(np.float32)
    # rasters are float32 (as InVEST's): sum the pools in float32, in pool order, like the files hold
    total = {k: float(np.float32(np.float32(np.float32(r[0] + r[1]) + r[2]) + r[3]))
             for k, r in zip(pools.index, pools.to_numpy())}
    return {int(r.code): total[int(r.class_id)] if r.class_id > 0 else np.nan
            for r in legend.itertuples()}


def _reference(d, year):
    from exactextract import exact_extract

    with rasterio.open(d / f"landcover_{year}.tif") as src:
        codes = src.read(1)
        crs = src.crs
        assert abs(src.res[0] * src.res[1] - 62500.0) < 1e-6
    lut = _density_by_code()
    density = np.vectorize(lambda c: lut.get(int(c), np.nan))(codes)
    counties = gpd.read_file(d / "counties.geojson").to_crs(crs)
    cov = exact_extract(str(d / f"landcover_{year}.tif"), counties, ["cell_id", "coverage"],
                        output="pandas", include_cols=["adcode"])
    out = {}
    for rec in cov.itertuples():
        rows, cols = np.divmod(np.asarray(rec.cell_id, np.int64), codes.shape[1])
        out[str(rec.adcode)] = float(np.nansum(density[rows, cols] * np.asarray(rec.coverage, float)) * 6.25)
    return out, density


def test_county_totals_equal_independent_numpy(demo):
    t = pd.read_csv(demo / "out" / "tables" / "region_totals.csv", dtype={"feature_id": str})
    for year in (2015, 2023):
        ref, _ = _reference(demo, year)
        got = dict(zip(t["feature_id"], t[f"stock_total_tC_{year}"]))
        assert set(got) == set(ref) == set(COUNTY_AREA_KM2)
        for k in ref:
            assert got[k] == pytest.approx(ref[k], rel=1e-9), (year, k)
    change = dict(zip(t["feature_id"], t["stock_change_tC_2015_2023"]))
    r15, _ = _reference(demo, 2015)
    r23, _ = _reference(demo, 2023)
    for k in r15:
        assert change[k] == pytest.approx(r23[k] - r15[k], rel=1e-6, abs=1e-3)


def test_sum_of_counties_equals_city_total(demo):
    """The counties partition the city: their sum equals the total over the city outline."""
    from exactextract import exact_extract

    t = pd.read_csv(demo / "out" / "tables" / "region_totals.csv", dtype={"feature_id": str})
    _, density = _reference(demo, 2023)
    with rasterio.open(demo / "landcover_2023.tif") as src:
        crs = src.crs
    city = gpd.read_file(demo / "counties.geojson").to_crs(crs).dissolve()
    cov = exact_extract(str(demo / "landcover_2023.tif"), city, ["cell_id", "coverage"], output="pandas")
    rows, cols = np.divmod(np.asarray(cov["cell_id"][0], np.int64), density.shape[1])
    city_total = float(np.nansum(density[rows, cols] * np.asarray(cov["coverage"][0], float)) * 6.25)
    # exactextract stores coverage fractions as float32: a partition conserves to ~1e-7
    assert t["stock_total_tC_2023"].sum() == pytest.approx(city_total, rel=1e-7)


def test_county_areas_from_pixels_match_polygon_areas(demo):
    t = pd.read_csv(demo / "out" / "tables" / "region_totals.csv", dtype={"feature_id": str})
    for r in t.itertuples():
        pixel_km2 = r.area_ha_2023 / 100
        # coverage weighting leaves only float32 rounding of the fractions (< 1e-6 relative) ...
        assert pixel_km2 == pytest.approx(r.polygon_area_ha / 100, rel=1e-6)
        # ... and the shipped simplified polygons are within 1 % of the unsimplified areas
        assert pixel_km2 == pytest.approx(COUNTY_AREA_KM2[r.feature_id], rel=0.01)


def test_demo_outputs_are_labelled_and_complete(demo):
    out = demo / "out"
    for stem in ("stock_total_tC_ha_2015", "stock_total_tC_ha_2023", "stock_change_tC_ha_2015_2023",
                 "nep_gC_m2_yr_2023", "npp_gC_m2_yr_2023"):
        with rasterio.open(out / f"{stem}.vrt") as src:
            assert src.crs is not None and np.isnan(src.nodata)
            assert src.units[0]
            tile = next((out / "tiles" / stem).glob("*.tif"))
        with rasterio.open(tile) as t:
            assert t.tags().get("SYNTHETIC") and t.overviews(1) and t.profile["tiled"]
        assert (out / f"{stem}.qml").is_file()
    import json

    man = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert all(v["sha256"] for v in man["inputs"].values() if "sha256" in v)
    assert man["timings"]["total_s"] > 0 and man["versions"]["numba"]


def test_python_api_opens_outputs_lazily_with_units(demo):
    import tanhui

    out = demo / "out"
    assert "stock_total_tC_ha_2023" in tanhui.list_outputs(out)
    da = tanhui.open_output(out, "stock_total_tC_ha_2023")
    assert da.attrs["units"] == "t C ha-1" and da.chunks is not None  # lazy (dask-backed)
    with rasterio.open(out / "stock_total_tC_ha_2023.vrt") as src:
        ref = src.read(1)
    np.testing.assert_array_equal(da.values, ref)
