"""The notebooks (notebooks/*.ipynb) and their plotting helpers (tanhui.plotting).

Fast tests: the committed notebooks have no outputs, open with the question, the inputs and
the runtime, and use only the public API in short cells; the helpers give hand-computed
areas, transitions and block means. Slow tests: each notebook runs top to bottom in a fresh
kernel (nbclient) in one shared working folder, writes non-blank figures, and its totals
match the run's CSV tables and rasterio reads of the mosaics.
"""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tanhui

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NAMES = ("01_quick_start", "02_sanqu_sanxian", "03_change")
FIGURES = {
    "01_quick_start": ("01_nep_map.png", "01_stock_map.png", "01_nep_by_county.png"),
    "02_sanqu_sanxian": ("02_lines_map.png", "02_lines_by_county.png"),
    "03_change": ("03_stock_change_map.png", "03_change_by_county.png"),
}
PIXEL_HA = 6.25  # 250 m x 250 m on the equal-area china_albers_250m grid

nbformat = pytest.importorskip("nbformat")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg", force=True)


def _notebook(name: str):
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"notebook {path} is missing")
    return nbformat.read(path, as_version=4)


# --------------------------------------------------------------------------------------------
# the committed notebooks
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    nb = _notebook(name)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, \
            f"{name}: code cell {i} keeps outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_opening_cell_gives_question_inputs_runtime(name):
    first = _notebook(name).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith(f"# {name[:2]} ")  # numbered title
    for part in ("**Question.**", "**Inputs.**", "**Runtime.**", "TANHUI_NOTEBOOK_DIR"):
        assert part in first.source, f"{name}: opening cell lacks {part}"


def _logic_lines(source: str) -> int:
    lines = [line.strip() for line in source.splitlines()]
    return sum(1 for line in lines if line and not line.startswith(("#", "import ", "from ")))


@pytest.mark.parametrize("name", NAMES)
def test_only_public_api_in_short_cells(name):
    public = set(tanhui.__all__) | {"plotting"}
    plotting = __import__("tanhui.plotting", fromlist=["x"])
    for i, cell in enumerate(c for c in _notebook(name).cells if c.cell_type == "code"):
        assert _logic_lines(cell.source) <= 16, \
            f"{name}: code cell {i} is long; move its logic to src/"
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("tanhui"):
                        assert alias.name in ("tanhui", "tanhui.plotting"), \
                            f"{name}: imports {alias.name}"
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tanhui"):
                pytest.fail(f"{name}: 'from {node.module} import ...'; "
                            "use tanhui.<name> or tanhui.plotting")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "tanhui":
                    assert node.attr in public, f"{name}: tanhui.{node.attr} is not public API"
                elif node.value.id == "tp":
                    assert not node.attr.startswith("_") and hasattr(plotting, node.attr), \
                        f"{name}: tanhui.plotting.{node.attr} does not exist or is private"


# --------------------------------------------------------------------------------------------
# tanhui.plotting helpers, against hand-computed values
# --------------------------------------------------------------------------------------------
def _raster(values, *, crs=None, x0: float = 1_000_000.0, y0: float = 4_800_000.0,
            res: float = 250.0, name: str = "r"):
    """A (y, x) DataArray with pixel centres on a ``res`` grid whose top-left corner is (x0, y0)."""
    import rioxarray  # noqa: F401  (registers .rio)
    import xarray as xr

    arr = np.asarray(values, dtype="float32")
    ny, nx = arr.shape
    coords = {"x": x0 + res * (np.arange(nx) + 0.5), "y": y0 - res * (np.arange(ny) + 0.5)}
    da = xr.DataArray(arr, dims=("y", "x"), name=name, coords=coords)
    return da.rio.write_crs(crs or tanhui.TileGrid.load("china_albers_250m").crs)


NAN = np.nan
LC_2015 = [[11, 11, 7], [7, 7, NAN], [8, 0, 7]]
LC_2023 = [[4, 11, 8], [7, 8, 7], [8, 8, NAN]]
CHANGE = [[3.0, NAN, -2.0], [0.0, -1.5, 5.0], [0.0, 1.0, 9.0]]  # t C/ha


