"""The ``tanhui`` command line: thin commands that parse options and call the library.

Errors from bad input (:class:`tanhui.errors.TanhuiError`) are printed as one line on
stderr and exit with code 2 (1 when some tiles of a run failed); ``-v`` adds the traceback.
"""
from __future__ import annotations

import errno
import json
import logging
import sys
import traceback
import warnings
from pathlib import Path

import click

from .. import __version__
from ..errors import TanhuiError


class _Group(click.Group):
    """Catch library errors once, print them as one line, and set the exit code.

    Python warnings raised while a command runs (by tanhui or by GDAL/pyogrio/shapely) are
    collected: after a successful command each distinct one is printed once as a
    ``tanhui: warning:`` line (not with ``-q``); after a failure only the error line is
    printed, so that a bad input always yields exactly one line (``-v`` shows everything).
    """

    def invoke(self, ctx):
        argv = [*getattr(ctx, "_protected_args", []), *ctx.args]  # consumed by super().invoke
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # each distinct warning once ...
            for quiet_category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning,
                                   ResourceWarning):  # ... except those Python hides by default
                warnings.simplefilter("ignore", quiet_category)
            try:
                result = super().invoke(ctx)
            except TanhuiError as err:
                self._fail(ctx, caught, f"tanhui: error: {err}", err.exit_code)
            except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                    SystemExit):
                raise
            except KeyboardInterrupt:
                click.echo("tanhui: interrupted", err=True)
                ctx.exit(130)
            except Exception as err:
                if _is_os_level(err):  # the operating system refused: disk full, permissions ...
                    where = err.filename or _output_dir_of(argv)
                    line = f"tanhui: error: {describe_os_error(err, where)}"
                else:  # an unexpected failure: still one line unless -v
                    msg = str(err).splitlines()[0] if str(err) else ""
                    line = (f"tanhui: internal error: {type(err).__name__}: {msg} "
                            "(rerun with -v for the traceback and report it)")
                self._fail(ctx, caught, line, 1)
        if not _flag(ctx, "quiet"):
            for line in _warning_lines(caught):
                click.echo(line, err=True)
        return result

    @staticmethod
    def _fail(ctx, caught, line: str, code: int):
        if _flag(ctx, "verbose"):
            for w in _warning_lines(caught):
                click.echo(w, err=True)
            traceback.print_exc()
        click.echo(line, err=True)
        ctx.exit(code)


def _flag(ctx, name: str) -> bool:
    return bool(ctx.obj and ctx.obj.get(name))


def _warning_lines(caught) -> list[str]:
    seen, lines = set(), []
    for w in caught:
        text = str(w.message).strip().splitlines()[0] if str(w.message).strip() else ""
        key = (w.category, text)
        if key not in seen:
            seen.add(key)
            lines.append(f"tanhui: warning: {text} ({w.category.__name__})")
    return lines


def _is_os_level(err: BaseException) -> bool:
    """An error of the operating system (errno set, or GDAL reporting a full disk), as opposed
    to library errors that merely subclass OSError (rasterio's RasterioIOError)."""
    return isinstance(err, OSError) and (
        err.errno is not None or "no space left" in str(err).lower()
        or "disk quota exceeded" in str(err).lower())


def _output_dir_of(argv) -> str | None:
    """Best effort: the output folder of the project file given to the failed command."""
    for a in argv:
        if isinstance(a, str) and a.endswith(".toml") and Path(a).is_file():
            try:
                from ..project import load_project

                return f"output folder {load_project(a).output_dir}"
            except Exception:
                return None
    return None


def describe_os_error(err: OSError, where: str | None = None) -> str:
    """One line for an operating-system error, naming the file and what to do."""
    from ..runner import disk_full_error, disk_full_message

    where = where or err.filename or "the output folder"
    if disk_full_error(err) is not None:  # ENOSPC, EDQUOT
        return disk_full_message(where) + " (finished tiles are kept)."
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"cannot write or read {where}: {err.strerror}. Fix the permissions (or the "
                "read-only mount) or choose another output_dir.")
    reason = err.strerror or str(err).splitlines()[0]
    return (f"operating-system error on {where}: {reason}. Check the path, the disk and the "
            "permissions.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log details and show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bar.")
@click.version_option(__version__, prog_name="tanhui")
@click.pass_context
def cli(ctx, verbose: bool, quiet: bool):
    """tanhui (碳汇): carbon stock and carbon sink from land-cover and NDVI rasters.

    \b
    Quick start:
      tanhui demo demo-out          # write and run the Horqin demo
      tanhui validate PROJECT.toml  # check inputs without computing
      tanhui run PROJECT.toml       # compute rasters and tables
    """
    ctx.ensure_object(dict)
    ctx.obj.update(verbose=verbose, quiet=quiet)
    handler = logging.StreamHandler()
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    # a log file on a full disk must not print "--- Logging error ---" tracebacks
    logging.raiseExceptions = verbose
    logging.getLogger("tanhui").setLevel(logging.DEBUG if verbose else logging.INFO)
    # GDAL's own warnings (CPLE_AppDefined ...) are noise next to tanhui's one-line errors
    logging.getLogger("rasterio").setLevel(logging.DEBUG if verbose else logging.ERROR)


from . import demo as _demo  # noqa: E402
from . import grid as _grid  # noqa: E402
from . import run as _run  # noqa: E402

cli.add_command(_run.run)
cli.add_command(_run.validate)
cli.add_command(_demo.demo)
cli.add_command(_grid.grid)


def main() -> None:  # pragma: no cover - console entry
    cli(prog_name="tanhui")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

__all__ = ["cli", "json", "Path"]
