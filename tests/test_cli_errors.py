"""Bad input (issue 2): one-line error naming the file and the fix, exit code 2, nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from tanhui.cli.main import cli

ALBERS = "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +ellps=GRS80 +units=m +no_defs"
X0, Y0, RES = 1_300_000.0, 5_000_000.0, 250.0


def write_lc(path: Path, codes: np.ndarray, crs=ALBERS, x0=X0, y0=Y0, dtype="uint8"):
    with rasterio.open(path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0],
                       count=1, dtype=dtype, crs=crs, transform=from_origin(x0, y0, RES, RES),
                       nodata=0) as dst:
        dst.write(codes.astype(dtype), 1)


def write_regions(path: Path, name_field="name"):
    feats = []
    for i, (x, y) in enumerate([(X0, Y0 - 20 * RES), (X0 + 20 * RES, Y0 - 20 * RES)]):
        ring = [[x, y], [x + 20 * RES, y], [x + 20 * RES, y + 20 * RES], [x, y + 20 * RES], [x, y]]
        feats.append({"type": "Feature", "properties": {"code": f"R{i}", name_field: f"region {i}"},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    import geopandas as gpd

    gdf = gpd.GeoDataFrame.from_features(feats, crs=ALBERS)
    gdf.to_file(path, driver="GPKG")


def make_project(d: Path, **over) -> Path:
    rng = np.random.default_rng(1)
    codes = rng.choice([12, 21, 31, 61], size=(40, 40))
    write_lc(d / "lc2015.tif", codes)
    write_lc(d / "lc2023.tif", np.where(codes == 61, 21, codes))
    write_regions(d / "regions.gpkg")
    text = over.pop("text", None) or f"""
[project]
name = "small"
output_dir = "out"
grid = "{over.get('grid', 'landcover')}"
tile_shape = [16, 16]
[landcover]
legend = "cnlucc"
[[landcover.epochs]]
year = 2015
path = "lc2015.tif"
[[landcover.epochs]]
year = 2023
path = "lc2023.tif"
[stock]
density_table = "{over.get('table', 'carbon_density_horqin')}"
[regions]
path = "regions.gpkg"
id_field = "code"
name_field = "{over.get('name_field', 'name')}"
"""
    (d / "project.toml").write_text(text, encoding="utf-8")
    return d / "project.toml"


def run_cli(args):
    return CliRunner().invoke(cli, args)


def test_good_project_runs(tmp_path):
    p = make_project(tmp_path)
    res = run_cli(["validate", str(p)])
    assert res.exit_code == 0, res.output
    res = run_cli(["-q", "run", str(p)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "run.json").is_file()
    # a second run refuses to overwrite a finished run
    res = run_cli(["-q", "run", str(p)])
    assert res.exit_code == 2 and "--overwrite" in res.output


def _bad_table(d: Path, drop=None, negative=False) -> str:
    import pandas as pd

    from tanhui._data import data_dir

    t = pd.read_csv(data_dir("landcover") / "params" / "carbon_density_horqin.csv")
    if drop:
        t = t.drop(columns=[c for c in t.columns if c.startswith(drop)])
    if negative:
        t.loc[t["class_id"] == 7, "c_soil_tC_ha"] = -5
    t.to_csv(d / "table.csv", index=False)
    return "table.csv"


CASES = {
    # name: (how to break the project, words the one-line message must contain)
    "missing file": (lambda d: (d / "lc2023.tif").unlink(), ["lc2023.tif", "does not exist"]),
    "unmapped codes": (lambda d: write_lc(d / "lc2023.tif", np.full((40, 40), 250)),
                       ["[250]", "lc2023.tif", "cnlucc", "Add rows"]),
    "raster without CRS": (lambda d: write_lc(d / "lc2023.tif", np.full((40, 40), 12), crs=None),
                           ["lc2023.tif", "no coordinate reference system"]),
    "raster outside the grid": ("grid_outside", ["does not overlap", "lc2015.tif"]),
    "table without soil pool": ("table_nosoil", ["table.csv", "soil"]),
    "negative density": ("table_negative", ["table.csv", "negative"]),
    "malformed TOML": (lambda d: (d / "project.toml").write_text("[project\nname=1", encoding="utf-8"),
                       ["project.toml", "not valid TOML"]),
    "region layer without name field": ("name_field", ["regions.gpkg", "county_name", "fields are"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, case):
    breaker, words = CASES[case]
    if breaker == "grid_outside":
        make_project(tmp_path, grid="china_albers_250m")
        # move both rasters far west of the Tongliao grids (Xinjiang)
        codes = np.full((40, 40), 12)
        write_lc(tmp_path / "lc2015.tif", codes, x0=-1_800_000.0, y0=4_900_000.0)
        write_lc(tmp_path / "lc2023.tif", codes, x0=-1_800_000.0, y0=4_900_000.0)
    elif breaker == "table_nosoil":
        make_project(tmp_path, table=_bad_table(tmp_path, drop="c_soil"))
    elif breaker == "table_negative":
        make_project(tmp_path, table=_bad_table(tmp_path, negative=True))
    elif breaker == "name_field":
        make_project(tmp_path, name_field="county_name")
    else:
        make_project(tmp_path)
        breaker(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for cmd in (["validate"], ["run"]):
        res = run_cli([*cmd, str(tmp_path / "project.toml")])
        assert res.exit_code == 2, (case, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1, res.output  # one line, no traceback
        assert lines[0].startswith("tanhui: error:")
        for w in words:
            assert w in lines[0], (w, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output folder, nothing new
    assert not (tmp_path / "out").exists()


def test_json_summary(tmp_path):
    p = make_project(tmp_path)
    res = run_cli(["run", "--json", str(p)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["tiles_computed"] and "regions" in doc["totals"]
