"""Figures and small report tables for notebooks: maps of output mosaics, bars per region,
land-cover transitions.

Needs matplotlib (extra ``notebooks``); it is imported inside the functions, so that
``import tanhui`` stays light.

Main entry points
-----------------
decimate(da, max_size=1000)                     block mean (or nearest sample) for display
map_raster(da, kind=..., outlines=..., ...)     one map, colour bar labelled with the units
map_classes(da, outlines=...)                   land-cover classes in the canonical colours
add_outlines(ax, shapes, like, color=...)       more polygons (e.g. planning zones) on a map
bar_by_region(values, units=...)                horizontal bars; sinks green, sources brown
rasterize_regions(like, regions)                polygon index per mosaic pixel (pixel centres)
transitions(lc_from, lc_to, value=..., ...)     area (and a density total) per class pair
transition_table(lc_from, lc_to)                cross-tab class_from x class_to in ha
pixel_area_ha(da)                               the area of one pixel of an equal-area mosaic
save_figure(fig, path)                          PNG at 150 dpi in a folder that is created

Labels in Chinese need a CJK font; where none is installed (``fc-list :lang=zh`` is empty)
the functions refuse Chinese labels instead of drawing empty boxes, and the notebooks use
the English names (``name_en`` in the demo's county GeoJSON, ``label_en`` for classes).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from .errors import GridMismatchError, InputValueError, MissingCRSError

if TYPE_CHECKING:  # pragma: no cover
    import geopandas as gpd
    import xarray as xr
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SINK_COLOUR = "#1b7837"    # green: positive = carbon taken up
SOURCE_COLOUR = "#a6611a"  # brown: negative = carbon released
MapKind = Literal["sequential", "diverging"]

# font families that cover Chinese (Debian fonts-noto-cjk, fonts-wqy-*, Windows, macOS)
_CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Serif CJK SC", "Source Han Sans SC",
                 "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "SimHei", "Microsoft YaHei",
                 "PingFang SC", "Heiti SC")


# ------------------------------------------------------------------------------ fonts, names

def _has_cjk(text: str) -> bool:
    return any(0x2E80 <= ord(ch) <= 0x9FFF or 0xF900 <= ord(ch) <= 0xFAFF for ch in text)


def cjk_font() -> str | None:
    """The family name of an installed font that covers Chinese, or None."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in _CJK_FAMILIES if name in installed), None)


def _font_for(labels: Iterable[object], what: str) -> dict:
    """Font keywords for text that may hold Chinese; refuses it when no CJK font exists."""
    chinese = [str(s) for s in labels if _has_cjk(str(s))]
    if not chinese:
        return {}
    family = cjk_font()
    if family is None:
        raise InputValueError(
            f"{what} contain Chinese characters ({chinese[:3]}) but no font covering Chinese "
            f"is installed (looked for {', '.join(_CJK_FAMILIES[:4])}, ...); matplotlib would "
            "draw empty boxes. Pass English or pinyin names (e.g. the 'name_en' field of the "
            "demo's counties.geojson) or install a CJK font (Debian: apt-get install "
            "fonts-noto-cjk).")
    return {"fontfamily": family}


def class_labels() -> pd.Series:
    """English labels of the canonical land-cover classes, indexed by class id."""
    from .legends import load_classes

    return load_classes()["label_en"]


# ------------------------------------------------------------------------------ rasters

def decimate(da: xr.DataArray, max_size: int = 1000, *, categorical: bool = False) -> xr.DataArray:
    """Reduce a (y, x) raster for display so that neither side exceeds ``max_size`` pixels.

    Continuous values are block means (NaN ignored; a block of only NaN stays NaN);
    ``categorical=True`` (class maps) takes the centre pixel of each block instead.
    The result is still lazy when ``da`` is; units and other ``attrs`` are kept.
    """
    if max_size < 1:
        raise InputValueError(f"decimate: max_size is {max_size}; expected a positive pixel count.")
    factor = math.ceil(max(da.sizes["y"], da.sizes["x"]) / max_size)
    if factor <= 1:
        return da
    if categorical:
        half = factor // 2
        out = da.isel(y=slice(half, None, factor), x=slice(half, None, factor))
    else:
        out = da.coarsen(y=factor, x=factor, boundary="trim").mean(keep_attrs=True)
    out.attrs = dict(da.attrs)
    return out


