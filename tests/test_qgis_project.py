"""Vector deliverables and the QGIS project (issue 4 §3): zones.gpkg, GeoJSON, tanhui.qgs.

A small project (40 x 40 pixels of 250 m on the China Albers grid, two regions, a 三区 layer
and an overlapping 红线 layer, monthly NDVI for fluxes) is run once per module. References are
independent of tanhui.qgis_deliver: hand-computed areas and pixel counts, the input polygons
read back with geopandas, the CSV tables written by tanhui.delivery, pyproj, sqlite3 and, in
the `qgis`-marked test, Debian's real QGIS (tests/qgis_check.py under /usr/bin/python3).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

from tanhui.grid import TileGrid

N, RES = 40, 250.0
X0, Y0 = 1_300_000.0, 5_000_000.0  # on the china_albers_250m pixel grid
SYSTEM_PYTHON = "/usr/bin/python3"
CHECK_SCRIPT = Path(__file__).with_name("qgis_check.py")
ZONE_LAYERS = ["zone_ecological_space", "zone_ecological_protection_red_line"]
POLYGON_LAYERS = ["regions", *ZONE_LAYERS]
NEP_FIELD = "mean_nep_gC_m2_yr_2023"


def _square(c0, r0, c1, r1):
    """Polygon over pixel columns c0..c1 and rows r0..r1 (fractions allowed)."""
    return box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


def _write_project(d: Path, crs) -> Path:
    def tif(path, arr, dtype, nodata):
        with rasterio.open(path, "w", driver="GTiff", width=N, height=N, count=1, dtype=dtype,
                           crs=crs, transform=from_origin(X0, Y0, RES, RES), nodata=nodata) as dst:
            dst.write(arr.astype(dtype), 1)

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:N, 0:N]
    # CNLUCC codes: forest | grassland | cropland (north) / sand (south); 10 % low-cover grass
    codes = np.where(xx < 13, 21, np.where(xx < 26, 31, np.where(yy < 20, 12, 61)))
    codes[rng.random((N, N)) < 0.1] = 33
    tif(d / "lc2015.tif", codes, "uint8", 0)
    lc23 = np.where((codes == 61) & (yy > 30), 31, codes)
    lc23 = np.where((codes == 21) & (yy > 30), 12, lc23)
    tif(d / "lc2023.tif", lc23, "uint8", 0)
    (d / "ndvi").mkdir()
    season = np.sin(np.pi * (np.arange(12) + 0.5) / 12) ** 2
    peak = np.select([lc23 == 21, lc23 == 31, lc23 == 12, lc23 == 33], [0.8, 0.6, 0.7, 0.4], 0.12)
    for m in range(12):
        tif(d / "ndvi" / f"ndvi_2023_{m + 1:02d}.tif",
            (0.08 + (peak - 0.08) * season[m]).astype("float32"), "float32", float("nan"))
    gpd.GeoDataFrame({"code": ["R1", "R2"], "name": ["西区", "东区"]},
                     geometry=[_square(0, 0, 20, 40), _square(20, 0, 40, 40)],
                     crs=crs).to_file(d / "regions.gpkg")
    gpd.GeoDataFrame({"zid": ["E1", "A1", "U1"], "zname": ["生态空间", "农业空间", "城镇空间"]},
                     geometry=[_square(0, 0, 16, 40), _square(16, 0, 40, 25),
                               _square(16, 25, 40, 40)], crs=crs).to_file(d / "sanqu.gpkg")
    # the red line overlaps both 三区 zones and both regions, with partial pixels on all sides
    gpd.GeoDataFrame({"zid": ["L1"], "zname": ["红线 1"]},
                     geometry=[_square(4.5, 6.5, 30.3, 18.7)], crs=crs).to_file(d / "redline.gpkg")
    (d / "project.toml").write_text("""
