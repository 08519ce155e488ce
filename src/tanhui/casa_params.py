"""Per-class CASA parameters: ε_max, NDVI/SR bounds and the vegetated flag, as dense vectors.

The table (default ``landcover/params/casa_classes.csv``, science.md Appendix A) has one row
per canonical class id (science.md §7.1) and the columns

=========================  ====================================================================
``class_id``               canonical class id, 1..254; every id 1..14 must be present
``name``                   canonical class name
``eps_max_gC_MJ``          ε_max of Set Z (Zhu et al. 2006, NPP-calibrated for China), g C MJ-1
``eps_max_set_r_gC_MJ``    optional: ε_max of Set R (as quoted by Pan et al. 2017), g C MJ-1
``ndvi_max``, ``ndvi_min`` NDVI 95th/5th percentile bounds of the class (unitless)
``sr_max``, ``sr_min``     SR bounds; must equal (1 + NDVI)/(1 − NDVI) within 0.02
``vegetated``              true/false: false = NPP not computed (0) and NEP masked
``source``, ``status``     where the numbers come from and their V/S/D/U tags
``notes``                  optional
=========================  ====================================================================

:meth:`CasaParams.load` turns it into float64 vectors indexed by class id (length
max(15, max id + 1)); index 0 (nodata) and ids without a row hold NaN, which the kernels turn
into NaN output. Non-vegetated rows get ε_max = 0 and may leave the bounds empty.
"""
from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ._data import data_dir
from .errors import ConfigError, InputFileError, ParameterTableError

DEFAULT_TABLE = "casa_classes"
CANONICAL_IDS = tuple(range(1, 15))
MIN_VECTOR_LENGTH = 15
SR_TOLERANCE = 0.02  # |SR - (1 + NDVI)/(1 - NDVI)|; the Zhu table rounds SR to 2 decimals
EPS_MAX_LIMIT_GC_MJ = 3.0  # above any published CASA ε_max (reed 1.667, Chi et al. 2018)

REQUIRED_COLUMNS = (
    "class_id", "name", "eps_max_gC_MJ", "ndvi_max", "ndvi_min", "sr_max", "sr_min",
    "vegetated", "source", "status",
)
SET_R_COLUMN = "eps_max_set_r_gC_MJ"
_BOUND_COLUMNS = ("ndvi_min", "ndvi_max", "sr_min", "sr_max")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_STATUS_TAG = re.compile(r"(^|[^A-Za-z])[VSDU]([^A-Za-z]|$)|convention", re.IGNORECASE)

EpsSet = Literal["Z", "R"]


class EpsilonSetRWarning(UserWarning):
    """ε_max Set R was chosen: it looks like GPP light-use efficiencies (NPP ~2× too high)."""


