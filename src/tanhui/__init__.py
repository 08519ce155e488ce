"""tanhui (碳汇): carbon stock and carbon sink from land-cover and NDVI rasters.

Public API for notebooks::

    import tanhui
    summary = tanhui.run_project("project.toml")      # validate + compute + tables
    stock = tanhui.open_output(summary.out_dir, "stock_total_tC_ha_2023")
    ds = tanhui.carbon_stock(landcover_da, "carbon_density_horqin", legend="cnlucc")
    table = tanhui.aggregate_rasters({"stock": "out/stock_total_tC_ha_2023.vrt"},
                                     "zones.gpkg", "zone_id", layer_name="red_line")
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "run_project": ("tanhui.runner", "run_project"),
    "build_context": ("tanhui.context", "build_context"),
    "load_project": ("tanhui.project", "load_project"),
    "carbon_stock": ("tanhui.pipeline", "carbon_stock"),
    "stock_change": ("tanhui.pipeline", "stock_change"),
    "carbon_sink": ("tanhui.pipeline", "carbon_sink"),
    "aggregate_rasters": ("tanhui.aggregate", "aggregate_rasters"),
    "open_output": ("tanhui.pipeline", "open_output"),
    "list_outputs": ("tanhui.pipeline", "list_outputs"),
    "TileGrid": ("tanhui.grid", "TileGrid"),
    "Legend": ("tanhui.legends", "Legend"),
    "DensityTable": ("tanhui.legends", "DensityTable"),
    "write_demo_project": ("tanhui.demo.project", "write_demo_project"),
}


def __getattr__(name: str):
    # lazy imports keep `import tanhui` and the CLI start-up fast
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'tanhui' has no attribute {name!r}")


def show_versions() -> None:
    """Print versions of tanhui and its main dependencies (for bug reports)."""
    import platform

    import dask
    import geopandas
    import numba
    import numpy
    import rasterio
    import xarray

    print(f"tanhui {__version__}  python {platform.python_version()}")
    for m in (numpy, numba, xarray, dask, rasterio, geopandas):
        print(f"{m.__name__:10s} {m.__version__}")
    print(f"GDAL       {rasterio.__gdal_version__}")


__all__ = list(_LAZY) + ["show_versions", "__version__"]
