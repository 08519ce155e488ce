"""Read input rasters onto grid tiles (rasterio / GDAL), with checks that name the file.

Inputs already on the grid are read window by window (exact, no resampling). Inputs on
another grid or CRS are warped onto the tile with GDAL (``WarpedVRT``): nearest neighbour
for classes, bilinear or average for continuous values; the caller records what was
resampled. No science here: only reading, masking, scaling.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window, from_bounds

from .errors import GridMismatchError, InputFileError, InputValueError, MissingCRSError, TanhuiError

RESAMPLING = {
    "nearest": Resampling.nearest,
    "bilinear": Resampling.bilinear,
    "average": Resampling.average,
}


@dataclass(frozen=True)
class RasterInfo:
    path: Path
    crs: object  # rasterio CRS
    transform: object  # affine.Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    bounds: tuple[float, float, float, float]
    what: str = "raster"  # how messages name it: "land-cover raster", "NDVI file" ...

    @property
    def is_integer(self) -> bool:
        return np.issubdtype(np.dtype(self.dtype), np.integer)


def inspect_raster(path: str | Path, *, what: str = "raster") -> RasterInfo:
    """Open a raster's header and check it is usable (exists, non-empty, georeferenced).

    Files GDAL cannot open are described by their first bytes (a CSV, an HTML page from a
    failed download, a ZIP archive ...); GeoTIFFs whose directory points past the end of the
    file are reported as truncated without reading any pixel.
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{what} {path} does not exist. Check the path in the project file.")
    if path.is_dir():
        raise InputFileError(f"{what} {path} is a folder, not a raster file. Point to the file.")
    size = path.stat().st_size
    if size == 0:
        raise InputFileError(f"{what} {path} is empty (0 bytes). Re-export or re-download it.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                info = RasterInfo(
                    path=path, crs=src.crs, transform=src.transform, width=src.width,
                    height=src.height, count=src.count, dtype=src.dtypes[0], nodata=src.nodata,
                    scales=tuple(src.scales), offsets=tuple(src.offsets), bounds=tuple(src.bounds),
                    what=what,
                )
                driver = src.driver
    except _PASS_THROUGH:
        raise
    except Exception as err:  # RasterioIOError, CPLE_*, UnicodeDecodeError on corrupt tags
        kind = sniff_file_type(path)
        if kind is not None:
            raise InputFileError(f"{what} {path} is {kind[0]}, not a raster. {kind[1]}") from err
        truncated = tiff_truncation(path)
        if truncated:
            raise InputFileError(f"{what} {path} is truncated: {truncated}. Copy or download it "
                                 "again, or re-export it.") from err
        detail = _short(err)
        if isinstance(err, UnicodeDecodeError):
            detail = f"its metadata holds invalid bytes: {detail}"
        raise InputFileError(
            f"{what} {path} cannot be read as a raster ({detail}); the file is corrupt or "
            "not a GeoTIFF (or other GDAL format). Re-export or re-download it."
        ) from err
    truncated = tiff_truncation(path) if driver in ("GTiff", "COG") else None
    if truncated:
        raise InputFileError(f"{what} {path} is truncated: {truncated}. Copy or download it "
                             "again, or re-export it.")
    if info.crs is None:
        kind = "" if driver in ("GTiff", "COG") else f" (a {driver} image without georeferencing)"
        raise MissingCRSError(
            f"{what} {path}{kind} has no coordinate reference system. Assign one, e.g. "
            f"'rio edit-info --crs EPSG:4326 {path.name}', or re-export it as a GeoTIFF with "
            "its CRS."
        )
    if info.transform.b != 0 or info.transform.d != 0 or info.transform.e >= 0:
        raise GridMismatchError(
            f"{what} {path} is rotated or not north-up (geotransform {tuple(info.transform)[:6]}). "
            "Warp it to a north-up grid first (gdalwarp)."
        )
    return info


#: errors of tanhui itself and of the interpreter are never re-labelled as file problems
_PASS_THROUGH = (TanhuiError, MemoryError, KeyboardInterrupt)


def _short(err: BaseException) -> str:
    """The most specific line of an error: GDAL's own message is often the chained cause."""
    msgs = []
    e: BaseException | None = err
    while e is not None and len(msgs) < 4:
        text = str(e).strip()
        if text:
            msgs.append(text.splitlines()[0])
        e = e.__cause__ or e.__context__
    useful = [m for m in msgs if "see previous exception" not in m.lower()]
    return (useful or msgs or [type(err).__name__])[0][:200]


