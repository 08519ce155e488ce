"""Land-cover legends and per-class carbon-density tables.

Two kinds of reviewed tables live in the shipped ``landcover/`` folder:

* ``landcover/classes.csv`` -- the canonical tanhui classes 1..14 (0 = nodata),
  science.md §7.1;
* ``landcover/legends/<legend_id>.csv`` -- one mapping per land-cover product
  (source code -> canonical class id), science.md §7.2-7.8;
* ``landcover/params/carbon_density_horqin.csv`` -- provisional pool densities per
  canonical class (t C/ha), science.md §3.5.

This module reads and validates them and turns them into dense numpy look-up
tables (LUTs) for the numba kernels: no dict ever reaches a kernel. Every error
is a :class:`~tanhui.errors.LegendError` or
:class:`~tanhui.errors.ParameterTableError` that names the file (and the column
or codes) and says how to fix it.

Conventions (docs/ARCHITECTURE.md): canonical ids 1..14, 0 = nodata; in a legend
LUT, -1 = code missing from the legend. Densities are t C/ha (= Mg C/ha).

References
----------
science.md §3.1, §3.5, §7, §11.1 (InVEST carbon-pools table: ``lucode``,
``c_above``, ``c_below``, ``c_soil``, ``c_dead`` in Mg C/ha), §12 item 7
(fail fast on incomplete legends, as InVEST does).
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

from tanhui._data import data_dir
from tanhui.errors import LegendError, ParameterTableError

__all__ = [
    "NODATA_CLASS",
    "UNMAPPED",
    "DensityTable",
    "Legend",
    "density_lut",
    "load_classes",
]

NODATA_CLASS = 0
"""Canonical class id of nodata pixels."""
UNMAPPED = -1
"""Value of :meth:`Legend.lut` for source codes that are not in the legend."""

_CLASS_COLUMNS = ("class_id", "name", "label_zh", "label_en", "colour", "vegetated", "notes")
_LEGEND_REQUIRED = ("code", "class_id")
_LEGEND_OPTIONAL = ("source_name", "note", "status")
_MAX_LUT_LENGTH = 1 << 24  # 16 M entries; larger code spaces must be reclassified first
_MAX_LISTED = 20  # codes/rows listed in one error message
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_DIGITS = re.compile(r"^\d+$")
_LEADING_DIGITS = re.compile(r"^\d+")
_POOL_COLUMN = re.compile(r"^c_(above|below|soil|dead)(?:_(.*))?$")


# --------------------------------------------------------------------------- helpers


def _listing(items: Iterable[object]) -> str:
    """``[a, b, c]`` with at most ``_MAX_LISTED`` items shown."""
    items = list(items)
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    more = f", ... ({len(items)} in total)" if len(items) > _MAX_LISTED else ""
    return f"[{shown}{more}]"


def _read_csv_text(path: Path, error: type[Exception], what: str) -> tuple[pd.DataFrame, str]:
    """Read a CSV as strings; return the frame and the file's sha256.

    Accepts UTF-8 (with or without BOM) and GB18030, since Excel on Chinese
    Windows saves CSV files in GBK by default. Values and headers are stripped;
    completely empty rows (trailing Excel rows) are dropped.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise error(f"{what} {path} cannot be read: {err}. "
                    "Check the path and permissions.") from err
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise error(f"{what} {path} is neither UTF-8 nor GB18030 text. Save it as UTF-8 CSV.")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise error(f"{what} {path} is not a readable CSV table: {err}. "
                    "Check the delimiter (comma) and the quoting.") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda col: col.str.strip())
    frame = frame[~(frame == "").all(axis=1)].reset_index(drop=True)
    if frame.empty:
        raise error(f"{what} {path} has a header but no rows. Add at least one row.")
    return frame, hashlib.sha256(raw).hexdigest()


def _csv_stems(folder: Path, keep: Callable[[Path], bool] = lambda p: True) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.csv") if p.is_file() and keep(p))


def _resolve(
    name_or_path: str | Path,
    folder: Path,
    what: str,
    names: list[str],
    error: type[Exception],
) -> Path:
    """Turn a shipped table name or a CSV path into an existing file path."""
    text = str(name_or_path)
    candidate = Path(name_or_path)
    is_path = (isinstance(name_or_path, Path) or candidate.suffix.lower() == ".csv"
               or len(candidate.parts) > 1)
    if is_path:
        if not candidate.is_file():
            raise error(f"{what} file {candidate} does not exist. Give an existing CSV file "
                        f"or one of the shipped names {names}.")
        return candidate.resolve()
    shipped = folder / f"{text}.csv"
    if text and shipped.is_file():
        return shipped
    raise error(f"unknown {what} '{text}': expected one of {names} (CSV files in {folder}) "
                "or the path to a CSV file.")


