"""Vector deliverables and a QGIS project: ``zones.gpkg``, ``geojson/*.geojson``, ``tanhui.qgs``.

What a run writes here (issue 4 §3), all atomically (:mod:`tanhui.outputs`):

``zones.gpkg``
    One polygon layer per region/zone layer (``regions``, ``zone_<kind>``) in the grid CRS,
    each feature carrying the statistics of its "all classes" row (areas from pixels and
    from the polygon and their difference, stocks, change and rate, NPP/Rh/NEP, t CO2,
    means, valid shares, partial-pixel counts); a table ``class_totals`` (no geometry) with
    the per-class rows of every layer; QGIS default styles in ``layer_styles`` (outline and
    labels for regions, a graduated map of a per-area field for zones); the overlap note
    (:data:`OVERLAP_NOTE`) as every layer's description and as dataset metadata.
``geojson/<layer>.geojson``
    The same polygon layers as RFC 7946 GeoJSON (lon/lat), with the note as the
    collection's ``description`` member (a GDAL convention; RFC 7946 §6.1 foreign member).
``tanhui.qgs``
    A QGIS 3 project written as XML (QGIS is not needed at run time): the VRT mosaics with
    their QML renderers embedded, the GeoPackage layers with their styles embedded, the
    regions on top; project CRS = grid CRS; relative paths, so the output folder can be
    moved or zipped. Layer tree: Regions & zones / Carbon sink / Carbon stock / Land cover.

Choropleths map per-area means (g C m-2 yr-1, t C ha-1), not totals: a total grows with a
zone's size and would colour large zones as strong sinks. One set of class breaks serves
every polygon layer so colours compare across regions and zone kinds.

The project declares QGIS 3.22 (the oldest 3.x LTR in Debian stable) and is checked in a
real QGIS by ``tests/qgis_check.py``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import re
import sqlite3
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import styles
from .errors import OutputError
from .outputs import atomic_path, write_geojson, write_gpkg_layers

if TYPE_CHECKING:
    import geopandas as gpd
    import pyproj

    from .context import PolygonLayer, RunContext

log = logging.getLogger("tanhui")

__all__ = [
    "GPKG_NAME",
    "OVERLAP_NOTE",
    "QGS_NAME",
    "gpkg_layer_name",
    "write_vector_and_qgis_outputs",
]

GPKG_NAME = "zones.gpkg"
QGS_NAME = "tanhui.qgs"
CLASS_TABLE = "class_totals"
QGIS_VERSION = "3.22.0"

#: Written into every layer description, the GeoPackage metadata, every GeoJSON and the
#: QGIS project abstract.
OVERLAP_NOTE = (
    "Results of different layers must never be added together: the 三线 (ecological "
    "protection red line, permanent basic farmland, urban development boundary) overlap each "
    "other and the 三区 (ecological, agricultural, urban space), and every zone overlaps the "
    "regions, so the same pixels are counted in each layer. Add features only within one "
    "layer. 注意：三线相互重叠并与三区重叠，各分区与行政区重叠；不同图层的结果不得相加，"
    "仅可在同一图层内汇总。 Sign convention: positive NEP and stock change = carbon sink."
)

ZONE_TITLES = {
    "ecological_space": "生态空间 ecological space",
    "agricultural_space": "农业空间 agricultural space",
    "urban_space": "城镇空间 urban space",
    "ecological_protection_red_line": "生态保护红线 ecological protection red line",
    "permanent_basic_farmland": "永久基本农田 permanent basic farmland",
    "urban_development_boundary": "城镇开发边界 urban development boundary",
}

_DROP_KEYS = ("layer", "class_id", "class_name")
_REGION_OUTLINE = "#1a1a1a"


# --------------------------------------------------------------------------- entry point


def write_vector_and_qgis_outputs(ctx: RunContext, out_dir: Path,
                                  tables: dict[str, pd.DataFrame]) -> list[str]:
    """Write ``zones.gpkg``, ``geojson/<layer>.geojson`` and ``tanhui.qgs`` into ``out_dir``.

    Parameters
    ----------
    ctx : RunContext
        ``ctx.layers`` (regions and zone layers, geometries in the grid CRS) and
        ``ctx.grid.crs`` are used.
    out_dir : Path
        The run's output folder; the VRT mosaics and their ``.qml`` styles must already be
        there (``delivery.write_mosaics``).
    tables : dict of str to DataFrame
        ``tables[layer.key]`` from :func:`tanhui.tables.assemble_tables`.

    Returns
    -------
    list of str
        Written files, relative to ``out_dir`` (POSIX separators).
    """
    out_dir = Path(out_dir)
    if not ctx.layers:
        log.info("no region or zone layers: zones.gpkg and GeoJSON skipped")
    frames: dict[str, gpd.GeoDataFrame] = {}
    for layer in ctx.layers:
        frames[gpkg_layer_name(layer)] = feature_frame(layer, tables.get(layer.key))
    written: list[str] = []
    vstyles: dict[str, _VectorStyle] = {}
    if frames:
        choro = choose_choropleth(frames.values())
        for layer in ctx.layers:
            name = gpkg_layer_name(layer)
            vstyles[name] = (
                _VectorStyle("outline", styles.vector_qml_outline(
                    _REGION_OUTLINE, 0.6, label_field="feature_name"))
                if layer.key == "regions" else _VectorStyle("graduated", choro.qml, choro)
            )
        class_rows = class_frame(ctx.layers, tables)
        _write_gpkg(out_dir / GPKG_NAME, frames, class_rows,
                    {k: v.qml for k, v in vstyles.items()}, ctx)
        written.append(GPKG_NAME)
        gdir = out_dir / "geojson"
        gdir.mkdir(exist_ok=True)
        for name, gdf in frames.items():
            path = gdir / f"{name}.geojson"
            write_geojson(gdf, path)
            _add_geojson_description(path, OVERLAP_NOTE)
            written.append(f"geojson/{name}.geojson")
        if "regions" in frames:
            vstyles["regions_choropleth"] = _VectorStyle("graduated", choro.qml, choro)
    write_qgis_project(ctx, out_dir, frames, vstyles,
                       class_table=CLASS_TABLE if frames else None)
    written.append(QGS_NAME)
    return written


def gpkg_layer_name(layer: PolygonLayer) -> str:
    """``regions`` for the region layer, ``zone_<kind>`` for a zone layer (as the CSV names)."""
    if layer.key == "regions":
        return "regions"
    return "zone_" + re.sub(r"[^0-9A-Za-z_]", "_", layer.key.split(":", 1)[-1])


# --------------------------------------------------------------------------- attribute tables


def _last_year(columns: Iterable[str], prefix: str) -> int | None:
    years = [int(m.group(1)) for c in columns if (m := re.fullmatch(prefix + r"(\d{4})", c))]
    return max(years) if years else None


def _all_rows(table: pd.DataFrame | None) -> pd.DataFrame:
    if table is None or table.empty or "class_id" not in table:
        return pd.DataFrame(columns=["feature_id", "feature_name"])
    return table[table["class_id"].astype(str) == "all"]


def feature_frame(layer: PolygonLayer, table: pd.DataFrame | None) -> gpd.GeoDataFrame:
    """One feature per polygon with the statistics of its "all classes" row.

    Columns: ``feature_id``, ``feature_name``, ``area_ha_<y>`` (from pixels, coverage
    weighted), ``polygon_area_ha``, ``area_diff_ha_<y>`` (pixels - polygon) and
    ``area_diff_pct_<y>``, ``n_pixels_<y>``, ``n_partial_pixels_<y>``, then every
    statistic of the table in its order. Polygons without statistics keep NaN values.
    Geometry: the layer's polygons in the grid CRS, as MultiPolygons.
    """
    import geopandas as gpd
    from shapely.geometry import MultiPolygon, Polygon

    gdf = layer.gdf
    ids = gdf[layer.id_field].astype(str)
    names = gdf[layer.name_field].astype(str) if layer.name_field else ids
    base = pd.DataFrame({"feature_id": ids.to_numpy(), "feature_name": names.to_numpy()})
    rows = _all_rows(table).drop(columns=[*_DROP_KEYS, "feature_name"], errors="ignore")
    rows = rows.assign(feature_id=rows["feature_id"].astype(str))
    df = base.merge(rows, on="feature_id", how="left", validate="one_to_one")
    year = _last_year(df.columns, "area_ha_")
    if year is not None and "polygon_area_ha" in df:
        area = df[f"area_ha_{year}"]
        df[f"area_diff_ha_{year}"] = area - df["polygon_area_ha"]
        poly = df["polygon_area_ha"]
        with np.errstate(divide="ignore", invalid="ignore"):
            df[f"area_diff_pct_{year}"] = np.where(poly > 0, 100.0 * (area - poly) / poly, np.nan)
    first = ["feature_id", "feature_name"]
    if year is not None:
        first += [c for c in (f"area_ha_{year}", "polygon_area_ha", f"area_diff_ha_{year}",
                              f"area_diff_pct_{year}", f"n_pixels_{year}",
                              f"n_partial_pixels_{year}") if c in df]
    df = df[first + [c for c in df.columns if c not in first]]
    geoms = [MultiPolygon([g]) if isinstance(g, Polygon) else g for g in gdf.geometry]
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(geoms, crs=gdf.crs), crs=gdf.crs)


def class_frame(layers: Sequence[PolygonLayer], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The per-class rows of every polygon layer in one table; ``layer`` = GeoPackage layer name."""
    parts = []
    for layer in layers:
        t = tables.get(layer.key)
        if t is None or t.empty or "class_id" not in t:
            continue
        rows = t[t["class_id"].astype(str) != "all"].copy()
        if rows.empty:
            continue
        rows["layer"] = gpkg_layer_name(layer)
        rows["feature_id"] = rows["feature_id"].astype(str)
        rows["class_id"] = pd.to_numeric(rows["class_id"]).astype("int64")
        parts.append(rows.dropna(axis=1, how="all"))
    if not parts:
        return pd.DataFrame({"layer": pd.Series(dtype=str), "feature_id": pd.Series(dtype=str),
                             "class_id": pd.Series(dtype="int64")})
    out = pd.concat(parts, ignore_index=True)
    keys = ["layer", "feature_id", "feature_name", "class_id", "class_name"]
    return out[[c for c in keys if c in out] + [c for c in out.columns if c not in keys]]


