"""The NDVI flux path's inputs, checked: NDVI series, climate, CASA class table, options."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .casa_params import CasaParams
from .errors import ConfigError, InputValueError
from .kernels.casa import check_climate_ranges
from .ndvi_series import NdviSeries, open_series
from .rasterio_io import RasterInfo, inspect_raster, read_continuous

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


def _climate_source(ci, what: str) -> ClimateSource:
    if ci.monthly:
        arr = np.asarray(ci.monthly, dtype=np.float64)
        _check_range(ci.name, arr, f"[flux.climate] {what}")
        return ClimateSource(ci.name, ci.units, monthly=arr)
    infos = tuple(inspect_raster(p, what=f"{ci.name} raster") for p in ci.paths)
    if len(infos) == 1 and infos[0].count != 12:
        raise InputValueError(
            f"{ci.name} raster {infos[0].path} has {infos[0].count} band(s); expected 12 monthly "
            "bands (January to December), or give 12 single-band files."
        )
    if len(infos) not in (1, 12):
        raise InputValueError(
            f"{ci.name}: {len(infos)} files given ({infos[0].path}, ...); expected one 12-band "
            "raster or 12 monthly files."
        )
    for info in infos:
        _check_raster_range(ci.name, info)
    return ClimateSource(ci.name, ci.units, rasters=infos)


def _check_range(name: str, values: np.ndarray, source: str) -> None:
    kw = {"t": None, "p": None, "sol": None}
    kw[{"temperature": "t", "precipitation": "p", "radiation": "sol"}[name]] = values
    check_climate_ranges(kw["t"], kw["p"], kw["sol"], source)


def _check_raster_range(name: str, info: RasterInfo) -> None:
    import rasterio

    with rasterio.open(info.path) as src:
        h, w = min(src.height, 512), min(src.width, 512)
        a = src.read(out_shape=(src.count, h, w), masked=True).astype("float64")
        scales = np.array(src.scales)[:, None, None]
        offsets = np.array(src.offsets)[:, None, None]
    v = np.ma.filled(a * scales + offsets, np.nan)
    _check_range(name, v, str(info.path))


def build_flux_context(project, ctx) -> FluxContext:
    f = project.flux
    if ctx.legend is None:
        raise ConfigError(
            f"project file {project.path}: the flux path needs canonical classes (CASA parameters "
            "are per canonical class), but [landcover] legend is \"none\". Set a legend."
        )
    int_scale = getattr(f, "ndvi_int_scale", None)
    series = open_series(f.ndvi, f.dates, f.year, f.ndvi_reducer, int_scale)
    name = f.casa_table
    table = name if not name.endswith(".csv") else (Path(name) if Path(name).is_absolute() else project.root / name)
    casa = CasaParams.load(table, eps_set=f.eps_max_set)
    climate = {key: _climate_source(ci, key) for key, ci in f.climate.items()}
    return FluxContext(
        year=f.year, series=series, casa=casa, climate=climate, water_stress=f.water_stress,
        rh_days=f.rh_days, rh_precip=f.rh_precip, write_monthly=f.write_monthly,
        gap_fill=f.ndvi_gap_fill,
        ndvi_min_px=inspect_raster(f.ndvi_min, what="NDVI minimum raster") if f.ndvi_min else None,
        ndvi_max_px=inspect_raster(f.ndvi_max, what="NDVI maximum raster") if f.ndvi_max else None,
    )
