"""Run a project: validate, schedule tile jobs on Dask, add up partial sums, write tables.

Scheduling is Dask's: the local threaded scheduler by default (Numba kernels and GDAL
release the GIL), or a ``distributed`` cluster given by address. Each tile job writes its
rasters and then a small record (``tiles/_records/<tile>.json``) holding the fingerprint of
its inputs and parameters and its partial sums; ``resume=True`` reuses records whose
fingerprint still matches and recomputes the rest.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import __version__
from .context import RunContext, build_context
from .errors import OutputError, RunFailedError, TanhuiError
from .grid import TileId
from .outputs import sha256_file, write_json
from .project import Project, load_project

log = logging.getLogger("tanhui")

RECORDS = Path("tiles") / "_records"


@dataclass
class RunSummary:
    out_dir: Path
    tables: dict[str, pd.DataFrame]
    files: dict[str, list[str]]
    manifest: dict
    tiles_done: list[str] = field(default_factory=list)
    tiles_reused: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- output folder: lock, overwrite, records -----------------------------------------------

class OutputLock:
    """A lock file that refuses a second run on the same output folder."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".tanhui.lock"

    def __enter__(self):
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pid = _read_pid(self.path)
            if pid is not None and _pid_alive(pid):
                raise OutputError(
                    f"output folder {self.path.parent} is locked by a running tanhui process "
                    f"(pid {pid}). Wait for it to finish, or use another output folder."
                ) from None
            self.path.unlink(missing_ok=True)  # stale lock of a crashed run
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()}\n")
        return self

    def __exit__(self, *exc):
        self.path.unlink(missing_ok=True)
        return False


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prepare_output_dir(out_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Create/check the output folder; refuse to replace a finished run without ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"output path {out_dir} exists and is not a folder. Choose another output_dir.")
    finished = (out_dir / "run.json").exists()
    if finished and not (overwrite or resume):
        raise OutputError(
            f"output folder {out_dir} already holds a finished run (run.json). "
            "Pass --overwrite to replace it, --resume to reuse finished tiles, or choose another output_dir."
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise OutputError(
            f"output folder {out_dir} is not writable ({err.strerror}). Fix its permissions or "
            "choose another output_dir."
        ) from err


def input_checksums(ctx: RunContext) -> dict[str, dict]:
    """Size and SHA-256 of every input file (land cover, vectors, tables, NDVI, climate)."""
    files: list[Path] = [info.path for _, info in ctx.epochs]
    files += [lay.path for lay in ctx.layers]
    files += [p for p in (ctx.table.path, getattr(ctx.legend, "path", None)) if p is not None]
    if ctx.flux is not None:
        files += list(ctx.flux.input_files())
    out = {}
    for p in files:
        p = Path(p)
        if p.is_file():
            out[str(p)] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        elif p.is_dir():  # e.g. a shapefile folder
            out[str(p)] = {"bytes": sum(f.stat().st_size for f in p.rglob("*") if f.is_file())}
    return out


def _tile_fingerprint(run_fp: str, checksums: dict) -> str:
    import hashlib

    doc = json.dumps({"run": run_fp, "inputs": {k: v.get("sha256") for k, v in checksums.items()}},
                     sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def _record_path(out_dir: Path, tile: str) -> Path:
    return out_dir / RECORDS / f"{tile}.json"


def _save_record(out_dir: Path, result, fingerprint: str) -> None:
    rec = {
        "tile": result.tile,
        "fingerprint": fingerprint,
        "outputs": result.outputs,
        "seconds": result.seconds,
        "n_pixels": result.n_pixels,
        "partials": {k: _df_to_jsonable(df) for k, df in result.partials.items()},
    }
    path = _record_path(out_dir, result.tile)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(rec, path)


def _df_to_jsonable(df: pd.DataFrame) -> dict:
    # repr of Python floats round-trips exactly, so resumed totals equal uninterrupted ones
    return {"columns": list(df.columns),
            "data": [[v.item() if hasattr(v, "item") else v for v in row]
                     for row in df.itertuples(index=False, name=None)]}


def _df_from_jsonable(d: dict) -> pd.DataFrame:
    return pd.DataFrame(d["data"], columns=d["columns"])


def _load_record(out_dir: Path, tile: str, fingerprint: str):
    from .tile_job import TileResult

    path = _record_path(out_dir, tile)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if rec.get("fingerprint") != fingerprint:
        return None
    if not all((out_dir / p).is_file() for p in rec["outputs"]):
        return None
    parts = {k: _df_from_jsonable(v) for k, v in rec["partials"].items()}
    return TileResult(tile=tile, partials=parts, outputs=rec["outputs"], seconds=rec["seconds"],
                      n_pixels=rec["n_pixels"])


# --- the tile task as Dask runs it -----------------------------------------------------------

def _tile_task(ctx: RunContext, tile: str, out_dir: str, fingerprint: str):
    """Run one tile and write its record; return the result, or an error description."""
    from .tile_job import run_tile

    try:
        result = run_tile(ctx, TileId.parse(tile), Path(out_dir))
        _save_record(Path(out_dir), result, fingerprint)
        return result
    except TanhuiError as err:
        return {"tile": tile, "error": str(err)}
    except Exception as err:  # report per tile; the finished tiles stay usable
        return {"tile": tile, "error": f"{type(err).__name__}: {err}"}


def _execute(ctx: RunContext, tiles: list[str], out_dir: Path, fingerprint: str, *,
             workers: int, scheduler: str | None, progress) -> list:
    import dask

    if not tiles:
        return []
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler, timeout="30s") as client:
            ctx_future = client.scatter(ctx, broadcast=True)
            futures = [client.submit(_tile_task, ctx_future, t, str(out_dir), fingerprint,
                                     key=f"tanhui-tile-{t}-{fingerprint[:8]}", retries=2, pure=False)
                       for t in tiles]
            results = []
            for fut in as_completed(futures):
                res = fut.result()
                results.append(res)
                progress(res)
            return results
    dctx = dask.delayed(ctx, pure=True, traverse=False)
    tasks = [dask.delayed(_tile_task, pure=False)(dctx, t, str(out_dir), fingerprint) for t in tiles]
    from dask.callbacks import Callback

    class _CB(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if isinstance(key, tuple):
                key = key[0]
            if str(key).startswith("_tile_task"):
                progress(result)

    with _CB():
        return list(dask.compute(*tasks, scheduler="threads", num_workers=workers))


def run_project(
    project: Project | str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    tiles: list[str] | None = None,
    progress=None,
) -> RunSummary:
    """Validate and run a project; return the tables and the manifest.

    Raises
    ------
    TanhuiError
        Any input problem, before a single output is written.
    RunFailedError
        Some tiles failed; finished tiles and their records are kept for ``resume``.
    """
    from .tables import assemble_tables, write_run_outputs

    t_start = time.perf_counter()
    project = project if isinstance(project, Project) else load_project(project)
    ctx = build_context(project)
    t_validated = time.perf_counter()
    out_dir = project.output_dir
    prepare_output_dir(out_dir, overwrite=overwrite, resume=resume)
    workers = workers or project.workers

    with OutputLock(out_dir), _run_log(out_dir):
        if overwrite and not resume:
            _clear_previous(out_dir)
        for tmp in out_dir.rglob(".*.tmp"):  # left by a killed run (files are renamed when complete)
            tmp.unlink(missing_ok=True)
        checksums = input_checksums(ctx)
        fingerprint = _tile_fingerprint(ctx.fingerprint(), checksums)
        wanted = [str(t) for t in ctx.tiles]
        if tiles:
            unknown = sorted(set(tiles) - set(wanted))
            if unknown:
                raise OutputError(f"tiles {unknown} are not part of this run; valid tiles: {wanted[:20]}...")
            wanted = [t for t in wanted if t in set(tiles)]
        reused, todo = {}, []
        for t in wanted:
            rec = _load_record(out_dir, t, fingerprint) if resume else None
            if rec is not None:
                reused[t] = rec
            else:
                todo.append(t)
        cb = progress or (lambda res, total=None: None)
        cb(None, total=len(todo))
        t_compute = time.perf_counter()
        results = _execute(ctx, todo, out_dir, fingerprint, workers=workers, scheduler=scheduler, progress=cb)
        t_computed = time.perf_counter()
        failed = [r for r in results if isinstance(r, dict)]
        done = [r for r in results if not isinstance(r, dict)]
        if failed:
            names = ", ".join(f"{f['tile']} ({f['error']})" for f in failed[:5])
            raise RunFailedError(
                f"{len(failed)} of {len(wanted)} tiles failed: {names}. Finished tiles are kept in "
                f"{out_dir}; fix the cause and rerun with --resume."
            )
        all_results = sorted(list(reused.values()) + done, key=lambda r: r.tile)
        tables = assemble_tables(ctx, all_results)
        timings = {
            "validate_s": t_validated - t_start,
            "compute_s": t_computed - t_compute,
            "tiles_computed": len(done),
            "tiles_reused": len(reused),
        }
        manifest = build_manifest(ctx, checksums, fingerprint, timings, workers, scheduler)
        files, warnings_ = write_run_outputs(ctx, out_dir, tables, all_results, manifest)
        manifest["timings"]["total_s"] = time.perf_counter() - t_start
        write_json(manifest, out_dir / "run.json")
    return RunSummary(out_dir=out_dir, tables=tables, files=files, manifest=manifest,
                      tiles_done=[r.tile for r in done], tiles_reused=sorted(reused),
                      warnings=warnings_)


class _run_log:
    """Log to ``<out_dir>/tanhui.log`` for the duration of a run."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / "tanhui.log"

    def __enter__(self):
        self.handler = logging.FileHandler(self.path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(self.handler)
        self.level = log.level
        log.setLevel(min(log.level or logging.INFO, logging.INFO))
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:  # into the log file only; the CLI prints the error itself
            self.handler.handle(log.makeRecord("tanhui", logging.ERROR, __file__, 0,
                                               "run failed: %s", (exc[1],), None))
        log.removeHandler(self.handler)
        self.handler.close()
        log.setLevel(self.level)
        return False


def _clear_previous(out_dir: Path) -> None:
    """Remove outputs of a previous run (only files tanhui writes)."""
    import shutil

    for name in ("run.json",):
        (out_dir / name).unlink(missing_ok=True)
    for d in ("tiles", "tables"):
        shutil.rmtree(out_dir / d, ignore_errors=True)
    for f in out_dir.glob("*.vrt"):
        f.unlink()
    for f in out_dir.glob("*.qml"):
        f.unlink()


def build_manifest(ctx: RunContext, checksums: dict, fingerprint: str, timings: dict,
                   workers: int, scheduler: str | None) -> dict:
    import dask
    import numba
    import numpy
    import rasterio

    p = ctx.project
    return {
        "tanhui_version": __version__,
        "project": {"name": p.name, "file": str(p.path), "synthetic": p.synthetic},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "grid": ctx.grid.to_dict(),
        "legend": ctx.legend.to_dict() if ctx.legend else None,
        "density_table": ctx.table.to_dict(),
        "epochs": [{"year": y, "path": str(i.path)} for y, i in ctx.epochs],
        "inputs": checksums,
        "resampling": ctx.resampled,
        "parameters": {"engine": p.engine, "flux": repr(p.flux) if p.flux else None,
                       "fingerprint": fingerprint},
        "tiles": [str(t) for t in ctx.tiles],
        "notes": ctx.notes,
        "execution": {"workers": workers, "scheduler": scheduler or "dask threads (local)"},
        "versions": {
            "python": platform.python_version(), "numpy": numpy.__version__,
            "numba": numba.__version__, "dask": dask.__version__,
            "rasterio": rasterio.__version__, "gdal": rasterio.__gdal_version__,
        },
        "timings": timings,
        "conventions": {
            "sign": "sink-positive: positive change/NEP = carbon taken up",
            "density_units": "t C ha-1", "flux_units": "g C m-2 yr-1",
            "co2_per_c": "44/12",
        },
    }
