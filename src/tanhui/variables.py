"""Names, units and descriptions of every raster tanhui writes: one place to look them up.

Each output variable has a file stem (``<stem>.vrt`` and ``tiles/<stem>/<tile>.tif``), units,
a long name with the formula's home in science.md, and a style kind for QGIS.
"""
from __future__ import annotations

from dataclasses import dataclass

SINK_POSITIVE = "positive = carbon sink (uptake/sequestration); negative = source/loss"


@dataclass(frozen=True)
class Variable:
    stem: str
    units: str
    long_name: str
    style: str  # sequential | diverging | classes
    formula: str = ""
    sign: str = ""


def stock_pool(pool: str, year: int) -> Variable:
    return Variable(
        f"stock_{pool}_tC_ha_{year}", "t C ha-1",
        f"carbon density, {pool} pool, {year}", "sequential",
        "C_pool = table[class].pool (science.md 3.1; InVEST Carbon)",
    )


def stock_total(year: int) -> Variable:
    return Variable(
        f"stock_total_tC_ha_{year}", "t C ha-1", f"carbon density, total of 4 pools, {year}",
        "sequential", "C_total = C_above + C_below + C_soil + C_dead (science.md 3.1)",
    )


def stock_change(y1: int, y2: int) -> Variable:
    return Variable(
        f"stock_change_tC_ha_{y1}_{y2}", "t C ha-1", f"carbon density change {y1} to {y2}",
        "diverging", f"dC = C_total({y2}) - C_total({y1}) (science.md 3.1)", SINK_POSITIVE,
    )


def stock_rate(y1: int, y2: int) -> Variable:
    return Variable(
        f"stock_rate_tC_ha_yr_{y1}_{y2}", "t C ha-1 yr-1",
        f"annual carbon density change {y1} to {y2}", "diverging",
        f"rate = dC / ({y2} - {y1}) (science.md 3.1)", SINK_POSITIVE,
    )


def landcover_class(year: int) -> Variable:
    return Variable(
        f"landcover_class_{year}", "class id", f"canonical land-cover class, {year}", "classes",
        "legend CSV: source code -> canonical class (science.md 7)",
    )


def npp(year: int) -> Variable:
    return Variable(
        f"npp_gC_m2_yr_{year}", "g C m-2 yr-1", f"net primary production (CASA), {year}",
        "sequential", "NPP = sum_months SOL * FPAR * 0.5 * Te1 * Te2 * We * eps_max (science.md 1.1)",
    )


def rh(year: int) -> Variable:
    return Variable(
        f"rh_gC_m2_yr_{year}", "g C m-2 yr-1", f"soil heterotrophic respiration (Pei et al. 2009), {year}",
        "sequential", "Rh = 0.22 (exp(0.0912 T) + ln(0.3145 P + 1)) * 30 * 0.465 per month (science.md 2.1)",
    )


def nep(year: int) -> Variable:
    return Variable(
        f"nep_gC_m2_yr_{year}", "g C m-2 yr-1", f"net ecosystem production, {year}", "diverging",
        "NEP = NPP - Rh, summed over 12 months (science.md 2.3)", SINK_POSITIVE,
    )


def monthly(name: str, year: int) -> Variable:
    return Variable(
        f"{name}_gC_m2_month_{year}", "g C m-2 month-1", f"monthly {name.upper()} {year} (bands = Jan..Dec)",
        "diverging" if name == "nep" else "sequential",
    )
