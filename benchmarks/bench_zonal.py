"""Benchmark of zonal aggregation: tanhui's streaming aggregation vs exactextract (issue 4).

Usage::

    python3 benchmarks/bench_zonal.py [--resolution 30|250] [--workers 2] [--variables ...]
                                      [--workdir DIR] [--json FILE]

1. **Inputs** (cached in ``--workdir``, default ``$TMPDIR/tanhui_bench``): the stock rasters of
   a stock-only run of the synthetic Horqin demo with the 8 counties as regions and the six
   synthetic 三区三线 zone layers (``out_zonal/`` of ``demo_<res>m_flux/project_zonal.toml`` if
   ``bench_batch.py`` left that folder, else ``demo_<res>m_zonal/``, built from
   ``bench_stock.py``'s cached land cover plus ``tanhui.demo.zones.write_demo_zones``). The run
   is made once (not timed here). Its VRT mosaics (e.g. ``stock_total_tC_ha_2023.vrt``) are
   the rasters aggregated.
2. **Polygons**: every layer (counties + 6 zone layers) read, repaired and reprojected to the
   raster CRS exactly as a run does (``tanhui.context.read_polygon_layer``) and written once
   to ``layers_rastercrs.gpkg``; both tools read that file, so they see identical polygons.
3. **Children** (each its own process; wall time = reading the layers + aggregating every
   layer; peak memory = the child's ``ru_maxrss``):

   * ``tanhui``: :func:`tanhui.aggregate.aggregate_layers`, all layers in one pass over the
     rasters (each window read once), 2048-px windows,
     threaded Dask scheduler with ``--workers`` threads (and once with 1 thread);
   * ``exactextract``: ``exact_extract(vrt, gdf, ["sum", "count"])`` per layer on the same
     VRT (exactextract's default feature-sequential strategy, one thread).

4. **Checks**: per feature, tanhui's ``sum_<v> / pixel area`` and ``valid_area / pixel area``
   against exactextract's ``sum`` and ``count`` (1e-6 relative); the sum of the 三区 layers'
   totals against the counties' total (both partition Tongliao; they differ only by the
   float32 fractions of the pixels on Tongliao's outer boundary); tanhui's county totals
   against the run's own ``tables/region_totals.csv``.

Targets (issue 4): tanhui peak memory < 2 GiB; tanhui time <= exactextract time; results
identical to 1e-6 relative.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # noqa: E402
    READY_MARKER,
    machine_info,
    now,
    print_table,
    run_child,
    use_repo_src,
    verdict,
)

use_repo_src()

PEAK_MEMORY_TARGET_GIB = 2.0
PARITY_RTOL = 1e-6
RUN_READY = ".bench_zonal_ready"
LAYERS_FILE = "layers_rastercrs.gpkg"
SPACE_KINDS = ("ecological_space", "agricultural_space", "urban_space")


# --- inputs ------------------------------------------------------------------------------------

def _zonal_project(project_toml: Path) -> Path:
    """A stock-only copy of a demo project (no ``[flux]``) writing into ``out_zonal/``."""
    from bench_stock import strip_flux

    text = strip_flux(project_toml.read_text(encoding="utf-8"))
    text = re.sub(r'(?m)^output_dir\s*=.*$', 'output_dir = "out_zonal"', text)
    dst = project_toml.with_name("project_zonal.toml")
    dst.write_text(text, encoding="utf-8")
    return dst


def ensure_run(workdir: Path, resolution: int, workers: int) -> Path:
    """Output folder of a stock-only demo run with counties and 三区三线 zones (cached)."""
    flux_dir = workdir / f"demo_{resolution}m_flux"
    if (flux_dir / "out_zonal" / RUN_READY).exists():
        return flux_dir / "out_zonal"
    zonal_dir = workdir / f"demo_{resolution}m_zonal"
    if (zonal_dir / "out_zonal" / RUN_READY).exists():
        return zonal_dir / "out_zonal"

    t0 = time.perf_counter()
    if (flux_dir / "project.toml").exists() and (flux_dir / "zones").is_dir():
        project = _zonal_project(flux_dir / "project.toml")
    else:
        from bench_stock import ensure_demo_inputs
        from tanhui.demo import world
        from tanhui.demo.project import DEMO_GRIDS, DEMO_YEARS
        from tanhui.demo.zones import write_demo_zones
        from tanhui.grid import TileGrid

        ensure_demo_inputs(workdir, resolution)  # land cover, cached by bench_stock.py too
        stock_dir = workdir / f"demo_{resolution}m"
        zonal_dir.mkdir(parents=True, exist_ok=True)
        grid = TileGrid.load(DEMO_GRIDS[resolution])
        for y in DEMO_YEARS:
            dst = zonal_dir / f"landcover_{y}.tif"
            if not dst.exists():
                os.link(stock_dir / dst.name, dst)
        shutil.copyfile(world.counties_path(), zonal_dir / "counties.geojson")
        print(f"writing the 三区三线 demo layers into {zonal_dir} ...", flush=True)
        write_demo_zones(zonal_dir, grid, seed=42, year=DEMO_YEARS[-1])
        text = world._project_toml(grid, DEMO_YEARS, 42, DEMO_YEARS[-1], True)
        (zonal_dir / "project.toml").write_text(text, encoding="utf-8")
        project = _zonal_project(zonal_dir / "project.toml")
    print(f"stock-only run of {project} with {workers} workers (once; minutes at 30 m) ...",
          flush=True)
    res, peak, _ = run_child(__file__, ["_child-run", str(project), str(workers)],
                             workdir / "zonal_run_result.json")
    out_dir = Path(res["out_dir"])
    (out_dir / RUN_READY).write_text(f"{res['wall_s']:.1f} s, peak {peak:.2f} GiB\n")
    print(f"  run done in {time.perf_counter() - t0:.0f} s", flush=True)
    return out_dir


def ensure_layers(out_dir: Path) -> tuple[Path, list[dict]]:
    """Every polygon layer of the run in the raster CRS, repaired as a run does (cached)."""
    from tanhui.context import load_grid, read_polygon_layer
    from tanhui.project import load_project

    project = load_project(out_dir.parent / "project_zonal.toml")
    gpkg = out_dir.parent / LAYERS_FILE
    meta_file = gpkg.with_suffix(".json")
    if gpkg.exists() and meta_file.exists():
        return gpkg, json.loads(meta_file.read_text())
    grid = load_grid(project)
    specs = [("regions", project.regions.path, project.regions.id_field, project.regions.layer)]
    specs += [(z.kind, z.path, z.id_field, z.layer) for z in project.zones]
    meta = []
    tmp = gpkg.with_suffix(".tmp.gpkg")
    tmp.unlink(missing_ok=True)
    for kind, path, id_field, layer in specs:
        lay = read_polygon_layer(Path(path), id_field, None, layer, grid, kind, kind)
        gdf = lay.gdf[[id_field, "geometry"]].rename(columns={id_field: "fid_"})
        gdf["fid_"] = gdf["fid_"].astype(str)
        gdf.to_file(tmp, layer=kind, driver="GPKG")
        meta.append({"layer": kind, "n_features": len(gdf), "n_repaired": lay.n_repaired})
    tmp.replace(gpkg)
    meta_file.write_text(json.dumps(meta))
    return gpkg, meta


# --- child processes ---------------------------------------------------------------------------

def child_run(project: str, workers: int) -> dict:
    from tanhui.runner import run_project

    t0 = time.perf_counter()
    summary = run_project(project, workers=workers, overwrite=True)
    return {"wall_s": time.perf_counter() - t0, "out_dir": str(summary.out_dir)}


def _read_layers(gpkg: str, layers: list[str]):
    import geopandas as gpd

    return {k: gpd.read_file(gpkg, layer=k) for k in layers}


def child_tanhui(out_dir: str, gpkg: str, layers: list[str], variables: list[str],
                 workers: int, result_csv: str) -> dict:
    import pandas as pd
    import rasterio

    from tanhui.aggregate import aggregate_layers

    rasters = {v: str(Path(out_dir) / f"{v}.vrt") for v in variables}
    with rasterio.open(next(iter(rasters.values()))) as src:
        px_area = abs(src.transform.a * src.transform.e)
    t0 = time.perf_counter()
    gdfs = _read_layers(gpkg, layers)
    # all layers in one pass: each window of the rasters is read once
    tables = aggregate_layers(rasters, gdfs, "fid_", workers=workers)
    frames = []
    for kind, table in tables.items():
        out = pd.DataFrame({"layer": kind, "fid_": table["fid_"].astype(str)})
        for v in variables:
            out[f"sum_{v}"] = table[f"sum_{v}"] / px_area
            out[f"count_{v}"] = table[f"valid_area_m2_{v}"] / px_area
        frames.append(out)
    wall = time.perf_counter() - t0
    pd.concat(frames).to_csv(result_csv, index=False, float_format="%.17g")
    return {"wall_s": wall, "per_layer_s": {}, "pixel_area_m2": px_area}


def child_exactextract(out_dir: str, gpkg: str, layers: list[str], variables: list[str],
                       result_csv: str) -> dict:
    import pandas as pd
    from exactextract import exact_extract

    t0 = time.perf_counter()
    gdfs = _read_layers(gpkg, layers)
    frames = []
    per_layer = {}
    for kind, gdf in gdfs.items():
        t1 = time.perf_counter()
        out = pd.DataFrame({"layer": kind, "fid_": gdf["fid_"].astype(str)})
        for v in variables:
            ref = exact_extract(str(Path(out_dir) / f"{v}.vrt"), gdf, ["sum", "count"],
                                output="pandas")
            out[f"sum_{v}"] = ref["sum"].to_numpy()
            out[f"count_{v}"] = ref["count"].to_numpy()
        per_layer[kind] = time.perf_counter() - t1
        frames.append(out)
    wall = time.perf_counter() - t0
    pd.concat(frames).to_csv(result_csv, index=False, float_format="%.17g")
    return {"wall_s": wall, "per_layer_s": per_layer}


# --- comparison --------------------------------------------------------------------------------

def compare(tanhui_csv: Path, ee_csv: Path, variables: list[str]) -> dict:
    import numpy as np
    import pandas as pd

    a = pd.read_csv(tanhui_csv, dtype={"fid_": str})
    b = pd.read_csv(ee_csv, dtype={"fid_": str})
    m = a.merge(b, on=["layer", "fid_"], suffixes=("_t", "_e"), validate="one_to_one")
    assert len(m) == len(a) == len(b), "the two tools returned different feature sets"
    worst = 0.0
    n_bad = 0
    for v in variables:
        for col in (f"sum_{v}", f"count_{v}"):
            t, e = m[f"{col}_t"].to_numpy(), m[f"{col}_e"].to_numpy()
            # relative to the feature's own value, with a floor of one pixel's worth (1 unit x
            # 1 pixel) so that sub-pixel features are not judged on 1e-12-sized sums
            rel = np.abs(t - e) / np.maximum(np.abs(e), 1.0)
            worst = max(worst, float(np.nanmax(rel)))
            n_bad += int(np.sum(~(rel <= PARITY_RTOL)))
    space = a[a["layer"].isin(SPACE_KINDS)]
    counties = a[a["layer"] == "regions"]
    v0 = variables[0]
    return {"n_features": len(m), "max_rel_diff": worst, "n_over_tolerance": n_bad,
            "counties_total": float(counties[f"sum_{v0}"].sum()),
            "sanqu_total": float(space[f"sum_{v0}"].sum()),
            "sanqu_vs_counties_rel": float(space[f"sum_{v0}"].sum() / counties[f"sum_{v0}"].sum() - 1),
            "sanqu_vs_counties_area_rel": float(space[f"count_{v0}"].sum() / counties[f"count_{v0}"].sum() - 1)}


def compare_with_run(out_dir: Path, tanhui_csv: Path, variable: str, px_area: float) -> float | None:
    """Max relative difference of tanhui's county totals from the run's region_totals.csv."""
    import numpy as np
    import pandas as pd

    m = re.match(r"(stock_\w+)_tC_ha_(\d{4})$", variable)
    table = out_dir / "tables" / "region_totals.csv"
    if not (m and table.exists()):
        return None
    run = pd.read_csv(table, encoding="utf-8-sig", dtype={"feature_id": str})
    col = f"{m.group(1)}_tC_{m.group(2)}"
    if col not in run.columns:
        return None
    run = run.groupby("feature_id")[col].sum()
    a = pd.read_csv(tanhui_csv, dtype={"fid_": str})
    a = a[a["layer"] == "regions"].set_index("fid_")[f"sum_{variable}"] * px_area / 1e4
    joined = pd.concat([a, run], axis=1, join="inner")
    if len(joined) != len(a):
        return None
    return float(np.max(np.abs(joined.iloc[:, 0] / joined.iloc[:, 1] - 1)))


# --- driver ------------------------------------------------------------------------------------

def benchmark(resolution: int, workers: int, variables: list[str], workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    out_dir = ensure_run(workdir, resolution, workers)
    gpkg, meta = ensure_layers(out_dir)
    layers = [m["layer"] for m in meta]
    n_features = sum(m["n_features"] for m in meta)
    import rasterio

    with rasterio.open(out_dir / f"{variables[0]}.vrt") as src:
        raster_px = src.width * src.height
    import geopandas as gpd

    # polygon areas in the (equal-area) raster CRS: the 三区 vs county gap of the polygons
    # themselves, against which the aggregated gap is judged
    planar = {k: float(gpd.read_file(gpkg, layer=k).area.sum()) for k in layers}
    space_area = sum(planar[k] for k in SPACE_KINDS if k in planar)
    polygon_gap = space_area / planar["regions"] - 1 if "regions" in planar else None
    res_dir = workdir / f"zonal_{resolution}m"
    res_dir.mkdir(exist_ok=True)
    rows = []
    children = [("tanhui", workers), ("tanhui", 1), ("exactextract", 1)]
    results = {}
    for tool, w in children:
        key = f"{tool}_w{w}"
        csv = res_dir / f"{key}.csv"
        print(f"[{resolution} m] {tool} ({w} thread{'s' if w > 1 else ''}) on {len(layers)} layers, "
              f"{n_features} features ...", flush=True)
        if tool == "tanhui":
            args = ["_child-tanhui", str(out_dir), str(gpkg), ",".join(layers), ",".join(variables),
                    str(w), str(csv)]
        else:
            args = ["_child-ee", str(out_dir), str(gpkg), ",".join(layers), ",".join(variables),
                    str(csv)]
        res, peak, load = run_child(__file__, args, res_dir / f"{key}.json")
        results[key] = {**res, "peak_gib": peak, "load": load, "csv": str(csv)}
    ee = results["exactextract_w1"]
    for key, r in results.items():
        cmp = compare(Path(r["csv"]), Path(ee["csv"]), variables) if key != "exactextract_w1" else None
        r["compare"] = cmp
    t2 = results[f"tanhui_w{workers}"]
    run_diff = compare_with_run(out_dir, Path(t2["csv"]), variables[0], t2["pixel_area_m2"])
    for key, r in results.items():
        tool = key.rsplit("_w", 1)[0]
        is_t = tool == "tanhui"
        cmp = r["compare"]
        rows.append({
            "tool": tool, "threads": int(key.rsplit("_w", 1)[1]), "wall_s": r["wall_s"],
            "peak_gib": r["peak_gib"], "features": n_features, "load": r["load"],
            "per_layer_s": r["per_layer_s"],
            "max_rel_diff": cmp["max_rel_diff"] if cmp else None,
            "memory_verdict": verdict(r["peak_gib"] < PEAK_MEMORY_TARGET_GIB) if is_t else "",
            "time_verdict": verdict(r["wall_s"] <= ee["wall_s"]) if is_t else "",
            "parity_verdict": verdict(cmp["n_over_tolerance"] == 0) if cmp else "",
        })
    return {
        "benchmark": "zonal aggregation of a stock run's VRT mosaics: tanhui.aggregate vs exactextract",
        "date": now(), "machine": machine_info(), "resolution_m": resolution,
        "raster_pixels": raster_px, "variables": variables, "layers": meta,
        "conservation": {**{k: v for k, v in t2["compare"].items() if k not in ("n_features",)},
                         "sanqu_vs_counties_polygon_area_rel": polygon_gap},
        "county_totals_vs_run_tables_max_rel": run_diff,
        "rows": rows,
        "targets": {"tanhui_peak_gib_lt": PEAK_MEMORY_TARGET_GIB,
                    "tanhui_wall_le_exactextract": True, "parity_rtol": PARITY_RTOL},
    }


def report(result: dict) -> None:
    print(f"\n{result['benchmark']} — {result['date']}, {result['resolution_m']} m, "
          f"{result['raster_pixels'] / 1e6:.1f} Mpx raster, {result['machine']['cpus']} CPUs")
    print("layers: " + ", ".join(f"{m['layer']} ({m['n_features']})" for m in result["layers"]))
    head = ("tool", "threads", "wall s", "peak GiB", "features", "max rel diff", "load mean (max)",
            "mem<2GiB", "time<=ee", "parity 1e-6")
    rows = []
    for r in result["rows"]:
        rows.append((r["tool"], str(r["threads"]), f"{r['wall_s']:.1f}", f"{r['peak_gib']:.2f}",
                     str(r["features"]),
                     "-" if r["max_rel_diff"] is None else f"{r['max_rel_diff']:.1e}",
                     f"{r['load']['mean']:.1f} ({r['load']['max']:.1f})",
                     r["memory_verdict"] or "-", r["time_verdict"] or "-", r["parity_verdict"] or "-"))
    print_table(head, rows)
    c = result["conservation"]
    print(f"三区 total / county total - 1: {c['sanqu_vs_counties_rel']:.2e} (value), "
          f"{c['sanqu_vs_counties_area_rel']:.2e} (valid area); polygons themselves: "
          f"{c['sanqu_vs_counties_polygon_area_rel']:.2e} (planar area in the raster CRS)")
    if result["county_totals_vs_run_tables_max_rel"] is not None:
        print(f"county totals vs the run's region_totals.csv: max rel diff "
              f"{result['county_totals_vs_run_tables_max_rel']:.1e}")
    print(f"targets: tanhui peak < {PEAK_MEMORY_TARGET_GIB} GiB; tanhui wall <= exactextract wall; "
          f"per-feature sums and counts equal to {PARITY_RTOL} relative")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_child-"):
        return _child_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, choices=(30, 250), default=30)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--variables", nargs="+", default=["stock_total_tC_ha_2023"],
                    help="VRT stems of the run to aggregate (default: %(default)s)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tanhui_bench")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    result = benchmark(args.resolution, args.workers, args.variables, args.workdir.resolve())
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 0


def _child_main(argv: list[str]) -> int:
    result_file = Path(argv[argv.index("--result") + 1])
    argv = argv[: argv.index("--result")]
    cmd = argv[0]
    if cmd == "_child-run":
        res = child_run(argv[1], int(argv[2]))
    elif cmd == "_child-tanhui":
        res = child_tanhui(argv[1], argv[2], argv[3].split(","), argv[4].split(","), int(argv[5]),
                           argv[6])
    elif cmd == "_child-ee":
        res = child_exactextract(argv[1], argv[2], argv[3].split(","), argv[4].split(","), argv[5])
    else:
        raise SystemExit(f"unknown child command {cmd}")
    result_file.write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
