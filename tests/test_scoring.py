"""Image scores, the calibrated reconstruction and the template baseline (issue 17)."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.isotonic import IsotonicRegression

from skvqad import TemplateAnomalyDetector, VQVAEAnomalyDetector
from skvqad._anomaly_map import calibrate
from skvqad._benchmark import template_baseline
from skvqad._model import CALIBRATION_KNOTS
from skvqad._scoring import pool_maps

from .conftest import TINY


def test_gaussian_max_pooling_is_the_peak_of_the_smoothed_map():
    maps = np.zeros((3, 40, 40))
    maps[0, 5, 5] = 1.0  # one hot pixel
    maps[1, 10:20, 10:20] = 0.2  # a patch: a lower peak, a larger area
    scores = pool_maps(maps, "gaussian_max", sigma=3.0)
    expected = [ndimage.gaussian_filter(m, 3.0, mode="reflect").max() for m in maps]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)  # smoothed in float32
    # The patch outranks the single pixel once smoothed; not under "max".
    assert scores[1] > scores[0] > scores[2] == 0.0
    assert pool_maps(maps, "max")[0] > pool_maps(maps, "max")[1]


def test_gaussian_contrast_is_the_smoothed_peak_above_the_lower_quartile():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(4, 48, 48)).astype(np.float32)
    scores = pool_maps(maps, "gaussian_contrast", sigma=2.0)
    smooth = [ndimage.gaussian_filter(m, 2.0, mode="reflect") for m in maps]
    # The lower quartile as the ceil(0.25 n)-th smallest value (no interpolation).
    k = int(np.ceil(0.25 * 48 * 48))
    expected = [s.max() - np.sort(s.ravel())[k - 1] for s in smooth]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    # A map raised everywhere scores as before; a local defect raises the score.
    shifted = pool_maps(maps + 5.0, "gaussian_contrast", sigma=2.0)
    np.testing.assert_allclose(shifted, scores, atol=1e-4)
    defect = maps.copy()
    defect[:, 20:28, 20:28] += 3.0
    assert (pool_maps(defect, "gaussian_contrast", sigma=2.0) > scores).all()
    # Under "gaussian_max" the raised map outscores the local defect.
    raised = pool_maps(maps + 5.0, "gaussian_max", 2.0)
    assert (raised > pool_maps(defect, "gaussian_max", 2.0)).all()
    # Tensors in, a tensor out, as for the other poolings.
    tensor = pool_maps(torch.from_numpy(maps), "gaussian_contrast", sigma=2.0)
    np.testing.assert_allclose(tensor.numpy(), scores, rtol=1e-6)


def test_calibrate_interpolates_the_table_per_channel():
    knots = np.linspace(0, 1, CALIBRATION_KNOTS)
    table = torch.tensor(np.stack([knots**2, 1 - knots]), dtype=torch.float32)
    recon = torch.rand(4, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    out = calibrate(recon, table)
    torch.testing.assert_close(out[:, 0], recon[:, 0] ** 2, atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 1], 1 - recon[:, 1], atol=1e-6, rtol=0)


def _banded(n, seed):
    """Textured images with a black band (rows 0-13) that is black in every image."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.uniform(size=(n, 32, 32)), (0, 1, 1))
    x = 0.35 + 0.3 * (x - x.min()) / (x.max() - x.min())
    x[:, :14] = 0.0
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def banded_detector():
    train = _banded(48, seed=0)
    settings = {**TINY, "max_epochs": 30, "hidden_channels": 16, "lr": 3e-3}
    detector = VQVAEAnomalyDetector(**settings)
    return detector.fit(train)


def test_normal_black_region_scores_far_below_a_pasted_defect(banded_detector):
    test = _banded(4, seed=1)
    test[:, 18:26, 18:26] = 1.0  # a pasted white square in the texture
    # The band's inside, 4 pixels from the image border and from the texture
    # (borders and edges are another matter: issue 18).
    band, defect = np.s_[:, 4:10, 4:28], np.s_[:, 19:25, 19:25]
    # Raw maps (>= 0) and maps standardised by the training maps (about 0
    # where normal, so compared in absolute value): both 10x apart.
    for normalization in (None, "per_pixel"):
        banded_detector.set_params(map_normalization=normalization)
        for map_type in ("ssim", "ssim+am"):
            maps = banded_detector.anomaly_map(test, map_type=map_type)
            assert maps[defect].mean() > 10 * np.abs(maps[band]).mean(), map_type
    # The calibration is what brings the raw band down: without it, SSIM's
    # luminance term calls the grey reconstruction of black anomalous.
    raw = banded_detector.set_params(
        reconstruction_calibration=None, map_normalization=None
    )
    maps = raw.anomaly_map(test, map_type="ssim")
    banded_detector.set_params(
        reconstruction_calibration="isotonic", map_normalization="per_pixel"
    )
    assert maps[band].mean() > 0.3


