"""Exception tree for tanhui.

Every message follows one template: what failed and which input (file, tile,
column), what was found versus what was expected, then how to fix it. The CLI
prints ``str(err)`` as a single line and exits with ``err.exit_code``.
"""
from __future__ import annotations


class TanhuiError(Exception):
    """Root of all errors raised on purpose by tanhui (bad input, bad config)."""

    exit_code = 2


class ConfigError(TanhuiError, ValueError):
    """The project file is malformed, has unknown keys or wrong types."""


class InputFileError(TanhuiError, OSError):
    """An input file is missing, unreadable, empty or of the wrong type."""


class MissingCRSError(TanhuiError, ValueError):
    """A raster or vector input has no coordinate reference system."""


class GridMismatchError(TanhuiError, ValueError):
    """An input does not overlap the grid, or grids/CRSs disagree."""


class LegendError(TanhuiError, ValueError):
    """Class codes missing from a legend, or a malformed legend file."""


class ParameterTableError(TanhuiError, ValueError):
    """A parameter table (densities, CASA classes) is missing columns, has bad units or values."""


class InputValueError(TanhuiError, ValueError):
    """Input values are out of their physical range (NDVI, climate, ...)."""


class ZoneLayerError(TanhuiError, ValueError):
    """A region or zone polygon layer is empty, lacks a field, or is outside the grid."""


class OutputError(TanhuiError, OSError):
    """The output folder is not writable, is locked, or holds a finished run."""


class RunFailedError(TanhuiError, RuntimeError):
    """Some tiles failed; the finished ones are kept and the failed ones are named."""

    exit_code = 1
