"""grid_sums (whole-tile layer, no coverage arrays) equals partial_sums with full coverage."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tanhui import zonal


def test_grid_sums_equals_full_coverage_partial_sums():
    rng = np.random.default_rng(3)
    ny, nx = 23, 31
    v = rng.uniform(0, 100, (ny, nx)).astype(np.float32)
    v[rng.random((ny, nx)) < 0.2] = np.nan
    groups = rng.integers(-1, 6, (ny, nx))
    area = rng.uniform(500, 600, (ny, 1))
    rows, cols = np.divmod(np.arange(ny * nx), nx)
    cov = zonal.TileCoverage(feature=np.zeros(ny * nx, np.int64), row=rows.astype(np.int32),
                             col=cols.astype(np.int32), frac=np.ones(ny * nx), shape=(ny, nx))
    a = zonal.partial_sums(cov, area, {"v": v}, groups=groups, n_groups=6)
    b = zonal.grid_sums(area, {"v": v}, groups, 6)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b[a.columns].reset_index(drop=True),
                                  check_exact=False, rtol=1e-12)
    # hand check of one group with plain NumPy
    m = (groups == 2) & np.isfinite(v)
    expected = float((v.astype(np.float64) * np.broadcast_to(area, (ny, nx)))[m].sum())
    assert b.loc[b["group"] == 2, "sum_v"].item() == np.float64(expected) or \
        abs(b.loc[b["group"] == 2, "sum_v"].item() / expected - 1) < 1e-12
