"""The estimator: shapes, dtypes, the outlier contract, determinism, bad input."""

import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from skorch.callbacks import Callback

from skvqad import VQVAEAnomalyDetector, ssim_map

from .conftest import TINY, brick_tiles, paste_square, stripes


def test_fit_returns_self_and_sets_fitted_state(grey_images):
    detector = VQVAEAnomalyDetector(**TINY)
    assert detector.fit(grey_images) is detector
    assert detector.n_channels_ == 1
    assert detector.image_shape_ == (32, 32)
    assert not hasattr(detector, "n_features_in_")
    assert 0.0 < detector.codebook_usage_ <= 1.0
    assert len(detector.net_.history) == TINY["max_epochs"]
    assert detector.net_.module_.codebook.shape == (16, 4)


def test_output_shapes_and_dtypes(fitted_grey, grey_images):
    X = grey_images[:5]
    maps = fitted_grey.anomaly_map(X)
    assert maps.shape == (5, 32, 32) and maps.dtype == np.float32
    # Standardised per pixel by default: centred on the training maps.
    assert (maps < 0).any() and (maps > 0).any()
    scores = fitted_grey.score_samples(X)
    assert scores.shape == (5,) and scores.dtype == np.float64
    # The default image score: the peak of the Gaussian-smoothed map above
    # its lower quartile (the ceil(n / 4)-th smallest smoothed value).
    assert fitted_grey.score_pooling == "gaussian_contrast"
    sigma = fitted_grey.score_sigma
    smoothed = ndimage.gaussian_filter(maps.astype(np.float64), (0, sigma, sigma))
    flat = np.sort(smoothed.reshape(len(X), -1), axis=1)
    quartile = flat[:, int(np.ceil(flat.shape[1] / 4)) - 1]
    np.testing.assert_allclose(scores, quartile - flat[:, -1], rtol=1e-4, atol=1e-5)
    fitted_grey.set_params(score_pooling="mean")
    try:
        mean_scores = fitted_grey.score_samples(X)
    finally:
        fitted_grey.set_params(score_pooling="gaussian_contrast")
    np.testing.assert_allclose(mean_scores, -maps.mean(axis=(1, 2)), rtol=1e-5)
    labels = fitted_grey.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    assert np.issubdtype(labels.dtype, np.integer)


def test_outlier_contract(fitted_grey, grey_images):
    X_bad, _ = paste_square(grey_images[:6])
    X = np.concatenate([grey_images[:6], X_bad])
    scores = fitted_grey.score_samples(X)
    np.testing.assert_allclose(
        fitted_grey.decision_function(X), scores - fitted_grey.offset_
    )
    np.testing.assert_array_equal(
        fitted_grey.predict(X), np.where(scores < fitted_grey.offset_, -1, 1)
    )


def test_contamination_sets_fraction_of_training_outliers(grey_images):
    detector = VQVAEAnomalyDetector(**TINY, contamination=0.25).fit(grey_images)
    share = np.mean(detector.predict(grey_images) == -1)
    assert share == pytest.approx(0.25, abs=1 / len(grey_images))
    train_scores = detector.score_samples(grey_images)
    assert detector.offset_ == pytest.approx(np.percentile(train_scores, 25))


def test_pasted_square_scores_as_more_anomalous():
    train = brick_tiles(48, rows=(0, 80), seed=0)
    # 32-pixel tiles: a smoothing of 2 px, so that the default score's floor
    # (the smoothed map's lower quartile) is not raised by the 8-px square's
    # blur (score_sigma's docstring: images of at least 8 sigma a side).
    detector = VQVAEAnomalyDetector(
        **{**TINY, "max_epochs": 20, "hidden_channels": 16, "lr": 1e-3},
        score_sigma=2.0,
    ).fit(train)
    clean = brick_tiles(8, rows=(80, 128), seed=1)  # rows unseen in training
    defective, mask = paste_square(clean)
    for map_type in ("ssim+am", "ssim", "am"):
        detector.set_params(anomaly_map_type=map_type)
        assert (
            detector.score_samples(defective) < detector.score_samples(clean)
        ).all(), map_type
        maps = detector.anomaly_map(defective)
        assert roc_auc_score(mask.ravel(), maps.ravel()) > 0.85, map_type


