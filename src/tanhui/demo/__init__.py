"""The synthetic Horqin demo: land cover, NDVI and climate for Tongliao, and its county polygons.

Everything generated here is **synthetic** (plausible, spatially coherent, deterministic
for a seed) except the county polygons, which are real (see ``demo/data/README.md``).

Main entry points
-----------------
write_demo_inputs(out_dir, grid, seed=42, years=(2015, 2023), ndvi_year=None, zones=True)
    -> project.toml
write_demo_zones(out_dir, grid, seed=42, year=2023) -> {kind: zones/sanqu_sanxian.gpkg}
demo_zones(grid, seed=42, year=2023) -> {kind: GeoDataFrame} (synthetic 三区三线, EPSG:4490)
landcover_window(transform, shape, crs, year, seed=42) -> uint8 CNLUCC codes
ndvi_window(transform, shape, crs, year, month, seed=42) -> float32 NDVI
tongliao_climate() -> 12 monthly T, P, SOL with their provenance
"""
from __future__ import annotations

from .world import (
    CNLUCC_CODES,
    DEMO_CODES,
    NDVI_CURVES,
    STUDY_BOUNDS_LONLAT,
    MonthlyClimate,
    climate_window,
    counties_path,
    landcover_lonlat,
    landcover_window,
    ndvi_window,
    tongliao_climate,
    tongliao_outline,
    write_demo_inputs,
    write_demo_landcover,
    write_demo_ndvi,
)
from .zones import ZONE_KINDS, ZONES_FILE, demo_zones, write_demo_zones

__all__ = [
    "CNLUCC_CODES",
    "DEMO_CODES",
    "NDVI_CURVES",
    "ZONES_FILE",
    "ZONE_KINDS",
    "STUDY_BOUNDS_LONLAT",
    "MonthlyClimate",
    "climate_window",
    "demo_zones",
    "counties_path",
    "landcover_lonlat",
    "landcover_window",
    "ndvi_window",
    "tongliao_climate",
    "tongliao_outline",
    "write_demo_inputs",
    "write_demo_landcover",
    "write_demo_ndvi",
    "write_demo_zones",
]