def test_pixel_area_equal_area_only():
    from tanhui.errors import GridMismatchError
    from tanhui.plotting import pixel_area_ha

    assert pixel_area_ha(_raster(np.zeros((2, 2)))) == PIXEL_HA
    assert pixel_area_ha(_raster(np.zeros((2, 2)), res=30.0)) == pytest.approx(0.09)
    with pytest.raises(GridMismatchError, match="not an equal-area projection"):
        pixel_area_ha(_raster(np.zeros((2, 2)), crs="EPSG:4326", x0=120.0, y0=44.0, res=0.01))
    with pytest.raises(GridMismatchError, match="pixel_area_ha="):
        pixel_area_ha(_raster(np.zeros((2, 2)), crs="EPSG:32651", x0=400_000.0))


def test_transitions_by_hand():
    from tanhui.plotting import transitions

    out = transitions(_raster(LC_2015), _raster(LC_2023), value=_raster(CHANGE),
                      value_name="change_tC")
    got = {(r.class_from, r.class_to): (r.n_pixels, r.area_ha, r.change_tC)
           for r in out.itertuples()}
    # valid pairs: both epochs finite and > 0; NaN change is left out of the sum only
    assert got == {
        (11, 4): (1, 6.25, 3.0 * 6.25),
        (11, 11): (1, 6.25, 0.0),
        (7, 8): (2, 12.5, (-2.0 - 1.5) * 6.25),
        (7, 7): (1, 6.25, 0.0),
        (8, 8): (1, 6.25, 0.0),
    }
    assert dict(zip(out.class_from, out.label_from))[11] == "Sandy land"


def test_transitions_per_region_pixel_centres():
    import geopandas as gpd
    from shapely.geometry import box

    from tanhui.plotting import rasterize_regions, transitions

    lc0, lc1 = _raster(LC_2015), _raster(LC_2023)
    x0, y0 = 1_000_000.0, 4_800_000.0
    # A holds the centres of column 0 only (its edge at 300 m passes between centres 125 and 375)
    shapes = [box(x0, y0 - 750, x0 + 300, y0), box(x0 + 300, y0 - 500, x0 + 750, y0)]
    regions = gpd.GeoDataFrame({"name": ["A", "B"]}, geometry=shapes, crs=lc0.rio.crs.to_wkt())
    np.testing.assert_array_equal(rasterize_regions(lc0, regions),
                                  [[0, 1, 1], [0, 1, 1], [0, -1, -1]])
    # given in lon/lat: transitions reprojects them back to the grid
    out = transitions(lc0, lc1, regions=regions.to_crs(4326), region_field="name")
    got = sorted((r.region, r.class_from, r.class_to, r.n_pixels) for r in out.itertuples())
    assert got == [("A", 7, 7, 1), ("A", 8, 8, 1), ("A", 11, 4, 1),
                   ("B", 7, 8, 2), ("B", 11, 11, 1)]


def test_transition_table_by_hand():
    from tanhui.plotting import transition_table

    table = transition_table(_raster(LC_2015, name="lc2015"), _raster(LC_2023, name="lc2023"))
    # class ids 4, 7, 8, 11, in that order
    labels = ["Mixed or unspecified forest", "Grassland", "Cropland", "Sandy land"]
    assert list(table.columns) == labels + ["total"]
    assert list(table.index) == labels + ["total"]
    expected = pd.DataFrame(0.0, index=labels, columns=labels)
    expected.loc["Grassland", "Grassland"] = 6.25
    expected.loc["Grassland", "Cropland"] = 12.5
    expected.loc["Cropland", "Cropland"] = 6.25
    expected.loc["Sandy land", "Mixed or unspecified forest"] = 6.25
    expected.loc["Sandy land", "Sandy land"] = 6.25
    np.testing.assert_allclose(table.loc[labels, labels].to_numpy(), expected.to_numpy())
    assert table.loc["total", "total"] == 6 * 6.25
    assert table.loc["Grassland", "total"] == 18.75 and table.loc["total", "Cropland"] == 18.75


def test_decimate_block_means_and_classes():
    from tanhui.plotting import decimate

    values = np.arange(16, dtype="float32").reshape(4, 4)
    values[2:, 2:] = np.nan
    da = _raster(values)
    da.attrs["units"] = "t C ha-1"
    small = decimate(da, max_size=2)
    np.testing.assert_allclose(small.to_numpy(), [[2.5, 4.5], [10.5, NAN]])
    assert small.attrs["units"] == "t C ha-1"
    np.testing.assert_allclose(small["x"], [1_000_250.0, 1_000_750.0])  # block centres
    np.testing.assert_array_equal(decimate(da, 2, categorical=True).to_numpy(), [[5, 7], [13, NAN]])
    assert decimate(da, max_size=4) is da


