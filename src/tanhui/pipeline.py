"""xarray / Dask API for notebooks: the same kernels as the CLI, on DataArrays.

Functions take and return :class:`xarray.DataArray` objects with ``attrs["units"]``; with
Dask-backed inputs they stay lazy (``map_blocks``) and never compute.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from .kernels.stock import ENGINES as STOCK_ENGINES
from .legends import DensityTable, Legend

Engine = Literal["numba", "numpy"]


def pool_lut(legend: Legend | None, table: DensityTable, max_code: int = 255) -> np.ndarray:
    """Code -> (above, below, soil, dead) densities in t C/ha, shape (4, n_codes), NaN = none."""
    from .context import composite_luts

    codes = set(range(max_code + 1))
    if legend is not None:
        codes = {c for c in codes if c in legend.codes}
    else:
        codes = {int(k) for k in table.table.index}
    lut, _, _, _ = composite_luts(legend, table, codes, "(in-memory array)")
    return lut


def carbon_stock(
    landcover: xr.DataArray,
    table: DensityTable | str,
    legend: Legend | str | None = None,
    *,
    engine: Engine = "numba",
    nodata: int | None = None,
) -> xr.Dataset:
    """Carbon density per pool and in total (t C/ha) from a land-cover DataArray.

    Parameters
    ----------
    landcover : DataArray (y, x) of integer codes, numpy- or dask-backed.
    table : density table (object or name/path), keyed by canonical class (with ``legend``)
        or by raw code (``lucode``, InVEST-style, without legend).
    legend : legend object or name; ``None`` for raw-code tables.
    nodata : code to treat as nodata (default: ``landcover.rio.nodata`` if set).

    Returns
    -------
    Dataset with ``above``, ``below``, ``soil``, ``dead`` and ``total`` (float32, t C ha-1).

    References
    ----------
    science.md §3.1; InVEST Carbon (natcap/invest ``carbon.py``).
    """
    table = table if isinstance(table, DensityTable) else DensityTable.load(table)
    legend = legend if (legend is None or isinstance(legend, Legend)) else Legend.load(legend)
    if nodata is None:
        nodata = landcover.attrs.get("_FillValue", getattr(getattr(landcover, "rio", None), "nodata", None)) \
            if hasattr(landcover, "rio") else None
    max_code = int(max(legend.codes) if legend is not None else max(table.table.index))
    lut = pool_lut(legend, table, max_code)
    func = STOCK_ENGINES[engine]["stock"]

    def block(codes: np.ndarray) -> np.ndarray:
        c = codes.astype(np.int32)
        if nodata is not None:
            c[codes == nodata] = -1
        return func(c, lut)

    data = landcover.data
    if hasattr(data, "map_blocks"):  # dask
        out = data.map_blocks(block, dtype=np.float32, new_axis=0,
                              chunks=((5,),) + data.chunks, meta=np.empty((0, 0, 0), np.float32))
    else:
        out = block(np.asarray(data))
    names = ("above", "below", "soil", "dead", "total")
    ds = xr.Dataset(
        {n: (landcover.dims, out[i]) for i, n in enumerate(names)},
        coords=landcover.coords,
    )
    for n in names:
        ds[n].attrs.update(units="t C ha-1", long_name=f"carbon density, {n}",
                           engine=engine, table=str(table.path))
    return ds


def stock_change(total_t1: xr.DataArray, total_t2: xr.DataArray, years: float) -> xr.Dataset:
    """ΔC = C(t2) − C(t1) (t C/ha, sink-positive) and rate ΔC/years (t C/ha/yr)."""
    change = (total_t2 - total_t1).astype(np.float32)
    change.attrs.update(units="t C ha-1", long_name="carbon density change",
                        sign_convention="positive = sequestration")
    rate = (change / np.float32(years)).astype(np.float32)
    rate.attrs.update(units="t C ha-1 yr-1", long_name="annual carbon density change",
                      sign_convention="positive = sequestration")
    return xr.Dataset({"change": change, "rate": rate})


def open_output(out_dir: str | Path, stem: str, *, chunks: int | dict | None = 1024) -> xr.DataArray:
    """Open an output mosaic (``<out_dir>/<stem>.vrt``) lazily, with units in ``attrs``."""
    import rioxarray

    path = Path(out_dir) / f"{stem}.vrt"
    if not path.exists():
        avail = sorted(p.stem for p in Path(out_dir).glob("*.vrt"))
        raise FileNotFoundError(f"no output '{stem}' in {out_dir}; available: {avail}")
    da = rioxarray.open_rasterio(path, chunks=chunks, masked=True).squeeze("band", drop=True)
    from .variables import Variable  # noqa: F401  (documented names)

    units = da.attrs.get("units") or da.attrs.get("UNITTYPE")
    with __import__("rasterio").open(path) as src:
        units = src.units[0] or units
        da.attrs.update({k: v for k, v in src.tags().items()})
    da.attrs["units"] = units
    da.name = stem
    return da


def list_outputs(out_dir: str | Path) -> list[str]:
    """Stems of the output mosaics of a run."""
    return sorted(p.stem for p in Path(out_dir).glob("*.vrt"))


def carbon_sink(
    ndvi: xr.DataArray,
    temperature: xr.DataArray,
    precipitation: xr.DataArray,
    radiation: xr.DataArray,
    classes: xr.DataArray,
    *,
    casa_table: str = "casa_classes",
    eps_max_set: str = "Z",
    water_stress: str = "zhou_zhang",
    rh_days: str = "30",
    rh_precip: str = "monthly",
    year: int | None = None,
    engine: Engine = "numba",
) -> xr.Dataset:
    """Monthly CASA NPP, Pei Rh and NEP (g C m-2 month-1) from monthly stacks.

    Parameters
    ----------
    ndvi, temperature, precipitation, radiation : DataArray (month, y, x)
        12 months each: NDVI (scaled), °C, mm month-1, MJ m-2 month-1. Dask-backed inputs
        must have the month axis in one chunk (Topt and Thornthwaite need the whole year).
    classes : DataArray (y, x) of canonical class ids (0 = nodata).

    Returns
    -------
    Dataset with ``npp``, ``rh``, ``nep`` (month, y, x) float32 in g C m-2 month-1,
    sink-positive; annual values are ``.sum("month")`` (NaN-propagating).

    References
    ----------
    science.md §1.1 (CASA), §2.1 (Pei et al. 2009), §2.3 (NEP).
    """
    from .casa_params import CasaParams
    from .flux_tile import NPP_ENGINES
    from .kernels.rh import ENGINES as RH_ENGINES

    params = CasaParams.load(casa_table, eps_set=eps_max_set)
    kw = params.kernel_kwargs()
    npp_f = NPP_ENGINES[engine]
    rh_f = RH_ENGINES[engine]["rh"]
    nep_f = RH_ENGINES[engine]["nep"]

    def block(nd, t, p, sol, cls):
        cls = cls[0] if cls.ndim == 3 else cls  # dask passes it with a length-1 month axis
        npp = npp_f(nd, t, p, sol, cls, **kw, water_stress=water_stress)
        rh = rh_f(t, p, days_per_month=rh_days, precip=rh_precip, year=year)
        nep = nep_f(npp, rh, cls, params.vegetated)
        rh = np.where(np.isnan(nep).all(axis=0)[None], np.float32(np.nan), rh).astype(np.float32)
        return np.stack([npp, rh, nep])

    arrays = [a.data for a in (ndvi, temperature, precipitation, radiation)]
    cls = classes.data
    if any(hasattr(a, "map_blocks") for a in arrays + [cls]):
        import dask.array as da

        chunks_yx = next(a.chunks[1:] for a in arrays if hasattr(a, "chunks") and isinstance(a, da.Array))
        stacks = [da.asarray(a).rechunk((-1,) + chunks_yx) for a in arrays]
        cls_d = da.asarray(cls).rechunk(chunks_yx)
        out = da.map_blocks(block, *stacks, cls_d[None], dtype=np.float32, new_axis=0,
                            chunks=((3,), (12,)) + chunks_yx, meta=np.empty((0, 0, 0, 0), np.float32))
    else:
        out = block(*[np.asarray(a) for a in arrays], np.asarray(cls))
    dims = ndvi.dims
    ds = xr.Dataset({n: (dims, out[i]) for i, n in enumerate(("npp", "rh", "nep"))}, coords=ndvi.coords)
    for n, long in (("npp", "net primary production (CASA)"),
                    ("rh", "soil heterotrophic respiration (Pei et al. 2009)"),
                    ("nep", "net ecosystem production NPP - Rh")):
        ds[n].attrs.update(units="g C m-2 month-1", long_name=long, engine=engine)
    ds["nep"].attrs["sign_convention"] = "positive = carbon sink"
    return ds
