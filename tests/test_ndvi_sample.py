"""The value sample behind the NDVI scale/fill check (tanhui.ndvi_series._value_sample).

Small files keep the decimated 256 x 256 nearest-neighbour read; large tiled files without
overviews are sampled on a lattice of whole blocks. The decode budget is lowered here so
that a 1024 x 1024 file counts as large.
"""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from tanhui import ndvi_series
from tanhui.errors import InputValueError
from tanhui.ndvi_series import _value_sample, open_series

ALBERS = "+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 +ellps=krass +units=m"


def _write(path, values, tiled=True, overviews=False):
    profile = dict(driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                   dtype="int16", crs=ALBERS, transform=from_origin(0, 4_000_000, 30, 30),
                   compress="deflate")
    if tiled:
        profile.update(tiled=True, blockxsize=128, blockysize=128)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values.astype("int16"), 1)
        dst.scales = (0.0001,)
        if overviews:
            dst.build_overviews([2, 4], rasterio.enums.Resampling.nearest)
    return path


def _ndvi(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(np.clip(0.4 + rng.normal(0, 0.1, shape), 0, 0.95) * 10000)


def _series(tmp_path, first):
    paths = [first]
    for m in range(2, 13):
        paths.append(_write(tmp_path / f"ndvi_2023_{m:02d}.tif", _ndvi((64, 64), m), tiled=False))
    return paths


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setattr(ndvi_series, "SAMPLE_DECODE_PIXELS", 16 * 128 * 128)  # 16 blocks
    monkeypatch.setattr(ndvi_series, "SAMPLE_KEEP_PIXELS", 1 << 16)


def test_small_file_keeps_the_decimated_read(tmp_path, small_budget):
    v = _ndvi((300, 200))
    path = _write(tmp_path / "a.tif", v, tiled=False)
    with rasterio.open(path) as src:
        expected = src.read(1, out_shape=(256, 200)).astype("float64").ravel()
        assert np.array_equal(_value_sample(src), expected)


def test_file_with_overviews_keeps_the_decimated_read(tmp_path, small_budget):
    path = _write(tmp_path / "a.tif", _ndvi((1024, 1024)), overviews=True)
    with rasterio.open(path) as src:
        expected = src.read(1, out_shape=(256, 256)).astype("float64").ravel()
        assert np.array_equal(_value_sample(src), expected)


def test_large_tiled_file_is_sampled_on_a_block_lattice(tmp_path, small_budget):
    v = _ndvi((1024, 1024))
    v[np.arange(1024) % 128 == 5, :] = -3000  # marks one row in every block row
    path = _write(tmp_path / "a.tif", v)
    with rasterio.open(path) as src:
        sample = _value_sample(src)
    # 4 x 4 of the 8 x 8 blocks, every 2nd pixel of each: 16 * 64 * 64 values
    assert sample.size == 16 * 64 * 64
    assert set(np.unique(sample)) <= set(np.unique(v))
    # blocks 1, 3, 5, 7 of each axis; row 5 of a block is odd, so the step of 2 misses it
    assert (sample == -3000).sum() == 0
    assert sample.mean() == pytest.approx(v[v > -3000].mean(), abs=20)


def test_large_file_undeclared_fill_is_still_refused(tmp_path, small_budget):
    v = _ndvi((1024, 1024))
    v[:, ::7] = -3000  # 14 % of the pixels, spread over the file
    first = _write(tmp_path / "ndvi_2023_01.tif", v)
    with pytest.raises(InputValueError, match=r"ndvi_2023_01\.tif: 1\d% .* exactly -3000"):
        open_series(_series(tmp_path, first), (), 2023, "max", None)
    ok = _write(tmp_path / "ndvi_2023_01.tif", _ndvi((1024, 1024)))
    assert len(open_series(_series(tmp_path, ok), (), 2023, "max", None).files) == 12


def test_first_bad_file_in_date_order_is_reported(tmp_path):
    paths = _series(tmp_path, _write(tmp_path / "ndvi_2023_01.tif", _ndvi((64, 64), 1),
                                     tiled=False))
    for m in (4, 9):  # two bad files: the April one is named, as by a sequential check
        v = _ndvi((64, 64), m)
        v[:, :20] = -3000
        _write(tmp_path / f"ndvi_2023_{m:02d}.tif", v, tiled=False)
    with pytest.raises(InputValueError, match=r"ndvi_2023_04\.tif"):
        open_series(paths, (), 2023, "max", None)
