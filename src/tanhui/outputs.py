"""Output writers: Cloud-Optimized GeoTIFFs, VRT mosaics, CSV, JSON, GeoJSON, GeoPackage.

Every writer is atomic. It writes to a hidden temporary name in the destination
folder (``.<name>.<random>.tmp``) and moves it into place with :func:`os.replace`
only once the file is complete, so a reader (QGIS, a resumed run, a notebook)
sees either the old file or the new one, never half of either. On any
exception, including Ctrl-C, the temporary file is removed.

Units travel with the data (science.md §0.1, §12 item 1): a raster carries
its unit in the band unit type, in a ``units`` band tag and in a ``units``
dataset tag; a table carries it in its column names (``stock_tC``,
``density_tC_ha``) and, when asked, in a ``<name>.units.txt`` sidecar. Sign
conventions (science.md §0.2) are the caller's ``tags``; use
:data:`SIGN_CONVENTION_SINK_POSITIVE` for NEP and stock change.

Format choices
--------------
* GeoTIFF: Cloud-Optimized GeoTIFF (GDAL's COG driver; IFDs first, overviews before the full
  resolution) with DEFLATE, the floating-point predictor (3) for float bands and no
  predictor for class codes, 512 x 512 tiles, BIGTIFF=IF_SAFER, and internal overviews
  halving until a level fits in one tile (AVERAGE for continuous data, NEAREST for classes;
  nodata pixels are left out of the average). DEFLATE rather than ZSTD because every GDAL
  build, QGIS installer and ArcGIS reads it; pass ``compress="ZSTD"`` for smaller, faster
  files when all readers are GDAL >= 2.3. 512-pixel tiles: QGIS and GDAL read a 2048 x 2048
  tile file in 16 blocks, each a few hundred kB compressed, and the overviews let QGIS draw
  a zoomed-out mosaic of many tiles without decoding the full resolution.
* DEFLATE level 4, not GDAL's default 6: on a 30 m tile (2048 x 2048, quiet machine,
  benchmarks/bench_write_cog.py) level 4 writes a continuous float32 raster (NPP, NEP)
  1.7x faster than level 6 for a file 1.3 % larger, and a class raster 2x faster for a file
  30 % (0.06 MB) larger (stock densities, constant per class: 6 %); level 1 is only 1.1x
  faster again, for files 3 % larger. Reading is as fast at any level and the pixel values
  are the same; ``level=`` chooses another.
* How a COG is written: the array goes into an in-memory (MEM) dataset, whose overviews
  are computed there, uncompressed; one CreateCopy with the COG driver through
  :func:`rasterio.shutil.copy`, which releases the GIL, then writes the file. Tile workers
  in threads therefore compress in parallel (``rasterio.open(..., driver="COG")`` runs
  the same CreateCopy when the file is closed, but holding the GIL), and the COG driver
  does not build the overviews itself in a temporary compressed GeoTIFF. Each overview
  level averages the full resolution (the COG driver averages the previous level, which
  weighs pixels unevenly next to nodata); the first level is the same either way.
* VRT: written as XML here (there is no ``gdalbuildvrt`` binary), with
  relative paths so an output folder can be moved or zipped.
* CSV: UTF-8 with a byte-order mark, so Excel on a Chinese-locale Windows
  shows 中文 labels correctly; pandas, QGIS and GDAL strip the mark.
* GeoJSON: RFC 7946 (EPSG:4326 longitude/latitude, 7 decimals, about 1 cm).
* GeoPackage: several layers in one file, styles in the ``layer_styles``
  table that QGIS reads when it opens a layer.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import math
import os
import secrets
import sqlite3
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tanhui.errors import (
    GridMismatchError,
    InputFileError,
    InputValueError,
    MissingCRSError,
    OutputError,
)

if TYPE_CHECKING:  # heavy imports stay lazy; the CLI starts faster
    import geopandas
    import pandas
    from affine import Affine
    from rasterio.crs import CRS

__all__ = [
    "SIGN_CONVENTION_SINK_POSITIVE",
    "atomic_path",
    "build_vrt",
    "sha256_file",
    "write_cog",
    "write_csv",
    "write_geojson",
    "write_gpkg_layers",
    "write_json",
]

#: Tag value for NEP and stock-change outputs (science.md §0.2).
SIGN_CONVENTION_SINK_POSITIVE = (
    "sink-positive: values > 0 mean net carbon uptake (sink), values < 0 net release "
    "(source); NEP = NPP - Rh; eddy-covariance NEE = -NEP"
)

Resampling = Literal["average", "nearest", "mode", "bilinear", "cubic"]

_FLOAT_DTYPES = ("float32", "float64")
_INT_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32")
_COMPRESS_LEVEL = {"DEFLATE": 4, "ZSTD": 9}  # default levels; see the module notes
_LEVEL_RANGE = {"DEFLATE": (1, 12), "ZSTD": (1, 22)}  # 10-12: libdeflate builds only
_COMPRESSIONS = {"DEFLATE", "ZSTD", "LZW", "NONE"}
_RESAMPLINGS = ("average", "nearest", "mode", "bilinear", "cubic")
_GPKG_RESERVED_PREFIXES = ("gpkg_", "rtree_", "sqlite_")


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block succeeds.

    The temporary name is ``.<name>.<random>.tmp`` in the same folder, so the
    final :func:`os.replace` is an atomic rename on the same file system. The
    file is flushed to disk before the rename. If the block raises (any
    exception, including ``KeyboardInterrupt``), the temporary file and any
    sidecars a driver left beside it are removed, the exception propagates, and
    an existing ``path`` is left untouched.

    Parameters
    ----------
    path : path-like
        Final destination. Its folder must exist.

    Yields
    ------
    Path
        Where the caller writes the content. It does not exist yet.

    Raises
    ------
    OutputError
        The destination folder is missing, or the block finished without
        creating the temporary file.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> (d / "a.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('done', ['a.txt'])
    """
    final = Path(path)
    folder = final.parent
    if not folder.is_dir():
        raise OutputError(
            f"cannot write {final}: folder {folder} does not exist. "
            "Create it first (the run's output folder is made by 'tanhui run')."
        )
    tmp = folder / f".{final.name}.{secrets.token_hex(6)}.tmp"
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(
                f"writing {final}: the writer returned without creating the temporary "
                f"file {tmp.name}. This is a bug in the calling writer; please report it."
            )
        _fsync_file(tmp)
        try:
            os.replace(tmp, final)
        except PermissionError as err:  # Windows: the old file is open in QGIS or Excel
            raise OutputError(
                f"cannot replace {final}: {err.strerror}. Close the file in QGIS, Excel or "
                "other programs and run again."
            ) from err
        _move_sidecars(tmp, final)
    except BaseException:
        _remove_with_sidecars(tmp)
        raise
    _fsync_dir(folder)