@pytest.mark.parametrize("shape", [(30, 30), (39, 25), (64, 48), (5, 7)])
def test_any_image_size_gives_maps_of_that_size(shape):
    rng = np.random.default_rng(0)
    X = rng.uniform(0.3, 0.7, size=(4,) + shape).astype(np.float32)
    detector = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1}).fit(X)
    assert detector.anomaly_map(X).shape == (4,) + shape
    assert detector.reconstruct(X).shape == (4,) + shape + (1,)
    assert np.isfinite(detector.score_samples(X)).all()


def test_rgb_images():
    X = stripes(12, channels=3, seed=5)
    detector = VQVAEAnomalyDetector(**TINY).fit(X)
    assert detector.n_channels_ == 3
    assert detector.anomaly_map(X).shape == (12, 32, 32)
    recon = detector.reconstruct(X[:2])
    assert recon.shape == (2, 32, 32, 3)
    assert 0 <= recon.min() and recon.max() <= 1
    with pytest.raises(ValueError, match="channel"):
        detector.score_samples(X[..., 0])


def test_ssim_channel_reduction_of_colour_images():
    X = stripes(8, channels=3, seed=6)
    detector = VQVAEAnomalyDetector(
        **{**TINY, "anomaly_map_type": "ssim", "map_normalization": None}
    ).fit(X)
    x = torch.from_numpy(X[:3]).movedim(-1, 1)
    recon = torch.from_numpy(detector.reconstruct(X[:3])).movedim(-1, 1)
    maps = {}
    for reduction in ("mean", "min", "luminance"):
        detector.set_params(ssim_channel_reduction=reduction)
        maps[reduction] = detector.anomaly_map(X[:3])
        expected = 1 - ssim_map(
            x, recon, data_range=1.0, K2=detector.ssim_k2, channel_reduction=reduction
        )
        np.testing.assert_allclose(maps[reduction], expected.numpy(), atol=1e-5)
    # The worst channel is never better reconstructed than the mean channel.
    assert (maps["min"] >= maps["mean"] - 1e-6).all()
    assert not np.allclose(maps["luminance"], maps["mean"])
    four = np.repeat(X[..., :1], 4, axis=-1)
    detector.set_params(ssim_channel_reduction="luminance")
    with pytest.raises(ValueError, match="fitted on images with 3 channel"):
        detector.score_samples(four)  # the real problem, not the reduction
    with pytest.raises(ValueError, match="1 or 3 channels"):
        VQVAEAnomalyDetector(**{**TINY, "ssim_channel_reduction": "luminance"}).fit(
            four
        )


def test_ssim_map_type_is_one_minus_ssim_of_reconstruction(fitted_grey, grey_images):
    detector = clone(fitted_grey)
    detector.__dict__.update(vars(fitted_grey))
    detector.set_params(anomaly_map_type="ssim", map_normalization=None)
    X = grey_images[:3]
    recon = detector.reconstruct(X)
    expected = 1 - ssim_map(
        torch.from_numpy(X[:, None]),
        torch.from_numpy(recon).movedim(-1, 1),
        data_range=1.0,
        K2=detector.ssim_k2,
    )
    np.testing.assert_allclose(detector.anomaly_map(X), expected.numpy(), atol=1e-6)


def test_map_does_not_depend_on_the_batch(fitted_grey, grey_images):
    X, _ = paste_square(grey_images[:10])
    together = fitted_grey.anomaly_map(X)
    alone = np.concatenate([fitted_grey.anomaly_map(X[i : i + 1]) for i in range(3)])
    # Standardised maps divide float32 rounding by the per-pixel scale.
    np.testing.assert_allclose(together[:3], alone, rtol=1e-4, atol=1e-4)