@dataclass(frozen=True, eq=False)
class CasaParams:
    """Dense per-class CASA parameter vectors (index = canonical class id).

    Attributes
    ----------
    eps_max : (n,) float64
        Maximum light-use efficiency, g C MJ-1 (0 for non-vegetated classes, NaN where no row).
    ndvi_min, ndvi_max, sr_min, sr_max : (n,) float64
        NDVI and SR bounds (NaN for non-vegetated classes without bounds and where no row).
    vegetated : (n,) bool
        True where CASA computes NPP and NEP is reported.
    names, status : tuple of str
        Class name and status tags per id ("" where no row).
    eps_set : {"Z", "R"}
        The ε_max set in ``eps_max``.
    path : Path
        The CSV file read; ``sha256`` its checksum (for the run manifest).
    """

    eps_max: NDArray[np.float64]
    ndvi_min: NDArray[np.float64]
    ndvi_max: NDArray[np.float64]
    sr_min: NDArray[np.float64]
    sr_max: NDArray[np.float64]
    vegetated: NDArray[np.bool_]
    names: tuple[str, ...]
    status: tuple[str, ...]
    eps_set: EpsSet
    path: Path
    sha256: str

    def kernel_kwargs(self) -> dict[str, np.ndarray]:
        """The vectors as keyword arguments of :func:`tanhui.kernels.casa.casa_npp_numba`."""
        return {
            "eps_max": self.eps_max, "ndvi_min": self.ndvi_min, "ndvi_max": self.ndvi_max,
            "sr_min": self.sr_min, "sr_max": self.sr_max, "vegetated": self.vegetated,
        }

    @classmethod
    def load(cls, name_or_path: str | Path | None = None, eps_set: EpsSet = "Z") -> CasaParams:
        """Read and validate a CASA class table.

        Parameters
        ----------
        name_or_path : str or Path, optional
            A shipped table name in ``landcover/params`` (default ``"casa_classes"``) or the
            path to a CSV file (UTF-8 or GB18030).
        eps_set : {"Z", "R"}
            ``"Z"`` (default): ``eps_max_gC_MJ``, Zhu et al. (2006), NPP-calibrated for China.
            ``"R"``: ``eps_max_set_r_gC_MJ`` (BIOME-BGC/Running et al. set quoted by Pan et
            al. 2017). Its values match MODIS MOD17 *GPP* light-use efficiencies, so NPP
            would be about 2× too high (science.md §1.5, an inference [U]); choosing it emits
            :class:`EpsilonSetRWarning`. Vegetated classes without a Set R value fall back to
            Set Z and are named in the warning.

        Returns
        -------
        CasaParams

        Raises
        ------
        tanhui.errors.InputFileError
            The table cannot be found or read.
        tanhui.errors.ParameterTableError
            Missing columns, missing canonical classes, duplicate ids, or bad values
            (non-numeric, ε_max outside (0, 3] g C MJ-1, NDVI bounds not increasing inside
            (-1, 1), SR bounds inconsistent with the NDVI bounds by more than 0.02, missing
            source/status). The message names the file, column and class id.
        tanhui.errors.ConfigError
            ``eps_set`` is not "Z" or "R".

        Examples
        --------
        >>> p = CasaParams.load()
        >>> float(p.eps_max[7]), bool(p.vegetated[10])
        (0.542, False)
        """
        if eps_set not in ("Z", "R"):
            raise ConfigError(
                f"eps_max_set = {eps_set!r}; expected 'Z' (Zhu et al. 2006, default) or 'R'."
            )
        path = _resolve(name_or_path)
        raw = _read_bytes(path)
        frame = _read_frame(raw, path)
        rows = _parse_rows(frame, path, eps_set)
        return _to_vectors(rows, path, eps_set, hashlib.sha256(raw).hexdigest())


# --------------------------------------------------------------------------- reading


def _params_dir() -> Path:
    return data_dir("landcover") / "params"


def _resolve(name_or_path: str | Path | None) -> Path:
    if name_or_path is None:
        name_or_path = DEFAULT_TABLE
    candidate = Path(name_or_path)
    is_path = (isinstance(name_or_path, Path) or candidate.suffix.lower() == ".csv"
               or len(candidate.parts) > 1)
    if is_path:
        if not candidate.is_file():
            raise InputFileError(
                f"CASA class table {candidate} does not exist. Give an existing CSV file or a "
                f"shipped name such as {DEFAULT_TABLE!r}."
            )
        return candidate.resolve()
    shipped = _params_dir() / f"{candidate}.csv"
    if not shipped.is_file():
        names = sorted(p.stem for p in _params_dir().glob("casa*.csv"))
        raise InputFileError(
            f"unknown CASA class table {str(name_or_path)!r}: no {shipped}. Expected one of "
            f"{names} or the path to a CSV file."
        )
    return shipped


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputFileError(
            f"CASA class table {path} cannot be read: {err}. Check the path and permissions."
        ) from err