def sniff_file_type(path: Path) -> tuple[str, str] | None:
    """What a file that GDAL cannot open really is, from its first bytes: (what, fix) or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    low = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if low.startswith((b"<!doctype html", b"<html")) or b"<html" in low[:200]:
        return ("an HTML page", "It is probably a failed or login-protected download; "
                "download the file again.")
    if low.startswith(b"<?xml") or low.startswith(b"<"):
        return ("an XML file", "Point to the raster itself (a GeoTIFF), not to its metadata.")
    if low.startswith((b"{", b"[")):
        return ("a JSON text file", "Point to the raster itself (a GeoTIFF).")
    if head.startswith(b"PK\x03\x04"):
        return ("a ZIP archive", "Unzip it and point to the GeoTIFF inside.")
    if head.startswith(b"\x1f\x8b"):
        return ("a gzip-compressed file", "Decompress it (gunzip) and point to the GeoTIFF.")
    if head.startswith((b"Rar!", b"7z\xbc\xaf")):
        return ("a RAR/7z archive", "Extract it and point to the GeoTIFF inside.")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head.decode("gb18030")
        except UnicodeDecodeError:
            return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    if text and printable / len(text) > 0.95:
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        return (f"a text file (it starts with {first!r})",
                "A CSV or text table cannot be used as a raster; point to the GeoTIFF.")
    return None


def tiff_truncation(path: Path) -> str | None:
    """Describe how a (Big)TIFF is cut short, or None if every block it lists is in the file.

    Reads only the image file directories: the offsets and byte counts of the strips or tiles
    of every image (including internal overviews) must lie within the file.
    """
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
            if head[:2] not in (b"II", b"MM"):
                return None
            e = "<" if head[:2] == b"II" else ">"
            magic = struct.unpack(e + "H", head[2:4])[0]
            if magic == 42:
                big, ifd = False, struct.unpack(e + "I", head[4:8])[0]
            elif magic == 43:
                big, ifd = True, struct.unpack(e + "Q", head[8:16])[0]
            else:
                return None
            sizes = {3: 2, 4: 4, 16: 8}
            fmt = {3: "H", 4: "I", 16: "Q"}
            seen = set()
            while ifd and ifd not in seen and len(seen) < 64:
                seen.add(ifd)
                if ifd >= size:
                    return f"{size:,} bytes, but its image directory starts at byte {ifd:,}"
                fh.seek(ifd)
                n_raw = fh.read(8 if big else 2)
                n = struct.unpack(e + ("Q" if big else "H"), n_raw)[0]
                entry = 20 if big else 12
                raw = fh.read(n * entry)
                if len(raw) < n * entry:
                    return f"{size:,} bytes, cut inside its image directory"
                tags = {}
                for k in range(n):
                    ent = raw[k * entry:(k + 1) * entry]
                    tag, typ = struct.unpack(e + "HH", ent[:4])
                    if tag not in (273, 279, 324, 325) or typ not in sizes:
                        continue
                    count_raw = ent[4:12] if big else ent[4:8]
                    count = struct.unpack(e + ("Q" if big else "I"), count_raw)[0]
                    value = ent[12:20] if big else ent[8:12]
                    nbytes = count * sizes[typ]
                    if nbytes <= len(value):
                        data = value[:nbytes]
                    else:
                        off = struct.unpack(e + ("Q" if big else "I"), value)[0]
                        if off + nbytes > size:
                            return (f"{size:,} bytes, but its block table reaches byte "
                                    f"{off + nbytes:,}")
                        fh.seek(off)
                        data = fh.read(nbytes)
                    tags[tag] = struct.unpack(e + fmt[typ] * count, data)
                offs = tags.get(273) or tags.get(324) or ()
                counts = tags.get(279) or tags.get(325) or ()
                ends = [o + c for o, c in zip(offs, counts) if o and c]
                if ends and max(ends) > size:
                    missing = sum(1 for o, c in zip(offs, counts) if o and c and o + c > size)
                    return (f"{size:,} bytes, but its pixel data reaches byte {max(ends):,} "
                            f"({missing} of {len(offs)} blocks are missing or cut)")
                fh.seek(ifd + (8 if big else 2) + n * entry)
                nxt = fh.read(8 if big else 4)
                if len(nxt) < (8 if big else 4):
                    return f"{size:,} bytes, cut inside its image directory"
                ifd = struct.unpack(e + ("Q" if big else "I"), nxt)[0]
    except (OSError, struct.error):
        return None
    return None


def is_aligned(info: RasterInfo, crs, transform, tol: float = 1e-6) -> bool:
    """True when ``transform`` (a tile of the grid) lies on the raster's own pixel grid."""
    from pyproj import CRS

    if CRS.from_user_input(info.crs) != CRS.from_user_input(crs):
        return False
    t = info.transform
    if not (math.isclose(t.a, transform.a, rel_tol=1e-9) and math.isclose(t.e, transform.e, rel_tol=1e-9)):
        return False
    dx = (transform.c - t.c) / t.a
    dy = (transform.f - t.f) / t.e
    return abs(dx - round(dx)) < tol and abs(dy - round(dy)) < tol


