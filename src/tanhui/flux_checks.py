"""Compare region-wide flux results with the plausibility envelope of science.md §10.3.

These are engineering guards, not calibration targets: a warning, never an error.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

NPP_MEAN_MAX_gC_m2_yr = 450.0  # science.md §10.3: warn above ~450 g C m-2 yr-1
NEP_TOTAL_MAX_TgC_yr = 10.0  # science.md §10.3: warn above ~10 Tg C yr-1 (Tongliao-wide)
NEP_ENVELOPE_TgC_yr = (2.3, 8.8)  # [D] 45-52 thousand km2 x 50-170 g C m-2 yr-1


def flux_summary(ctx, tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    t = tables.get("regions")
    if t is None or t.empty:
        t = tables.get("extent")
    t = t[t["class_id"] == "all"]
    y = ctx.flux.year
    out = {}
    for v in ("npp", "rh", "nep"):
        total = t[f"{v}_tC_yr_{y}"].sum()
        area_m2 = (t[f"valid_share_{v}_gC_m2_yr_{y}"] * t[[c for c in t.columns if c.startswith("area_ha")][0]]).sum() * 1e4
        out[f"{v}_total_TgC_yr"] = total / 1e6
        out[f"{v}_mean_gC_m2_yr"] = total * 1e6 / area_m2 if area_m2 > 0 else np.nan
    return out


def flux_plausibility(ctx, tables: dict[str, pd.DataFrame]) -> list[str]:
    s = flux_summary(ctx, tables)
    lo, hi = NEP_ENVELOPE_TgC_yr
    msgs = [
        f"flux {ctx.flux.year}: NEP {s['nep_total_TgC_yr']:.2f} Tg C/yr "
        f"({s['nep_total_TgC_yr'] * 44 / 12:.1f} Mt CO2/yr), mean NPP {s['npp_mean_gC_m2_yr']:.0f} "
        f"g C m-2 yr-1, mean Rh {s['rh_mean_gC_m2_yr']:.0f}; science.md §10.3 envelope for "
        f"Tongliao: NEP {lo}-{hi} Tg C/yr, mean NPP below {NPP_MEAN_MAX_gC_m2_yr:.0f}"
    ]
    if not (lo <= s["nep_total_TgC_yr"] <= hi) and ctx.project.regions is not None:
        msgs.append(
            f"NEP total {s['nep_total_TgC_yr']:.2f} Tg C/yr is outside the derived Tongliao envelope "
            f"{lo}-{hi} Tg C/yr (science.md §10.3). CASA-Pei NEP is an index of relative sink "
            "strength, not an accounting number: eddy covariance over Horqin sandy grassland shows a "
            "small net source (science.md §2.4); use the stock-difference results for official reports")
    if s["npp_mean_gC_m2_yr"] > NPP_MEAN_MAX_gC_m2_yr:
        msgs.append(f"mean NPP {s['npp_mean_gC_m2_yr']:.0f} g C m-2 yr-1 exceeds {NPP_MEAN_MAX_gC_m2_yr:.0f} "
                    "(science.md §10.3); check eps_max set, radiation units and NDVI scaling")
    if s["nep_total_TgC_yr"] > NEP_TOTAL_MAX_TgC_yr:
        msgs.append(f"NEP total {s['nep_total_TgC_yr']:.2f} Tg C/yr exceeds {NEP_TOTAL_MAX_TgC_yr:.0f} "
                    "(science.md §10.3)")
    return msgs