# --------------------------------------------------------------------------- styles


@dataclass(frozen=True)
class Choropleth:
    """The field, class breaks and QML of the graduated polygon style."""

    field: str
    title: str
    units: str
    breaks: tuple[float, ...]
    diverging: bool
    qml: str


@dataclass(frozen=True)
class _VectorStyle:
    kind: str  # "outline" | "graduated"
    qml: str
    choropleth: Choropleth | None = None


_NICE = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_step(x: float) -> float:
    """Smallest 'round' number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k) that is >= ``x`` > 0."""
    if not (x > 0 and math.isfinite(x)):
        return 1.0
    e = math.floor(math.log10(x))
    for m in _NICE:
        v = m * 10.0 ** e
        if v >= x * (1 - 1e-12):
            return float(f"{v:.12g}")
    return 10.0 ** (e + 1)


def class_breaks(values: np.ndarray, *, diverging: bool, n: int = 6) -> tuple[float, ...]:
    """Round class edges covering every finite value.

    Diverging: ``n`` (even) classes symmetric about 0, edges ``k * step`` for
    ``k = -n/2 .. n/2`` with ``step >= max|v| / (n/2)``. Sequential: ``n`` classes of a round
    step from a multiple of the step at or below the minimum.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if diverging:
        half = n // 2
        step = nice_step(float(np.abs(v).max()) / half) if v.size and np.abs(v).max() > 0 else 1.0
        return tuple(float(f"{k * step:.12g}") for k in range(-half, half + 1))
    if not v.size:
        return tuple(float(k) for k in range(n + 1))
    lo, hi = float(v.min()), float(v.max())
    step = nice_step((hi - lo) / n) if hi > lo else nice_step(abs(hi) / n or 1.0)
    start = math.floor(lo / step) * step
    edges = [start + k * step for k in range(n + 1)]
    while edges[-1] < hi:  # rounding of start can push the top below the maximum
        edges.append(edges[-1] + step)
    return tuple(float(f"{e:.12g}") for e in edges)


def choose_choropleth(frames: Iterable[pd.DataFrame]) -> Choropleth:
    """Mean NEP if the run has fluxes, else mean stock change, else mean total stock."""
    frames = list(frames)
    cols: list[str] = []
    for f in frames:
        cols += [c for c in f.columns if c not in cols]
    pick = None
    neps = sorted(c for c in cols if re.fullmatch(r"mean_nep_gC_m2_yr_\d{4}", c))
    changes = sorted(c for c in cols if re.fullmatch(r"mean_stock_change_tC_ha_\d{4}_\d{4}", c))
    totals = sorted(c for c in cols if re.fullmatch(r"mean_stock_total_tC_ha_\d{4}", c))
    if neps:
        c = neps[-1]
        pick = (c, f"mean NEP {c[-4:]}", "g C m-2 yr-1", True)
    elif changes:
        c = changes[-1]
        y1, y2 = c.split("_")[-2:]
        pick = (c, f"mean stock change {y1}–{y2}", "t C ha-1", True)
    elif totals:
        c = totals[-1]
        pick = (c, f"mean carbon stock {c[-4:]}", "t C ha-1", False)
    if pick is None:
        c = "area_ha_" + (str(_last_year(cols, "area_ha_")) if _last_year(cols, "area_ha_") else "")
        pick = (c if c in cols else "feature_id", "area", "ha", False)
    field_, title, units, diverging = pick
    values = np.concatenate([pd.to_numeric(f[field_], errors="coerce").to_numpy(dtype=float)
                             for f in frames if field_ in f] or [np.array([])])
    breaks = class_breaks(values, diverging=diverging)
    qml = styles.vector_qml_graduated(field_, breaks, label_units=units, diverging=diverging)
    return Choropleth(field_, title, units, breaks, diverging, qml)


# --------------------------------------------------------------------------- GeoPackage


def _write_gpkg(path: Path, frames: dict[str, gpd.GeoDataFrame], class_rows: pd.DataFrame,
                qml: dict[str, str], ctx: RunContext) -> None:
    layers: dict[str, pd.DataFrame] = dict(frames)
    layers[CLASS_TABLE] = class_rows
    with atomic_path(path) as tmp:
        # write_gpkg_layers is itself atomic onto `tmp`; the note goes in before the rename.
        write_gpkg_layers(tmp, layers, styles=qml)
        _annotate_gpkg(tmp, list(layers), ctx)


def _gdal_metadata_xml(items: dict[str, str]) -> str:
    root = ET.Element("GDALMultiDomainMetadata")
    md = ET.SubElement(root, "Metadata")
    for k, v in items.items():
        ET.SubElement(md, "MDI", key=k).text = v
    return ET.tostring(root, encoding="unicode")


def _annotate_gpkg(path: Path, layer_names: list[str], ctx: RunContext) -> None:
    """The overlap note as every layer's description (GDAL DESCRIPTION) and dataset metadata.

    The dataset metadata follows GDAL's own layout (GeoPackage metadata extension,
    ``md_standard_uri = 'http://gdal.org'``, scope ``geopackage``), so GDAL and QGIS read it.
    """
    from . import __version__

    items = {
        "DESCRIPTION": OVERLAP_NOTE,
        "TITLE": f"tanhui results per region and zone: {getattr(ctx.project, 'name', '')}".strip(),
        "tanhui_version": __version__,
        "grid": ctx.grid.name,
        "sign_convention": "sink-positive: NEP and stock change > 0 mean net carbon uptake",
        "units": "areas ha; stocks t C and t CO2; fluxes t C yr-1; means t C ha-1 or g C m-2 yr-1",
    }
    con = sqlite3.connect(path)
    try:
        with con:
            # GeoPackage 1.2 header (GDAL's VERSION=1.2 changes only this field): GDAL < 3.7,
            # as in QGIS 3.22-3.28, warns on every open of a 1.4 file; nothing here needs 1.4.
            con.execute("PRAGMA user_version = 10200")
            for name in layer_names:
                con.execute("UPDATE gpkg_contents SET description = ? WHERE table_name = ?",
                            (OVERLAP_NOTE, name))
            con.execute("""CREATE TABLE IF NOT EXISTS gpkg_metadata (
                id INTEGER CONSTRAINT m_pk PRIMARY KEY ASC NOT NULL,
                md_scope TEXT NOT NULL DEFAULT 'dataset',
                md_standard_uri TEXT NOT NULL,
                mime_type TEXT NOT NULL DEFAULT 'text/xml',
                metadata TEXT NOT NULL DEFAULT '')""")
            con.execute("""CREATE TABLE IF NOT EXISTS gpkg_metadata_reference (
                reference_scope TEXT NOT NULL,
                table_name TEXT,
                column_name TEXT,
                row_id_value INTEGER,
                timestamp DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                md_file_id INTEGER NOT NULL,
                md_parent_id INTEGER,
                CONSTRAINT crmr_mfi_fk FOREIGN KEY (md_file_id) REFERENCES gpkg_metadata(id),
                CONSTRAINT crmr_mpi_fk FOREIGN KEY (md_parent_id) REFERENCES gpkg_metadata(id))""")
            con.execute("""CREATE TABLE IF NOT EXISTS gpkg_extensions (
                table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL,
                definition TEXT NOT NULL, scope TEXT NOT NULL,
                CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))""")
            for table in ("gpkg_metadata", "gpkg_metadata_reference"):
                con.execute(
                    "INSERT OR IGNORE INTO gpkg_extensions VALUES (?, NULL, 'gpkg_metadata', "
                    "'http://www.geopackage.org/spec120/#extension_metadata', 'read-write')",
                    (table,))
            cur = con.execute(
                "INSERT INTO gpkg_metadata (md_scope, md_standard_uri, mime_type, metadata) "
                "VALUES ('dataset', 'http://gdal.org', 'text/xml', ?)",
                (_gdal_metadata_xml(items),))
            con.execute(
                "INSERT INTO gpkg_metadata_reference (reference_scope, table_name, column_name,"
                " row_id_value, md_file_id) VALUES ('geopackage', NULL, NULL, NULL, ?)",
                (cur.lastrowid,))
    finally:
        con.close()


def _add_geojson_description(path: Path, text: str) -> None:
    """Add a top-level ``description`` member (read by GDAL/QGIS as the layer description)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = {"type": doc.pop("type"), "name": doc.pop("name", path.stem), "description": text}
    out.update(doc)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n",
                       encoding="utf-8")