def _parse_int_column(
    frame: pd.DataFrame, column: str, path: Path, what: str, error: type[Exception],
) -> np.ndarray:
    """Non-negative integers of ``column``; the error lists the offending rows (1-based)."""
    values = frame[column]
    bad = [f"row {i + 2}: '{v}'" for i, v in values.items() if not _DIGITS.match(v)]
    if bad:
        raise error(f"{what} {path}, column '{column}': values that are not non-negative "
                    f"integers {_listing(bad)}. Write whole numbers (no decimals, no sign).")
    return values.astype(np.int64).to_numpy()


def _as_unique_ints(codes: object, normalise: Callable[[object], int],
                    error: type[Exception] = LegendError) -> list[int]:
    """Sorted distinct integer codes from an array, a scalar or any iterable.

    Masked array entries and NaN are ignored (they are nodata, not codes);
    strings go through ``normalise``.
    """
    if isinstance(codes, np.ma.MaskedArray):
        codes = codes.compressed()
    if isinstance(codes, (str, bytes)) or np.isscalar(codes):
        codes = [codes]
    if hasattr(codes, "__array__"):  # numpy, pandas, xarray
        arr = np.asarray(codes).ravel()
    else:
        arr = np.asarray(list(codes)).ravel()  # type: ignore[call-overload]
    if arr.dtype.kind in "iub":
        return [int(c) for c in np.unique(arr)]
    if arr.dtype.kind == "f":
        arr = np.unique(arr[~np.isnan(arr)])
        fractional = arr[arr != np.round(arr)]
        if fractional.size:
            raise error(f"values {_listing(fractional.tolist())} are not integer class codes. "
                        "Land-cover rasters must hold integer codes; resample them only with "
                        "the nearest-neighbour or mode method.")
        return [int(c) for c in arr]
    return sorted({normalise(c) for c in arr.tolist()})


# --------------------------------------------------------------------------- classes


def _classes_path() -> Path:
    return data_dir("landcover") / "classes.csv"


@lru_cache(maxsize=4)
def _load_classes_cached(path_str: str) -> pd.DataFrame:
    path = Path(path_str)
    frame, _ = _read_csv_text(path, LegendError, "canonical class table")
    missing = [c for c in _CLASS_COLUMNS if c not in frame.columns]
    if missing:
        raise LegendError(f"canonical class table {path} is missing column(s) {missing}; "
                          f"expected {list(_CLASS_COLUMNS)}. Restore the shipped classes.csv.")
    ids = _parse_int_column(frame, "class_id", path, "canonical class table", LegendError)
    if len(set(ids.tolist())) != len(ids) or NODATA_CLASS in ids:
        raise LegendError(f"canonical class table {path}: class ids {sorted(ids.tolist())} must be "
                          "unique and must not use 0 (nodata). Restore the shipped classes.csv.")
    bad_colour = frame.loc[~frame["colour"].str.match(_HEX_COLOUR), "colour"].tolist()
    flags = frame["vegetated"].str.lower()
    if bad_colour or not flags.isin(["true", "false"]).all():
        raise LegendError(f"canonical class table {path}: colours must be '#rrggbb' (found "
                          f"{bad_colour}) and 'vegetated' true/false. Fix the column values.")
    frame = frame.assign(class_id=ids, vegetated=flags == "true")
    return frame.set_index("class_id").sort_index()


def load_classes() -> pd.DataFrame:
    """Canonical land-cover classes (science.md §7.1), indexed by ``class_id``.

    Returns
    -------
    pandas.DataFrame
        Index ``class_id`` (int, 1..14); columns ``name``, ``label_zh``,
        ``label_en``, ``colour`` ('#rrggbb', for QGIS legends), ``vegetated``
        (bool) and ``notes``. Class 0 (nodata) is not a row. A fresh copy is
        returned on every call.

    Raises
    ------
    LegendError
        If the shipped ``classes.csv`` is malformed.

    Examples
    --------
    >>> load_classes().loc[11, "name"]
    'sandy_land'
    """
    return _load_classes_cached(str(_classes_path())).copy()


def _valid_class_ids() -> set[int]:
    return set(load_classes().index.tolist())


# --------------------------------------------------------------------------- legends


def _legends_dir() -> Path:
    return data_dir("landcover") / "legends"


