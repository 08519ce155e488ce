"""Progress bar and printed summaries for the CLI (stderr for progress, stdout for results)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


@contextmanager
def progress_reporter(*, quiet: bool):
    """Yield a callback ``progress(result)`` called once per finished tile.

    Shows a bar with tiles done, pixels per second and time remaining when stderr is a
    terminal; silent otherwise or with ``quiet``.
    """
    err = Console(stderr=True)
    if quiet or not sys.stderr.isatty():
        yield lambda result, total=None: None
        return
    start = time.perf_counter()
    pixels = [0]
    with Progress(
        TextColumn("[bold]tiles"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err, transient=True,
    ) as bar:
        task = bar.add_task("tiles", total=None, rate="")

        def progress(result, total=None):
            if total is not None:
                bar.update(task, total=total)
                return
            pixels[0] += getattr(result, "n_pixels", 0)
            rate = pixels[0] / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, rate=f"{rate / 1e6:.1f} Mpx/s")

        yield progress


def _fmt(v, digits=0):
    try:
        return f"{v:,.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def print_summary(summary) -> None:
    out = Console()
    regions = summary.tables.get("regions")
    if regions is not None and not regions.empty:
        t = regions[regions["class_id"] == "all"]
        area_col = next(c for c in t.columns if c.startswith("area_ha"))
        cols = [(c, "Mt C", 1e6) for c in t.columns if c.startswith("stock_total_tC_")]
        cols += [(c, "kt C", 1e3) for c in t.columns if c.startswith("stock_change_tC_")]
        cols += [(c, "kt C/yr", 1e3) for c in t.columns if c.startswith(("npp_tC_yr_", "nep_tC_yr_"))]
        table = Table(title="Per-region totals (sink-positive)", title_justify="left")
        table.add_column("region")
        table.add_column("area km2", justify="right")
        for c, unit, _ in cols:
            label = c.replace("stock_total_tC_", "stock ").replace("stock_change_tC_", "change ")
            label = label.replace("_tC_yr_", " ").replace("_", "-")
            table.add_column(f"{label}\n({unit})", justify="right")
        for _, r in t.iterrows():
            table.add_row(str(r["feature_name"]), _fmt(r[area_col] / 100),
                          *[_fmt(r[c] / div, 2 if div == 1e6 else 1) for c, _, div in cols])
        table.add_row("[b]sum", _fmt(t[area_col].sum() / 100),
                      *[_fmt(t[c].sum() / div, 2 if div == 1e6 else 1) for c, _, div in cols])
        out.print(table)
    out.print(f"outputs: {summary.out_dir}")
    for kind, files in summary.files.items():
        out.print(f"  {kind}: {len(files)} file(s)" + (f", e.g. {files[0]}" if files else ""))
    if summary.manifest.get("flux_summary"):
        out.print(summary.manifest["flux_summary"])
    for w in summary.warnings:
        out.print(f"[yellow]warning:[/yellow] {w}")
    tm = summary.manifest.get("timings", {})
    out.print(f"tiles computed {len(summary.tiles_done)}, reused {len(summary.tiles_reused)}; "
              f"{tm.get('total_s', 0):.1f} s")
