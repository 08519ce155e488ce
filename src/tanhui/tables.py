"""Turn per-tile partial sums into per-feature and per-class tables, and write run outputs.

Units: a partial sum ``sum_<v>`` is Σ value × pixel area (m²) × coverage fraction.
Densities in t C ha⁻¹ become t C by ``/ 1e4``; fluxes in g C m⁻² yr⁻¹ become t C yr⁻¹ by
``/ 1e6``; t CO₂ = t C × 44/12 (science.md §0.1). Means are Σ value·area·frac / Σ area·frac
over valid pixels (coverage-weighted, area-weighted).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import zonal
from .context import PolygonLayer, RunContext

C_TO_CO2 = 44.0 / 12.0  # molar mass ratio CO2/C (science.md §0.1; WRI c_to_co2)
M2_PER_HA = 1e4
G_PER_T = 1e6

_DENSITY = re.compile(r"^(stock_(above|below|soil|dead|total))_tC_ha_(\d{4})$")
_CHANGE = re.compile(r"^stock_change_tC_ha_(\d{4})_(\d{4})$")
_FLUX = re.compile(r"^(npp|rh|nep)_gC_m2_yr_(\d{4})$")


def _value_columns(df: pd.DataFrame) -> list[str]:
    return [c[4:] for c in df.columns if c.startswith("sum_")]


def polygon_area_m2(layer: PolygonLayer, grid) -> np.ndarray:
    """The polygons' own areas: planar in an equal-area grid CRS, geodesic otherwise."""
    if grid.is_equal_area:
        return layer.gdf.geometry.area.to_numpy()
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    g4326 = layer.gdf.geometry.to_crs(4326)
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) if g is not None and not g.is_empty else 0.0
                     for g in g4326])


def _convert(var: str) -> tuple[str, float, str] | None:
    """Map a summed variable to (output name, divisor, unit) for totals."""
    if m := _DENSITY.match(var):
        return f"{m.group(1)}_tC_{m.group(3)}", M2_PER_HA, "t C"
    if m := _CHANGE.match(var):
        return f"stock_change_tC_{m.group(1)}_{m.group(2)}", M2_PER_HA, "t C"
    if m := _FLUX.match(var):
        return f"{m.group(1)}_tC_yr_{m.group(2)}", G_PER_T, "t C yr-1"
    return None


