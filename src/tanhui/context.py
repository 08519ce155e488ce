"""Everything a run needs, checked: the project resolved into grid, tables, inputs and tiles.

:func:`build_context` is the single place where a project is validated. ``tanhui validate``
calls it and prints the report; ``tanhui run`` calls it before computing anything, so every
bad input fails before the first tile (and before any output is written).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np

from .errors import (
    GridMismatchError,
    InputFileError,
    LegendError,
    MissingCRSError,
    OutputError,
    ParameterTableError,
    ZoneLayerError,
)
from .grid import Shape, TileGrid, TileId
from .legends import DensityTable, Legend, load_classes
from .project import Project
from .rasterio_io import RasterInfo, crs_label, footprint, inspect_raster, is_aligned, unique_codes


@dataclass
class PolygonLayer:
    """A region or zone layer, reprojected to the grid CRS and repaired."""

    key: str  # "regions" or "zones:<kind>"
    kind: str
    path: Path
    id_field: str
    name_field: str | None
    gdf: gpd.GeoDataFrame  # in the grid CRS
    n_repaired: int = 0


@dataclass
class RunContext:
    project: Project
    grid: TileGrid
    legend: Legend | None
    table: DensityTable
    epochs: list[tuple[int, RasterInfo]]
    pool_lut: np.ndarray  # (4, n_codes) float32: source code -> pool densities (t C/ha)
    class_lut: np.ndarray  # (n_codes,) int16: source code -> group id (canonical class or code)
    class_names: dict[int, str]
    n_groups: int
    layers: list[PolygonLayer]
    tiles: list[TileId]
    resampled: dict[str, str] = field(default_factory=dict)
    flux: object | None = None  # FluxContext, built by tanhui.flux_context
    notes: list[str] = field(default_factory=list)

    @property
    def tile_shape(self) -> Shape:
        return self.grid.tile_shape

    def fingerprint(self) -> str:
        """Hash of every parameter that changes results (inputs are checksummed separately)."""
        doc = {
            "grid": self.grid.to_dict(),
            "pool_lut": self.pool_lut.tolist(),
            "class_lut": self.class_lut.tolist(),
            "epochs": [y for y, _ in self.epochs],
            "engine": self.project.engine,
            "layers": [(lay.key, lay.id_field, lay.name_field) for lay in self.layers],
            "flux": repr(self.project.flux),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _resolve_table_name(project: Project, name: str) -> str | Path:
    """A bare name refers to shipped tables; anything path-like is relative to the project."""
    if name.endswith((".csv", ".toml", ".tif", ".tiff", ".vrt")) or "/" in name or "\\" in name:
        p = Path(name)
        return p if p.is_absolute() else project.root / p
    return name


def load_grid(project: Project) -> TileGrid:
    if project.grid == "landcover":
        first = project.epochs[0].path
        inspect_raster(first, what="land-cover raster")
        shape = Shape(*project.tile_shape) if project.tile_shape else Shape(1024, 1024)
        return TileGrid.from_raster(first, tile_shape=shape)
    if project.grid.lower().endswith((".tif", ".tiff", ".vrt")):
        # the pixel grid of another raster (e.g. the NDVI series)
        ref = _resolve_table_name(project, project.grid)
        inspect_raster(ref, what="grid raster")
        shape = Shape(*project.tile_shape) if project.tile_shape else Shape(1024, 1024)
        return TileGrid.from_raster(ref, tile_shape=shape)
    return TileGrid.load(_resolve_table_name(project, project.grid))


def read_polygon_layer(path: Path, id_field: str, name_field: str | None, layer: str | None,
                       grid: TileGrid, key: str, kind: str) -> PolygonLayer:
    """Read a polygon layer, check fields and CRS, repair geometries, reproject to the grid."""
    what = "region layer" if kind == "regions" else f"zone layer ({kind})"
    if not path.exists():
        raise InputFileError(f"{what} {path} does not exist. Check the path in the project file.")
    if path.is_file() and path.stat().st_size == 0:
        raise InputFileError(f"{what} {path} is empty (0 bytes). Re-export it.")
    kw = {"layer": layer} if layer else {}
    encoding = shapefile_encoding(path, layer, what)
    if encoding:
        kw["encoding"] = encoding
    try:
        gdf = gpd.read_file(path, **kw)
    except UnicodeDecodeError as err:
        raise ZoneLayerError(_not_utf8_message(what, path, err)) from err
    except Exception as err:  # pyogrio raises several types for unreadable files
        raise InputFileError(
            f"{what} {path} cannot be read as a vector layer ({str(err).splitlines()[0][:160]}). "
            "Use a GeoPackage, Shapefile or GeoJSON."
        ) from err
    if len(gdf) == 0:
        raise ZoneLayerError(f"{what} {path} has no features. Point to a layer with polygons.")
    if gdf.crs is None:
        raise MissingCRSError(
            f"{what} {path} has no CRS. Define it (e.g. in QGIS: Layer > Set CRS) and save again."
        )
    for fld in (id_field, name_field):
        if fld is not None and fld not in gdf.columns:
            fields = [c for c in gdf.columns if c != "geometry"]
            raise ZoneLayerError(
                f"{what} {path} has no field '{fld}'; its fields are {fields}. "
                "Set id_field/name_field in the project file to one of them."
            )
    if gdf[id_field].isna().any():
        raise ZoneLayerError(f"{what} {path}: field '{id_field}' has empty values. Fill them in.")
    dup = gdf[id_field][gdf[id_field].duplicated()].unique().tolist()
    if dup:
        raise ZoneLayerError(
            f"{what} {path}: field '{id_field}' has duplicate ids {dup[:10]}. Ids must be unique; "
            "dissolve the features or renumber them."
        )
    _check_lonlat(gdf, path, what)
    geom_types = set(gdf.geometry.geom_type.dropna())
    if not geom_types <= {"Polygon", "MultiPolygon"}:
        raise ZoneLayerError(
            f"{what} {path} holds {sorted(geom_types)} geometries; only polygons can be "
            "aggregated. Use a polygon layer."
        )
    empty = gdf.geometry.is_empty | gdf.geometry.isna()
    if empty.all():
        raise ZoneLayerError(f"{what} {path}: every geometry is empty. Re-export the layer.")
    invalid = ~gdf.geometry.is_valid
    n_repaired = int(invalid.sum())
    if n_repaired:
        gdf.loc[invalid, "geometry"] = gdf.geometry[invalid].make_valid()
        # make_valid can return collections, lines or points; keep the polygonal part only
        gdf["geometry"] = gdf.geometry.apply(_polygonal)
        if (gdf.geometry.is_empty | gdf.geometry.isna()).all():
            raise ZoneLayerError(
                f"{what} {path}: no polygon area is left after repairing its {n_repaired} invalid "
                "geometries (they collapse to lines or points, e.g. zero-area rings). Fix the "
                "geometries (QGIS: Vector > Geometry Tools > Fix Geometries) and export again."
            )
    gdf = gdf.to_crs(grid.crs)
    # reprojecting vertex by vertex can turn a ring that touches itself into one that
    # crosses itself by micrometres: check and repair again in the grid CRS
    bad = ~gdf.geometry.is_valid & ~(gdf.geometry.is_empty | gdf.geometry.isna())
    if bad.any():
        gdf.loc[bad, "geometry"] = gdf.geometry[bad].make_valid()
        gdf["geometry"] = gdf.geometry.apply(_polygonal)
        n_repaired += int(bad.sum())
    gdf = gdf.reset_index(drop=True)
    return PolygonLayer(key, kind, path, id_field, name_field, gdf, n_repaired)


def _polygonal(geom):
    """The polygonal part of a repaired geometry; an empty polygon when nothing is left."""
    from shapely.geometry import GeometryCollection, MultiPolygon, Polygon

    if geom is None or geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    if isinstance(geom, GeometryCollection):
        polys = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        parts = []
        for p in polys:
            parts.extend(p.geoms if p.geom_type == "MultiPolygon" else [p])
        return MultiPolygon(parts) if parts else Polygon()
    return Polygon()  # a line or point: no area to aggregate


def _check_lonlat(gdf: gpd.GeoDataFrame, path: Path, what: str) -> None:
    """A geographic CRS with coordinates beyond longitude/latitude: projected numbers in a
    file that claims (or, as GeoJSON, always has) WGS 84."""
    if gdf.crs is None or not gdf.crs.is_geographic:
        return
    xmin, ymin, xmax, ymax = gdf.total_bounds
    if not np.all(np.isfinite([xmin, ymin, xmax, ymax])):
        return
    if xmin < -180.0 or xmax > 360.0 or ymin < -90.0 or ymax > 90.0:
        note = (" (GeoJSON is always WGS 84 longitude/latitude, RFC 7946)"
                if path.suffix.lower() in (".geojson", ".json") else "")
        raise MissingCRSError(
            f"{what} {path} has coordinates up to x={max(abs(xmin), abs(xmax)):.6g}, "
            f"y={max(abs(ymin), abs(ymax)):.6g}, which are not longitude/latitude, but its CRS is "
            f"{crs_label(gdf.crs)}{note}. Set its real CRS (e.g. save it as a GeoPackage with the "
            "projected CRS) or reproject it to EPSG:4326."
        )


def _dbf_path(path: Path, layer: str | None) -> Path | None:
    if path.is_dir() and layer:
        path = path / f"{layer}.shp"
    if path.suffix.lower() != ".shp":
        return None
    for suffix in (".dbf", ".DBF"):
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    return None


def _dbf_texts(dbf: Path) -> list[bytes]:
    """Raw bytes of the field names and of every character field value of a dBase file."""
    import struct

    raw = dbf.read_bytes()
    if len(raw) < 32:
        return []
    n_rec, header_len, rec_len = struct.unpack("<IHH", raw[4:12])
    fields, names = [], []
    pos = 32
    while pos + 32 <= min(header_len, len(raw)) and raw[pos] != 0x0D:
        desc = raw[pos:pos + 32]
        names.append(desc[:11].split(b"\x00")[0])
        fields.append((chr(desc[11]), desc[16]))
        pos += 32
    texts = list(names)
    for r in range(min(n_rec, (len(raw) - header_len) // max(rec_len, 1))):
        off = header_len + r * rec_len + 1  # first byte: deletion flag
        for typ, width in fields:
            if typ == "C":
                value = raw[off:off + width].rstrip(b" \x00")
                if value:
                    texts.append(value)
            off += width
    return texts


def shapefile_encoding(path: Path, layer: str | None, what: str) -> str | None:
    """The encoding to read a Shapefile with, when GDAL would guess wrong; or None.

    GDAL reads a Shapefile without a ``.cpg`` file (and without a language-driver byte) as
    Latin-1, which turns Chinese field names and values into mojibake without any error.
    Text that is valid UTF-8 is read as UTF-8. Text that is not UTF-8 but reads as GBK is
    refused with the decoded sample and the fix (a ``.cpg`` file), rather than guessed.
    """
    dbf = _dbf_path(path, layer)
    if dbf is None or any(dbf.with_suffix(s).is_file() for s in (".cpg", ".CPG")):
        return None
    with open(dbf, "rb") as fh:
        head = fh.read(32)
    if len(head) > 29 and head[29] != 0:  # language driver id: GDAL honours it
        return None
    texts = [t for t in _dbf_texts(dbf) if any(b > 0x7F for b in t)]
    if not texts:
        return None
    try:
        for t in texts:
            t.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        decoded = [t.decode("gbk") for t in texts]
    except UnicodeDecodeError:
        return None  # not UTF-8, not GBK: leave GDAL's Latin-1 (e.g. a European layer)
    if not any("\u4e00" <= ch <= "\u9fff" for t in decoded for ch in t):
        return None
    sample = ", ".join(repr(t) for t in decoded[:3])
    cpg = dbf.with_suffix(".cpg")
    raise ZoneLayerError(
        f"{what} {path} has field names or values in a Chinese legacy encoding (they read as GBK: "
        f"{sample}) and no {cpg.name} file saying so; GDAL would read them as Latin-1 garbage. "
        f"If the text is Chinese, create {cpg.name} containing the single word GBK beside it "
        "(otherwise write the layer's real encoding into it), or re-save the layer as UTF-8; "
        "then run again."
    )


def _not_utf8_message(what: str, path: Path, err: UnicodeDecodeError) -> str:
    bad = b""
    if isinstance(err.object, (bytes, bytearray)):
        bad = bytes(err.object[max(0, err.start - 8):err.end + 16])
    try:
        sample = f", which read as GBK: {bad.decode('gbk', errors='strict')!r}" if bad else ""
    except UnicodeDecodeError:
        sample = ""
    if path.suffix.lower() == ".shp":
        fix = "Create a .cpg file naming the encoding (e.g. GBK) beside the .shp"
    else:
        fix = ("Re-save the layer with UTF-8 text (GeoPackage and GeoJSON text must be UTF-8), "
               "e.g. from its source in QGIS with encoding UTF-8")
    return (f"{what} {path} has text that is not UTF-8 (bytes {bad[:24]!r}{sample}). {fix}, "
            "then run again.")


def check_output_dir(out_dir: Path) -> None:
    """Refuse an output folder that cannot be created or written, without creating it."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output path {out_dir} exists and is not a folder. Choose another "
                          "output_dir (or remove the file).")
    probe = out_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(
            f"output folder {out_dir} cannot be created: {probe} is a file, not a folder "
            "(not writable). Choose another output_dir."
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        reason = "read-only file system" if _is_read_only(probe) else "permission denied"
        raise OutputError(
            f"output folder {out_dir} is not writable ({reason} on {probe}). Fix its "
            "permissions or choose another output_dir."
        )


def _is_read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def composite_luts(legend: Legend | None, table: DensityTable, codes_present: set[int],
                   raster_names: str) -> tuple[np.ndarray, np.ndarray, dict[int, str], int]:
    """Fold legend and density table into code -> pools and code -> group look-up tables."""
    max_code = max(codes_present | {0})
    if legend is not None:
        if table.key != "class_id":
            raise ParameterTableError(
                f"density table {table.path} is keyed by raw codes ('lucode') but the project "
                f"uses legend '{legend.name}'. Key the table by canonical class_id, or set "
                "legend = \"none\"."
            )
        legend_lut = legend.lut(max_code)
        classes = load_classes()
        needed = sorted({int(legend_lut[c]) for c in codes_present if legend_lut[c] > 0})
        missing = table.missing_keys(needed)
        if missing:
            raise ParameterTableError(
                f"density table {table.path} has no rows for canonical classes {missing} "
                f"that legend '{legend.name}' produces from {raster_names}. Add rows for them."
            )
        n_classes = max(int(classes.index.max()), int(legend_lut.max())) + 1
        dens = table.lut(n_classes - 1)  # (4, n_classes)
        pool_lut = np.full((4, legend_lut.size), np.nan, np.float32)
        ok = legend_lut > 0
        pool_lut[:, ok] = dens[:, legend_lut[ok]]
        class_lut = np.where(ok, legend_lut, 0).astype(np.int16)
        names = {int(i): str(r["name"]) for i, r in classes.iterrows()}
        return pool_lut, class_lut, names, n_classes
    if table.key != "lucode":
        raise ParameterTableError(
            f"density table {table.path} is keyed by canonical class_id but the project has no "
            "legend. Set [landcover] legend (e.g. \"clcd\") or key the table by 'lucode'."
        )
    missing = table.missing_keys(sorted(codes_present))
    if missing:
        raise LegendError(
            f"land-cover raster(s) {raster_names} have class codes {missing} missing from "
            f"density table {table.path} (column 'lucode'). Add rows for them."
        )
    pool_lut = table.lut(max_code)
    class_lut = np.arange(max_code + 1, dtype=np.int16)
    name_col = next((c for c in table.table.columns if c.lower() in ("lulc_name", "name")), None)
    names = {int(k): (str(table.table.loc[k, name_col]) if name_col else str(k)) for k in table.table.index}
    return pool_lut, class_lut, names, max_code + 1


def build_context(project: Project, *, scan_codes: bool = True) -> RunContext:
    """Resolve and check every input of a project; raise a TanhuiError on the first problem."""
    grid = load_grid(project)
    legend = Legend.load(_resolve_table_name(project, project.legend)) if project.legend else None
    table = DensityTable.load(_resolve_table_name(project, project.density_table))

    epochs: list[tuple[int, RasterInfo]] = []
    resampled: dict[str, str] = {}
    for ep in project.epochs:
        info = inspect_raster(ep.path, what="land-cover raster")
        if not info.is_integer:
            from .errors import InputValueError

            raise InputValueError(
                f"land-cover raster {ep.path} has data type {info.dtype}; class codes must be "
                "integers. Convert it to an integer type (e.g. uint8) without rescaling."
            )
        epochs.append((ep.year, info))
    crs0 = epochs[0][1].crs
    for year, info in epochs[1:]:
        if info.crs != crs0:
            raise GridMismatchError(
                f"land-cover raster {info.path} ({year}) has CRS {crs_label(info.crs)} but "
                f"{epochs[0][1].path} has {crs_label(crs0)}. Give all epochs the same CRS "
                "(reproject with gdalwarp -t_srs)."
            )

    codes_present: set[int] = set()
    names = ", ".join(str(i.path) for _, i in epochs)
    if scan_codes:
        for year, info in epochs:
            codes = set(unique_codes(info))
            if legend is not None:
                legend.check_codes(codes, info.path)
            codes_present |= codes
    else:
        codes_present = set(range(256))
    pool_lut, class_lut, class_names, n_groups = composite_luts(legend, table, codes_present, names)

    layers: list[PolygonLayer] = []
    if project.regions is not None:
        r = project.regions
        layers.append(read_polygon_layer(r.path, r.id_field, r.name_field, r.layer, grid, "regions", "regions"))
    for z in project.zones:
        layers.append(read_polygon_layer(z.path, z.id_field, z.name_field, z.layer, grid, f"zones:{z.kind}", z.kind))

    # tiles: those of the grid that hold land cover and (if given) regions
    lc_area = footprint(epochs[0][1], grid.crs)
    tiles = set(grid.tiles_intersecting(lc_area, crs=grid.crs))
    if not tiles:
        raise GridMismatchError(
            f"land-cover raster {epochs[0][1].path} does not overlap grid '{grid.name}'. "
            "Use a grid that covers the data (or grid = \"landcover\")."
        )
    for lay in layers:
        if lay.kind != "regions":
            continue
        union = lay.gdf.geometry.union_all()
        if not union.intersects(lc_area):
            raise GridMismatchError(
                f"region layer {lay.path} does not overlap land-cover raster "
                f"{epochs[0][1].path}. Check both CRSs and extents."
            )
        tiles &= set(grid.tiles_intersecting(union, crs=grid.crs))
    for lay in layers:
        if lay.kind == "regions":
            continue
        # any part intersecting == the union intersecting, without building the union
        if not lay.gdf.geometry.intersects(lc_area).any():
            raise ZoneLayerError(
                f"zone layer {lay.path} lies outside the land-cover data. Check its CRS and extent."
            )
    tiles_sorted = sorted(tiles)

    t0 = tiles_sorted[0]
    for year, info in epochs:
        aligned = is_aligned(info, grid.crs, grid.tile_transform(t0))
        resampled[str(info.path)] = "on grid (no resampling)" if aligned else "warped onto grid (nearest neighbour)"

    ctx = RunContext(
        project=project, grid=grid, legend=legend, table=table, epochs=epochs,
        pool_lut=pool_lut, class_lut=class_lut, class_names=class_names, n_groups=n_groups,
        layers=layers, tiles=tiles_sorted, resampled=resampled,
    )
    for lay in layers:
        if lay.n_repaired:
            layer = f" layer '{lay.kind}'" if lay.kind != "regions" else " (regions)"
            ctx.notes.append(f"{lay.path.name}{layer}: repaired {lay.n_repaired} invalid geometries")
    if project.flux is not None:
        from .flux_context import build_flux_context

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ctx.flux = build_flux_context(project, ctx)
        ctx.notes.extend(str(w.message) for w in caught)
    check_output_dir(project.output_dir)  # last: every input problem is reported first
    return ctx