def read_window(
    info: RasterInfo,
    crs,
    transform,
    shape: tuple[int, int],
    *,
    bands: int | list[int] = 1,
    resampling: str = "nearest",
    fill: float | int = 0,
) -> tuple[np.ndarray, str]:
    """Read bands of a raster onto the window ``(transform, shape)`` in ``crs``.

    Returns the raw array (source dtype, ``fill`` outside the raster and where the source is
    nodata when warped) and how it was read: ``"aligned"`` or ``"warped:<resampling>"``.
    """
    ny, nx = shape
    try:
        with rasterio.open(info.path) as src:
            if is_aligned(info, crs, transform):
                col_off = round((transform.c - info.transform.c) / info.transform.a)
                row_off = round((transform.f - info.transform.f) / info.transform.e)
                win = Window(col_off, row_off, nx, ny)
                data = src.read(bands, window=win, boundless=True, fill_value=fill)
                return data, "aligned"
            with WarpedVRT(
                src, crs=crs, transform=transform, width=nx, height=ny,
                resampling=RESAMPLING[resampling], src_nodata=info.nodata,
                nodata=fill,
            ) as vrt:
                data = vrt.read(bands)
            return data, f"warped:{resampling}"
    except _PASS_THROUGH:
        raise
    except Exception as err:
        raise read_error(info, err) from err


def read_codes(info: RasterInfo, crs, transform, shape) -> tuple[np.ndarray, str]:
    """Land-cover codes onto a window as int32, -1 = nodata (nearest neighbour)."""
    if not info.is_integer:
        raise InputValueError(
            f"land-cover raster {info.path} has data type {info.dtype}; class codes must be "
            "integers. Convert it to an integer type (e.g. uint8) without rescaling."
        )
    fill = info.nodata if info.nodata is not None else _fill_for(info.dtype)
    raw, how = read_window(info, crs, transform, shape, bands=1, resampling="nearest", fill=fill)
    codes = raw.astype(np.int32)
    mask = raw == fill
    if info.nodata is None:
        # no declared nodata: only the area outside the raster is nodata
        mask = _outside_mask(info, crs, transform, shape) if how == "aligned" else mask
    codes[mask] = -1
    return codes, how


def _fill_for(dtype: str) -> int:
    info = np.iinfo(np.dtype(dtype))
    return int(info.max)  # a value unlikely to be a class code; only used outside the raster


def _outside_mask(info: RasterInfo, crs, transform, shape) -> np.ndarray:
    ny, nx = shape
    col_off = round((transform.c - info.transform.c) / info.transform.a)
    row_off = round((transform.f - info.transform.f) / info.transform.e)
    rows = np.arange(ny) + row_off
    cols = np.arange(nx) + col_off
    inside = ((rows >= 0) & (rows < info.height))[:, None] & ((cols >= 0) & (cols < info.width))[None, :]
    return ~inside


def read_continuous(
    info: RasterInfo, crs, transform, shape, *, bands: int | list[int] = 1,
    resampling: str = "bilinear", scale: float | None = None, offset: float | None = None,
) -> tuple[np.ndarray, str]:
    """Continuous values onto a window as float32 with NaN for nodata, scale/offset applied.

    Scale and offset come from the file's metadata unless given explicitly.
    """
    raw, how = _read_float(info, crs, transform, shape, bands, resampling)
    band_idx = [bands] if isinstance(bands, int) else list(bands)
    s = np.array([scale if scale is not None else info.scales[b - 1] for b in band_idx], np.float64)
    o = np.array([offset if offset is not None else info.offsets[b - 1] for b in band_idx], np.float64)
    if raw.ndim == 3:
        out = raw * s[:, None, None] + o[:, None, None]
    else:
        out = raw * s[0] + o[0]
    return out.astype(np.float32), how


