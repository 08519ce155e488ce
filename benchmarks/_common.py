"""Helpers shared by the benchmark scripts (``bench_stock.py``, ``bench_batch.py``).

Not a package module: the scripts put ``benchmarks/`` on ``sys.path`` (Python does this for
the script's own folder) and ``import _common``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

KIB_PER_GIB = 1024.0 ** 2
READY_MARKER = ".bench_inputs_ready"
REPO_SRC = Path(__file__).resolve().parents[1] / "src"


def use_repo_src() -> None:
    """Benchmark the repository's own code even if another checkout is installed (editable)."""
    if (REPO_SRC / "tanhui").is_dir() and str(REPO_SRC) not in sys.path:
        sys.path.insert(0, str(REPO_SRC))


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds in a background thread."""

    def __init__(self, every: float = 5.0):
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def summary(self) -> dict:
        s = self.samples or [float("nan")]
        return {"min": round(min(s), 2), "mean": round(sum(s) / len(s), 2), "max": round(max(s), 2),
                "n_samples": len(self.samples)}


def run_child(script: str | Path, args: list[str], result_file: Path) -> tuple[dict, float, dict]:
    """Run ``script`` as a child process with ``args``; return (its JSON result, its peak RSS
    in GiB from ``os.wait4`` for that child alone, load average during the child)."""
    result_file.unlink(missing_ok=True)
    with LoadSampler() as load:
        proc = subprocess.Popen([sys.executable, str(Path(script).resolve()), *args,
                                 "--result", str(result_file)])
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed with exit code {proc.returncode}")
    return json.loads(result_file.read_text()), usage.ru_maxrss / KIB_PER_GIB, load.summary()


def output_spec(out_dir: Path, tiles: list[str], epoch_years: list[int]) -> dict:
    """Per output folder of a real run (``out_dir/tiles/<stem>/``): dtype, band count,
    compression, block shape, units and which epoch's codes stand in for its values."""
    import rasterio

    stems = []
    for d in sorted(p for p in (out_dir / "tiles").iterdir() if p.is_dir() and not p.name.startswith("_")):
        files = sorted(d.glob("*.tif"))
        if not files:
            continue
        with rasterio.open(files[0]) as src:
            compress = (src.profile.get("compress") or "NONE").upper()
            units = src.units[0] or src.tags().get("units", "1")
            dtype = src.dtypes[0]
            blocks = src.block_shapes[0]
            count = src.count
        last = d.name.rsplit("_", 1)[-1]
        year = int(last) if last.isdigit() else epoch_years[-1]
        idx = epoch_years.index(year) if year in epoch_years else len(epoch_years) - 1
        stems.append({"stem": d.name, "dtype": dtype, "compress": compress, "units": units,
                      "bands": count, "epoch_index": idx, "n_files": len(files),
                      "block": list(blocks)})
    counts = {s["n_files"] for s in stems}
    if counts != {len(tiles)}:
        print(f"warning: output folders hold {sorted(counts)} files, run had {len(tiles)} tiles")
    return {"stems": stems, "tiles": tiles, "outputs_per_tile": len(stems)}


def pixels_in_polygons(project: Path, grid, geometry=None) -> float:
    """Pixels inside the union of the project's ``[regions]`` polygons (equal-area grid CRS
    area / pixel area); with ``geometry`` (grid CRS), only the part inside it."""
    import tomllib

    import geopandas as gpd

    doc = tomllib.loads(project.read_text(encoding="utf-8"))
    gdf = gpd.read_file(project.parent / doc["regions"]["path"]).to_crs(grid.crs)
    union = gdf.geometry.union_all()
    if geometry is not None:
        union = union.intersection(geometry)
    return float(union.area / (grid.res_x * grid.res_y))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    lines = [head, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for k, line in enumerate(lines):
        print("  ".join(c.rjust(w) for c, w in zip(line, widths)))
        if k == 0:
            print("  ".join("-" * w for w in widths))


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
        return round(kib / KIB_PER_GIB, 1)
    except (OSError, ValueError, IndexError):
        return None


def machine_info() -> dict:
    import platform

    import numba
    import rasterio

    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "gdal": rasterio.__gdal_version__,
            "numba": numba.__version__, "mem_total_gib": mem_total_gib()}


def now() -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z")