# --------------------------------------------------------------------------- QGIS project


@dataclass
class _Layer:
    """One <maplayer> and its place in the layer tree."""

    id: str
    name: str
    source: str  # relative to the project file
    provider: str  # gdal | ogr
    kind: str  # raster | vector
    group: str
    extent: tuple[float, float, float, float] | None
    style: ET.Element  # <qgis> root of the layer's QML
    checked: bool = False
    abstract: str = ""
    geometry: str = "Polygon"  # Polygon | No geometry
    wkb_type: str = "MultiPolygon"


GROUPS = ("Regions & zones", "Carbon sink", "Carbon stock", "Land cover", "Other rasters")

_RASTER_TITLES = (
    (r"nep_gC_m2_yr_(\d{4})", "NEP {0} (g C m-2 yr-1, + = sink)", "Carbon sink", 0),
    (r"stock_change_tC_ha_(\d{4})_(\d{4})", "Stock change {0}–{1} (t C ha-1, + = sink)",
     "Carbon sink", 1),
    (r"stock_rate_tC_ha_yr_(\d{4})_(\d{4})", "Stock change rate {0}–{1} (t C ha-1 yr-1, + = sink)",
     "Carbon sink", 2),
    (r"npp_gC_m2_yr_(\d{4})", "NPP {0} (g C m-2 yr-1)", "Carbon sink", 3),
    (r"rh_gC_m2_yr_(\d{4})", "Soil heterotrophic respiration Rh {0} (g C m-2 yr-1)",
     "Carbon sink", 4),
    (r"(?:nep|npp|rh)_.*", "{stem}", "Carbon sink", 5),
    (r"stock_total_tC_ha_(\d{4})", "Carbon stock, total {0} (t C ha-1)", "Carbon stock", 0),
    (r"stock_above_tC_ha_(\d{4})", "Carbon stock, above-ground {0} (t C ha-1)", "Carbon stock", 1),
    (r"stock_below_tC_ha_(\d{4})", "Carbon stock, below-ground {0} (t C ha-1)", "Carbon stock", 2),
    (r"stock_soil_tC_ha_(\d{4})", "Carbon stock, soil {0} (t C ha-1)", "Carbon stock", 3),
    (r"stock_dead_tC_ha_(\d{4})", "Carbon stock, dead organic matter {0} (t C ha-1)",
     "Carbon stock", 4),
    (r"landcover_class_(\d{4})", "Land cover {0} (canonical classes)", "Land cover", 0),
)


