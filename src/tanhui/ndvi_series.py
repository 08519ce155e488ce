"""An NDVI time series: dates of the files, their scaling, and reduction to 12 months.

Composites (16-day, 8-day) are assigned to the month of their start date and reduced per
month by maximum-value composite (MVC, the usual choice in Chinese CASA work; science.md
§1.8) or by the mean. Scaling is per file: the file's own scale/offset metadata when set;
for integer files without it, the project's ``ndvi_int_scale`` (MODIS stores NDVI × 10000,
i.e. scale 0.0001); float files are taken as already scaled. After scaling, values outside
[-1, 1] are nodata.

Fill values: a file's declared nodata is masked; the project's ``ndvi_nodata`` declares one
for files that lack it. An undeclared fill is refused (:func:`_check_scaled_range`). Rule: take
the pixels whose scaled value lies outside the valid MOD13 range (-0.2 .. 1) and their most
frequent raw value; it is a fill when it makes up at least half of those pixels (a fill is one
repeated value; a wrong scale or lossy-compression noise spreads over many values) and either
covers at least 1 % of the file's valid pixels or is a usual fill (-3000, -9999, -10000,
-32768, 32767) of an integer file, found at least twice. MOD13's -3000 scales to -0.3, inside
[-1, 1], and would otherwise enter CASA as real NDVI. The rule runs on a spatially even sample
of each file (:func:`_value_sample`), not on every pixel: a large tiled file is sampled on a
lattice of whole blocks so that validation decodes a bounded number of pixels per file
(corrupt bytes in a block outside the sample are reported by the tile that reads them).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, InputValueError
from .rasterio_io import RasterInfo, inspect_raster, read_continuous, read_error

_PATTERNS = (
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)"), "ymd"),
    (re.compile(r"(?<!\d)(\d{4})[_.-](\d{3})(?!\d)"), "doy"),
    (re.compile(r"(?<!\d)(\d{4})[_.-](\d{2})(?!\d)"), "ym"),
)


def date_from_name(path: Path) -> dt.date | None:
    """Acquisition/composite start date from a file name (YYYY-MM-DD, YYYYMMDD, YYYY_DDD, YYYY_MM)."""
    name = path.stem
    for pat, kind in _PATTERNS:
        m = pat.search(name)
        if not m:
            continue
        try:
            y = int(m.group(1))
            if kind == "ymd":
                return dt.date(y, int(m.group(2)), int(m.group(3)))
            if kind == "doy":
                doy = int(m.group(2))
                if 1 <= doy <= 366:
                    return dt.date(y, 1, 1) + dt.timedelta(days=doy - 1)
            if kind == "ym" and 1 <= int(m.group(2)) <= 12:
                return dt.date(y, int(m.group(2)), 1)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class NdviFile:
    info: RasterInfo
    date: dt.date
    scale: float
    offset: float


@dataclass(frozen=True)
class NdviSeries:
    files: tuple[NdviFile, ...]
    year: int
    reducer: str

    def month_index(self) -> list[list[int]]:
        """For each month 1..12, the indices of the files whose date falls in it."""
        months: list[list[int]] = [[] for _ in range(12)]
        for i, f in enumerate(self.files):
            months[f.date.month - 1].append(i)
        return months

    def read_months(self, crs, transform, shape) -> np.ndarray:
        """Monthly NDVI on a window, (12, ny, nx) float32, NaN = nodata."""
        out = np.full((12,) + tuple(shape), np.nan, np.float32)
        for m, idx in enumerate(self.month_index()):
            stack = []
            for i in idx:
                f = self.files[i]
                res = "bilinear" if abs(f.info.transform.a) >= abs(transform.a) else "average"
                v, _ = read_continuous(f.info, crs, transform, shape, resampling=res,
                                       scale=f.scale, offset=f.offset)
                v[(v < -1.0) | (v > 1.0)] = np.nan
                stack.append(v)
            if not stack:
                continue
            arr = np.stack(stack)
            with np.errstate(all="ignore"), _quiet_nan():
                out[m] = np.nanmax(arr, axis=0) if self.reducer == "max" else np.nanmean(arr, axis=0)
        return out


class _quiet_nan:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)
        return False


def _file_scale(info: RasterInfo, int_scale: float | None) -> tuple[float, float]:
    s, o = info.scales[0], info.offsets[0]
    if s != 1.0 or o != 0.0:
        return s, o
    if info.is_integer:
        if int_scale is None:
            raise InputValueError(
                f"NDVI file {info.path} is stored as {info.dtype} without a scale factor in its "
                "metadata, so its values are not NDVI in [-1, 1]. Set ndvi_int_scale = 0.0001 in "
                "[flux] (MODIS NDVI x 10000), or write the scale into the file (rio edit-info --scale)."
            )
        return int_scale, 0.0
    return 1.0, 0.0


def open_series(paths, dates, year: int, reducer: str, int_scale: float | None,
                check_values: bool = True, nodata: float | None = None) -> NdviSeries:
    """Check an NDVI series (dates, duplicates, all 12 months of ``year``, scaling, fills).

    ``nodata`` (the project's ``ndvi_nodata``) replaces the files' own nodata value.
    """
    files = []
    for k, p in enumerate(paths):
        p = Path(p)
        info = inspect_raster(p, what="NDVI file")
        if nodata is not None:
            info = dataclasses.replace(info, nodata=float(nodata))
        if dates:
            try:
                d = dt.date.fromisoformat(dates[k])
            except ValueError as err:
                raise ConfigError(f"NDVI date '{dates[k]}' for {p} is not YYYY-MM-DD.") from err
        else:
            d = date_from_name(p)
            if d is None:
                raise ConfigError(
                    f"NDVI file {p}: no date found in its name (YYYY-MM-DD, YYYYMMDD, YYYY_DDD or "
                    "YYYY_MM). Rename it or give [flux] dates = [...]."
                )
        s, o = _file_scale(info, int_scale)
        files.append(NdviFile(info, d, s, o))
    seen: dict[dt.date, Path] = {}
    for f in files:
        if f.date in seen:
            raise InputValueError(
                f"NDVI files {seen[f.date]} and {f.info.path} have the same date {f.date}. "
                "Remove the duplicate from the series."
            )
        seen[f.date] = f.info.path
    files = [f for f in files if f.date.year == year]
    if not files:
        raise InputValueError(
            f"no NDVI file of the series falls in year {year}. Check [flux] year and the file dates."
        )
    series = NdviSeries(tuple(sorted(files, key=lambda f: f.date)), year, reducer)
    missing = [m + 1 for m, idx in enumerate(series.month_index()) if not idx]
    if missing:
        raise InputValueError(
            f"the NDVI series for {year} has no file for month(s) {missing} "
            f"(first file {series.files[0].info.path}). CASA needs all 12 months; add the missing "
            "composites."
        )
    if check_values:
        # the samples are read on all cores (GDAL decodes without the GIL); the checks run in
        # file order, so the first bad file is the one reported, as in a sequential loop
        from concurrent.futures import ThreadPoolExecutor

        workers = max(1, min(len(series.files), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            samples = [pool.submit(_read_sample, f) for f in series.files]
            try:
                for f, sample in zip(series.files, samples):
                    _check_scaled_range(f, sample.result())
            finally:
                for sample in samples:
                    sample.cancel()
    return series


#: raw fill values of common NDVI products (MOD13 -3000; -9999/-10000; int16 extremes)
KNOWN_INT_FILLS = (-3000.0, -9999.0, -10000.0, -32768.0, 32767.0)
#: the valid range of MOD13 NDVI after scaling (MOD13 user guide: -2000..10000 x 0.0001)
VALID_NDVI = (-0.2, 1.0)


#: pixels a sample may decode: 64 blocks of 512 x 512, 0.05-0.1 s per int16 DEFLATE file
SAMPLE_DECODE_PIXELS = 1 << 24
#: pixels kept from the decoded blocks of a large file (the small-file sample keeps 256 x 256)
SAMPLE_KEEP_PIXELS = 1 << 20


def _value_sample(src) -> np.ndarray:
    """Valid raw values of band 1 on a spatially even sample (float64, masked pixels dropped).

    A nearest-neighbour read decimated to at most 256 x 256 is enough to see the value range
    and repeats, and it is what small files, striped files and files with overviews get. On a
    large tiled file without overviews that read decodes every compressed block (256 sampled
    rows and columns hit all of them: 0.8 s for a 14336 x 14336 int16 file at 30 m, 9 s for a
    year of monthly NDVI), so such a file is sampled instead on an even lattice of whole blocks
    (at most :data:`SAMPLE_DECODE_PIXELS` decoded), keeping every ``step``-th pixel of each.
    """
    from rasterio.windows import Window

    H, W = src.height, src.width
    h, w = max(1, min(H, 256)), max(1, min(W, 256))
    bh, bw = src.block_shapes[0]
    # blocks a decimated read touches: GDAL samples the source row/column under each
    # output pixel centre
    rows = np.unique(((np.arange(h) + 0.5) * (H / h)).astype(np.int64) // bh).size
    cols = np.unique(((np.arange(w) + 0.5) * (W / w)).astype(np.int64) // bw).size
    if src.overviews(1) or rows * cols * bh * bw <= SAMPLE_DECODE_PIXELS:
        a = src.read(1, out_shape=(h, w), masked=True).astype("float64")
        return np.ma.compressed(a)
    nby, nbx = -(-H // bh), -(-W // bw)
    n_blocks = max(1, SAMPLE_DECODE_PIXELS // (bh * bw))
    ky = min(nby, max(1, math.isqrt(n_blocks)))
    kx = min(nbx, max(1, n_blocks // ky))
    ky = min(nby, max(1, n_blocks // kx))
    block_rows = np.unique(((np.arange(ky) + 0.5) * (nby / ky)).astype(np.int64))
    block_cols = np.unique(((np.arange(kx) + 0.5) * (nbx / kx)).astype(np.int64))
    decoded = block_rows.size * block_cols.size * bh * bw
    step = max(1, math.ceil(math.sqrt(decoded / SAMPLE_KEEP_PIXELS)))
    pieces = []
    for by in block_rows.tolist():
        for bx in block_cols.tolist():
            win = Window(bx * bw, by * bh, min(bw, W - bx * bw), min(bh, H - by * bh))
            a = src.read(1, window=win, masked=True)[::step, ::step]
            pieces.append(np.ma.compressed(a).astype("float64"))
    return np.concatenate(pieces)


def _read_sample(f: NdviFile) -> np.ndarray:
    """:func:`_value_sample` of an NDVI file; unreadable pixels raise the file's read error."""
    import rasterio

    try:
        with rasterio.open(f.info.path) as src:
            return _value_sample(src)
    except Exception as err:
        raise read_error(f.info, err) from err


def _check_scaled_range(f: NdviFile, raw: np.ndarray | None = None) -> None:
    """Catch unscaled NDVI (x10000 values in a float file or a wrong scale) and undeclared fills.

    ``raw``: the file's :func:`_read_sample`, when already read.
    """
    if raw is None:
        raw = _read_sample(f)
    if f.info.nodata is not None:
        raw = raw[~((raw == f.info.nodata) | (np.isnan(raw) & np.isnan(f.info.nodata)))]
    raw = raw[np.isfinite(raw)]
    if not raw.size:
        return
    v = raw * f.scale + f.offset
    out = raw[(v < VALID_NDVI[0] - 1e-9) | (v > VALID_NDVI[1] + 1e-9)]
    if out.size:
        values, counts = np.unique(out, return_counts=True)
        k = int(np.argmax(counts))
        fill, n = float(values[k]), int(counts[k])
        # a fill is one repeated value that makes up most of the out-of-range pixels (a wrong
        # scale or lossy-compression noise spreads over many values)
        mostly_one = n >= 0.5 * out.size
        large = n >= 0.01 * raw.size
        known = f.info.is_integer and fill in KNOWN_INT_FILLS and n >= 2
        if mostly_one and (large or known):
            share = n / raw.size
            pct = f"{share:.0%}" if share >= 0.01 else f"{share:.2%}"
            raise InputValueError(
                f"NDVI file {f.info.path}: {pct} of its valid pixels are exactly {fill:g} "
                f"({fill * f.scale + f.offset:.4g} after scaling), outside the valid NDVI range "
                f"{VALID_NDVI[0]:g}..{VALID_NDVI[1]:g}; this is an undeclared fill value that "
                f"would enter CASA as real NDVI. Declare it: set ndvi_nodata = {fill:g} in [flux], or "
                f"'rio edit-info --nodata {fill:g}' on the NDVI files."
            )
    if np.max(np.abs(v)) > 1.5:
        raise InputValueError(
            f"NDVI file {f.info.path} has values up to {np.max(np.abs(v)):.4g} after scaling "
            f"(scale {f.scale:g}); NDVI must lie in [-1, 1]. Set the right scale (ndvi_int_scale, "
            "or the file's scale metadata) or check the fill value."
        )