def _crs_of(da: xr.DataArray):
    import pyproj

    crs = da.rio.crs
    if crs is None:
        raise MissingCRSError(f"raster '{da.name}' has no CRS (rio.crs is None); open it with "
                              "tanhui.open_output() or set one with da.rio.write_crs().")
    return pyproj.CRS.from_user_input(crs.to_wkt())


def pixel_area_ha(da: xr.DataArray) -> float:
    """The area of one pixel (ha) of a mosaic on an equal-area grid (6.25 ha at 250 m).

    Raises
    ------
    GridMismatchError
        If the CRS does not preserve area (geographic or conformal projections), where
        pixel areas differ from pixel to pixel.
    """
    from .grid import EQUAL_AREA_METHODS

    crs = _crs_of(da)
    op = crs.coordinate_operation
    if not crs.is_projected or op is None or op.method_name not in EQUAL_AREA_METHODS:
        raise GridMismatchError(
            f"raster '{da.name}' is on '{crs.name}', which is not an equal-area projection, so its "
            "pixels differ in area; pass pixel_area_ha= explicitly or use an equal-area grid "
            "(e.g. china_albers_250m).")
    res_x, res_y = da.rio.resolution()
    metres = float(crs.axis_info[0].unit_conversion_factor)
    return abs(res_x * res_y) * metres**2 / 1e4


_pixel_area_of = pixel_area_ha  # for functions whose keyword of the same name shadows it


def _edges(da: xr.DataArray) -> tuple[float, float, float, float]:
    """(left, right, bottom, top) of the pixel edges, for imshow's ``extent``."""
    x, y = da["x"].to_numpy(), da["y"].to_numpy()
    dx = (x[1] - x[0]) if x.size > 1 else abs(da.rio.resolution()[0])
    dy = (y[1] - y[0]) if y.size > 1 else -abs(da.rio.resolution()[1])
    return x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2