def raster_title(stem: str) -> tuple[str, str, tuple]:
    """(layer title, group, sort key) of a mosaic; later years first within a variable."""
    for pattern, title, group, rank in _RASTER_TITLES:
        if m := re.fullmatch(pattern, stem):
            years = [int(g) for g in m.groups()]
            return (title.format(*m.groups(), stem=stem), group,
                    (rank, [-y for y in years], stem))
    return stem, "Other rasters", (99, [], stem)


def _layer_id(name: str, source: str) -> str:
    safe = re.sub(r"[^0-9A-Za-z_]", "_", name)[:40].strip("_") or "layer"
    return f"{safe}_{hashlib.sha1(source.encode()).hexdigest()[:10]}"


def _qml_root(qml: str) -> ET.Element:
    root = ET.fromstring(qml)
    if root.tag != "qgis":
        raise OutputError(f"QGIS project: a style has root <{root.tag}>, expected <qgis>. "
                          "This is a bug in tanhui.styles; please report it.")
    return root


def _raster_layers(ctx: RunContext, out_dir: Path) -> list[_Layer]:
    import rasterio

    keyed = []
    for vrt in sorted(out_dir.glob("*.vrt")):
        stem = vrt.stem
        missing = _missing_sources(vrt)
        if missing:  # e.g. a mosaic left from an earlier run whose tiles were cleared
            log.warning("%s left out of %s: %d of its tiles are missing (e.g. %s)", vrt.name,
                        QGS_NAME, len(missing), missing[0])
            continue
        qml_path = vrt.with_suffix(".qml")
        if qml_path.is_file():
            qml = qml_path.read_text(encoding="utf-8")
        else:  # a mosaic without its style: rebuild it as delivery does
            from .delivery import style_for

            qml = style_for(ctx, stem)
        with rasterio.open(vrt) as src:
            b = src.bounds
            extent = (b.left, b.bottom, b.right, b.top)
            desc = src.tags().get("long_name", "")
        title, group, key = raster_title(stem)
        source = f"./{vrt.name}"
        lay = _Layer(_layer_id(stem, source), title, source, "gdal", "raster", group, extent,
                     _qml_root(qml), abstract=desc or stem)
        keyed.append(((GROUPS.index(group), key), lay))
    layers = [lay for _, lay in sorted(keyed, key=lambda kl: kl[0])]
    # One headline raster visible: NEP if present, else the stock change, else the first.
    if layers:
        layers[0].checked = True
    return layers


