"""The project file: a TOML description of one run, parsed into frozen dataclasses.

The schema is documented in ``docs/project-file.md``. Parsing checks structure, key names
and types only; whether files exist and fit together is :mod:`tanhui.validate`'s job.
Relative paths are resolved against the project file's folder.
"""
from __future__ import annotations

import glob
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

ZONE_KINDS = (
    "ecological_space",
    "agricultural_space",
    "urban_space",
    "ecological_protection_red_line",
    "permanent_basic_farmland",
    "urban_development_boundary",
)
#: 三区 partition the planning area; 三线 are overlays (science.md §8).
PARTITION_KINDS = ZONE_KINDS[:3]


@dataclass(frozen=True)
class Epoch:
    year: int
    path: Path


@dataclass(frozen=True)
class VectorLayer:
    path: Path
    id_field: str
    name_field: str | None = None
    layer: str | None = None
    kind: str = "regions"


@dataclass(frozen=True)
class ClimateInput:
    """One climate variable: a raster path (12 bands, or 12 files) or 12 monthly values."""

    name: str
    units: str
    paths: tuple[Path, ...] = ()
    monthly: tuple[float, ...] = ()


@dataclass(frozen=True)
class FluxConfig:
    year: int
    ndvi: tuple[Path, ...]
    dates: tuple[str, ...] = ()
    ndvi_reducer: str = "max"
    casa_table: str = "casa_classes"
    eps_max_set: str = "Z"
    water_stress: str = "zhou_zhang"
    rh_days: str = "30"
    rh_precip: str = "monthly"
    write_monthly: bool = False
    ndvi_min: Path | None = None
    ndvi_max: Path | None = None
    ndvi_int_scale: float | None = None
    ndvi_nodata: float | None = None
    ndvi_gap_fill: str = "linear"
    climate: dict[str, ClimateInput] = field(default_factory=dict)


@dataclass(frozen=True)
class Project:
    path: Path
    name: str
    output_dir: Path
    grid: str
    tile_shape: tuple[int, int] | None
    synthetic: bool
    legend: str | None
    epochs: tuple[Epoch, ...]
    density_table: str
    regions: VectorLayer | None
    flux: FluxConfig | None
    zones: tuple[VectorLayer, ...]
    engine: str = "numba"
    workers: int = 1
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @classmethod
    def load(cls, path: str | Path) -> Project:
        return load_project(path)


# --- schema helpers --------------------------------------------------------------------------

_SECTIONS = {"project", "landcover", "stock", "regions", "flux", "zones", "run"}


