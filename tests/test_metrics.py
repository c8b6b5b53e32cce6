"""Metrics against hand-computed values and scikit-learn; streaming memory."""

import tracemalloc

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from skvqad.metrics import (
    PixelMetrics,
    PixelROCAUC,
    aupro,
    f1_max,
    image_roc_auc,
    pixel_roc_auc,
)


def test_image_roc_auc_by_hand_and_sign():
    y = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]  # 3 of 4 (anomalous, normal) pairs ordered
    assert image_roc_auc(y, scores) == pytest.approx(0.75)
    normality = -np.asarray(scores)  # like score_samples: higher = normal
    assert image_roc_auc(y, normality, greater_is_anomalous=False) == pytest.approx(
        0.75
    )
    with pytest.raises(ValueError, match="both normal and anomalous"):
        image_roc_auc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match="0/1"):
        image_roc_auc([-1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        image_roc_auc([0, 1], [np.nan, 0.2])


def test_pixel_roc_auc_pooled_and_per_image():
    masks = np.zeros((2, 2, 2), bool)
    masks[0, 0, 0] = masks[1, 0, 0] = True
    maps = np.array([[[0.9, 0.1], [0.2, 0.3]], [[0.25, 0.5], [0.0, 0.0]]])
    # Pooled: anomalous 0.9, 0.25 vs normal 0.1, 0.2, 0.3, 0.5, 0, 0:
    # 0.9 beats all 6, 0.25 beats 4 -> 10 / 12.
    assert pixel_roc_auc(masks, maps) == pytest.approx(10 / 12)
    assert pixel_roc_auc(masks, maps) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel())
    )
    # Per image: image 0 -> 1.0, image 1 -> 2/3 (0.25 beats 0, 0; not 0.5).
    assert pixel_roc_auc(masks, maps, average="per_image") == pytest.approx(
        (1 + 2 / 3) / 2
    )
    with pytest.raises(ValueError, match="shape"):
        pixel_roc_auc(masks, maps[:, :1])
    with pytest.raises(ValueError, match="both"):
        pixel_roc_auc(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match="average"):
        pixel_roc_auc(masks, maps, average="macro")


def test_aupro_by_hand():
    # One image, two regions of different sizes and 4 normal pixels.
    masks = np.array([[[1, 1, 0, 0], [0, 0, 0, 1]]], bool)
    maps = np.array([[[0.9, 0.2, 0.5, 0.1], [0.0, 0.3, 0.4, 0.8]]])
    # Thresholds from the top: 0.9 -> region A half on (PRO 0.25), FPR 0;
    # 0.8 -> region B on (PRO 0.75), FPR 0; 0.5 -> FPR 1/4, PRO 0.75; 0.4 -> 2/4.
    # Up to FPR 0.3: area = 0.75 * 0.3 -> normalised 0.75.
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.75)
    # Perfect maps give 1, inverted maps give 0.
    assert aupro(masks, masks.astype(float)) == pytest.approx(1.0)
    assert aupro(masks, 1.0 - masks) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(masks, maps, fpr_limit=0)


def test_aupro_weights_regions_not_pixels():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, :5, :5] = True  # a large region, found
    masks[0, 9, 9] = True  # a one-pixel region, missed
    maps = np.where(masks, 1.0, 0.2)  # normal pixels at 0.2
    maps[0, 9, 9] = 0.0  # the small region scores below every normal pixel
    # Half of the regions are found at FPR 0 -> PRO 0.5 over the whole range.
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.5)


def test_f1_max_matches_best_threshold():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = y + rng.normal(0, 0.8, 200)
    best, threshold = f1_max(y, scores, return_threshold=True)
    assert best == pytest.approx(f1_score(y, scores >= threshold))
    brute = max(f1_score(y, scores >= t) for t in np.unique(scores))
    assert best == pytest.approx(brute)


def test_streaming_pixel_roc_auc_is_close_to_scikit_learn():
    rng = np.random.default_rng(0)
    metric = PixelROCAUC()
    all_masks, all_maps = [], []
    for k in range(10):
        masks = rng.uniform(size=(4, 16, 16)) < 0.1
        # Later batches reach larger values; some are negative.
        maps = rng.gamma(2.0, 1.0 + k, size=masks.shape) + 2.0 * masks - 1.0
        metric.update(masks, maps)
        all_masks.append(masks)
        all_maps.append(maps.astype(np.float32))
    exact = roc_auc_score(
        np.concatenate(all_masks).ravel(), np.concatenate(all_maps).ravel()
    )
    assert abs(metric.compute() - exact) < 1e-5
    assert metric.counts_[:2].sum() == 10 * masks.size  # every pixel counted