def _missing_sources(vrt: Path) -> list[str]:
    """Source files of a VRT mosaic that do not exist."""
    try:
        root = ET.parse(vrt).getroot()
    except ET.ParseError:
        return [vrt.name]
    missing = []
    for el in root.iter("SourceFilename"):
        name = el.text or ""
        path = vrt.parent / name if el.get("relativeToVRT") == "1" else Path(name)
        if not path.is_file():
            missing.append(name)
    return missing


def _zone_title(name: str, choro: Choropleth | None) -> str:
    kind = name.removeprefix("zone_")
    base = ZONE_TITLES.get(kind, kind.replace("_", " "))
    return f"{base}: {choro.title} ({choro.units})" if choro else base


def _vector_layers(frames: dict[str, gpd.GeoDataFrame], vstyles: dict[str, _VectorStyle],
                   class_table: str | None) -> list[_Layer]:
    layers = []
    zones = [n for n in frames if n != "regions"]

    def extent(gdf):
        if gdf.empty:
            return None
        x0, y0, x1, y1 = (float(v) for v in gdf.total_bounds)
        return (x0, y0, x1, y1) if all(map(math.isfinite, (x0, y0, x1, y1))) else None

    def add(name, title, style: _VectorStyle, checked, gpkg_layer):
        source = f"./{GPKG_NAME}|layername={gpkg_layer}"
        layers.append(_Layer(_layer_id(name, source + style.kind), title, source, "ogr",
                             "vector", "Regions & zones", extent(frames[gpkg_layer]),
                             _qml_root(style.qml), checked=checked, abstract=OVERLAP_NOTE))

    if "regions" in frames:
        add("regions", "Regions 行政区 (outline)", vstyles["regions"], True, "regions")
    for name in zones:
        add(name, _zone_title(name, vstyles[name].choropleth), vstyles[name], False, name)
    if "regions_choropleth" in vstyles:
        ch = vstyles["regions_choropleth"].choropleth
        add("regions_choropleth", f"Regions 行政区: {ch.title} ({ch.units})",
            vstyles["regions_choropleth"], False, "regions")
    if class_table:
        source = f"./{GPKG_NAME}|layername={class_table}"
        layers.append(_Layer(_layer_id(class_table, source), "Per-class totals (table)", source,
                             "ogr", "vector", "Regions & zones", None, ET.Element("qgis"),
                             abstract=OVERLAP_NOTE, geometry="No geometry",
                             wkb_type="NoGeometry"))
    return layers