def test_calibration_tables_are_isotonic_fits_of_the_training_pixels(banded_detector):
    tables = banded_detector.reconstruction_calibration_
    assert tables.shape == (2, 1, CALIBRATION_KNOTS) and tables.dtype == np.float32
    assert np.all(np.diff(tables, axis=-1) >= 0)
    assert 0 <= tables.min() <= tables.max() <= 1
    # Refit by hand on every training pixel: same curve up to the subsample.
    train = _banded(48, seed=0)
    recon = banded_detector.set_params(reconstruction_calibration=None).reconstruct(
        train
    )
    banded_detector.set_params(reconstruction_calibration="isotonic")
    isotonic = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")
    isotonic.fit(recon.ravel(), train.ravel())
    knots = np.linspace(0, 1, CALIBRATION_KNOTS)
    inside = (knots > recon.min()) & (knots < recon.max())
    np.testing.assert_allclose(
        tables[0, 0][inside], isotonic.predict(knots)[inside], atol=0.02
    )


def test_reconstruct_returns_the_calibrated_reconstruction(banded_detector):
    test = _banded(2, seed=2)
    calibrated = banded_detector.reconstruct(test)
    raw = banded_detector.set_params(reconstruction_calibration=None).reconstruct(test)
    banded_detector.set_params(reconstruction_calibration="isotonic")
    # The continuous Bernoulli mean, computed from the logit, falls below
    # torch's float32 floor (0.0627) on the black band; the calibration
    # brings it closer still to the band's 0.
    assert raw[:, 4:10].mean() < 0.0627
    assert calibrated[:, 4:10].mean() < raw[:, 4:10].mean()


def test_template_detector_is_one_minus_ssim_against_the_mean_image():
    from skvqad import ssim_map

    train = _banded(10, seed=0)
    test = _banded(3, seed=5)
    test[0, 20:28, 20:28] = 1.0
    baseline = TemplateAnomalyDetector(device="cpu").fit(train)
    template = train.mean(axis=0, dtype=np.float64).astype(np.float32)
    np.testing.assert_allclose(baseline.template_[..., 0], template, rtol=1e-6)
    expected = 1 - ssim_map(
        torch.from_numpy(test)[:, None],
        torch.from_numpy(np.broadcast_to(template, test.shape).copy())[:, None],
        data_range=1.0,
    )
    np.testing.assert_allclose(baseline.anomaly_map(test), expected.numpy(), atol=1e-6)
    scores = baseline.score_samples(test)
    np.testing.assert_allclose(scores, -expected.numpy().mean(axis=(1, 2)), rtol=1e-5)
    assert scores[0] < scores[1:].min()  # the pasted square is the outlier
    assert baseline.predict(test).shape == (3,)


def test_template_detector_rejects_bad_input():
    baseline = TemplateAnomalyDetector(device="cpu").fit(_banded(4, seed=0))
    with pytest.raises(ValueError, match="template"):
        baseline.anomaly_map(np.zeros((2, 16, 16), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        baseline.anomaly_map(np.full((1, 32, 32), np.nan, np.float32))
    with pytest.raises(ValueError, match="odd"):
        TemplateAnomalyDetector(ssim_win_size=4).fit(_banded(4, seed=0))


def test_huge_score_sigma_costs_no_more_than_the_map():
    maps = np.random.default_rng(0).uniform(size=(2, 16, 16))
    wide = pool_maps(maps, "gaussian_max", sigma=1e6)
    # As good as a uniform blur: the peak of a nearly flat map, near its mean.
    np.testing.assert_allclose(wide, maps.mean(axis=(1, 2)), atol=0.02)
    with pytest.raises(ValueError, match="sigma"):
        pool_maps(maps, "gaussian_max", sigma=0.0)


def test_crop_size_is_checked_before_training(grey_images):
    for bad in (6, 2):  # not a multiple of 4; below 2 x 4
        detector = VQVAEAnomalyDetector(**{**TINY, "crop_size": bad})
        with pytest.raises(ValueError, match="crop_size must be a multiple"):
            detector.fit(grey_images)
        assert not hasattr(detector, "net_")  # nothing was trained


def test_template_detector_checks_parameters_set_after_fit():
    baseline = TemplateAnomalyDetector(device="cpu").fit(_banded(4, seed=0))
    baseline.set_params(batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        baseline.score_samples(_banded(2, seed=1))


def test_weights_saved_without_a_calibration_table_still_load(banded_detector):
    from skvqad import VQVAE

    state = banded_detector.net_.module_.state_dict()
    del state["calibration"]
    module = VQVAE(in_channels=1, hidden_channels=16, n_embeddings=16,
                   embedding_dim=4, n_downsampling=2, n_residual_layers=1,
                   ema_decay=0.99)  # fmt: skip
    module.load_state_dict(state)
    identity = torch.linspace(0, 1, CALIBRATION_KNOTS).expand(2, 1, -1)
    torch.testing.assert_close(module.calibration, identity)


def test_benchmark_template_keeps_its_own_ssim_whatever_the_detector(
    banded_detector,
):
    before = banded_detector.get_params()
    detector = banded_detector.set_params(ssim_k2=0.2, score_pooling="gaussian_max")
    try:
        train = _banded(6, 3)[..., None]
        baseline = template_baseline(detector, train)
        # The definition: K 0.01 / 0.03, pooled like the detector.
        assert (baseline.ssim_k1, baseline.ssim_k2) == (0.01, 0.03)
        assert baseline.score_pooling == "gaussian_max"
        reference = TemplateAnomalyDetector(score_pooling="gaussian_max").fit(train)
        np.testing.assert_allclose(
            baseline.score_samples(train), reference.score_samples(train)
        )
    finally:
        detector.set_params(
            ssim_k2=before["ssim_k2"], score_pooling=before["score_pooling"]
        )