def test_reproducible_and_leaves_global_rng_alone(grey_images):
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    a = VQVAEAnomalyDetector(**TINY).fit(grey_images).score_samples(grey_images)
    b = VQVAEAnomalyDetector(**TINY).fit(grey_images).score_samples(grey_images)
    np.testing.assert_array_equal(a, b)
    c = VQVAEAnomalyDetector(**{**TINY, "random_state": 1}).fit(grey_images)
    assert not np.array_equal(a, c.score_samples(grey_images))
    assert torch.equal(torch.get_rng_state(), torch_state)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)


def test_uint8_and_uint16_are_scaled(fitted_grey, grey_images):
    as_uint8 = np.round(grey_images[:3] * 255).astype(np.uint8)
    np.testing.assert_allclose(
        fitted_grey.anomaly_map(as_uint8),
        fitted_grey.anomaly_map(as_uint8.astype(np.float32) / 255),
        rtol=1e-6,
    )
    as_uint16 = as_uint8.astype(np.uint16) * 257  # 255 -> 65535
    np.testing.assert_allclose(
        fitted_grey.anomaly_map(as_uint16),
        fitted_grey.anomaly_map(as_uint8),
        rtol=1e-5,
        atol=1e-7,
    )


def test_user_arrays_are_not_modified(grey_images):
    X = grey_images.copy()
    X.setflags(write=False)
    detector = VQVAEAnomalyDetector(**TINY).fit(X)
    detector.anomaly_map(X)
    detector.reconstruct(X)
    np.testing.assert_array_equal(X, grey_images)


def test_two_dimensional_input_is_rows_of_pixels():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=5, scale=3, size=(10, 6))  # tabular: any real values
    detector = VQVAEAnomalyDetector(**TINY).fit(X)
    assert detector.n_features_in_ == 6
    assert detector.anomaly_map(X).shape == (10, 1, 6)
    np.testing.assert_allclose(detector.scaler_.data_min_, X.min(axis=0))
    with pytest.raises(ValueError, match="fitted on 2-D"):
        detector.score_samples(np.zeros((2, 4, 6)))
    with pytest.raises(ValueError, match="features"):
        detector.score_samples(X[:, :5])


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.full((2, 8, 8), np.nan, dtype=np.float32), ValueError, "NaN"),
        (np.full((2, 8, 8), np.inf, dtype=np.float32), ValueError, "infinity"),
        (np.full((2, 8, 8), 2.0), ValueError, r"\[0, 1\]"),
        (np.full((2, 8, 8), -0.1), ValueError, r"\[0, 1\]"),
        (np.zeros((2, 8, 8, 1, 1)), ValueError, "5-D"),
        (np.zeros(5), ValueError, r"must be images \(n_samples, height"),
        (np.zeros((0, 8, 8)), ValueError, "0 sample"),
        (np.zeros((2, 8, 8), dtype=np.int32), TypeError, "int32"),
        ([np.zeros((8, 8)), np.zeros((8, 9))], ValueError, "mixed sizes"),
    ],
)
def test_bad_input_is_rejected_clearly(X, error, match):
    with pytest.raises(error, match=match):
        VQVAEAnomalyDetector(**TINY).fit(X)


def test_not_fitted_and_bad_parameters(grey_images):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VQVAEAnomalyDetector().anomaly_map(grey_images)
    with pytest.raises(ValueError, match="anomaly_map_type"):
        VQVAEAnomalyDetector(anomaly_map_type="l2").fit(grey_images)
    with pytest.raises(ValueError, match="contamination"):
        VQVAEAnomalyDetector(contamination=0.7).fit(grey_images)


def test_clone_and_params():
    detector = VQVAEAnomalyDetector(beta=0.5, dilation_size=9)
    params = clone(detector).get_params()
    assert params["beta"] == 0.5 and params["dilation_size"] == 9
    assert params["optimizer"] is torch.optim.Adam


def test_device_errors_are_clear(grey_images):
    with pytest.raises(ValueError, match="not a torch device"):
        VQVAEAnomalyDetector(**TINY, device="gpu").fit(grey_images)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            VQVAEAnomalyDetector(**TINY, device="cuda").fit(grey_images)