def _crs_info(crs: pyproj.CRS) -> dict[str, str]:
    import pyproj

    crs = pyproj.CRS.from_user_input(crs)
    epsg = crs.to_epsg(min_confidence=100)
    with warnings.catch_warnings():  # PROJ strings are lossy; QGIS reads the WKT first
        warnings.simplefilter("ignore", UserWarning)
        proj4 = crs.to_proj4() or ""
    m = re.search(r"\+proj=(\S+)", proj4 or "")
    return {
        # WKT first: QGIS reads it losslessly; an authority id makes it a known CRS.
        "wkt": crs.to_wkt("WKT2_2019"),
        "proj4": proj4 or "",
        "srsid": "0",
        "srid": str(epsg or 0),
        "authid": f"EPSG:{epsg}" if epsg else "",
        "description": crs.name,
        "projectionacronym": m.group(1) if m else "",
        "ellipsoidacronym": "",
        "geographicflag": "true" if crs.is_geographic else "false",
    }


def _srs(parent: ET.Element, tag: str | None, info: dict[str, str]) -> None:
    holder = ET.SubElement(parent, tag) if tag else parent
    srs = ET.SubElement(holder, "spatialrefsys")
    for k, v in info.items():
        ET.SubElement(srs, k).text = v


def _extent_el(parent: ET.Element, tag: str, ext: Sequence[float]) -> None:
    el = ET.SubElement(parent, tag)
    for k, v in zip(("xmin", "ymin", "xmax", "ymax"), ext):
        ET.SubElement(el, k).text = repr(float(v))