def _set_title(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=10, **_font_for([title], "the title"))


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _km_axes(ax: Axes, crs_name: str) -> None:
    from matplotlib.ticker import FuncFormatter

    km = FuncFormatter(lambda v, _pos: f"{v / 1000:,.0f}")
    ax.xaxis.set_major_formatter(km)
    ax.yaxis.set_major_formatter(km)
    ax.set_xlabel(f"Easting (km), {crs_name}", fontsize=7)
    ax.set_ylabel("Northing (km)", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_aspect("equal")


def add_outlines(
    ax: Axes,
    shapes: gpd.GeoDataFrame,
    like: xr.DataArray,
    *,
    color: str = "0.15",
    linewidth: float = 0.6,
    fill_alpha: float = 0.0,
    label: str | None = None,
) -> Axes:
    """Draw polygons over a map of ``like`` (reprojected to its CRS); with ``fill_alpha`` > 0
    they are also filled, translucent. ``label`` names them in ``ax.legend()``."""
    from matplotlib.lines import Line2D

    geoms = shapes.to_crs(_crs_of(like).to_wkt())
    if fill_alpha > 0:
        geoms.plot(ax=ax, color=color, alpha=fill_alpha, linewidth=0)
    geoms.boundary.plot(ax=ax, color=color, linewidth=linewidth)
    if label:
        # a proxy artist: GeoPandas line collections do not carry legend labels reliably
        ax.add_line(Line2D([], [], color=color, linewidth=max(linewidth, 1.5), label=label))
    return ax


def _draw_outlines(ax: Axes, outlines: gpd.GeoDataFrame | None, crs, label_field: str | None,
                   zoom: bool) -> None:
    if outlines is None:
        return
    import matplotlib.patheffects as pe

    shapes = outlines.to_crs(crs.to_wkt())
    shapes.boundary.plot(ax=ax, color="0.15", linewidth=0.6)
    if label_field is not None:
        if label_field not in shapes.columns:
            raise InputValueError(f"outline label field '{label_field}' is not a column of the "
                                  f"outlines (columns: {list(shapes.columns)}). Pick one of them.")
        font = _font_for(shapes[label_field], f"labels from field '{label_field}'")
        halo = [pe.withStroke(linewidth=2.2, foreground="white")]
        for text, geom in zip(shapes[label_field], shapes.geometry):
            pt = geom.representative_point()
            ax.annotate(str(text), (pt.x, pt.y), ha="center", va="center", fontsize=7,
                        path_effects=halo, zorder=10, **font)  # above layers added later
    if zoom:
        x0, y0, x1, y1 = shapes.total_bounds
        pad = 0.04 * max(x1 - x0, y1 - y0)
        ax.set_xlim(x0 - pad, x1 + pad)
        ax.set_ylim(y0 - pad, y1 + pad)


def map_raster(
    da: xr.DataArray,
    *,
    kind: MapKind = "sequential",
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    outlines: gpd.GeoDataFrame | None = None,
    label_field: str | None = None,
    zoom_to_outlines: bool = True,
    max_size: int = 1000,
) -> Axes:
    """Map one output mosaic with a colour bar in its units (``da.attrs['units']``).

    Parameters
    ----------
    da : DataArray (y, x)
        A mosaic from :func:`tanhui.open_output` (lazy is fine; it is decimated first).
    kind : "sequential" or "diverging"
        Diverging maps are centred on 0 with symmetric limits (sink-positive values green,
        losses brown: colormap ``BrBG``); sequential maps use ``YlGn`` from 0.
    vmin, vmax : float, optional
        Colour limits; by default the 98th percentile of the (absolute) values, so that a
        few extreme pixels do not wash out the map (the colour bar then shows an arrow).
    outlines : GeoDataFrame, optional
        Polygons drawn on top (any CRS; reprojected), labelled from ``label_field``; the map
        is zoomed to their extent unless ``zoom_to_outlines=False``.
    max_size : int
        Longest side in pixels after :func:`decimate` (block means).
    """
    crs = _crs_of(da)
    small = decimate(da, max_size)
    values = np.asarray(small.to_numpy(), dtype="float64")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise InputValueError(f"raster '{da.name}' has no valid pixel (all NaN); nothing to map. "
                              "Check that the run covered this area.")
    if kind == "diverging":
        lim = vmax if vmax is not None else float(np.percentile(np.abs(finite), 98)) or 1.0
        lo, hi, cmap = -lim, lim, cmap or "BrBG"
    elif kind == "sequential":
        lo = vmin if vmin is not None else min(0.0, float(np.percentile(finite, 2)))
        hi = vmax if vmax is not None else float(np.percentile(finite, 98))
        cmap = cmap or "YlGn"
    else:
        raise InputValueError(f"map_raster: kind is '{kind}'; expected 'sequential' or "
                              "'diverging'.")
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max",
              (True, True): "both"}[(bool(finite.min() < lo), bool(finite.max() > hi))]
    ax = _new_axes(ax, (7.0, 6.0))
    im = ax.imshow(values, extent=_edges(small), origin="upper", cmap=cmap,
                   vmin=lo, vmax=hi, interpolation="nearest")
    bar = ax.figure.colorbar(im, ax=ax, shrink=0.8, extend=extend)
    bar.set_label(str(da.attrs.get("units", "")) or "(no units)")
    _draw_outlines(ax, outlines, crs, label_field, zoom_to_outlines)
    _km_axes(ax, crs.name)
    _set_title(ax, title or str(da.attrs.get("long_name", da.name)))
    return ax


