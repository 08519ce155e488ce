"""Synthetic 三区三线 (three spaces, three lines) planning layers for the Horqin demo.

Everything written here is **SYNTHETIC**: plausible planning polygons derived from the
demo's synthetic land cover (:mod:`tanhui.demo.world`), not a planning document. They
exercise what real 国土空间规划 data throw at tanhui (science.md §8):

* the 三区 — 生态空间 / 农业空间 / 城镇空间 (ecological, agricultural, urban space) — are a
  clean **partition** of the city (the union of the 8 real county polygons): no gaps, no
  overlaps, valid geometries, one feature per connected part and county;
* the 三线 — 生态保护红线 (ecological protection red line), 永久基本农田 (permanent basic
  farmland) and 城镇开发边界 (urban development boundary) — are **overlays** lying almost
  entirely in their 区, with deliberately realistic digitising faults (:class:`_Faults`):
  a few red-line polygons reaching half a pixel into neighbouring farmland, slivers a
  fifth of a pixel wide along boundaries, polygons smaller than one pixel, and two invalid
  geometries (a bowtie and a ring that touches itself) which a reader must repair;
* all layers are in CGCS2000 geographic coordinates (EPSG:4490), as the planning data of
  the 自然资源部 are delivered, so tanhui has to reproject them to its grid.

Construction: the land cover (:func:`tanhui.demo.world.landcover_epochs_lonlat`) is sampled
on a coarse (default 500 m) window in a metric CRS (the grid's, or China Albers), turned
into masks (red line: forest, wetland/water and sandy land with its restored patches;
farmland: cropland clusters, cut into ~6 km village parcels; development boundary: the
county towns, sampled at 100 m, + 1 km), cleaned with binary morphology, vectorised
(``rasterio.features.shapes``), simplified and smoothed by buffering, and reprojected. The
spaces are then cut from the county polygons in EPSG:4490 by snap-rounded overlays
(urban = development boundary + 200 m; agricultural = farmland-dominated land and the
farmland, minus the urban space and the red line; ecological = the rest), and crumbs of
the overlays are merged into their neighbours.

The spaces are valid in EPSG:4490 and, with their edges densified, in Albers. Reprojecting
their vertices alone (as ``GeoDataFrame.to_crs`` does) may still make a ring that touches
itself at a vertex cross itself by micrometres; readers should re-check validity after
reprojecting, for real planning data as for these.

Run time at 250 m: ~4 s on one core (half of it the land cover).
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyproj

from .world import (
    CHANGE_START_YEAR,
    DRYLAND,
    FLOODPLAIN,
    FOREST,
    LAKE,
    MARSH,
    PADDY,
    RIVER,
    SAND,
    SPARSE_WOOD,
    TOWNS,
    URBAN,
    counties_path,
    landcover_epochs_lonlat,
    pixel_lonlat,
)

#: The six layer kinds, in the order of docs/project-file.md: 三区 then 三线.
SPACE_KINDS = ("ecological_space", "agricultural_space", "urban_space")
LINE_KINDS = ("ecological_protection_red_line", "permanent_basic_farmland",
              "urban_development_boundary")
ZONE_KINDS = SPACE_KINDS + LINE_KINDS

#: Chinese name and id prefix of each kind.
ZONE_LABELS = {
    "ecological_space": ("生态空间", "ES"),
    "agricultural_space": ("农业空间", "AS"),
    "urban_space": ("城镇空间", "US"),
    "ecological_protection_red_line": ("生态保护红线", "EPR"),
    "permanent_basic_farmland": ("永久基本农田", "PBF"),
    "urban_development_boundary": ("城镇开发边界", "UDB"),
}

#: Path of the GeoPackage inside the demo folder (one layer per kind, named after the kind).
ZONES_FILE = "zones/sanqu_sanxian.gpkg"
ZONES_NOTE = "SYNTHETIC demo layer, not a planning document"
#: CGCS2000 geographic coordinates, the CRS of China's 国土空间规划 deliveries.
ZONES_CRS = "EPSG:4490"
ZONE_FIELDS = ("zone_id", "name", "kind", "county_adcode", "note")

#: Outline colours of the QGIS styles stored in the GeoPackage (a display choice).
ZONE_COLOURS = {
    "ecological_space": "#2e8b57", "agricultural_space": "#c8a000", "urban_space": "#b03060",
    "ecological_protection_red_line": "#e31a1c", "permanent_basic_farmland": "#ff9900",
    "urban_development_boundary": "#7b3294",
}

# China Albers on CGCS2000 (GRS80), the construction CRS when the grid is not projected in m.
_ALBERS = ("+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=GRS80 "
           "+units=m +no_defs")

# CNLUCC groups (science.md §7.6) used for the masks.
_FOREST_CODES = (FOREST, SPARSE_WOOD)
_WET_CODES = (RIVER, LAKE, FLOODPLAIN, MARSH)
_CROP_CODES = (PADDY, DRYLAND)

# Widths in metres of the construction (synthetic choices, not planning rules).
UDB_BUFFER_M = 1000.0  # development boundary = town + 1 km (room for growth)
URBAN_SPACE_BUFFER_M = 200.0  # urban space = development boundary + 200 m
VILLAGE_CELL_M = 6000.0  # farmland split into ~6 km village cells (图斑 by 行政村)

#: Snap-rounding grid of the partition overlays, degrees (~1 cm): overlays on a fixed
#: grid give valid output free of the near-zero slivers floating-point overlays leave,
#: and keep vertices and edges far enough apart (≥ ~5 mm; two edges leaving one vertex
#: differ in direction by ≥ ~1 cm / edge length) that reprojecting the vertices cannot
#: make them cross.
PARTITION_GRID_DEG = 1e-7
#: Longest county edge in the partition, degrees (~100 m): the chord of a longer edge
#: drifts from its image in an equal-area projection (sag ~ L²/8R: 2 m at 10 km, 0.2 mm at
#: 100 m), which must stay well below the grid.
PARTITION_SEGMENT_DEG = 0.001
#: Parts of a space smaller than this (m², ~8 pixels of 250 m), or smaller than
#: :data:`THIN_SPACE_PART_M2` and narrower than :data:`MIN_SPACE_WIDTH_M` (mean width
#: 2·area/perimeter), are crumbs of the overlays and join a neighbouring part, so the
#: partition has no slivers.
MIN_SPACE_PART_M2 = 5.0e4
THIN_SPACE_PART_M2 = 5.0e5
MIN_SPACE_WIDTH_M = 100.0


class _Work(NamedTuple):
    """The construction frame: a metric CRS and the transforms to/from EPSG:4490."""

    crs: pyproj.CRS
    to_ll: pyproj.Transformer
    from_ll: pyproj.Transformer
    pixel_m: float  # the grid's pixel size in metres (scale of the deliberate faults)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def demo_zones(grid, *, seed: int = 42, year: int = 2023,
               coarse_m: float | None = None) -> dict:
    """The six synthetic 三区三线 layers as GeoDataFrames in EPSG:4490 (not written).

    Parameters
    ----------
    grid : tanhui.grid.TileGrid
        Duck-typed: ``.crs`` and either ``.res_x`` or ``.tile_transform``/``tile_shape``.
        Its pixel size sets the scale of the deliberate faults (slivers narrower than a
        pixel, polygons smaller than a pixel); a grid projected in metres is also the
        construction CRS (otherwise China Albers on CGCS2000).
    seed : int
        Seed of the synthetic world (land cover) and of the choices made here.
    year : int
        Land-cover epoch the zones follow (the red line also keeps the sandy land of
        :data:`tanhui.demo.world.CHANGE_START_YEAR` and its restored patches).
    coarse_m : float, optional
        Pixel size (m) of the land-cover window that is vectorised; default twice the grid
        pixel, within 500–1000 m (500 m for the 30 m and 250 m grids).

    Returns
    -------
    dict of str to geopandas.GeoDataFrame
        One frame per kind (:data:`ZONE_KINDS`) with the fields :data:`ZONE_FIELDS` and
        MultiPolygon geometries in EPSG:4490. **Synthetic, not a planning document.**
    """
    import geopandas as gpd
    import shapely

    from ..errors import InputValueError

    work = _work_frame(grid)
    if coarse_m is None:
        coarse_m = min(max(500.0, 2.0 * work.pixel_m), 1000.0)
    if not (math.isfinite(coarse_m) and 50.0 <= coarse_m <= 5000.0):
        raise InputValueError(
            f"demo_zones: coarse_m = {coarse_m}; expected a pixel size of 50–5000 m "
            "(500 m is the default). Pass a value in that range.")
    counties_ll = _counties_ll()
    counties_w = [(a, _tx(g, work.from_ll)) for a, g in counties_ll]
    city_w = shapely.union_all([g for _, g in counties_w])
    rng = np.random.default_rng([int(seed), 0x5A5A, int(year)])

    raster = _landcover_masks(city_w, work.crs, seed, year, coarse_m)
    udb, udb_names = _development_boundary(city_w, work, seed, year)
    urban_w = shapely.union_all([u.buffer(URBAN_SPACE_BUFFER_M, quad_segs=4) for u in udb])
    red, red_whole = _red_line(raster, urban_w, city_w)
    farm, agri_w = _farmland(raster, urban_w, red_whole, city_w, rng)
    layers = _spaces(counties_ll, _valid_ll(urban_w, work),
                     _valid_ll(shapely.difference(agri_w, red_whole), work), work)

    # --- 三线: overlays, with the deliberate faults --------------------------------------
    faults = _Faults(work, raster, rng, red, farm, udb, shapely.intersection(agri_w, city_w),
                     city_w)
    red_f, farm_f, udb_f = faults.apply()

    def line_feats(items, labels=None):
        # every line geometry is already inside the city (cut in the construction CRS);
        # faulty ones are never put through an overlay (GEOS refuses invalid input)
        geoms_w = [g for g, _ in items]
        counties = _majority_counties(geoms_w, counties_w)
        clean = iter(_valid_ll_many([g for g, fault in items if not fault], work))
        return [(_tx(g, work.to_ll) if fault else next(clean), c,
                 labels[i] if labels and i < len(labels) else "")
                for i, ((g, fault), c) in enumerate(zip(items, counties))]

    layers["ecological_protection_red_line"] = line_feats(red_f)
    layers["permanent_basic_farmland"] = line_feats(farm_f)
    layers["urban_development_boundary"] = line_feats(udb_f, udb_names)

    out = {}
    for kind in ZONE_KINDS:
        zh, prefix = ZONE_LABELS[kind]
        feats = _sorted_features(layers[kind])
        ids = [f"{prefix}-{i + 1:04d}" for i in range(len(feats))]
        out[kind] = gpd.GeoDataFrame(
            {
                "zone_id": ids,
                "name": [f"{zh} {zid}" + (f" {lab}" if lab else "")
                         for zid, (_, _, lab) in zip(ids, feats)],
                "kind": [kind] * len(feats),
                "county_adcode": [a for _, a, _ in feats],
                "note": [ZONES_NOTE] * len(feats),
            },
            geometry=[_as_multi(g) for g, _, _ in feats],
            crs=ZONES_CRS,
        )
    return out


def write_demo_zones(out_dir, grid, *, seed: int = 42, year: int = 2023,
                     coarse_m: float | None = None) -> dict[str, Path]:
    """Write the synthetic 三区三线 layers to ``out_dir/zones/sanqu_sanxian.gpkg``.

    One GeoPackage with one layer per kind (layer name = kind, :data:`ZONE_KINDS`), fields
    ``zone_id`` (unique, e.g. ``"EPR-0001"``), ``name`` (e.g. ``"生态保护红线 EPR-0001"``),
    ``kind``, ``county_adcode`` and ``note`` (= "SYNTHETIC demo layer, not a planning
    document"), geometries in EPSG:4490 (CGCS2000 lon/lat), and an outline QGIS style per
    layer. See :func:`demo_zones` for the construction and the parameters; the file is
    written atomically and replaced if it exists.

    Returns
    -------
    dict of str to pathlib.Path
        Kind -> the GeoPackage path (the same file for all six kinds; the layer is the kind).
    """
    from ..outputs import write_gpkg_layers
    from ..styles import vector_qml_outline

    out_dir = Path(out_dir)
    layers = demo_zones(grid, seed=seed, year=year, coarse_m=coarse_m)
    path = out_dir / ZONES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    styles = {k: vector_qml_outline(ZONE_COLOURS[k], 0.5 if k in SPACE_KINDS else 0.7)
              for k in ZONE_KINDS}
    write_gpkg_layers(path, layers, styles=styles)
    return {kind: path for kind in ZONE_KINDS}


def _spaces(counties_ll, urban_ll, agri_ll, work: _Work) -> dict[str, list]:
    """三区 as an exact partition of the counties: urban, agricultural, and the rest.

    County by county, every overlay runs on the :data:`PARTITION_GRID_DEG` grid in
    EPSG:4490, with the county edges densified to ≤ :data:`PARTITION_SEGMENT_DEG` (the
    other inputs come densified from :func:`_valid_ll`), so reprojecting the vertices
    (as ``GeoDataFrame.to_crs`` does) does not make parts cross; :func:`_robust_parts`
    checks that in the construction CRS. Crumbs (small or thin parts,
    :data:`MIN_SPACE_PART_M2`) join the neighbouring part they share the longest edge
    with. Each feature is one connected part of one space within one county.
    """
    import shapely

    grid = PARTITION_GRID_DEG
    # metres per degree at Tongliao's latitude (only to find crumbs)
    kx, ky = 111_320.0 * math.cos(math.radians(44.0)), 110_950.0

    def is_crumb(p) -> bool:
        area_m2 = p.area * kx * ky
        if area_m2 < MIN_SPACE_PART_M2:
            return True
        width_m = 2.0 * area_m2 / (p.length * math.sqrt(kx * ky))
        return area_m2 < THIN_SPACE_PART_M2 and width_m < MIN_SPACE_WIDTH_M

    def poly(geom):  # overlays on a grid may add collapsed lines: keep the polygons
        return shapely.multipolygons(_polygons(geom))

    built = poly(shapely.union(agri_ll, urban_ll, grid_size=grid))  # all non-ecological land
    out: dict[str, list] = {k: [] for k in SPACE_KINDS}
    for adcode, county in counties_ll:
        county = shapely.set_precision(shapely.segmentize(county, PARTITION_SEGMENT_DEG), grid)
        box = county.bounds
        built_c = poly(shapely.intersection(shapely.clip_by_rect(built, *box), county,
                                            grid_size=grid))
        urban = poly(shapely.intersection(shapely.clip_by_rect(urban_ll, *box), county,
                                          grid_size=grid))
        parts = {
            "ecological_space": _polygons(shapely.difference(county, built_c, grid_size=grid)),
            "agricultural_space": _polygons(shapely.difference(built_c, urban, grid_size=grid)),
            "urban_space": _polygons(urban),
        }
        for kind, polys in _absorb_crumbs(parts, is_crumb, grid).items():
            out[kind].extend((p, adcode, "") for p in _robust_parts(polys, work))
    return out


def _robust_parts(polys: list, work: _Work) -> list:
    """Polygons valid in EPSG:4490 *and* once their vertices are reprojected to the
    construction CRS; one that is not is snapped to a 10× coarser grid (moving its outline
    by < 10 cm, a negligible gap or overlap with its neighbours) until it is."""
    import shapely

    out = []
    for p in polys:
        grid = PARTITION_GRID_DEG
        while not _tx(p, work.from_ll).is_valid and grid < 1e-4:
            grid *= 10.0
            q = _polygons(shapely.set_precision(p, grid))
            p = max(q, key=lambda g: g.area) if q else p
        out.append(p)
    return out


def _absorb_crumbs(parts: dict[str, list], is_crumb, grid: float) -> dict[str, list]:
    """Merge each crumb (``is_crumb(part)``) into the other part (of any kind) along which
    most of its outline runs; the union of all parts does not change.

    Neighbours are found within a few grid cells, not by exact contact: a crumb is often
    cut from its sibling by a collapsed (zero-width) sliver of another space.
    """
    import shapely

    items = [(kind, p) for kind in parts for p in parts[kind]]
    small = {i for i, (_, p) in enumerate(items) if is_crumb(p)}
    big = [i for i in range(len(items)) if i not in small]
    if not small or not big:
        return parts
    tree = shapely.STRtree([items[i][1] for i in big])
    targets: dict[int, list] = {}
    absorbed: set = set()
    for i in sorted(small):
        crumb = items[i][1]
        # sample the crumb's outline and count the samples lying on each neighbour
        ring = shapely.segmentize(crumb.exterior, max(crumb.exterior.length / 64.0, grid))
        samples = shapely.points(shapely.get_coordinates(ring))
        best, best_n = None, 0
        for j in sorted(tree.query(crumb, predicate="dwithin", distance=4.0 * grid)):
            k = big[int(j)]
            n = int(np.count_nonzero(shapely.dwithin(samples, items[k][1], 2.0 * grid)))
            if n > best_n:
                best, best_n = k, n
        if best is not None and best_n >= 2:
            targets.setdefault(best, []).append(crumb)
            absorbed.add(i)
    out: dict[str, list] = {k: [] for k in parts}
    for i, (kind, p) in enumerate(items):
        if i in absorbed:
            continue
        if i in targets:
            out[kind].extend(_polygons(shapely.union_all([p] + targets[i], grid_size=grid)))
        else:
            out[kind].append(p)
    return out


# --------------------------------------------------------------------------------------------
# frames and small geometry helpers
# --------------------------------------------------------------------------------------------
def _work_frame(grid) -> _Work:
    from .world import _layout

    crs = pyproj.CRS.from_user_input(grid.crs)
    res = float(grid.res_x) if hasattr(grid, "res_x") else float(_layout(grid).transform.a)
    unit = crs.axis_info[0].unit_name if crs.axis_info else ""
    if crs.is_projected and unit in ("metre", "meter", "m"):
        work_crs, pixel_m = crs, abs(res)
    else:
        work_crs = pyproj.CRS.from_proj4(_ALBERS)
        # degrees -> metres at Tongliao's latitude (east-west size of a pixel)
        pixel_m = abs(res) * 111_320.0 * math.cos(math.radians(44.0)) if crs.is_geographic \
            else abs(res)
    ll = pyproj.CRS.from_user_input(ZONES_CRS)
    return _Work(work_crs,
                 pyproj.Transformer.from_crs(work_crs, ll, always_xy=True),
                 pyproj.Transformer.from_crs(ll, work_crs, always_xy=True),
                 pixel_m)


@lru_cache(maxsize=1)
def _counties_ll() -> tuple:
    """(adcode, geometry) of the 8 real counties, lon/lat (WGS84 ≈ CGCS2000 to < 1 m)."""
    import json

    from shapely.geometry import shape

    feats = json.loads(counties_path().read_text(encoding="utf-8"))["features"]
    return tuple((str(f["properties"]["adcode"]), shape(f["geometry"])) for f in feats)


def _tx(geom, transformer: pyproj.Transformer):
    import shapely

    def fn(xy):
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, fn)


def _valid_ll(geom_w, work: _Work):
    """``geom_w`` in EPSG:4490, robust to reprojection (see :func:`_valid_ll_many`)."""
    return _valid_ll_many([geom_w], work)[0]


def _valid_ll_many(geoms_w: list, work: _Work) -> list:
    """Geometries of the construction CRS in EPSG:4490, robust to reprojection.

    Edges are densified to ≤ 250 m (a chord then stays within ~1 mm of its image in the
    other CRS). A geometry that does not survive the round trip to EPSG:4490 and back has
    its vertices snapped to a 1 cm grid first (which removes the zero-width spikes overlays
    leave, that rounding turns into crossings); anything still invalid is repaired.
    """
    import shapely

    if not geoms_w:
        return []
    dense = shapely.segmentize(np.asarray(geoms_w, dtype=object), 250.0)
    ll = _tx(dense, work.to_ll)  # one PROJ call for all vertices
    ok = shapely.is_valid(ll) & shapely.is_valid(_tx(ll, work.from_ll))
    out = list(ll)
    for i in np.nonzero(~ok)[0]:
        g = _tx(shapely.set_precision(dense[i], 0.01), work.to_ll)
        if not g.is_valid:
            parts = _polygons(shapely.make_valid(g))
            g = shapely.union_all(parts) if len(parts) > 1 else parts[0]
        out[i] = g
    return out


def _polygons(geom) -> list:
    """The non-empty polygons of any geometry (collections from overlays included)."""
    import shapely

    if geom is None or geom.is_empty:
        return []
    parts = shapely.get_parts(geom)
    out = []
    for p in parts:
        if p.geom_type == "Polygon":
            if not p.is_empty and p.area > 0.0:
                out.append(p)
        elif p.geom_type in ("MultiPolygon", "GeometryCollection"):
            out.extend(_polygons(p))
    return out


def _as_multi(geom):
    from shapely.geometry import MultiPolygon

    if geom.geom_type == "MultiPolygon":
        return geom
    return MultiPolygon([geom])  # no validation: a faulty polygon stays faulty


def _majority_counties(geoms_w: list, counties_w) -> list[str]:
    """adcode of the county holding the largest part of each geometry (or the nearest)."""
    import shapely

    polys = [c for _, c in counties_w]
    shapely.prepare(polys)
    tree = shapely.STRtree(polys)
    out = []
    for g in geoms_w:
        if not g.is_valid:
            g = shapely.make_valid(g)
        cand = sorted(tree.query(g))
        areas = {int(i): g.area if polys[i].contains(g) else shapely.intersection(g, polys[i]).area
                 for i in cand}
        if areas and max(areas.values()) > 0.0:
            best = max(sorted(areas), key=lambda i: areas[i])
        else:
            best = int(tree.nearest(g))
        out.append(counties_w[best][0])
    return out


def _sorted_features(feats: list) -> list:
    """Order features north to south, then west to east (by county), for stable ids."""
    def key(f):
        g, adcode, _ = f
        x0, y0, x1, y1 = g.bounds
        return (adcode, -round((y0 + y1) / 2, 6), round((x0 + x1) / 2, 6), round(x1 - x0, 9))

    return sorted(feats, key=key)


# --------------------------------------------------------------------------------------------
# raster stage: land cover on a coarse window, masks
# --------------------------------------------------------------------------------------------
class _Raster(NamedTuple):
    transform: object
    shape: tuple
    res: float
    inside: np.ndarray  # pixel centre inside the city (buffered by 2 km)
    lc: np.ndarray  # land cover of ``year``
    base: np.ndarray  # land cover of CHANGE_START_YEAR (before the restoration)


def _landcover_masks(city_w, crs, seed: int, year: int, res: float) -> _Raster:
    import rasterio.features
    from affine import Affine

    minx, miny, maxx, maxy = city_w.buffer(3 * res).bounds
    x0, y1 = math.floor(minx / res) * res, math.ceil(maxy / res) * res
    nx = int(math.ceil((maxx - x0) / res))
    ny = int(math.ceil((y1 - miny) / res))
    transform = Affine(res, 0.0, x0, 0.0, -res, y1)
    inside = rasterio.features.geometry_mask([city_w.buffer(2000.0)], (ny, nx), transform,
                                             invert=True)
    lon, lat = pixel_lonlat(transform, (ny, nx), crs)
    years = tuple(sorted({int(year), CHANGE_START_YEAR}))
    lc = landcover_epochs_lonlat(lon, lat, years, seed)
    return _Raster(transform, (ny, nx), float(res), inside, lc[int(year)],
                   lc[CHANGE_START_YEAR])


def _vectorise(mask: np.ndarray, transform) -> list:
    """Polygons of the True pixels (4-connected), in the construction CRS."""
    import rasterio.features
    from shapely.geometry import shape

    if not mask.any():
        return []
    return [shape(geom) for geom, _ in rasterio.features.shapes(
        mask.astype(np.uint8), mask=mask, connectivity=4, transform=transform)]


def _keep_large(mask: np.ndarray, min_px: int) -> np.ndarray:
    import scipy.ndimage as ndi

    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_px
    keep[0] = False
    return keep[lab]


def _smooth(polys: list, res: float, min_area: float) -> list:
    """Simplify the pixel staircase and round the corners (a vector opening/closing)."""
    import shapely

    out = []
    for p in polys:
        g = shapely.simplify(p, 0.55 * res, preserve_topology=True)
        g = g.buffer(0.45 * res, quad_segs=3).buffer(-0.45 * res, quad_segs=3)
        g = shapely.simplify(g, 0.08 * res, preserve_topology=True)
        out.extend(q for q in _polygons(g) if q.area >= min_area)
    return out


# --------------------------------------------------------------------------------------------
# the three lines (clean versions) and the agricultural land
# --------------------------------------------------------------------------------------------
_SQUARE = np.ones((3, 3), dtype=bool)


#: Pixel size (m) at which the county towns are sampled for the development boundary: the
#: towns' ragged edges (0.7 km noise) leave built-up specks that a 500 m sample misses.
TOWN_SAMPLE_M = 100.0


def _development_boundary(city_w, work: _Work, seed: int, year: int) -> tuple[list, list]:
    """One polygon per county town: its built-up pixels (51), sampled at
    :data:`TOWN_SAMPLE_M` around each seat, closed, plus 1 km, simplified.

    Returns the polygons and, for each, the name of the county seat it holds.
    """
    import scipy.ndimage as ndi
    import shapely
    from affine import Affine

    res = TOWN_SAMPLE_M
    polys, seats = [], []
    for name, lon, lat, radius_km in TOWNS:
        x, y = work.from_ll.transform(lon, lat)
        seats.append((name, shapely.Point(x, y)))
        # the town field (world.town_distance_ratio < 1 + 0.18 noise) ends well inside 2 radii
        half = 2.0 * radius_km * 1000.0 + 1000.0
        x0, y1 = math.floor((x - half) / res) * res, math.ceil((y + half) / res) * res
        n = int(math.ceil(2.0 * half / res)) + 1
        transform = Affine(res, 0.0, x0, 0.0, -res, y1)
        lon_, lat_ = pixel_lonlat(transform, (n, n), work.crs)
        built = landcover_epochs_lonlat(lon_, lat_, (int(year),), seed)[int(year)] == URBAN
        town = ndi.binary_closing(built, _SQUARE, iterations=2) | built
        polys.extend(_vectorise(town, transform))
    if not polys:
        return [], []
    merged = _polygons(shapely.union_all([p.buffer(UDB_BUFFER_M, quad_segs=6) for p in polys]))
    merged = [q for m in merged
              for q in _polygons(shapely.intersection(shapely.simplify(m, 40.0), city_w))]
    names = [min(seats, key=lambda s: s[1].distance(p))[0] for p in merged]
    return merged, names


def _red_line(raster: _Raster, urban_w, city_w) -> tuple[list, object]:
    """生态保护红线: forest and sparse woodland (not the shelterbelts inside farmland),
    water and wetland, and the sandy land of the first epoch with its restored patches.

    Returns the polygons cut to the city and, for the partition, their union before that
    cut (so the city outline enters the spaces only once, in EPSG:4490).
    """
    import scipy.ndimage as ndi
    import shapely

    lc, base = raster.lc, raster.base
    forest = np.isin(lc, _FOREST_CODES)
    crop_share = ndi.uniform_filter(np.isin(lc, _CROP_CODES).astype(np.float32), 7)
    belts = forest & (crop_share > 0.45)  # 农田防护林: farmland shelterbelts, not red line
    eco = (forest & ~belts) | np.isin(lc, _WET_CODES) | (base == SAND) | (lc == SAND)
    eco &= raster.inside
    eco = _keep_large(ndi.binary_closing(eco, _SQUARE) | eco, 4)
    polys = _smooth(_vectorise(eco, raster.transform), raster.res, 0.5e6)
    shapely.prepare(urban_w)
    shapely.prepare(city_w)
    out, whole = [], []
    for p in polys:
        if urban_w.intersects(p):
            p = shapely.difference(p, urban_w)
        whole.append(p)
        if not city_w.contains(p):
            p = shapely.intersection(p, city_w)
        out.extend(q for q in _polygons(p) if q.area >= 0.25e6)
    return out, shapely.union_all(whole)


def _village_cells(city_w, rng) -> np.ndarray:
    """Voronoi cells of a jittered ~6 km lattice of village sites (行政村 boundaries)."""
    import shapely

    minx, miny, maxx, maxy = city_w.bounds
    step = VILLAGE_CELL_M
    gx, gy = np.meshgrid(np.arange(minx, maxx + step, step), np.arange(miny, maxy + step, step))
    pts = np.column_stack([gx.ravel(), gy.ravel()])
    pts += rng.uniform(-0.35 * step, 0.35 * step, size=pts.shape)
    frame = shapely.box(minx - step, miny - step, maxx + step, maxy + step)
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame, ordered=True)
    return np.asarray(shapely.get_parts(cells))


def _farmland(raster: _Raster, urban_w, red_union, city_w, rng) -> tuple[list, object]:
    """永久基本农田 (cropland clusters cut into village parcels, inside the city) and the
    agricultural land (farmland-dominated area, not cut to the city) from which the
    agricultural space is cut."""
    import scipy.ndimage as ndi
    import shapely

    crop = np.isin(raster.lc, _CROP_CODES) & raster.inside
    clusters = ndi.binary_opening(ndi.binary_closing(crop, _SQUARE) | crop, _SQUARE)
    clusters = _keep_large(clusters, 12)
    farm = shapely.union_all(
        _smooth(_vectorise(clusters, raster.transform), raster.res, 1.0e6))
    farm = shapely.difference(shapely.difference(farm, urban_w), red_union)
    farm_city = shapely.intersection(farm, city_w)
    parcels = []
    tree_parts = _polygons(farm_city)
    cells = _village_cells(city_w, rng)
    tree = shapely.STRtree(cells)
    for part in tree_parts:
        for ci in sorted(tree.query(part, predicate="intersects")):
            cell = cells[ci]
            piece = shapely.intersection(shapely.clip_by_rect(part, *cell.bounds), cell)
            parcels.extend(q for q in _polygons(piece) if q.area >= 5.0e4)

    share = ndi.uniform_filter(crop.astype(np.float32), 9)
    agri = _keep_large(ndi.binary_closing(share > 0.45, _SQUARE) & raster.inside, 40)
    agri_w = shapely.union_all(
        _smooth(_vectorise(agri, raster.transform), raster.res, 2.0e6) + [farm])
    return parcels, agri_w


# --------------------------------------------------------------------------------------------
# deliberate faults of the three lines
# --------------------------------------------------------------------------------------------
def _bowtie(x: float, y: float, s: float, angle: float):
    """A self-intersecting 'bowtie' quadrilateral of size ``s`` centred on (x, y)."""
    from shapely.geometry import Polygon

    ca, sa = math.cos(angle), math.sin(angle)
    pts = [(-s / 2, -s / 2), (s / 2, s / 2), (s / 2, -s / 2), (-s / 2, s / 2)]
    return Polygon([(x + ca * u - sa * v, y + sa * u + ca * v) for u, v in pts])


def _self_touching(x: float, y: float, s: float, angle: float):
    """A square of side ``s`` whose ring runs round an island and touches itself at one
    vertex (an 'inverted hole', valid for ESRI, invalid for OGC/GEOS)."""
    from shapely.geometry import Polygon

    ca, sa = math.cos(angle), math.sin(angle)
    h = s / 2
    pts = [(-h, -h), (h, -h), (h, h), (-h, h), (-h, 0.0),  # outer ring to the touch point
           (0.1 * h, 0.35 * h), (0.45 * h, 0.0), (0.1 * h, -0.35 * h),  # round the island
           (-h, 0.0), (-h, -h)]  # back through the touch point
    return Polygon([(x + ca * u - sa * v, y + sa * u + ca * v) for u, v in pts])


class _Faults:
    """Adds realistic digitising faults to the three lines (all sizes from the grid pixel).

    * red line reaching ~0.5 pixel into 4 neighbouring farmland parcels (local overlaps);
    * slivers ~0.2 pixel wide and ~3 km long along the outside of 3 red-line polygons,
      3 farmland parcels and 1 development boundary (separate features);
    * polygons smaller than one pixel: 3 ponds in the red line, 2 farmland bits, 1
      development-boundary plot;
    * invalid geometries: one bowtie red-line polygon, one farmland parcel whose ring touches
      itself.
    """

    def __init__(self, work: _Work, raster: _Raster, rng, red: list, farm: list, udb: list,
                 agri_w, city_w):
        self.work, self.raster, self.rng = work, raster, rng
        self.red, self.farm, self.udb = list(red), list(farm), list(udb)
        self.agri_w, self.city_w = agri_w, city_w
        self.px = work.pixel_m
        self._dist: dict = {}

    # -- helpers --
    def _rasterize(self, geoms) -> np.ndarray:
        import rasterio.features

        geoms = [g for g in geoms if not g.is_empty]
        if not geoms:
            return np.zeros(self.raster.shape, dtype=bool)
        return rasterio.features.rasterize(
            [(g, 1) for g in geoms], out_shape=self.raster.shape,
            transform=self.raster.transform, fill=0, dtype="uint8").astype(bool)

    def _sites(self, mask: np.ndarray, n: int, taken: list) -> list:
        """``n`` pixel centres of ``mask``, chosen at random, ≥ 5 km from each other and
        from ``taken`` (updated)."""
        rows, cols = np.nonzero(mask)
        order = self.rng.permutation(rows.size)
        t = self.raster.transform
        out = []
        for k in order:
            x = t.c + (cols[k] + 0.5) * t.a
            y = t.f + (rows[k] + 0.5) * t.e
            if all(math.hypot(x - a, y - b) >= 5000.0 for a, b in taken):
                taken.append((x, y))
                out.append((x, y))
                if len(out) == n:
                    break
        return out

    def _distance(self, name: str) -> np.ndarray:
        """Distance (m) of each pixel centre from the polygons of layer ``name`` (cached)."""
        import scipy.ndimage as ndi

        if name not in self._dist:
            occupied = self._rasterize(getattr(self, name))
            self._dist[name] = ndi.distance_transform_edt(~occupied) * self.raster.res
        return self._dist[name]

    def _far_from(self, names, metres: float) -> np.ndarray:
        return np.minimum.reduce([self._distance(n) for n in names]) >= metres

    def _core(self) -> np.ndarray:
        """Pixels ≥ 3 km inside the city (faults are not clipped, so keep them inside)."""
        return self._rasterize([self.city_w.buffer(-3000.0)])

    def _sliver(self, poly, width: float, length: float):
        import shapely

        ring = poly.exterior
        band = shapely.difference(poly.buffer(width, quad_segs=2), poly)
        for _ in range(8):
            q = ring.interpolate(self.rng.uniform(0.0, ring.length))
            piece = shapely.intersection(shapely.intersection(band, q.buffer(length / 2)),
                                         self.city_w.buffer(-width))
            parts = sorted(_polygons(piece), key=lambda g: g.area)
            if parts and parts[-1].area > 0.5 * width * length * 0.5:
                return parts[-1]
        return None

    # -- the faults --
    def apply(self) -> tuple[list, list, list]:
        import shapely
        import shapely.affinity
        from shapely.geometry import Point

        px, rng = self.px, self.rng
        red = [(g, False) for g in self.red]
        farm = [(g, False) for g in self.farm]
        udb = [(g, False) for g in self.udb]

        # 1. red line reaching into neighbouring farmland (overlaps at edges)
        tree = shapely.STRtree(self.red)
        fi, ri = tree.query(self.farm, predicate="dwithin", distance=1.0)
        pairs = sorted(set(zip(fi.tolist(), ri.tolist())))
        used_r: set = set()
        for k in rng.permutation(len(pairs)):
            f, r = pairs[int(k)]
            if r in used_r or len(used_r) == 4:
                continue
            edge = shapely.intersection(self.farm[f].boundary, self.red[r].buffer(1.0))
            if edge.is_empty:
                continue
            centre = shapely.line_interpolate_point(
                shapely.get_parts(edge)[0], 0.5, normalized=True) \
                if edge.geom_type != "Point" else edge
            reach = shapely.intersection(
                shapely.intersection(self.farm[f], self.red[r].buffer(0.5 * px)),
                centre.buffer(1500.0))
            if reach.area < 1e4:
                continue
            merged = _polygons(shapely.union(self.red[r], reach))
            red[r] = (max(merged, key=lambda g: g.area), False)
            used_r.add(r)

        # 2. slivers < 1 pixel wide along boundaries (separate features)
        for source, dest, n in ((self.red, red, 3), (self.farm, farm, 3), (self.udb, udb, 1)):
            big = [g for g in source if g.area > 4e6]
            for k in rng.choice(len(big), size=min(n, len(big)), replace=False):
                s = self._sliver(big[int(k)], 0.2 * px, 3000.0)
                if s is not None:
                    dest.append((s, False))

        # 3. polygons smaller than a pixel, and 4. invalid geometries, at fresh sites
        taken: list = []
        core = self._core()
        lc = self.raster.lc
        core &= self._far_from(["udb"], 1500.0)
        in_agri = self._rasterize([self.agri_w])
        wet_free = np.isin(lc, _WET_CODES) & core & self._far_from(["red"], 1500.0)
        wet_sites = self._sites(wet_free & ~in_agri, 4, taken)
        if len(wet_sites) < 4:  # (a pond in the farmland then)
            wet_sites += self._sites(wet_free, 4 - len(wet_sites), taken)
        crop_free = np.isin(lc, _CROP_CODES) & core & self._far_from(["farm", "red"], 1000.0)
        crop_sites = self._sites(crop_free & in_agri, 3, taken)
        if len(crop_sites) < 3:
            crop_sites += self._sites(crop_free, 3 - len(crop_sites), taken)
        d_udb = self._distance("udb")
        town_sites = self._sites((d_udb >= 1500.0) & (d_udb <= 4000.0) & core
                                 & self._far_from(["red"], 500.0), 1, taken)
        for i, (x, y) in enumerate(wet_sites[:3]):
            if i < 2:  # small ponds: discs of ~0.25 pixel
                red.append((Point(x, y).buffer(0.28 * px, quad_segs=8), False))
            else:  # a marsh patch of ~0.5 pixel
                red.append((shapely.affinity.rotate(
                    shapely.box(x - 0.35 * px, y - 0.35 * px, x + 0.35 * px, y + 0.35 * px),
                    rng.uniform(0, 90)), False))
        if len(wet_sites) > 3:
            x, y = wet_sites[3]
            red.append((_bowtie(x, y, 4.0 * px, rng.uniform(0, math.pi)), True))
        for x, y in crop_sites[:2]:
            farm.append((shapely.affinity.rotate(
                shapely.box(x - 0.4 * px, y - 0.25 * px, x + 0.4 * px, y + 0.25 * px),
                rng.uniform(0, 180)), False))
        if len(crop_sites) > 2:
            x, y = crop_sites[2]
            farm.append((_self_touching(x, y, 5.0 * px, rng.uniform(0, math.pi)), True))
        for x, y in town_sites:
            udb.append((shapely.box(x - 0.45 * px, y - 0.45 * px, x + 0.45 * px,
                                    y + 0.45 * px), False))
        return red, farm, udb
