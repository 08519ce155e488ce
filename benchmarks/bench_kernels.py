"""Kernel benchmark: each Numba kernel against its plain whole-array NumPy reference (issue 3).

Usage::

    python3 benchmarks/bench_kernels.py [--project PROJECT.toml] [--tile ID] [--repeat N]
                                        [--json FILE]

Both run in this one process, one thread each, on the same data: one tile of the demo
project (by default the 30 m Horqin demo that ``bench_batch.py`` caches, a 2048 x 2048 tile
x 12 months; without it, a 250 m demo is generated in a temporary folder and its 512 x 512
tiles are used). The inputs are read exactly as a run reads them (land cover -> canonical
classes, 12 NDVI months by maximum-value composite, gap filling, climate), then:

* ``casa_npp`` with the demo's climate (12 monthly values for every pixel, as in the demo
  run, so the kernel takes its ``uniform_climate`` shortcut) and with *gridded* climate
  (the same values plus a smooth spatial field of +/-2 °C and +/-30 % precipitation, made up
  here for the benchmark) where every pixel computes its own Te2 and water stress;
* ``rh`` (gridded climate), ``nep``, ``gapfill`` (on 64 rows: its reference is a Python loop
  over pixels) and the stock kernel.

Each timing is the best of ``--repeat`` calls after one warm-up call (compilation or cache
load excluded). The NumPy side is the package's reference implementation, the test oracle
of the kernels (``*_reference``). The table also gives the largest difference between the
two outputs, to show that they compute the same thing.

Target (issue 3): the CASA kernel at least 10x faster than whole-array NumPy on one core.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from _common import machine_info, now, print_table, use_repo_src  # noqa: E402

use_repo_src()

import numpy as np  # noqa: E402

TARGET = 10.0
DEFAULT_PROJECT = Path(tempfile.gettempdir()) / "tanhui_bench" / "demo_30m_flux" / "project.toml"


def _best(fn, repeat: int) -> tuple[float, np.ndarray]:
    fn()  # warm-up: Numba compilation / cache load, page faults of the inputs
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("nan")  # nodata patterns differ: reported as nan
    d = np.abs(a - b)
    return float(np.nanmax(d)) if np.isfinite(d).any() else 0.0


def load_tile(project_path: Path, tile: str | None):
    """Classes, codes and flux inputs of one tile, read as ``tile_job.run_tile`` does."""
    from tanhui.context import build_context
    from tanhui.flux_tile import GAPFILL, _climate_strip
    from tanhui.project import load_project
    from tanhui.rasterio_io import read_codes

    ctx = build_context(load_project(project_path))
    if ctx.flux is None:
        raise SystemExit(f"{project_path} has no [flux] section; use a demo project with flux")
    grid = ctx.grid
    tid = next((t for t in ctx.tiles if str(t) == tile), None) if tile else None
    if tid is None:  # the tile with the most land-cover data
        best = -1
        for t in ctx.tiles:
            codes, _ = read_codes(ctx.epochs[-1][1], grid.crs, grid.tile_transform(t),
                                  tuple(grid.tile_shape))
            n = int((codes > 0).sum())
            if n > best:
                tid, best = t, n
    transform, shape = grid.tile_transform(tid), tuple(grid.tile_shape)
    codes, _ = read_codes(ctx.epochs[-1][1], grid.crs, transform, shape)
    lut = ctx.class_lut
    inside = (codes >= 0) & (codes < lut.size)
    groups = np.full(codes.shape, ctx.n_groups, np.int32)
    groups[inside] = lut[codes[inside]]
    classes = np.where(groups >= ctx.n_groups, 0, groups).astype(np.int16)
    fc = ctx.flux
    ndvi_raw = fc.series.read_months(grid.crs, transform, shape)
    ndvi = GAPFILL["numba"](ndvi_raw)
    clim = {k: np.ascontiguousarray(_climate_strip(fc.climate[k], grid.crs, transform, shape),
                                    dtype=np.float32)
            for k in ("temperature", "precipitation", "radiation")}
    codes_lut = np.where(codes < ctx.pool_lut.shape[1], codes, -1)
    return dict(ctx=ctx, tile=str(tid), classes=classes, codes=codes_lut, ndvi_raw=ndvi_raw,
                ndvi=ndvi, **clim)


def gridded(x: dict) -> tuple[np.ndarray, np.ndarray]:
    """The demo's monthly climate plus a smooth made-up spatial field (benchmark only)."""
    ny, nx = x["classes"].shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float32)
    field = np.sin(xx / nx * 3.1) * np.cos(yy / ny * 2.3)  # -1..1, smooth
    t = x["temperature"] + (2.0 * field)[None]
    p = x["precipitation"] * (1.0 + 0.3 * field)[None]
    return t.astype(np.float32), p.astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", type=Path, default=None,
                    help=f"demo project with flux (default {DEFAULT_PROJECT} if it exists, "
                         "else a 250 m demo generated in a temporary folder)")
    ap.add_argument("--tile", default=None, help="tile id (default: the tile with most data)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    project = a.project
    tmp = None
    if project is None and DEFAULT_PROJECT.exists():
        project = DEFAULT_PROJECT
    if project is None:
        from tanhui.demo.project import write_demo_project

        tmp = tempfile.TemporaryDirectory(prefix="tanhui_bench_kernels_")
        print("no cached 30 m demo: generating the 250 m demo (512 x 512 tiles) ...")
        project = write_demo_project(Path(tmp.name), resolution=250, flux=True)

    from tanhui.kernels.casa import casa_npp_numba, casa_npp_reference
    from tanhui.kernels.gapfill import gapfill_numba, gapfill_reference
    from tanhui.kernels.rh import nep_numba, nep_reference, rh_pei_numba, rh_pei_reference
    from tanhui.kernels.stock import stock_numba, stock_reference

    x = load_tile(project, a.tile)
    fc = x["ctx"].flux
    kw = dict(**fc.casa.kernel_kwargs(), water_stress=fc.water_stress)
    rh_kw = dict(days_per_month=fc.rh_days, precip=fc.rh_precip, year=fc.year)
    tg, pg = gridded(x)
    nd, cl, sol = x["ndvi"], x["classes"], x["radiation"]
    t, p = x["temperature"], x["precipitation"]
    uniform = bool(fc.climate["temperature"].monthly is not None
                   and fc.climate["precipitation"].monthly is not None)
    npp_g = casa_npp_numba(nd, tg, pg, sol, cl, **kw)
    rh_g = rh_pei_numba(tg, pg, **rh_kw)
    veg = fc.casa.vegetated
    cases = [
        ("casa_npp, demo climate" + (" (uniform)" if uniform else ""),
         lambda: casa_npp_numba(nd, t, p, sol, cl, **kw, uniform_climate=uniform),
         lambda: casa_npp_reference(nd, t, p, sol, cl, **kw)),
        ("casa_npp, gridded climate",
         lambda: casa_npp_numba(nd, tg, pg, sol, cl, **kw),
         lambda: casa_npp_reference(nd, tg, pg, sol, cl, **kw)),
        ("rh, gridded climate", lambda: rh_pei_numba(tg, pg, **rh_kw),
         lambda: rh_pei_reference(tg, pg, **rh_kw)),
        ("nep", lambda: nep_numba(npp_g, rh_g, cl, veg), lambda: nep_reference(npp_g, rh_g, cl, veg)),
        # the reference loops over pixels in Python (np.interp per pixel): first 64 rows only
        ("gapfill (64 rows)", lambda: gapfill_numba(x["ndvi_raw"][:, :64]),
         lambda: gapfill_reference(x["ndvi_raw"][:, :64])),
        ("stock (5 pools)", lambda: stock_numba(x["codes"], x["ctx"].pool_lut),
         lambda: stock_reference(x["codes"], x["ctx"].pool_lut)),
    ]
    ny, nx = cl.shape
    print(f"kernels vs NumPy reference, one thread each, tile {x['tile']} of {project} "
          f"({ny} x {nx} px x 12 months), best of {a.repeat}, {now()}")
    rows, results = [], []
    for name, fast, ref in cases:
        tf, of = _best(fast, a.repeat)
        tr, orf = _best(ref, a.repeat)
        ratio = tr / tf
        diff = _max_diff(of, orf)
        casa = name.startswith("casa")
        results.append(dict(kernel=name, numba_s=tf, numpy_s=tr, speedup=ratio, max_abs_diff=diff,
                            ns_per_value=tf / of.size * 1e9))
        rows.append((name, f"{tf:.3f}", f"{tr:.3f}", f"{ratio:.1f}x", f"{tf / of.size * 1e9:.1f}",
                     f"{diff:.2e}", ("ok" if ratio >= TARGET else "MISS") if casa else "-"))
        del of, orf
    print_table(("kernel", "numba s", "numpy s", "speed-up", "ns/value", "max |diff|",
                 f">= {TARGET:g}x"), rows)
    try:
        load = os.getloadavg()[0]
        print(f"1-minute load average at the end: {load:.1f} on {os.cpu_count()} CPUs")
    except OSError:
        load = None
    if a.json:
        a.json.write_text(json.dumps(dict(machine=machine_info(), when=now(), project=str(project),
                                          tile=x["tile"], shape=[ny, nx], load=load,
                                          results=results), indent=1))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
