from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tanhui.kernels.gapfill import gapfill_numba, gapfill_reference

stacks = arrays(np.float32, st.tuples(st.just(12), st.integers(1, 4), st.integers(1, 4)),
                elements=st.one_of(st.floats(-0.25, 0.75, width=32, allow_subnormal=False), st.just(np.nan)))


@given(stacks)
def test_numba_equals_reference(x):
    np.testing.assert_allclose(gapfill_numba(x), gapfill_reference(x), rtol=1e-6, atol=1e-7, equal_nan=True)


def test_hand_values():
    x = np.array([np.nan, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.6, 0.5, 0.4, np.nan, np.nan], np.float32)
    out = gapfill_numba(x[:, None, None])[:, 0, 0]
    # Dec-Jan gap of 3 months between Oct (0.4) and Feb (0.2): steps of -0.05
    np.testing.assert_allclose(out[[10, 11, 0]], [0.35, 0.30, 0.25], atol=1e-6)
    np.testing.assert_array_equal(out[1:10], x[1:10])
    few = np.full(12, np.nan, np.float32)
    few[:5] = 0.3
    assert np.isnan(gapfill_numba(few[:, None, None])).all()
