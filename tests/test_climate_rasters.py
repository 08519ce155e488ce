"""Climate as rasters (12 bands, any grid): read onto the tile grid; out-of-range refused."""
from __future__ import annotations

import numpy as np
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from tanhui.cli.main import cli
from tests.test_real_lombardy_flux import P_MM, SOL_MJ, T_C, _project


def _climate_raster(path, monthly, scale=1.0):
    # 0.1 degree lon/lat raster over Lombardy: a different CRS and grid than the NDVI
    data = np.broadcast_to(np.asarray(monthly, np.float32)[:, None, None] * scale, (12, 12, 14)).copy()
    with rasterio.open(path, "w", driver="GTiff", width=14, height=12, count=12, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(8.9, 46.4, 0.1, 0.1), nodata=-9999) as dst:
        dst.write(data)


def test_raster_climate_equals_monthly_values(tmp_path, shared_data):
    (tmp_path / "a").mkdir()
    ref = _project(tmp_path / "a", shared_data, "numba")
    b = tmp_path / "b"
    b.mkdir()
    for name, vals in (("t", T_C), ("p", P_MM), ("sol", SOL_MJ)):
        _climate_raster(b / f"{name}.tif", vals)
    _project(b, shared_data, "numba")  # writes project.toml, runs with monthly values
    text = (b / "project.toml").read_text(encoding="utf-8")
    head, _ = text.split("[flux.climate]")
    run = text.split("[run]")[1]
    (b / "project.toml").write_text(head + '[flux.climate]\ntemperature_C = "t.tif"\n'
                                    'precipitation_mm = "p.tif"\nradiation_MJ_m2 = "sol.tif"\n[run]' + run,
                                    encoding="utf-8")
    r = CliRunner().invoke(cli, ["-q", "run", "--overwrite", str(b / "project.toml")])
    assert r.exit_code == 0, r.output
    with rasterio.open(ref / "npp_gC_m2_yr_2016.vrt") as x, rasterio.open(b / "out" / "npp_gC_m2_yr_2016.vrt") as y:
        np.testing.assert_allclose(x.read(1), y.read(1), rtol=1e-5, equal_nan=True)


def test_radiation_out_of_range_is_refused(tmp_path, shared_data):
    _project(tmp_path, shared_data, "numba")
    _climate_raster(tmp_path / "sol.tif", SOL_MJ, scale=1000.0)  # e.g. kJ instead of MJ
    text = (tmp_path / "project.toml").read_text(encoding="utf-8")
    text = text.replace("radiation_MJ_m2 = " + str(SOL_MJ), 'radiation_MJ_m2 = "sol.tif"')
    (tmp_path / "project.toml").write_text(text, encoding="utf-8")
    r = CliRunner().invoke(cli, ["run", "--overwrite", str(tmp_path / "project.toml")])
    assert r.exit_code == 2
    assert "sol.tif" in r.output and "radiation" in r.output.lower()