def test_single_training_image():
    X = stripes(1, size=8)
    with pytest.warns(UserWarning, match="do not vary"):
        detector = VQVAEAnomalyDetector(**TINY).fit(X)
    assert detector.anomaly_map(X).shape == (1, 8, 8)
    assert np.isfinite(detector.offset_)


def test_numpy_integer_parameters_work(grey_images):
    detector = VQVAEAnomalyDetector(
        **{**TINY, "batch_size": np.int64(4), "max_epochs": np.int32(1)}
    ).fit(grey_images)
    assert detector.score_samples(grey_images[:5]).shape == (5,)


def test_diverged_training_is_an_error(grey_images):
    with pytest.raises(ValueError, match="diverged"):
        VQVAEAnomalyDetector(**{**TINY, "lr": 1e6, "max_epochs": 3}).fit(grey_images)


def test_empty_image_dimensions_are_rejected():
    for shape in [(4, 0, 16), (4, 16, 16, 0)]:
        for dtype in (np.float32, np.uint8):
            with pytest.raises(ValueError, match="empty dimension"):
                VQVAEAnomalyDetector(**TINY).fit(np.zeros(shape, dtype))


def test_parameters_changed_after_fit(fitted_grey, grey_images):
    detector = clone(fitted_grey)
    detector.__dict__.update(vars(fitted_grey))
    before = detector.anomaly_map(grey_images[:2])
    detector.set_params(anomaly_map_type="bogus")
    with pytest.raises(ValueError, match="anomaly_map_type"):
        detector.anomaly_map(grey_images[:2])
    # Architecture parameters only matter at fit: the fitted network is used.
    detector.set_params(anomaly_map_type="ssim+am", n_downsampling=3)
    np.testing.assert_array_equal(detector.anomaly_map(grey_images[:2]), before)


def test_even_ssim_window_fails_before_training(grey_images):
    with pytest.raises(ValueError, match="odd"):
        VQVAEAnomalyDetector(**{**TINY, "max_epochs": 10_000, "ssim_win_size": 8}).fit(
            grey_images
        )


def test_reproducible_when_fitted_in_parallel_threads(grey_images):
    from joblib import Parallel, delayed

    X = grey_images[:16]
    reference = VQVAEAnomalyDetector(**TINY).fit(X).score_samples(X)

    def fit_and_score():
        return VQVAEAnomalyDetector(**TINY).fit(X).score_samples(X)

    results = Parallel(n_jobs=4, backend="threading")(
        delayed(fit_and_score)() for _ in range(8)
    )
    for scores in results:
        np.testing.assert_array_equal(scores, reference)


def test_codebook_health_is_recorded(fitted_grey):
    perplexity = fitted_grey.net_.history[:, "perplexity"]
    assert len(perplexity) == TINY["max_epochs"]
    assert all(1.0 <= p <= TINY["n_embeddings"] for p in perplexity)
    used = fitted_grey.codebook_usage_ * TINY["n_embeddings"]
    assert used == pytest.approx(round(used))  # a whole number of codes


class _CtrlCAtEpoch2(Callback):
    """Presses Ctrl-C at the end of the second epoch."""

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == 2:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_a_fitted_detector_and_is_not_cached(grey_images, tmp_path):
    params = {**TINY, "max_epochs": 5, "memory": str(tmp_path)}
    detector = VQVAEAnomalyDetector(**params, callbacks=[_CtrlCAtEpoch2()])
    with pytest.warns(UserWarning, match="stopped after 2 of 5 epochs") as caught:
        detector.fit(grey_images)
    # The warning names the user's line, not scikit-learn's fit wrapper.
    assert [w.filename for w in caught if "stopped" in str(w.message)] == [__file__]
    assert len(detector.net_.history) == 2
    assert np.isfinite(detector.score_samples(grey_images)).all()
    assert not list(tmp_path.glob("joblib/**/output.pkl"))  # nothing cached


def test_checkpoint_resumes_training(grey_images, tmp_path):
    from skorch.callbacks import Checkpoint, LoadInitState

    def callbacks():
        checkpoint = Checkpoint(dirname=str(tmp_path), monitor="train_loss_best")
        return [checkpoint, LoadInitState(checkpoint)]

    first = VQVAEAnomalyDetector(**TINY, callbacks=callbacks()).fit(grey_images)
    assert len(first.net_.history) == 2
    resumed = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1}, callbacks=callbacks())
    resumed.fit(grey_images)
    assert len(resumed.net_.history) == 3  # 2 restored + 1 new epoch


