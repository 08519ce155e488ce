"""InVEST parity: a tanhui run on InVEST's own Puerto Rico inputs reproduces its stored outputs.

Reference: a real InVEST 3.20.2 Carbon run (../shared/data/invest-carbon-reference/puerto_rico_run),
baseline total 117,985,500 t C (raster_values_summary.csv) and c_storage_bas.tif (t C/ha, nodata -1).
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from tanhui.cli.main import cli


@pytest.fixture(scope="module")
def pr_run(tmp_path_factory, shared_data):
    ref = shared_data / "invest-carbon-reference" / "puerto_rico_run"
    d = tmp_path_factory.mktemp("pr")
    (d / "project.toml").write_text(f"""
[project]
name = "Puerto Rico InVEST parity"
output_dir = "out"
grid = "landcover"
tile_shape = [48, 40]
[landcover]
legend = "none"
[[landcover.epochs]]
year = 2001
path = "{shared_data / 'nlcd-puerto-rico-3km' / 'lc.tif'}"
[stock]
density_table = "{ref / 'pools_nlcd_ILLUSTRATIVE.csv'}"
""", encoding="utf-8")
    res = CliRunner().invoke(cli, ["-q", "run", str(d / "project.toml")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return d / "out", ref


def test_pixels_equal_invest_c_storage_bas(pr_run):
    out, ref = pr_run
    with rasterio.open(ref / "outputs" / "c_storage_bas.tif") as src:
        expected = src.read(1, masked=True)
        ref_transform, ref_crs = src.transform, src.crs
    with rasterio.open(out / "stock_total_tC_ha_2001.vrt") as vrt:
        assert vrt.crs == ref_crs
        # the mosaic starts at the raster's own origin; read the raster's window
        win = rasterio.windows.from_bounds(*rasterio.transform.array_bounds(
            expected.shape[0], expected.shape[1], ref_transform), transform=vrt.transform)
        got = vrt.read(1, window=win)
        assert vrt.units[0] == "t C ha-1"
    valid = ~np.ma.getmaskarray(expected)
    np.testing.assert_array_equal(np.isnan(got), ~valid)
    np.testing.assert_array_equal(got[valid], expected.data[valid].astype(np.float32))


def test_total_equals_invest_summary(pr_run):
    out, ref = pr_run
    with open(ref / "outputs" / "raster_values_summary.csv", encoding="utf-8") as fh:
        invest_total = float(next(csv.DictReader(fh))["Total"])
    with open(out / "tables" / "raster_totals.csv", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    total = float(next(r for r in rows if r["class_id"] == "all")["stock_total_tC_2001"])
    assert total == pytest.approx(invest_total, rel=1e-12)
    assert invest_total == 117985500.0  # hand check of the reference file itself
