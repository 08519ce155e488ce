"""Batch benchmark: stock + flux + aggregation on the synthetic Horqin demo (issue 5 acceptance).

Usage::

    python3 benchmarks/bench_batch.py [--resolution 30|250] [--workdir DIR] [--json FILE]
                                      [--skip-floor-1] [--no-profile] [--keep]

Every measurement runs in its own child process (peak memory = that child's ``ru_maxrss``
from ``os.wait4``), in this order:

1. **full run, 1 worker** and **full run, 2 workers**: ``tanhui.runner.run_project`` on the
   demo project with stock (2015, 2023), flux (CASA NPP, Rh, NEP 2023 from 12 monthly NDVI
   files + monthly climate values) and aggregation per region (the 8 counties) and per
   ``[[zones]]`` layer of the demo (三区三线, if the generated project has them);
2. **one tile, 1 worker**: the same project with ``tiles=[one tile fully inside Tongliao]``
   (2048² = 4.2 M pixels at 30 m), for time per pixel at small size vs the full run;
3. **I/O floor** with 2 (and 1) threads: per tile of the full run, read what the run reads
   (both land-cover epochs with ``read_codes``, the 12 NDVI months with the project's own
   ``NdviSeries.read_months``; the climate is monthly scalars, nothing to read) and write as
   many rasters as the run wrote for that tile with the run's ``write_cog`` settings (dtype,
   bands, DEFLATE, block size, nodata). Values: land-cover codes for the stock rasters
   (float32 NaN nodata / uint8 255), the sum of the 12 NDVI months (float32) for the flux
   rasters, so the compressor sees data of similar structure;
4. **profile of one tile** (``cProfile`` of ``tanhui.tile_job.run_tile`` on the same tile,
   1 thread), grouped into phases: read land cover, read NDVI, stock kernels, CASA/Rh/NEP
   kernels, COG writes, zonal coverage (exactextract), zonal sums.

The 1-minute load average is sampled every 5 s during every child (shared machine).
Targets (issue 5): peak memory < 3 GiB; run / I/O floor < 1.5 (2 workers); speed-up of
2 workers over 1 >= 1.7; time per pixel of the one-tile run within 20 % of the full run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # noqa: E402
    READY_MARKER,
    machine_info,
    now,
    output_spec,
    pixels_in_polygons,
    print_table,
    run_child,
    use_repo_src,
    verdict,
)

use_repo_src()

PEAK_MEMORY_TARGET_GIB = 3.0
RATIO_TARGET = 1.5
SPEEDUP_TARGET = 1.7
PER_PIXEL_TOLERANCE = 0.20
FLUX_PREFIXES = ("npp_", "rh_", "nep_")


# --- inputs ------------------------------------------------------------------------------------

def ensure_batch_inputs(workdir: Path, resolution: int) -> Path:
    """The demo with NDVI and zones, cached in ``workdir/demo_<res>m_flux``; return project.toml.

    Reuses the land cover cached by ``bench_stock.py`` (``demo_<res>m``, hard links) and only
    adds the NDVI months, the zone layers and the project file; otherwise writes it all with
    ``write_demo_project(..., flux=True)``.
    """
    demo_dir = workdir / f"demo_{resolution}m_flux"
    marker = demo_dir / READY_MARKER
    if marker.exists():
        return demo_dir / "project.toml"
    from tanhui.demo.project import DEMO_GRIDS, DEMO_YEARS, write_demo_project

    t0 = time.perf_counter()
    stock_dir = workdir / f"demo_{resolution}m"
    demo_dir.mkdir(parents=True, exist_ok=True)
    if (stock_dir / READY_MARKER).exists():
        from tanhui.demo import world
        from tanhui.grid import TileGrid

        print(f"adding NDVI {DEMO_YEARS[-1]} and zones to the cached {resolution} m land cover "
              f"in {demo_dir} (minutes at 30 m) ...", flush=True)
        grid = TileGrid.load(DEMO_GRIDS[resolution])
        for y in DEMO_YEARS:
            dst = demo_dir / f"landcover_{y}.tif"
            if not dst.exists():
                os.link(stock_dir / dst.name, dst)
        shutil.copyfile(world.counties_path(), demo_dir / "counties.geojson")
        try:
            from tanhui.demo.zones import write_demo_zones

            write_demo_zones(demo_dir, grid, seed=42, year=DEMO_YEARS[-1])
            zones = True
        except ImportError:
            zones = False
        world.write_demo_ndvi(demo_dir, grid, DEMO_YEARS[-1], 42, workers=os.cpu_count() or 1)
        # the project file write_demo_project would write (private helper of the demo)
        text = world._project_toml(grid, DEMO_YEARS, 42, DEMO_YEARS[-1], zones)
        (demo_dir / "project.toml").write_text(text, encoding="utf-8")
    else:
        print(f"writing the {resolution} m demo with NDVI into {demo_dir} (~10 min at 30 m) ...",
              flush=True)
        write_demo_project(demo_dir, resolution=resolution, flux=True)
    marker.write_text(f"{time.perf_counter() - t0:.1f} s\n")
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return demo_dir / "project.toml"


def inner_tile(project: Path, grid) -> tuple[str, float]:
    """A tile fully inside the county polygons (the one nearest their centroid); its
    pixels-in-counties count."""
    import tomllib

    import geopandas as gpd

    doc = tomllib.loads(project.read_text(encoding="utf-8"))
    regions = gpd.read_file(project.parent / doc["regions"]["path"])
    union = regions.to_crs(grid.crs).geometry.union_all()
    tids = grid.tiles_intersecting(union, grid.crs)
    inside = [t for t in tids if union.contains(grid.tile_polygon(t))]
    pool = inside or sorted(tids, key=lambda t: -union.intersection(grid.tile_polygon(t)).area)[:1]
    c = union.centroid
    best = min(pool, key=lambda t: grid.tile_polygon(t).centroid.distance(c))
    return str(best), pixels_in_polygons(project, grid, grid.tile_polygon(best))


# --- child processes ---------------------------------------------------------------------------

def child_run(project: str, workers: int, tiles: list[str]) -> dict:
    """Child: the real run, timed around ``run_project`` (imports excluded)."""
    from tanhui.runner import run_project

    t0 = time.perf_counter()
    summary = run_project(project, workers=workers, overwrite=True, tiles=tiles or None)
    wall_s = time.perf_counter() - t0
    return {"wall_s": wall_s, "timings": summary.manifest["timings"],
            "tiles": list(summary.tiles_done), "out_dir": str(summary.out_dir)}


def child_floor(project: str, workers: int, spec_file: str, out_dir: str) -> dict:
    """Child: the I/O floor (read 2 epochs + 12 NDVI months per tile, write the same rasters)."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from tanhui.context import build_context
    from tanhui.outputs import write_cog
    from tanhui.project import load_project
    from tanhui.rasterio_io import read_codes

    spec = json.loads(Path(spec_file).read_text())
    t0 = time.perf_counter()
    ctx = build_context(load_project(project))
    setup_s = time.perf_counter() - t0
    grid = ctx.grid
    shape = tuple(grid.tile_shape)
    blocksize = 512 if min(shape) > 1024 else 256  # the rule of tile_job._write
    root = Path(out_dir)
    for stem in spec["stems"]:
        (root / stem["stem"]).mkdir(parents=True, exist_ok=True)

    def one_tile(tid) -> int:
        transform = grid.tile_transform(tid)
        codes = [read_codes(info, grid.crs, transform, shape)[0] for _, info in ctx.epochs]
        ndvi = (ctx.flux.series.read_months(grid.crs, transform, shape)
                if ctx.flux is not None else None)
        ndvi_sum = None if ndvi is None else ndvi.sum(axis=0, dtype=np.float32)
        n = 0
        for stem in spec["stems"]:
            c = codes[stem["epoch_index"]]
            kw = {}
            if stem["stem"].startswith(FLUX_PREFIXES) and ndvi is not None:
                arr = ndvi if stem["bands"] == 12 else ndvi_sum
            elif stem["dtype"] == "uint8":
                arr = np.where(c < 0, 255, c).astype(np.uint8)
                kw = {"nodata": 255, "resampling": "nearest"}
            else:
                arr = np.where(c < 0, np.nan, c).astype(stem["dtype"])
            if stem["bands"] > 1 and arr.ndim == 2:
                arr = np.broadcast_to(arr, (stem["bands"],) + arr.shape)
            names = [stem["stem"]] * (arr.shape[0] if arr.ndim == 3 else 1)
            write_cog(root / stem["stem"] / f"{tid}.tif", np.ascontiguousarray(arr), transform,
                      grid.crs, band_names=names, units=stem["units"], long_name=stem["stem"],
                      tags={"tile": str(tid), "grid": grid.name}, compress=stem["compress"],
                      blocksize=blocksize, **kw)
            n += 1
        return n

    wanted = set(spec["tiles"])
    tiles = [t for t in ctx.tiles if str(t) in wanted]
    t1 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        n_written = sum(pool.map(one_tile, tiles))
    floor_s = time.perf_counter() - t1
    return {"floor_s": floor_s, "setup_s": setup_s, "n_written": n_written, "n_tiles": len(tiles)}