def _sidecars(tmp: Path) -> list[Path]:
    # GDAL may leave <name>.aux.xml; SQLite may leave <name>-journal / -wal / -shm.
    return [p for p in tmp.parent.glob(f"{tmp.name}*") if p != tmp]


def _remove_with_sidecars(tmp: Path) -> None:
    for p in [tmp, *_sidecars(tmp)]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _move_sidecars(tmp: Path, final: Path) -> None:
    for p in _sidecars(tmp):
        os.replace(p, final.parent / (final.name + p.name[len(tmp.name):]))


def _fsync_file(p: Path) -> None:
    with open(p, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; directories cannot be opened on Windows.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in ``chunk``-byte pieces (for the run manifest).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except FileNotFoundError as err:
        raise InputFileError(
            f"cannot checksum {path}: file not found. Check the path or re-run the step "
            "that writes it."
        ) from err
    return digest.hexdigest()


# --------------------------------------------------------------------------- rasters


def write_cog(
    path: str | os.PathLike[str],
    array: np.ndarray,
    transform: Affine,
    crs: CRS | str | int | None,
    *,
    nodata: float | int | None = float("nan"),
    band_names: Sequence[str],
    units: str,
    long_name: str | None = None,
    tags: Mapping[str, object] | None = None,
    compress: Literal["DEFLATE", "ZSTD", "LZW", "NONE"] = "DEFLATE",
    overviews: bool = True,
    resampling: Resampling | None = None,
    blocksize: int = 512,
    level: int | None = None,
    num_threads: int | None = None,
) -> Path:
    """Write a Cloud-Optimized GeoTIFF atomically, with units and names in its metadata.

    Parameters
    ----------
    path : path-like
        Destination ``.tif``.
    array : (ny, nx) or (bands, ny, nx) ndarray
        float32/float64 for quantities (NaN = nodata) or an integer type for
        class rasters. Values are written unchanged (no scale/offset).
    transform : affine.Affine
        Pixel-to-CRS transform of the upper-left corner.
    crs : rasterio CRS, WKT/PROJ string or EPSG int
        Required: an output without a CRS is useless in QGIS.
    nodata : float or int, default NaN
        NaN for float rasters (other NaN pixels are written as this value if a
        finite value is given); an integer such as 0 or 255 for class rasters.
    band_names : sequence of str
        One description per band, e.g. ``["stock_total_tC_ha"]``.
    units : str
        Unit of every band, e.g. ``"t C ha-1"`` or ``"g C m-2 yr-1"``.
    long_name : str, optional
        Human-readable title, stored as the ``long_name`` dataset tag.
    tags : mapping, optional
        Further dataset tags (``sign_convention``, ``synthetic``, ``source`` ...);
        values are converted with ``str``.
    compress : {"DEFLATE", "ZSTD", "LZW", "NONE"}, default "DEFLATE"
        Codec; the predictor is floating-point for float bands, none for integers.
    overviews : bool, default True
        Build internal overviews (halving until a level fits in one block).
    resampling : {"average", "nearest", "mode", "bilinear", "cubic"}, optional
        Overview resampling; default "average" for float and "nearest" for
        integer (class) rasters.
    blocksize : int, default 512
        Internal tile size in pixels (a multiple of 16).
    level : int, optional
        Compression level: DEFLATE 1..12 (default 4; 10-12 need a libdeflate
        build of GDAL), ZSTD 1..22 (default 9); none for LZW and NONE. Lower is
        faster and larger; the values are the same (see the module notes).
    num_threads : int, optional
        Threads GDAL uses to compress the blocks of this file (default 1). Leave
        it when tile workers already keep every core busy.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MissingCRSError
        ``crs`` is None.
    InputValueError
        Wrong array shape or dtype, band-name count, nodata not representable in
        the dtype, ``tags`` contradicting ``units``/``long_name``, an unknown
        ``compress``/``resampling``, or a ``level``/``num_threads`` out of range.
    OutputError
        The destination folder does not exist.

    References
    ----------
    GDAL COG driver, https://gdal.org/drivers/raster/cog.html
    """
    import rasterio
    import rasterio.shutil
    from rasterio.enums import Resampling

    path = Path(path)
    data = _as_band_stack(array, path)
    dtype = data.dtype.name
    is_float = dtype in _FLOAT_DTYPES
    _check_nodata(nodata, dtype, path)
    if crs is None:
        raise MissingCRSError(
            f"cannot write {path}: crs is None. Pass the grid's CRS (e.g. grid.crs) so "
            "QGIS can place the raster."
        )
    names = _check_band_names(band_names, data.shape[0], path)
    dataset_tags = _merged_tags(tags, units=units, long_name=long_name, path=path)
    if is_float and nodata is not None and not math.isnan(float(nodata)):
        # One nodata marker per file: NaN pixels take the finite nodata value.
        data = np.where(np.isnan(data), data.dtype.type(nodata), data)

    mem_profile, options, factors, resampling = _cog_profile(
        data, transform, crs, nodata, compress, overviews, resampling, blocksize, level, path
    )
    if num_threads is not None:
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or (
            num_threads < 1
        ):
            raise InputValueError(
                f"write_cog {path}: num_threads={num_threads!r} is not a positive integer."
            )
        if num_threads > 1:
            options["num_threads"] = int(num_threads)

    with atomic_path(path) as tmp:
        # Source in memory (GDAL's MEM driver), with its overviews, descriptions, units and
        # tags; then one CreateCopy with the COG driver, which writes the IFDs, the overviews
        # and the full resolution in COG order. rasterio.shutil.copy releases the GIL for the
        # copy (compression included), so tile workers in threads write in parallel;
        # rasterio.open(..., driver="COG") would do the same CreateCopy on close, holding it.
        with rasterio.open(f"/vsimem/tanhui_cog_{secrets.token_hex(6)}", "w",
                           **mem_profile) as mem:
            mem.write(data)
            mem.update_tags(**dataset_tags)
            for i, name in enumerate(names, start=1):
                mem.set_band_description(i, name)
                mem.set_band_unit(i, units)
                mem.update_tags(i, units=units)
            if factors:
                # in memory and uncompressed: ~10x cheaper than letting the COG driver build
                # them in a temporary compressed GeoTIFF and copy them over
                mem.build_overviews(factors, Resampling[resampling])
            rasterio.shutil.copy(mem, os.fspath(tmp), driver="COG", **options)
    return path


def _overview_factors(height: int, width: int, blocksize: int) -> list[int]:
    """Overview decimation factors 2, 4, ... until a level fits in one block.

    The levels GDAL's COG driver picks with OVERVIEWS=AUTO; each level is
    ceil(size / factor) pixels, as GDAL sizes overviews.

    Examples
    --------
    >>> _overview_factors(2048, 2048, 512), _overview_factors(1100, 1030, 512)
    ([2, 4], [2, 4])
    >>> _overview_factors(512, 40, 512)
    []
    """
    factors: list[int] = []
    f = 1
    while max(-(-height // f), -(-width // f)) > blocksize:
        f *= 2
        factors.append(f)
    return factors


def _cog_profile(
    data: np.ndarray,
    transform: Affine,
    crs: CRS | str | int,
    nodata: float | int | None,
    compress: str,
    overviews: bool,
    resampling: str | None,
    blocksize: int,
    level: int | None,
    path: Path,
) -> tuple[dict[str, object], dict[str, object], list[int], str]:
    """The MEM source profile, the COG creation options, overview factors and resampling."""
    compress = compress.upper()
    if compress not in _COMPRESSIONS:
        raise InputValueError(
            f"write_cog {path}: compress={compress!r} is not one of {sorted(_COMPRESSIONS)}."
        )
    if resampling is not None and resampling not in _RESAMPLINGS:
        raise InputValueError(
            f"write_cog {path}: resampling={resampling!r} is not one of {list(_RESAMPLINGS)}."
        )
    if blocksize < 16 or blocksize % 16:
        raise InputValueError(
            f"write_cog {path}: blocksize {blocksize} is not a positive multiple of 16. "
            "Use 256 or 512."
        )
    if level is not None and (
        compress not in _LEVEL_RANGE
        or isinstance(level, bool)
        or not isinstance(level, (int, np.integer))
        or not _LEVEL_RANGE[compress][0] <= level <= _LEVEL_RANGE[compress][1]
    ):
        ranges = ", ".join(f"{k} {lo}..{hi}" for k, (lo, hi) in _LEVEL_RANGE.items())
        raise InputValueError(
            f"write_cog {path}: level={level!r} is not valid for compress={compress!r} "
            f"(levels: {ranges}; none for LZW or NONE)."
        )
    is_float = data.dtype.name in _FLOAT_DTYPES
    resampling = resampling or ("average" if is_float else "nearest")
    mem_profile: dict[str, object] = {
        "driver": "MEM",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
    }
    options: dict[str, object] = {
        "blocksize": blocksize,
        "compress": compress,
        "bigtiff": "IF_SAFER",
        # the source's overviews (built in memory) are copied; none means none
        "overviews": "FORCE_USE_EXISTING" if overviews else "NONE",
    }
    if is_float:
        # floating-point predictor; class codes gain nothing from differencing (and the COG
        # driver takes YES/NO/STANDARD/FLOATING_POINT, not GTiff's 1/2/3)
        options["predictor"] = "FLOATING_POINT"
    if compress in _COMPRESS_LEVEL:
        options["level"] = _COMPRESS_LEVEL[compress] if level is None else int(level)
    factors = _overview_factors(data.shape[1], data.shape[2], blocksize) if overviews else []
    return mem_profile, options, factors, resampling


def _as_band_stack(array: np.ndarray, path: Path) -> np.ndarray:
    data = np.asarray(array)
    if data.ndim == 2:
        data = data[np.newaxis]
    if data.ndim != 3 or 0 in data.shape:
        raise InputValueError(
            f"write_cog {path}: array has shape {np.shape(array)}; expected (ny, nx) or "
            "(bands, ny, nx) with no empty axis."
        )
    if data.dtype.name not in _FLOAT_DTYPES + _INT_DTYPES:
        raise InputValueError(
            f"write_cog {path}: array dtype {data.dtype} is not supported; expected one "
            f"of {', '.join(_FLOAT_DTYPES + _INT_DTYPES)}. Cast with .astype('float32') "
            "for quantities or .astype('uint8') for classes."
        )
    return data


def _check_nodata(nodata: float | int | None, dtype: str, path: Path) -> None:
    if nodata is None:
        return
    if dtype in _FLOAT_DTYPES:
        return
    info = np.iinfo(dtype)
    if isinstance(nodata, float) and not nodata.is_integer():
        ok = False
    else:
        ok = info.min <= nodata <= info.max
    if not ok:
        raise InputValueError(
            f"write_cog {path}: nodata {nodata!r} cannot be stored in a {dtype} raster "
            f"(range {info.min}..{info.max}). Pass an integer nodata such as 0 or 255 "
            "for class rasters."
        )


def _check_band_names(band_names: Sequence[str], n_bands: int, path: Path) -> list[str]:
    if isinstance(band_names, str):
        band_names = [band_names]
    names = [str(n) for n in band_names]
    if len(names) != n_bands:
        raise InputValueError(
            f"write_cog {path}: {len(names)} band names {names} for {n_bands} bands. "
            "Pass one name per band."
        )
    return names


def _merged_tags(
    tags: Mapping[str, object] | None, *, units: str, long_name: str | None, path: Path
) -> dict[str, str]:
    if not units or not str(units).strip():
        raise InputValueError(
            f"write_cog {path}: units is empty. Every output states its unit "
            "(science.md §12 item 1), e.g. 't C ha-1' or 'g C m-2 yr-1'."
        )
    merged = {str(k): str(v) for k, v in (tags or {}).items()}
    for key, value in (("units", units), ("long_name", long_name)):
        if value is None:
            continue
        if key in merged and merged[key] != str(value):
            raise InputValueError(
                f"write_cog {path}: tags[{key!r}] = {merged[key]!r} contradicts "
                f"{key}={value!r}. Drop it from tags."
            )
        merged[key] = str(value)
    bad = [k for k in merged if not k or "=" in k or k != k.strip()]
    if bad:
        raise InputValueError(
            f"write_cog {path}: invalid tag keys {bad}; keys must be non-empty, without '=' "
            "or surrounding spaces."
        )
    return merged


# --------------------------------------------------------------------------- VRT mosaics


@dataclasses.dataclass(frozen=True)
class _TileInfo:
    path: Path
    width: int
    height: int
    transform: Affine
    crs: CRS
    dtype: str
    nodata: float | int | None
    block_shape: tuple[int, int]
    descriptions: tuple[str | None, ...]
    units: tuple[str | None, ...]
    band_tags: tuple[dict[str, str], ...]
    tags: dict[str, str]


def build_vrt(
    vrt_path: str | os.PathLike[str], tile_paths: Sequence[str | os.PathLike[str]]
) -> Path:
    """Write a GDAL VRT that mosaics tiles on one pixel grid, atomically.

    The tiles must share CRS, pixel size, band count, data type, nodata, band
    names and units, and their origins must lie on the same pixel grid; their
    extents may differ and leave gaps. The VRT covers the union of the tiles;
    pixels outside every tile read as nodata. Where tiles overlap, later tiles
    are drawn over earlier ones except at their nodata pixels (ComplexSource
    with NODATA). Source paths are stored relative to the VRT, so the output
    folder can be moved as a whole. Dataset tags shared by all tiles (units,
    sign convention ...) are copied to the VRT.

    Parameters
    ----------
    vrt_path : path-like
        Destination ``.vrt``.
    tile_paths : sequence of path-like
        GeoTIFF tiles (at least one).

    Returns
    -------
    Path
        ``vrt_path``.

    Raises
    ------
    InputFileError
        No tiles, or a tile is missing or unreadable.
    GridMismatchError
        Tiles differ in CRS, resolution, rotation, pixel-grid alignment, band
        count, dtype, nodata, band names or units.

    References
    ----------
    GDAL VRT format, https://gdal.org/drivers/raster/vrt.html
    """
    vrt_path = Path(vrt_path)
    if not tile_paths:
        raise InputFileError(
            f"cannot build {vrt_path}: no tiles given. Pass the tile GeoTIFFs written by "
            "the run (one per finished tile)."
        )
    tiles = [_read_tile_info(Path(p)) for p in tile_paths]
    ref = tiles[0]
    for t in tiles[1:]:
        _check_same_grid(ref, t, vrt_path)

    res_x, res_y = ref.transform.a, ref.transform.e  # res_y < 0 for north-up
    x0 = min(t.transform.c for t in tiles)
    y0 = max(t.transform.f for t in tiles)
    offsets = [_pixel_offset(t, x0, y0, ref, vrt_path) for t in tiles]
    width = max(col + t.width for (col, _), t in zip(offsets, tiles))
    height = max(row + t.height for (_, row), t in zip(offsets, tiles))

    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS").text = ref.crs.to_wkt()
    geotransform = (x0, res_x, ref.transform.b, y0, ref.transform.d, res_y)
    ET.SubElement(root, "GeoTransform").text = ", ".join(_fmt_float(v) for v in geotransform)
    _add_metadata(root, _common_items([t.tags for t in tiles]))
    for band in range(1, len(ref.descriptions) + 1):
        _add_vrt_band(root, band, ref, tiles, offsets, vrt_path)

    ET.indent(root, space="  ")
    with atomic_path(vrt_path) as tmp:
        tmp.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return vrt_path


def _read_tile_info(p: Path) -> _TileInfo:
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(p) as src:
            if src.crs is None:
                raise MissingCRSError(
                    f"tile {p} has no CRS. Re-write it with write_cog(..., crs=grid.crs)."
                )
            return _TileInfo(
                path=p,
                width=src.width,
                height=src.height,
                transform=src.transform,
                crs=src.crs,
                dtype=src.dtypes[0],
                nodata=src.nodata,
                block_shape=src.block_shapes[0],
                descriptions=tuple(src.descriptions),
                units=tuple(src.units),
                band_tags=tuple(src.tags(i) for i in range(1, src.count + 1)),
                tags=src.tags(),
            )
    except RasterioIOError as err:
        raise InputFileError(
            f"cannot open tile {p} for the VRT mosaic: {err}. Check that the tile was "
            "written completely (re-run the tile) and the path is right."
        ) from err


def _same_nodata(a: float | int | None, b: float | int | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def _check_same_grid(ref: _TileInfo, t: _TileInfo, vrt_path: Path) -> None:
    def fail(what: str, found: object, expected: object) -> None:
        raise GridMismatchError(
            f"cannot mosaic {t.path.name} into {vrt_path.name}: {what} {found!r} vs "
            f"{expected!r} in {ref.path.name}. Mosaic only tiles of one grid and one output "
            "variable (re-run the tile on the project grid)."
        )

    if t.crs != ref.crs:
        fail("CRS", t.crs.to_string(), ref.crs.to_string())
    res_t = (t.transform.a, t.transform.e, t.transform.b, t.transform.d)
    res_r = (ref.transform.a, ref.transform.e, ref.transform.b, ref.transform.d)
    if not np.allclose(res_t, res_r, rtol=1e-9, atol=0.0):
        fail("pixel size/rotation", res_t, res_r)
    if len(t.descriptions) != len(ref.descriptions):
        fail("band count", len(t.descriptions), len(ref.descriptions))
    if t.dtype != ref.dtype:
        fail("data type", t.dtype, ref.dtype)
    if not _same_nodata(t.nodata, ref.nodata):
        fail("nodata", t.nodata, ref.nodata)
    if t.descriptions != ref.descriptions:
        fail("band names", t.descriptions, ref.descriptions)
    if t.units != ref.units:
        fail("band units", t.units, ref.units)


def _pixel_offset(
    t: _TileInfo, x0: float, y0: float, ref: _TileInfo, vrt_path: Path
) -> tuple[int, int]:
    col_f = (t.transform.c - x0) / ref.transform.a
    row_f = (t.transform.f - y0) / ref.transform.e
    col, row = round(col_f), round(row_f)
    # 1e-6 px: tolerant of decimal round-off in origins, strict about real shifts.
    if abs(col_f - col) > 1e-6 or abs(row_f - row) > 1e-6:
        raise GridMismatchError(
            f"cannot mosaic {t.path.name} into {vrt_path.name}: its origin "
            f"({t.transform.c}, {t.transform.f}) is {col_f:.6f} columns and {row_f:.6f} rows "
            f"from the mosaic origin ({x0}, {y0}); expected whole pixels. Tiles must be "
            "on one pixel grid: regrid the inputs to the project grid."
        )
    return col, row


def _add_vrt_band(
    root: ET.Element,
    band: int,
    ref: _TileInfo,
    tiles: Sequence[_TileInfo],
    offsets: Sequence[tuple[int, int]],
    vrt_path: Path,
) -> None:
    el = ET.SubElement(root, "VRTRasterBand", dataType=_gdal_type(ref.dtype), band=str(band))
    _add_metadata(el, _common_items([t.band_tags[band - 1] for t in tiles]))
    if ref.descriptions[band - 1]:
        ET.SubElement(el, "Description").text = ref.descriptions[band - 1]
    if ref.nodata is not None:
        ET.SubElement(el, "NoDataValue").text = _fmt_nodata(ref.nodata)
    if ref.units[band - 1]:
        ET.SubElement(el, "UnitType").text = ref.units[band - 1]
    ET.SubElement(el, "ColorInterp").text = "Gray"
    for t, (col, row) in zip(tiles, offsets):
        kind = "ComplexSource" if ref.nodata is not None else "SimpleSource"
        src = ET.SubElement(el, kind)
        rel, is_rel = _source_filename(t.path, vrt_path)
        ET.SubElement(src, "SourceFilename", relativeToVRT="1" if is_rel else "0").text = rel
        ET.SubElement(src, "SourceBand").text = str(band)
        ET.SubElement(
            src,
            "SourceProperties",
            RasterXSize=str(t.width),
            RasterYSize=str(t.height),
            DataType=_gdal_type(t.dtype),
            BlockXSize=str(t.block_shape[1]),
            BlockYSize=str(t.block_shape[0]),
        )
        ET.SubElement(src, "SrcRect", xOff="0", yOff="0", xSize=str(t.width), ySize=str(t.height))
        ET.SubElement(
            src, "DstRect", xOff=str(col), yOff=str(row), xSize=str(t.width), ySize=str(t.height)
        )
        if ref.nodata is not None:
            # Nodata pixels of a tile do not paint over an overlapping neighbour.
            ET.SubElement(src, "NODATA").text = _fmt_nodata(ref.nodata)


def _source_filename(tile: Path, vrt_path: Path) -> tuple[str, bool]:
    tile_abs = tile.resolve()
    try:
        rel = os.path.relpath(tile_abs, vrt_path.parent.resolve())
    except ValueError:  # another drive on Windows: no relative path exists
        return tile_abs.as_posix(), False
    return Path(rel).as_posix(), True


def _add_metadata(el: ET.Element, items: Mapping[str, str]) -> None:
    if not items:
        return
    md = ET.SubElement(el, "Metadata")
    for k, v in items.items():
        ET.SubElement(md, "MDI", key=k).text = v


def _common_items(dicts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    # Only tags every tile agrees on describe the mosaic; AREA_OR_POINT is GDAL's own.
    first = dict(dicts[0])
    return {
        k: v
        for k, v in first.items()
        if k != "AREA_OR_POINT" and all(d.get(k) == v for d in dicts[1:])
    }


def _gdal_type(dtype: str) -> str:
    return {
        "uint8": "Byte",
        "int8": "Int8",
        "uint16": "UInt16",
        "int16": "Int16",
        "uint32": "UInt32",
        "int32": "Int32",
        "float32": "Float32",
        "float64": "Float64",
    }[dtype]


def _fmt_float(v: float) -> str:
    return format(float(v), ".17g")


def _fmt_nodata(v: float | int) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if float(v).is_integer():
        return str(int(v))
    return _fmt_float(v)


# --------------------------------------------------------------------------- tables


def write_csv(
    df: pandas.DataFrame,
    path: str | os.PathLike[str],
    *,
    header_lines: Sequence[str] = (),
    index: bool | None = None,
) -> Path:
    """Write a table as a plain CSV, atomically; units go in column names and a sidecar.

    The CSV itself has no comment lines, because they break spreadsheet and GIS
    readers. Put units in the column names (``stock_tC``, ``area_ha``) and pass
    the longer explanation (units, sign convention, data sources) as
    ``header_lines``: they are written, one per line, to ``<stem>.units.txt``
    beside the CSV.

    Parameters
    ----------
    df : pandas.DataFrame
        The table. Floats are written with full precision (round-trip exact).
    path : path-like
        Destination ``.csv``.
    header_lines : sequence of str, optional
        Lines for the ``<stem>.units.txt`` sidecar; no sidecar when empty.
    index : bool, optional
        Write the index as the first column. Default: only when it is not a
        plain unnamed RangeIndex (e.g. zone ids are kept).

    Returns
    -------
    Path
        ``path`` (the sidecar is ``path.with_suffix('.units.txt')``).

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> p = Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = write_csv(pd.DataFrame({"zone": ["a"], "stock_tC": [1.5]}), p,
    ...               header_lines=["stock_tC: tonnes of carbon"])
    >>> pd.read_csv(p).to_dict("list"), p.with_suffix(".units.txt").read_text().strip()
    ({'zone': ['a'], 'stock_tC': [1.5]}, 'stock_tC: tonnes of carbon')
    """
    import pandas as pd

    path = Path(path)
    if index is None:
        index = not (isinstance(df.index, pd.RangeIndex) and df.index.name is None)
    with atomic_path(path) as tmp:
        # utf-8-sig: Excel on zh-CN Windows needs the BOM to read 中文 labels as UTF-8.
        df.to_csv(tmp, index=index, encoding="utf-8-sig", lineterminator="\n")
    if header_lines:
        sidecar = path.with_suffix(".units.txt")
        text = "\n".join(str(line) for line in header_lines) + "\n"
        with atomic_path(sidecar) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return path


def write_json(obj: object, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as UTF-8 JSON (indent 2, 中文 kept as is), atomically.

    NumPy scalars and arrays, paths, dates/datetimes, sets, tuples and
    dataclasses are converted. Non-finite floats (NaN, inf) become ``null``,
    because RFC 8259 JSON has no NaN.

    Raises
    ------
    InputValueError
        A value of a type JSON cannot represent; the message gives its key path.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = write_json({"n": np.int64(3), "x": float("nan"), "名": "通辽"}, p)
    >>> json.loads(p.read_text(encoding="utf-8"))
    {'n': 3, 'x': None, '名': '通辽'}
    """
    path = Path(path)
    text = json.dumps(_jsonable(obj, "$", path), ensure_ascii=False, indent=2, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def _jsonable(obj: object, where: str, path: Path) -> object:
    if obj is None or isinstance(obj, (bool, str, int)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return _jsonable(float(obj), where, path)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where, path)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj), where, path)
    if isinstance(obj, Mapping):
        return {
            _json_key(k, where, path): _jsonable(v, f"{where}.{k}", path)
            for k, v in obj.items()
        }
    if isinstance(obj, (set, frozenset)):
        return [_jsonable(v, f"{where}[]", path) for v in sorted(obj, key=repr)]
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]", path) for i, v in enumerate(obj)]
    raise InputValueError(
        f"write_json {path}: value at {where} has type {type(obj).__name__}, which JSON "
        "cannot represent. Convert it to str, number, list or dict first."
    )


def _json_key(k: object, where: str, path: Path) -> str:
    if isinstance(k, str):
        return k
    if isinstance(k, (bool, int, float, np.integer, np.floating, np.bool_)):
        return str(k.item() if isinstance(k, np.generic) else k)
    raise InputValueError(
        f"write_json {path}: key {k!r} at {where} has type {type(k).__name__}; JSON keys "
        "must be strings or numbers."
    )


# --------------------------------------------------------------------------- vectors


def _require_crs(gdf: geopandas.GeoDataFrame, what: str) -> None:
    if gdf.crs is None:
        raise MissingCRSError(
            f"{what} has no CRS. Set it with gdf.set_crs(...) (the CRS the coordinates are "
            "in), not to_crs."
        )


def write_geojson(gdf: geopandas.GeoDataFrame, path: str | os.PathLike[str]) -> Path:
    """Write an RFC 7946 GeoJSON (EPSG:4326 longitude/latitude, 7 decimals), atomically.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Features with a CRS; they are reprojected to EPSG:4326.
    path : path-like
        Destination ``.geojson``; its stem becomes the collection ``name``.

    Raises
    ------
    MissingCRSError
        ``gdf`` has no CRS.

    References
    ----------
    RFC 7946 The GeoJSON Format, §4 (CRS is WGS 84 lon/lat) and §11.2 (precision).
    """
    import pyogrio

    path = Path(path)
    _require_crs(gdf, f"GeoDataFrame for {path}")
    lonlat = gdf.to_crs(4326)
    with atomic_path(path) as tmp:
        pyogrio.write_dataframe(
            lonlat,
            tmp,
            layer=path.stem,  # else the collection "name" would be the temporary name
            driver="GeoJSON",
            layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7"},
        )
    return path


def write_gpkg_layers(
    path: str | os.PathLike[str],
    layers: Mapping[str, geopandas.GeoDataFrame | pandas.DataFrame],
    styles: Mapping[str, str] | None = None,
) -> Path:
    """Write several layers to one GeoPackage, with optional QGIS styles, atomically.

    Styles are stored in the ``layer_styles`` table with the schema QGIS's OGR
    provider creates (``f_table_catalog`` ... ``update_time``), matched on
    ``f_table_schema = ''``, the layer name and its geometry column, and marked
    ``useAsDefault = 1``, so QGIS applies them when the layer is opened.

    Parameters
    ----------
    path : path-like
        Destination ``.gpkg``; an existing file is replaced as a whole.
    layers : mapping of str to geopandas.GeoDataFrame or pandas.DataFrame
        Layer name to features (each with a CRS); a plain DataFrame becomes a
        table without geometry (e.g. zone totals). Names must not start with
        ``gpkg_``, ``rtree_`` or ``sqlite_``.
    styles : mapping of str to str, optional
        Layer name to QML text (see :mod:`tanhui.styles`).

    Raises
    ------
    InputValueError
        No layers, a reserved or empty layer name, or a style for an unknown layer.
    MissingCRSError
        A layer has no CRS.

    References
    ----------
    QGIS ``QgsOgrProviderMetadata::saveStyle``/``loadStyle`` (src/core/providers/ogr);
    OGC GeoPackage 1.3 §2.4 (attribute tables registered in ``gpkg_contents``).
    """
    import pyogrio

    path = Path(path)
    styles = dict(styles or {})
    _check_gpkg_layers(layers, styles, path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # The temporary name lacks the .gpkg extension on purpose (no glob picks it up).
        warnings.filterwarnings("ignore", message=".*extension.*", category=RuntimeWarning)
        for name, gdf in layers.items():
            pyogrio.write_dataframe(gdf, tmp, layer=name, driver="GPKG")
        if styles:
            _write_layer_styles(tmp, styles)
    return path


def _check_gpkg_layers(
    layers: Mapping[str, geopandas.GeoDataFrame | pandas.DataFrame],
    styles: Mapping[str, str],
    path: Path,
) -> None:
    import geopandas as gpd
    import pandas as pd

    if not layers:
        raise InputValueError(f"write_gpkg_layers {path}: no layers given. Pass {{name: gdf}}.")
    for name, gdf in layers.items():
        if not isinstance(name, str) or not name.strip() or name.lower() == "layer_styles" or (
            name.lower().startswith(_GPKG_RESERVED_PREFIXES)
        ):
            raise InputValueError(
                f"write_gpkg_layers {path}: layer name {name!r} is empty or reserved "
                f"(layer_styles, {', '.join(p + '*' for p in _GPKG_RESERVED_PREFIXES)}). "
                "Rename the layer."
            )
        if isinstance(gdf, gpd.GeoDataFrame):
            _require_crs(gdf, f"layer {name!r} for {path}")
        elif not isinstance(gdf, pd.DataFrame):
            raise InputValueError(
                f"write_gpkg_layers {path}: layer {name!r} is a {type(gdf).__name__}; expected "
                "a GeoDataFrame (or a DataFrame for a table without geometry)."
            )
    unknown = sorted(set(styles) - set(layers))
    if unknown:
        raise InputValueError(
            f"write_gpkg_layers {path}: styles given for {unknown}, which are not among the "
            f"layers {sorted(layers)}. Fix the style keys."
        )


_LAYER_STYLES_DDL = """
CREATE TABLE "layer_styles" (
  "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
  "f_table_catalog" TEXT(256),
  "f_table_schema" TEXT(256),
  "f_table_name" TEXT(256),
  "f_geometry_column" TEXT(256),
  "styleName" TEXT(30),
  "styleQML" TEXT,
  "styleSLD" TEXT,
  "useAsDefault" BOOLEAN,
  "description" TEXT,
  "owner" TEXT(30),
  "ui" TEXT(30),
  "update_time" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)
"""


def _write_layer_styles(gpkg: Path, styles: Mapping[str, str]) -> None:
    # Same table as QGIS's OGR provider creates, registered as a GeoPackage
    # attributes table so GDAL (and so QGIS) lists it.
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    con = sqlite3.connect(gpkg)
    try:
        with con:
            geom_cols = dict(
                con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns")
            )
            con.execute(_LAYER_STYLES_DDL)
            con.execute(
                "INSERT INTO gpkg_contents (table_name, data_type, identifier, description,"
                " last_change, srs_id) VALUES ('layer_styles', 'attributes', 'layer_styles',"
                " '', ?, 0)",
                (now,),
            )
            for layer, qml in styles.items():
                con.execute(
                    'INSERT INTO "layer_styles" (f_table_catalog, f_table_schema, f_table_name,'
                    " f_geometry_column, styleName, styleQML, styleSLD, useAsDefault,"
                    " description, owner, ui, update_time)"
                    " VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL, ?)",
                    (layer, geom_cols.get(layer, ""), layer, qml, "tanhui default style", now),
                )
    finally:
        con.close()
