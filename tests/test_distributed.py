"""Batch jobs on a ``distributed`` cluster (issue 5 §2): the same outputs as the local
threaded scheduler, also when a worker process is killed in the middle of the run.

The reference is a run on Dask's local threaded scheduler; every tile raster is read back
with rasterio and compared value by value (NaN where NaN), every table CSV byte by byte.
The helpers here (a small synthetic project with land cover, NDVI, a warped climate raster,
regions and a zone layer; output comparison) are shared with ``test_crash_resume.py``.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

import tanhui
from tests.test_cli_errors import ALBERS, RES, X0, Y0, write_lc

TANHUI_SRC = str(Path(tanhui.__file__).resolve().parents[1])
CNLUCC = np.array([12, 21, 22, 31, 32, 41, 51, 61], np.uint8)
T_C = [-15.1, -9.9, -1.3, 8.8, 16.7, 22.1, 24.6, 22.7, 16.5, 7.4, -4.1, -13.0]
P_MM = [2.0, 3.0, 8.0, 18.0, 35.0, 70.0, 120.0, 85.0, 40.0, 15.0, 5.0, 3.0]
N_TILES = 9  # the test project: 96 x 96 px in tiles of 32 px
SOL_MJ = [233.2, 294.0, 460.0, 580.8, 701.6, 719.9, 720.6, 634.6, 488.2, 362.4, 243.9, 205.3]


# --- a small synthetic project -------------------------------------------------------------

def _blocky_codes(rng, n: int, block: int = 8) -> np.ndarray:
    coarse = rng.choice(CNLUCC, size=(-(-n // block), -(-n // block)))
    codes = np.kron(coarse, np.ones((block, block), np.uint8))[:n, :n]
    noise = rng.random((n, n)) < 0.1
    codes[noise] = rng.choice(CNLUCC, size=int(noise.sum()))
    return codes


def _polygon_layer(path: Path, feats: list[tuple[str, str, list]], id_field="code",
                   name_field="name"):
    import geopandas as gpd
    from shapely.geometry import Polygon

    gdf = gpd.GeoDataFrame({id_field: [f[0] for f in feats], name_field: [f[1] for f in feats]},
                           geometry=[Polygon(f[2]) for f in feats], crs=ALBERS)
    gdf.to_file(path, driver="GPKG")


def make_batch_project(d: Path, *, n: int = 96, tile: int = 32, flux: bool = True,
                       seed: int = 7, workers: int = 1) -> Path:
    """An ``n`` x ``n`` 250 m project in tiles of ``tile`` px: land cover 2015/2023, three
    regions (partly covering pixels), a red-line zone, and optionally monthly NDVI on the
    grid plus a 12-band temperature raster in EPSG:4326 (warped onto the grid)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    c15 = _blocky_codes(rng, n)
    c23 = c15.copy()
    flip = rng.random((n, n)) < 0.15
    c23[flip] = rng.choice(CNLUCC, size=int(flip.sum()))
    c15[:3, :5] = 0  # some nodata
    write_lc(d / "lc2015.tif", c15)
    write_lc(d / "lc2023.tif", c23)
    w = n * RES
    xm, ym = X0 + 0.43 * w, Y0 - 0.61 * w  # region borders off the pixel edges
    west, east = X0 - RES, X0 + w + RES  # the regions reach just past the raster
    top, bottom = Y0 + RES, Y0 - w - RES
    _polygon_layer(d / "regions.gpkg", [
        ("R1", "west", [(west, top), (xm, top), (xm + 0.1 * w, bottom), (west, bottom)]),
        ("R2", "north-east", [(xm, top), (east, top), (east, ym), (xm + 0.05 * w, ym)]),
        ("R3", "south-east",
         [(xm + 0.05 * w, ym), (east, ym), (east, bottom), (xm + 0.1 * w, bottom)]),
    ])
    cx, cy, r = X0 + 0.55 * w, Y0 - 0.45 * w, 0.3 * w
    ring = [(cx + r * np.cos(a), cy + r * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 41)[:-1]]
    _polygon_layer(d / "redline.gpkg", [("Z1", "red line", ring)], id_field="zone_id")
    text = f"""
[project]
name = "batch test (synthetic)"
output_dir = "out"
grid = "landcover"
tile_shape = [{tile}, {tile}]
synthetic = true
[landcover]
legend = "cnlucc"
[[landcover.epochs]]
year = 2015
path = "lc2015.tif"
[[landcover.epochs]]
year = 2023
path = "lc2023.tif"
[stock]
density_table = "carbon_density_horqin"
[regions]
path = "regions.gpkg"
id_field = "code"
name_field = "name"
[[zones]]
kind = "ecological_protection_red_line"
path = "redline.gpkg"
id_field = "zone_id"
name_field = "name"
"""
    if flux:
        _write_ndvi(d / "ndvi", c23, rng)
        _write_temperature(d / "t_2023.tif", n)
        text += f"""
[flux]
year = 2023
ndvi = "ndvi/ndvi_2023_*.tif"
ndvi_reducer = "max"
[flux.climate]
temperature_C = "t_2023.tif"
precipitation_mm = {P_MM}
radiation_MJ_m2 = {SOL_MJ}
"""
    text += f'[run]\nengine = "numba"\nworkers = {workers}\n'
    (d / "project.toml").write_text(text, encoding="utf-8")
    return d / "project.toml"