#: Profile phases: (label, function names whose cumulative time is summed). Functions of a
#: phase do not call each other, so their cumulative times add up without double counting.
PHASES = (
    ("read land cover (read_codes)", ("read_codes",)),
    ("read NDVI (read_months)", ("read_months",)),
    ("stock kernels", ("stock_numba", "change_numba", "stock_reference", "change_reference")),
    ("CASA NPP kernel", ("casa_npp_numba", "casa_npp_reference")),
    ("Rh + NEP kernels", ("rh_pei_numba", "nep_numba", "rh_pei_reference", "nep_reference")),
    ("COG writes (write_cog)", ("write_cog",)),
    ("zonal coverage (tile_coverage)", ("tile_coverage",)),
    ("zonal sums (partial_sums, grid_sums)", ("partial_sums", "grid_sums")),
)


def child_profile(project: str, tile: str, out_dir: str) -> dict:
    """Child: cProfile of ``run_tile`` on one tile (1 thread), grouped into phases."""
    import cProfile
    import pstats

    from tanhui.context import build_context
    from tanhui.project import load_project
    from tanhui.tile_job import run_tile

    ctx = build_context(load_project(project))
    tid = next(t for t in ctx.tiles if str(t) == tile)
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run_tile(ctx, tid, out)  # warm-up: Numba compilation and GDAL caches, not profiled
    shutil.rmtree(out)
    out.mkdir(parents=True)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    res = run_tile(ctx, tid, out)
    prof.disable()
    total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    by_name: dict[str, list[float]] = {}
    for (_f, _l, name), (_cc, nc, _tt, ct, _callers) in stats.items():
        by_name.setdefault(name, [0, 0.0])
        by_name[name][0] += nc
        by_name[name][1] += ct
    phases = []
    for label, names in PHASES:
        calls = sum(by_name.get(n, [0, 0.0])[0] for n in names)
        secs = sum(by_name.get(n, [0, 0.0])[1] for n in names)
        phases.append({"phase": label, "seconds": secs, "calls": calls})
    top = sorted(((ct, tt, nc, f"{Path(f).name}:{line}({name})")
                  for (f, line, name), (_cc, nc, tt, ct, _c) in stats.items()), reverse=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"tile": tile, "run_tile_s": total, "phases": phases, "n_outputs": len(res.outputs),
            "n_partials": len(res.partials),
            "top_cumulative": [{"s": round(ct, 3), "self_s": round(tt, 3), "calls": nc, "fn": fn}
                               for ct, tt, nc, fn in top[:25]]}


