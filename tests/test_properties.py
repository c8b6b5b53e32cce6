"""Property-based tests: any input either works (finite, right shape) or is refused
with a ValueError or TypeError, never another exception."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skvqad import (
    VQVAEAnomalyDetector,
    alignment_map,
    get_scorer,
    grey_dilation,
    ssim_map,
)

from .conftest import TINY

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run (CI)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DTYPES = [np.float16, np.float32, np.float64, np.uint8, np.uint16, np.int32, np.bool_]


@st.composite
def image_batches(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    ndim = draw(st.sampled_from([1, 2, 3, 4, 5]))
    shape = tuple(draw(st.integers(0 if i else 0, 12)) for i in range(ndim))
    if dtype.kind == "f":
        elements = st.one_of(
            st.floats(0, 1, width=dtype.itemsize * 8),
            st.floats(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8),
        )
    else:
        elements = None
    return draw(hnp.arrays(dtype, shape, elements=elements))


def _works_or_refuses(call):
    try:
        return call()
    except (ValueError, TypeError):
        return None


@SETTINGS
@given(X=image_batches())
def test_fit_and_maps_on_arbitrary_arrays(X):
    original = X.copy()
    detector = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1})
    fitted = _works_or_refuses(lambda: detector.fit(X))
    np.testing.assert_array_equal(X, original)  # never modified
    if fitted is None:
        return
    maps = fitted.anomaly_map(X)
    assert maps.shape == (X.shape[0],) + (
        X.shape[1:3] if X.ndim > 2 else (1, X.shape[1])
    )
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    scores = fitted.score_samples(X)
    assert scores.shape == (X.shape[0],) and np.isfinite(scores).all()


@pytest.fixture(scope="module")
def fitted_rgb():
    rng = np.random.default_rng(0)
    return VQVAEAnomalyDetector(**TINY).fit(rng.uniform(size=(8, 16, 16, 3)))


@SETTINGS
@given(X=image_batches())
def test_scoring_arbitrary_arrays(fitted_rgb, X):
    scores = _works_or_refuses(lambda: fitted_rgb.score_samples(X))
    if scores is not None:
        assert X.ndim == 4 and X.shape[-1] == 3
        assert scores.shape == (X.shape[0],) and np.isfinite(scores).all()


@st.composite
def tensors(draw, ndim):
    shape = tuple(draw(st.integers(0, 9)) for _ in range(ndim))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    values = draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))
    return torch.from_numpy(values).to(dtype)


@SETTINGS
@given(
    a=tensors(4),
    b=tensors(4),
    win_size=st.integers(-1, 12),
    maps=tensors(3),
    size=st.integers(-1, 6),
    codebook=tensors(2),
)
def test_map_functions_on_arbitrary_tensors(a, b, win_size, maps, size, codebook):
    ssim = _works_or_refuses(lambda: ssim_map(a, b, data_range=1.0, win_size=win_size))
    if ssim is not None:
        assert ssim.shape == (a.shape[0],) + tuple(a.shape[2:])
        assert torch.isfinite(ssim).all()
    dilated = _works_or_refuses(lambda: grey_dilation(maps, size))
    if dilated is not None:
        assert dilated.shape == maps.shape and torch.isfinite(dilated).all()
    am = _works_or_refuses(lambda: alignment_map(a, codebook))
    if am is not None:
        assert (am >= 0).all()


@SETTINGS
@given(
    masks=hnp.arrays(
        np.bool_, st.tuples(st.just(4), st.integers(1, 20), st.integers(1, 20))
    ),
)
def test_pixel_scorer_on_arbitrary_masks(fitted_rgb, masks):
    X = np.random.default_rng(1).uniform(size=(4, 16, 16, 3))
    score = _works_or_refuses(lambda: get_scorer("pixel_roc_auc")(fitted_rgb, X, masks))
    if score is not None:
        assert masks.shape[1:] == (16, 16) and 0 <= score <= 1


@SETTINGS
@given(
    masks=hnp.arrays(
        np.int64,
        st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(1, 6)),
        elements=st.integers(-1, 2),
    ),
    maps=hnp.arrays(
        np.float64,
        st.tuples(st.integers(0, 3), st.integers(0, 6), st.integers(1, 6)),
        elements=st.floats(allow_nan=True, allow_infinity=True),
    ),
)
def test_metrics_on_arbitrary_arrays(masks, maps):
    from skvqad.metrics import PixelROCAUC, aupro, pixel_roc_auc

    for metric in (pixel_roc_auc, aupro):
        value = _works_or_refuses(lambda: metric(masks, maps))
        if value is not None:
            assert 0.0 <= value <= 1.0
    streaming = PixelROCAUC(bits=10)
    _works_or_refuses(lambda: streaming.update(masks, maps))  # refused or added
    value = _works_or_refuses(streaming.compute)
    if value is not None:
        assert 0.0 <= value <= 1.0
