"""The bad-input matrix (issue 5 §5): every kind of broken input, and what tanhui says about it.

Read :data:`CASES` as documentation: each row names a bad input, says how it is broken and
lists the words the one-line error must contain (the input named, what was found, the fix).
Every case starts from a small valid project (land cover 2015/2023 on a 40 x 40 Albers grid,
two regions; plus 12 monthly NDVI files and station climate, or a zone layer), breaks one
thing, and is checked through the command line, for both ``tanhui validate`` and ``tanhui run``:

- exit code 2 (bad input; 1 is reserved for runs in which tiles failed, and for an operating
  system refusal such as a full disk during a run);
- exactly one line on stderr, starting ``tanhui: error:``, nothing on stdout, no traceback;
- no output: the output folder is not created and nothing is written beside the inputs. For a
  representative case of every input kind (``preexisting=True``) a finished run is also put in
  the output folder first and must be byte-identical after a failed ``run --overwrite``. (All
  checks run before the output folder is touched; a check that moved later would already
  fail the "no output folder" assertion of its own case.)

Decisions documented here
-------------------------
- *Files GDAL cannot open* are described by their first bytes (text/CSV, HTML from a failed
  download, XML, JSON, ZIP, gzip); GeoTIFFs whose directory points past the end of the file are
  "truncated" (checked from the directory alone, before any pixel is read).
- *Shapefile without a .cpg and non-UTF-8 text* (GBK from older ArcGIS/MapGIS exports):
  GDAL silently reads such a file as Latin-1, which turns every Chinese field name and value
  into mojibake. tanhui reads the raw .dbf bytes: valid UTF-8 is read as UTF-8 (unambiguous);
  text that only decodes as GBK is refused with the decoded sample and the fix (a ``.cpg`` file
  containing ``GBK``), because a guessed encoding must not reach an official report silently.
  A GeoPackage is UTF-8 by specification; non-UTF-8 bytes in one are refused the same way.
- *NDVI fill values*: take the pixels whose scaled value lies outside the valid MOD13 range
  (-0.2 .. 1) and their most frequent raw value. It is an undeclared fill when it makes up at
  least half of those pixels and either covers >= 1 % of the valid pixels or is a usual fill
  (-3000, -9999, -10000, -32768, 32767) of an integer file found at least twice. Lossy MODIS
  (the Sinop JPEG 2000 series, with a few -3000s in its noise) passes. The fix is the new
  ``[flux] ndvi_nodata`` key (or ``rio edit-info --nodata``).
- *Climate units*: temperatures all within 180..340 with some above 60 "look like Kelvin";
  radiation that fits 30..1000 MJ after / 1e3 or / 1e6 looks like kJ or J; an annual maximum
  below 40 looks like a daily mean.
- *Output folder not writable*: tests run as root, for whom ``chmod 555`` changes nothing.
  The read-only case therefore uses a read-only bind mount when the test may mount (root in a
  container with CAP_SYS_ADMIN), ``chmod 555`` when not root, and is skipped otherwise; the
  cases "output folder is a file" and "output folder below a file" work for everybody.
  ``validate`` checks the output folder too (without creating it).
- *Disk full*: simulated always by a tile writer that raises ``OSError(ENOSPC)`` after two
  tiles, and for real with a 200 KiB tmpfs mounted on the output folder when mounting is
  allowed. Either way: exit 1, one line naming the folder and the full disk, no temporary or
  truncated file left, the finished tiles' records intact, and ``--resume`` after freeing space
  reuses them and yields tables byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from tanhui.cli.main import cli
from tests.test_cli_errors import ALBERS, RES, X0, Y0, _bad_table, make_project, write_lc

# --- a small valid project, three variants ---------------------------------------------------

T_C = [-13.5, -9.0, -0.5, 9.0, 16.5, 21.5, 24.0, 22.5, 16.0, 7.5, -2.5, -11.0]
P_MM = [2.0, 3.0, 8.0, 15.0, 35.0, 75.0, 120.0, 90.0, 40.0, 15.0, 5.0, 3.0]
SOL_MJ = [250.0, 330.0, 480.0, 570.0, 650.0, 640.0, 600.0, 560.0, 470.0, 370.0, 260.0, 220.0]
NDVI_MONTHLY = [0.10, 0.10, 0.12, 0.18, 0.30, 0.50, 0.62, 0.60, 0.42, 0.25, 0.14, 0.10]


def write_ndvi(
    path: Path,
    values: np.ndarray,
    dtype="float32",
    crs=ALBERS,
    nodata=None,
    scale=None,
    x0=X0,
    y0=Y0,
):
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=values.shape[1],
        height=values.shape[0],
        count=1,
        dtype=dtype,
        crs=crs,
        transform=from_origin(x0, y0, RES, RES),
        nodata=nodata,
    ) as dst:
        dst.write(values.astype(dtype), 1)
        if scale is not None:
            dst.scales = (scale,)


def ndvi_field(month: int, shape=(40, 40)) -> np.ndarray:
    rng = np.random.default_rng(month)
    return np.clip(NDVI_MONTHLY[month - 1] + rng.normal(0, 0.03, shape), 0.0, 0.95)


def write_ndvi_series(d: Path, **kw) -> None:
    (d / "ndvi").mkdir(exist_ok=True)
    for m in range(1, 13):
        write_ndvi(d / "ndvi" / f"ndvi_2023_{m:02d}.tif", ndvi_field(m), **kw)


FLUX_TOML = f"""
[flux]
year = 2023
ndvi = "ndvi/*.tif"
[flux.climate]
temperature_C = {T_C}
precipitation_mm = {P_MM}
radiation_MJ_m2 = {SOL_MJ}
"""


def write_zones(path: Path, ids=("Z1", "Z2"), geoms=None, driver="GPKG", crs=ALBERS, **kw):
    import geopandas as gpd
    from shapely.geometry import box

    if geoms is None:
        geoms = [
            box(X0 + 2 * RES, Y0 - 30 * RES, X0 + 12 * RES, Y0 - 22 * RES),
            box(X0 + 14 * RES, Y0 - 38 * RES, X0 + 30 * RES, Y0 - 25 * RES),
        ][: len(ids)]
    gdf = gpd.GeoDataFrame(
        {"zone_id": list(ids), "name": [f"zone {i}" for i in ids]}, geometry=list(geoms), crs=crs
    )
    gdf.to_file(path, driver=driver, **kw)


ZONES_TOML = """
[[zones]]
kind = "ecological_protection_red_line"
path = "zones.gpkg"
id_field = "zone_id"
name_field = "name"
"""


def base_project(d: Path, kind: str = "stock") -> Path:
    """A valid project in ``d``: land cover 2015/2023, two regions; plus flux or zones."""
    p = make_project(d)
    edit(d, "tile_shape = [16, 16]", "tile_shape = [12, 20]")  # 4 tiles cover the regions
    if kind == "flux":
        write_ndvi_series(d)
        p.write_text(p.read_text(encoding="utf-8") + FLUX_TOML, encoding="utf-8")
    elif kind == "zones":
        write_zones(d / "zones.gpkg")
        p.write_text(p.read_text(encoding="utf-8") + ZONES_TOML, encoding="utf-8")
    return p


def edit(d: Path, old: str, new: str) -> None:
    p = d / "project.toml"
    text = p.read_text(encoding="utf-8")
    assert old in text, (old, text)
    p.write_text(text.replace(old, new, 1), encoding="utf-8")


# --- how inputs get broken -------------------------------------------------------------------


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def tiff_tag_offsets(path: Path) -> dict[int, tuple[int, int]]:
    """(offset, byte count) of the data of every tag of a little-endian classic TIFF's first IFD."""
    import struct

    raw = path.read_bytes()
    assert raw[:4] == b"II*\x00"
    ifd = struct.unpack("<I", raw[4:8])[0]
    out = {}
    for k in range(struct.unpack("<H", raw[ifd : ifd + 2])[0]):
        tag, typ, count, value = struct.unpack("<HHII", raw[ifd + 2 + 12 * k : ifd + 14 + 12 * k])
        nbytes = count * {1: 1, 2: 1, 3: 2, 4: 4, 12: 8, 16: 8}.get(typ, 1)
        out[tag] = (value, nbytes) if nbytes > 4 else (ifd + 2 + 12 * k + 8, nbytes)
        if tag in (273, 324) and count == 1:  # a single strip/tile: the value is its offset
            out[tag] = (value, 4)
    return out


