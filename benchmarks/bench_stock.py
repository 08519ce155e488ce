"""Benchmark of the stock method on the synthetic Horqin demo (issue 2 acceptance).

Usage::

    python3 benchmarks/bench_stock.py [--resolution 30|250] [--workers 1 2] [--workdir DIR]
                                      [--keep] [--json FILE]

For each worker count it runs, each in its own child process:

1. the stock method (two epochs, regions = the 8 Tongliao counties) through
   ``tanhui.runner.run_project`` on a copy of the demo project without ``[flux]``;
2. the *I/O floor*: for every tile of that run, read the two land-cover epochs exactly as
   tanhui does (``read_codes`` on the grid's tile transform) and write as many rasters as
   the real run wrote for that tile, with the same ``write_cog`` settings (dtype, nodata,
   compression, block size), filled with the land-cover codes (float32 codes, NaN for
   nodata; uint8 codes, 255 for nodata) so the compressor sees data of similar entropy,
   using the same number of worker threads (one tile per thread, as Dask's threaded
   scheduler does).

Peak memory is the child's maximum resident set size (``ru_maxrss`` from ``os.wait4``
for that child alone, KiB on Linux), so it includes the interpreter, NumPy/Numba/GDAL and
Dask. Targets (issue 2): peak memory < 2 GiB and run time / I/O-floor time < 1.5.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from _common import (  # noqa: E402
    READY_MARKER,
    mem_total_gib,
    output_spec,
    pixels_in_polygons,
    use_repo_src,
    verdict,
)
from _common import run_child as _run_child

# Benchmark the repository's own code even if another checkout is installed (editable).
use_repo_src()

PEAK_MEMORY_TARGET_GIB = 2.0
RATIO_TARGET = 1.5


# --- inputs ------------------------------------------------------------------------------------

def ensure_demo_inputs(workdir: Path, resolution: int) -> Path:
    """Write the demo inputs once per resolution (cached); return the stock-only project file."""
    demo_dir = workdir / f"demo_{resolution}m"
    marker = demo_dir / READY_MARKER
    if not marker.exists():
        from tanhui.demo.project import write_demo_project

        t0 = time.perf_counter()
        print(f"writing demo inputs at {resolution} m into {demo_dir} ...", flush=True)
        # flux=False: the NDVI series is not needed for the stock benchmark
        write_demo_project(demo_dir, resolution=resolution, flux=False)
        marker.write_text(f"{time.perf_counter() - t0:.1f} s\n")
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    return write_stock_project(demo_dir / "project.toml")


def strip_flux(toml_text: str) -> str:
    """Drop the ``[flux]`` table and its sub-tables (``[flux.climate]`` ...) from TOML text."""
    out, skipping = [], False
    for line in toml_text.splitlines(keepends=True):
        header = re.match(r"^\s*\[\[?\s*([A-Za-z0-9_.\"-]+)\s*\]\]?", line)
        if header:
            skipping = header.group(1).split(".")[0].strip('"') == "flux"
        if not skipping:
            out.append(line)
    return "".join(out)


def write_stock_project(project_toml: Path) -> Path:
    """A copy of the demo project without ``[flux]``, writing into ``out_stock/``."""
    import tomllib

    text = strip_flux(project_toml.read_text(encoding="utf-8"))
    text = re.sub(r'(?m)^output_dir\s*=.*$', 'output_dir = "out_stock"', text)
    doc = tomllib.loads(text)
    assert "flux" not in doc, "the stock benchmark project still has a [flux] section"
    dst = project_toml.with_name("project_stock.toml")
    dst.write_text(text, encoding="utf-8")
    return dst


# --- child processes ---------------------------------------------------------------------------

def run_child(args: list[str], result_file: Path) -> tuple[dict, float]:
    """Run this script as a child; return its JSON result and its peak RSS in GiB."""
    res, peak, _load = _run_child(__file__, args, result_file)
    return res, peak


def child_run(project: str, workers: int) -> dict:
    """Child: the real run, timed around ``run_project`` (imports excluded)."""
    from tanhui.runner import run_project

    t0 = time.perf_counter()
    summary = run_project(project, workers=workers, overwrite=True)
    wall_s = time.perf_counter() - t0
    return {"wall_s": wall_s, "timings": summary.manifest["timings"],
            "tiles": [str(t) for t in summary.manifest["tiles"]],
            "out_dir": str(summary.out_dir)}


def child_floor(project: str, workers: int, spec_file: str, out_dir: str) -> dict:
    """Child: the I/O floor (read both epochs per tile, write the same rasters)."""
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
        n = 0
        for stem in spec["stems"]:
            c = codes[stem["epoch_index"]]
            if stem["dtype"] == "uint8":
                arr = np.where(c < 0, 255, c).astype(np.uint8)
                kw = {"nodata": 255, "resampling": "nearest"}
            else:
                arr = np.where(c < 0, np.nan, c).astype(stem["dtype"])
                kw = {}
            write_cog(root / stem["stem"] / f"{tid}.tif", arr, transform, grid.crs,
                      band_names=[stem["stem"]], units=stem["units"], long_name=stem["stem"],
                      tags={"tile": str(tid), "grid": grid.name}, compress=stem["compress"],
                      blocksize=blocksize, **kw)
            n += 1
        return n

    tiles = [t for t in ctx.tiles if str(t) in set(spec["tiles"])]
    t1 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        n_written = sum(pool.map(one_tile, tiles))
    floor_s = time.perf_counter() - t1
    return {"floor_s": floor_s, "setup_s": setup_s, "n_written": n_written, "n_tiles": len(tiles)}


def pixels_in_counties(project: Path, grid) -> float:
    """Pixels inside the county polygons: their equal-area (grid CRS) area / pixel area."""
    return pixels_in_polygons(project, grid)


# --- report ------------------------------------------------------------------------------------

def print_table(rows: list[dict]) -> None:
    head = ("res_m", "Mpx tiles", "Mpx counties", "workers", "wall s", "peak GiB",
            "Mpx/s", "I/O floor s", "ratio", "mem<2GiB", "ratio<1.5")
    lines = [head]
    for r in rows:
        lines.append((f"{r['resolution_m']}", f"{r['pixels_tiles'] / 1e6:.1f}",
                      f"{r['pixels_counties'] / 1e6:.1f}", f"{r['workers']}",
                      f"{r['run_wall_s']:.1f}", f"{r['run_peak_gib']:.2f}", f"{r['mpixels_per_s']:.2f}",
                      f"{r['io_floor_s']:.1f}", f"{r['ratio_run_to_floor']:.2f}",
                      r["memory_verdict"], r["ratio_verdict"]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for k, line in enumerate(lines):
        print("  ".join(c.rjust(w) for c, w in zip(line, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def benchmark(resolution: int, workers_list: list[int], workdir: Path, keep: bool) -> dict:
    from tanhui.demo.project import DEMO_GRIDS, DEMO_YEARS
    from tanhui.grid import TileGrid

    workdir.mkdir(parents=True, exist_ok=True)
    project = ensure_demo_inputs(workdir, resolution)
    grid = TileGrid.load(DEMO_GRIDS[resolution])
    px_counties = pixels_in_counties(project, grid)
    rows = []
    for workers in workers_list:
        print(f"\n[{resolution} m, {workers} worker(s)] real run ...", flush=True)
        run, run_peak = run_child(["_child-run", str(project), str(workers)], workdir / "run_result.json")
        out_dir = Path(run["out_dir"])
        spec = output_spec(out_dir, run["tiles"], list(DEMO_YEARS))
        spec_file = workdir / "floor_spec.json"
        spec_file.write_text(json.dumps(spec, indent=1))
        floor_dir = workdir / f"io_floor_{resolution}m"
        shutil.rmtree(floor_dir, ignore_errors=True)
        print(f"[{resolution} m, {workers} worker(s)] I/O floor "
              f"({len(run['tiles'])} tiles x {spec['outputs_per_tile']} rasters) ...", flush=True)
        floor, floor_peak = run_child(["_child-floor", str(project), str(workers), str(spec_file),
                                       str(floor_dir)], workdir / "floor_result.json")
        if not keep:
            shutil.rmtree(floor_dir, ignore_errors=True)
        px_tiles = len(run["tiles"]) * grid.tile_shape[0] * grid.tile_shape[1]
        ratio = run["wall_s"] / floor["floor_s"]
        rows.append({
            "resolution_m": resolution, "tiles": len(run["tiles"]),
            "tile_shape": list(grid.tile_shape), "pixels_tiles": px_tiles,
            "pixels_counties": round(px_counties), "workers": workers,
            "run_wall_s": run["wall_s"], "run_timings": run["timings"], "run_peak_gib": run_peak,
            "mpixels_per_s": px_tiles / 1e6 / run["wall_s"],
            "io_floor_s": floor["floor_s"], "io_floor_setup_s": floor["setup_s"],
            "io_floor_peak_gib": floor_peak, "outputs_per_tile": spec["outputs_per_tile"],
            "outputs": [{k: s[k] for k in ("stem", "dtype", "compress", "block")} for s in spec["stems"]],
            "ratio_run_to_floor": ratio,
            "memory_verdict": verdict(run_peak < PEAK_MEMORY_TARGET_GIB),
            "ratio_verdict": verdict(ratio < RATIO_TARGET),
        })
    if not keep:
        shutil.rmtree(project.parent / "out_stock", ignore_errors=True)
    import numba
    import rasterio

    import tanhui

    return {
        "tanhui": {"version": tanhui.__version__, "path": str(Path(tanhui.__file__).parent)},
        "benchmark": "stock method, synthetic Horqin demo, 2 epochs, regions = 8 counties",
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "gdal": rasterio.__gdal_version__,
                    "numba": numba.__version__,
                    "mem_total_gib": mem_total_gib()},
        "definitions": {
            "run_wall_s": "run_project() call inside the child (validation, tiles, tables, manifest)",
            "run_peak_gib": "max RSS of the run's child process (ru_maxrss via wait4)",
            "mpixels_per_s": "pixels of the run's tiles (one layer) / run_wall_s",
            "io_floor_s": "read 2 epochs + write the run's rasters per tile, same write_cog "
                          "settings, values = land-cover codes (float32 NaN nodata / uint8 255)",
            "ratio_run_to_floor": "run_wall_s / io_floor_s",
        },
        "targets": {"peak_memory_gib_lt": PEAK_MEMORY_TARGET_GIB, "ratio_lt": RATIO_TARGET},
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0].startswith("_child-"):
        return _child_main(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=int, choices=(30, 250), default=30)
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tanhui_bench",
                    help="demo inputs are cached here (default: %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the run and I/O-floor outputs")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)
    result = benchmark(args.resolution, args.workers, args.workdir.resolve(), args.keep)
    print(f"\n{result['benchmark']} — {result['date']}, {result['machine']['cpus']} CPUs, "
          f"{result['machine']['mem_total_gib']} GiB RAM")
    print_table(result["rows"])
    for r in result["rows"]:
        print(f"  workers={r['workers']}: {r['tiles']} tiles of {r['tile_shape'][0]}x{r['tile_shape'][1]}, "
              f"{r['outputs_per_tile']} rasters/tile; run compute {r['run_timings']['compute_s']:.1f} s "
              f"of {r['run_wall_s']:.1f} s; I/O floor peak {r['io_floor_peak_gib']:.2f} GiB")
    print(f"targets: peak memory < {PEAK_MEMORY_TARGET_GIB} GiB; run / I/O floor < {RATIO_TARGET}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"JSON written to {args.json}")
    return 0


def _child_main(argv: list[str]) -> int:
    result_file = Path(argv[argv.index("--result") + 1])
    argv = argv[: argv.index("--result")]
    if argv[0] == "_child-run":
        res = child_run(argv[1], int(argv[2]))
    elif argv[0] == "_child-floor":
        res = child_floor(argv[1], int(argv[2]), argv[3], argv[4])
    else:
        raise SystemExit(f"unknown child command {argv[0]}")
    result_file.write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