def map_classes(
    da: xr.DataArray,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    outlines: gpd.GeoDataFrame | None = None,
    label_field: str | None = None,
    zoom_to_outlines: bool = True,
    max_size: int = 1000,
) -> Axes:
    """Map a ``landcover_class_<year>`` mosaic in the canonical class colours, with a legend
    of the classes present (English labels)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from .legends import load_classes

    crs = _crs_of(da)
    small = decimate(da, max_size, categorical=True)
    values = np.asarray(small.to_numpy(), dtype="float64")
    classes = load_classes()
    found = np.unique(values[np.isfinite(values)]).astype(int)
    present = sorted(int(c) for c in found if c in classes.index)
    colours = ["#ffffff"] * 256
    for cid in classes.index:
        colours[int(cid)] = classes.loc[cid, "colour"]
    ax = _new_axes(ax, (8.0, 6.0))
    masked = np.ma.masked_invalid(values)
    ax.imshow(masked, extent=_edges(small), origin="upper", cmap=ListedColormap(colours),
              vmin=-0.5, vmax=255.5, interpolation="nearest")
    handles = [Patch(facecolor=classes.loc[c, "colour"], edgecolor="0.4",
                     label=classes.loc[c, "label_en"]) for c in present]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False)
    _draw_outlines(ax, outlines, crs, label_field, zoom_to_outlines)
    _km_axes(ax, crs.name)
    _set_title(ax, title or str(da.attrs.get("long_name", da.name)))
    return ax


# ------------------------------------------------------------------------------ bar charts

def bar_by_region(
    values: pd.Series,
    *,
    ax: Axes | None = None,
    title: str = "",
    units: str = "",
    sort: bool = True,
    fmt: str = "{:,.0f}",
) -> Axes:
    """Horizontal bars, one per region (the Series index gives the names): positive values
    (sinks) green, negative (sources) brown, each bar labelled with its value."""
    if values.empty:
        raise InputValueError(f"bar_by_region: the Series '{values.name}' is empty; nothing to "
                              "plot. Check the table filter that produced it.")
    data = values.sort_values() if sort else values
    font = _font_for(data.index, "region names (the Series index)")
    ax = _new_axes(ax, (7.0, 0.45 * len(data) + 1.2))
    colours = [SINK_COLOUR if v >= 0 else SOURCE_COLOUR for v in data.to_numpy()]
    bars = ax.barh([str(i) for i in data.index], data.to_numpy(), color=colours)
    ax.bar_label(bars, labels=[fmt.format(v) for v in data.to_numpy()], padding=3, fontsize=7)
    ax.axvline(0.0, color="0.3", linewidth=0.8)
    ax.margins(x=0.18)
    if font:
        for label in ax.get_yticklabels():
            label.set_fontfamily(font["fontfamily"])
    ax.tick_params(labelsize=8)
    ax.set_xlabel(units, fontsize=9, **_font_for([units], "the units label"))
    _set_title(ax, title)
    return ax


def save_figure(fig: Figure, path: str | Path, *, dpi: int = 150) -> Path:
    """Write a figure as PNG (white background, legends outside the axes included),
    creating the folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white", bbox_inches="tight")
    return path


# ------------------------------------------------------------------------------ transitions

def rasterize_regions(like: xr.DataArray, regions: gpd.GeoDataFrame) -> np.ndarray:
    """Row position (0..n-1) of the polygon whose interior holds each pixel centre of
    ``like``; -1 outside every polygon. Where polygons overlap, the later row wins.

    This pixel-centre rule is for figures and breakdowns; the run's own tables weight
    pixels by their exact coverage fraction, so totals can differ by a fraction of a percent.
    """
    from rasterio.features import rasterize

    crs = _crs_of(like)
    shapes = regions.to_crs(crs.to_wkt()).geometry
    pairs = [(geom, i) for i, geom in enumerate(shapes) if geom is not None and not geom.is_empty]
    return rasterize(pairs, out_shape=(like.sizes["y"], like.sizes["x"]),
                     transform=like.rio.transform(), fill=-1, dtype="int32")


def _check_same_grid(a: xr.DataArray, b: xr.DataArray, what: str) -> None:
    if a.shape != b.shape or not (np.allclose(a["x"], b["x"]) and np.allclose(a["y"], b["y"])):
        raise GridMismatchError(
            f"{what}: rasters '{a.name}' {tuple(a.shape)} and '{b.name}' {tuple(b.shape)} are not "
            "on the same pixels; use mosaics of the same run (tanhui.open_output on one out_dir).")