def write_compressed_lc(path: Path) -> None:
    codes = np.random.default_rng(3).choice([12, 21, 31, 61], size=(40, 40)).astype("uint8")
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=1,
        dtype="uint8",
        crs=ALBERS,
        transform=from_origin(X0, Y0, RES, RES),
        nodata=0,
        compress="deflate",
    ) as dst:
        dst.write(codes, 1)


def corrupt_pixels(d: Path) -> None:
    """A deflate-compressed lc2023.tif whose compressed strip is overwritten with noise."""
    path = d / "lc2023.tif"
    write_compressed_lc(path)
    start = tiff_tag_offsets(path)[273][0]  # StripOffsets: the single strip starts here
    raw = bytearray(path.read_bytes())
    raw[start + 2 : start + 66] = bytes(
        np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8)
    )
    path.write_bytes(bytes(raw))


def corrupt_ndvi_pixels(d: Path) -> None:
    """ndvi_2023_06.tif deflate-compressed, then its compressed strip overwritten with noise."""
    path = d / "ndvi" / "ndvi_2023_06.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=1,
        dtype="float32",
        crs=ALBERS,
        transform=from_origin(X0, Y0, RES, RES),
        compress="deflate",
    ) as dst:
        dst.write(ndvi_field(6).astype("float32"), 1)
    start = tiff_tag_offsets(path)[273][0]
    raw = bytearray(path.read_bytes())
    raw[start + 2 : start + 66] = bytes(
        np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8)
    )
    path.write_bytes(bytes(raw))


def climate_raster_truncated(d: Path) -> None:
    data = np.broadcast_to(np.asarray(P_MM, np.float32)[:, None, None], (12, 40, 40)).copy()
    with rasterio.open(
        d / "p.tif",
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=12,
        dtype="float32",
        crs=ALBERS,
        transform=from_origin(X0, Y0, RES, RES),
    ) as dst:
        dst.write(data)
    truncate(d / "p.tif", 0.6)
    set_line(d, "precipitation_mm", '"p.tif"')


def corrupt_georeferencing(d: Path) -> None:
    """lc2023.tif whose GeoTIFF ASCII parameters (CRS names) hold invalid bytes."""
    path = d / "lc2023.tif"
    write_compressed_lc(path)
    start, n = tiff_tag_offsets(path)[34737]  # GeoAsciiParamsTag
    raw = bytearray(path.read_bytes())
    raw[start : start + n - 1] = b"\x82" * (n - 1)
    path.write_bytes(bytes(raw))


def write_png(path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.full((40, 40), 12, np.uint8)).save(path, format="PNG")


def reproject_lc(d: Path) -> None:
    # the same pixels declared in UTM zone 50N: a different CRS from the 2015 epoch
    write_lc(
        d / "lc2023.tif", np.full((40, 40), 12), crs="EPSG:32650", x0=500_000.0, y0=4_800_000.0
    )