def _wgs84(ext: Sequence[float], crs) -> tuple[float, float, float, float] | None:
    import pyproj

    try:
        t = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)
        b = t.transform_bounds(*ext, densify_pts=21)
    except Exception:  # noqa: BLE001 - an outline extent is optional metadata
        return None
    return b if all(map(math.isfinite, b)) else None


def _maplayer(parent: ET.Element, lay: _Layer, crs_info: dict[str, str], crs) -> None:
    style = lay.style
    attrs = {"type": lay.kind, "hasScaleBasedVisibilityFlag": "0", "minScale": "1e+08",
             "maxScale": "0", "styleCategories": "AllStyleCategories", "autoRefreshEnabled": "0",
             "autoRefreshTime": "0", "refreshOnNotifyEnabled": "0",
             "refreshOnNotifyMessage": "", "legendPlaceholderImage": ""}
    if lay.kind == "vector":
        attrs.update({"geometry": lay.geometry, "wkbType": lay.wkb_type, "readOnly": "0",
                      "labelsEnabled": style.get("labelsEnabled", "0"),
                      "simplifyDrawingHints": style.get("simplifyDrawingHints", "1"),
                      "simplifyDrawingTol": "1", "simplifyAlgorithm": "0", "simplifyLocal": "1",
                      "simplifyMaxScale": "1", "symbologyReferenceScale": "-1"})
    ml = ET.SubElement(parent, "maplayer", attrs)
    if lay.extent is not None:
        _extent_el(ml, "extent", lay.extent)
        if (w := _wgs84(lay.extent, crs)) is not None:
            _extent_el(ml, "wgs84extent", w)
    ET.SubElement(ml, "id").text = lay.id
    ET.SubElement(ml, "datasource").text = lay.source
    kw = ET.SubElement(ml, "keywordList")
    ET.SubElement(kw, "value").text = "tanhui"
    ET.SubElement(ml, "layername").text = lay.name
    _srs(ml, "srs", crs_info)
    md = ET.SubElement(ml, "resourceMetadata")
    for tag, text in (("identifier", ""), ("parentidentifier", ""), ("language", ""),
                      ("type", "dataset"), ("title", lay.name), ("abstract", lay.abstract)):
        ET.SubElement(md, tag).text = text
    ET.SubElement(md, "links")
    prov = ET.SubElement(ml, "provider")
    prov.text = lay.provider
    if lay.provider == "ogr":
        prov.set("encoding", "UTF-8")
    if lay.kind == "raster":
        nd = ET.SubElement(ml, "noData")
        ET.SubElement(nd, "noDataList", bandNo="1", useSrcNoData="1")
    msm = ET.SubElement(ml, "map-layer-style-manager", current="default")
    ET.SubElement(msm, "map-layer-style", name="default")
    flags = ET.SubElement(ml, "flags")
    for tag, v in (("Identifiable", "1"), ("Removable", "1"), ("Searchable", "1"),
                   ("Private", "0")):
        ET.SubElement(flags, tag).text = v
    # The style: every child of the QML's <qgis> root (pipe/renderer-v2, labeling, blend modes).
    for child in style:
        if child.tag in ("layerGeometryType",):
            continue
        ml.append(child)
    ET.SubElement(ml, "layerOpacity").text = "1"


def _tree_layer(parent: ET.Element, lay: _Layer) -> None:
    el = ET.SubElement(parent, "layer-tree-layer", {
        "id": lay.id, "name": lay.name, "source": lay.source, "providerKey": lay.provider,
        "checked": "Qt::Checked" if lay.checked else "Qt::Unchecked", "expanded": "1",
        "legend_exp": "", "patch_size": "-1,-1", "legend_split_behavior": "0"})
    ET.SubElement(ET.SubElement(el, "customproperties"), "Option")


def _union(extents: Iterable[tuple[float, float, float, float] | None]):
    ex = [e for e in extents if e is not None]
    if not ex:
        return None
    return (min(e[0] for e in ex), min(e[1] for e in ex), max(e[2] for e in ex),
            max(e[3] for e in ex))


