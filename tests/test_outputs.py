"""Tests for tanhui.outputs (COG, VRT, CSV, JSON, GeoJSON, GeoPackage) and tanhui.styles (QML).

Oracles are independent of the code under test: raw file bytes (COG header,
BOM), NumPy block means for overviews, pyproj for reprojection, sqlite3 and
GDAL (pyogrio/rasterio) for reading back, xml.etree for QML structure, and the
FIPS 180-2 SHA-256 test vector.
"""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.shutil
from numpy.testing import assert_allclose, assert_array_equal
from pyproj import CRS as ProjCRS
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import LinearRing, box

from tanhui import outputs, styles
from tanhui.errors import (
    GridMismatchError,
    InputFileError,
    InputValueError,
    MissingCRSError,
    OutputError,
)
from tanhui.outputs import (
    SIGN_CONVENTION_SINK_POSITIVE,
    atomic_path,
    build_vrt,
    sha256_file,
    write_cog,
    write_csv,
    write_geojson,
    write_gpkg_layers,
    write_json,
)

UTM51 = "EPSG:32651"  # Tongliao lies in UTM zone 51N (120-126 E)
X0, Y0, RES = 500_000.0, 4_850_000.0, 30.0


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _float_stack(shape, seed=0, nan_fraction=0.05):
    rng = np.random.default_rng(seed)
    a = rng.gamma(2.0, 20.0, size=shape).astype(np.float32)
    a[rng.random(shape) < nan_fraction] = np.nan
    return a


# =========================================================================== COG


@pytest.fixture(scope="module")
def cog_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cog")
    data = _float_stack((2, 1100, 1030))
    data[0, :3, :3] = [[0.0, -1.5, 1e-30], [3.4e38, -3.4e38, np.nan], [7.25, 8.0, 9.5]]
    path = write_cog(
        folder / "stock.tif",
        data,
        from_origin(X0, Y0, RES, RES),
        UTM51,
        band_names=["stock_total_tC_ha", "stock_soil_tC_ha"],
        units="t C ha-1",
        long_name="carbon stock density 碳储量密度",
        tags={"sign_convention": SIGN_CONVENTION_SINK_POSITIVE, "synthetic": True},
    )
    return folder, path, data


def test_cog_header_is_cloud_optimized(cog_case):
    # Independent of GDAL's report: the COG driver writes a structural-metadata
    # "ghost" block right after the TIFF header declaring the IFDs-first layout.
    _, path, _ = cog_case
    head = path.read_bytes()[:400]
    assert head[:4] in (b"II*\x00", b"II+\x00")
    assert b"GDAL_STRUCTURAL_METADATA_SIZE=" in head
    assert b"LAYOUT=IFDS_BEFORE_DATA" in head
    assert b"BLOCK_ORDER=ROW_MAJOR" in head
    assert b"KNOWN_INCOMPATIBLE_EDITION=NO" in head


def test_cog_structure_and_metadata(cog_case):
    _, path, data = cog_case
    with rasterio.open(path) as src:
        assert src.driver == "GTiff"
        struct = src.tags(ns="IMAGE_STRUCTURE")
        assert struct["LAYOUT"] == "COG"
        assert struct["COMPRESSION"] == "DEFLATE"
        assert struct["PREDICTOR"] == "3"
        assert src.block_shapes == [(512, 512), (512, 512)]
        assert src.overviews(1) == [2, 4] and src.overviews(2) == [2, 4]
        assert src.crs == rasterio.crs.CRS.from_epsg(32651)
        assert src.transform == from_origin(X0, Y0, RES, RES)
        assert (src.count, src.height, src.width) == data.shape
        assert src.dtypes == ("float32", "float32")
        assert math.isnan(src.nodata)
        assert src.descriptions == ("stock_total_tC_ha", "stock_soil_tC_ha")
        assert src.units == ("t C ha-1", "t C ha-1")
        assert src.tags(1)["units"] == "t C ha-1"
        tags = src.tags()
        assert tags["units"] == "t C ha-1"
        assert tags["long_name"] == "carbon stock density 碳储量密度"
        assert tags["sign_convention"] == SIGN_CONVENTION_SINK_POSITIVE
        assert tags["synthetic"] == "True"
        assert src.scales == (1.0, 1.0) and src.offsets == (0.0, 0.0)


def test_cog_values_round_trip_exactly(cog_case):
    _, path, data = cog_case
    with rasterio.open(path) as src:
        back = src.read()
    assert back.dtype == np.float32
    assert_array_equal(back, data)  # NaN positions compare equal in assert_array_equal
    assert np.array_equal(np.isnan(back), np.isnan(data))


def test_cog_leaves_only_the_final_file(cog_case):
    folder, _, _ = cog_case
    assert _listing(folder) == ["stock.tif"]  # no temp, no .aux.xml