def move_regions_away(d: Path) -> None:
    import geopandas as gpd

    g = gpd.read_file(d / "regions.gpkg")
    g["geometry"] = g.geometry.translate(2_000_000.0, 0.0)
    g.to_file(d / "regions.gpkg", driver="GPKG")


def lc_outside_grid(d: Path) -> None:
    edit(d, 'grid = "landcover"', 'grid = "china_albers_250m"')
    codes = np.full((40, 40), 12)
    write_lc(d / "lc2015.tif", codes, x0=-1_800_000.0, y0=4_900_000.0)
    write_lc(d / "lc2023.tif", codes, x0=-1_800_000.0, y0=4_900_000.0)


def ndvi_int16_unscaled(d: Path) -> None:
    for m in range(1, 13):
        write_ndvi(
            d / "ndvi" / f"ndvi_2023_{m:02d}.tif", np.round(ndvi_field(m) * 10000), dtype="int16"
        )


def ndvi_float_x10000(d: Path) -> None:
    for m in range(1, 13):
        write_ndvi(d / "ndvi" / f"ndvi_2023_{m:02d}.tif", ndvi_field(m) * 10000)


def ndvi_undeclared_fill(d: Path) -> None:
    """MODIS-style int16 NDVI x 10000 with a correct scale, but its -3000 fill not declared."""
    for m in range(1, 13):
        v = np.round(ndvi_field(m) * 10000)
        if m in (1, 2, 12):  # winter composites: snow and cloud -> fill over a third of the area
            v[:14, :] = -3000
        write_ndvi(d / "ndvi" / f"ndvi_2023_{m:02d}.tif", v, dtype="int16", scale=0.0001)


def ndvi_duplicate(d: Path) -> None:
    shutil.copy(d / "ndvi" / "ndvi_2023_03.tif", d / "ndvi" / "ndvi_2023_03_copy.tif")


def ndvi_outside(d: Path) -> None:
    for m in range(1, 13):
        write_ndvi(d / "ndvi" / f"ndvi_2023_{m:02d}.tif", ndvi_field(m), x0=X0 + 3_000_000.0)


def climate(d: Path, key: str, values) -> None:
    set_line(d, key, str(list(values)))


def climate_raster_kelvin(d: Path) -> None:
    data = np.broadcast_to(np.asarray(T_C, np.float32)[:, None, None] + 273.15, (12, 40, 40))
    with rasterio.open(d / "t2m.tif", "w", driver="GTiff", width=40, height=40, count=12,
                       dtype="float32", crs=ALBERS, transform=from_origin(X0, Y0, RES, RES)) as dst:
        dst.write(data.copy())
    set_line(d, "temperature_C", '"t2m.tif"')


def climate_raster_11_bands(d: Path) -> None:
    data = np.broadcast_to(np.asarray(T_C[:11], np.float32)[:, None, None], (11, 40, 40)).copy()
    with rasterio.open(
        d / "t.tif",
        "w",
        driver="GTiff",
        width=40,
        height=40,
        count=11,
        dtype="float32",
        crs=ALBERS,
        transform=from_origin(X0, Y0, RES, RES),
    ) as dst:
        dst.write(data)
    set_line(d, "temperature_C", '"t.tif"')


def set_line(d: Path, key: str, value: str) -> None:
    """Replace the value of the line ``key = ...`` in project.toml."""
    p = d / "project.toml"
    lines = [
        f"{key} = {value}" if ln.startswith(f"{key} = ") else ln
        for ln in p.read_text(encoding="utf-8").splitlines()
    ]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")


def zones_empty(d: Path) -> None:
    import geopandas as gpd

    gpd.GeoDataFrame({"zone_id": [], "name": []}, geometry=[], crs=ALBERS).to_file(
        d / "zones.gpkg", driver="GPKG"
    )


def zones_empty_geometries(d: Path) -> None:
    from shapely.geometry import Polygon

    write_zones(d / "zones.gpkg", geoms=[Polygon(), Polygon()])


def zones_degenerate(d: Path) -> None:
    from shapely.geometry import Polygon

    # invalid, zero-area rings (all corners on one line): nothing polygonal survives repair
    line = [
        (X0 + 2 * RES, Y0 - 20 * RES),
        (X0 + 10 * RES, Y0 - 20 * RES),
        (X0 + 20 * RES, Y0 - 20 * RES),
    ]
    write_zones(d / "zones.gpkg", geoms=[Polygon(line), Polygon(line[::-1])])