def _code_width(raw_codes: pd.Series, path: Path) -> int | None:
    """Width of zero-padded codes ('0101' -> 4), or None for plain integer codes."""
    padded = raw_codes[(raw_codes.str.len() > 1) & raw_codes.str.startswith("0")]
    if padded.empty:
        return None
    widths = sorted(set(raw_codes.str.len().tolist()))
    if len(widths) != 1:
        raise LegendError(f"land-cover legend {path}, column 'code': zero-padded codes such as "
                          f"'{padded.iloc[0]}' need every code to have the same width; found "
                          f"widths {widths}. Pad all codes to one width (e.g. '0101', '1205').")
    return widths[0]


@dataclass(frozen=True)
class Legend:
    """Mapping of a land-cover product's codes to canonical tanhui classes.

    Parameters
    ----------
    name : str
        Legend id (file stem), e.g. ``'clcd'``.
    path : pathlib.Path
        The legend CSV (columns ``code, source_name, class_id, note, status``).
    codes : dict[int, int]
        Source code -> canonical class id (0 = nodata).
    code_width : int or None
        Width of zero-padded string codes (4 for 三调 '0101'), None for plain
        integer codes. Integer raster values never carry the padding: the raster
        value 101 is the code '0101'.
    source_names : dict[int, str]
        Source class name per code (for reports); not part of equality.

    References
    ----------
    science.md §7 (legend tables and status tags), §12 item 7 (fail fast).
    """

    name: str
    path: Path
    codes: dict[int, int] = field(hash=False, repr=False)
    code_width: int | None = None
    source_names: dict[int, str] = field(default_factory=dict, compare=False, hash=False,
                                         repr=False)

    # ----------------------------------------------------------------- loading
    @classmethod
    def load(cls, name_or_path: str | Path) -> Legend:
        """Load and validate a legend by shipped name or CSV path.

        Parameters
        ----------
        name_or_path : str or pathlib.Path
            A name from :meth:`available` (e.g. ``'esa_worldcover'``), or a path to a
            CSV file (anything ending in ``.csv`` or containing a directory part).

        Returns
        -------
        Legend

        Raises
        ------
        LegendError
            Unknown name (the message lists the shipped legends), missing file,
            missing ``code``/``class_id`` columns, non-integer or duplicate codes,
            or class ids outside the canonical classes (0..14). The message names
            the file.

        Examples
        --------
        >>> Legend.load("clcd").codes[2]
        4
        """
        path = _resolve(name_or_path, _legends_dir(), "land-cover legend", cls.available(),
                        LegendError)
        frame, _ = _read_csv_text(path, LegendError, "land-cover legend")
        missing = [c for c in _LEGEND_REQUIRED if c not in frame.columns]
        if missing:
            raise LegendError(f"land-cover legend {path} is missing column(s) {missing}; found "
                              f"{list(frame.columns)}. A legend needs the columns "
                              f"{list(_LEGEND_REQUIRED + _LEGEND_OPTIONAL)}.")
        width = _code_width(frame["code"], path)
        codes = _parse_int_column(frame, "code", path, "land-cover legend", LegendError)
        class_ids = _parse_int_column(frame, "class_id", path, "land-cover legend", LegendError)
        cls._check_unique(codes, path, width)
        cls._check_class_ids(codes, class_ids, path, width)
        names = frame["source_name"] if "source_name" in frame.columns else [""] * len(codes)
        return cls(
            name=path.stem,
            path=path,
            codes={int(c): int(k) for c, k in zip(codes, class_ids, strict=True)},
            code_width=width,
            source_names={int(c): str(n) for c, n in zip(codes, names, strict=True)},
        )

    @staticmethod
    def _check_unique(codes: np.ndarray, path: Path, width: int | None) -> None:
        uniq, counts = np.unique(codes, return_counts=True)
        dups = uniq[counts > 1]
        if dups.size:
            shown = [str(c).zfill(width or 0) for c in dups.tolist()]
            raise LegendError(f"land-cover legend {path}, column 'code': duplicate codes "
                              f"{_listing(shown)}. Keep one row per code.")

    @staticmethod
    def _check_class_ids(codes: np.ndarray, class_ids: np.ndarray, path: Path,
                         width: int | None) -> None:
        valid = _valid_class_ids() | {NODATA_CLASS}
        bad = [f"code {str(c).zfill(width or 0)} -> {k}"
               for c, k in zip(codes.tolist(), class_ids.tolist(), strict=True) if k not in valid]
        if bad:
            raise LegendError(f"land-cover legend {path}, column 'class_id': class ids outside "
                              f"the canonical classes {_listing(bad)}; expected 0 (nodata) or "
                              f"{min(valid - {0})}..{max(valid)} (landcover/classes.csv). "
                              "Map each code to a canonical class.")

    @staticmethod
    def available() -> list[str]:
        """Names of the shipped legends (CSV stems in ``landcover/legends/``).

        Examples
        --------
        >>> "cnlucc" in Legend.available()
        True
        """
        return _csv_stems(_legends_dir())

    # ----------------------------------------------------------------- codes
    def normalise_code(self, value: object) -> int:
        """Integer code of one raster or vector value.

        Integers pass unchanged (the raster value 101 is the 三调 code '0101').
        Strings are cut to their leading digits; for zero-padded legends
        (``code_width`` w, e.g. 4 for 三调) the digits are then cut to the first w
        characters ('1104A' -> 1104, '0301K' -> 301, '110401' -> 1104), and a
        first-level code of at most w/2 digits becomes the group code with zeros
        appended ('09' -> 0900, '05H1' -> 0500, '08H2A' -> 0800; tanhui
        convention, see ``landcover/legends/README.md``).

        Raises
        ------
        LegendError
            If the value holds no integer code.

        Examples
        --------
        >>> legend = Legend.load("china_land_survey_3")
        >>> legend.normalise_code("1104A"), legend.normalise_code(101)
        (1104, 101)
        """
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            return int(value)
        if isinstance(value, (float, np.floating)) and np.isfinite(value) and value == int(value):
            return int(value)
        if isinstance(value, str):
            code = self._code_from_text(value.strip())
            if code is not None:
                return code
        raise LegendError(f"land-cover value {value!r} is not a class code of legend '{self.name}' "
                          f"({self.path}): expected an integer code"
                          + (f" or a {self.code_width}-digit string such as '0101'"
                             if self.code_width else "")
                          + ". Fix or drop the value (empty values are not codes).")

    def _code_from_text(self, text: str) -> int | None:
        match = _LEADING_DIGITS.match(text)
        if match is None:
            return None
        digits = match.group()
        width = self.code_width
        if width is None:
            # plain legends: accept '61' and spreadsheet floats such as '61.0'
            try:
                number = float(text)
            except ValueError:
                return int(digits) if digits == text else None
            return int(number) if number == int(number) and number >= 0 else None
        if len(digits) <= width // 2:
            return int(digits) * 10 ** (width - width // 2)
        return int(digits[:width])

    def normalise_codes(self, values: Iterable[object]) -> np.ndarray:
        """Vectorised :meth:`normalise_code` (e.g. a 三调 ``DLBM`` column).

        Returns
        -------
        numpy.ndarray of int64, same length as ``values``.

        Examples
        --------
        >>> Legend.load("china_land_survey_3").normalise_codes(["0101", "1104A", "09"]).tolist()
        [101, 1104, 900]
        """
        series = pd.Series(list(values), dtype=object)
        mapping = {v: self.normalise_code(v) for v in pd.unique(series)}
        return series.map(mapping).to_numpy(dtype=np.int64)

    def code_str(self, code: int) -> str:
        """Source code as written in the legend ('0101' for 三调 code 101)."""
        return str(int(code)).zfill(self.code_width or 0)

    @property
    def nodata_codes(self) -> list[int]:
        """Source codes mapped to nodata (class 0), sorted."""
        return sorted(c for c, k in self.codes.items() if k == NODATA_CLASS)

    # ----------------------------------------------------------------- LUT
    def lut(self, max_code: int | None = None) -> np.ndarray:
        """Dense look-up table source code -> canonical class id.

        Parameters
        ----------
        max_code : int, optional
            Largest code the caller will look up (e.g. 255 for uint8 rasters).
            The LUT covers ``0..max(max_code, largest legend code)``.

        Returns
        -------
        numpy.ndarray of int16
            ``lut[code]`` = canonical id (1..14), 0 for nodata codes, -1 for
            codes not in the legend.

        Raises
        ------
        LegendError
            If ``max_code`` is negative or the LUT would exceed 16 M entries.

        Examples
        --------
        >>> Legend.load("modis_igbp_mcd12c1").lut()[[0, 10, 17, 255]].tolist()
        [10, 7, -1, 0]
        """
        largest = max(self.codes) if self.codes else 0
        if max_code is not None and max_code < 0:
            raise LegendError(f"max_code {max_code} for legend '{self.name}' is negative; "
                              "expected the largest code value of the raster (>= 0).")
        length = max(largest, max_code if max_code is not None else 0) + 1
        if length > _MAX_LUT_LENGTH:
            raise LegendError(f"legend '{self.name}' ({self.path}): a dense LUT up to code "
                              f"{length - 1} is too large (limit {_MAX_LUT_LENGTH - 1}). "
                              "Reclassify the raster to small integer codes first.")
        lut = np.full(length, UNMAPPED, dtype=np.int16)
        keys = np.fromiter(self.codes.keys(), dtype=np.int64, count=len(self.codes))
        ids = np.fromiter(self.codes.values(), dtype=np.int16, count=len(self.codes))
        lut[keys] = ids
        return lut

    # ----------------------------------------------------------------- checks
    def unmapped(self, codes: Iterable[object]) -> list[int]:
        """Codes (any iterable or array of ints; strings are normalised) missing from the legend.

        Masked entries and NaN are ignored. Returns a sorted list of ints.

        Examples
        --------
        >>> Legend.load("modis_igbp_mcd12q1").unmapped([0, 10, 17, 250])
        [0, 250]
        """
        present = _as_unique_ints(codes, self.normalise_code)
        return [c for c in present if c not in self.codes]

    def check_codes(self, codes: Iterable[object], raster_path: str | Path) -> None:
        """Fail before any computation if the raster has codes missing from the legend.

        Parameters
        ----------
        codes : iterable of int or array
            Codes present in the raster (e.g. ``np.unique`` of a tile).
        raster_path : str or pathlib.Path
            Named in the message.

        Raises
        ------
        LegendError
            Listing the missing codes, the raster and the legend file (the
            InVEST behaviour, science.md §3.1 and §12 item 7).
        """
        missing = self.unmapped(codes)
        if missing:
            raise LegendError(
                f"land-cover raster {raster_path} has class codes {_listing(missing)} missing "
                f"from legend '{self.name}' ({self.path}). Add rows for them to the legend CSV, "
                "or mark them as nodata (class_id 0)."
            )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description for the run manifest (codes, file hash)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest()
            if self.path.is_file() else None,
            "code_width": self.code_width,
            "n_codes": len(self.codes),
            "nodata_codes": [self.code_str(c) for c in self.nodata_codes],
            "codes": {self.code_str(c): k for c, k in sorted(self.codes.items())},
        }