# --- orchestration -----------------------------------------------------------------------------

def benchmark(resolution: int, workdir: Path, *, floor_1: bool, profile: bool, keep: bool) -> dict:
    import tomllib

    from tanhui.demo.project import DEMO_GRIDS, DEMO_YEARS
    from tanhui.grid import TileGrid

    workdir.mkdir(parents=True, exist_ok=True)
    grid = TileGrid.load(DEMO_GRIDS[resolution])
    project = ensure_batch_inputs(workdir, resolution)  # the demo project as written
    doc = tomllib.loads(project.read_text(encoding="utf-8"))
    zone_kinds = [z.get("kind", z.get("layer")) for z in doc.get("zones", [])]
    px_counties = pixels_in_polygons(project, grid)
    tile, tile_px_counties = inner_tile(project, grid)
    tile_px = grid.tile_shape[0] * grid.tile_shape[1]
    script = Path(__file__)
    out_dir = project.parent / doc["project"]["output_dir"]
    runs, floors = {}, {}

    def run(label: str, workers: int, tiles: list[str]) -> dict:
        print(f"\n[{resolution} m] {label}: run_project(workers={workers}"
              f"{', tiles=' + str(tiles) if tiles else ''}) ... load {os.getloadavg()[0]:.2f}",
              flush=True)
        res, peak, load = run_child(script, ["_child-run", str(project), str(workers), *tiles],
                                    workdir / "batch_run_result.json")
        res.update(peak_gib=peak, load=load, workers=workers, pixels=len(res["tiles"]) * tile_px)
        print(f"  {res['wall_s']:.1f} s, peak {peak:.2f} GiB, {len(res['tiles'])} tiles, "
              f"load avg {load['min']}-{load['max']} (mean {load['mean']})", flush=True)
        return res

    # most informative first (memory, floor ratio, profile), in case the budget runs out
    runs["full_w2"] = run("full run", 2, [])
    spec = output_spec(out_dir, runs["full_w2"]["tiles"], list(DEMO_YEARS))
    spec_file = workdir / "batch_floor_spec.json"
    spec_file.write_text(json.dumps(spec, indent=1))

    floor_dir = workdir / f"batch_io_floor_{resolution}m"

    def floor(workers: int) -> None:
        shutil.rmtree(floor_dir, ignore_errors=True)
        print(f"\n[{resolution} m] I/O floor, {workers} thread(s): {len(spec['tiles'])} tiles x "
              f"(2 land-cover epochs + 12 NDVI months read, {spec['outputs_per_tile']} rasters "
              f"written) ... load {os.getloadavg()[0]:.2f}", flush=True)
        res, peak, load = run_child(script, ["_child-floor", str(project), str(workers),
                                             str(spec_file), str(floor_dir)],
                                    workdir / "batch_floor_result.json")
        res.update(peak_gib=peak, load=load, workers=workers)
        floors[workers] = res
        print(f"  {res['floor_s']:.1f} s, peak {peak:.2f} GiB, "
              f"load avg {load['min']}-{load['max']}", flush=True)
        shutil.rmtree(floor_dir, ignore_errors=True)

    floor(2)
    prof = None
    if profile:
        print(f"\n[{resolution} m] cProfile of run_tile on tile {tile} (after a warm-up) ...",
              flush=True)
        prof, peak, load = run_child(script, ["_child-profile", str(project), tile,
                                              str(workdir / "batch_profile_out")],
                                     workdir / "batch_profile_result.json")
        prof.update(peak_gib=peak, load=load)
    runs["full_w1"] = run("full run", 1, [])
    runs["one_tile_w1"] = run("one tile", 1, [tile])
    if floor_1:
        floor(1)
    if not keep:
        shutil.rmtree(out_dir, ignore_errors=True)

    w1, w2, one = runs["full_w1"], runs["full_w2"], runs["one_tile_w1"]
    speedup = w1["wall_s"] / w2["wall_s"]
    ratio_w2 = w2["wall_s"] / floors[2]["floor_s"]
    ratio_w1 = w1["wall_s"] / floors[1]["floor_s"] if 1 in floors else None
    us_full = w1["wall_s"] / w1["pixels"] * 1e6
    us_one = one["wall_s"] / one["pixels"] * 1e6
    per_px_ratio = us_one / us_full
    us_full_c = w1["wall_s"] / px_counties * 1e6
    us_one_c = one["wall_s"] / tile_px_counties * 1e6
    peak = max(w1["peak_gib"], w2["peak_gib"])
    checks = [
        ("peak memory < 3 GiB (max of 1 and 2 workers)", f"{peak:.2f} GiB",
         verdict(peak < PEAK_MEMORY_TARGET_GIB)),
        ("run / I/O floor < 1.5 (2 workers)", f"{ratio_w2:.2f}", verdict(ratio_w2 < RATIO_TARGET)),
        ("speed-up 2 workers / 1 >= 1.7", f"{speedup:.2f}", verdict(speedup >= SPEEDUP_TARGET)),
        ("time/pixel 1 tile vs full run within 20 % (1 worker, tile pixels)",
         f"{per_px_ratio:.2f}", verdict(abs(per_px_ratio - 1) <= PER_PIXEL_TOLERANCE)),
    ]
    return {
        "benchmark": (f"batch: stock 2 epochs + flux (CASA/Rh/NEP, 12 NDVI months) + aggregation "
                      f"(8 counties, {len(zone_kinds)} zone layers), synthetic Horqin demo"),
        "date": now(), "resolution_m": resolution, "machine": machine_info(),
        "tanhui_src": str(Path(sys.modules["tanhui"].__file__).parent),
        "zone_layers": zone_kinds,
        "tile_shape": list(grid.tile_shape),
        "pixels_in_counties": round(px_counties), "one_tile": tile,
        "one_tile_pixels_in_counties": round(tile_px_counties),
        "runs": runs, "io_floor": {str(k): v for k, v in floors.items()},
        "outputs": [{k: s[k] for k in ("stem", "dtype", "bands", "compress", "block")}
                    for s in spec["stems"]],
        "outputs_per_tile": spec["outputs_per_tile"], "profile": prof,
        "figures": {"speedup_2_over_1": speedup, "ratio_to_floor_w2": ratio_w2,
                    "ratio_to_floor_w1": ratio_w1, "us_per_px_full_w1": us_full,
                    "us_per_px_one_tile_w1": us_one, "per_px_ratio_one_over_full": per_px_ratio,
                    "us_per_county_px_full_w1": us_full_c, "us_per_county_px_one_tile_w1": us_one_c,
                    "peak_gib": peak},
        "checks": [{"target": t, "value": v, "verdict": s} for t, v, s in checks],
        "definitions": {
            "wall_s": "run_project() call inside the child (validation, input checksums, tiles, "
                      "tables, delivery, manifest; imports excluded)",
            "peak_gib": "max RSS of the run's child process (ru_maxrss via wait4)",
            "Mpx/s": "pixels of the run's tiles (one layer) / wall_s",
            "io_floor_s": "read 2 land-cover epochs + 12 NDVI months and write the run's rasters "
                          "per tile, same write_cog settings, same thread count",
            "per_px_ratio": "(wall / tile pixels) of the one-tile run / the same for the full run, "
                            "both with 1 worker",
            "load": "1-minute load average sampled every 5 s during the child (shared machine)",
        },
    }