def _read_frame(raw: bytes, path: Path) -> pd.DataFrame:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel on Chinese Windows saves GBK
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ParameterTableError(
            f"CASA class table {path} is neither UTF-8 nor GB18030 text. Save it as UTF-8 CSV."
        )
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ParameterTableError(
            f"CASA class table {path} is not a readable CSV table: {err}. Check the delimiter "
            "(comma) and the quoting."
        ) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda col: col.str.strip())
    frame = frame[~(frame == "").all(axis=1)].reset_index(drop=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ParameterTableError(
            f"CASA class table {path} is missing column(s) {missing}; found {list(frame.columns)}. "
            f"Required: {list(REQUIRED_COLUMNS)} (see landcover/params/{DEFAULT_TABLE}.csv)."
        )
    if frame.empty:
        raise ParameterTableError(f"CASA class table {path} has a header but no rows.")
    return frame


def _number(text: str, path: Path, column: str, class_id: object) -> float:
    if text == "":
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
        ok = False
    else:
        ok = np.isfinite(value)
    if not ok:
        raise ParameterTableError(
            f"CASA class table {path}, column {column!r}, class_id {class_id}: value {text!r} is "
            "not a finite number. Write a decimal number (or leave it empty where allowed)."
        )
    return value


def _class_id(text: str, path: Path) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 254:
        raise ParameterTableError(
            f"CASA class table {path}, column 'class_id': {text!r} is not a class id; expected an "
            "integer 1..254 (canonical ids 1..14, science.md §7.1)."
        )
    return value


def _flag(text: str, path: Path, class_id: int) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ParameterTableError(
        f"CASA class table {path}, column 'vegetated', class_id {class_id}: {text!r} is not a "
        "boolean; write true or false."
    )


def _parse_rows(frame: pd.DataFrame, path: Path, eps_set: EpsSet) -> list[dict]:
    rows = []
    for _, rec in frame.iterrows():
        cid = _class_id(rec["class_id"], path)
        row = {"class_id": cid, "name": rec["name"], "status": rec["status"],
               "vegetated": _flag(rec["vegetated"], path, cid)}
        for col in ("source", "status"):
            if not rec[col]:
                raise ParameterTableError(
                    f"CASA class table {path}, column {col!r}, class_id {cid}: empty. Every row "
                    "needs a source and V/S/D/U status tags (science.md, status tags)."
                )
        if not _STATUS_TAG.search(rec["status"]):
            raise ParameterTableError(
                f"CASA class table {path}, column 'status', class_id {cid}: {rec['status']!r} has "
                "no status tag; use V, S, D or U (or 'convention'), e.g. 'eps_Z: S; bounds: U'."
            )
        row["eps_z"] = _number(rec["eps_max_gC_MJ"], path, "eps_max_gC_MJ", cid)
        row["eps_r"] = (_number(rec[SET_R_COLUMN], path, SET_R_COLUMN, cid)
                        if SET_R_COLUMN in frame.columns else float("nan"))
        for col in _BOUND_COLUMNS:
            row[col] = _number(rec[col], path, col, cid)
        if row["vegetated"]:
            _check_vegetated_row(row, path)
        rows.append(row)
    _check_ids(rows, path)
    if eps_set == "R" and SET_R_COLUMN not in frame.columns:
        raise ParameterTableError(
            f"CASA class table {path} has no column {SET_R_COLUMN!r}, needed for eps_max_set = "
            f"'R'. Add the column or use eps_max_set = 'Z'."
        )
    return rows


def _check_vegetated_row(row: dict, path: Path) -> None:
    cid = row["class_id"]
    where = f"CASA class table {path}, class_id {cid} ({row['name']})"
    eps = row["eps_z"]
    if not 0.0 < eps <= EPS_MAX_LIMIT_GC_MJ:
        raise ParameterTableError(
            f"{where}, column 'eps_max_gC_MJ': {eps} is outside (0, {EPS_MAX_LIMIT_GC_MJ}] g C "
            "MJ-1. Give the NPP light-use efficiency in g C MJ-1 (Set Z grassland 0.542); set "
            "vegetated = false for classes without NPP."
        )
    eps_r = row["eps_r"]
    if np.isfinite(eps_r) and not 0.0 < eps_r <= EPS_MAX_LIMIT_GC_MJ:
        raise ParameterTableError(
            f"{where}, column {SET_R_COLUMN!r}: {eps_r} is outside (0, {EPS_MAX_LIMIT_GC_MJ}] g C "
            "MJ-1, or leave it empty."
        )
    missing = [c for c in _BOUND_COLUMNS if not np.isfinite(row[c])]
    if missing:
        raise ParameterTableError(
            f"{where}: vegetated class without {missing}. Fill the NDVI/SR bounds (science.md "
            "§1.2) or set vegetated = false."
        )
    nmin, nmax = row["ndvi_min"], row["ndvi_max"]
    if not -1.0 < nmin < nmax < 1.0:
        raise ParameterTableError(
            f"{where}: NDVI bounds ndvi_min = {nmin}, ndvi_max = {nmax}; expected "
            "-1 < ndvi_min < ndvi_max < 1 (5th/95th percentiles of the class's NDVI)."
        )
    for ndvi_col, sr_col in (("ndvi_min", "sr_min"), ("ndvi_max", "sr_max")):
        expected = (1.0 + row[ndvi_col]) / (1.0 - row[ndvi_col])
        if abs(row[sr_col] - expected) > SR_TOLERANCE:
            raise ParameterTableError(
                f"{where}, column {sr_col!r}: {row[sr_col]} does not match {ndvi_col} = "
                f"{row[ndvi_col]}, which gives SR = (1 + NDVI)/(1 - NDVI) = {expected:.3f} "
                f"(tolerance {SR_TOLERANCE}). Recompute {sr_col} from {ndvi_col}."
            )


def _check_ids(rows: list[dict], path: Path) -> None:
    ids = [r["class_id"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ParameterTableError(
            f"CASA class table {path}, column 'class_id': duplicate ids {dup}. Keep one row per "
            "class."
        )
    missing = sorted(set(CANONICAL_IDS) - set(ids))
    if missing:
        raise ParameterTableError(
            f"CASA class table {path}, column 'class_id': canonical classes {missing} have no row "
            "(science.md §7.1 ids 1..14). Add them (vegetated = false and eps 0 for classes "
            "without NPP)."
        )


def _to_vectors(rows: list[dict], path: Path, eps_set: EpsSet, sha256: str) -> CasaParams:
    n = max(MIN_VECTOR_LENGTH, max(r["class_id"] for r in rows) + 1)
    vec = {k: np.full(n, np.nan) for k in ("eps_max",) + _BOUND_COLUMNS}
    vegetated = np.zeros(n, dtype=bool)
    names, status = [""] * n, [""] * n
    fell_back = []
    for r in rows:
        c = r["class_id"]
        vegetated[c] = r["vegetated"]
        names[c], status[c] = r["name"], r["status"]
        for col in _BOUND_COLUMNS:
            vec[col][c] = r[col]
        if not r["vegetated"]:
            vec["eps_max"][c] = 0.0  # NPP not computed; finite so the kernel writes 0, not NaN
        elif eps_set == "R" and np.isfinite(r["eps_r"]):
            vec["eps_max"][c] = r["eps_r"]
        else:
            vec["eps_max"][c] = r["eps_z"]
            if eps_set == "R":
                fell_back.append(f"{c} {r['name']}")
    if eps_set == "R":
        fallback = (f" Classes without a Set R value use Set Z: {fell_back}." if fell_back
                    else "")
        warnings.warn(
            f"CASA class table {path}: eps_max Set R chosen. Its values (grassland 0.608, "
            "broadleaf 1.044 g C MJ-1) match MODIS MOD17 GPP light-use efficiencies, so NPP may "
            "be about 2x too high (science.md §1.5; inference, unverified). Use Set Z (default) "
            f"for reporting.{fallback}",
            EpsilonSetRWarning,
            stacklevel=3,
        )
    for arr in list(vec.values()) + [vegetated]:
        arr.flags.writeable = False
    return CasaParams(
        eps_max=vec["eps_max"], ndvi_min=vec["ndvi_min"], ndvi_max=vec["ndvi_max"],
        sr_min=vec["sr_min"], sr_max=vec["sr_max"], vegetated=vegetated,
        names=tuple(names), status=tuple(status), eps_set=eps_set, path=path, sha256=sha256,
    )