def test_model_saved_on_cuda_loads_on_cpu(fitted_grey, grey_images, monkeypatch):
    import pickle

    expected = fitted_grey.score_samples(grey_images)
    detector = pickle.loads(pickle.dumps(fitted_grey))
    detector.net_.device = "cuda"  # as if it had been trained on a GPU
    blob = pickle.dumps(detector)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA"):
        loaded = pickle.loads(blob)
    assert str(loaded.net_.device) == "cpu"
    np.testing.assert_allclose(loaded.score_samples(grey_images), expected, atol=1e-4)


def test_memmap_input_is_read_not_written(grey_images, tmp_path):
    path = tmp_path / "images.dat"
    memmap = np.memmap(path, dtype=np.float32, mode="w+", shape=grey_images.shape)
    memmap[:] = grey_images
    memmap.flush()
    readonly = np.memmap(path, dtype=np.float32, mode="r", shape=grey_images.shape)
    detector = VQVAEAnomalyDetector(**TINY).fit(readonly)
    np.testing.assert_array_equal(
        detector.anomaly_map(readonly), detector.anomaly_map(grey_images)
    )
    np.testing.assert_array_equal(np.asarray(readonly), grey_images)


def test_network_parameters_save_and_load(fitted_grey, grey_images, tmp_path):
    path = tmp_path / "vqvae.pt"
    fitted_grey.net_.save_params(f_params=str(path))
    other = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1, "random_state": 5})
    other.fit(grey_images)
    assert not np.array_equal(
        other.anomaly_map(grey_images[:2]), fitted_grey.anomaly_map(grey_images[:2])
    )
    other.net_.load_params(f_params=str(path))
    # The weights carry the network and its calibration; the per-pixel map
    # statistics belong to the detector (pickle it to keep them).
    raw = {}
    for name, detector in (("other", other), ("fitted", fitted_grey)):
        detector.set_params(map_normalization=None)
        try:
            raw[name] = detector.anomaly_map(grey_images[:2])
        finally:
            detector.set_params(map_normalization="per_pixel")
    np.testing.assert_array_equal(raw["other"], raw["fitted"])


def _forward(detector, images):
    x = torch.from_numpy(np.asarray(images, np.float32)[:, None])
    detector.net_.module_.eval()
    with torch.no_grad():
        return detector.net_.module_(x)


def test_code_alignment_is_the_mean_training_am_per_code(fitted_grey, grey_images):
    out = _forward(fitted_grey, grey_images)
    idx, am = out.indices.reshape(-1), out.alignment.reshape(-1).double()
    expected = np.full(TINY["n_embeddings"], float(am.mean()))
    for code in idx.unique().tolist():
        expected[code] = float(am[idx == code].mean())
    np.testing.assert_allclose(fitted_grey.code_alignment_, expected, rtol=1e-5)
    assert fitted_grey.codebook_usage_ == pytest.approx(
        len(idx.unique()) / TINY["n_embeddings"]
    )


def test_per_code_normalised_am_divides_by_the_code_means(fitted_grey, grey_images):
    from skvqad import upsample_alignment_map

    detector = clone(fitted_grey)
    detector.__dict__.update(fitted_grey.__dict__)  # same fitted state
    out = _forward(fitted_grey, grey_images[:3])
    raw = out.alignment
    normalised = raw / torch.from_numpy(fitted_grey.code_alignment_)[out.indices]
    expected = {}
    for name, am in (("per_code", normalised), (None, raw)):
        expected[name] = upsample_alignment_map(
            am,
            output_size=(32, 32),
            scale_factor=4,
            upsampling="nearest",
            dilation_size=TINY["dilation_size"],
        ).numpy()
    for name in ("per_code", None):
        detector.set_params(
            anomaly_map_type="am", alignment_normalization=name,
            alignment_distance="squared", map_normalization=None,
        )  # fmt: skip
        np.testing.assert_allclose(
            detector.anomaly_map(grey_images[:3]), expected[name], rtol=1e-5
        )
    assert not np.allclose(expected["per_code"], expected[None])