def _read_float(info, crs, transform, shape, bands, resampling):
    """Read as float64 with NaN for nodata and outside; warping done in float so that
    bilinear/average never mix nodata values into valid pixels."""
    ny, nx = shape
    src_nodata = info.nodata
    try:
        with rasterio.open(info.path) as src:
            if is_aligned(info, crs, transform):
                col_off = round((transform.c - info.transform.c) / info.transform.a)
                row_off = round((transform.f - info.transform.f) / info.transform.e)
                raw = src.read(bands, window=Window(col_off, row_off, nx, ny), boundless=True,
                               masked=True, out_dtype="float64")
                out = np.ma.filled(raw, np.nan)
                if src_nodata is not None and not _same_value(src_nodata, src.nodata):
                    out[out == src_nodata] = np.nan  # nodata declared by the project, not the file
                return out, "aligned"
            with WarpedVRT(
                src, crs=crs, transform=transform, width=nx, height=ny,
                resampling=RESAMPLING[resampling], src_nodata=src_nodata,
                nodata=np.nan, dtype="float64",
            ) as vrt:
                raw = vrt.read(bands, masked=True)
            return np.ma.filled(raw.astype("float64"), np.nan), f"warped:{resampling}"
    except _PASS_THROUGH:
        raise
    except Exception as err:
        raise read_error(info, err) from err


def crs_label(crs) -> str:
    """A short name for a CRS in messages: EPSG code, else its name, else a PROJ string."""
    from pyproj import CRS

    try:
        c = CRS.from_user_input(crs)
    except Exception:
        return str(crs)[:80]
    epsg = c.to_epsg()
    if epsg:
        return f"EPSG:{epsg}"
    if c.name and c.name.lower() != "unknown":
        return c.name
    proj4 = c.to_proj4() or c.to_string()
    return proj4 if len(proj4) <= 120 else proj4[:117] + "..."


def _same_value(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def footprint(info: RasterInfo, dst_crs):
    """The raster's bounding box as a polygon in ``dst_crs`` (densified edges)."""
    from rasterio.warp import transform_geom
    from shapely.geometry import box, shape

    geom = box(*info.bounds).segmentize(max((info.bounds[2] - info.bounds[0]) / 64, 1e-9))
    return shape(transform_geom(info.crs, dst_crs, geom.__geo_interface__))


def unique_codes(info: RasterInfo, block_rows: int = 1024) -> list[int]:
    """All distinct values of band 1 (windowed scan, nodata excluded)."""
    seen: set[int] = set()
    try:
        # NUM_THREADS: GDAL decodes the compressed blocks of one window on all cores (GTiff)
        with rasterio.open(info.path, NUM_THREADS="ALL_CPUS") as src:
            for row in range(0, src.height, block_rows):
                h = min(block_rows, src.height - row)
                a = src.read(1, window=Window(0, row, src.width, h))
                if a.dtype == np.uint8:
                    seen.update(_uint8_codes(a))
                elif a.dtype == np.uint16:
                    # bincount is ~20x faster than np.unique on small unsigned codes
                    seen.update(np.flatnonzero(np.bincount(a.ravel())).tolist())
                else:
                    seen.update(np.unique(a).tolist())
    except _PASS_THROUGH:
        raise
    except Exception as err:
        raise read_error(info, err) from err
    if info.nodata is not None:
        seen.discard(int(info.nodata)) if float(info.nodata).is_integer() else None
    return sorted(int(v) for v in seen)


def _uint8_codes(a: np.ndarray) -> set[int]:
    """Distinct values of a uint8 array, exactly.

    Land cover comes in runs along a row: only the first pixel of each run (usually 1-5 % of
    them) can add a value, and a bincount over byte pairs (viewed as uint16: half the elements
    to convert to intp and count; every byte is the low or the high byte of a pair) finds the
    values among them. 2-7x faster than a bincount of all bytes.
    """
    flat = np.ascontiguousarray(a).ravel()
    if flat.size > 1:
        starts = np.empty(flat.size, dtype=bool)
        starts[0] = True
        np.not_equal(flat[1:], flat[:-1], out=starts[1:])
        flat = flat[starts]
    n = flat.size - flat.size % 2
    pairs = np.flatnonzero(np.bincount(flat[:n].view(np.uint16), minlength=1))
    return set((pairs & 0xFF).tolist()) | set((pairs >> 8).tolist()) | set(flat[n:].tolist())


def read_error(info: RasterInfo, err: BaseException) -> InputFileError:
    """The error for a raster whose pixels cannot be read: truncated, or corrupt bytes."""
    path, what = info.path, info.what
    truncated = tiff_truncation(Path(path))
    if truncated:
        return InputFileError(f"{what} {path} is truncated: {truncated}. Copy or download it "
                              "again, or re-export it.")
    return InputFileError(
        f"{what} {path} could not be read ({_short(err)}); the file is probably corrupt "
        "(damaged bytes) or truncated. Copy or download it again, or re-export it."
    )


__all__ = [
    "RasterInfo", "inspect_raster", "is_aligned", "read_window", "read_codes",
    "read_continuous", "footprint", "unique_codes", "from_bounds", "crs_label",
    "sniff_file_type", "tiff_truncation", "read_error",
]