def _write_ndvi(folder: Path, codes: np.ndarray, rng) -> None:
    folder.mkdir(exist_ok=True)
    peak = {12: 0.6, 21: 0.8, 22: 0.6, 31: 0.55, 32: 0.4, 41: -0.1, 51: 0.1, 61: 0.15}
    base = np.zeros(codes.shape, np.float32)
    for c, v in peak.items():
        base[codes == c] = v
    season = np.sin(np.linspace(0, np.pi, 12)) ** 2
    n = codes.shape[0]
    for m in range(12):
        v = 0.05 + base * season[m] + rng.normal(0, 0.02, codes.shape)
        v = np.clip(v, -0.2, 0.95).astype(np.float32)
        if m in (0, 6):  # clouds: gaps to fill in time
            v[n // 4: n // 4 + 9, n // 2: n // 2 + 13] = np.nan
        with rasterio.open(folder / f"ndvi_2023_{m + 1:02d}.tif", "w", driver="GTiff", width=n,
                           height=n, count=1, dtype="float32", crs=ALBERS, nodata=np.nan,
                           transform=from_origin(X0, Y0, RES, RES)) as dst:
            dst.write(v, 1)


def _write_temperature(path: Path, n: int) -> None:
    from rasterio.warp import transform_bounds

    left, bottom, right, top = transform_bounds(ALBERS, "EPSG:4326", X0, Y0 - n * RES,
                                                X0 + n * RES, Y0)
    res = 0.01  # about 1 km: coarser than the grid, finer than a tile
    x0, y0 = np.floor(left / res) * res - res, np.ceil(top / res) * res + res
    w, h = int(np.ceil((right - x0) / res)) + 2, int(np.ceil((y0 - bottom) / res)) + 2
    yy, xx = np.mgrid[0:h, 0:w]
    gradient = (0.3 * xx - 0.2 * yy).astype(np.float32)
    data = np.asarray(T_C, np.float32)[:, None, None] + gradient[None]
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=12, dtype="float32",
                       crs="EPSG:4326", transform=from_origin(x0, y0, res, res),
                       nodata=-9999) as dst:
        dst.write(data)


# --- comparing outputs ---------------------------------------------------------------------

def raster_values(out: Path) -> dict[str, tuple]:
    """Every tile raster of a run: (profile essentials, all bands) read with rasterio."""
    res = {}
    for f in sorted((out / "tiles").glob("*/*.tif")):
        with rasterio.open(f) as src:
            res[str(f.relative_to(out))] = (
                (src.crs.to_wkt(), tuple(src.transform), src.dtypes, repr(src.nodata), src.count),
                src.read(),
            )
    return res