def test_cog_overviews_average_ignores_nan(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.uniform(0, 100, (1024, 1024)).astype(np.float32)
    data[rng.random(data.shape) < 0.3] = np.nan
    data[:2, :2] = np.nan  # an all-nodata 2x2 block stays nodata
    path = write_cog(tmp_path / "npp.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     band_names=["npp_gC_m2_yr"], units="g C m-2 yr-1")
    with rasterio.open(path, overview_level=0) as ovr:
        level1 = ovr.read(1)
    blocks = data.reshape(512, 2, 512, 2).astype(np.float64)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmean(blocks, axis=(1, 3))
    assert level1.shape == (512, 512)
    assert math.isnan(level1[0, 0])
    assert_allclose(level1, expected, rtol=1e-6, equal_nan=True)


def test_cog_class_raster_keeps_codes_in_overviews(tmp_path):
    rng = np.random.default_rng(5)
    codes = rng.choice(np.array([0, 1, 7, 11], dtype=np.uint8), size=(1100, 1100))
    path = write_cog(tmp_path / "lc.tif", codes, from_origin(X0, Y0, RES, RES), UTM51,
                     nodata=0, band_names=["landcover_class"], units="class id")
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR", "1") == "1"
        assert_array_equal(src.read(1), codes)
    with rasterio.open(path, overview_level=0) as ovr:
        # Nearest never invents a class; an average would give codes like 4 or 6.
        assert set(np.unique(ovr.read(1))) <= {0, 1, 7, 11}


def _tiff_ifds(raw: bytes) -> list[dict[int, list[int]]]:
    """The IFDs of a little-endian TIFF or BigTIFF, in file order, read from the bytes alone.

    Each IFD maps tag -> values, plus key -1 -> the IFD's own offset.
    """
    import struct

    big = raw[2:4] == b"+\x00"
    assert raw[:2] == b"II" and raw[2:4] in (b"*\x00", b"+\x00")
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 6: 1, 7: 1, 8: 2, 9: 4, 11: 4, 12: 8, 16: 8, 17: 8}
    codes = {1: "B", 2: "B", 3: "H", 4: "I", 6: "b", 7: "B", 8: "h", 9: "i", 11: "f",
             12: "d", 16: "Q", 17: "q"}
    off = struct.unpack_from("<Q", raw, 8)[0] if big else struct.unpack_from("<I", raw, 4)[0]
    ifds = []
    while off:
        n = struct.unpack_from("<Q" if big else "<H", raw, off)[0]
        pos = off + (8 if big else 2)
        entry, inline = (20, 8) if big else (12, 4)
        tags: dict[int, list[int]] = {-1: [off]}
        for k in range(n):
            e = pos + k * entry
            tag, typ = struct.unpack_from("<HH", raw, e)
            count = struct.unpack_from("<Q" if big else "<I", raw, e + 4)[0]
            vpos = e + (12 if big else 8)
            if count * sizes[typ] > inline:
                vpos = struct.unpack_from("<Q" if big else "<I", raw, vpos)[0]
            tags[tag] = list(struct.unpack_from(f"<{count}{codes[typ]}", raw, vpos))
        ifds.append(tags)
        off = struct.unpack_from("<Q" if big else "<I", raw, pos + n * entry)[0]
    return ifds


@pytest.mark.parametrize("kind", ["continuous", "classes"])
def test_cog_layout_is_tiled_cog_with_overviews_and_bit_identical(tmp_path, kind):
    # Independent of GDAL's report: walk the TIFF directories in the bytes. A COG has the
    # full-resolution IFD first, then one reduced-resolution IFD per overview (halving,
    # ceil), every IFD before any pixel data, all images tiled 512 x 512, and the pixel data
    # of the smallest overview first and the full resolution last.
    if kind == "continuous":
        data = _float_stack((2085, 1500), seed=11)  # not multiples of 512; NaN = nodata
        data[0, :4] = [np.float32(1e-38), -0.0, np.inf, -np.inf]
        nodata, predictor = float("nan"), 3
    else:
        rng = np.random.default_rng(12)
        data = rng.choice(np.array([0, 3, 21, 46], np.uint8), size=(2085, 1500))
        nodata, predictor = 0, 1
    path = write_cog(tmp_path / "x.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     nodata=nodata, band_names=["x"], units="1")
    ifds = _tiff_ifds(path.read_bytes())
    sizes = [(d[256][0], d[257][0]) for d in ifds]
    assert sizes == [(1500, 2085), (750, 1043), (375, 522), (188, 261)]
    assert [d.get(254, [0])[0] for d in ifds] == [0, 1, 1, 1]  # reduced-resolution images
    for d in ifds:
        assert d[322] == [512] and d[323] == [512]  # tiled 512 x 512 ...
        assert 273 not in d  # ... not striped
        assert d[259] == [8]  # Adobe DEFLATE
        assert d.get(317, [1]) == [predictor]
        tiles_across = -(-d[256][0] // 512) * -(-d[257][0] // 512)
        assert len(d[324]) == len(d[325]) == tiles_across
    ifd_offsets = [d[-1][0] for d in ifds]
    data_starts = [min(o for o, n in zip(d[324], d[325]) if n) for d in ifds]
    data_ends = [max(o + n for o, n in zip(d[324], d[325])) for d in ifds]
    assert ifd_offsets == sorted(ifd_offsets) and max(ifd_offsets) < min(data_starts)
    for smaller in range(len(ifds) - 1, 0, -1):  # smallest overview's data first
        assert data_ends[smaller] <= data_starts[smaller - 1]
    with rasterio.open(path) as src:
        back = src.read(1)
        assert src.overviews(1) == [2, 4, 8]
    if kind == "continuous":
        assert_array_equal(back.view(np.uint32), data.view(np.uint32))  # bit for bit
    else:
        assert_array_equal(back, data)


def test_cog_overviews_match_gdal_cog_driver(tmp_path):
    # The previous writer let GDAL's COG driver build the overviews; the first level is the
    # same to the bit, and deeper levels average the full resolution (the COG driver
    # averages the previous level, which weighs pixels unevenly next to nodata).
    data = _float_stack((1300, 1100), seed=13, nan_fraction=0.3)
    path = write_cog(tmp_path / "new.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     band_names=["x"], units="1")
    old = tmp_path / "old.tif"
    with rasterio.open(old, "w", driver="COG", width=1100, height=1300, count=1,
                       dtype="float32", crs=UTM51, transform=from_origin(X0, Y0, RES, RES),
                       nodata=float("nan"), blocksize=512, compress="DEFLATE",
                       predictor="FLOATING_POINT", overview_resampling="AVERAGE") as dst:
        dst.write(data, 1)
    with rasterio.open(path) as a, rasterio.open(old) as b:
        assert a.overviews(1) == b.overviews(1) == [2, 4]
        assert_array_equal(a.read(1).view(np.uint32), b.read(1).view(np.uint32))
    with rasterio.open(path, overview_level=0) as a, rasterio.open(old, overview_level=0) as b:
        assert_array_equal(a.read(1).view(np.uint32), b.read(1).view(np.uint32))
    with rasterio.open(path, overview_level=1) as a:
        level2 = a.read(1)
    blocks = data.reshape(325, 4, 275, 4).astype(np.float64)
    expected = np.nanmean(blocks, axis=(1, 3))  # no 4 x 4 block is all nodata here
    assert_allclose(level2, expected, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("level", [1, 6, 9])
def test_cog_deflate_level_changes_size_not_values(tmp_path, level):
    data = _float_stack((600, 700), seed=14)
    path = write_cog(tmp_path / "x.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     band_names=["x"], units="1", level=level, num_threads=2)
    with rasterio.open(path) as src:
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert_array_equal(src.read(1).view(np.uint32), data.view(np.uint32))


def test_cog_small_raster_without_overviews(tmp_path):
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_cog(tmp_path / "s.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     band_names=["x"], units="1", overviews=False)
    with rasterio.open(path) as src:
        assert src.overviews(1) == []
        assert_array_equal(src.read(1), data)


@pytest.mark.parametrize("compress", ["ZSTD", "LZW", "NONE"])
def test_cog_other_codecs(tmp_path, compress):
    data = _float_stack((40, 30), seed=8)
    path = write_cog(tmp_path / "c.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     band_names=["x"], units="1", compress=compress)
    with rasterio.open(path) as src:
        struct = src.tags(ns="IMAGE_STRUCTURE")
        assert struct["LAYOUT"] == "COG"
        assert struct.get("COMPRESSION", "NONE") == compress
        assert_array_equal(src.read(1), data)


def test_cog_finite_nodata_replaces_nan(tmp_path):
    data = np.array([[1.0, np.nan], [np.nan, 4.0]], dtype=np.float32)
    path = write_cog(tmp_path / "f.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     nodata=-9999.0, band_names=["x"], units="1")
    with rasterio.open(path) as src:
        assert src.nodata == -9999.0
        assert_array_equal(src.read(1), [[1.0, -9999.0], [-9999.0, 4.0]])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"array": np.zeros((4, 4), np.uint8), "nodata": float("nan")}, InputValueError, "nodata"),
        ({"array": np.zeros((4, 4), np.uint8), "nodata": 300}, InputValueError, "0..255"),
        ({"band_names": ["a", "b"]}, InputValueError, "2 band names"),
        ({"crs": None}, MissingCRSError, "crs is None"),
        ({"tags": {"units": "kg"}}, InputValueError, "contradicts"),
        ({"units": " "}, InputValueError, "units is empty"),
        ({"array": np.zeros((4, 4), np.complex64)}, InputValueError, "dtype"),
        ({"array": np.zeros((1, 0, 4), np.float32)}, InputValueError, "shape"),
        ({"compress": "ZSTDX"}, InputValueError, "compress"),
        ({"resampling": "max"}, InputValueError, "resampling"),
        ({"level": 0}, InputValueError, "level"),
        ({"compress": "LZW", "level": 3}, InputValueError, "level"),
        ({"num_threads": 0}, InputValueError, "num_threads"),
    ],
)
def test_cog_rejects_bad_input_and_writes_nothing(tmp_path, kwargs, error, match):
    args = {"array": np.zeros((4, 4), np.float32), "crs": UTM51, "band_names": ["x"],
            "units": "t C ha-1"}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        write_cog(tmp_path / "bad.tif", args.pop("array"), from_origin(X0, Y0, RES, RES),
                  args.pop("crs"), **args)
    assert _listing(tmp_path) == []


# =========================================================================== atomic writes


def test_atomic_path_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(tmp_path / "out.bin") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".out.bin.")
            tmp.write_bytes(b"partial")
            (tmp_path / (tmp.name + ".aux.xml")).write_text("sidecar")
            raise RuntimeError("boom")
    assert _listing(tmp_path) == []


def test_atomic_path_cleans_up_on_keyboard_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert _listing(tmp_path) == []


def test_atomic_path_requires_existing_folder(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        with atomic_path(tmp_path / "missing" / "x.tif"):
            pass


def test_atomic_path_requires_the_writer_to_create_the_file(tmp_path):
    with pytest.raises(OutputError, match="without creating"):
        with atomic_path(tmp_path / "x.txt"):
            pass
    assert _listing(tmp_path) == []


def test_failed_cog_rewrite_keeps_existing_file(tmp_path, monkeypatch):
    data = np.ones((8, 8), np.float32)
    path = write_cog(tmp_path / "a.tif", data, from_origin(X0, Y0, RES, RES), UTM51,
                     band_names=["x"], units="1")
    before = sha256_file(path)

    def disk_full(p):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs, "_fsync_file", disk_full)  # fails after the data is written
    with pytest.raises(OSError, match="No space left"):
        write_cog(path, data * 2, from_origin(X0, Y0, RES, RES), UTM51, band_names=["x"],
                  units="1")
    assert _listing(tmp_path) == ["a.tif"]
    assert sha256_file(path) == before


def test_failed_gdal_write_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "a.tif"
    path.write_bytes(b"old content")

    def broken_copy(src, dst, **options):  # the COG CreateCopy dies after a few bytes
        Path(dst).write_bytes(b"II*\x00partial")
        raise RuntimeError("GDAL failed mid-write")

    monkeypatch.setattr(rasterio.shutil, "copy", broken_copy)
    with pytest.raises(RuntimeError, match="mid-write"):
        write_cog(path, np.ones((8, 8), np.float32), from_origin(X0, Y0, RES, RES), UTM51,
                  band_names=["x"], units="1")
    assert _listing(tmp_path) == ["a.tif"]
    assert path.read_bytes() == b"old content"


def test_failed_csv_rewrite_keeps_existing_file(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("old\n", encoding="utf-8")

    def half_written(self, target, **kwargs):
        Path(target).write_text("zone,sto", encoding="utf-8")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_csv(pd.DataFrame({"zone": [1]}), path)
    assert _listing(tmp_path) == ["t.csv"]
    assert path.read_text(encoding="utf-8") == "old\n"


def test_sha256_known_vector_and_chunking(tmp_path):
    p = tmp_path / "abc"
    p.write_bytes(b"abc")
    # FIPS 180-2, Appendix B.1
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    q = tmp_path / "long"
    q.write_bytes(bytes(range(256)) * 5)
    assert sha256_file(q, chunk=7) == sha256_file(q, chunk=1 << 20)
    with pytest.raises(InputFileError, match="not found"):
        sha256_file(tmp_path / "nope")


# =========================================================================== VRT


def _write_tile(folder: Path, name: str, truth: np.ndarray, rows: slice, cols: slice,
                crs=UTM51, x0=X0, y0=Y0, res=RES, units="t C ha-1") -> Path:
    tile = truth[:, rows, cols]
    transform = from_origin(x0 + cols.start * res, y0 - rows.start * res, res, res)
    return write_cog(folder / name, tile, transform, crs, band_names=["total", "soil"],
                     units=units, tags={"sign_convention": "sink-positive", "tile": name})


@pytest.fixture()
def vrt_case(tmp_path):
    out = tmp_path / "run"
    (out / "tiles").mkdir(parents=True)
    truth = _float_stack((2, 40, 50), seed=11)
    windows = {
        "T000_000.tif": (slice(0, 15), slice(0, 20)),
        "T000_001.tif": (slice(0, 12), slice(25, 50)),  # gap in columns 20-24
        "T001_000.tif": (slice(20, 40), slice(0, 30)),  # gap in rows 15-17
        "T001_001.tif": (slice(18, 35), slice(32, 48)),  # ends before the last row/column
    }
    tiles = [_write_tile(out / "tiles", n, truth, r, c) for n, (r, c) in windows.items()]
    expected = np.full_like(truth, np.nan)
    for rows, cols in windows.values():
        expected[:, rows, cols] = truth[:, rows, cols]
    return out, tiles, expected


def _read_all(path: Path):
    with rasterio.open(path) as src:
        return src.read(), src.profile, src.descriptions, src.units, src.tags()


def test_vrt_mosaic_equals_tiles_pixel_for_pixel(vrt_case):
    out, tiles, expected = vrt_case
    vrt = build_vrt(out / "stock.vrt", tiles)
    data, profile, descriptions, units, tags = _read_all(vrt)
    assert profile["driver"] == "VRT"
    assert (profile["count"], profile["height"], profile["width"]) == (2, 40, 50)
    assert profile["transform"] == from_origin(X0, Y0, RES, RES)
    assert profile["crs"] == rasterio.crs.CRS.from_string(UTM51)
    assert math.isnan(profile["nodata"])
    assert_array_equal(data, expected)  # gaps read as NaN
    assert np.isnan(data[:, 15:18, :]).all() and np.isnan(data[:, :12, 20:25]).all()
    assert descriptions == ("total", "soil") and units == ("t C ha-1", "t C ha-1")
    assert tags["sign_convention"] == "sink-positive"
    assert "tile" not in tags  # differs between tiles, so it does not describe the mosaic


def test_vrt_windows_match_each_tile(vrt_case):
    out, tiles, _ = vrt_case
    vrt = build_vrt(out / "stock.vrt", tiles)
    with rasterio.open(vrt) as mosaic:
        for tile in tiles:
            with rasterio.open(tile) as src:
                win = mosaic.window(*src.bounds)
                assert_array_equal(mosaic.read(window=win), src.read())


def test_vrt_uses_relative_paths_and_survives_a_move(vrt_case, tmp_path):
    out, tiles, expected = vrt_case
    build_vrt(out / "stock.vrt", tiles)
    root = ET.parse(out / "stock.vrt").getroot()
    names = root.findall(".//SourceFilename")
    assert len(names) == 2 * len(tiles)
    assert all(n.get("relativeToVRT") == "1" and n.text.startswith("tiles/") for n in names)
    moved = shutil.move(str(out), str(tmp_path / "moved"))
    data, *_ = _read_all(Path(moved) / "stock.vrt")
    assert_array_equal(data, expected)
    assert _listing(Path(moved)) == ["stock.vrt", "tiles"]


def test_vrt_overlap_nodata_does_not_paint_over_neighbour(tmp_path):
    truth = _float_stack((2, 10, 10), seed=2, nan_fraction=0.0)
    a = _write_tile(tmp_path, "a.tif", truth, slice(0, 10), slice(0, 6))
    holey = truth.copy()
    holey[:, :, 4:6] = np.nan  # b's overlap with a is nodata
    b = _write_tile(tmp_path, "b.tif", holey, slice(0, 10), slice(4, 10))
    data, *_ = _read_all(build_vrt(tmp_path / "m.vrt", [a, b]))
    assert_array_equal(data, truth)


def test_vrt_geographic_tiles_keep_lon_lat_order(tmp_path):
    truth = _float_stack((2, 20, 30), seed=4)
    res = 0.01
    kw = {"crs": "EPSG:4326", "x0": 121.0, "y0": 44.0, "res": res}
    a = _write_tile(tmp_path, "a.tif", truth, slice(0, 10), slice(0, 30), **kw)
    b = _write_tile(tmp_path, "b.tif", truth, slice(10, 20), slice(5, 25), **kw)
    with rasterio.open(build_vrt(tmp_path / "m.vrt", [a, b])) as src:
        assert_allclose(tuple(src.bounds), (121.0, 44.0 - 20 * res, 121.0 + 30 * res, 44.0),
                        atol=1e-12)
        assert src.crs == rasterio.crs.CRS.from_epsg(4326)


def test_vrt_rejects_tiles_off_the_grid(tmp_path):
    truth = _float_stack((2, 10, 10), seed=1)
    a = _write_tile(tmp_path, "a.tif", truth, slice(0, 5), slice(0, 5))
    shifted = _write_tile(tmp_path, "b.tif", truth, slice(0, 5), slice(5, 10), x0=X0 + RES / 2)
    with pytest.raises(GridMismatchError, match="whole pixels"):
        build_vrt(tmp_path / "m.vrt", [a, shifted])
    other_crs = _write_tile(tmp_path, "c.tif", truth, slice(0, 5), slice(5, 10), crs="EPSG:32650")
    with pytest.raises(GridMismatchError, match="CRS"):
        build_vrt(tmp_path / "m.vrt", [a, other_crs])
    other_res = _write_tile(tmp_path, "d.tif", truth, slice(0, 5), slice(5, 10), res=60.0)
    with pytest.raises(GridMismatchError, match="pixel size"):
        build_vrt(tmp_path / "m.vrt", [a, other_res])
    other_units = _write_tile(tmp_path, "e.tif", truth, slice(0, 5), slice(5, 10),
                              units="g C m-2")
    with pytest.raises(GridMismatchError, match="units"):
        build_vrt(tmp_path / "m.vrt", [a, other_units])
    with pytest.raises(InputFileError, match="no tiles"):
        build_vrt(tmp_path / "m.vrt", [])
    with pytest.raises(InputFileError, match="cannot open tile"):
        build_vrt(tmp_path / "m.vrt", [tmp_path / "missing.tif"])
    assert not (tmp_path / "m.vrt").exists()


# =========================================================================== CSV / JSON


def test_csv_round_trip_with_units_sidecar(tmp_path):
    df = pd.DataFrame(
        {
            "zone_id": np.array([1, 2, 3], dtype=np.int64),
            "name_zh": ["科尔沁区", "奈曼旗", "库伦旗"],
            "stock_tC": [0.1 + 0.2, 1.234567890123456e-12, 123456789.123456789],
            "change_tC": [-5.5, np.nan, 0.0],
        }
    )
    path = write_csv(df, tmp_path / "zone_totals.csv",
                     header_lines=["stock_tC: t C per zone", "change_tC: sink-positive"])
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM for Excel
    assert not raw[3:].startswith(b"#")  # no comment lines inside the CSV
    back = pd.read_csv(path, encoding="utf-8")
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    sidecar = tmp_path / "zone_totals.units.txt"
    assert sidecar.read_text(encoding="utf-8") == (
        "stock_tC: t C per zone\nchange_tC: sink-positive\n"
    )
    assert _listing(tmp_path) == ["zone_totals.csv", "zone_totals.units.txt"]


def test_csv_keeps_a_named_index(tmp_path):
    df = pd.DataFrame({"stock_tC": [1.5, 2.5]}, index=pd.Index([10, 20], name="zone_id"))
    back = pd.read_csv(write_csv(df, tmp_path / "t.csv"), index_col="zone_id")
    pd.testing.assert_frame_equal(back, df)
    assert _listing(tmp_path) == ["t.csv"]  # no sidecar without header_lines


def test_json_converts_numpy_paths_dates_and_nan(tmp_path):
    obj = {
        "grid": "utm51_30m",
        "tiles": np.array([1, 2], dtype=np.int32),
        "total_tC": np.float32(1.5),
        "nan_value": np.float64("nan"),
        "inf_value": float("inf"),
        "ok": np.bool_(True),
        "out_dir": Path("/data/run 1"),
        "started": pd.Timestamp("2024-05-01T08:30:00").to_pydatetime(),
        "counts": {np.int64(7): 3},
        "地区": "通辽市",
    }
    path = write_json(obj, tmp_path / "manifest.json")
    text = path.read_text(encoding="utf-8")
    assert "通辽市" in text and "\\u" not in text  # ensure_ascii=False
    assert text.startswith('{\n  "grid"')  # indent 2
    back = json.loads(text)
    assert back == {
        "grid": "utm51_30m",
        "tiles": [1, 2],
        "total_tC": 1.5,
        "nan_value": None,
        "inf_value": None,
        "ok": True,
        "out_dir": "/data/run 1",
        "started": "2024-05-01T08:30:00",
        "counts": {"7": 3},
        "地区": "通辽市",
    }


def test_json_rejects_unknown_types_and_writes_nothing(tmp_path):
    with pytest.raises(InputValueError, match=r"\$\.runner\.pool.*object"):
        write_json({"runner": {"pool": object()}}, tmp_path / "m.json")
    assert _listing(tmp_path) == []


# =========================================================================== GeoJSON / GeoPackage


def _zones_utm() -> gpd.GeoDataFrame:
    geoms = [box(X0, Y0 - 20_000, X0 + 15_000, Y0), box(X0 + 15_000, Y0 - 20_000, X0 + 40_000, Y0)]
    return gpd.GeoDataFrame(
        {"zone_id": [1, 2], "name": ["生态保护红线", "永久基本农田"], "stock_tC": [1234.5, -6.25]},
        geometry=geoms,
        crs=UTM51,
    )


def test_geojson_is_rfc7946_lon_lat(tmp_path):
    zones = _zones_utm()
    path = write_geojson(zones, tmp_path / "zones.geojson")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and doc["name"] == "zones"
    assert "crs" not in doc  # RFC 7946 §4: WGS 84 lon/lat implied
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    to_lonlat = Transformer.from_crs(UTM51, "EPSG:4326", always_xy=True)
    x_utm, y_utm = np.asarray(zones.geometry.iloc[0].exterior.coords).T
    lon, lat = to_lonlat.transform(x_utm, y_utm)
    got = np.asarray(ring, dtype=float)
    assert 119 < got[:, 0].min() and got[:, 0].max() < 126  # lon first
    assert 42 < got[:, 1].min() and got[:, 1].max() < 46
    # Same vertices (orientation may be normalised to RFC 7946's right-hand rule).
    assert {(round(a, 7), round(b, 7)) for a, b in got} == {
        (round(a, 7), round(b, 7)) for a, b in zip(lon, lat)
    }
    assert LinearRing(ring).is_ccw  # RFC 7946 §3.1.6 right-hand rule
    for a, b in ring:
        assert len(repr(a).split(".")[-1]) <= 7 and len(repr(b).split(".")[-1]) <= 7
    props = doc["features"][0]["properties"]
    assert props == {"zone_id": 1, "name": "生态保护红线", "stock_tC": 1234.5}
    back = pyogrio.read_dataframe(path)
    assert ProjCRS.from_user_input(back.crs).equals(ProjCRS.from_epsg(4326), ignore_axis_order=True)
    assert _listing(tmp_path) == ["zones.geojson"]


def test_geojson_requires_crs(tmp_path):
    with pytest.raises(MissingCRSError, match="set_crs"):
        write_geojson(_zones_utm().set_crs(None, allow_override=True), tmp_path / "z.geojson")
    assert _listing(tmp_path) == []


def test_geojson_real_tongliao_districts_round_trip(shared_data, tmp_path):
    src = shared_data / "tongliao-admin" / "tongliao_districts.geojson"
    districts = gpd.read_file(src)
    aea = "+proj=aea +lat_1=25 +lat_2=47 +lon_0=105 +ellps=WGS84 +units=m"
    path = write_geojson(districts.to_crs(aea), tmp_path / "districts.geojson")
    back = gpd.read_file(path)
    assert list(back["adcode"]) == list(districts["adcode"])
    # Albers and back through GDAL/PROJ, rounded to 1e-7 deg: within 2e-7 deg of the source.
    for g_src, g_back in zip(districts.geometry, back.geometry):
        # normalize(): RFC 7946 re-orients rings (exterior counter-clockwise).
        assert g_src.normalize().equals_exact(g_back.normalize(), 2e-7)
    area_km2 = back.to_crs(aea).area / 1e6
    assert_allclose(area_km2, districts["area_km2"], rtol=1e-4)


def test_gpkg_layers_and_qgis_layer_styles(tmp_path):
    zones = _zones_utm()
    regions = gpd.GeoDataFrame({"name": ["通辽市"]}, geometry=[zones.union_all()], crs=UTM51)
    qml_zones = styles.vector_qml_graduated("stock_tC", [-10, 0, 1000, 2000],
                                            label_units="t C", diverging=True)
    qml_regions = styles.vector_qml_outline("#333333", label_field="name")
    path = write_gpkg_layers(tmp_path / "summary.gpkg", {"zones": zones, "regions": regions},
                             styles={"zones": qml_zones, "regions": qml_regions})
    assert _listing(tmp_path) == ["summary.gpkg"]

    layer_names = {name for name, _ in pyogrio.list_layers(path)}
    assert layer_names == {"zones", "regions", "layer_styles"}
    back = pyogrio.read_dataframe(path, layer="zones")
    assert back.crs == zones.crs
    assert list(back["name"]) == list(zones["name"])
    assert list(back["stock_tC"]) == list(zones["stock_tC"])
    assert all(a.equals(b) for a, b in zip(back.geometry, zones.geometry))

    con = sqlite3.connect(path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        cols = [r[1] for r in con.execute('PRAGMA table_info("layer_styles")')]
        assert cols == ["id", "f_table_catalog", "f_table_schema", "f_table_name",
                        "f_geometry_column", "styleName", "styleQML", "styleSLD", "useAsDefault",
                        "description", "owner", "ui", "update_time"]
        geom_cols = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        rows = con.execute("SELECT f_table_catalog, f_table_schema, f_table_name, "
                           "f_geometry_column, styleQML, useAsDefault FROM layer_styles").fetchall()
        assert con.execute("SELECT data_type FROM gpkg_contents WHERE table_name = "
                           "'layer_styles'").fetchone() == ("attributes",)
    finally:
        con.close()
    by_layer = {r[2]: r for r in rows}
    assert set(by_layer) == {"zones", "regions"}
    for layer, qml in (("zones", qml_zones), ("regions", qml_regions)):
        catalog, schema, _, geom_col, stored, default = by_layer[layer]
        assert (catalog, schema, default) == ("", "", 1)
        assert geom_col == geom_cols[layer]
        assert stored == qml
    # The attribute filter QGIS's OGR provider uses in loadStyle(), run through GDAL.
    qgis_filter = (
        "f_table_schema='' AND f_table_name='zones' "
        f"AND f_geometry_column='{geom_cols['zones']}'"
    )
    hit = pyogrio.read_dataframe(path, layer="layer_styles", where=qgis_filter)
    assert len(hit) == 1 and hit["styleQML"].iloc[0] == qml_zones


def test_gpkg_rewrite_replaces_whole_file(tmp_path):
    zones = _zones_utm()
    path = write_gpkg_layers(tmp_path / "s.gpkg", {"a": zones, "b": zones},
                             styles={"a": styles.vector_qml_outline("#000000")})
    totals = pd.DataFrame({"zone_id": [1, 2], "stock_tC": [1234.5, -6.25]})
    write_gpkg_layers(path, {"c": zones, "totals": totals})
    assert dict(pyogrio.list_layers(path)) == {"c": "Polygon", "totals": None}
    pd.testing.assert_frame_equal(pyogrio.read_dataframe(path, layer="totals"), totals)


def test_gpkg_failure_leaves_nothing_and_keeps_old_file(tmp_path, monkeypatch):
    zones = _zones_utm()
    with pytest.raises(InputValueError, match="not among the layers"):
        write_gpkg_layers(tmp_path / "s.gpkg", {"zones": zones}, styles={"zonez": "<qgis/>"})
    with pytest.raises(InputValueError, match="reserved"):
        write_gpkg_layers(tmp_path / "s.gpkg", {"gpkg_x": zones})
    with pytest.raises(MissingCRSError):
        write_gpkg_layers(tmp_path / "s.gpkg", {"z": zones.set_crs(None, allow_override=True)})
    assert _listing(tmp_path) == []

    path = write_gpkg_layers(tmp_path / "s.gpkg", {"zones": zones})
    before = sha256_file(path)

    def crash(gpkg, style_map):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(outputs, "_write_layer_styles", crash)
    with pytest.raises(sqlite3.OperationalError):
        write_gpkg_layers(path, {"zones": zones, "more": zones}, styles={"zones": "<qgis/>"})
    assert _listing(tmp_path) == ["s.gpkg"]  # no temp, no -journal
    assert sha256_file(path) == before


# =========================================================================== QML styles


def _items(qml: str) -> list[ET.Element]:
    return ET.fromstring(qml).findall("./pipe/rasterrenderer/rastershader/colorrampshader/item")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_qml_sequential_structure():
    qml = styles.raster_qml_sequential(0, 80, label_units="t C ha-1")
    assert qml.startswith("<!DOCTYPE qgis")
    root = ET.fromstring(qml)
    assert root.tag == "qgis" and root.get("version").startswith("3.")
    renderer = root.find("./pipe/rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor" and renderer.get("band") == "1"
    limits = (float(renderer.get("classificationMin")), float(renderer.get("classificationMax")))
    assert limits == (0, 80)
    assert renderer.find("./minMaxOrigin/limits").text == "None"
    shader = renderer.find("./rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    assert (float(shader.get("minimumValue")), float(shader.get("maximumValue"))) == (0, 80)
    items = _items(qml)
    assert [float(i.get("value")) for i in items] == [0, 10, 20, 30, 40, 50, 60, 70, 80]
    assert items[0].get("color") == "#440154" and items[-1].get("color") == "#fde725"  # viridis
    assert all(i.get("label").endswith("t C ha-1") for i in items)
    assert shader.find("rampLegendSettings").get("suffix") == " t C ha-1"
    ylgn = _items(styles.raster_qml_sequential(0, 8, ramp="ylgn", label_units="t C ha-1"))
    assert ylgn[0].get("color") == "#ffffe5" and ylgn[-1].get("color") == "#004529"


def test_qml_diverging_is_symmetric_about_zero():
    qml = styles.raster_qml_diverging(37.5, label_units="g C m-2 yr-1")
    renderer = ET.fromstring(qml).find("./pipe/rasterrenderer")
    assert float(renderer.get("classificationMin")) == -37.5
    assert float(renderer.get("classificationMax")) == 37.5
    items = _items(qml)
    values = [float(i.get("value")) for i in items]
    assert len(values) % 2 == 1
    assert values == sorted(values)
    assert values == [-v for v in reversed(values)]  # exact mirror
    mid = len(values) // 2
    assert values[mid] == 0.0 and items[mid].get("color").lower() == "#ffffff"
    for item, v in zip(items, values):
        r, _, b = _rgb(item.get("color"))
        if v < 0:
            assert r > b, "negative (source) must be red"
        elif v > 0:
            assert b > r, "positive (sink) must be blue"
    assert "source" in items[0].get("label") and "sink" in items[-1].get("label")


def test_qml_classes_paletted():
    qml = styles.raster_qml_classes([(7, "#B8E186", "grassland 草地"), (1, "#1a9850", "forest")])
    renderer = ET.fromstring(qml).find("./pipe/rasterrenderer")
    assert renderer.get("type") == "paletted"
    entries = renderer.findall("./colorPalette/paletteEntry")
    assert [(e.get("value"), e.get("color"), e.get("label")) for e in entries] == [
        ("1", "#1a9850", "forest"), ("7", "#b8e186", "grassland 草地")]
    with pytest.raises(InputValueError, match="twice"):
        styles.raster_qml_classes([(1, "#000000", "a"), (1, "#ffffff", "b")])
    with pytest.raises(InputValueError, match="rrggbb"):
        styles.raster_qml_classes([(1, "red", "a")])


def _layer_props(layer: ET.Element) -> tuple[dict[str, str], dict[str, str]]:
    options = {o.get("name"): o.get("value") for o in layer.findall("./Option[@type='Map']/Option")}
    props = {p.get("k"): p.get("v") for p in layer.findall("./prop")}
    return options, props


def test_qml_graduated_polygons():
    breaks = [-20.0, -5.0, 0.0, 5.0, 20.0]
    qml = styles.vector_qml_graduated("change_tC", breaks, label_units="t C", diverging=True)
    root = ET.fromstring(qml)
    assert root.find("layerGeometryType").text == "2"
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "graduatedSymbol" and renderer.get("attr") == "change_tC"
    ranges = renderer.findall("./ranges/range")
    assert [(float(r.get("lower")), float(r.get("upper"))) for r in ranges] == list(
        zip(breaks, breaks[1:]))
    assert all(r.get("label").endswith("t C") for r in ranges)
    symbols = {s.get("name"): s for s in renderer.findall("./symbols/symbol")}
    assert set(symbols) == {r.get("symbol") for r in ranges}
    colours = []
    for r in ranges:
        layer = symbols[r.get("symbol")].find("layer")
        assert symbols[r.get("symbol")].get("type") == "fill"
        assert layer.get("class") == "SimpleFill"
        options, props = _layer_props(layer)
        assert options == props  # both encodings carry the same properties
        colours.append(tuple(int(c) for c in options["color"].split(",")[:3]))
    assert colours[0][0] > colours[0][2] and colours[-1][2] > colours[-1][0]  # red loss, blue gain
    assert renderer.find("classificationMethod").get("id") == "Custom"
    sequential = styles.vector_qml_graduated("stock_tC", [0, 1, 2], label_units="t C")
    assert len(ET.fromstring(sequential).findall("./renderer-v2/ranges/range")) == 2
    with pytest.raises(InputValueError, match="strictly increasing"):
        styles.vector_qml_graduated("x", [0, 0, 1], label_units="t C")


def test_qml_outline_with_labels():
    qml = styles.vector_qml_outline("#d7301f", width_mm=0.8, label_field="name_zh")
    root = ET.fromstring(qml)
    assert root.get("labelsEnabled") == "1"
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "singleSymbol"
    options, props = _layer_props(renderer.find("./symbols/symbol/layer"))
    assert options == props
    assert options["style"] == "no"
    assert options["outline_color"] == "215,48,31,255"
    assert float(options["outline_width"]) == 0.8 and options["outline_width_unit"] == "MM"
    labeling = root.find("labeling")
    assert labeling.get("type") == "simple"
    assert labeling.find("./settings/text-style").get("fieldName") == "name_zh"
    unlabelled = ET.fromstring(styles.vector_qml_outline("#000000"))
    assert unlabelled.get("labelsEnabled") == "0" and unlabelled.find("labeling") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: styles.raster_qml_sequential(5, 5, label_units="t C ha-1"),
        lambda: styles.raster_qml_sequential(0, float("nan"), label_units="t C ha-1"),
        lambda: styles.raster_qml_sequential(0, 1, ramp="jet", label_units="t C ha-1"),
        lambda: styles.raster_qml_sequential(0, 1, label_units=""),
        lambda: styles.raster_qml_diverging(0, label_units="g C m-2"),
        lambda: styles.vector_qml_outline("#12345", width_mm=0.5),
    ],
)
def test_qml_rejects_bad_input(call):
    with pytest.raises(InputValueError):
        call()


def test_write_qml_beside_raster(tmp_path):
    qml = styles.raster_qml_diverging(10, label_units="t C ha-1")
    written = styles.write_qml(tmp_path / "nep_2020.tif", qml)
    assert written == tmp_path / "nep_2020.qml"
    assert written.read_text(encoding="utf-8") == qml
    assert styles.write_qml(tmp_path / "x.qml", qml) == tmp_path / "x.qml"
    with pytest.raises(InputValueError, match="well-formed"):
        styles.write_qml(tmp_path / "bad.tif", "<qgis><pipe></qgis>")
    assert _listing(tmp_path) == ["nep_2020.qml", "x.qml"]
