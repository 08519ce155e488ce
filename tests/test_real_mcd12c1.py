"""Real data: MODIS MCD12C1 (0.05 deg, geographic) over Horqin with Tongliao's real counties.

Per-county stock uses ellipsoidal pixel areas. The reference here is computed independently:
exactextract coverage fractions, the legend and density CSVs read with pandas, and each
row's cell area from pyproj's geodesic polygon area (not tanhui's formula).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from pyproj import Geod

from tanhui._data import data_dir
from tanhui.cli.main import cli


@pytest.fixture(scope="module")
def mcd_run(tmp_path_factory, shared_data):
    d = tmp_path_factory.mktemp("mcd")
    lc = shared_data / "mcd12c1-2019-landcover" / "mcd12c1_2019_igbp_horqin.tif"
    counties = shared_data / "tongliao-admin" / "tongliao_districts.geojson"
    (d / "project.toml").write_text(f"""
[project]
name = "MCD12C1 Horqin"
output_dir = "out"
grid = "landcover"
tile_shape = [40, 64]
[landcover]
legend = "modis_igbp_mcd12c1"
[[landcover.epochs]]
year = 2019
path = "{lc}"
[stock]
density_table = "carbon_density_horqin"
[regions]
path = "{counties}"
id_field = "adcode"
name_field = "name_zh"
""", encoding="utf-8")
    res = CliRunner().invoke(cli, ["-q", "run", str(d / "project.toml")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return d / "out", lc, counties


def _reference_totals(lc_path, counties_path):
    import geopandas as gpd
    from exactextract import exact_extract

    root = data_dir("landcover")
    legend = pd.read_csv(root / "legends" / "modis_igbp_mcd12c1.csv")
    dens = pd.read_csv(root / "params" / "carbon_density_horqin.csv").set_index("class_id")
    total = dens[["c_above_tC_ha", "c_below_tC_ha", "c_soil_tC_ha", "c_dead_tC_ha"]].sum(axis=1)
    code_to_density = {int(r.code): (total.get(int(r.class_id), np.nan) if r.class_id > 0 else np.nan)
                       for r in legend.itertuples()}
    with rasterio.open(lc_path) as src:
        codes = src.read(1)
        t = src.transform
    geod = Geod(ellps="WGS84")
    row_area = np.empty(codes.shape[0])
    for r in range(codes.shape[0]):
        top = t.f + r * t.e
        lons = [t.c, t.c + t.a, t.c + t.a, t.c]
        lats = [top, top, top + t.e, top + t.e]
        row_area[r] = abs(geod.polygon_area_perimeter(lons, lats)[0])
    density = np.vectorize(code_to_density.get)(codes).astype(float)
    gdf = gpd.read_file(counties_path)
    cov = exact_extract(str(lc_path), gdf, ["cell_id", "coverage"], output="pandas", include_cols=["adcode"])
    out = {}
    for rec in cov.itertuples():
        rows, cols = np.divmod(np.asarray(rec.cell_id, dtype=np.int64), codes.shape[1])
        out[str(rec.adcode)] = float(np.nansum(density[rows, cols] * row_area[rows] * np.asarray(rec.coverage)) / 1e4)
    return out, row_area


def test_county_stock_matches_independent_computation(mcd_run):
    out, lc, counties = mcd_run
    ref, _ = _reference_totals(lc, counties)
    t = pd.read_csv(out / "tables" / "region_totals.csv", dtype={"feature_id": str})
    got = dict(zip(t["feature_id"], t["stock_total_tC_2019"]))
    assert set(got) == set(ref) and len(got) == 8
    for k in ref:
        # float32 coverage fractions in exactextract and float32 densities: 1e-6 relative
        assert got[k] == pytest.approx(ref[k], rel=1e-6), k


def test_pixel_areas_match_pyproj_geodesic(mcd_run, shared_data):
    from tanhui.grid import TileGrid

    _, lc, counties = mcd_run
    _, row_area = _reference_totals(lc, counties)
    grid = TileGrid.from_raster(lc)
    with rasterio.open(lc) as src:
        area = grid.window_area_m2(src.transform, (src.height, src.width))
    np.testing.assert_allclose(np.broadcast_to(area, (100, 150))[:, 0], row_area, rtol=1e-6)
    # the "degrees x 111 km" shortcut would be ~38 % off at these latitudes
    naive = (0.05 * 111_320.0) ** 2
    assert naive / row_area.mean() > 1.3