def test_euclidean_alignment_distance_is_the_root_after_normalisation(
    fitted_grey, grey_images
):
    detector = clone(fitted_grey)
    detector.__dict__.update(fitted_grey.__dict__)
    maps = {}
    for distance in ("squared", "euclidean"):
        for norm in ("per_code", None):
            detector.set_params(
                anomaly_map_type="am", alignment_normalization=norm,
                alignment_distance=distance, map_normalization=None,
            )  # fmt: skip
            maps[distance, norm] = detector.anomaly_map(grey_images[:3])
    for norm in ("per_code", None):
        # Nearest upsampling and max-dilation commute with the square root.
        np.testing.assert_allclose(
            maps["euclidean", norm], np.sqrt(maps["squared", norm]), rtol=1e-5
        )
    detector.set_params(anomaly_map_type="ssim+am", alignment_distance="euclidean")
    product = detector.anomaly_map(grey_images[:3])
    detector.set_params(anomaly_map_type="ssim")
    ssim = detector.anomaly_map(grey_images[:3])
    np.testing.assert_allclose(product, ssim * maps["euclidean", None], rtol=1e-4)


def test_reconstruction_probs_is_the_sigmoid_of_the_logits(fitted_grey, grey_images):
    detector = clone(fitted_grey)
    detector.__dict__.update(fitted_grey.__dict__)
    detector.set_params(reconstruction="probs", reconstruction_calibration=None)
    logits = _forward(fitted_grey, grey_images[:2]).logits
    np.testing.assert_allclose(
        detector.reconstruct(grey_images[:2])[..., 0],
        torch.sigmoid(logits)[:, 0].numpy(),
        rtol=1e-6,
    )
    mean = fitted_grey.reconstruct(grey_images[:2])
    assert not np.allclose(mean, detector.reconstruct(grey_images[:2]))


def test_max_pooling_and_ssim_constants(fitted_grey, grey_images):
    detector = clone(fitted_grey)
    detector.__dict__.update(fitted_grey.__dict__)
    detector.set_params(score_pooling="max")
    maps = detector.anomaly_map(grey_images[:4])
    np.testing.assert_allclose(
        detector.score_samples(grey_images[:4]), -maps.max(axis=(1, 2)), rtol=1e-6
    )
    detector.set_params(
        anomaly_map_type="ssim", ssim_k1=0.1, ssim_k2=0.2, map_normalization=None
    )
    x = torch.from_numpy(grey_images[:2, None])
    recon = torch.from_numpy(detector.reconstruct(grey_images[:2])).movedim(-1, 1)
    expected = 1 - ssim_map(x, recon, data_range=1.0, K1=0.1, K2=0.2)
    np.testing.assert_allclose(
        detector.anomaly_map(grey_images[:2]), expected.numpy(), atol=1e-5
    )


def test_paper_training_settings_use_the_loss_and_keep_unused_codes(grey_images):
    paper = dict(codebook_update="loss", restart_dead_codes=False, augment=None)
    detector = VQVAEAnomalyDetector(**{**TINY, **paper}).fit(grey_images)
    assert detector.net_.module_.quantizer.codebook.weight.requires_grad
    assert "restarted_codes" not in detector.net_.history[-1]
    default = VQVAEAnomalyDetector(**TINY).fit(grey_images)
    assert not default.net_.module_.quantizer.codebook.weight.requires_grad
    assert "restarted_codes" in default.net_.history[-1]


@pytest.mark.parametrize(
    "param, value",
    [("codebook_update", "ema2"), ("augment", "rot90"), ("reconstruction", "mode"),
     ("alignment_normalization", "global"), ("score_pooling", "median"),
     ("ssim_k1", 0.0), ("restart_dead_codes", "yes"), ("augment_rotation", 181.0),
     ("augment_rotation", -1.0), ("augment_scale", 0.5),
     ("ssim_channel_reduction", "max"),
     ("alignment_distance", "l1")],
)  # fmt: skip
def test_new_parameters_are_validated(param, value, grey_images):
    with pytest.raises(ValueError, match=param):
        VQVAEAnomalyDetector(**{**TINY, param: value}).fit(grey_images)