def feature_class_table(ctx: RunContext, layer: PolygonLayer, sums_by_epoch: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per (feature, class) and per feature ('all classes'); totals in t C and t CO₂."""
    gdf = layer.gdf
    ids = gdf[layer.id_field].astype(str).to_numpy()
    names = gdf[layer.name_field].astype(str).to_numpy() if layer.name_field else ids
    poly_area = polygon_area_m2(layer, ctx.grid)
    rows = []
    epochs = sorted(sums_by_epoch)
    nodata_group = ctx.n_groups
    for year in epochs:
        df = sums_by_epoch[year]
        values = _value_columns(df)
        for class_scope in ("all", "class"):
            if class_scope == "all":
                g = df.drop(columns=["group"]).groupby("feature", sort=True).sum(numeric_only=True).reset_index()
                g["group"] = -1
            else:
                g = df[df["group"] != nodata_group]
            for rec in g.to_dict("records"):
                f = int(rec["feature"])
                grp = int(rec["group"])
                row = {
                    "layer": layer.key.split(":")[-1], "feature_id": ids[f], "feature_name": names[f],
                    "class_id": "all" if grp < 0 else grp,
                    "class_name": "all classes" if grp < 0 else ctx.class_names.get(grp, str(grp)),
                    "epoch": year,
                    "area_ha": rec["area_m2"] / M2_PER_HA,
                    "n_pixels": int(rec["n_cells"]), "n_partial_pixels": int(rec["n_partial"]),
                }
                if grp < 0:
                    # science.md §8: report both areas and their difference (discretisation,
                    # parts of the polygon outside the raster)
                    row["polygon_area_ha"] = poly_area[f] / M2_PER_HA
                    row["pixel_minus_polygon_area_ha"] = row["area_ha"] - row["polygon_area_ha"]
                for v in values:
                    conv = _convert(v)
                    if conv is None:
                        continue
                    out, div, _unit = conv
                    total = rec[f"sum_{v}"] / div
                    valid = rec[f"valid_area_m2_{v}"]
                    row[out] = total
                    if out.startswith(("stock_", "npp", "rh", "nep")):
                        row[out.replace("tC", "tCO2")] = total * C_TO_CO2
                    row[f"mean_{v}"] = rec[f"sum_{v}"] / valid if valid > 0 else np.nan
                    row[f"valid_share_{v}"] = valid / rec["area_m2"] if rec["area_m2"] > 0 else np.nan
                rows.append(row)
    table = pd.DataFrame(rows)
    return table


def merge_epochs(table: pd.DataFrame) -> pd.DataFrame:
    """Collapse the per-epoch rows into one row per (feature, class)."""
    if table.empty:
        return table
    keys = ["layer", "feature_id", "feature_name", "class_id", "class_name"]
    last = table["epoch"].max()
    base_cols = ["area_ha", "n_pixels", "n_partial_pixels", "polygon_area_ha", "pixel_minus_polygon_area_ha"]
    out = None
    for year, part in table.groupby("epoch", sort=True):
        part = part.drop(columns=["epoch"]).dropna(axis=1, how="all")
        cols = [c for c in part.columns if c not in keys]
        if year != last:
            cols = [c for c in cols if c not in base_cols]
        else:
            part = part.rename(columns={c: f"{c}_{year}" for c in ("area_ha", "n_pixels", "n_partial_pixels")})
            cols = [f"{c}_{year}" if c in ("area_ha", "n_pixels", "n_partial_pixels") else c for c in cols]
        part = part[keys + cols]
        out = part if out is None else out.merge(part, on=keys, how="outer")
    return out


def assemble_tables(ctx: RunContext, results: list) -> dict[str, pd.DataFrame]:
    """Reduce tile partials to tables: per layer, per feature and class, all epochs merged."""
    tables: dict[str, pd.DataFrame] = {}
    for layer in [extent_layer(ctx)] + list(ctx.layers):
        sums_by_epoch = {}
        for year, _ in ctx.epochs:
            key = f"{layer.key}@{year}"
            sums_by_epoch[year] = zonal.combine(r.partials[key] for r in results if key in r.partials)
        long = feature_class_table(ctx, layer, sums_by_epoch)
        wide = merge_epochs(long)
        tables[layer.key] = _add_rates(ctx, wide)
    return tables


def extent_layer(ctx: RunContext) -> PolygonLayer:
    """A pseudo-layer for whole-raster totals (every pixel of every tile, full weight)."""
    import geopandas as gpd
    from shapely.ops import unary_union

    outline = unary_union([ctx.grid.tile_polygon(t) for t in ctx.tiles])
    gdf = gpd.GeoDataFrame({"id": ["raster"], "name": ["whole raster (all tiles)"]},
                           geometry=[outline], crs=ctx.grid.crs)
    return PolygonLayer("extent", "extent", ctx.epochs[0][1].path, "id", "name", gdf)


def _add_rates(ctx: RunContext, wide: pd.DataFrame) -> pd.DataFrame:
    for (y1, _), (y2, _) in zip(ctx.epochs, ctx.epochs[1:]):
        col = f"stock_change_tC_{y1}_{y2}"
        if col in wide:
            wide[f"stock_rate_tC_yr_{y1}_{y2}"] = wide[col] / (y2 - y1)
            wide[f"stock_rate_tCO2_yr_{y1}_{y2}"] = wide[col] / (y2 - y1) * C_TO_CO2
    return wide


def long_format(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """All layers in one long table: layer, feature, class, variable, value, unit."""
    frames = []
    for key, t in tables.items():
        if t.empty:
            continue
        idv = ["layer", "feature_id", "feature_name", "class_id", "class_name"]
        m = t.melt(id_vars=idv, var_name="variable", value_name="value").dropna(subset=["value"])
        m["unit"] = m["variable"].map(unit_of)
        m.insert(0, "layer_key", key)
        frames.append(m)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def unit_of(var: str) -> str:
    if var.startswith(("area_ha", "polygon_area_ha", "pixel_minus_polygon")):
        return "ha"
    if var.startswith(("n_pixels", "n_partial")):
        return "count"
    if var.startswith("valid_share"):
        return "fraction"
    if var.startswith("mean_stock"):
        return "t C ha-1"
    if var.startswith("mean_"):
        return "g C m-2 yr-1"
    if "tCO2_yr" in var:
        return "t CO2 yr-1"
    if "tC_yr" in var:
        return "t C yr-1"
    if "tCO2" in var:
        return "t CO2"
    if "tC" in var:
        return "t C"
    return ""


def write_run_outputs(ctx: RunContext, out_dir: Path, tables: dict[str, pd.DataFrame],
                      results: list, manifest: dict) -> tuple[dict[str, list[str]], list[str]]:
    """VRT mosaics, QGIS styles, CSV tables. Returns written files by kind, and warnings."""
    from .delivery import write_deliverables

    return write_deliverables(ctx, out_dir, tables, results, manifest)
