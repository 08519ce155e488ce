"""The ``tanhui`` command line: thin commands that parse options and call the library.

Errors from bad input (:class:`tanhui.errors.TanhuiError`) are printed as one line on
stderr and exit with code 2 (1 when some tiles of a run failed); ``-v`` adds the traceback.
"""
from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

import click

from .. import __version__
from ..errors import TanhuiError


class _Group(click.Group):
    """Catch library errors once, print them as one line, and set the exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TanhuiError as err:
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            click.echo(f"tanhui: error: {err}", err=True)
            ctx.exit(err.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("tanhui: interrupted", err=True)
            ctx.exit(130)
        except Exception as err:  # an unexpected failure: still one line unless -v
            if ctx.obj and ctx.obj.get("verbose"):
                traceback.print_exc()
            msg = str(err).splitlines()[0] if str(err) else ""
            click.echo(f"tanhui: internal error: {type(err).__name__}: {msg} (rerun with -v for the "
                       "traceback and report it)", err=True)
            ctx.exit(1)


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
    logging.getLogger("tanhui").setLevel(logging.DEBUG if verbose else logging.INFO)


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