def transitions(
    lc_from: xr.DataArray,
    lc_to: xr.DataArray,
    *,
    value: xr.DataArray | None = None,
    value_name: str = "value_total",
    regions: gpd.GeoDataFrame | None = None,
    region_field: str | None = None,
    pixel_area_ha: float | None = None,
    rows_per_block: int = 1024,
) -> pd.DataFrame:
    """Area of every land-cover transition (class in ``lc_from`` -> class in ``lc_to``),
    optionally per region and with the total of a per-hectare ``value``.

    Parameters
    ----------
    lc_from, lc_to : DataArray (y, x)
        ``landcover_class_<year>`` mosaics of one run (canonical ids 1..14; NaN or 0 = nodata).
    value : DataArray (y, x), optional
        A density per hectare on the same pixels, e.g. ``stock_change_tC_ha_2015_2023``; the
        column ``value_name`` then holds Σ value × pixel area (t C for t C ha⁻¹) over the
        pixels of the transition with a finite value.
    regions, region_field : GeoDataFrame and column, optional
        Adds a ``region`` column (from ``region_field``; the row position if None); pixels are
        assigned by their centre (:func:`rasterize_regions`) and pixels outside every region
        are left out.
    pixel_area_ha : float, optional
        Defaults to :func:`pixel_area_ha` (equal-area grids only).

    Returns
    -------
    DataFrame with ``[region,] class_from, class_to, label_from, label_to, n_pixels,
    area_ha[, value_name]``, one row per transition present (unchanged pixels included,
    as class_from == class_to), sorted by region and classes.
    """
    _check_same_grid(lc_from, lc_to, "transitions")
    if value is not None:
        _check_same_grid(lc_from, value, "transitions")
    area_ha = pixel_area_ha if pixel_area_ha is not None else _pixel_area_of(lc_from)
    labels = rasterize_regions(lc_from, regions) if regions is not None else None
    n_regions = len(regions) if regions is not None else 1
    size = n_regions * 256 * 256
    counts = np.zeros(size, dtype="int64")
    sums = np.zeros(size, dtype="float64")
    for start in range(0, lc_from.sizes["y"], rows_per_block):
        rows = slice(start, start + rows_per_block)
        a = np.asarray(lc_from.isel(y=rows).to_numpy(), dtype="float64")
        b = np.asarray(lc_to.isel(y=rows).to_numpy(), dtype="float64")
        ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0) & (a < 256) & (b < 256)
        reg = labels[rows] if labels is not None else np.zeros(a.shape, dtype="int32")
        ok &= reg >= 0
        key = (reg[ok].astype("int64") * 256 + a[ok].astype("int64")) * 256 + b[ok].astype("int64")
        counts += np.bincount(key, minlength=size)
        if value is not None:
            v = np.asarray(value.isel(y=rows).to_numpy(), dtype="float64")[ok]
            good = np.isfinite(v)
            sums += np.bincount(key[good], weights=v[good], minlength=size)
    present = np.flatnonzero(counts)
    region_idx, rest = np.divmod(present, 256 * 256)
    c_from, c_to = np.divmod(rest, 256)
    names = class_labels()
    out = pd.DataFrame({
        "class_from": c_from, "class_to": c_to,
        "label_from": [names.get(int(c), f"class {c}") for c in c_from],
        "label_to": [names.get(int(c), f"class {c}") for c in c_to],
        "n_pixels": counts[present], "area_ha": counts[present] * area_ha,
    })
    if value is not None:
        out[value_name] = sums[present] * area_ha
    if regions is not None:
        ids = regions[region_field].to_numpy() if region_field else np.arange(n_regions)
        out.insert(0, "region", ids[region_idx])
    return out.reset_index(drop=True)


def transition_table(
    lc_from: xr.DataArray,
    lc_to: xr.DataArray,
    *,
    regions: gpd.GeoDataFrame | None = None,
    pixel_area_ha: float | None = None,
    totals: bool = True,
) -> pd.DataFrame:
    """Cross-tabulation of land-cover area (ha): rows = class in ``lc_from``, columns =
    class in ``lc_to`` (English labels, every class present in either epoch), 0 where a pair
    does not occur; with ``totals`` a 'total' row and column (the class areas of each epoch).
    With ``regions`` only pixels whose centre lies inside one of the polygons count."""
    long = transitions(lc_from, lc_to, regions=regions, pixel_area_ha=pixel_area_ha)
    table = long.pivot_table(index="label_from", columns="label_to", values="area_ha",
                             aggfunc="sum", fill_value=0.0)
    # square, in class-id order: every class present in either epoch is a row and a column
    order = [lab for lab in class_labels() if lab in set(table.index) | set(table.columns)]
    table = table.reindex(index=order, columns=order, fill_value=0.0)
    table.index.name, table.columns.name = f"{lc_from.name} (rows)", f"{lc_to.name} (columns)"
    if totals:
        table["total"] = table.sum(axis=1)
        table.loc["total"] = table.sum(axis=0)
    return table
