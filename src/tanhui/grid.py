"""Tile grids: tile ids, tile geometry and pixel areas (science.md §6).

A :class:`TileGrid` is a regular, north-up pixel grid in one CRS, cut into equal tiles
``T{row:03d}_{col:03d}`` counted from the top-left tile ``T000_000``. Grids are data: the
shipped ones live in ``grids/<grid_id>.toml`` (see ``grids/README.md``); a raster's own pixel
grid is made with :meth:`TileGrid.from_raster`.

Pixel areas follow science.md §6.1:

* equal-area projected CRS (Albers, LAEA, sinusoidal, ...): ``|dx·dy|``, the same for every
  pixel (900 m² for 30 m);
* geographic CRS (EPSG:4326, CGCS2000 EPSG:4490): exact ellipsoidal area of the
  latitude–longitude cell, per row, on the CRS's own ellipsoid;
* any other projected CRS (UTM, Web Mercator, Gauss–Krüger): per-pixel area on the ellipsoid,
  with a :class:`RuntimeWarning`, because these CRSs are not equal-area.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import affine
import numpy as np
import pyproj
import shapely
from pyproj.crs import ProjectedCRS
from pyproj.crs.coordinate_operation import LambertAzimuthalEqualAreaConversion

from ._data import data_dir
from .errors import ConfigError, GridMismatchError, MissingCRSError, OutputError

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = ["Shape", "TileGrid", "TileId", "ellipsoidal_row_area_m2"]

_TILE_ID_RE = re.compile(r"T(\d{3,})_(\d{3,})")

# Projection methods (pyproj ``coordinate_operation.method_name``) that preserve area, so a
# pixel's area is |dx·dy| everywhere. Names as PROJ 9 reports them for EPSG/ESRI/PROJ-string
# definitions (e.g. EPSG:3035 -> "Lambert Azimuthal Equal Area", EPSG:6933 -> "Lambert
# Cylindrical Equal Area", MODIS sinusoidal -> "Sinusoidal").
EQUAL_AREA_METHODS = frozenset(
    {
        "Albers Equal Area",
        "Lambert Azimuthal Equal Area",
        "Lambert Azimuthal Equal Area (Spherical)",
        "Lambert Cylindrical Equal Area",
        "Lambert Cylindrical Equal Area (Spherical)",
        "Sinusoidal",
        "Mollweide",
        "Equal Earth",
        "Eckert IV",
        "Eckert VI",
        "Goode Homolosine",
        "Interrupted Goode Homolosine",
    }
)

_REQUIRED_KEYS = ("name", "crs", "resolution", "origin", "tile_shape", "n_tiles")
_OPTIONAL_KEYS = ("description", "extent_note")
# Keys written by TileGrid.to_dict that are derived from the others (ignored when read back).
_DERIVED_KEYS = ("bounds", "is_geographic", "is_equal_area", "crs_name")

# Vertices per tile edge in to_geojson: projected tile edges are curves in lon/lat. At 16
# segments a 61 km Albers tile edge deviates from the true curve by well under a metre.
_GEOJSON_SEGMENTS_PER_EDGE = 16


class TileId(NamedTuple):
    """Tile position in a grid: ``row`` counted down from the top, ``col`` to the right.

    ``str(TileId(3, 12))`` is ``"T003_012"``; :meth:`parse` reads it back.
    """

    row: int
    col: int

    def __str__(self) -> str:
        return f"T{self.row:03d}_{self.col:03d}"

    @classmethod
    def parse(cls, text: str) -> TileId:
        """Read a tile id written as ``T{row:03d}_{col:03d}``, e.g. ``"T003_012"``.

        Raises
        ------
        ValueError
            If ``text`` is not of that form.

        Examples
        --------
        >>> TileId.parse("T003_012")
        TileId(row=3, col=12)
        """
        match = _TILE_ID_RE.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"tile id {text!r} is not of the form T<row>_<col> with at least 3 digits each "
                "(e.g. 'T003_012' for row 3, column 12). Use the ids listed by "
                "TileGrid.tile_ids() or 'tanhui grid GRID'."
            )
        return cls(int(match.group(1)), int(match.group(2)))


class Shape(NamedTuple):
    """Array shape in pixels, ``(ny, nx)`` = (rows, columns)."""

    ny: int
    nx: int


# --- pixel area -------------------------------------------------------------------------------


def ellipsoidal_row_area_m2(
    lat_top_deg: float | np.ndarray,
    lat_bottom_deg: float | np.ndarray,
    dlon_deg: float | np.ndarray,
    a: float,
    f: float,
) -> np.ndarray:
    """Area of a latitude–longitude cell on an ellipsoid of revolution, in m².

    Exact area between two parallels and two meridians (science.md §6.1)::

        A = (b² · Δλ / 2) · [q(φ_top) − q(φ_bottom)],   Δλ in radians
        q(φ) = sin φ / (1 − e² sin² φ) + 1/(2e) · ln[(1 + e sin φ) / (1 − e sin φ)]

    with ``b = a(1 − f)`` and ``e² = f(2 − f)``. On a sphere (``f == 0``) this reduces to
    ``a² · Δλ · (sin φ_top − sin φ_bottom)``.

    Parameters
    ----------
    lat_top_deg, lat_bottom_deg : float or array, degrees
        Latitudes of the cell's two parallels; their order does not matter. Arrays broadcast.
    dlon_deg : float or array, degrees
        Width of the cell in longitude (the sign is ignored).
    a : float, metres
        Semi-major axis (6 378 137 m for WGS 84 and CGCS2000).
    f : float
        Flattening (1/298.257223563 for WGS 84, 1/298.257222101 for CGCS2000).

    Returns
    -------
    numpy.ndarray (or numpy.float64 for scalar input)
        Cell area in m², float64, non-negative.

    References
    ----------
    Snyder, J. P. (1987). Map Projections — A Working Manual. USGS Prof. Paper 1395, eq. 3-12
    (authalic q) and the Albers/cylindrical equal-area area relations; science.md §6.1.

    Examples
    --------
    >>> round(float(ellipsoidal_row_area_m2(43.60025, 43.6, 0.00025,
    ...                                     6378137.0, 1 / 298.257223563)), 2)
    560.68
    """
    top = np.radians(np.asarray(lat_top_deg, dtype=np.float64))
    bottom = np.radians(np.asarray(lat_bottom_deg, dtype=np.float64))
    dlon = np.abs(np.radians(np.asarray(dlon_deg, dtype=np.float64)))
    if f == 0.0:
        return np.abs(a * a * dlon * (np.sin(top) - np.sin(bottom)))
    b = a * (1.0 - f)
    e2 = f * (2.0 - f)
    e = math.sqrt(e2)

    def q(phi: np.ndarray) -> np.ndarray:
        s = np.sin(phi)
        return s / (1.0 - e2 * s * s) + (1.0 / (2.0 * e)) * np.log((1.0 + e * s) / (1.0 - e * s))

    return np.abs(b * b * dlon / 2.0 * (q(top) - q(bottom)))


def _projected_pixel_area_m2(crs: pyproj.CRS, transform: affine.Affine, shape: Shape) -> np.ndarray:
    """Per-pixel ellipsoidal area of a window in a projected CRS that is not equal-area.

    The pixel corners are mapped to a Lambert azimuthal equal-area projection on the CRS's
    own ellipsoid, centred on the window; an area in that projection is the area on the
    ellipsoid, so each pixel's area is its quadrilateral's planar area there. This agrees with
    pyproj's geodesic polygon area (``Geod.polygon_area_perimeter``) of the same corners to
    better than 1e-7 relative for pixels up to a few km, and takes about a second per
    2048 x 2048 tile instead of minutes for a Python loop over ``Geod``.
    """
    ny, nx = shape
    xs = transform.c + np.arange(nx + 1) * transform.a
    ys = transform.f + np.arange(ny + 1) * transform.e
    to_geo = pyproj.Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
    lon0, lat0 = to_geo.transform(float(xs.mean()), float(ys.mean()))
    if not (math.isfinite(lon0) and math.isfinite(lat0)):
        raise GridMismatchError(
            f"window centre ({xs.mean()}, {ys.mean()}) is outside the valid area of CRS "
            f"'{crs.name}'; cannot compute pixel areas. Use a window inside the projection's "
            "domain."
        )
    laea = ProjectedCRS(
        conversion=LambertAzimuthalEqualAreaConversion(lat0, lon0),
        geodetic_crs=crs.geodetic_crs,
    )
    to_laea = pyproj.Transformer.from_crs(crs, laea, always_xy=True)
    x2d, y2d = np.meshgrid(xs, ys)
    u, v = to_laea.transform(x2d, y2d)
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    # Quadrilateral area from its diagonals: translation-invariant, so no loss of digits
    # when the window is far from the LAEA centre.
    d1u = u[1:, 1:] - u[:-1, :-1]
    d1v = v[1:, 1:] - v[:-1, :-1]
    d2u = u[:-1, 1:] - u[1:, :-1]
    d2v = v[:-1, 1:] - v[1:, :-1]
    return 0.5 * np.abs(d1u * d2v - d1v * d2u)


# --- CRS helpers ------------------------------------------------------------------------------


def _horizontal_crs(crs: pyproj.CRS) -> pyproj.CRS:
    """The horizontal part of ``crs``: drop a +towgs84 BoundCRS wrapper and a vertical CRS."""
    if crs.is_bound:
        crs = crs.source_crs
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    if crs.is_bound:
        crs = crs.source_crs
    return crs


def _as_crs(value: Any, what: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as err:
        raise ConfigError(
            f"{what}: cannot read CRS {str(value)[:120]!r} ({err}). Give an EPSG code "
            "('EPSG:4490'), a WKT string or a PROJ string."
        ) from err


def _check_north_up(transform: affine.Affine, what: str) -> None:
    if transform.b != 0 or transform.d != 0 or transform.a == 0 or transform.e == 0:
        raise GridMismatchError(
            f"{what}: transform {tuple(transform)[:6]} is rotated or degenerate; tanhui grids "
            "are north-up only. Warp the raster to a north-up grid first (gdalwarp)."
        )


# --- the grid ---------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class TileGrid:
    """A north-up pixel grid in one CRS, cut into ``n_tile_rows x n_tile_cols`` equal tiles.

    Parameters
    ----------
    name : str
        Grid id (the ``grids/<name>.toml`` stem, or the raster's file stem).
    crs : pyproj.CRS
        Coordinate reference system of the grid (anything ``pyproj.CRS.from_user_input`` reads
        is converted).
    res_x, res_y : float, CRS units
        Pixel width and height, both positive (rows run south, so the affine ``e`` is -res_y).
    origin_x, origin_y : float, CRS units
        Top-left corner of tile ``T000_000``.
    tile_shape : Shape
        Pixels per tile ``(ny, nx)``.
    n_tile_rows, n_tile_cols : int
        Number of tile rows and columns.
    description : str
        Free text, shown in listings and the run manifest.
    extent_note : str
        What the grid covers (free text from the TOML file).
    """

    name: str
    crs: pyproj.CRS
    res_x: float
    res_y: float
    origin_x: float
    origin_y: float
    tile_shape: Shape
    n_tile_rows: int
    n_tile_cols: int
    description: str = ""
    extent_note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        what = f"grid '{self.name}'"
        if not isinstance(self.crs, pyproj.CRS):
            object.__setattr__(self, "crs", _as_crs(self.crs, what))
        counts = {"tile_shape.ny": self.tile_shape[0], "tile_shape.nx": self.tile_shape[1],
                  "n_tile_rows": self.n_tile_rows, "n_tile_cols": self.n_tile_cols}
        for key, value in counts.items():
            if not _is_count(value):
                raise ConfigError(f"{what}: {key} = {value!r}, expected a positive integer.")
        ny, nx = (int(n) for n in self.tile_shape)
        object.__setattr__(self, "tile_shape", Shape(ny, nx))
        object.__setattr__(self, "n_tile_rows", int(self.n_tile_rows))
        object.__setattr__(self, "n_tile_cols", int(self.n_tile_cols))
        for key in ("res_x", "res_y", "origin_x", "origin_y"):
            object.__setattr__(self, key, float(getattr(self, key)))
        for key in ("res_x", "res_y"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"{what}: {key} = {value}, expected a positive pixel size in CRS units. "
                    "Give the resolution as positive numbers (rows run south by convention)."
                )
        for key in ("origin_x", "origin_y"):
            if not math.isfinite(getattr(self, key)):
                raise ConfigError(f"{what}: {key} = {getattr(self, key)} is not a finite number.")
        h = _horizontal_crs(self.crs)
        if not (h.is_geographic or h.is_projected):
            raise ConfigError(
                f"{what}: CRS '{self.crs.name}' is neither geographic nor projected "
                f"(type {h.type_name}). Use a lon/lat or a projected 2-D CRS."
            )

    def __repr__(self) -> str:
        return (
            f"TileGrid(name={self.name!r}, crs={self.crs.name!r}, res=({self.res_x!r}, "
            f"{self.res_y!r}), origin=({self.origin_x!r}, {self.origin_y!r}), "
            f"tile_shape={tuple(self.tile_shape)}, "
            f"n_tiles=({self.n_tile_rows}, {self.n_tile_cols}))"
        )

    # -- construction --------------------------------------------------------------------------

    @staticmethod
    def available() -> list[str]:
        """Names of the grids shipped in ``grids/`` (sorted)."""
        return sorted(p.stem for p in data_dir("grids").glob("*.toml"))

    @classmethod
    def load(cls, name_or_path: str | Path) -> TileGrid:
        """Load a shipped grid by name (``"china_albers_30m"``) or a grid ``.toml`` file.

        Raises
        ------
        ConfigError
            Unknown name, missing file, invalid TOML, missing/unknown keys or bad values; the
            message names the file and lists the available grids.
        """
        path = Path(name_or_path)
        is_path = isinstance(name_or_path, Path) or path.suffix == ".toml" or len(path.parts) > 1
        if not is_path:
            path = data_dir("grids") / f"{name_or_path}.toml"
        if not path.is_file():
            what = f"grid file {path}" if is_path else f"grid '{name_or_path}'"
            raise ConfigError(
                f"{what} not found (shipped grids are in {data_dir('grids')}). Available grids: "
                f"{', '.join(cls.available())}. Use one of these names or the path to a grid "
                ".toml file (see grids/README.md for the fields)."
            )
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(
                f"grid file {path} is not valid TOML ({err}). Fix the syntax; "
                "grids/README.md shows a complete example."
            ) from err
        except OSError as err:
            raise ConfigError(
                f"grid file {path} cannot be read ({err}). Check permissions."
            ) from err
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "grid definition") -> TileGrid:
        """Build a grid from the TOML fields (or from :meth:`to_dict` output).

        ``source`` names the input in error messages (the file path for :meth:`load`).
        """
        keys = set(data)
        missing = [k for k in _REQUIRED_KEYS if k not in keys]
        unknown = sorted(keys - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS) - set(_DERIVED_KEYS))
        if missing or unknown:
            found = []
            if missing:
                found.append(f"missing key(s) {missing}")
            if unknown:
                found.append(f"unknown key(s) {unknown}")
            raise ConfigError(
                f"{source}: {' and '.join(found)}. A grid needs "
                f"{', '.join(_REQUIRED_KEYS)} (optional: {', '.join(_OPTIONAL_KEYS)}); "
                "see grids/README.md."
            )
        name = data["name"]
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{source}: 'name' = {name!r}, expected a non-empty string.")
        for key in _OPTIONAL_KEYS:
            if key in data and not isinstance(data[key], str):
                raise ConfigError(f"{source}: '{key}' = {data[key]!r}, expected a string.")
        res_x, res_y = _pair(data, "resolution", float, source)
        origin_x, origin_y = _pair(data, "origin", float, source)
        ny, nx = _pair(data, "tile_shape", int, source)
        rows, cols = _pair(data, "n_tiles", int, source)
        crs = _as_crs(data["crs"], f"{source}: 'crs'")
        try:
            return cls(
                name=name.strip(), crs=crs, res_x=res_x, res_y=res_y,
                origin_x=origin_x, origin_y=origin_y, tile_shape=Shape(ny, nx),
                n_tile_rows=rows, n_tile_cols=cols,
                description=data.get("description", ""), extent_note=data.get("extent_note", ""),
            )
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from err

    @classmethod
    def from_raster(cls, path: str | Path, tile_shape: Shape = Shape(1024, 1024)) -> TileGrid:
        """The raster's own pixel grid: origin at its top-left corner, tiles covering it.

        The last tile row and column may extend past the raster (read as nodata).

        Raises
        ------
        InputFileError
            The file is missing, empty or not a readable raster.
        MissingCRSError
            The raster has no CRS.
        GridMismatchError
            The raster is rotated or not north-up.
        """
        # Local import: rasterio_io may import grid.py in turn.
        from .rasterio_io import inspect_raster

        info = inspect_raster(path, what="raster")
        tile_shape = Shape(*tile_shape)
        t = info.transform
        return cls(
            name=Path(path).stem,
            crs=pyproj.CRS.from_user_input(info.crs),
            res_x=t.a,
            res_y=-t.e,
            origin_x=t.c,
            origin_y=t.f,
            tile_shape=tile_shape,
            n_tile_rows=max(1, math.ceil(info.height / tile_shape.ny)),
            n_tile_cols=max(1, math.ceil(info.width / tile_shape.nx)),
            description=f"pixel grid of {Path(path)} ({info.height} x {info.width} px)",
        )

    # -- CRS properties ------------------------------------------------------------------------

    @cached_property
    def _hcrs(self) -> pyproj.CRS:
        return _horizontal_crs(self.crs)

    @property
    def is_geographic(self) -> bool:
        """True for a lon/lat CRS (pixel area varies with latitude)."""
        return bool(self._hcrs.is_geographic)

    @property
    def is_equal_area(self) -> bool:
        """True when the CRS's projection method preserves area (see ``EQUAL_AREA_METHODS``)."""
        if not self._hcrs.is_projected or self._hcrs.coordinate_operation is None:
            return False
        return self._hcrs.coordinate_operation.method_name in EQUAL_AREA_METHODS

    @cached_property
    def _unit_factor(self) -> float:
        """Metres per CRS unit (projected) or radians per CRS unit (geographic)."""
        return float(self._hcrs.axis_info[0].unit_conversion_factor)

    # -- tiles ---------------------------------------------------------------------------------

    @property
    def tile_width(self) -> float:
        """Tile width in CRS units (nx · res_x)."""
        return self.tile_shape.nx * self.res_x

    @property
    def tile_height(self) -> float:
        """Tile height in CRS units (ny · res_y)."""
        return self.tile_shape.ny * self.res_y

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Extent of all tiles ``(xmin, ymin, xmax, ymax)`` in grid CRS units."""
        return (
            self.origin_x,
            self.origin_y - self.n_tile_rows * self.tile_height,
            self.origin_x + self.n_tile_cols * self.tile_width,
            self.origin_y,
        )

    def tile_ids(self) -> list[TileId]:
        """All tiles, row-major (``T000_000``, ``T000_001``, ...)."""
        return [TileId(r, c) for r in range(self.n_tile_rows) for c in range(self.n_tile_cols)]

    def _tile(self, tid: TileId | str | tuple[int, int]) -> TileId:
        tid = TileId.parse(tid) if isinstance(tid, str) else TileId(*tid)
        if not (0 <= tid.row < self.n_tile_rows and 0 <= tid.col < self.n_tile_cols):
            raise GridMismatchError(
                f"tile {tid} is outside grid '{self.name}', which has "
                f"rows 0-{self.n_tile_rows - 1} and columns 0-{self.n_tile_cols - 1} "
                f"(T000_000 to {TileId(self.n_tile_rows - 1, self.n_tile_cols - 1)}). "
                "Pick a tile from "
                "TileGrid.tile_ids() or tiles_intersecting()."
            )
        return tid

    def tile_bounds(self, tid: TileId | str) -> tuple[float, float, float, float]:
        """Tile extent ``(xmin, ymin, xmax, ymax)`` in grid CRS units."""
        tid = self._tile(tid)
        # Both edges from the origin (not xmin + width) so neighbours share edges exactly.
        xmin = self.origin_x + tid.col * self.tile_width
        xmax = self.origin_x + (tid.col + 1) * self.tile_width
        ymax = self.origin_y - tid.row * self.tile_height
        ymin = self.origin_y - (tid.row + 1) * self.tile_height
        return (xmin, ymin, xmax, ymax)

    def tile_transform(self, tid: TileId | str) -> affine.Affine:
        """Affine transform of the tile's pixel grid (north-up, top-left corner)."""
        xmin, _, _, ymax = self.tile_bounds(tid)
        return affine.Affine(self.res_x, 0.0, xmin, 0.0, -self.res_y, ymax)

    def tile_polygon(self, tid: TileId | str) -> shapely.Polygon:
        """Tile outline as a rectangle in grid CRS units."""
        return shapely.box(*self.tile_bounds(tid))

    def tiles_intersecting(
        self,
        geom: shapely.Geometry | gpd.GeoSeries | gpd.GeoDataFrame,
        crs: Any = None,
    ) -> list[TileId]:
        """Tiles whose area really intersects ``geom`` (not merely its bounding box), row-major.

        Parameters
        ----------
        geom : shapely geometry, GeoSeries or GeoDataFrame
            Area of interest. GeoSeries/GeoDataFrames are merged into one geometry.
        crs : optional
            CRS of ``geom`` (anything pyproj reads). Defaults to the GeoSeries' own ``.crs``;
            a plain shapely geometry without ``crs`` is taken to be in the grid CRS.

        Notes
        -----
        For polygons, a tile that only shares an edge or a corner with ``geom`` is not
        returned (it would hold no pixel of it). Geometries are densified before reprojection
        so that long straight edges follow the curve they map to.
        """
        geom_grid = self._to_grid_geometry(geom, crs)
        if geom_grid.is_empty:
            return []
        gxmin, gymin, gxmax, gymax = geom_grid.bounds
        # ceil(..) - 1 and floor(..) include both neighbours of an edge the geometry lies on;
        # the predicates below decide.
        c0 = max(0, math.ceil((gxmin - self.origin_x) / self.tile_width) - 1)
        c1 = min(self.n_tile_cols - 1, math.floor((gxmax - self.origin_x) / self.tile_width))
        r0 = max(0, math.ceil((self.origin_y - gymax) / self.tile_height) - 1)
        r1 = min(self.n_tile_rows - 1, math.floor((self.origin_y - gymin) / self.tile_height))
        if c0 > c1 or r0 > r1:
            return []
        candidates = [TileId(r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]
        boxes = np.array([self.tile_polygon(t) for t in candidates], dtype=object)
        shapely.prepare(geom_grid)
        hit = shapely.intersects(geom_grid, boxes)
        if shapely.get_dimensions(geom_grid) == 2:
            hit &= ~shapely.touches(geom_grid, boxes)
        return [t for t, keep in zip(candidates, hit, strict=True) if keep]

    def _to_grid_geometry(self, geom: Any, crs: Any) -> shapely.Geometry:
        """Merge ``geom`` into one shapely geometry in the grid CRS."""
        src_crs = None if crs is None else _as_crs(crs, "tiles_intersecting(crs=...)")
        if hasattr(geom, "geometry") and hasattr(geom, "crs"):  # GeoSeries / GeoDataFrame
            own = None if geom.crs is None else pyproj.CRS.from_user_input(geom.crs)
            if src_crs is not None and own is not None and src_crs != own:
                raise GridMismatchError(
                    f"tiles_intersecting: the geometries carry CRS '{own.name}' but "
                    f"crs='{src_crs.name}' was passed. Drop the crs argument or call "
                    ".to_crs() first."
                )
            src_crs = src_crs or own
            if src_crs is None:
                raise MissingCRSError(
                    "tiles_intersecting: the GeoSeries/GeoDataFrame has no CRS. Set it with "
                    ".set_crs('EPSG:4326') (or its true CRS) or pass crs=..."
                )
            geom = shapely.union_all(np.asarray(geom.geometry.to_numpy(), dtype=object))
        if not isinstance(geom, shapely.Geometry):
            raise TypeError(
                f"tiles_intersecting: expected a shapely geometry, GeoSeries or GeoDataFrame, "
                f"got {type(geom).__name__}."
            )
        if geom.is_empty or src_crs is None or src_crs == self.crs:
            return geom
        return self._reproject(geom, src_crs)

    def _reproject(self, geom: shapely.Geometry, src_crs: pyproj.CRS) -> shapely.Geometry:
        xmin, ymin, xmax, ymax = geom.bounds
        span = max(xmax - xmin, ymax - ymin)
        if span > 0:  # densify: straight edges in one CRS are curves in the other
            geom = shapely.segmentize(geom, span / 256.0)
        tr = pyproj.Transformer.from_crs(src_crs, self.crs, always_xy=True)

        def project(xy: np.ndarray) -> np.ndarray:
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        out = shapely.transform(geom, project)
        if not np.isfinite(shapely.get_coordinates(out)).all():
            raise GridMismatchError(
                f"tiles_intersecting: part of the geometry (bounds {geom.bounds} in "
                f"'{src_crs.name}') cannot be projected to grid '{self.name}' ({self.crs.name}). "
                "Clip the geometry to the grid's region first."
            )
        return out if out.is_valid else shapely.make_valid(out)

    # -- pixel area ----------------------------------------------------------------------------

    def pixel_area_m2(self, tid: TileId | str) -> np.ndarray:
        """Pixel areas of tile ``tid`` in m², float64, broadcastable to the tile.

        Shape ``(ny, 1)`` for equal-area and geographic grids, ``(ny, nx)`` otherwise (with a
        RuntimeWarning). See :meth:`window_area_m2`.
        """
        return self.window_area_m2(self.tile_transform(tid), self.tile_shape)

    def window_area_m2(
        self, transform: affine.Affine, shape: Shape | tuple[int, int]
    ) -> np.ndarray:
        """Pixel areas in m² of any north-up window ``(transform, shape)`` in this grid's CRS.

        Parameters
        ----------
        transform : affine.Affine
            Window transform in grid CRS units (no rotation).
        shape : Shape
            Window size ``(ny, nx)`` in pixels.

        Returns
        -------
        numpy.ndarray, float64, m²
            * equal-area CRS: shape ``(ny, 1)``, every value ``|dx·dy|`` (times the unit's
              metres², e.g. 900.0 for 30 m);
            * geographic CRS: shape ``(ny, 1)``, per-row ellipsoidal cell area on the CRS's
              own ellipsoid (:func:`ellipsoidal_row_area_m2`); rows beyond ±90° are clipped;
            * other projected CRS: shape ``(ny, nx)``, per-pixel area on the ellipsoid of the
              pixel's corner quadrilateral, and a RuntimeWarning that the CRS is not equal-area.

        References
        ----------
        science.md §6.1 (rules 1–3 and test vectors).
        """
        ny, nx = Shape(*shape)
        _check_north_up(transform, f"window on grid '{self.name}'")
        if self.is_geographic:
            deg_per_unit = math.degrees(self._unit_factor)
            rows = np.arange(ny, dtype=np.float64)
            lat_top = np.clip((transform.f + rows * transform.e) * deg_per_unit, -90.0, 90.0)
            lat_bottom = np.clip(
                (transform.f + (rows + 1.0) * transform.e) * deg_per_unit, -90.0, 90.0
            )
            geod = self._hcrs.get_geod()
            area = ellipsoidal_row_area_m2(
                lat_top, lat_bottom, transform.a * deg_per_unit, geod.a, geod.f
            )
            return area.reshape(ny, 1)
        if self.is_equal_area:
            area = abs(transform.a * transform.e) * self._unit_factor**2
            return np.full((ny, 1), area, dtype=np.float64)
        warnings.warn(
            f"grid '{self.name}' uses CRS '{self.crs.name}', which is not equal-area; pixel "
            "areas are computed per pixel on the ellipsoid (slower, shape (ny, nx)). For area "
            "work use an equal-area grid such as 'china_albers_30m' (science.md §6.1).",
            RuntimeWarning,
            stacklevel=2,
        )
        return _projected_pixel_area_m2(self._hcrs, transform, Shape(ny, nx))

    # -- export --------------------------------------------------------------------------------

    def to_geojson(self, path: str | Path, tiles: Iterable[TileId | str] | None = None) -> None:
        """Write a tile index for QGIS: RFC 7946 GeoJSON in lon/lat (EPSG:4326).

        One Polygon per tile, edges densified so that projected tiles show their true curved
        outline; properties ``tile_id, row, col, xmin, ymin, xmax, ymax`` (grid CRS units) and
        ``grid``. The file is written under a temporary name and then renamed.

        Raises
        ------
        OutputError
            The folder does not exist or is not writable.
        """
        path = Path(path)
        tids = self.tile_ids() if tiles is None else [self._tile(t) for t in tiles]
        rings = self._lonlat_rings(tids)
        features = []
        for tid, ring in zip(tids, rings, strict=True):
            xmin, ymin, xmax, ymax = self.tile_bounds(tid)
            features.append(
                {
                    "type": "Feature",
                    "id": str(tid),
                    "properties": {
                        "tile_id": str(tid), "row": tid.row, "col": tid.col,
                        "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
                        "grid": self.name,
                    },
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                }
            )
        doc = {"type": "FeatureCollection", "name": self.name, "features": features}
        _write_text_atomic(path, json.dumps(doc, ensure_ascii=False))

    def _lonlat_rings(self, tids: list[TileId]) -> list[list[list[float]]]:
        """Counter-clockwise lon/lat rings (RFC 7946 right-hand rule) of the tiles."""
        n = 1 if self.is_geographic else _GEOJSON_SEGMENTS_PER_EDGE
        t = np.arange(n) / n
        xs, ys = [], []
        for tid in tids:
            xmin, ymin, xmax, ymax = self.tile_bounds(tid)
            # bottom edge eastwards, right edge north, top edge west, left edge south
            xs.append(np.concatenate([xmin + t * (xmax - xmin), np.full(n, xmax),
                                      xmax - t * (xmax - xmin), np.full(n, xmin), [xmin]]))
            ys.append(np.concatenate([np.full(n, ymin), ymin + t * (ymax - ymin),
                                      np.full(n, ymax), ymax - t * (ymax - ymin), [ymin]]))
        tr = pyproj.Transformer.from_crs(self.crs, "EPSG:4326", always_xy=True)
        lon, lat = tr.transform(np.concatenate(xs), np.concatenate(ys))
        lon, lat = np.round(lon, 7), np.round(lat, 7)  # 1e-7 degree ~ 1 cm
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise GridMismatchError(
                f"grid '{self.name}': some tile corners cannot be converted to lon/lat. "
                "Write only the tiles inside the projection's domain (tiles=...)."
            )
        k = 4 * n + 1
        return [
            np.column_stack([lon[i * k:(i + 1) * k], lat[i * k:(i + 1) * k]]).tolist()
            for i in range(len(tids))
        ]

    def to_dict(self) -> dict[str, Any]:
        """All fields for the run manifest (CRS as WKT2); :meth:`from_dict` reads it back."""
        return {
            "name": self.name,
            "description": self.description,
            "crs": self.crs.to_wkt(),
            "crs_name": self.crs.name,
            "resolution": [self.res_x, self.res_y],
            "origin": [self.origin_x, self.origin_y],
            "tile_shape": [self.tile_shape.ny, self.tile_shape.nx],
            "n_tiles": [self.n_tile_rows, self.n_tile_cols],
            "extent_note": self.extent_note,
            "bounds": list(self.bounds),
            "is_geographic": self.is_geographic,
            "is_equal_area": self.is_equal_area,
        }


# --- small helpers ----------------------------------------------------------------------------


def _pair(data: Mapping[str, Any], key: str, kind: type, source: str) -> tuple[Any, Any]:
    """Read a 2-element numeric list ``data[key]`` as ``kind`` (float or int)."""
    value = data[key]
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    )
    if ok and kind is int:
        ok = all(float(v).is_integer() for v in value)
    if not ok:
        expected = "two integers" if kind is int else "two numbers"
        raise ConfigError(
            f"{source}: '{key}' = {value!r}, expected a list of {expected}, e.g. "
            f"{key} = {[2048, 2048] if kind is int else [30.0, 30.0]}."
        )
    return kind(value[0]), kind(value[1])


def _is_count(value: Any) -> bool:
    """True for a positive integer (also a float or numpy number with an integral value)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(value) and float(value).is_integer() and value >= 1


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and rename it into place."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(
            f"cannot write {path}: folder {folder} does not exist. Create it first."
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as err:
        raise OutputError(
            f"cannot write {path} ({err}). Check that the folder is writable and the file is "
            "not open in another program."
        ) from err