def table_bytes(out: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted((out / "tables").glob("*.csv"))}


def assert_same_outputs(a: Path, b: Path) -> None:
    """Identical tables (bytes) and identical tile rasters (values, NaN pattern, georeference)."""
    ta, tb = table_bytes(a), table_bytes(b)
    assert ta and sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name] == tb[name], f"table {name} differs"
    ra, rb = raster_values(a), raster_values(b)
    assert ra and sorted(ra) == sorted(rb)
    for name, (prof, arr) in ra.items():
        prof_b, arr_b = rb[name]
        assert prof == prof_b, name
        np.testing.assert_array_equal(arr, arr_b, err_msg=name)  # NaN equals NaN here


def records(out: Path) -> list[str]:
    return sorted(p.stem for p in (out / "tiles" / "_records").glob("T*.json"))


# --- the tests -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The project and its run on the local threaded scheduler."""
    from tanhui.runner import run_project

    d = tmp_path_factory.mktemp("threaded")
    p = make_batch_project(d, n=96, tile=32)
    summary = run_project(p, workers=2)
    assert len(summary.tiles_done) == N_TILES
    return p, d / "out"


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([TANHUI_SRC] + ([old] if old else []))
    try:
        with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                      dashboard_address=None, silence_logs=40) as c:
            yield c
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _copy_inputs(src_project: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src_project.parent, dst, ignore=shutil.ignore_patterns("out"))
    return dst / "project.toml"


@pytest.mark.slow
def test_local_cluster_equals_threaded_run(reference, cluster, tmp_path):
    from distributed import Client

    from tanhui.runner import run_project

    p_ref, out_ref = reference
    p = _copy_inputs(p_ref, tmp_path / "dist")
    with Client(cluster.scheduler_address) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    summary = run_project(p, scheduler=cluster.scheduler_address)
    assert len(summary.tiles_done) == N_TILES and summary.tiles_reused == []
    out = tmp_path / "dist" / "out"
    assert_same_outputs(out_ref, out)
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["execution"]["scheduler"] == cluster.scheduler_address
    log = (out / "tanhui.log").read_text(encoding="utf-8")
    assert log.count(": computed") == N_TILES


@pytest.mark.slow
def test_worker_killed_mid_run_is_retried(reference, cluster, tmp_path):
    from distributed import Client

    from tanhui.runner import run_project

    p_ref, out_ref = reference
    p = _copy_inputs(p_ref, tmp_path / "kill")
    out = tmp_path / "kill" / "out"
    with Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=60)
        pids = sorted(client.run(os.getpid).values())
    victim = pids[0]
    seen: dict[str, object] = {}

    def killer():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not records(out):
            time.sleep(0.005)
        seen["records_at_kill"] = records(out)
        os.kill(victim, signal.SIGKILL)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    summary = run_project(p, scheduler=cluster.scheduler_address)
    th.join(timeout=10)
    assert "records_at_kill" in seen
    # the worker died while the run was under way (not before its first, nor after its last tile)
    assert 1 <= len(seen["records_at_kill"]) < N_TILES
    assert sorted(summary.tiles_done) == records(out) and len(summary.tiles_done) == N_TILES
    assert_same_outputs(out_ref, out)
    assert not [f for f in out.rglob("*") if ".tmp" in f.name]
    # the scheduler saw the worker die with tile tasks on it, and ran them elsewhere
    events = [e for _, e in cluster.scheduler.get_events()["all"]
              if isinstance(e, dict) and e.get("action") == "remove-worker"
              and not e.get("expected")]
    lost = {k for e in events for k in e.get("processing-tasks", ())
            if str(k).startswith("tanhui-tile-")}
    assert lost, events
    with Client(cluster.scheduler_address) as client:  # the nanny replaced the killed worker
        client.wait_for_workers(2, timeout=60)
        assert victim not in client.run(os.getpid).values()