def test_map_raster_diverging_is_centred_with_units(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.image import imread

    from tanhui.plotting import map_raster, save_figure

    values = np.linspace(-3.0, 12.0, 400, dtype="float32").reshape(20, 20)
    da = _raster(values, name="stock_change_tC_ha_2015_2023")
    da.attrs.update(units="t C ha-1", long_name="change")
    ax = map_raster(da, kind="diverging", vmax=6.0)
    image = ax.images[0]
    assert image.get_clim() == (-6.0, 6.0)  # centred on 0
    assert ax.figure.axes[1].get_ylabel() == "t C ha-1"  # the colour bar
    assert ax.get_title() == "change"
    png = save_figure(ax.figure, tmp_path / "sub" / "map.png")
    plt.close(ax.figure)
    assert _nonblank_share(imread(png)) > 0.2


def test_bar_chart_refuses_chinese_without_font():
    import matplotlib.pyplot as plt

    from tanhui.errors import InputValueError
    from tanhui.plotting import bar_by_region, cjk_font

    values = pd.Series([1.5, -0.5], index=["科尔沁区", "开鲁县"])
    if cjk_font() is not None:
        ax = bar_by_region(values, units="Mt CO2")
        assert ax.get_yticklabels()[0].get_fontfamily()[0] == cjk_font()
        plt.close(ax.figure)
        return
    with pytest.raises(InputValueError, match="name_en"):
        bar_by_region(values, units="Mt CO2")
    plt.close("all")


# --------------------------------------------------------------------------------------------
# executed notebooks (slow: the first one computes the demo, ~1-2 min)
# --------------------------------------------------------------------------------------------
def _nonblank_share(rgba: np.ndarray) -> float:
    """Share of pixels that are not (near) white."""
    rgb = rgba[..., :3]
    return float((rgb.min(axis=-1) < 0.94).mean())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One working folder for the three notebooks (the later ones reuse the run's tiles)."""
    return tmp_path_factory.mktemp("notebook-work") / "demo"


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """A private 'python3' kernelspec for this interpreter, and the kernel's environment:
    the tanhui under test on PYTHONPATH, TANHUI_NOTEBOOK_DIR set per test."""
    ipk = pytest.importorskip("ipykernel.kernelspec")
    pytest.importorskip("nbclient")
    root = tmp_path_factory.mktemp("jupyter")
    ipk.write_kernel_spec(path=str(root / "kernels" / "python3"))
    src = str(Path(tanhui.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([src] + [p for p in [env.get("PYTHONPATH")] if p])
    env["JUPYTER_PATH"] = os.pathsep.join([str(root)] + [p for p in [env.get("JUPYTER_PATH")] if p])
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])  # the spec manager runs in this process
        yield env


def _run(name: str, workdir: Path, env: dict, tmp_path: Path):
    from nbclient import NotebookClient

    nb = _notebook(name)
    env = dict(env, TANHUI_NOTEBOOK_DIR=str(workdir))
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)  # raises CellExecutionError with the cell's traceback
    assert client.km is None or not client.km.has_kernel
    streams = [o for c in nb.cells if c.cell_type == "code"
               for o in c.outputs if o.output_type == "stream"]
    stderr = "".join(o.text for o in streams if o.name == "stderr")
    assert "Glyph" not in stderr and "Warning" not in stderr, f"{name} warned:\n{stderr}"
    for fig in FIGURES[name]:
        png = workdir / "figures" / fig
        assert png.exists(), f"{name} did not write {png}"
        from matplotlib.image import imread

        rgba = imread(png)
        assert rgba.shape[0] > 300 and rgba.shape[1] > 500, f"{fig} is tiny: {rgba.shape}"
        assert _nonblank_share(rgba) > 0.05, f"{fig} is (nearly) blank"
        colours = np.unique((rgba[..., :3] * 15).round().reshape(-1, 3), axis=0)
        assert len(colours) > 5, f"{fig} has almost no colours ({len(colours)})"
    stdout = "".join(o.text for o in streams if o.name == "stdout")
    return nb, stdout


def _region_csv(workdir: Path) -> pd.DataFrame:
    """out/tables/region_totals.csv: one row per county (all classes), read from disk."""
    table = pd.read_csv(workdir / "out" / "tables" / "region_totals.csv", encoding="utf-8-sig",
                        dtype={"feature_id": str})
    assert table["feature_id"].is_unique
    return table


def _zone_csv(tables: Path, kind: str) -> pd.DataFrame:
    """out/tables/zone_<kind>.csv, the per-polygon rows (class 'all'), read from disk."""
    table = pd.read_csv(tables / f"zone_{kind}.csv", encoding="utf-8-sig",
                        dtype={"class_id": str, "feature_id": str})
    return table[table["class_id"] == "all"]


@pytest.mark.slow
def test_01_quick_start_runs_and_matches_csv(workdir, kernel_env, tmp_path):
    _, stdout = _run("01_quick_start", workdir, kernel_env, tmp_path)
    totals = json.loads((workdir / "01_totals.json").read_text())
    csv = _region_csv(workdir)
    assert len(csv) == 8  # the eight counties of Tongliao
    stock_tC = csv["stock_total_tC_2023"].sum()
    assert totals["stock_total_tC_2023_counties"] == pytest.approx(stock_tC, rel=1e-9)
    assert totals["nep_tCO2_yr_2023_counties"] == pytest.approx(csv["nep_tCO2_yr_2023"].sum(),
                                                                rel=1e-9)
    assert f"{stock_tC / 1e6:,.1f} Mt C" in stdout  # the printed sanity check, units included


@pytest.mark.slow
def test_02_sanqu_sanxian_runs_and_matches_zone_csvs(workdir, kernel_env, tmp_path):
    _, stdout = _run("02_sanqu_sanxian", workdir, kernel_env, tmp_path)
    per_county = pd.read_csv(workdir / "02_lines_by_county.csv", dtype={"county_adcode": str})
    tables = workdir / "out" / "tables"
    for kind, part in per_county.groupby("kind"):
        zones = _zone_csv(tables, kind)
        for column in ("stock_total_tC_2023", "nep_tCO2_yr_2023"):
            expected = zones[column].sum()
            assert part[column].sum() == pytest.approx(expected, rel=1e-9), (kind, column)
    assert set(per_county["kind"]) == {"ecological_protection_red_line", "permanent_basic_farmland",
                                       "urban_development_boundary"}
    # the three spaces partition the counties: their stock adds up to the counties' stock
    spaces = sum(_zone_csv(tables, k)["stock_total_tC_2023"].sum()
                 for k in ("ecological_space", "agricultural_space", "urban_space"))
    assert spaces == pytest.approx(_region_csv(workdir)["stock_total_tC_2023"].sum(), rel=2e-3)
    assert "never" in stdout.lower()


@pytest.mark.slow
def test_03_change_runs_and_matrix_matches_rasterio(workdir, kernel_env, tmp_path):
    import geopandas as gpd
    import rasterio
    from rasterio.features import geometry_mask

    from tanhui.legends import load_classes

    _run("03_change", workdir, kernel_env, tmp_path)
    matrix = pd.read_csv(workdir / "03_transition_matrix_ha.csv", index_col=0)
    out = workdir / "out"
    with rasterio.open(out / "landcover_class_2015.vrt") as a, \
            rasterio.open(out / "landcover_class_2023.vrt") as b:
        lc0, lc1 = a.read(1, masked=True), b.read(1, masked=True)
        counties = gpd.read_file(workdir / "counties.geojson").to_crs(a.crs)
        inside = geometry_mask(counties.geometry, out_shape=a.shape, transform=a.transform,
                               invert=True)
    ok = inside & ~np.ma.getmaskarray(lc0) & ~np.ma.getmaskarray(lc1)
    ok &= (lc0.filled(0) > 0) & (lc1.filled(0) > 0)
    pairs = pd.crosstab(lc0.filled(0)[ok], lc1.filled(0)[ok]) * PIXEL_HA
    labels = load_classes()["label_en"]
    pairs.index = [labels[i] for i in pairs.index]
    pairs.columns = [labels[i] for i in pairs.columns]
    body = matrix.drop(index="total", columns="total")
    for src in pairs.index:
        for dst in pairs.columns:
            assert body.loc[src, dst] == pytest.approx(pairs.loc[src, dst]), (src, dst)
    assert body.to_numpy().sum() == pytest.approx(ok.sum() * PIXEL_HA)
