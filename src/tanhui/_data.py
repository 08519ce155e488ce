"""Locate the data folders ``grids/`` and ``landcover/`` shipped with tanhui.

In a built wheel they live in ``tanhui/_shipped/``; in a source checkout
(editable install, or tests run from the repository) they are the top-level
folders of the repository.
"""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder holding shipped data ``name`` ('grids' or 'landcover')."""
    shipped = _PKG / "_shipped" / name
    if shipped.is_dir():
        return shipped
    checkout = _PKG.parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"tanhui data folder '{name}' not found in {shipped} or {checkout}; reinstall tanhui"
    )