[project]
name = "qgis check"
output_dir = "out"
grid = "china_albers_250m"
[landcover]
legend = "cnlucc"
[[landcover.epochs]]
year = 2015
path = "lc2015.tif"
[[landcover.epochs]]
year = 2023
path = "lc2023.tif"
[stock]
density_table = "carbon_density_horqin"
[regions]
path = "regions.gpkg"
id_field = "code"
name_field = "name"
[[zones]]
kind = "ecological_space"
path = "sanqu.gpkg"
id_field = "zid"
name_field = "zname"
[[zones]]
kind = "ecological_protection_red_line"
path = "redline.gpkg"
id_field = "zid"
name_field = "zname"
[flux]
year = 2023
ndvi = "ndvi/ndvi_2023_*.tif"
[flux.climate]
temperature_C = [-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0]
precipitation_mm = [2.0, 3.0, 8.0, 18.0, 35.0, 70.0, 120.0, 85.0, 40.0, 15.0, 5.0, 3.0]
radiation_MJ_m2 = [233.2, 294.0, 460.0, 580.8, 701.6, 719.9, 720.6, 634.6, 488.2, 362.4, 243.9,
                   205.3]
""", encoding="utf-8")
    return d / "project.toml"


class Run(NamedTuple):
    d: Path  # project folder
    out: Path  # output folder
    ctx: object  # RunContext
    tables: dict


@pytest.fixture(scope="module")
def grid_crs() -> pyproj.CRS:
    return TileGrid.load("china_albers_250m").crs


@pytest.fixture(scope="module")
def run(tmp_path_factory, grid_crs):
    """The small project, run once."""
    import tanhui
    from tanhui.context import build_context
    from tanhui.project import load_project
    from tanhui.qgis_deliver import write_vector_and_qgis_outputs

    d = tmp_path_factory.mktemp("qgis_project")
    project = _write_project(d, grid_crs.to_wkt())
    summary = tanhui.run_project(project)
    out = Path(summary.out_dir)
    ctx = build_context(load_project(project))
    if not (out / "tanhui.qgs").exists():
        # delivery.write_deliverables does not call the writer yet: call it as it will.
        write_vector_and_qgis_outputs(ctx, out, summary.tables)
    return Run(d, out, ctx, summary.tables)


def _csv(out: Path, name: str) -> pd.DataFrame:
    t = pd.read_csv(out / "tables" / name, dtype={"feature_id": str, "class_id": str})
    return t.drop(columns=[c for c in t.columns if c.startswith("Unnamed")])


def _all_rows(out: Path, layer: str) -> pd.DataFrame:
    if layer == "regions":
        return _csv(out, "region_totals.csv").set_index("feature_id")
    t = _csv(out, layer + ".csv")
    return t[t["class_id"] == "all"].set_index("feature_id")


# --------------------------------------------------------------------------- helpers (no QGIS)


def test_class_breaks_are_round_and_cover_the_values():
    from tanhui.qgis_deliver import class_breaks, nice_step

    assert [nice_step(x) for x in (61.0, 100.0, 0.013, 7.0, 1.01)] == [80, 100, 0.015, 8, 1.2]
    # diverging: 3 classes each side of 0, step = nice(182.9 / 3) = 80
    assert class_breaks(np.array([-10.0, 182.9, np.nan]), diverging=True) == (
        -240, -160, -80, 0, 80, 160, 240)
    # sequential: step = nice((87 - 12) / 6 = 12.5) = 15, from floor(12 / 15) * 15 = 0
    assert class_breaks(np.array([12.0, 87.0]), diverging=False) == (0, 15, 30, 45, 60, 75, 90)
    assert class_breaks(np.array([np.nan]), diverging=True) == (-3, -2, -1, 0, 1, 2, 3)


# --------------------------------------------------------------------------- GeoPackage


def test_gpkg_polygon_layers_carry_the_all_classes_statistics(run, grid_crs):
    d, out = run.d, run.out
    gpkg = out / "zones.gpkg"
    names = [n for n, _ in pyogrio.list_layers(gpkg)]
    assert set(names) >= {*POLYGON_LAYERS, "class_totals"}
    inputs = {"regions": (d / "regions.gpkg", "code"),
              "zone_ecological_space": (d / "sanqu.gpkg", "zid"),
              "zone_ecological_protection_red_line": (d / "redline.gpkg", "zid")}
    for layer in POLYGON_LAYERS:
        g = gpd.read_file(gpkg, layer=layer)
        assert pyproj.CRS(g.crs).equals(grid_crs), layer
        assert set(g.geom_type) == {"MultiPolygon"}
        src_path, id_field = inputs[layer]
        src = gpd.read_file(src_path).set_index(id_field)
        g = g.set_index("feature_id")
        assert sorted(g.index) == sorted(src.index)
        # same polygons as the input (same CRS, so the symmetric difference is empty)
        for fid in g.index:
            assert g.geometry[fid].symmetric_difference(src.geometry[fid]).area < 1e-6
        ref = _all_rows(out, layer)
        keys = ("layer", "feature_name", "class_id", "class_name")
        stats = [c for c in ref.columns if c not in keys]
        assert len(stats) > 40 and NEP_FIELD in stats and "stock_change_tC_2015_2023" in stats
        for fid in g.index:
            assert g.loc[fid, "feature_name"] == ref.loc[fid, "feature_name"]
            got = g.loc[fid, stats].astype(float).to_numpy()
            want = ref.loc[fid, stats].astype(float).to_numpy()
            np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True,
                                       err_msg=f"{layer}/{fid}")
            np.testing.assert_allclose(
                g.loc[fid, "area_diff_ha_2023"],
                ref.loc[fid, "area_ha_2023"] - ref.loc[fid, "polygon_area_ha"], atol=1e-9)


def test_gpkg_areas_and_partial_pixels_by_hand(run):
    out = run.out
    regions = gpd.read_file(out / "zones.gpkg", layer="regions").set_index("feature_id")
    # each region is 20 x 40 whole pixels of 6.25 ha
    for fid in ("R1", "R2"):
        assert regions.loc[fid, "area_ha_2023"] == pytest.approx(5000.0, rel=1e-9)
        assert regions.loc[fid, "polygon_area_ha"] == pytest.approx(5000.0, rel=1e-9)
        assert regions.loc[fid, "n_pixels_2023"] == 800
        assert regions.loc[fid, "n_partial_pixels_2023"] == 0
    red = gpd.read_file(out / "zones.gpkg", layer="zone_ecological_protection_red_line")
    row = red.iloc[0]
    # columns 4.5..30.3, rows 6.5..18.7: 25.8 x 12.2 pixels of 6.25 ha
    assert row["polygon_area_ha"] == pytest.approx(25.8 * 12.2 * 6.25, rel=1e-9)
    assert row["area_ha_2023"] == pytest.approx(25.8 * 12.2 * 6.25, rel=1e-6)
    assert abs(row["area_diff_ha_2023"]) < 1e-3 and abs(row["area_diff_pct_2023"]) < 1e-4
    # touched: columns 4..30 (27) x rows 6..18 (13); whole: 5..29 (25) x 7..17 (11)
    assert row["n_pixels_2023"] == 27 * 13
    assert row["n_partial_pixels_2023"] == 27 * 13 - 25 * 11


def test_class_totals_table(run):
    out = run.out
    t = pyogrio.read_dataframe(out / "zones.gpkg", layer="class_totals", read_geometry=False)
    assert "geometry" not in t.columns
    assert set(t["layer"]) == set(POLYGON_LAYERS)
    assert pd.api.types.is_integer_dtype(t["class_id"])
    ref = _csv(out, "region_class_totals.csv")
    got = t[t["layer"] == "regions"].sort_values(["feature_id", "class_id"]).reset_index(drop=True)
    ref = ref.assign(class_id=ref["class_id"].astype(int)).sort_values(
        ["feature_id", "class_id"]).reset_index(drop=True)
    assert len(got) == len(ref) > 0
    np.testing.assert_allclose(got["stock_total_tC_2023"], ref["stock_total_tC_2023"], rtol=1e-12)
    assert list(got["class_name"]) == list(ref["class_name"])
    # per-class areas add up to each feature's area (all pixels are valid land cover)
    feats = gpd.read_file(out / "zones.gpkg", layer="zone_ecological_space").set_index("feature_id")
    sums = t[t["layer"] == "zone_ecological_space"].groupby("feature_id")["area_ha_2023"].sum()
    np.testing.assert_allclose(sums.sort_index(), feats["area_ha_2023"].sort_index(), rtol=1e-9)


def test_gpkg_styles_and_overlap_note(run):
    from tanhui.qgis_deliver import OVERLAP_NOTE

    out = run.out
    gpkg = out / "zones.gpkg"
    con = sqlite3.connect(gpkg)
    try:
        stylerows = con.execute("SELECT f_table_name, f_geometry_column, styleQML, useAsDefault "
                                "FROM layer_styles").fetchall()
        desc = dict(con.execute("SELECT table_name, description FROM gpkg_contents"))
        user_version = con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()
    assert user_version == 10200  # GeoPackage 1.2 header: read without warnings by GDAL < 3.7
    qml = {name: ET.fromstring(text) for name, geom, text, default in stylerows
           if default and geom == "geom"}
    assert set(qml) == set(POLYGON_LAYERS)
    reg = qml["regions"].find("renderer-v2")
    assert reg.get("type") == "singleSymbol"
    assert qml["regions"].get("labelsEnabled") == "1"
    assert qml["regions"].find("labeling/settings/text-style").get("fieldName") == "feature_name"
    values = []
    for layer in ZONE_LAYERS:
        values += list(gpd.read_file(gpkg, layer=layer)[NEP_FIELD])
    for layer in ZONE_LAYERS:
        r = qml[layer].find("renderer-v2")
        assert r.get("type") == "graduatedSymbol" and r.get("attr") == NEP_FIELD
        edges = [(float(e.get("lower")), float(e.get("upper"))) for e in r.iter("range")]
        assert edges[0][0] == -edges[-1][1]  # symmetric about 0 (diverging, sink-positive)
        assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))
        assert edges[0][0] <= min(values) and max(values) <= edges[-1][1]
    for name in [*POLYGON_LAYERS, "class_totals"]:
        assert desc[name] == OVERLAP_NOTE
    assert "三线" in OVERLAP_NOTE and "never be added" in OVERLAP_NOTE
    # GDAL reads the note as layer description and dataset metadata
    info = pyogrio.read_info(gpkg, layer="class_totals")
    assert (info.get("layer_metadata") or {}).get("DESCRIPTION") == OVERLAP_NOTE
    assert (info.get("dataset_metadata") or {}).get("DESCRIPTION") == OVERLAP_NOTE


def test_geojson_is_rfc7946_lonlat(run, grid_crs):
    from tanhui.qgis_deliver import OVERLAP_NOTE

    out = run.out
    for layer in POLYGON_LAYERS:
        path = out / "geojson" / f"{layer}.geojson"
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc["type"] == "FeatureCollection" and doc["description"] == OVERLAP_NOTE
        assert "crs" not in doc  # RFC 7946: always WGS 84 lon/lat, no crs member
        ring = doc["features"][0]["geometry"]["coordinates"][0][0]
        lon, lat = ring[0]
        assert 115 < lon < 130 and 40 < lat < 50  # Tongliao, not metres
        g = gpd.read_file(path)
        ref = gpd.read_file(out / "zones.gpkg", layer=layer).set_index("feature_id")
        g = g.set_index("feature_id")
        area = g.to_crs(grid_crs).area / 1e4
        np.testing.assert_allclose(area[ref.index], ref["polygon_area_ha"], rtol=1e-5)
        np.testing.assert_allclose(g.loc[ref.index, NEP_FIELD], ref[NEP_FIELD], rtol=1e-12)


# --------------------------------------------------------------------------- the .qgs file


def _maplayers(qgs: Path) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.parse(qgs).getroot()
    return root, root.findall("projectlayers/maplayer")


def test_qgs_structure_and_relative_datasources(run, grid_crs):
    out = run.out
    qgs = out / "tanhui.qgs"
    root, layers = _maplayers(qgs)
    assert root.tag == "qgis" and root.get("version").startswith("3.")
    wkt = root.find("projectCrs/spatialrefsys/wkt").text
    assert pyproj.CRS.from_wkt(wkt).equals(grid_crs)
    assert root.find("properties/Paths/Absolute").text == "false"

    sources = {}
    for ml in layers:
        ds = ml.find("datasource").text
        provider = ml.find("provider").text
        file_part = ds.split("|")[0]
        assert not Path(file_part).is_absolute() and file_part.startswith("./"), ds
        assert (qgs.parent / file_part).is_file(), f"{ds} does not exist beside {qgs}"
        assert pyproj.CRS.from_wkt(ml.find("srs/spatialrefsys/wkt").text).equals(grid_crs)
        if file_part.endswith(".vrt"):
            assert provider == "gdal" and ml.get("type") == "raster"
            renderer = ml.find("pipe/rasterrenderer").get("type")
            expected = "paletted" if "landcover_class" in ds else "singlebandpseudocolor"
            assert renderer == expected, ds
            # the embedded renderer is the style written beside the mosaic
            beside = ET.parse(qgs.parent / file_part.replace(".vrt", ".qml")).getroot()
            def canon(el):
                return ET.canonicalize(ET.tostring(el, encoding="unicode"), strip_text=True)

            embedded, qml = ml.find("pipe/rasterrenderer"), beside.find("pipe/rasterrenderer")
            assert canon(embedded) == canon(qml), ds
        else:
            assert provider == "ogr" and file_part == "./zones.gpkg"
            layer = ds.split("|layername=")[1]
            assert layer in pyogrio.list_layers(qgs.parent / "zones.gpkg")[:, 0]
            r = ml.find("renderer-v2")
            if layer == "class_totals":
                assert r is None and ml.get("geometry") == "No geometry"
            else:
                assert r.get("type") in ("singleSymbol", "graduatedSymbol")
        sources.setdefault(ds, []).append(ml)
    vrts = sorted(p.name for p in out.glob("*.vrt"))
    assert len(vrts) == 17
    assert sorted(s[2:] for s in sources if s.endswith(".vrt")) == vrts
    gpkg_layers = {s.split("=")[1] for s in sources if "layername" in s}
    assert gpkg_layers == {*POLYGON_LAYERS, "class_totals"}

    # layer tree: groups in order, every tree layer is a map layer, regions outline on top
    ids = {ml.find("id").text for ml in layers}
    groups = root.findall("layer-tree-group/layer-tree-group")
    assert [g.get("name") for g in groups] == ["Regions & zones", "Carbon sink", "Carbon stock",
                                             "Land cover"]
    tree = [tl for g in groups for tl in g.findall("layer-tree-layer")]
    assert sorted(tl.get("id") for tl in tree) == sorted(ids)
    assert tree[0].get("source") == "./zones.gpkg|layername=regions"
    top = next(ml for ml in layers if ml.find("id").text == tree[0].get("id"))
    assert top.find("renderer-v2").get("type") == "singleSymbol" and top.get("labelsEnabled") == "1"
    sink = [tl.get("source") for tl in groups[1].findall("layer-tree-layer")]
    assert sink[0] == "./nep_gC_m2_yr_2023.vrt"
    assert [tl.get("checked") for tl in groups[1].findall("layer-tree-layer")][0] == "Qt::Checked"
    land = [tl.get("source") for tl in groups[3].findall("layer-tree-layer")]
    assert land == ["./landcover_class_2023.vrt", "./landcover_class_2015.vrt"]
    order = [e.get("id") for e in root.findall("layerorder/layer")]
    assert order == [tl.get("id") for tl in tree]
    assert "三线" in root.find("projectMetadata/abstract").text


def test_qgs_survives_moving_the_output_folder(run, tmp_path):
    out = run.out
    moved = tmp_path / "moved"
    shutil.copytree(out, moved, ignore=shutil.ignore_patterns("tiles"))
    shutil.copytree(out / "tiles", moved / "tiles")
    _, layers = _maplayers(moved / "tanhui.qgs")
    for ml in layers:
        file_part = ml.find("datasource").text.split("|")[0]
        assert (moved / file_part).is_file()
        if file_part.endswith(".vrt"):
            with rasterio.open(moved / file_part) as src:  # the VRT's tiles resolve too
                assert src.read(1, masked=True).count() > 0, file_part


def test_mosaic_with_missing_tiles_is_left_out(run, tmp_path, caplog):
    from tanhui.qgis_deliver import write_vector_and_qgis_outputs

    out = run.out
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    vrt = (copy / "nep_gC_m2_yr_2023.vrt").read_text(encoding="utf-8")
    (copy / "old_nep.vrt").write_text(vrt.replace("tiles/nep_gC_m2_yr_2023/", "tiles/gone/"),
                                      encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="tanhui"):
        files = write_vector_and_qgis_outputs(run.ctx, copy, run.tables)
    assert files[0] == "zones.gpkg" and files[-1] == "tanhui.qgs"
    sources = [ml.find("datasource").text for ml in _maplayers(copy / "tanhui.qgs")[1]]
    assert "./nep_gC_m2_yr_2023.vrt" in sources and "./old_nep.vrt" not in sources
    assert "old_nep.vrt left out" in caplog.text


# --------------------------------------------------------------------------- real QGIS


def _qgis_available() -> str | None:
    if not os.path.exists(SYSTEM_PYTHON):
        return f"{SYSTEM_PYTHON} not found"
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=120)
    if r.returncode:
        return (f"QGIS Python bindings missing for {SYSTEM_PYTHON} "
                f"(apt-get install qgis python3-qgis): {r.stderr.strip().splitlines()[-1:]}")
    return None


@pytest.mark.qgis
def test_project_opens_styled_and_renders_in_real_qgis(run, grid_crs):
    from PIL import Image

    reason = _qgis_available()
    if reason:
        pytest.skip(reason)
    out = run.out
    png = out / "render.png"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    r = subprocess.run([SYSTEM_PYTHON, str(CHECK_SCRIPT), str(out / "tanhui.qgs"), str(png)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(r.stdout)
    assert rep["project_read"] and rep["absolute_paths"] is False
    pcrs = rep["project_crs"]
    assert pcrs["valid"]
    assert pyproj.CRS.from_wkt(pcrs["wkt"]).equals(grid_crs) or pyproj.CRS(pcrs["proj"]).equals(
        pyproj.CRS(grid_crs.to_proj4()))
    assert "三线" in rep["abstract"]

    layers = rep["layers"]
    assert len(layers) == 17 + 5  # mosaics + regions outline, 2 zones, regions choropleth, table
    for lay in layers:
        name = lay["name"]
        assert lay["valid"], name
        assert lay["crs_valid"] and lay["same_crs_as_project"], name
        assert lay.get("same_crs_as_data", True), name
        src = lay["source"]
        if src.endswith(".vrt"):
            assert lay["provider"] == "gdal"
            want = "paletted" if "landcover_class" in src else "singlebandpseudocolor"
            assert lay["renderer"] == want, name
            if want == "paletted":
                assert lay["n_palette"] >= 10
            else:
                assert lay["n_ramp_items"] == 9
        elif src.endswith("layername=class_totals"):
            assert lay["renderer"] is None and lay["feature_count"] > 0
        else:
            assert lay["provider"] == "ogr"
            if "行政区 (outline)" in name:
                assert lay["renderer"] == "singleSymbol" and lay["fill_style"] == "no"
                assert lay["labels_enabled"] and lay["label_field"] == "feature_name"
            else:
                assert lay["renderer"] == "graduatedSymbol", name
                assert lay["classification_attribute"] == NEP_FIELD and lay["n_ranges"] == 6
            assert NEP_FIELD in lay["fields"]
        if "render_colours" in lay:
            # each layer alone over the default view (the regions' extent + 3 % margins, so
            # full-cover layers fill 1 / 1.06² = 89 % of it)
            assert not lay["render_errors"], name
            assert lay["render_colours"] >= 2, name
            drawn = lay["render_drawn_share"]
            if "行政区 (outline)" in name:
                assert 0.01 < drawn < 0.3, (name, drawn)  # hollow: lines and labels only
            elif "红线" in name:  # 25.8 x 12.2 of the 42.4 x 42.4 pixels in view: 17.5 %
                assert 0.15 < drawn < 0.25, (name, drawn)
            elif "Stock change" in name:  # only the changed pixels differ from white (0)
                assert 0.03 < drawn < 0.5, (name, drawn)
            else:
                assert drawn > 0.8, (name, drawn)

    # the composed map as it opens: regions outline over NEP
    render = rep["render"]
    assert render["layers"] == ["Regions 行政区 (outline)", "NEP 2023 (g C m-2 yr-1, + = sink)"]
    assert not render["errors"]
    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape == (800, 800, 3)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) >= 5, "the map is (nearly) blank"
    white = np.all(img == 255, axis=-1).mean()
    assert white < 0.5, f"{white:.0%} of the map is background"
    # NEP colours come from the diverging ramp: both a sink (blue) and a source (red) are drawn
    blue = (img[..., 2].astype(int) - img[..., 0] > 60).mean()
    red = (img[..., 0].astype(int) - img[..., 2] > 40).mean()
    assert blue > 0.05 and red > 0.01, (blue, red)

    # the GeoPackage opened on its own: QGIS applies the stored default styles
    direct = {d["layer"]: d for d in rep["direct_gpkg"]}
    assert direct["regions"]["renderer"] == "singleSymbol" and direct["regions"]["labels_enabled"]
    for layer in ZONE_LAYERS:
        assert direct[layer]["renderer"] == "graduatedSymbol"
        assert direct[layer]["classification_attribute"] == NEP_FIELD
        assert direct[layer]["same_crs_as_project"]
    assert direct["class_totals"]["valid"] and not direct["class_totals"]["spatial"]
    for d in direct.values():
        assert "never be added together" in d["abstract"], d["layer"]