@pytest.mark.parametrize("seed", range(4))
def test_streaming_metrics_equal_the_exact_ones_when_bins_hold_one_value(seed):
    from skvqad.metrics._metrics import pooled_pixel_metrics

    rng = np.random.default_rng(seed)
    masks = rng.random((6, 20, 20)) < 0.1
    masks[1, 5:12, 3:9] = True  # a larger region beside the speckles
    # Values on a 0.1 grid: many ties, and no two distinct values in a bin.
    maps = np.round(rng.standard_normal(masks.shape) + 1.5 * masks, 1)
    maps = maps.astype(np.float32)
    metric = PixelMetrics(fpr_limit=0.3)
    for part in np.array_split(np.arange(6), 3):  # three batches
        metric.update(masks[part], maps[part])
    got, exact = metric.compute(), pooled_pixel_metrics(masks, maps, fpr_limit=0.3)
    for key in ("ROC-AUC", "F1-max", "AUPRO"):
        assert got[key] == pytest.approx(exact[key], abs=1e-9), key
    # The threshold is the best bin's lowest value: it labels as the exact one.
    assert got["F1-max threshold"] <= exact["F1-max threshold"]
    assert np.array_equal(
        maps >= got["F1-max threshold"], maps >= exact["F1-max threshold"]
    )
    assert got["ROC-AUC"] == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12
    )


def test_streaming_metrics_are_close_on_continuous_maps_and_order_free():
    from skvqad.metrics._metrics import pooled_pixel_metrics

    rng = np.random.default_rng(1)
    masks = np.zeros((12, 48, 48), dtype=bool)
    for i in range(0, 12, 2):
        masks[i, 4 + i : 14 + 2 * i, 6:20] = True
        masks[i, 30:32, 10:40] = True  # a thin scratch
    maps = rng.lognormal(0.0, 1.5, masks.shape) * (1 + masks)  # heavy tail
    exact = pooled_pixel_metrics(masks, maps.astype(np.float32), fpr_limit=0.3)
    forward, backward = PixelMetrics(), PixelMetrics()
    for i in range(12):
        forward.update(masks[i : i + 1], maps[i : i + 1])
        backward.update(masks[11 - i : 12 - i], maps[11 - i : 12 - i])
    got = forward.compute()
    # The error stated in PixelMetrics' docstring: below 1e-4.
    for key in ("ROC-AUC", "F1-max", "AUPRO"):
        assert abs(got[key] - exact[key]) < 1e-4, key
    assert torch.equal(forward.counts_, backward.counts_)  # exact integers
    assert backward.compute() == got


