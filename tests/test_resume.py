"""Resume after an interrupted run: finished tiles are reused, missing ones recomputed,
and the tables equal those of an uninterrupted run exactly."""
from __future__ import annotations

import json
import shutil

from click.testing import CliRunner

from tanhui.cli.main import cli
from tests.test_cli_errors import make_project


def test_resume_recomputes_only_unfinished_tiles(tmp_path):
    p = make_project(tmp_path)
    r = CliRunner().invoke(cli, ["run", "--json", str(p)])
    assert r.exit_code == 0, r.output
    full = json.loads(r.stdout)
    out = tmp_path / "out"
    tables = {f.name: f.read_bytes() for f in (out / "tables").glob("*.csv")}
    tiles = full["tiles_computed"]
    assert len(tiles) >= 4
    # simulate a crash: two tiles lost their record and rasters, the run never finished
    lost = tiles[1:3]
    for t in lost:
        (out / "tiles" / "_records" / f"{t}.json").unlink()
        for f in (out / "tiles").glob(f"*/{t}.tif"):
            f.unlink()
    (out / "run.json").unlink()
    shutil.rmtree(out / "tables")
    r = CliRunner().invoke(cli, ["run", "--resume", "--json", str(p)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert sorted(res["tiles_computed"]) == sorted(lost)
    assert sorted(res["tiles_reused"]) == sorted(set(tiles) - set(lost))
    assert {f.name: f.read_bytes() for f in (out / "tables").glob("*.csv")} == tables
    assert not list(out.rglob("*.tmp"))


def test_changed_parameter_invalidates_records(tmp_path):
    p = make_project(tmp_path)
    assert CliRunner().invoke(cli, ["-q", "run", str(p)]).exit_code == 0
    p.write_text(p.read_text(encoding="utf-8") + '\n[run]\nengine = "numpy"\n', encoding="utf-8")
    r = CliRunner().invoke(cli, ["run", "--resume", "--json", str(p)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["tiles_reused"] == [] and res["tiles_computed"]


# --- input checksums in a background thread ------------------------------------------------


def test_input_checksums_run_in_a_thread_and_match_run_json(tmp_path, monkeypatch):
    """run.json lists the same checksums as a serial input_checksums(); they are computed
    in a thread while the tiles run, and the thread is gone after the run."""
    import threading

    from tanhui import runner
    from tanhui.context import build_context
    from tanhui.project import load_project

    p = make_project(tmp_path)
    real, seen = runner.input_checksums, []

    def recording(ctx, stop=None):
        seen.append(threading.current_thread().name)
        return real(ctx, stop)

    monkeypatch.setattr(runner, "input_checksums", recording)
    r = CliRunner().invoke(cli, ["-q", "run", str(p)])
    assert r.exit_code == 0, r.output
    assert seen == ["tanhui-input-checksums"]
    assert not [t for t in threading.enumerate() if t.name == "tanhui-input-checksums"]
    manifest = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    expected = real(build_context(load_project(p)))
    assert expected and all("sha256" in v for v in expected.values())
    assert manifest["inputs"] == json.loads(json.dumps(expected))


def test_input_vanished_during_the_run_is_a_clear_error(tmp_path, monkeypatch):
    """An input deleted while the tiles run: one line naming it, exit 2, no run.json; the
    tiles are kept and --resume reuses them once the file is back."""
    from tanhui import runner

    p = make_project(tmp_path)
    regions = tmp_path / "regions.gpkg"
    backup = regions.read_bytes()
    real = runner.input_checksums

    def delete_then_hash(ctx, stop=None):
        regions.unlink()  # the tiles use the polygons already in memory
        return real(ctx, stop)

    monkeypatch.setattr(runner, "input_checksums", delete_then_hash)
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("tanhui: error:"), r.stderr
    assert str(regions) in lines[0] and "deleted" in lines[0] and "--resume" in lines[0]
    out = tmp_path / "out"
    assert not (out / "run.json").exists()
    n_records = len(list((out / "tiles" / "_records").glob("*.json")))
    assert n_records >= 4
    monkeypatch.undo()
    regions.write_bytes(backup)
    r = CliRunner().invoke(cli, ["run", "--resume", "--json", str(p)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert len(res["tiles_reused"]) == n_records and not res["tiles_computed"]


def test_checksum_thread_is_stopped_and_joined_when_tiles_fail(tmp_path, monkeypatch):
    import threading
    import time

    from tanhui import runner
    from tanhui.errors import RunFailedError

    p = make_project(tmp_path)
    stopped = []

    def slow(ctx, stop=None):
        while not stop.wait(0.05):  # "hashing" until told to stop
            pass
        stopped.append(True)
        raise runner._ChecksumsStopped

    def failing_tile(ctx, tile, out_dir, run_fp, resume, reraise=False):
        return runner.TileOutcome(tile, error="boom")

    monkeypatch.setattr(runner, "input_checksums", slow)
    monkeypatch.setattr(runner, "_tile_task", failing_tile)
    t0 = time.perf_counter()
    try:
        runner.run_project(p)
    except RunFailedError as err:
        assert "boom" in str(err)
    else:
        raise AssertionError("the run should fail")
    assert stopped == [True]
    assert not [t for t in threading.enumerate() if t.name == "tanhui-input-checksums"]
    assert time.perf_counter() - t0 < 60


# --- disk full ---------------------------------------------------------------------------------


def test_disk_quota_in_a_tile_is_reported_as_disk_full(tmp_path, monkeypatch):
    """EDQUOT (quota exceeded) like ENOSPC: one line naming the raster (not its temporary
    name), exit 1."""
    import errno
    import os

    import pytest

    import tanhui.tile_job as tj

    if not hasattr(errno, "EDQUOT"):
        pytest.skip("no EDQUOT on this platform")
    p = make_project(tmp_path)

    def quota(path, *a, **kw):
        tmp = path.with_name(f".{path.name}.0123456789ab.tmp")
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp))

    monkeypatch.setattr(tj, "write_cog", quota)
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "disk full while writing" in lines[0] and "rerun with --resume" in lines[0]
    assert str(tmp_path / "out" / "tiles") in lines[0] and ".tmp" not in lines[0], lines[0]


def test_prepare_output_dir_says_disk_full(tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    import pytest

    from tanhui.errors import OutputError
    from tanhui.runner import prepare_output_dir

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError, match="disk full") as err:
        prepare_output_dir(tmp_path / "out", overwrite=False, resume=False)
    assert str(tmp_path / "out") in str(err.value)


def test_run_log_close_on_a_full_disk_does_not_raise(tmp_path, monkeypatch):
    import errno
    import logging

    from tanhui.runner import _run_log

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    with _run_log(tmp_path) as rl:
        monkeypatch.setattr(rl.handler, "close", full.__get__(rl.handler))
    assert rl.handler not in logging.getLogger("tanhui").handlers


def test_disk_full_writing_run_json_keeps_the_tiles(tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    from tanhui import runner

    p = make_project(tmp_path)
    out = tmp_path / "out"

    real = runner.write_json

    def full(doc, path, *a, **kw):
        if Path(path).name != "run.json":  # the tile records are written
            return real(doc, path, *a, **kw)
        tmp = path.with_name(f".{path.name}.0123456789ab.tmp")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(runner, "write_json", full)
    r = CliRunner().invoke(cli, ["run", str(p)])
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert f"disk full while writing {out / 'run.json'};" in lines[0], lines[0]
    monkeypatch.undo()
    r = CliRunner().invoke(cli, ["run", "--resume", "--json", str(p)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tiles_computed"] == []