def report(r: dict) -> None:
    m = r["machine"]
    print(f"\n{r['benchmark']}\n{r['date']}, {r['resolution_m']} m, {m['cpus']} CPUs, "
          f"{m['mem_total_gib']} GiB RAM, {m['platform']}, Python {m['python']}, GDAL {m['gdal']}, "
          f"Numba {m['numba']}")
    print(f"zone layers: {', '.join(r['zone_layers']) or 'none'}; {r['outputs_per_tile']} rasters "
          f"per tile; pixels in counties {r['pixels_in_counties'] / 1e6:.1f} M; one tile = "
          f"{r['one_tile']} ({r['one_tile_pixels_in_counties'] / 1e6:.2f} M px in counties)\n")
    rows = []
    for key, label in (("one_tile_w1", "one tile"), ("full_w1", "full"), ("full_w2", "full")):
        x = r["runs"][key]
        rows.append((label, str(x["workers"]), str(len(x["tiles"])), f"{x['pixels'] / 1e6:.1f}",
                     f"{x['wall_s']:.1f}", f"{x['timings']['compute_s']:.1f}",
                     f"{x['peak_gib']:.2f}", f"{x['pixels'] / 1e6 / x['wall_s']:.2f}",
                     f"{x['wall_s'] / x['pixels'] * 1e6:.2f}",
                     f"{x['load']['mean']:.1f} ({x['load']['min']:.1f}-{x['load']['max']:.1f})"))
    for w, x in sorted(r["io_floor"].items(), reverse=True):
        npx = x["n_tiles"] * r["tile_shape"][0] * r["tile_shape"][1]
        rows.append(("I/O floor", w, str(x["n_tiles"]), f"{npx / 1e6:.1f}", f"{x['floor_s']:.1f}",
                     "", f"{x['peak_gib']:.2f}", f"{npx / 1e6 / x['floor_s']:.2f}",
                     f"{x['floor_s'] / npx * 1e6:.2f}",
                     f"{x['load']['mean']:.1f} ({x['load']['min']:.1f}-{x['load']['max']:.1f})"))
    print_table(("run", "workers", "tiles", "Mpx", "wall s", "tiles s", "peak GiB", "Mpx/s",
                 "us/px", "load avg mean (min-max)"), rows)
    f = r["figures"]
    print(f"\nratio to I/O floor: {f['ratio_to_floor_w2']:.2f} (2 workers)"
          + (f", {f['ratio_to_floor_w1']:.2f} (1 worker)" if f["ratio_to_floor_w1"] else ""))
    print(f"speed-up 2 workers over 1: {f['speedup_2_over_1']:.2f}")
    l1, l2 = r["runs"]["full_w1"]["load"]["mean"], r["runs"]["full_w2"]["load"]["mean"]
    if l2 - 1.0 > r["machine"]["cpus"] or abs(l2 - l1) > 1.0:
        print(f"  caution: mean load average {l1} (1 worker) vs {l2} (2 workers) on "
              f"{r['machine']['cpus']} CPUs - other jobs shared the cores; the speed-up and "
              "2-worker times are not representative of an idle machine")
    print(f"time per pixel, 1 worker: one tile {f['us_per_px_one_tile_w1']:.2f} us vs full "
          f"{f['us_per_px_full_w1']:.2f} us per tile pixel "
          f"(ratio {f['per_px_ratio_one_over_full']:.2f}); "
          f"per pixel in counties {f['us_per_county_px_one_tile_w1']:.2f} vs "
          f"{f['us_per_county_px_full_w1']:.2f} us")
    print()
    print_table(("target", "value", "verdict"), [(c["target"], c["value"], c["verdict"])
                                                 for c in r["checks"]])
    p = r.get("profile")
    if p:
        print(f"\nprofile of run_tile on tile {p['tile']} (1 thread, cProfile, after warm-up): "
              f"{p['run_tile_s']:.1f} s, {p['n_outputs']} rasters, "
              f"{p['n_partials']} partial tables, "
              f"load avg {p['load']['mean']}")
        rows = [(x["phase"], str(x["calls"]), f"{x['seconds']:.2f}",
                 f"{100 * x['seconds'] / p['run_tile_s']:.0f} %") for x in p["phases"]]
        rest = p["run_tile_s"] - sum(x["seconds"] for x in p["phases"])
        rows.append(("other (masking, sums over months, Python)", "", f"{rest:.2f}",
                     f"{100 * rest / p['run_tile_s']:.0f} %"))
        print_table(("phase", "calls", "s", "share"), rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_child-"):
        return _child_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, choices=(30, 250), default=30)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tanhui_bench",
                    help="demo inputs are cached here (default: %(default)s)")
    ap.add_argument("--skip-floor-1", action="store_true",
                    help="measure the I/O floor with 2 threads only (saves a few minutes)")
    ap.add_argument("--no-profile", action="store_true", help="skip the one-tile cProfile")
    ap.add_argument("--keep", action="store_true", help="keep the run outputs")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    result = benchmark(args.resolution, args.workdir.resolve(), floor_1=not args.skip_floor_1,
                       profile=not args.no_profile, keep=args.keep)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
        print(f"\nJSON written to {args.json}")
    return 0


def _child_main(argv: list[str]) -> int:
    result_file = Path(argv[argv.index("--result") + 1])
    argv = argv[: argv.index("--result")]
    if argv[0] == "_child-run":
        res = child_run(argv[1], int(argv[2]), argv[3:])
    elif argv[0] == "_child-floor":
        res = child_floor(argv[1], int(argv[2]), argv[3], argv[4])
    elif argv[0] == "_child-profile":
        res = child_profile(argv[1], argv[2], argv[3])
    else:
        raise SystemExit(f"unknown child command {argv[0]}")
    result_file.write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
