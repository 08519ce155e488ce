"""Write what users open: VRT mosaics with QGIS styles, CSV tables, plausibility warnings.

Every file is written under a temporary name and renamed when complete (tanhui.outputs).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from . import styles
from .context import RunContext
from .outputs import build_vrt, write_csv
from .qgis_deliver import write_vector_and_qgis_outputs
from .tables import long_format

log = logging.getLogger("tanhui")

# Engineering guards for Tongliao-wide results (science.md §10.3 "derived plausibility
# envelope"): warnings, not errors, and not calibration targets.
STOCK_MEAN_RANGE_tC_ha = (40.0, 150.0)
NPP_MEAN_MAX_gC_m2_yr = 450.0
NEP_TOTAL_MAX_TgC_yr = 10.0


def _stem_of(rel_path: str) -> str:
    return Path(rel_path).parent.name


def write_mosaics(ctx: RunContext, out_dir: Path, results: list) -> list[str]:
    """One VRT per variable over all its tiles, each with a .qml style beside it."""
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for r in results:
        for rel in r.outputs:
            by_stem[_stem_of(rel)].append(out_dir / rel)
    written = []
    for stem, paths in sorted(by_stem.items()):
        vrt = out_dir / f"{stem}.vrt"
        build_vrt(vrt, sorted(paths))
        styles.write_qml(vrt.with_suffix(".qml"), style_for(ctx, stem))
        written.append(vrt.name)
    return written


def style_for(ctx: RunContext, stem: str) -> str:
    if stem.startswith("landcover_class"):
        from .legends import load_classes

        if ctx.legend is not None:
            cls = load_classes()
            items = [(int(i), str(r["colour"]), f"{i} {r['label_en']} {r['label_zh']}") for i, r in cls.iterrows() if i > 0]
        else:
            rng = np.random.default_rng(0)
            items = [(k, "#%02x%02x%02x" % tuple(rng.integers(40, 220, 3)), f"{k} {v}")
                     for k, v in sorted(ctx.class_names.items())]
        return styles.raster_qml_classes(items)
    if stem.startswith(("stock_change", "stock_rate")):
        return styles.raster_qml_diverging(_symmetric_range(stem), label_units=_units(stem))
    if stem.startswith("nep"):
        return styles.raster_qml_diverging(300.0, label_units="g C m-2 yr-1")
    if stem.startswith("stock_total"):
        return styles.raster_qml_sequential(0.0, 150.0, label_units="t C ha-1")
    if stem.startswith("stock_"):
        return styles.raster_qml_sequential(0.0, _pool_max(stem), label_units="t C ha-1")
    if stem.startswith(("npp", "rh")):
        return styles.raster_qml_sequential(0.0, 600.0, label_units="g C m-2 yr-1")
    return styles.raster_qml_sequential(0.0, 100.0, label_units="")


def _units(stem: str) -> str:
    return "t C ha-1 yr-1" if "rate" in stem else "t C ha-1"


def _symmetric_range(stem: str) -> float:
    return 10.0 if "rate" in stem else 80.0


def _pool_max(stem: str) -> float:
    return {"above": 40.0, "below": 10.0, "soil": 120.0, "dead": 4.0}.get(stem.split("_")[1], 100.0)


TABLE_NOTES = (
    "Each polygon layer is aggregated on its own. The 三区 (ecological/agricultural/urban space) "
    "partition the planning area; the 三线 (red line, basic farmland, development boundary) overlap "
    "each other and the 三区 by design: NEVER add results of different layers together.",
    "Totals weight each pixel by the fraction of it covered by the polygon (exactextract rule) and "
    "by its true area (equal-area grid, or ellipsoidal per-row area on geographic grids).",
    "Units: t C (totals), t CO2 = t C x 44/12, t C ha-1 (mean densities), g C m-2 yr-1 (mean fluxes),"
    " ha (areas); positive change / NEP = carbon sink. Change per class is grouped by the class "
    "at the later epoch.",
)


def write_tables(ctx: RunContext, out_dir: Path, tables: dict[str, pd.DataFrame]) -> list[str]:
    tdir = out_dir / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    written = []
    extent = tables.get("extent")
    if extent is not None:
        write_csv(extent, tdir / "raster_totals.csv", index=False)
        written.append("tables/raster_totals.csv")
    regions = tables.get("regions")
    if regions is not None:
        write_csv(regions[regions["class_id"] == "all"].drop(columns=["class_id", "class_name"]),
                  tdir / "region_totals.csv", index=False)
        write_csv(regions[regions["class_id"] != "all"], tdir / "region_class_totals.csv", index=False)
        written += ["tables/region_totals.csv", "tables/region_class_totals.csv"]
    for key, t in tables.items():
        if key in ("regions", "extent"):
            continue
        name = key.split(":")[-1]
        write_csv(t, tdir / f"zone_{name}.csv", header_lines=TABLE_NOTES, index=False)
        written.append(f"tables/zone_{name}.csv")
    lf = long_format(tables)
    if not lf.empty:
        write_csv(lf, tdir / "zonal_long.csv", header_lines=TABLE_NOTES, index=False)
        written.append("tables/zonal_long.csv")
    return written


def plausibility(ctx: RunContext, tables: dict[str, pd.DataFrame]) -> list[str]:
    """Compare region-wide results with science.md §10.3's envelope; return warnings."""
    out = []
    regions = tables.get("regions")
    if regions is None or regions.empty:
        return out
    t = regions[regions["class_id"] == "all"]
    for year, _ in ctx.epochs:
        col = f"mean_stock_total_tC_ha_{year}"
        area_col = f"valid_share_stock_total_tC_ha_{year}"
        if col in t and area_col in t:
            stock = t[f"stock_total_tC_{year}"].sum()
            area_ha = (t[area_col] * t[[c for c in t.columns if c.startswith("area_ha")][0]]).sum()
            mean = stock / area_ha if area_ha else np.nan
            lo, hi = STOCK_MEAN_RANGE_tC_ha
            if not (lo <= mean <= hi):
                out.append(f"mean carbon density {mean:.1f} t C/ha in {year} is outside the "
                           f"plausibility range {lo:g}-{hi:g} t C/ha (science.md §10.3); check the "
                           "density table and legend")
    return out


def write_deliverables(ctx: RunContext, out_dir: Path, tables: dict[str, pd.DataFrame],
                       results: list, manifest: dict) -> tuple[dict[str, list[str]], list[str]]:
    files = {"mosaics": write_mosaics(ctx, out_dir, results), "tables": write_tables(ctx, out_dir, tables)}
    files["qgis"] = write_vector_and_qgis_outputs(ctx, out_dir, tables)
    warnings = plausibility(ctx, tables)
    if ctx.flux is not None:
        from .flux_checks import flux_plausibility

        lines = flux_plausibility(ctx, tables)
        manifest["flux_summary"] = lines[0]
        log.info(lines[0])
        warnings += lines[1:]
    for w in warnings:
        log.warning(w)
    manifest["plausibility"] = warnings or ["all region-wide results inside the science.md §10.3 envelope"]
    manifest["outputs"] = files
    return files, warnings