def test_streaming_metrics_count_on_the_maps_device_and_refuse_bad_input():
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, :2] = True
    maps = torch.rand(2, 4, 4)
    metric = PixelMetrics(bits=10)
    with pytest.raises(ValueError, match="no batch"):
        metric.compute()
    metric.update(torch.from_numpy(masks), maps)
    assert metric.counts_.device == maps.device
    assert metric.n_regions_ == 1
    with pytest.raises(ValueError, match="same shape"):
        metric.update(masks[:1], maps)
    with pytest.raises(ValueError, match="NaN"):
        metric.update(masks, torch.full((2, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="0/1"):
        metric.update(masks * 2, maps)
    with pytest.raises(ValueError, match="bits"):
        PixelMetrics(bits=32)
    with pytest.raises(TypeError, match="bits"):
        PixelMetrics(bits=16.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        PixelMetrics(fpr_limit=0)
    only_normal = PixelMetrics()
    only_normal.update(np.zeros((1, 4, 4), bool), np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="both normal and anomalous"):
        only_normal.compute()


def test_streaming_memory_is_flat():
    rng = np.random.default_rng(0)
    metric = PixelROCAUC(bits=12)
    masks = rng.uniform(size=(8, 64, 64)) < 0.05
    maps = rng.uniform(size=masks.shape)
    metric.update(masks, maps)  # warm up allocations
    tracemalloc.start()
    metric.update(masks, maps)
    for _ in range(200):
        metric.update(masks, maps)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # 200 more updates of 32k pixels each: retained memory does not grow.
    assert current < 64 * 1024
    assert metric.counts_[:2].sum() == 202 * masks.size  # every pixel counted


@pytest.mark.parametrize("seed", range(6))
def test_sort_based_metrics_equal_scikit_learn(seed):
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    rng = np.random.default_rng(seed)
    masks = rng.random((5, 16, 16)) < [0.02, 0.1, 0.3, 0.0, 0.5][seed % 5]
    masks[0, 0, 0] = True
    maps = rng.standard_normal((5, 16, 16)).astype(np.float32) + masks
    maps = np.round(maps, 1)  # many ties
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_roc_auc(masks, maps) == pytest.approx(expected, abs=1e-12)
    precision, recall, thresholds = precision_recall_curve(masks.ravel(), maps.ravel())
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
    best = int(np.argmax(f1[:-1]))
    value, threshold = f1_max(masks, maps, return_threshold=True)
    assert value == pytest.approx(f1[best], abs=1e-12)
    assert threshold == thresholds[best]


def test_per_image_pixel_roc_auc_equals_scikit_learn_image_by_image():
    rng = np.random.default_rng(0)
    masks = rng.random((4, 12, 10)) < 0.2
    masks[3] = False  # no defect: left out of the average
    maps = np.round(rng.standard_normal((4, 12, 10)) + masks, 1)  # ties
    expected = np.mean([roc_auc_score(m.ravel(), s.ravel())
                        for m, s in zip(masks[:3], maps[:3])])  # fmt: skip
    got = pixel_roc_auc(masks, maps, average="per_image")
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_pooled_pixel_metrics_from_one_sort_equal_each_metric(seed):
    from sklearn.metrics import precision_recall_curve

    from skvqad.metrics._metrics import pooled_pixel_metrics

    rng = np.random.default_rng(seed)
    masks = rng.random((4, 20, 20)) < 0.15
    maps = np.round(rng.standard_normal((4, 20, 20)) + 1.5 * masks, 1)  # ties
    got = pooled_pixel_metrics(masks, maps, fpr_limit=0.3)
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert got["ROC-AUC"] == pytest.approx(expected, abs=1e-12)
    precision, recall, thresholds = precision_recall_curve(masks.ravel(), maps.ravel())
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-300)
    best = int(np.argmax(f1[:-1]))
    assert got["F1-max"] == pytest.approx(f1[best], abs=1e-12)
    assert got["F1-max threshold"] == thresholds[best]
    assert got["AUPRO"] == aupro(masks, maps, fpr_limit=0.3)
    assert 0 < got["AUPRO"] < 1


def test_metric_inputs_from_users_are_checked_or_converted():
    masks = np.zeros((1, 2, 4), dtype=bool)
    masks[0, 0] = True
    maps = np.arange(8, dtype=np.float64).reshape(1, 2, 4)[:, ::-1].copy()
    # Tensors that require gradients are read as arrays.
    tensor = torch.tensor(maps, requires_grad=True)
    assert pixel_roc_auc(masks, tensor) == pixel_roc_auc(masks, maps) == 1.0
    assert aupro(torch.from_numpy(masks), tensor) <= 1.0  # never above 1
    half = torch.from_numpy(maps).to(torch.bfloat16)  # exact in bfloat16
    assert pixel_roc_auc(masks, half) == 1.0
    with pytest.raises(ValueError, match="real numbers"):
        pixel_roc_auc(masks, maps.astype(complex))
    with pytest.raises(ValueError, match="real numbers"):
        pixel_roc_auc(masks, torch.from_numpy(maps.astype(complex)).conj())
    with pytest.raises(ValueError, match="got none"):
        pixel_roc_auc(np.zeros((0, 2, 4), bool), np.zeros((0, 2, 4)))
    for fpr_limit in (None, "0.3", True):
        with pytest.raises(TypeError, match="fpr_limit"):
            aupro(masks, maps, fpr_limit=fpr_limit)
        with pytest.raises(TypeError, match="fpr_limit"):
            PixelMetrics(fpr_limit=fpr_limit)
    # Streaming: compared in float32, so float64 beyond its range is refused
    # for tensors as for arrays, and complex maps are refused.
    huge = torch.tensor([[[1e300, 1e301]]], dtype=torch.float64)
    for values in (huge, huge.numpy()):
        with pytest.raises(ValueError, match="float32 range"):
            PixelMetrics().update(np.array([[[True, False]]]), values)
    with pytest.raises(ValueError, match="real"):
        PixelMetrics().update(masks, torch.from_numpy(maps).to(torch.complex64))