def test_rotation_changes_the_training_reproducibly(grey_images):
    turned = VQVAEAnomalyDetector(**{**TINY, "augment_rotation": 15.0}).fit(grey_images)
    plain = VQVAEAnomalyDetector(**{**TINY, "augment_rotation": 0.0}).fit(grey_images)
    assert not np.allclose(
        turned.score_samples(grey_images), plain.score_samples(grey_images)
    )
    again = VQVAEAnomalyDetector(**{**TINY, "augment_rotation": 15.0}).fit(grey_images)
    np.testing.assert_array_equal(
        turned.score_samples(grey_images), again.score_samples(grey_images)
    )


def test_zoom_changes_the_training_reproducibly_and_one_draws_nothing(grey_images):
    params = {**TINY, "augment_rotation": 15.0}
    plain = VQVAEAnomalyDetector(**params, augment_scale=1.0).fit(grey_images)
    zoomed = VQVAEAnomalyDetector(**params, augment_scale=1.25).fit(grey_images)
    again = VQVAEAnomalyDetector(**params, augment_scale=1.25).fit(grey_images)
    assert not np.allclose(
        zoomed.score_samples(grey_images), plain.score_samples(grey_images)
    )
    np.testing.assert_array_equal(
        zoomed.score_samples(grey_images), again.score_samples(grey_images)
    )


def test_torch_tensors_are_accepted_and_left_alone(fitted_grey, grey_images):
    tensor = torch.from_numpy(grey_images.copy()).requires_grad_(True)
    scores = fitted_grey.score_samples(tensor)
    np.testing.assert_array_equal(scores, fitted_grey.score_samples(grey_images))
    assert tensor.requires_grad and tensor.grad is None
    np.testing.assert_array_equal(tensor.detach().numpy(), grey_images)


def test_changing_scoring_parameters_after_fit_warns_about_offset(
    fitted_grey, grey_images
):
    detector = clone(fitted_grey)
    detector.__dict__.update(fitted_grey.__dict__)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector.predict(grey_images[:2])  # nothing changed: silent
        detector.set_params(anomaly_map_type="ssim+am")  # same value: silent
        detector.predict(grey_images[:2])
    detector.set_params(score_pooling="max", contamination=0.1)
    with pytest.warns(UserWarning, match="contamination, score_pooling"):
        detector.predict(grey_images[:2])


def test_fit_does_not_change_the_callbacks_passed(grey_images, tmp_path):
    from skorch.callbacks import EarlyStopping

    stopper = EarlyStopping(monitor="train_loss", patience=100)
    before = dict(vars(stopper))
    detector = VQVAEAnomalyDetector(**TINY, callbacks=[stopper], memory=tmp_path)
    detector.fit(grey_images)
    assert vars(stopper) == before
    n_trained = []
    monkey = detector.net_.__class__.partial_fit

    def counting(self, *args, **kwargs):
        n_trained.append(1)
        return monkey(self, *args, **kwargs)

    detector.net_.__class__.partial_fit = counting
    try:
        detector.fit(grey_images)  # same parameters: loaded from the cache
    finally:
        detector.net_.__class__.partial_fit = monkey
    assert n_trained == []


def test_large_ssim_constants_are_rejected(grey_images):
    with pytest.raises(ValueError, match="ssim_k1"):
        VQVAEAnomalyDetector(**{**TINY, "ssim_k1": 1e10}).fit(grey_images)


def test_stale_offset_warning_points_at_the_caller(fitted_grey, grey_images):
    detector = clone(fitted_grey)
    detector.__dict__.update(fitted_grey.__dict__)
    detector.set_params(score_pooling="max")
    for method in (detector.predict, detector.decision_function):
        with pytest.warns(UserWarning, match="score_pooling") as record:
            method(grey_images[:1])
        assert record[0].filename == __file__