def _check_keys(table: dict, allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        import difflib

        hints = [f"'{u}' -> '{m[0]}'" for u in unknown
                 if (m := difflib.get_close_matches(u, sorted(allowed), n=1, cutoff=0.6))]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise ConfigError(
            f"project file {path}: unknown key(s) {unknown} in [{where}]{hint}; "
            f"allowed keys are {sorted(allowed)}. Fix the spelling or remove them."
        )


def _get(table: dict, key: str, types: type | tuple, where: str, path: Path, default: Any = ...):
    if key not in table:
        if default is ... and where == "top level" and types is dict:
            raise ConfigError(
                f"project file {path} has no [{key}] section, which is required. Add it "
                "(see docs/project-file.md)."
            )
        if default is ...:
            raise ConfigError(
                f"project file {path}: [{where}] is missing the required key '{key}'. "
                "Add it (see docs/project-file.md)."
            )
        return default
    value = table[key]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
    if not ok:
        names = "/".join(t.__name__ for t in _as_tuple(types))
        fix = "Correct the value."
        if isinstance(value, str) and set(_as_tuple(types)) & {int, float}:
            try:
                number = int(value) if int in _as_tuple(types) else float(value)
                fix = f"Write the number without quotes: {key} = {number}."
            except ValueError:
                pass
        elif isinstance(value, str) and dict in _as_tuple(types):
            fix = f"Write it as a table: [{where + '.' if where != 'top level' else ''}{key}]."
        raise ConfigError(
            f"project file {path}: [{where}] {key} = {value!r} has type "
            f"{type(value).__name__}; expected {names}. {fix}"
        )
    return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _resolve(root: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return q if q.is_absolute() else (root / q)


def _choice(value: str, allowed: tuple[str, ...], key: str, where: str, path: Path) -> str:
    if value not in allowed:
        raise ConfigError(
            f"project file {path}: [{where}] {key} = {value!r} is not one of {list(allowed)}. "
            "Pick one of those."
        )
    return value


def _vector(t: dict, where: str, path: Path, kind: str) -> VectorLayer:
    _check_keys(t, {"path", "id_field", "name_field", "layer", "kind"}, where, path)
    return VectorLayer(
        path=_resolve(path.parent, _get(t, "path", str, where, path)),
        id_field=_get(t, "id_field", str, where, path),
        name_field=_get(t, "name_field", str, where, path, None),
        layer=_get(t, "layer", str, where, path, None),
        kind=kind,
    )


def _paths(value: Any, key: str, where: str, path: Path) -> tuple[Path, ...]:
    root = path.parent
    if isinstance(value, str):
        if any(ch in value for ch in "*?["):
            found = sorted(glob.glob(str(_resolve(root, value))))
            if not found:
                raise ConfigError(
                    f"project file {path}: [{where}] {key} = {value!r} matches no file. "
                    "Check the pattern and the folder."
                )
            return tuple(Path(f) for f in found)
        return (_resolve(root, value),)
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and value:
        return tuple(_resolve(root, v) for v in value)
    raise ConfigError(
        f"project file {path}: [{where}] {key} must be a path, a glob pattern or a list of "
        f"paths; got {value!r}."
    )


_CLIMATE = {
    "temperature_C": ("temperature", "degC"),
    "precipitation_mm": ("precipitation", "mm month-1"),
    "radiation_MJ_m2": ("radiation", "MJ m-2 month-1"),
}


def _climate(t: dict, path: Path) -> dict[str, ClimateInput]:
    where = "flux.climate"
    _check_keys(t, set(_CLIMATE), where, path)
    out: dict[str, ClimateInput] = {}
    for key, (name, units) in _CLIMATE.items():
        if key not in t:
            raise ConfigError(
                f"project file {path}: [{where}] is missing '{key}'. Give a raster path "
                "(12 bands), a list of 12 files, or a list of 12 monthly values."
            )
        v = t[key]
        if isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            if len(v) != 12:
                raise ConfigError(
                    f"project file {path}: [{where}] {key} has {len(v)} monthly values; "
                    "expected 12 (January to December)."
                )
            out[name] = ClimateInput(name, units, monthly=tuple(float(x) for x in v))
        else:
            out[name] = ClimateInput(name, units, paths=_paths(v, key, where, path))
    return out


def load_project(path: str | Path) -> Project:
    """Parse and structurally check a project file.

    Raises
    ------
    ConfigError
        Malformed TOML, unknown keys, wrong types, missing required keys.
    InputFileError
        The project file itself does not exist.
    """
    from .errors import InputFileError

    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise InputFileError(
            f"project file {path} does not exist. Check the path, or create one with 'tanhui demo'."
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"project file {path} is not valid TOML: {err}. Fix the syntax.") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"project file {path} is not UTF-8 text. Save it as UTF-8.") from err

    _check_keys(raw, _SECTIONS, "top level", path)
    p = _get(raw, "project", dict, "top level", path)
    _check_keys(p, {"name", "output_dir", "grid", "tile_shape", "synthetic", "description"}, "project", path)
    tile_shape = _get(p, "tile_shape", list, "project", path, None)
    if tile_shape is not None:
        if len(tile_shape) != 2 or not all(isinstance(v, int) and v > 0 for v in tile_shape):
            raise ConfigError(
                f"project file {path}: [project] tile_shape = {tile_shape!r}; expected two "
                "positive integers [ny, nx]."
            )
        tile_shape = (tile_shape[0], tile_shape[1])

    lc = _get(raw, "landcover", dict, "top level", path)
    _check_keys(lc, {"legend", "epochs"}, "landcover", path)
    epochs_raw = _get(lc, "epochs", list, "landcover", path)
    if not epochs_raw:
        raise ConfigError(f"project file {path}: [landcover] has no epochs. Add [[landcover.epochs]].")
    epochs = []
    for i, e in enumerate(epochs_raw):
        where = f"landcover.epochs[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(f"project file {path}: {where} must be a table with year and path.")
        _check_keys(e, {"year", "path"}, where, path)
        epochs.append(Epoch(_get(e, "year", int, where, path), _resolve(path.parent, _get(e, "path", str, where, path))))
    years = [e.year for e in epochs]
    if years != sorted(set(years)):
        raise ConfigError(
            f"project file {path}: land-cover epochs have years {years}; they must be distinct "
            "and in increasing order."
        )

    stock = _get(raw, "stock", dict, "top level", path, {})
    _check_keys(stock, {"density_table"}, "stock", path)

    regions = None
    if "regions" in raw:
        regions = _vector(_get(raw, "regions", dict, "top level", path), "regions", path, "regions")

    zones = []
    for i, z in enumerate(_get(raw, "zones", list, "top level", path, [])):
        where = f"zones[{i}]"
        if not isinstance(z, dict):
            raise ConfigError(f"project file {path}: {where} must be a table.")
        kind = _choice(_get(z, "kind", str, where, path), ZONE_KINDS, "kind", where, path)
        zones.append(_vector(z, where, path, kind))

    flux = None
    if "flux" in raw:
        f = _get(raw, "flux", dict, "top level", path)
        where = "flux"
        _check_keys(
            f,
            {"year", "ndvi", "dates", "ndvi_reducer", "casa_table", "eps_max_set", "water_stress",
             "rh_days", "rh_precip", "write_monthly", "ndvi_min", "ndvi_max", "ndvi_int_scale",
             "ndvi_nodata", "ndvi_gap_fill", "climate"},
            where, path,
        )
        dates = tuple(_get(f, "dates", list, where, path, []))
        ndvi = _paths(_get(f, "ndvi", (str, list), where, path), "ndvi", where, path)
        if dates and len(dates) != len(ndvi):
            raise ConfigError(
                f"project file {path}: [flux] has {len(ndvi)} NDVI files but {len(dates)} dates; "
                "give one date per file."
            )
        opt = lambda k: _resolve(path.parent, f[k]) if isinstance(f.get(k), str) else None  # noqa: E731
        flux = FluxConfig(
            year=_get(f, "year", int, where, path),
            ndvi=ndvi,
            dates=tuple(str(d) for d in dates),
            ndvi_reducer=_choice(_get(f, "ndvi_reducer", str, where, path, "max"), ("max", "mean"), "ndvi_reducer", where, path),
            casa_table=_get(f, "casa_table", str, where, path, "casa_classes"),
            eps_max_set=_choice(_get(f, "eps_max_set", str, where, path, "Z"), ("Z", "R"), "eps_max_set", where, path),
            water_stress=_choice(_get(f, "water_stress", str, where, path, "zhou_zhang"), ("zhou_zhang", "none"), "water_stress", where, path),
            rh_days=_choice(_get(f, "rh_days", str, where, path, "30"), ("30", "actual"), "rh_days", where, path),
            rh_precip=_choice(_get(f, "rh_precip", str, where, path, "monthly"), ("monthly", "daily_mean"), "rh_precip", where, path),
            write_monthly=_get(f, "write_monthly", bool, where, path, False),
            ndvi_min=opt("ndvi_min"),
            ndvi_max=opt("ndvi_max"),
            ndvi_int_scale=_get(f, "ndvi_int_scale", (float, int), where, path, None),
            ndvi_nodata=_get(f, "ndvi_nodata", (float, int), where, path, None),
            ndvi_gap_fill=_choice(_get(f, "ndvi_gap_fill", str, where, path, "linear"), ("linear", "none"), "ndvi_gap_fill", where, path),
            climate=_climate(_get(f, "climate", dict, where, path), path),
        )

    run = _get(raw, "run", dict, "top level", path, {})
    _check_keys(run, {"engine", "workers"}, "run", path)
    workers = _get(run, "workers", int, "run", path, 1)
    if workers < 1:
        raise ConfigError(f"project file {path}: [run] workers = {workers}; expected 1 or more.")

    legend = _get(lc, "legend", str, "landcover", path, "none")
    return Project(
        path=path,
        name=_get(p, "name", str, "project", path, path.stem),
        output_dir=_resolve(path.parent, _get(p, "output_dir", str, "project", path, "out")),
        grid=_get(p, "grid", str, "project", path, "landcover"),
        tile_shape=tile_shape,
        synthetic=_get(p, "synthetic", bool, "project", path, False),
        legend=None if legend.lower() == "none" else legend,
        epochs=tuple(epochs),
        density_table=_get(stock, "density_table", str, "stock", path, "carbon_density_horqin"),
        regions=regions,
        flux=flux,
        zones=tuple(zones),
        engine=_choice(_get(run, "engine", str, "run", path, "numba"), ("numba", "numpy"), "engine", "run", path),
        workers=workers,
        raw=raw,
    )
