"""Run a project: validate, schedule tile jobs on Dask, add up partial sums, write tables.

Scheduling
    Dask's local threaded scheduler by default, ``workers`` threads. Threads, not processes,
    because the heavy parts of a tile release the GIL: the Numba kernels are compiled with
    ``nogil=True`` and GDAL (reads, warps, COG writes) drops the GIL in C; threads share the
    run context (LUTs, polygons) without pickling it and need no process start-up or per-process
    Numba compilation. For several machines (or to isolate tiles in processes), pass
    ``scheduler="tcp://host:8786"``, the address of a ``distributed`` scheduler
    (``dask scheduler`` + ``dask worker``, or a ``distributed.LocalCluster``). All workers must
    see the input and output folders at the same paths (a shared file system).

Records and resume
    A tile task writes its rasters (each atomically: temporary name, then rename) and then, last,
    a record ``tiles/_records/<tile>.json``. The record holds the tile's partial sums and two
    fingerprints:

    - ``run_fingerprint``: every parameter that changes results (grid, look-up tables from the
      legend and density table, engine, epochs, layer fields, the [flux] options, tanhui
      version) and the SHA-256 of the parameter tables (density table, legend, CASA table).
      Changing any of them invalidates every tile.
    - ``input_hash``: a hash of the input data the tile reads: for every input raster its header
      and the raw source pixels under the tile (the exact window when the raster is on the grid;
      the tile's footprint in the raster's CRS plus a margin for the resampling kernel when it is
      warped), and for every region/zone layer the features' geometries clipped to the tile.
      Changing an input file in one area therefore invalidates only the tiles whose data
      changed.

    ``resume=True`` runs every tile task in "check" mode: the task computes the tile's input
    hash (reads only, no kernels, no writes) and returns the stored record when both
    fingerprints match and every output raster is present with its recorded size; otherwise it
    deletes the stale record and recomputes the tile. The manifest (``run.json``) still lists
    size and SHA-256 of every input file; these whole-file checksums are computed in a
    background thread while the tiles run (joined after them, and on every failure path) and
    play no part in resume.

Disk full
    ENOSPC/EDQUOT while writing a tile, the tables or ``run.json`` stops the run with one
    message ("disk full while writing <file>; ... rerun with --resume"); finished tiles and
    their records are kept. Disk-full tile errors are not retried on a cluster.

Crash safety
    Tile tasks are idempotent: a tile's record is removed before the tile is recomputed and
    written after its last raster, so a record always describes complete outputs; a task killed
    part-way (worker death, ``kill -9``) leaves only ``.<name>.<random>.tmp`` files, which are
    removed at the start and at the end of every run. On a ``distributed`` cluster a task lost
    with its worker is rerun elsewhere by Dask, and a task raising an unexpected exception is
    retried twice; input errors (:class:`TanhuiError`) are not retried. A lock file
    (``.tanhui.lock``: pid, host, process start time) refuses a second run on the same folder;
    the lock of a killed run is detected as stale and replaced.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import platform
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .context import RunContext, build_context
from .errors import InputFileError, OutputError, RunFailedError, TanhuiError
from .grid import TileId
from .outputs import sha256_file, write_json
from .project import Project, load_project

log = logging.getLogger("tanhui")

RECORDS = Path("tiles") / "_records"
RECORD_FORMAT = 2  # records of format 1 (one run-wide fingerprint) are recomputed
# resampling kernels reach this many source pixels beyond a tile's footprint (cubic: 2)
_WARP_MARGIN_PX = 3
# temporary files of outputs.atomic_path: .<name>.<12 hex>.tmp, plus driver sidecars
_TMP_RE = re.compile(r"^\..+\.[0-9a-f]{12}\.tmp(?:[.\-].*)?$")
_DISK_FULL_ERRNOS = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
_DISK_FULL_TEXTS = ("no space left on device", "disk quota exceeded")


def disk_full_error(err: BaseException) -> OSError | None:
    """The "disk full" error (ENOSPC, EDQUOT, or GDAL's message for them) in ``err`` or its
    causes, or None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
            return err
        if any(t in str(err).lower() for t in _DISK_FULL_TEXTS):
            return err if isinstance(err, OSError) else OSError(errno.ENOSPC, str(err))
        err = err.__cause__ or err.__context__
    return None


def disk_full_message(where: object) -> str:
    """The one line for a full disk (or exhausted quota) while writing ``where``."""
    return (f"disk full while writing {where}; free space (or choose another output_dir) and "
            "rerun with --resume")


def _written_file(err: OSError, default: Path) -> Path:
    """The file a failed write was for: the error's file name, a temporary file
    (``.<name>.<random>.tmp``) named by its final name, or ``default``."""
    name = getattr(err, "filename", None)
    if not name:
        return default
    p = Path(os.fsdecode(name))
    m = re.match(r"^\.(.+)\.[0-9a-f]{12}\.tmp", p.name) if _TMP_RE.match(p.name) else None
    return p.with_name(m.group(1)) if m else p


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
    """A lock file that refuses a second run on the same output folder.

    The file holds ``<pid> <host> <process start time>``. A lock whose process is gone (or
    is a zombie, or whose pid now belongs to a process started later) is stale and replaced.
    A lock written on another host cannot be checked and is respected.
    """

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".tanhui.lock"
        self.token = f"{os.getpid()} {socket.gethostname()} {_proc_start(os.getpid()) or 0!r}\n"

    def __enter__(self):
        for _attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._remove_if_stale()
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(self.token)
            except OSError as err:
                self.path.unlink(missing_ok=True)
                if disk_full_error(err):
                    raise OutputError(
                        f"output folder {self.path.parent}: disk full (cannot even write the "
                        f"lock file {self.path.name}). Free space or choose another output_dir."
                    ) from err
                raise
            return self
        raise OutputError(
            f"output folder {self.path.parent} is locked ({self.path} keeps reappearing); another "
            "tanhui run is starting there. Wait for it to finish, or use another output folder."
        )

    def _remove_if_stale(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        holder = _parse_lock(text)
        if holder is None:  # empty or half-written: a run that is just starting, or a crash
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return
            if age < 10:
                time.sleep(1.0)
                return
        else:
            pid, host, start = holder
            if host and host != socket.gethostname():
                raise OutputError(
                    f"output folder {self.path.parent} is locked by a tanhui run on host {host} "
                    f"(pid {pid}). Wait for it to finish; if no run is active there, delete "
                    f"{self.path}."
                )
            if _pid_alive(pid, start):
                raise OutputError(
                    f"output folder {self.path.parent} is locked by a running tanhui process "
                    f"(pid {pid}). Wait for it to finish, or use another output folder."
                )
        log.info("removing stale lock %s (%s)", self.path, "unreadable" if holder is None else
                 f"pid {holder[0]} is not running")
        # Move it aside before deleting, so that a fresh lock another run created in the
        # meantime is put back instead of being deleted with the stale one.
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if aside.read_text(encoding="utf-8") != text:
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
        finally:
            aside.unlink(missing_ok=True)

    def __exit__(self, *exc):
        try:
            mine = self.path.read_text(encoding="utf-8") == self.token
        except OSError:
            mine = False
        if mine:
            self.path.unlink(missing_ok=True)
        return False


def _parse_lock(text: str) -> tuple[int, str | None, float | None] | None:
    parts = text.split()
    try:
        pid = int(parts[0])
    except (ValueError, IndexError):
        return None
    host = parts[1] if len(parts) > 1 else None
    try:
        start = float(parts[2]) if len(parts) > 2 else None
        if start and parts[2].isdigit() and hasattr(os, "sysconf"):
            start /= os.sysconf("SC_CLK_TCK")  # older tanhui wrote clock ticks since boot
    except (ValueError, OSError):
        start = None
    return pid, host, (start or None)


def _proc_start(pid: int) -> float | None:
    """Start time of a process, or None if unknown.

    Linux: seconds since boot from ``/proc/<pid>/stat`` (clock ticks, exact and immune to
    changes of the system clock, unlike psutil's epoch time, which adds a boot time derived
    from the current clock). Elsewhere psutil's creation time (seconds since the epoch).
    Only ever compared with values from the same host.
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(text[text.rfind(")") + 2:].split()[19])  # field 22; [0] is field 3
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def _pid_alive(pid: int, start: float | None = None) -> bool:
    """Is ``pid`` a running process (and, when ``start`` is given, the same process)?

    Zombies (killed, not yet reaped) are dead; a pid whose process was created at another
    time than ``start`` has been reused by the system. Uses psutil (never ``os.kill``, which
    on Windows would terminate the process).
    """
    import psutil

    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        if start is not None:
            now = _proc_start(pid)
            if now is not None and abs(now - start) > 1e-3:
                return False
        return True
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, OSError):  # exists, owned by someone else
        return True


def prepare_output_dir(out_dir: Path, *, overwrite: bool, resume: bool) -> None:
    """Create/check the output folder; refuse to replace a finished run without ``overwrite``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(
            f"output path {out_dir} exists and is not a folder. Choose another output_dir."
        )
    finished = (out_dir / "run.json").exists()
    if finished and not (overwrite or resume):
        raise OutputError(
            f"output folder {out_dir} already holds a finished run (run.json). "
            "Pass --overwrite to replace it, --resume to reuse finished tiles, or choose another "
            "output_dir."
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        if disk_full_error(err):
            raise OutputError(
                f"output folder {out_dir}: disk full ({err.strerror or err}). Free space or "
                "choose another output_dir."
            ) from err
        raise OutputError(
            f"output folder {out_dir} is not writable ({err.strerror}). Fix its permissions or "
            "choose another output_dir."
        ) from err


def remove_temporaries(out_dir: Path) -> int:
    """Delete the ``.<name>.<random>.tmp`` files (and sidecars) of interrupted writes."""
    n = 0
    for p in out_dir.rglob(".*.tmp*"):
        if p.is_file() and _TMP_RE.match(p.name):
            p.unlink(missing_ok=True)
            n += 1
    return n


# --- fingerprints ------------------------------------------------------------------------

class _ChecksumsStopped(Exception):
    pass


def input_checksums(ctx: RunContext, stop: threading.Event | None = None) -> dict[str, dict]:
    """Size and SHA-256 of every input file (land cover, vectors, tables, NDVI, climate).

    For the manifest (``run.json``) only; tile records use per-tile input hashes. An input
    that has disappeared or become unreadable since validation raises :class:`InputFileError`.
    ``stop`` (set by another thread) ends the work between two files.
    """
    files: list[Path] = [info.path for _, info in ctx.epochs]
    files += [lay.path for lay in ctx.layers]
    files += [p for p in (ctx.table.path, getattr(ctx.legend, "path", None)) if p is not None]
    if ctx.flux is not None:
        files += list(ctx.flux.input_files())
    out = {}
    for p in files:
        if stop is not None and stop.is_set():
            raise _ChecksumsStopped
        p = Path(p)
        if str(p) in out:
            continue
        try:
            if p.is_file():
                out[str(p)] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            elif p.is_dir():  # e.g. a shapefile folder
                out[str(p)] = {"bytes": sum(f.stat().st_size for f in p.rglob("*")
                                            if f.is_file())}
            elif not (str(p).startswith("/vsi") or "://" in str(p)):  # GDAL paths: not files
                raise FileNotFoundError(errno.ENOENT, "file not found", str(p))
        except OSError as err:
            reason = getattr(err.__cause__, "strerror", None) or err.strerror or "not found"
            raise InputFileError(
                f"input file {p} cannot be read for the checksums of run.json ({reason}): it was "
                "moved, deleted or made unreadable during the run. Restore it and rerun with "
                "--resume (finished tiles are kept)."
            ) from err
    return out


class _BackgroundChecksums:
    """:func:`input_checksums` in a thread, overlapping the tiles (file reads and hashlib
    release the GIL). :meth:`result` joins and re-raises the thread's error; :meth:`close`
    (on every exit path) stops it between two files and joins it."""

    def __init__(self, ctx: RunContext):
        self._stop = threading.Event()
        self._result: dict | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(ctx,), daemon=True,
                                        name="tanhui-input-checksums")
        self._thread.start()

    def _run(self, ctx: RunContext) -> None:
        try:
            self._result = input_checksums(ctx, self._stop)
        except _ChecksumsStopped:
            pass
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self._error = err

    def result(self) -> dict:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _parameter_tables(ctx: RunContext) -> list[Path]:
    """Tables whose content changes every tile (not covered by the per-tile input hash)."""
    files = [ctx.table.path, getattr(ctx.legend, "path", None)]
    if ctx.flux is not None:
        files.append(ctx.flux.casa.path)
    return [Path(p) for p in files if p is not None]


def run_fingerprint(ctx: RunContext, checksums: dict) -> str:
    """Hash of everything that changes every tile: parameters, parameter tables, version."""
    tables = {}
    for p in _parameter_tables(ctx):
        c = checksums.get(str(p))
        tables[p.name] = c["sha256"] if c and "sha256" in c else (
            sha256_file(p) if p.is_file() else None)
    doc = {
        "format": RECORD_FORMAT,
        "parameters": ctx.fingerprint(),
        "tables": tables,
        "tanhui": __version__,
        # written into every tile raster's tags
        "project": [ctx.project.name, bool(ctx.project.synthetic), ctx.grid.name],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def tile_rasters(ctx: RunContext) -> list[tuple[str, object]]:
    """Every input raster a tile reads, as (role, RasterInfo)."""
    out: list[tuple[str, object]] = [(f"landcover:{y}", info) for y, info in ctx.epochs]
    fc = ctx.flux
    if fc is not None:
        out += [(f"ndvi:{f.date.isoformat()}", f.info) for f in fc.series.files]
        for name, src in sorted(fc.climate.items()):
            out += [(f"climate:{name}:{i}", info) for i, info in enumerate(src.rasters)]
        bounds = (("ndvi_min", fc.ndvi_min_px), ("ndvi_max", fc.ndvi_max_px))
        out += [(role, info) for role, info in bounds if info is not None]
    return out


def tile_input_hash(ctx: RunContext, tid: TileId) -> str:
    """Hash of the input data tile ``tid`` reads (rasters under it, polygons clipped to it).

    Reads only: raw source pixels (no scaling, warping or kernels) and polygon clipping, so
    it costs a fraction of computing the tile. Equal hashes mean the tile's results would
    be equal (given equal parameters, which :func:`run_fingerprint` covers).
    """
    from shapely import box, clip_by_rect, to_wkb

    h = hashlib.blake2b(digest_size=32)
    grid = ctx.grid
    transform = grid.tile_transform(tid)
    shape = tuple(grid.tile_shape)
    bounds = grid.tile_bounds(tid)
    for role, info in tile_rasters(ctx):
        h.update(f"\0raster {role}\0".encode())
        _hash_raster_window(h, info, grid.crs, transform, shape, bounds)
    for lay in ctx.layers:
        h.update(f"\0layer {lay.key}\0".encode())
        geoms = lay.gdf.geometry
        hits = np.sort(np.asarray(geoms.sindex.query(box(*bounds))))
        values = geoms.values
        for i in hits:
            g = values[int(i)]
            if g is None or g.is_empty:
                continue
            try:
                part = clip_by_rect(g, *bounds)
            except Exception:  # noqa: BLE001 - GEOS may refuse an odd geometry: hash all of it
                part = g
            if part.is_empty:
                continue
            h.update(f"{int(i)}:".encode())
            h.update(to_wkb(part, hex=False, output_dimension=2))
    return h.hexdigest()


def _hash_raster_window(h, info, crs, transform, shape, bounds) -> None:
    import rasterio
    from rasterio.windows import Window

    from .rasterio_io import is_aligned

    header = [info.crs.to_wkt() if info.crs else None, list(info.transform)[:6], info.width,
              info.height, info.count, info.dtype, info.nodata, list(info.scales),
              list(info.offsets)]
    h.update(json.dumps(header, default=str).encode())
    ny, nx = shape
    t = info.transform
    if is_aligned(info, crs, transform):
        c0 = round((transform.c - t.c) / t.a)
        r0 = round((transform.f - t.f) / t.e)
        c1, r1 = c0 + nx, r0 + ny
    else:
        win = _source_window(info, crs, bounds)
        if win is None:  # footprint not expressible in the raster's CRS: the whole file counts
            h.update(sha256_file(info.path).encode())
            return
        c0, r0, c1, r1 = win
    c0, r0 = max(c0, 0), max(r0, 0)
    c1, r1 = min(c1, info.width), min(r1, info.height)
    h.update(f"window {c0} {r0} {c1} {r1}".encode())
    if c1 <= c0 or r1 <= r0:
        return
    with rasterio.open(info.path) as src:
        data = src.read(window=Window(c0, r0, c1 - c0, r1 - r0))
    h.update(np.ascontiguousarray(data).tobytes())


def _source_window(info, crs, bounds) -> tuple[int, int, int, int] | None:
    """Source pixel window (col0, row0, col1, row1) under a tile footprint, plus margin."""
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(crs, info.crs, *bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - any projection failure: fall back to the whole file
        return None
    if not all(map(math.isfinite, (left, bottom, right, top))):
        return None
    inv = ~info.transform
    cols, rows = zip(*(inv * (x, y) for x in (left, right) for y in (bottom, top)))
    m = _WARP_MARGIN_PX
    return (math.floor(min(cols)) - m, math.floor(min(rows)) - m,
            math.ceil(max(cols)) + m, math.ceil(max(rows)) + m)


# --- records -----------------------------------------------------------------------------

def _record_path(out_dir: Path, tile: str) -> Path:
    return out_dir / RECORDS / f"{tile}.json"


def _save_record(out_dir: Path, result, run_fp: str, input_hash: str) -> None:
    rec = {
        "format": RECORD_FORMAT,
        "tile": result.tile,
        "run_fingerprint": run_fp,
        "input_hash": input_hash,
        "tanhui_version": __version__,
        "outputs": result.outputs,
        "output_bytes": {p: (out_dir / p).stat().st_size for p in result.outputs},
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
            "dtypes": [str(t) for t in df.dtypes],
            "data": [[v.item() if hasattr(v, "item") else v for v in row]
                     for row in df.itertuples(index=False, name=None)]}


def _df_from_jsonable(d: dict) -> pd.DataFrame:
    df = pd.DataFrame(d["data"], columns=d["columns"])
    if "dtypes" in d:
        df = df.astype(dict(zip(d["columns"], d["dtypes"])))
    return df


def _load_record(out_dir: Path, tile: str, run_fp: str, input_hash: str):
    """The stored result of ``tile`` if it is still valid, else None."""
    from .tile_job import TileResult

    path = _record_path(out_dir, tile)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (rec.get("format") != RECORD_FORMAT or rec.get("run_fingerprint") != run_fp
            or rec.get("input_hash") != input_hash):
        return None
    sizes = rec.get("output_bytes", {})
    for p in rec["outputs"]:
        f = out_dir / p
        try:
            if f.stat().st_size != sizes.get(p):
                return None
        except OSError:
            return None
    try:
        parts = {k: _df_from_jsonable(v) for k, v in rec["partials"].items()}
    except (KeyError, TypeError, ValueError):
        return None
    return TileResult(tile=tile, partials=parts, outputs=rec["outputs"], seconds=rec["seconds"],
                      n_pixels=rec["n_pixels"])


# --- the tile task as Dask runs it -----------------------------------------------------------

@dataclass
class TileOutcome:
    """What a tile task returns: a result (computed or reused) or an error message."""

    tile: str
    result: object | None = None  # TileResult
    reused: bool = False
    error: str | None = None
    disk_full: bool = False

    @property
    def n_pixels(self) -> int:  # pixels computed, for progress reporters (0 when reused)
        return 0 if self.reused else getattr(self.result, "n_pixels", 0)


def _tile_task(ctx: RunContext, tile: str, out_dir: str, run_fp: str, resume: bool,
               reraise: bool = False) -> TileOutcome:
    """Hash the tile's inputs; reuse its record on resume, else compute it and write the record.

    Idempotent: rerunning the task (a retry, or a worker lost mid-tile) redoes the same
    atomic writes. With ``reraise`` unexpected exceptions propagate (so that ``distributed``
    retries them); input errors (:class:`TanhuiError`) are always returned as outcomes.
    """
    from .tile_job import run_tile

    out = Path(out_dir)
    try:
        tid = TileId.parse(tile)
        in_hash = tile_input_hash(ctx, tid)
        if resume:
            rec = _load_record(out, tile, run_fp, in_hash)
            if rec is not None:
                return TileOutcome(tile, rec, reused=True)
        # a record only ever describes finished outputs
        _record_path(out, tile).unlink(missing_ok=True)
        result = run_tile(ctx, tid, out)
        _save_record(out, result, run_fp, in_hash)
        return TileOutcome(tile, result)
    except TanhuiError as err:
        return TileOutcome(tile, error=str(err))
    except Exception as err:  # report per tile; the finished tiles stay usable
        full = disk_full_error(err)
        if full is not None:  # not retried: another worker writes to the same disk
            where = _written_file(full, out / "tiles")
            return TileOutcome(tile, error=disk_full_message(where), disk_full=True)
        if reraise:
            raise
        return TileOutcome(tile, error=f"{type(err).__name__}: {err}")


def _identity(x):
    return x


def _execute(ctx: RunContext, tiles: list[str], out_dir: Path, run_fp: str, *, resume: bool,
             workers: int, client, progress) -> list[TileOutcome]:
    if not tiles:
        return []
    if client is not None:
        return _execute_distributed(ctx, tiles, out_dir, run_fp, resume=resume, client=client,
                                    progress=progress)
    import dask
    from dask.callbacks import Callback

    dctx = dask.delayed(ctx, pure=True, traverse=False)
    task = dask.delayed(_tile_task, pure=False)
    tasks = [task(dctx, t, str(out_dir), run_fp, resume) for t in tiles]

    class _CB(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if isinstance(result, TileOutcome):
                progress(result)

    with _CB():
        return list(dask.compute(*tasks, scheduler="threads", num_workers=workers))


def _connect(scheduler: str):
    """A ``distributed`` client of the scheduler at ``scheduler`` (checked before any output)."""
    try:
        from distributed import Client
    except ImportError as err:  # pragma: no cover - distributed is a dependency
        raise OutputError(
            f"--scheduler {scheduler} needs the 'distributed' package, which is not installed. "
            "Install it (pip install distributed) or run without --scheduler."
        ) from err
    try:
        return Client(scheduler, timeout="30s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise OutputError(
            f"cannot connect to the Dask scheduler at {scheduler} "
            f"({str(err).splitlines()[0][:160]}). "
            "Check the address (e.g. tcp://host:8786) and that the scheduler is running."
        ) from err


def _execute_distributed(ctx, tiles, out_dir, run_fp, *, resume, client,
                         progress) -> list[TileOutcome]:
    from distributed import as_completed

    token = secrets.token_hex(4)
    results: list[TileOutcome] = []
    # The context travels as the result of a task (not scattered data): if the worker
    # holding it dies, the scheduler recomputes it from the graph.
    ctx_future = client.submit(_identity, ctx, key=f"tanhui-context-{token}", pure=False)
    futures = {
        client.submit(_tile_task, ctx_future, t, str(out_dir), run_fp, resume, True,
                      key=f"tanhui-tile-{t}-{token}", retries=2, pure=False): t
        for t in tiles
    }
    for fut in as_completed(list(futures), loop=client.loop):
        try:
            res = fut.result()
        except Exception as err:  # noqa: BLE001 - retries exhausted, or workers kept dying
            msg = str(err).splitlines()[0][:300] if str(err) else ""
            res = TileOutcome(futures[fut], error=f"{type(err).__name__}: {msg}")
        results.append(res)
        progress(res)
        fut.release()
    ctx_future.release()
    return results


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

    Parameters
    ----------
    workers : int, optional
        Threads of the local Dask scheduler (default: ``[run] workers``). Ignored with
        ``scheduler``.
    scheduler : str, optional
        Address of a ``distributed`` scheduler (``tcp://host:8786``); workers need the
        input and output folders at the same paths.
    resume : bool
        Reuse tiles whose record matches the current parameters and the tile's input data.
    overwrite : bool
        Replace a finished run in the output folder.
    tiles : list of str, optional
        Only these tile ids.
    progress : callable, optional
        ``progress(outcome)`` per finished tile, ``progress(None, total=n)`` once at the start.

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
    workers = workers or project.workers
    wanted = [str(t) for t in ctx.tiles]
    if tiles:
        unknown = sorted(set(tiles) - set(wanted))
        if unknown:
            raise OutputError(
                f"tiles {unknown} are not part of this run (project {project.path}); valid tiles: "
                f"{', '.join(wanted[:20])}{' ...' if len(wanted) > 20 else ''}. "
                "Pass ids of this run's tiles."
            )
        wanted = [t for t in wanted if t in set(tiles)]

    with contextlib.ExitStack() as stack:
        client = stack.enter_context(_connect(scheduler)) if scheduler else None
        prepare_output_dir(out_dir, overwrite=overwrite, resume=resume)
        stack.enter_context(OutputLock(out_dir))
        stack.enter_context(_run_log(out_dir))
        if overwrite and not resume:
            _clear_previous(out_dir)
        # left by a killed run (files are renamed when complete)
        n_tmp = remove_temporaries(out_dir)
        if n_tmp:
            log.info("removed %d temporary file(s) of an interrupted run", n_tmp)
        # whole-file checksums for run.json, in a thread while the tiles run (~9 s for the
        # 30 m demo); the fingerprint hashes the small parameter tables itself
        checksum_job = _BackgroundChecksums(ctx)
        stack.callback(checksum_job.close)  # stopped and joined on every exit path
        run_fp = run_fingerprint(ctx, {})
        cb = progress or (lambda res, total=None: None)
        cb(None, total=len(wanted))
        t_compute = time.perf_counter()
        outcomes = _execute(ctx, wanted, out_dir, run_fp, resume=resume, workers=workers,
                            client=client, progress=cb)
        remove_temporaries(out_dir)  # of tasks lost with a worker (every task has finished)
        t_computed = time.perf_counter()
        failed = sorted((o for o in outcomes if o.error is not None), key=lambda o: o.tile)
        done = [o.result for o in outcomes if o.error is None and not o.reused]
        reused = [o.result for o in outcomes if o.error is None and o.reused]
        for o in sorted(outcomes, key=lambda o: o.tile):
            log.info("tile %s: %s", o.tile, "failed: " + o.error if o.error else
                     "reused (parameters and input data unchanged)" if o.reused else "computed")
        full = [f for f in failed if f.disk_full]
        if full:
            raise RunFailedError(
                f"{full[0].error} ({len(failed)} of {len(wanted)} tiles failed; finished tiles "
                f"are kept in {out_dir})."
            )
        if failed:
            names = ", ".join(f"{f.tile} ({f.error})" for f in failed[:5])
            more = (f" and {len(failed) - 5} more (see {out_dir / 'tanhui.log'})"
                    if len(failed) > 5 else "")
            raise RunFailedError(
                f"{len(failed)} of {len(wanted)} tiles failed: {names}{more}. Finished tiles are "
                f"kept in {out_dir}; fix the cause and rerun with --resume."
            )
        checksums = checksum_job.result()
        all_results = sorted(reused + done, key=lambda r: r.tile)
        tables = assemble_tables(ctx, all_results)
        timings = {
            "validate_s": t_validated - t_start,
            "compute_s": t_computed - t_compute,
            "tiles_computed": len(done),
            "tiles_reused": len(reused),
        }
        manifest = build_manifest(ctx, checksums, run_fp, timings, workers, scheduler)
        try:
            files, warnings_ = write_run_outputs(ctx, out_dir, tables, all_results, manifest)
            manifest["timings"]["total_s"] = time.perf_counter() - t_start
            write_json(manifest, out_dir / "run.json")
        except OSError as err:
            full = disk_full_error(err)
            if full is None:
                raise
            raise RunFailedError(
                f"{disk_full_message(_written_file(full, out_dir))} (every tile is finished and "
                f"kept in {out_dir})."
            ) from err
    return RunSummary(out_dir=out_dir, tables=tables, files=files, manifest=manifest,
                      tiles_done=sorted(r.tile for r in done),
                      tiles_reused=sorted(r.tile for r in reused),
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
        log.setLevel(self.level)
        try:
            self.handler.close()  # flushes: fails on a full disk
        except OSError as err:
            if exc[0] is None:  # do not hide the run's own error
                log.warning("could not finish writing %s: %s", self.path, err.strerror or err)
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