# --------------------------------------------------------------------------- densities


def _params_dir() -> Path:
    return data_dir("landcover") / "params"


def _has_pool_header(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
            header = next(csv.reader(handle), [])
    except OSError:
        return False
    return any(_POOL_COLUMN.match(h.strip().lower()) for h in header)


def _unit_error(path: Path, column: str, pool: str) -> ParameterTableError:
    suffix = column.split("_", 2)[2] if column.count("_") >= 2 else ""
    accepted = (f"c_{pool}_tC_ha (t C/ha), c_{pool}_min_tC_ha / c_{pool}_max_tC_ha (Monte Carlo "
                f"range) or InVEST's C_{pool} (Mg C/ha = t C/ha)")
    if "pixel" in suffix.lower() or re.search(r"(^|_)px($|_)", suffix.lower()):
        return ParameterTableError(
            f"density table {path}, column '{column}': per-pixel units are not accepted; give "
            f"densities in t C/ha. tanhui multiplies by the true pixel area itself; rename the "
            f"column to c_{pool}_tC_ha and divide the values by the pixel area in ha.")
    return ParameterTableError(
        f"density table {path}, column '{column}': unit suffix '{suffix}' is not accepted; "
        f"expected {accepted}. Convert to t C/ha (1 kg C/m² = 10 t C/ha; 1 g C/m² = 0.01 t C/ha) "
        f"and rename the column.")


@dataclass(frozen=True)
class _PoolColumns:
    mode: dict[str, str]  # pool -> source column
    low: dict[str, str]
    high: dict[str, str]
    invest: bool


def _find_pool_columns(columns: list[str], path: Path) -> _PoolColumns:
    mode: dict[str, str] = {}
    low: dict[str, str] = {}
    high: dict[str, str] = {}
    invest = False
    for column in columns:
        match = _POOL_COLUMN.match(column.lower())
        if match is None:
            continue
        pool, suffix = match.group(1), match.group(2)
        target = {None: mode, "tc_ha": mode, "min_tc_ha": low, "max_tc_ha": high}.get(suffix)
        if target is None:
            raise _unit_error(path, column, pool)
        if pool in target:
            raise ParameterTableError(
                f"density table {path}: columns '{target[pool]}' and '{column}' both give pool "
                f"'{pool}'. Keep one of them.")
        target[pool] = column
        invest = invest or suffix is None
    missing = [p for p in DensityTable.POOLS if p not in mode]
    if missing:
        raise ParameterTableError(
            f"density table {path} is missing pool column(s) "
            f"{[f'c_{p}_tC_ha' for p in missing]}: all four pools {list(DensityTable.POOLS)} are "
            "required, named c_<pool>_tC_ha (t C/ha) or InVEST's C_<pool> (Mg C/ha = t C/ha). "
            "Add the column (0 for a pool that is not counted).")
    for pool in DensityTable.POOLS:
        if (pool in low) != (pool in high):
            given = low.get(pool) or high.get(pool)
            raise ParameterTableError(
                f"density table {path}, column '{given}': a Monte Carlo range needs both "
                f"c_{pool}_min_tC_ha and c_{pool}_max_tC_ha. Add the other bound or drop it.")
    return _PoolColumns(mode, low, high, invest)


def _numeric_column(frame: pd.DataFrame, column: str, keys: np.ndarray, key: str,
                    path: Path) -> np.ndarray:
    text = frame[column]
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = [f"{key} {k} ('{t}')" for k, t, v in zip(keys, text, values, strict=True)
           if not np.isfinite(v)]
    if bad:
        raise ParameterTableError(
            f"density table {path}, column '{column}': non-numeric or empty values at "
            f"{_listing(bad)}. Densities must be numbers in t C/ha (0 for an absent pool).")
    negative = [f"{key} {k} ({v:g})" for k, v in zip(keys, values, strict=True) if v < 0]
    if negative:
        raise ParameterTableError(
            f"density table {path}, column '{column}': negative densities at {_listing(negative)}. "
            "Carbon densities are >= 0 t C/ha; fix the rows.")
    return values


def _find_key(columns: list[str], path: Path) -> tuple[Literal["class_id", "lucode"], str]:
    found = [(c.lower(), c) for c in columns if c.lower() in ("class_id", "lucode")]
    if len(found) != 1:
        what = "both 'class_id' and 'lucode'" if found else "no key column"
        raise ParameterTableError(
            f"density table {path} has {what}; expected exactly one of 'class_id' (canonical "
            "tanhui classes 1..14, used with a legend) or 'lucode' (raw raster codes, "
            "InVEST-compatible). Keep one key column.")
    lower, original = found[0]
    return ("class_id" if lower == "class_id" else "lucode"), original


@dataclass(frozen=True)
class DensityTable:
    """Carbon-pool densities per class (t C/ha), ours or InVEST's table format.

    Parameters
    ----------
    name : str
        Table id (file stem), e.g. ``'carbon_density_horqin'``.
    path : pathlib.Path
        The CSV file.
    key : {'class_id', 'lucode'}
        ``'class_id'``: rows are canonical classes (the table is used with a
        :class:`Legend`); ``'lucode'``: rows are raw raster codes (an
        InVEST-compatible table, used without a legend).
    table : pandas.DataFrame
        Indexed by ``key``; float64 columns ``c_above_tC_ha``, ``c_below_tC_ha``,
        ``c_soil_tC_ha``, ``c_dead_tC_ha`` and, if the file has Monte Carlo ranges,
        ``c_<pool>_min_tC_ha`` / ``c_<pool>_max_tC_ha``.
    column_names : {'tanhui', 'invest'}
        ``'invest'`` if pool columns were InVEST's ``C_above`` ... (Mg C/ha,
        identical to t C/ha).
    sha256 : str
        Hash of the file's bytes (for the manifest).

    References
    ----------
    science.md §3.1 (pool arithmetic), §3.5 (provisional Horqin table), §4
    (Monte Carlo ranges), §11.1 (InVEST table columns, Mg C/ha).
    """

    name: str
    path: Path
    key: Literal["class_id", "lucode"]
    table: pd.DataFrame = field(compare=False, hash=False, repr=False)
    column_names: Literal["tanhui", "invest"] = "tanhui"
    sha256: str = field(default="", repr=False)

    POOLS: ClassVar[tuple[str, ...]] = ("above", "below", "soil", "dead")

    @classmethod
    def load(cls, name_or_path: str | Path) -> DensityTable:
        """Load and validate a density table by shipped name or CSV path.

        Column names are matched case-insensitively. Accepted pool columns are
        ``c_<pool>_tC_ha`` (with optional ``c_<pool>_min_tC_ha`` and
        ``c_<pool>_max_tC_ha``) or InVEST's ``C_<pool>``: InVEST documents them as
        Mg C/ha, which equals t C/ha, so they are read unchanged. Other columns
        (names, sources, notes) are ignored.

        Raises
        ------
        ParameterTableError
            Naming the file and column for: unknown name, no or two key columns,
            a missing pool column, a unit suffix other than ``_tC_ha`` (per-pixel
            units get their own message), non-numeric or negative values (rows
            named), duplicate keys, class ids outside 1..14, or min > mode > max.

        Examples
        --------
        >>> table = DensityTable.load("carbon_density_horqin")
        >>> float(table.table.loc[7, "c_soil_tC_ha"])
        68.0
        """
        path = _resolve(name_or_path, _params_dir(), "density table", cls.available(),
                        ParameterTableError)
        frame, sha = _read_csv_text(path, ParameterTableError, "density table")
        key, key_column = _find_key(list(frame.columns), path)
        pools = _find_pool_columns(list(frame.columns), path)
        keys = _parse_int_column(frame, key_column, path, "density table", ParameterTableError)
        cls._check_keys_valid(keys, key, key_column, path)
        data: dict[str, np.ndarray] = {}
        for pool in cls.POOLS:
            data[f"c_{pool}_tC_ha"] = _numeric_column(frame, pools.mode[pool], keys, key, path)
        for pool in cls.POOLS:
            if pool in pools.low:
                low = _numeric_column(frame, pools.low[pool], keys, key, path)
                high = _numeric_column(frame, pools.high[pool], keys, key, path)
                cls._check_range(low, data[f"c_{pool}_tC_ha"], high, keys, key, pool, path)
                data[f"c_{pool}_min_tC_ha"] = low
                data[f"c_{pool}_max_tC_ha"] = high
        table = pd.DataFrame(data, index=pd.Index(keys, name=key, dtype=np.int64)).sort_index()
        return cls(name=path.stem, path=path, key=key, table=table,
                   column_names="invest" if pools.invest else "tanhui", sha256=sha)

    @staticmethod
    def _check_keys_valid(keys: np.ndarray, key: str, column: str, path: Path) -> None:
        uniq, counts = np.unique(keys, return_counts=True)
        if (counts > 1).any():
            raise ParameterTableError(f"density table {path}, column '{column}': duplicate keys "
                                      f"{_listing(uniq[counts > 1].tolist())}. Keep one row "
                                      "per key.")
        if key == "class_id":
            valid = _valid_class_ids()
            bad = sorted(set(keys.tolist()) - valid)
            if bad:
                raise ParameterTableError(
                    f"density table {path}, column '{column}': class ids {_listing(bad)} are not "
                    f"canonical classes {min(valid)}..{max(valid)} (class 0 is nodata and has no "
                    "densities). Use canonical ids, or key the table by 'lucode' for raw codes.")

    @staticmethod
    def _check_range(low: np.ndarray, mode: np.ndarray, high: np.ndarray, keys: np.ndarray,
                     key: str, pool: str, path: Path) -> None:
        bad = [f"{key} {k} ({lo:g} / {m:g} / {hi:g})"
               for k, lo, m, hi in zip(keys, low, mode, high, strict=True)
               if not lo <= m <= hi]
        if bad:
            raise ParameterTableError(
                f"density table {path}, columns 'c_{pool}_min_tC_ha' / 'c_{pool}_tC_ha' / "
                f"'c_{pool}_max_tC_ha': min <= mode <= max does not hold at {_listing(bad)}. "
                "Fix the range (min = max = mode when no range is known).")

    @staticmethod
    def available() -> list[str]:
        """Names of the shipped density tables (CSVs in ``landcover/params/`` with pool columns)."""
        return _csv_stems(_params_dir(), _has_pool_header)

    # ----------------------------------------------------------------- views
    @property
    def has_ranges(self) -> bool:
        """True if every pool has Monte Carlo min/max columns."""
        return all(f"c_{p}_min_tC_ha" in self.table.columns for p in self.POOLS)

    def lut(self, max_code: int,
            stat: Literal["mode", "min", "max"] = "mode") -> np.ndarray:
        """Dense pool-density LUT indexed by key value.

        Parameters
        ----------
        max_code : int
            Largest key to cover (14 for canonical classes; the raster's largest
            code for ``lucode`` tables). Rows with larger keys are left out.
        stat : {'mode', 'min', 'max'}
            Which column to use; 'min'/'max' need Monte Carlo ranges.

        Returns
        -------
        numpy.ndarray of float32, shape (4, max_code + 1)
            ``lut[i, k]`` = density of pool ``POOLS[i]`` for key ``k`` in t C/ha;
            NaN for keys not in the table.

        Examples
        --------
        >>> DensityTable.load("carbon_density_horqin").lut(14)[:, 1].tolist()
        [31.0, 8.0, 87.0, 3.0]
        """
        if max_code < 0:
            raise ParameterTableError(f"max_code {max_code} for density table '{self.name}' is "
                                      "negative; expected the largest key value (>= 0).")
        if stat != "mode" and not self.has_ranges:
            raise ParameterTableError(f"density table {self.path} has no min/max columns, so no "
                                      f"'{stat}' LUT. Add c_<pool>_min_tC_ha and "
                                      "c_<pool>_max_tC_ha columns.")
        out = np.full((len(self.POOLS), max_code + 1), np.nan, dtype=np.float32)
        rows = self.table[self.table.index <= max_code]
        keys = rows.index.to_numpy()
        for i, pool in enumerate(self.POOLS):
            column = f"c_{pool}_tC_ha" if stat == "mode" else f"c_{pool}_{stat}_tC_ha"
            out[i, keys] = rows[column].to_numpy(dtype=np.float32)
        return out

    def missing_keys(self, keys: Iterable[object]) -> list[int]:
        """Keys (ints, any iterable or array) without a row, sorted.

        For ``class_id`` tables, 0 (nodata) and -1 (unmapped, see
        :meth:`Legend.lut`) are never reported: they have no densities by design.

        Examples
        --------
        >>> DensityTable.load("carbon_density_horqin").missing_keys([0, 7, 15])
        [15]
        """
        present = _as_unique_ints(keys, _strict_int, ParameterTableError)
        if self.key == "class_id":
            present = [k for k in present if k not in (NODATA_CLASS, UNMAPPED)]
        index = set(self.table.index.tolist())
        return [k for k in present if k not in index]

    def check_keys(self, keys: Iterable[object], source: str | Path) -> None:
        """Raise :class:`ParameterTableError` if ``keys`` found in ``source`` have no row."""
        missing = self.missing_keys(keys)
        if missing:
            raise ParameterTableError(
                f"density table '{self.name}' ({self.path}) has no row for {self.key} "
                f"{_listing(missing)} found in {source}. Add rows (t C/ha) for them.")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready description for the run manifest (densities, ranges, file hash)."""
        units_note = ("t C/ha (= Mg C/ha)" if self.column_names == "tanhui" else
                      "InVEST columns C_above/C_below/C_soil/C_dead, Mg C/ha, read as t C/ha")
        return {
            "name": self.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "key": self.key,
            "column_names": self.column_names,
            "units": units_note,
            "pools": list(self.POOLS),
            "has_ranges": self.has_ranges,
            "densities_tC_ha": {str(k): [float(v) for v in row]
                                for k, row in self.table.iterrows()},
            "columns": list(self.table.columns),
        }


def _strict_int(value: object) -> int:
    if isinstance(value, str) and _DIGITS.match(value.strip()):
        return int(value)
    raise ParameterTableError(f"key {value!r} is not an integer class id or lucode.")


# --------------------------------------------------------------------------- combined


def density_lut(legend: Legend, table: DensityTable, max_code: int | None = None,
                stat: Literal["mode", "min", "max"] = "mode") -> np.ndarray:
    """Pool densities indexed directly by source code: ``table[legend[code]]``.

    Parameters
    ----------
    legend : Legend
    table : DensityTable
        Must be keyed by ``class_id``.
    max_code, stat
        As in :meth:`Legend.lut` and :meth:`DensityTable.lut`.

    Returns
    -------
    numpy.ndarray of float32, shape (4, n)
        n = ``len(legend.lut(max_code))``; NaN for nodata and unmapped codes.

    Raises
    ------
    ParameterTableError
        If the table is keyed by ``lucode``, or a class the legend maps to has
        no row in the table.

    Examples
    --------
    >>> lut = density_lut(Legend.load("cnlucc"), DensityTable.load("carbon_density_horqin"))
    >>> float(lut[2, 61])  # 沙地 -> sandy_land soil C, t C/ha
    25.0
    """
    if table.key != "class_id":
        raise ParameterTableError(f"density table {table.path} is keyed by 'lucode' (raw raster "
                                  f"codes); it is used without legend '{legend.name}'. Use "
                                  "table.lut(max_code) directly, or key the table by class_id.")
    class_lut = legend.lut(max_code)
    table.check_keys(sorted(set(legend.codes.values())), f"legend '{legend.name}' ({legend.path})")
    per_class = table.lut(int(max(class_lut.max(), 0)), stat=stat)
    out = np.full((len(DensityTable.POOLS), class_lut.size), np.nan, dtype=np.float32)
    valid = class_lut > NODATA_CLASS
    out[:, valid] = per_class[:, class_lut[valid]]
    return out
