"""Crash safety and per-tile invalidation (issue 5 §3).

- ``tanhui run`` killed with SIGKILL part-way, then ``tanhui run --resume``: the outputs equal
  an uninterrupted run (every raster value, every table byte), no temporary file remains, and
  the killed run's lock does not block the resume.
- A changed input invalidates exactly the tiles whose data changed: a window of a land-cover
  raster (exact tile set computed here from the pixels), a pixel of a warped climate raster,
  a polygon edge (tile set from the geometric difference of the polygons). After each change
  the resumed outputs equal a fresh run on the changed inputs.
- A failing tile makes the run exit with 1 and name the tile; the finished tiles are reused.
- The output-folder lock: live holders refuse, dead/zombie/reused pids are stale.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.windows import Window

from tanhui.cli.main import cli
from tanhui.errors import OutputError
from tests.test_cli_errors import ALBERS, RES, X0, Y0, make_project
from tests.test_distributed import (
    TANHUI_SRC,
    assert_same_outputs,
    make_batch_project,
    records,
    table_bytes,
)


def _env() -> dict:
    env = dict(os.environ)
    # the subprocess imports the same tanhui as this test
    extra = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([TANHUI_SRC, *extra])
    return env


def _tanhui(*args: str) -> list[str]:
    return [sys.executable, "-m", "tanhui.cli.main", *args]


def _small_project(d: Path) -> Path:
    d.mkdir(parents=True)
    return make_project(d)


def _copy_inputs(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("out"))
    return dst / "project.toml"


def _fresh_run(src: Path, dst: Path) -> Path:
    """Run a copy of the inputs in ``src`` from scratch (in process); return its output folder."""
    from tanhui.runner import run_project

    run_project(_copy_inputs(src, dst), workers=2)
    return dst / "out"


def _resume_json(project: Path, *, subprocess_: bool = False) -> dict:
    """``tanhui run --resume --json`` in a new process, or in this one (no Numba start-up)."""
    args = ["run", "--resume", "--json", "--workers", "2", str(project)]
    if subprocess_:
        r = subprocess.run(_tanhui(*args), env=_env(), capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _tiles_of_pixels(rows: np.ndarray, cols: np.ndarray, tile: int) -> set[str]:
    return {f"T{r // tile:03d}_{c // tile:03d}" for r, c in zip(rows.tolist(), cols.tolist())}


@pytest.mark.slow
def test_killed_run_resumes_and_changed_inputs_invalidate_their_tiles(tmp_path):
    src = tmp_path / "inputs"
    make_batch_project(src, n=96, tile=32, workers=2)
    all_tiles = {f"T{r:03d}_{c:03d}" for r in range(3) for c in range(3)}
    crash = tmp_path / "crash"
    p = _copy_inputs(src, crash)
    out = crash / "out"

    # 1. start a run and kill -9 it once some, but not all, tiles have their record
    proc = subprocess.Popen(_tanhui("-q", "run", "--workers", "2", str(p)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None and not records(out):
        time.sleep(0.005)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    finished = records(out)
    assert 1 <= len(finished) < len(all_tiles)
    assert not (out / "run.json").exists()
    lock = out / ".tanhui.lock"
    assert int(lock.read_text().split()[0]) == proc.pid  # the dead run's lock is still there

    # the uninterrupted reference (own folder, same inputs)
    ref_out = _fresh_run(src, tmp_path / "ref")

    # 2. resume: the stale lock is replaced, finished tiles reused, the others computed
    res = _resume_json(p, subprocess_=True)
    assert sorted(res["tiles_reused"]) == finished
    assert sorted(res["tiles_computed"]) == sorted(all_tiles - set(finished))
    assert_same_outputs(ref_out, out)
    assert not [f for f in out.rglob("*") if ".tmp" in f.name]
    assert not lock.exists()

    # 3. rewrite a window of the 2023 land cover in place: only tiles with changed pixels rerun
    with rasterio.open(crash / "lc2023.tif", "r+") as dst:
        win = Window(col_off=40, row_off=70, width=30, height=20)  # rows 70-89, cols 40-69
        old = dst.read(1, window=win)
        new = np.where(old == 61, 31, 61).astype(old.dtype)
        new[:, -3:] = old[:, -3:]  # columns 67-69 keep their values
        dst.write(new, 1, window=win)
    rr, cc = np.nonzero(new != old)
    expected = _tiles_of_pixels(rr + 70, cc + 40, 32)
    assert expected == {"T002_001", "T002_002"}
    res = _resume_json(p)
    assert sorted(res["tiles_computed"]) == sorted(expected)
    assert sorted(res["tiles_reused"]) == sorted(all_tiles - expected)
    assert_same_outputs(_fresh_run(crash, tmp_path / "fresh_lc"), out)
    with rasterio.open(ref_out / "tiles" / "landcover_class_2023" / "T002_001.tif") as a, \
            rasterio.open(out / "tiles" / "landcover_class_2023" / "T002_001.tif") as b:
        assert (a.read(1) != b.read(1)).any()  # the tile was really redone with the new codes
    assert table_bytes(ref_out) != table_bytes(out)

    # 4. one pixel of the temperature raster (EPSG:4326, warped onto the grid): the tiles
    #    under it are redone, the others reused, and the result equals a fresh run
    from rasterio.warp import transform as warp_transform

    with rasterio.open(crash / "t_2023.tif", "r+") as dst:
        # the 0.01 degree pixel under grid pixel (row 10, col 10), i.e. in tile T000_000
        xs, ys = warp_transform(ALBERS, dst.crs, [X0 + 10.5 * RES], [Y0 - 10.5 * RES])
        row, col = dst.index(xs[0], ys[0])
        t = dst.read(window=Window(col, row, 1, 1))
        dst.write(t + 1.5, window=Window(col, row, 1, 1))
    res = _resume_json(p)
    assert "T000_000" in res["tiles_computed"]
    assert {"T001_002", "T002_001", "T002_002"} <= set(res["tiles_reused"])  # 8 km and more away
    assert_same_outputs(_fresh_run(crash, tmp_path / "fresh_t"), out)


def test_changed_polygon_invalidates_the_tiles_it_crosses(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    p = _small_project(tmp_path / "a")
    runner = CliRunner()
    r = runner.invoke(cli, ["run", "--json", str(p)])
    assert r.exit_code == 0, r.output
    first = json.loads(r.stdout)
    tiles = set(first["tiles_computed"])
    # region R1 (columns 20-39, rows 0-19): move its southern edge up by 2 pixels
    gdf = gpd.read_file(tmp_path / "a" / "regions.gpkg")
    old = gdf.geometry[1]
    xmin, ymin, xmax, ymax = old.bounds
    gdf.loc[1, "geometry"] = box(xmin, ymin + 2 * RES, xmax, ymax)
    gdf.to_file(tmp_path / "a" / "regions.gpkg", driver="GPKG")
    changed = old.symmetric_difference(gdf.geometry[1])
    expected = set()
    for t in tiles:  # tiles of 16 px whose interior meets the changed area
        r_, c_ = int(t[1:4]), int(t[5:8])
        size = 16 * RES
        tb = box(X0 + c_ * size, Y0 - (r_ + 1) * size, X0 + (c_ + 1) * size, Y0 - r_ * size)
        if tb.intersection(changed).area > 0:
            expected.add(t)
    assert expected == {"T001_001", "T001_002"}
    r = runner.invoke(cli, ["run", "--resume", "--json", str(p)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["tiles_computed"]) == expected
    assert set(res["tiles_reused"]) == tiles - expected
    # equal to a fresh run on the changed layer
    fresh = tmp_path / "b"
    shutil.copytree(tmp_path / "a", fresh, ignore=shutil.ignore_patterns("out"))
    assert runner.invoke(cli, ["-q", "run", str(fresh / "project.toml")]).exit_code == 0
    assert table_bytes(fresh / "out") == table_bytes(tmp_path / "a" / "out")


def test_failed_tile_exits_1_and_finished_tiles_are_reused(tmp_path, monkeypatch):
    import tanhui.tile_job as tj

    p = _small_project(tmp_path / "a")
    real = tj.run_tile

    def flaky(ctx, tid, out_dir):
        if str(tid) == "T001_001":
            raise RuntimeError("disk on fire")
        return real(ctx, tid, out_dir)

    monkeypatch.setattr(tj, "run_tile", flaky)
    runner = CliRunner()
    r = runner.invoke(cli, ["run", "--json", str(p)])
    assert r.exit_code == 1, r.output
    assert "T001_001" in r.output and "disk on fire" in r.output and "--resume" in r.output
    out = tmp_path / "a" / "out"
    assert not (out / "run.json").exists()
    done = records(out)
    assert "T001_001" not in done and len(done) >= 3
    assert not (out / ".tanhui.lock").exists()

    monkeypatch.setattr(tj, "run_tile", real)
    r = runner.invoke(cli, ["run", "--resume", "--json", str(p)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["tiles_computed"] == ["T001_001"]
    assert res["tiles_reused"] == done
    fresh = tmp_path / "b"
    shutil.copytree(tmp_path / "a", fresh, ignore=shutil.ignore_patterns("out"))
    assert runner.invoke(cli, ["-q", "run", str(fresh / "project.toml")]).exit_code == 0
    assert table_bytes(fresh / "out") == table_bytes(out)


def test_output_folder_lock(tmp_path):
    from tanhui.runner import OutputLock, _proc_start

    lock = tmp_path / ".tanhui.lock"
    host = socket.gethostname()

    def acquire():
        with OutputLock(tmp_path):
            assert lock.read_text().split()[0] == str(os.getpid())
        assert not lock.exists()

    # a live holder refuses, naming its pid
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = _proc_start(sleeper.pid)
        lock.write_text(f"{sleeper.pid} {host} {start or 0}\n")
        with pytest.raises(OutputError, match=f"pid {sleeper.pid}"):
            OutputLock(tmp_path).__enter__()
        if start is not None:  # Linux: same pid, other start time = a reused pid = stale
            lock.write_text(f"{sleeper.pid} {host} {start + 12345}\n")
            acquire()
        # a zombie (killed, not yet reaped) holds no lock
        sleeper.kill()
        time.sleep(0.2)
        lock.write_text(f"{sleeper.pid} {host} {start or 0}\n")
        acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    # a dead process, old one-field format
    lock.write_text(f"{sleeper.pid}\n")
    acquire()
    # another host cannot be checked: refused, and the message says how to clear it
    lock.write_text("4242 some-other-host 0\n")
    with pytest.raises(OutputError, match="some-other-host") as err:
        OutputLock(tmp_path).__enter__()
    assert str(lock) in str(err.value)
