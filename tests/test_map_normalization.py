"""Maps standardised per pixel by the training maps (``map_normalization``)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skvqad import VQVAEAnomalyDetector
from skvqad._anomaly_map import MAP_TYPES
from skvqad._fit_statistics import SCALE_FLOOR

from .conftest import TINY, brick_tiles, stripes


def _copy(detector, **params):
    """A fitted copy with other parameters, the original left alone."""
    other = clone(detector)
    other.__dict__.update(detector.__dict__)
    other.map_statistics_ = dict(detector.map_statistics_)
    return other.set_params(**params)


def test_statistics_are_the_per_pixel_mean_and_scale_of_training_maps(
    fitted_grey, grey_images
):
    raw = _copy(fitted_grey, map_normalization=None)
    for map_type in MAP_TYPES:
        train = raw.anomaly_map(grey_images, map_type=map_type).astype(np.float64)
        mean, sd = train.mean(axis=0), train.std(axis=0)
        scale = sd + SCALE_FLOOR * sd.mean()
        stats = fitted_grey.map_statistics_[map_type]
        assert stats.shape == (2, 32, 32) and stats.dtype == np.float32
        np.testing.assert_allclose(stats[0], mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(stats[1], scale, rtol=1e-3, atol=1e-6)
        # The maps the detector returns are the raw ones standardised.
        test = grey_images[:3]
        np.testing.assert_allclose(
            fitted_grey.anomaly_map(test, map_type=map_type),
            (raw.anomaly_map(test, map_type=map_type) - stats[0]) / stats[1],
            rtol=1e-4,
            atol=1e-4,
        )
    # On the training images themselves the maps average to 0 at every pixel.
    train_maps = fitted_grey.anomaly_map(grey_images)
    assert np.abs(train_maps.mean(axis=0)).max() < 1e-3


def _with_noisy_corner(n, seed):
    """Stripes whose top-left 10x10 corner is fresh noise in every image."""
    images = stripes(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    images[:, :10, :10] = rng.uniform(0, 1, size=(n, 10, 10))
    return images


def test_a_region_busy_on_every_normal_image_no_longer_outscores_a_defect():
    train = _with_noisy_corner(32, seed=0)
    detector = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 10}).fit(train)
    test = _with_noisy_corner(4, seed=7)
    test[:, 20:26, 20:26] = 1.0  # a small white defect in the stripes
    corner, defect = np.s_[:, :10, :10], np.s_[:, 20:26, 20:26]
    raw = _copy(detector, map_normalization=None).anomaly_map(test)
    standardised = detector.anomaly_map(test)
    # Raw, the noise nobody can reconstruct is as hot as the defect or hotter;
    # standardised by what the training maps do there, the defect stands out.
    # (Here: raw 0.43 against 0.38; standardised 3.0 against |z| 1.1.)
    raw_ratio = raw[defect].mean() / raw[corner].mean()
    ratio = standardised[defect].mean() / np.abs(standardised[corner]).mean()
    assert raw_ratio < 2
    assert ratio > 2 and ratio > 2 * raw_ratio
    # No standardised image peaks in the corner.
    peaks = standardised.reshape(4, -1).argmax(axis=1)
    assert not ((peaks // 32 < 10) & (peaks % 32 < 10)).any()


def test_other_image_sizes_use_the_statistics_resized(fitted_grey, grey_images):
    big = np.concatenate([grey_images[:2], grey_images[2:4]], axis=1)  # 64 x 32
    maps = fitted_grey.anomaly_map(big, map_type="ssim")
    raw = _copy(fitted_grey, map_normalization=None).anomaly_map(big, map_type="ssim")
    stats = torch.from_numpy(fitted_grey.map_statistics_["ssim"])[None]
    stats = torch.nn.functional.interpolate(stats, size=(64, 32), mode="bilinear")[0]
    assert maps.shape == (2, 64, 32)
    np.testing.assert_allclose(
        maps, (raw - stats[0].numpy()) / stats[1].numpy(), rtol=1e-4, atol=1e-4
    )


def test_one_training_image_gives_unit_scale_and_finite_maps(grey_images):
    with pytest.warns(UserWarning, match="do not vary") as caught:
        detector = VQVAEAnomalyDetector(**{**TINY, "batch_size": 1})
        detector.fit(grey_images[:1])
    assert caught[0].filename == __file__
    for map_type in MAP_TYPES:
        np.testing.assert_array_equal(detector.map_statistics_[map_type][1], 1.0)
    maps = detector.anomaly_map(grey_images[1:3])
    assert np.isfinite(maps).all()
    assert np.isfinite(detector.offset_)


def test_changed_map_parameters_warn_that_the_statistics_are_stale(
    fitted_grey, grey_images
):
    detector = _copy(fitted_grey, dilation_size=5)
    with pytest.warns(UserWarning, match="dilation_size") as caught:
        detector.anomaly_map(grey_images[:2])
    assert caught[0].filename == __file__  # points at the caller, not skvqad
    # Scoring parameters and the normalisation itself change no statistics.
    same = _copy(fitted_grey, score_pooling="max", map_normalization=None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.score_samples(grey_images[:2])
        same.set_params(map_normalization="per_pixel").score_samples(grey_images[:2])
    # A refit makes them current: no warning.
    refit = clone(fitted_grey).set_params(dilation_size=5).fit(grey_images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refit.anomaly_map(grey_images[:2])
    assert refit.map_statistics_settings_["dilation_size"] == 5


def test_paper_setting_has_no_normalisation_and_nonnegative_maps(
    fitted_grey, grey_images
):
    raw = _copy(fitted_grey, map_normalization=None)
    for map_type in MAP_TYPES:
        assert (raw.anomaly_map(grey_images[:3], map_type=map_type) >= 0).all()
    with pytest.raises(ValueError, match="map_normalization"):
        clone(fitted_grey).set_params(map_normalization="per_image").fit(grey_images)


def _border_and_interior(maps, width=3):
    """Mean |map| in the outer ``width`` pixels and inside them."""
    border = np.ones(maps.shape[1:], bool)
    border[width:-width, width:-width] = False
    return np.abs(maps[:, border]).mean(), np.abs(maps[:, ~border]).mean()


def test_normal_borders_score_like_interiors():
    # Raw, the SSIM window and the decoder's edges make the border of every
    # normal brick tile hotter than its inside (here 1.9x); standardised by
    # the training maps, border and inside read alike (1.03x).
    train = brick_tiles(48, size=32, rows=(0, 80), seed=0)
    settings = {**TINY, "max_epochs": 20, "hidden_channels": 16, "lr": 3e-3}
    detector = VQVAEAnomalyDetector(**settings).fit(train)
    test = brick_tiles(8, size=32, rows=(80, 128), seed=1)  # other tiles
    border, inside = _border_and_interior(
        _copy(detector, map_normalization=None).anomaly_map(test, map_type="ssim")
    )
    assert border > 1.5 * inside
    for map_type in ("ssim", "ssim+am"):
        border, inside = _border_and_interior(
            detector.anomaly_map(test, map_type=map_type)
        )
        assert border < 1.3 * inside, map_type
    # Larger tiles use the statistics resized: still alike (1.04x).
    border, inside = _border_and_interior(
        detector.anomaly_map(brick_tiles(4, size=48, rows=(80, 128), seed=2))
    )
    assert border < 1.3 * inside


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_fit_runs_the_network_once_over_an_array_with_the_same_results(
    monkeypatch, dtype
):
    """The outputs of the first pass after training are kept for the maps of
    the second; the statistics, calibration and threshold are those of two
    passes, exactly."""
    from skvqad import _fit_statistics
    from skvqad._model import VQVAE

    X = brick_tiles(10, size=16, seed=3)
    X = (X * 255).round().astype(np.uint8) if dtype == np.uint8 else X
    params = {**TINY, "max_epochs": 1, "random_state": 0, "batch_size": 4}
    runs = []
    original_run = VQVAE.run

    def counted(self, x):
        if not self.training:
            runs.append(len(x))
        return original_run(self, x)

    monkeypatch.setattr(VQVAE, "run", counted)
    once = VQVAEAnomalyDetector(**params).fit(X)
    assert sum(runs) == len(X)  # one forward pass over the training images
    runs.clear()
    monkeypatch.setattr(_fit_statistics, "KEPT_OUTPUT_BYTES", 0)
    twice = VQVAEAnomalyDetector(**params).fit(X)
    assert sum(runs) == 2 * len(X)
    assert once.offset_ == twice.offset_
    np.testing.assert_array_equal(
        once.reconstruction_calibration_, twice.reconstruction_calibration_
    )
    np.testing.assert_array_equal(once.code_alignment_, twice.code_alignment_)
    for map_type in MAP_TYPES:
        np.testing.assert_array_equal(
            once.map_statistics_[map_type], twice.map_statistics_[map_type]
        )
    np.testing.assert_array_equal(once.score_samples(X), twice.score_samples(X))