def write_qgis_project(ctx: RunContext, out_dir: Path, frames: dict[str, gpd.GeoDataFrame],
                       vstyles: dict[str, _VectorStyle], class_table: str | None) -> Path:
    """Write ``tanhui.qgs``: every mosaic and polygon layer, styled, grouped, relative paths."""
    crs = ctx.grid.crs
    info = _crs_info(crs)
    vlayers = _vector_layers(frames, vstyles, class_table)
    rlayers = _raster_layers(ctx, out_dir)
    ordered = vlayers + rlayers  # layer-tree order = drawing order, top first
    title = f"tanhui: {getattr(ctx.project, 'name', '')}".strip()

    root = ET.Element("qgis", {"projectname": title, "version": QGIS_VERSION,
                               "saveUser": "tanhui", "saveUserFull": "tanhui",
                               "saveDateTime": _dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")})
    ET.SubElement(root, "homePath", path="")
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "autotransaction", active="0")
    ET.SubElement(root, "evaluateDefaultValues", active="0")
    ET.SubElement(root, "trust", active="0")
    _srs(root, "projectCrs", info)

    tree = ET.SubElement(root, "layer-tree-group")
    ET.SubElement(ET.SubElement(tree, "customproperties"), "Option")
    for group in GROUPS:
        members = [lay for lay in ordered if lay.group == group]
        if not members:
            continue
        g = ET.SubElement(tree, "layer-tree-group", name=group, checked="Qt::Checked",
                          expanded="1" if group == "Regions & zones" else "0")
        ET.SubElement(ET.SubElement(g, "customproperties"), "Option")
        for lay in members:
            _tree_layer(g, lay)
    ordered = [lay for group in GROUPS for lay in ordered if lay.group == group]
    co = ET.SubElement(tree, "custom-order", enabled="0")
    for lay in reversed(ordered):
        ET.SubElement(co, "item").text = lay.id

    ET.SubElement(root, "relations")
    view = _union([lay.extent for lay in vlayers if lay.geometry != "No geometry"]) or _union(
        [lay.extent for lay in rlayers]) or tuple(ctx.grid.bounds)
    pad_x, pad_y = 0.03 * (view[2] - view[0]), 0.03 * (view[3] - view[1])
    view = (view[0] - pad_x, view[1] - pad_y, view[2] + pad_x, view[3] + pad_y)
    canvas = ET.SubElement(root, "mapcanvas", name="theMapCanvas", annotationsVisible="1")
    geographic = info["geographicflag"] == "true"
    ET.SubElement(canvas, "units").text = "degrees" if geographic else "meters"
    _extent_el(canvas, "extent", view)
    ET.SubElement(canvas, "rotation").text = "0"
    _srs(canvas, "destinationsrs", info)
    ET.SubElement(canvas, "rendermaptile").text = "0"

    layers_el = ET.SubElement(root, "projectlayers")
    for lay in ordered:
        _maplayer(layers_el, lay, info, crs)
    order = ET.SubElement(root, "layerorder")
    for lay in ordered:
        ET.SubElement(order, "layer", id=lay.id)

    props = ET.SubElement(root, "properties")
    paths = ET.SubElement(props, "Paths")
    ET.SubElement(paths, "Absolute", type="bool").text = "false"
    srs_props = ET.SubElement(props, "SpatialRefSys")
    ET.SubElement(srs_props, "ProjectionsEnabled", type="int").text = "1"
    meas = ET.SubElement(props, "Measurement")
    ET.SubElement(meas, "AreaUnits", type="QString").text = "ha"
    ET.SubElement(meas, "DistanceUnits", type="QString").text = "km"

    meta = ET.SubElement(root, "projectMetadata")
    for tag, text in (("identifier", ""), ("parentidentifier", ""), ("language", ""),
                      ("type", ""), ("title", title), ("abstract", OVERLAP_NOTE)):
        ET.SubElement(meta, tag).text = text
    ET.SubElement(meta, "links")
    ET.SubElement(meta, "author").text = "tanhui"
    ET.SubElement(meta, "creation").text = _dt.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")

    pvs = ET.SubElement(root, "ProjectViewSettings", UseProjectScales="0", rotation="0")
    ET.SubElement(pvs, "Scales")
    dve = ET.SubElement(pvs, "DefaultViewExtent", xmin=repr(view[0]), ymin=repr(view[1]),
                        xmax=repr(view[2]), ymax=repr(view[3]))
    _srs(dve, None, info)

    ET.indent(root, space="  ")
    text = ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            + ET.tostring(root, encoding="unicode") + "\n")
    path = out_dir / QGS_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
