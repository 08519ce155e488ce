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
