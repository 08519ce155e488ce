"""The NDVI flux path's inputs, checked: NDVI series, climate, CASA class table, options."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .casa_params import CasaParams
from .errors import ConfigError, GridMismatchError, InputValueError
from .kernels.casa import check_climate_ranges
from .ndvi_series import NdviSeries, open_series
from .rasterio_io import RasterInfo, inspect_raster, read_continuous, read_error

_LIMITS_TEXT = {
    "temperature": "monthly mean temperature must lie in -60..60 degC",
    "precipitation": "monthly precipitation must be >= 0 mm",
    "radiation": "monthly radiation must lie in 0..1000 MJ m-2 month-1",
}


@dataclass
class ClimateSource:
    name: str
    units: str
    rasters: tuple[RasterInfo, ...] = ()  # one 12-band raster, or 12 single-band rasters
    monthly: np.ndarray | None = None  # (12,) values applied everywhere

    def read(self, crs, transform, shape) -> np.ndarray:
        """(12, ny, nx) float32 on a window."""
        if self.monthly is not None:
            return np.broadcast_to(self.monthly.astype(np.float32)[:, None, None], (12,) + tuple(shape)).copy()
        if len(self.rasters) == 1:
            info = self.rasters[0]
            v, _ = read_continuous(info, crs, transform, shape, bands=list(range(1, 13)), resampling="bilinear")
            return v
        return np.stack([read_continuous(r, crs, transform, shape, resampling="bilinear")[0]
                         for r in self.rasters])

    def files(self) -> list[Path]:
        return [r.path for r in self.rasters]

    def describe(self) -> str:
        if self.monthly is not None:
            return f"{self.name}: 12 monthly values ({self.units}), applied to every pixel"
        return f"{self.name}: {', '.join(str(r.path) for r in self.rasters)} ({self.units}, bilinear onto the grid)"


@dataclass
class FluxContext:
    year: int
    series: NdviSeries
    casa: CasaParams
    climate: dict[str, ClimateSource]
    water_stress: str
    rh_days: str
    rh_precip: str
    write_monthly: bool
    gap_fill: str = "linear"
    ndvi_min_px: RasterInfo | None = None
    ndvi_max_px: RasterInfo | None = None

    def input_files(self) -> list[Path]:
        files = [f.info.path for f in self.series.files] + [self.casa.path]
        for c in self.climate.values():
            files += c.files()
        files += [r.path for r in (self.ndvi_min_px, self.ndvi_max_px) if r is not None]
        return files

    def describe(self) -> list[str]:
        months = self.series.month_index()
        lines = [f"NDVI {self.year}: {len(self.series.files)} files -> 12 months by "
                 f"{self.series.reducer} ({', '.join(str(len(m)) for m in months)} per month)"]
        lines += [c.describe() for c in self.climate.values()]
        lines.append(f"CASA table {self.casa.path.name}, eps_max set {self.casa.eps_set}, "
                     f"water stress {self.water_stress}, Rh days {self.rh_days}, Rh precip {self.rh_precip}")
        return lines


#: project-file key of each climate variable (ClimateInput.name -> [flux.climate] key)
CLIMATE_KEYS = {"temperature": "temperature_C", "precipitation": "precipitation_mm",
                "radiation": "radiation_MJ_m2"}


def _climate_source(ci, what: str) -> ClimateSource:
    key = CLIMATE_KEYS.get(ci.name, what)
    if ci.monthly:
        arr = np.asarray(ci.monthly, dtype=np.float64)
        _check_range(ci.name, arr, f"[flux.climate] {key}")
        return ClimateSource(ci.name, ci.units, monthly=arr)
    infos = tuple(inspect_raster(p, what=f"{key} raster") for p in ci.paths)
    if len(infos) == 1 and infos[0].count != 12:
        raise InputValueError(
            f"{ci.name} raster {infos[0].path} ([flux.climate] {key}) has {infos[0].count} "
            "band(s); expected 12 monthly bands (January to December), or give 12 single-band files."
        )
    if len(infos) not in (1, 12):
        raise InputValueError(
            f"[flux.climate] {key}: {len(infos)} files given ({infos[0].path}, ...); expected one "
            "12-band raster or 12 monthly files."
        )
    for info in infos:
        _check_raster_range(ci.name, info, key)
    return ClimateSource(ci.name, ci.units, rasters=infos)


def _check_range(name: str, values: np.ndarray, source: str) -> None:
    _check_units(name, values, source)
    kw = {"t": None, "p": None, "sol": None}
    kw[{"temperature": "t", "precipitation": "p", "radiation": "sol"}[name]] = values
    check_climate_ranges(kw["t"], kw["p"], kw["sol"], source)


def _check_units(name: str, values: np.ndarray, source: str) -> None:
    """Recognise the usual unit mistakes before the generic range check.

    Temperature: every value in 180..340 with some above 60 is kelvin. Radiation: monthly
    totals of 30..1000 MJ m-2 given in kJ m-2 or J m-2 (x 1e3, x 1e6); an annual maximum
    below 40 is a daily mean (MJ m-2 day-1), since the sunniest month of any place on Earth
    receives several hundred MJ m-2.
    """
    a = np.asarray(values, dtype=np.float64)
    a = a[np.isfinite(a)]
    if not a.size:
        return
    lo, hi = float(a.min()), float(a.max())
    if name == "temperature" and hi > 60.0 and 180.0 <= lo and hi <= 340.0:
        raise InputValueError(
            f"climate input {source!r}, temperature: found {lo:.1f} … {hi:.1f}, which looks like "
            "Kelvin, not °C. Subtract 273.15 (e.g. gdal_calc.py --calc \"A-273.15\" for a raster, "
            "or convert the 12 values in the project file)."
        )
    if name == "radiation":
        for factor, unit in ((1e3, "kJ m-2"), (1e6, "J m-2")):
            if hi > 1000.0 and lo >= 0.0 and 30.0 <= hi / factor <= 1000.0:
                raise InputValueError(
                    f"climate input {source!r}, radiation: found {lo:.4g} … {hi:.4g}, which "
                    f"looks like monthly totals in {unit}, not MJ m-2. Divide by {factor:g}."
                )
        if 0.0 < hi < 40.0 and lo >= 0.0:
            raise InputValueError(
                f"climate input {source!r}, radiation: the largest monthly value is {hi:.4g}, "
                "which looks like a daily mean in MJ m-2 day-1, not a monthly total. Multiply each month "
                "by its number of days."
            )


def _check_raster_range(name: str, info: RasterInfo, key: str = "") -> None:
    import rasterio

    try:
        with rasterio.open(info.path) as src:
            h, w = min(src.height, 512), min(src.width, 512)
            a = src.read(out_shape=(src.count, h, w), masked=True).astype("float64")
            scales = np.array(src.scales)[:, None, None]
            offsets = np.array(src.offsets)[:, None, None]
    except Exception as err:
        raise read_error(info, err) from err
    v = np.ma.filled(a * scales + offsets, np.nan)
    _check_range(name, v, f"{info.path} ([flux.climate] {key})" if key else str(info.path))


def _check_overlap(info: RasterInfo, ctx) -> None:
    """Refuse a raster that does not touch the land-cover data of the run at all."""
    from .rasterio_io import crs_label, footprint

    lc = ctx.epochs[0][1]
    try:
        inside = footprint(info, ctx.grid.crs).intersects(footprint(lc, ctx.grid.crs))
    except Exception:  # a footprint that cannot be projected is checked when read
        return
    if not inside:
        raise GridMismatchError(
            f"{info.what} {info.path} does not overlap land-cover raster {lc.path} (bounds "
            f"{tuple(round(b, 3) for b in info.bounds)} in {crs_label(info.crs)}). Check its CRS "
            "and extent; use data that cover the study area."
        )


def build_flux_context(project, ctx) -> FluxContext:
    f = project.flux
    if ctx.legend is None:
        raise ConfigError(
            f"project file {project.path}: the flux path needs canonical classes (CASA parameters "
            "are per canonical class), but [landcover] legend is \"none\". Set a legend."
        )
    int_scale = getattr(f, "ndvi_int_scale", None)
    series = open_series(f.ndvi, f.dates, f.year, f.ndvi_reducer, int_scale,
                         nodata=getattr(f, "ndvi_nodata", None))
    for nf in series.files:
        _check_overlap(nf.info, ctx)
    name = f.casa_table
    table = name if not name.endswith(".csv") else (Path(name) if Path(name).is_absolute() else project.root / name)
    casa = CasaParams.load(table, eps_set=f.eps_max_set)
    climate = {key: _climate_source(ci, key) for key, ci in f.climate.items()}
    for c in climate.values():
        for info in c.rasters:
            _check_overlap(info, ctx)
    px = {}
    for key, p, what in (("min", f.ndvi_min, "NDVI minimum raster"),
                         ("max", f.ndvi_max, "NDVI maximum raster")):
        px[key] = inspect_raster(p, what=f"{what} (ndvi_{key})") if p else None
        if px[key] is not None:
            _check_overlap(px[key], ctx)
    return FluxContext(
        year=f.year, series=series, casa=casa, climate=climate, water_stress=f.water_stress,
        rh_days=f.rh_days, rh_precip=f.rh_precip, write_monthly=f.write_monthly,
        gap_fill=f.ndvi_gap_fill, ndvi_min_px=px["min"], ndvi_max_px=px["max"],
    )