def zones_gbk_shapefile(d: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    g = gpd.GeoDataFrame(
        {"编号": ["Z1", "Z2"], "名称": ["生态保护红线一", "生态保护红线二"]},
        geometry=[
            box(X0 + 2 * RES, Y0 - 30 * RES, X0 + 12 * RES, Y0 - 22 * RES),
            box(X0 + 14 * RES, Y0 - 38 * RES, X0 + 30 * RES, Y0 - 25 * RES),
        ],
        crs=ALBERS,
    )
    g.to_file(d / "zones.shp", encoding="GBK")
    (d / "zones.cpg").unlink()  # as older ArcGIS / MapGIS exports: no declared encoding
    edit(
        d,
        'path = "zones.gpkg"\nid_field = "zone_id"\nname_field = "name"',
        'path = "zones.shp"\nid_field = "编号"\nname_field = "名称"',
    )


def zones_gbk_gpkg(d: Path) -> None:
    import sqlite3

    con = sqlite3.connect(d / "zones.gpkg")
    for (name,) in con.execute("select name from sqlite_master where type = 'trigger'").fetchall():
        con.execute(f'drop trigger "{name}"')  # GDAL's triggers need SpatiaLite functions
    con.execute(
        "update zones set name = CAST(? AS TEXT) where zone_id = 'Z1'",
        ("生态保护红线".encode("gbk"),),
    )
    con.commit()
    con.close()


def zones_points(d: Path) -> None:
    from shapely.geometry import Point

    write_zones(
        d / "zones.gpkg",
        geoms=[Point(X0 + 5 * RES, Y0 - 5 * RES), Point(X0 + 9 * RES, Y0 - 9 * RES)],
    )


def zones_projected_geojson(d: Path) -> None:
    # Albers metres written into a GeoJSON, which by definition holds WGS 84 lon/lat
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: "'crs' was not provided"
        write_zones(d / "zones.geojson", driver="GeoJSON", crs=None)
    edit(d, 'path = "zones.gpkg"', 'path = "zones.geojson"')


def zones_shapefile_without_prj(d: Path) -> None:
    write_zones(d / "zones.shp", driver="ESRI Shapefile")
    (d / "zones.prj").unlink()
    edit(d, 'path = "zones.gpkg"', 'path = "zones.shp"')


def output_is_file(d: Path) -> None:
    (d / "out").write_text("not a folder", encoding="utf-8")


def output_below_file(d: Path) -> None:
    edit(d, 'output_dir = "out"', 'output_dir = "lc2015.tif/out"')


# --- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    broken: str  # how the input is broken
    words: tuple[str, ...]  # the one-line message must contain each of these
    breaker: Callable[[Path], None]
    base: str = "stock"  # stock | flux | zones
    preexisting: bool = False  # also check that a finished run survives a failed --overwrite
    out: str = "out"  # output folder that must not appear


CASES: list[Case] = [
    # --- land-cover rasters
    Case(
        "missing file",
        "lc2023.tif deleted",
        ("lc2023.tif", "does not exist", "Check the path"),
        lambda d: (d / "lc2023.tif").unlink(),
    ),
    Case(
        "empty file",
        "lc2023.tif has 0 bytes",
        ("lc2023.tif", "empty (0 bytes)", "Re-export"),
        lambda d: (d / "lc2023.tif").write_bytes(b""),
    ),
    Case(
        "truncated GeoTIFF",
        "the second half of lc2023.tif cut off",
        ("lc2023.tif", "truncated", "download it again"),
        lambda d: truncate(d / "lc2023.tif"),
        preexisting=True,
    ),
    Case(
        "corrupt pixel bytes",
        "64 random bytes written over the compressed pixels of lc2023.tif",
        ("lc2023.tif", "corrupt", "re-export"),
        corrupt_pixels,
    ),
    Case(
        "corrupt georeferencing",
        "invalid bytes in the GeoTIFF CRS tags of lc2023.tif",
        ("lc2023.tif", "corrupt", "Re-export"),
        corrupt_georeferencing,
    ),
    Case(
        "corrupt header",
        "the first 16 bytes of lc2023.tif overwritten",
        ("lc2023.tif", "cannot be read as a raster", "corrupt", "Re-export"),
        lambda d: (d / "lc2023.tif").write_bytes(
            b"\x00" * 16 + (d / "lc2023.tif").read_bytes()[16:]
        ),
    ),
    Case(
        "CSV named .tif",
        "a CSV table saved as lc2023.tif",
        ("lc2023.tif", "text file", "GeoTIFF"),
        lambda d: (d / "lc2023.tif").write_text(
            "code,name\n12,dry land\n21,forest\n", encoding="utf-8"
        ),
    ),
    Case(
        "HTML page named .tif",
        "a failed download: an HTML error page saved as lc2023.tif",
        ("lc2023.tif", "HTML", "download"),
        lambda d: (d / "lc2023.tif").write_text(
            "<!DOCTYPE html><html><body>404</body></html>", encoding="utf-8"
        ),
    ),
    Case(
        "PNG image",
        "land cover given as a PNG picture (no georeferencing)",
        ("lc2023.png", "PNG", "no coordinate reference system"),
        lambda d: (
            write_png(d / "lc2023.png"),
            edit(d, 'path = "lc2023.tif"', 'path = "lc2023.png"'),
        ),
    ),
    Case(
        "raster without CRS",
        "lc2023.tif written without a CRS",
        ("lc2023.tif", "no coordinate reference system", "rio edit-info"),
        lambda d: write_lc(d / "lc2023.tif", np.full((40, 40), 12), crs=None),
    ),
    Case(
        "CRS mismatch between epochs",
        "lc2023.tif in UTM 50N, lc2015.tif in Albers",
        ("lc2023.tif", "EPSG:32650", "same CRS", "gdalwarp"),
        reproject_lc,
        preexisting=True,
    ),
    Case(
        "land cover outside the grid",
        "both epochs in Xinjiang, grid china_albers_250m over Tongliao",
        ("lc2015.tif", "does not overlap", "china_albers_250m"),
        lc_outside_grid,
    ),
    Case(
        "regions do not overlap",
        "region polygons moved 2000 km east of the land cover",
        ("regions.gpkg", "does not overlap", "CRS"),
        move_regions_away,
        preexisting=True,
    ),
    Case(
        "float land cover",
        "lc2023.tif stored as float32",
        ("lc2023.tif", "float32", "integer"),
        lambda d: write_lc(d / "lc2023.tif", np.full((40, 40), 12.0), dtype="float32"),
    ),
    Case(
        "codes missing from legend",
        "lc2023.tif holds code 250, unknown to CNLUCC",
        ("lc2023.tif", "[250]", "cnlucc", "Add rows"),
        lambda d: write_lc(d / "lc2023.tif", np.full((40, 40), 250)),
        preexisting=True,
    ),
    # --- density table
    Case(
        "negative densities",
        "soil carbon of grassland set to -5",
        ("table.csv", "negative"),
        lambda d: edit(
            d,
            'density_table = "carbon_density_horqin"',
            f'density_table = "{_bad_table(d, negative=True)}"',
        ),
        preexisting=True,
    ),
    Case(
        "density table missing a pool",
        "the c_soil columns removed",
        ("table.csv", "soil"),
        lambda d: edit(
            d,
            'density_table = "carbon_density_horqin"',
            f'density_table = "{_bad_table(d, drop="c_soil")}"',
        ),
    ),
    Case(
        "density table not found",
        "density_table points to a missing CSV",
        ("nope.csv", "does not exist"),
        lambda d: edit(d, 'density_table = "carbon_density_horqin"', 'density_table = "nope.csv"'),
    ),
    # --- NDVI series
    Case(
        "NDVI unscaled int16",
        "int16 NDVI x 10000, no scale metadata, no ndvi_int_scale",
        ("ndvi_2023_01.tif", "int16", "ndvi_int_scale = 0.0001"),
        ndvi_int16_unscaled,
        base="flux",
    ),
    Case(
        "NDVI float x 10000",
        "float32 files holding NDVI x 10000",
        ("ndvi_2023_01.tif", "[-1, 1]", "scale"),
        ndvi_float_x10000,
        base="flux",
    ),
    Case(
        "NDVI undeclared fill",
        "MODIS int16 with scale 0.0001 but the -3000 fill not declared nodata",
        ("ndvi_2023_01.tif", "-3000", "fill", "ndvi_nodata = -3000"),
        ndvi_undeclared_fill,
        base="flux",
        preexisting=True,
    ),
    Case(
        "NDVI corrupt pixel bytes",
        "noise over the compressed pixels of the June file",
        ("NDVI file", "ndvi_2023_06.tif", "corrupt", "re-export"),
        corrupt_ndvi_pixels,
        base="flux",
    ),
    Case(
        "NDVI missing month",
        "the May composite deleted",
        ("month(s) [5]", "ndvi_2023_01.tif", "add the missing"),
        lambda d: (d / "ndvi" / "ndvi_2023_05.tif").unlink(),
        base="flux",
    ),
    Case(
        "NDVI duplicated dates",
        "a copy of the March file in the series",
        ("ndvi_2023_03.tif", "ndvi_2023_03_copy.tif", "same date 2023-03-01", "Remove"),
        ndvi_duplicate,
        base="flux",
    ),
    Case(
        "NDVI without CRS",
        "the July file written without a CRS",
        ("ndvi_2023_07.tif", "no coordinate reference system"),
        lambda d: write_ndvi(d / "ndvi" / "ndvi_2023_07.tif", ndvi_field(7), crs=None),
        base="flux",
    ),
    Case(
        "NDVI outside the land cover",
        "all NDVI files 3000 km east of the land cover",
        ("ndvi_2023_01.tif", "does not overlap", "CRS"),
        ndvi_outside,
        base="flux",
    ),
    Case(
        "NDVI no date in name",
        "an NDVI file named without a date",
        ("summer.tif", "no date", "dates"),
        lambda d: (d / "ndvi" / "ndvi_2023_07.tif").rename(d / "ndvi" / "summer.tif"),
        base="flux",
    ),
    # --- climate
    Case(
        "climate wrong length",
        "11 monthly temperatures",
        ("temperature_C", "11 monthly values", "expected 12"),
        lambda d: climate(d, "temperature_C", T_C[:11]),
        base="flux",
    ),
    Case(
        "radiation in kJ",
        "monthly radiation given in kJ m-2",
        ("radiation_MJ_m2", "kJ", "1000"),
        lambda d: climate(d, "radiation_MJ_m2", [v * 1000 for v in SOL_MJ]),
        base="flux",
    ),
    Case(
        "temperature in Kelvin",
        "monthly temperature given in K (259.7 .. 297.2)",
        ("temperature_C", "looks like Kelvin", "273.15"),
        lambda d: climate(d, "temperature_C", [round(v + 273.15, 2) for v in T_C]),
        base="flux",
        preexisting=True,
    ),
    Case(
        "temperature raster in Kelvin",
        "a 12-band ERA5-style 2 m temperature raster in K",
        ("t2m.tif", "temperature_C", "looks like Kelvin", "273.15"),
        climate_raster_kelvin,
        base="flux",
    ),
    Case(
        "radiation as a daily mean",
        "radiation given in MJ m-2 day-1 instead of monthly totals",
        ("radiation_MJ_m2", "daily mean", "number of days"),
        lambda d: climate(d, "radiation_MJ_m2", [round(v / 30, 2) for v in SOL_MJ]),
        base="flux",
    ),
    Case(
        "negative precipitation",
        "July precipitation -9999 (an unmasked fill value)",
        ("precipitation_mm", "-9999", ">= 0"),
        lambda d: climate(d, "precipitation_mm", P_MM[:6] + [-9999.0] + P_MM[7:]),
        base="flux",
    ),
    Case(
        "climate raster with 11 bands",
        "temperature raster with 11 bands instead of 12",
        ("t.tif", "11 band(s)", "12 monthly bands"),
        climate_raster_11_bands,
        base="flux",
    ),
    Case(
        "climate raster truncated",
        "a 12-band precipitation raster cut at 60 %",
        ("precipitation", "p.tif", "truncated"),
        climate_raster_truncated,
        base="flux",
    ),
    # --- zone layers
    Case(
        "zone layer empty",
        "zones.gpkg has no features",
        ("zones.gpkg", "no features"),
        zones_empty,
        base="zones",
    ),
    Case(
        "zone layer only empty geometries",
        "every zone geometry is empty",
        ("zones.gpkg", "empty", "Re-export"),
        zones_empty_geometries,
        base="zones",
    ),
    Case(
        "zone layer only degenerate geometries",
        "zero-area rings that no repair turns into polygons",
        ("zones.gpkg", "no polygon area", "geometries"),
        zones_degenerate,
        base="zones",
    ),
    Case(
        "duplicate zone ids",
        "both zones have id Z1",
        ("zones.gpkg", "duplicate ids", "Z1", "unique"),
        lambda d: write_zones(d / "zones.gpkg", ids=("Z1", "Z1")),
        base="zones",
    ),
    Case(
        "zone layer of points",
        "points instead of polygons",
        ("zones.gpkg", "Point", "polygon"),
        zones_points,
        base="zones",
    ),
    Case(
        "zone layer without CRS",
        "a Shapefile without its .prj",
        ("zones.shp", "no CRS", "Set CRS"),
        zones_shapefile_without_prj,
        base="zones",
    ),
    Case(
        "GeoJSON with projected coordinates",
        "Albers metres in a GeoJSON (always lon/lat)",
        ("zones.geojson", "not longitude/latitude", "RFC 7946"),
        zones_projected_geojson,
        base="zones",
    ),
    Case(
        "GBK Shapefile without .cpg",
        "GBK field names and values, no .cpg file",
        ("zones.shp", "GBK", "编号", ".cpg"),
        zones_gbk_shapefile,
        base="zones",
        preexisting=True,
    ),
    Case(
        "GBK text in a GeoPackage",
        "a zone name stored as GBK bytes in a GeoPackage",
        ("zones.gpkg", "not UTF-8", "GBK", "生态保护红线"),
        zones_gbk_gpkg,
        base="zones",
    ),
    Case(
        "zone id field missing",
        "id_field names a field the layer lacks",
        ("zones.gpkg", "zone_code", "fields are"),
        lambda d: edit(d, 'id_field = "zone_id"', 'id_field = "zone_code"'),
        base="zones",
    ),
    # --- project file
    Case(
        "unknown key",
        "output_dir misspelt",
        ("project.toml", "outptu_dir", "[project]", "did you mean 'outptu_dir' -> 'output_dir'"),
        lambda d: edit(d, "output_dir", "outptu_dir"),
    ),
    Case(
        "wrong type",
        'year = "2015" (a string)',
        ("project.toml", "year = '2015'", "str", "int", "without quotes: year = 2015"),
        lambda d: edit(d, "year = 2015", 'year = "2015"'),
        preexisting=True,
    ),
    Case(
        "malformed TOML",
        "an unclosed table header",
        ("project.toml", "not valid TOML", "line 1"),
        lambda d: (d / "project.toml").write_text("[project\nname = 1\n", encoding="utf-8"),
    ),
    Case(
        "missing required section",
        "no [landcover] section",
        ("project.toml", "no [landcover] section", "required"),
        lambda d: (d / "project.toml").write_text('[project]\nname = "x"\n', encoding="utf-8"),
    ),
    Case(
        "unknown zone kind",
        'kind = "red_line"',
        ("project.toml", "red_line", "ecological_protection_red_line"),
        lambda d: edit(d, 'kind = "ecological_protection_red_line"', 'kind = "red_line"'),
        base="zones",
    ),
    Case(
        "project file not UTF-8",
        "the project file saved in GBK",
        ("project.toml", "UTF-8"),
        lambda d: (d / "project.toml").write_bytes(
            (d / "project.toml")
            .read_text(encoding="utf-8")
            .replace('name = "small"', 'name = "通辽"')
            .encode("gbk")
        ),
    ),
    # --- output folder
    Case(
        "output folder is a file",
        "a file named out where the output folder should be",
        ("out", "not a folder", "output_dir"),
        output_is_file,
    ),
    Case(
        "output folder below a file",
        "output_dir = lc2015.tif/out",
        ("lc2015.tif", "not writable", "output_dir"),
        output_below_file,
        out="lc2015.tif/out",
    ),
]


# --- the checks ------------------------------------------------------------------------------


def invoke(args):
    return CliRunner().invoke(cli, args)


def one_error_line(res, words) -> str:
    """The command printed nothing on stdout and exactly one 'tanhui: error:' line on stderr."""
    assert "Traceback" not in res.output, res.output
    assert res.stdout.strip() == "", res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    line = lines[0]
    assert line.startswith("tanhui: error:"), line
    missing = [w for w in words if w not in line]
    assert not missing, f"{missing} not in: {line}"
    return line


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_refused(d: Path, words, out: str = "out") -> str:
    """validate and run both refuse with exit 2 and the same one line; nothing is written."""
    project = str(d / "project.toml")
    inputs_before = snapshot(d)
    lines = set()
    for cmd in (["validate"], ["run"]):
        res = invoke([*cmd, project])
        assert res.exit_code == 2, (cmd, res.output)
        lines.add(one_error_line(res, words))
        assert not (d / out).is_dir(), "a failed run left an output folder"
    assert len(lines) == 1, lines  # validate and run say the same
    assert snapshot(d) == inputs_before  # nothing written beside the inputs
    return lines.pop()


def assert_finished_run_survives(d: Path, finished: Path, words) -> None:
    """A finished run in the output folder is byte-identical after a failed --overwrite."""
    shutil.copytree(finished, d / "out")
    before = snapshot(d / "out")
    res = invoke(["run", "--overwrite", str(d / "project.toml")])
    assert res.exit_code == 2, res.output
    one_error_line(res, words)
    assert snapshot(d / "out") == before


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    """The three valid projects, written once; each case works on a copy."""
    return {
        kind: base_project(tmp_path_factory.mktemp(kind), kind).parent
        for kind in ("stock", "flux", "zones")
    }


@pytest.fixture(scope="module")
def finished_run(bases, tmp_path_factory) -> Path:
    """The output folder of one finished run of the valid stock project."""
    d = tmp_path_factory.mktemp("finished")
    shutil.copytree(bases["stock"], d, dirs_exist_ok=True)
    res = invoke(["-q", "run", str(d / "project.toml")])
    assert res.exit_code == 0, res.output
    return d / "out"


def test_the_matrix_is_large_and_distinct():
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
    assert {c.base for c in CASES} == {"stock", "flux", "zones"}


@pytest.mark.parametrize("kind", ["stock", "flux", "zones"])
def test_base_projects_are_valid(bases, kind):
    """Each case breaks exactly one thing of a project that is valid to begin with."""
    res = invoke(["validate", str(bases[kind] / "project.toml")])
    assert res.exit_code == 0, res.output
    assert "OK: the project is ready to run." in res.stdout
    assert "tanhui: error" not in res.output


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(tmp_path, case: Case, bases, finished_run):
    shutil.copytree(bases[case.base], tmp_path, dirs_exist_ok=True)
    case.breaker(tmp_path)
    assert_refused(tmp_path, case.words, case.out)
    if case.preexisting:
        assert_finished_run_survives(tmp_path, finished_run, case.words)


# --- the fixes named in the messages work ----------------------------------------------------


def test_declaring_the_ndvi_fill_fixes_it(tmp_path, bases):
    shutil.copytree(bases["flux"], tmp_path, dirs_exist_ok=True)
    ndvi_undeclared_fill(tmp_path)
    edit(tmp_path, "[flux]\n", "[flux]\nndvi_nodata = -3000\n")
    res = invoke(["validate", str(tmp_path / "project.toml")])
    assert res.exit_code == 0, res.output
    # the fill is masked when read: January's top 14 rows are NaN, the rest is the scaled NDVI
    from tanhui.context import build_context
    from tanhui.project import load_project

    ctx = build_context(load_project(tmp_path / "project.toml"))
    g = ctx.grid
    full = np.round(ndvi_field(1) * 10000) * 0.0001
    full[:14, :] = np.nan  # the declared fill
    for tile in ctx.tiles:
        t = g.tile_transform(tile)
        row, col = round((Y0 - t.f) / RES), round((t.c - X0) / RES)
        ny, nx = g.tile_shape
        jan = ctx.flux.series.read_months(g.crs, t, (ny, nx))[0]
        np.testing.assert_allclose(jan, full[row : row + ny, col : col + nx], rtol=1e-6, atol=1e-7)
    assert len(ctx.tiles) == 4


def test_cpg_file_fixes_a_gbk_shapefile(tmp_path, bases):
    shutil.copytree(bases["zones"], tmp_path, dirs_exist_ok=True)
    zones_gbk_shapefile(tmp_path)
    (tmp_path / "zones.cpg").write_text("GBK", encoding="ascii")
    from tanhui.context import build_context
    from tanhui.project import load_project

    ctx = build_context(load_project(tmp_path / "project.toml"))
    zones = next(lay for lay in ctx.layers if lay.kind == "ecological_protection_red_line")
    assert list(zones.gdf["编号"]) == ["Z1", "Z2"]
    assert list(zones.gdf["名称"]) == ["生态保护红线一", "生态保护红线二"]


def test_utf8_shapefile_without_cpg_is_read_as_utf8(tmp_path, bases):
    """GDAL would read it as Latin-1 ('ç¼\x96å\x8f·'); valid UTF-8 is unambiguous, so it is
    read as UTF-8 instead of refused."""
    import geopandas as gpd

    shutil.copytree(bases["zones"], tmp_path, dirs_exist_ok=True)
    zones_gbk_shapefile(tmp_path)  # writes GBK; rewrite the same layer as UTF-8 without .cpg
    g = gpd.read_file(tmp_path / "zones.shp", encoding="GBK")
    for f in tmp_path.glob("zones.*"):
        if f.suffix != ".gpkg":
            f.unlink()
    g.to_file(tmp_path / "zones.shp", encoding="UTF-8")
    (tmp_path / "zones.cpg").unlink()
    assert "ç" in "".join(gpd.read_file(tmp_path / "zones.shp").columns)  # GDAL alone: mojibake
    from tanhui.context import build_context
    from tanhui.project import load_project

    ctx = build_context(load_project(tmp_path / "project.toml"))
    zones = next(lay for lay in ctx.layers if lay.kind == "ecological_protection_red_line")
    assert list(zones.gdf["名称"]) == ["生态保护红线一", "生态保护红线二"]


# --- the output folder: read-only, disk full ------------------------------------------------


def _try_mount(*args) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def test_read_only_output_folder(tmp_path, bases):
    """As root chmod 555 changes nothing; a read-only bind mount does."""
    shutil.copytree(bases["stock"], tmp_path / "p", dirs_exist_ok=True)
    ro = tmp_path / "ro"
    ro.mkdir()
    edit(tmp_path / "p", 'output_dir = "out"', f'output_dir = "{ro / "out"}"')
    mounted = False
    if os.geteuid() != 0:
        ro.chmod(0o555)
        reason = "permission denied"
    elif _try_mount("--bind", "-o", "ro", str(ro), str(ro)):
        mounted, reason = True, "read-only file system"
    else:
        pytest.skip("running as root without permission to mount: cannot make a folder read-only")
    try:
        assert_refused(
            tmp_path / "p", [str(ro / "out"), "not writable", reason, "output_dir"], out="../ro/out"
        )
    finally:
        if mounted:
            _umount(ro)
        ro.chmod(0o755)


def _check_partial_outputs(out: Path) -> list[str]:
    """No temporary files; every raster present reads completely; every tile record's
    outputs exist. Returns the tiles with records."""
    assert not list(out.rglob("*.tmp")), list(out.rglob("*.tmp"))
    assert not (out / "run.json").exists()
    for tif in out.rglob("*.tif"):
        with rasterio.open(tif) as src:
            src.read()  # raises on a truncated file
    done = []
    for rec in sorted((out / "tiles" / "_records").glob("*.json")):
        import json

        doc = json.loads(rec.read_text(encoding="utf-8"))
        assert all((out / p).is_file() for p in doc["outputs"]), rec
        done.append(rec.stem)
    return done


def _resume_and_compare(d: Path, finished: Path, done: list[str]) -> None:
    import json

    res = invoke(["run", "--resume", "--json", str(d / "project.toml")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert sorted(summary["tiles_reused"]) == done
    for f in sorted((finished / "tables").glob("*.csv")):
        assert (d / "out" / "tables" / f.name).read_bytes() == f.read_bytes(), f.name


def test_disk_full_simulated(tmp_path, bases, finished_run, monkeypatch):
    """The tile writer raises OSError(ENOSPC) after two tiles: exit 1, one line naming the
    folder and the cause, finished tiles kept and reused by --resume."""
    import threading

    import tanhui.tile_job as tj

    shutil.copytree(bases["stock"], tmp_path, dirs_exist_ok=True)
    real, lock, calls = tj.write_cog, threading.Lock(), [0]
    n_per_tile = sum(1 for _ in (finished_run / "tiles").glob("*/T000_001.tif"))

    def full_after_two_tiles(path, *a, **kw):
        with lock:
            calls[0] += 1
            full = calls[0] > 2 * n_per_tile
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *a, **kw)

    monkeypatch.setattr(tj, "write_cog", full_after_two_tiles)
    res = invoke(["run", str(tmp_path / "project.toml")])
    assert res.exit_code == 1, res.output
    line = one_error_line(res, [str(tmp_path / "out"), "disk full while writing",
                                "free space (or choose another output_dir)",
                                "rerun with --resume"])
    assert ".tif;" in line and ".tmp" not in line, line  # names the raster being written
    monkeypatch.undo()
    done = _check_partial_outputs(tmp_path / "out")
    assert len(done) == 2
    _resume_and_compare(tmp_path, finished_run, done)


def test_disk_full_real_tmpfs(tmp_path, bases, finished_run):
    """A 200 KiB tmpfs as the output folder: the run stops with one line saying the disk is
    full, leaves no partial file, and --resume finishes after the disk is enlarged."""
    shutil.copytree(bases["stock"], tmp_path, dirs_exist_ok=True)
    out = tmp_path / "out"
    out.mkdir()
    if not _try_mount("-t", "tmpfs", "-o", "size=200k", "tmpfs", str(out)):
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        res = invoke(["run", str(tmp_path / "project.toml")])
        assert res.exit_code == 1, res.output
        one_error_line(res, [str(out), "disk full", "rerun with --resume"])
        done = _check_partial_outputs(out)
        assert len(done) < 4, done  # the disk filled before the last tile
        assert _try_mount("-o", "remount,size=20m", str(out))
        _resume_and_compare(tmp_path, finished_run, done)
    finally:
        _umount(out)


# --- what a user sees: a real process, real stderr -------------------------------------------


def test_real_process_prints_one_line(tmp_path, bases):
    """GDAL warnings and Python warnings do not reach the terminal next to the error line."""
    import tanhui

    shutil.copytree(bases["stock"], tmp_path, dirs_exist_ok=True)
    truncate(tmp_path / "lc2023.tif")
    env = dict(os.environ, PYTHONPATH=str(Path(tanhui.__file__).parents[1]))
    r = subprocess.run(
        [sys.executable, "-m", "tanhui.cli.main", "run", str(tmp_path / "project.toml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tanhui: error:") and "truncated" in lines[0], (
        r.stderr
    )
    res = invoke(["-v", "validate", str(tmp_path / "project.toml")])
    assert res.exit_code == 2 and "Traceback" in res.stderr  # -v shows the details
    assert res.stderr.strip().splitlines()[-1] == lines[0]


# --- the fill-value rule on real data --------------------------------------------------------


def test_fill_rule_on_real_lossy_modis(tmp_path, shared_data):
    """MOD13Q1 over Sinop, lossy JPEG 2000 recompressed: 0-564 pixels per date fall below the
    valid range, a few exactly at -3000 (README of the data set). That is noise, not a fill:
    the series is accepted. The same file with a block of -3000 is refused."""
    from tanhui.errors import InputValueError
    from tanhui.ndvi_series import open_series

    src = sorted((shared_data / "modis-mod13q1-ndvi-sinop" / "geotiff").glob("*.tif"))
    assert len(src) == 12
    paths = []
    for m, f in enumerate(src, start=1):  # one composite per month; pretend they are 2014's
        paths.append(tmp_path / f"ndvi_2014_{m:02d}.tif")
        shutil.copy(f, paths[-1])
    with rasterio.open(paths[2]) as s:
        raw = s.read(1)
    assert (raw < -2000).sum() > 100 and (raw == -3000).sum() <= 1  # the noise described above
    series = open_series(paths, (), 2014, "max", 0.0001)
    assert len(series.files) == 12
    with rasterio.open(paths[2], "r+") as s:
        raw[:20, :] = -3000  # 20 of 147 rows: 14 % of the pixels
        s.write(raw, 1)
    with pytest.raises(
        InputValueError, match=r"ndvi_2014_03\.tif: 14% .* exactly -3000 .* ndvi_nodata = -3000"
    ):
        open_series(paths, (), 2014, "max", 0.0001)
    # declared, it is masked and the series is accepted again
    assert len(open_series(paths, (), 2014, "max", 0.0001, nodata=-3000).files) == 12
