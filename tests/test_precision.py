"""How the network runs: mixed precision and channels_last pinned to float32
results on the CPU, uint8 images trained and scored without a float32 copy.

Tolerances, each measured on these tiny networks first (the measured value
in brackets): channels_last in float32 equals the contiguous layout up to
rounding (maps 2e-6 of their range, gradients 3e-6 relative); bfloat16
autocast moves the maps by at most 2 % of their range (0.5 %), the pixel
ROC-AUC by at most 0.005 (5e-4), the loss by 1 % (6e-4) and the gradient by
10 % of its norm (4 %). Scoring batches of another size change maps,
scores and reconstructions by rounding only (1e-5 of their range; 1.4e-6).
``torch.compile`` (slow to compile: one test)
keeps the weights within 1e-3 of their norm after two steps (1.1e-4).
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from skvqad import VQVAE, VQVAEAnomalyDetector, VQVAELoss
from skvqad._anomaly_map import eval_batch_size
from skvqad._model import resolve_execution
from skvqad.datasets import make_texture_defects
from skvqad.metrics import pixel_roc_auc

SMALL = dict(hidden_channels=16, n_embeddings=32, embedding_dim=8,
             n_residual_layers=1, n_downsampling=2)  # fmt: skip


@pytest.fixture(scope="module")
def fitted_fp32():
    data = make_texture_defects(n_train=32, n_test=16, image_size=32, random_state=0)
    detector = VQVAEAnomalyDetector(
        **SMALL, max_epochs=3, batch_size=8, lr=1e-3, random_state=0,
        mixed_precision="no", channels_last=False,
    ).fit(data.X_train)  # fmt: skip
    return detector, data


def _maps_under(detector, data, mixed_precision, channels_last):
    module = detector.net_.module_
    module.set_execution(mixed_precision, channels_last)
    try:
        return detector.anomaly_map(data.X_test), detector.score_samples(data.X_test)
    finally:
        module.set_execution("no", False)


def test_channels_last_maps_equal_float32(fitted_fp32):
    detector, data = fitted_fp32
    reference, scores = _maps_under(detector, data, "no", False)
    maps, last_scores = _maps_under(detector, data, "no", True)
    assert np.abs(maps - reference).max() <= 1e-5 * np.ptp(reference)
    assert np.abs(last_scores - scores).max() <= 1e-5 * np.ptp(scores)


@pytest.mark.parametrize("channels_last", [False, True])
def test_bf16_maps_stay_within_the_stated_tolerance(fitted_fp32, channels_last):
    detector, data = fitted_fp32
    reference, scores = _maps_under(detector, data, "no", False)
    maps, bf16_scores = _maps_under(detector, data, "bf16", channels_last)
    assert maps.dtype == np.float32
    assert not np.array_equal(maps, reference)  # bfloat16 did run
    assert np.abs(maps - reference).max() <= 0.02 * np.ptp(reference)
    assert np.abs(bf16_scores - scores).max() <= 0.02 * np.ptp(scores)
    auc = pixel_roc_auc(data.masks_test, maps)
    assert abs(auc - pixel_roc_auc(data.masks_test, reference)) <= 0.005


def test_training_step_under_bf16_and_channels_last():
    torch.manual_seed(0)
    module = VQVAE(in_channels=1, **SMALL)
    x = torch.rand(8, 1, 32, 32)
    steps = {}
    for setting in (("no", False), ("no", True), ("bf16", False)):
        module.set_execution(*setting)
        module.zero_grad()
        output = module.run(x)
        # Outputs in float32 whatever the precision; the quantiser in float32.
        assert output.logits.dtype == output.z_e.dtype == torch.float32
        assert output.alignment.dtype == output.z_q.dtype == torch.float32
        loss = VQVAELoss()(output.logits, x, output.z_e, output.z_q)
        loss.backward()
        grads = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
        steps[setting] = loss.item(), torch.cat(grads)
    loss, grad = steps["no", False]
    for setting, (rel_loss, rel_grad) in {
        ("no", True): (1e-5, 1e-5),
        ("bf16", False): (1e-2, 0.1),
    }.items():
        other_loss, other_grad = steps[setting]
        assert abs(other_loss - loss) <= rel_loss * abs(loss), setting
        assert (other_grad - grad).norm() <= rel_grad * grad.norm(), setting
    assert not torch.equal(steps["bf16", False][1], grad)


def test_detector_settings_reach_the_network_and_bad_values_are_refused():
    X = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    params = dict(**SMALL, max_epochs=1, batch_size=4, random_state=0)
    auto = VQVAEAnomalyDetector(**params).fit(X)
    # "auto" on a CPU: float32, channels_last.
    assert auto.net_.module_.mixed_precision == "no"
    assert auto.net_.module_.channels_last is True
    weight = next(p for p in auto.net_.module_.encoder.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    bf16 = VQVAEAnomalyDetector(**params, mixed_precision="bf16", channels_last=False)
    bf16.fit(X)
    assert bf16.net_.module_.mixed_precision == "bf16"
    assert bf16.net_.module_.channels_last is False
    assert np.isfinite(bf16.score_samples(X)).all()
    with pytest.raises(InvalidParameterError, match="mixed_precision"):
        VQVAEAnomalyDetector(**params, mixed_precision="fp16").fit(X)
    with pytest.raises(InvalidParameterError, match="channels_last"):
        VQVAEAnomalyDetector(**params, channels_last="yes").fit(X)
    with pytest.raises(ValueError, match="mixed_precision"):
        VQVAE().set_execution("fp16")


def test_auto_execution_per_device():
    assert resolve_execution("auto", "auto", "cpu") == ("no", True)
    assert resolve_execution("bf16", False, "cpu") == ("bf16", False)
    assert resolve_execution("no", True, "meta") == ("no", True)
    assert resolve_execution("auto", "auto", "meta") == ("no", False)
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        assert resolve_execution("auto", "auto", "cuda") == ("bf16", True)


def test_uint8_images_train_and_score_as_uint8_bit_for_bit(monkeypatch):
    from skvqad import _detector
    from skvqad._validation import check_images

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (24, 30, 30, 3), dtype=np.uint8)
    before = X.copy()
    params = dict(**SMALL, max_epochs=2, batch_size=8, random_state=0)
    trained_on = []
    fit_network = _detector.fit_network

    def spy(x, *args, **kwargs):
        trained_on.append(x.dtype)
        return fit_network(x, *args, **kwargs)

    monkeypatch.setattr(_detector, "fit_network", spy)
    from_uint8 = VQVAEAnomalyDetector(**params).fit(X)
    as_float = X.astype(np.float32) / np.float32(255)
    from_float = VQVAEAnomalyDetector(**params).fit(as_float)
    # The uint8 set is padded and trained on as uint8 (no float32 copy of it)...
    assert trained_on == [np.uint8, np.float32]
    assert np.shares_memory(check_images(X, keep_uint8=True), X)
    # ... and each batch divided by 255 on the device gives the same float32
    # values, so the same network, maps, scores and threshold.
    np.testing.assert_array_equal(
        from_uint8.anomaly_map(X), from_float.anomaly_map(as_float)
    )
    np.testing.assert_array_equal(
        from_uint8.score_samples(X), from_float.score_samples(as_float)
    )
    assert from_uint8.offset_ == from_float.offset_
    np.testing.assert_array_equal(X, before)  # the user's array is untouched


def test_compiled_training_matches_eager_and_leaves_a_plain_module():
    import pickle

    from sklearn.base import clone

    X = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    params = dict(**SMALL, max_epochs=1, batch_size=4, random_state=0,
                  channels_last=False)  # fmt: skip
    eager = VQVAEAnomalyDetector(**params).fit(X)
    compiled = VQVAEAnomalyDetector(**params, compile=True).fit(X)  # about a minute
    assert type(compiled.net_.module_) is VQVAE  # the wrapper is gone
    # Compiled kernels round differently. After two Adam steps the weights
    # differed by 1.1e-4 of their norm, the maps (standardised per pixel,
    # which magnifies small differences) by 0.8 % of their range.
    weights = [torch.cat([p.flatten() for p in d.net_.module_.parameters()])
               for d in (eager, compiled)]  # fmt: skip
    assert (weights[0] - weights[1]).norm() <= 1e-3 * weights[0].norm()
    assert not torch.equal(weights[0], weights[1])  # it did compile
    losses = [d.net_.history[-1, "train_loss"] for d in (eager, compiled)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    maps, reference = compiled.anomaly_map(X), eager.anomaly_map(X)
    assert np.abs(maps - reference).max() <= 0.05 * np.ptp(reference)
    again = pickle.loads(pickle.dumps(compiled))
    np.testing.assert_array_equal(again.score_samples(X), compiled.score_samples(X))
    assert clone(compiled).get_params()["compile"] is True


def test_uint8_training_set_goes_to_the_device_when_it_fits(monkeypatch):
    from skvqad._training import training_set_on_device

    x = np.zeros((4, 1, 8, 8), dtype=np.uint8)
    on_cpu = training_set_on_device(x, "cpu")
    assert isinstance(on_cpu, torch.Tensor) and on_cpu.dtype == torch.uint8
    assert np.shares_memory(on_cpu.numpy(), x)  # no copy on the CPU
    as_float = x.astype(np.float32)
    assert training_set_on_device(as_float, "cpu") is as_float  # 4x the room
    assert training_set_on_device(x, "meta") is x
    # On CUDA only within a quarter of the free memory (no CUDA needed here).
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda device: (4 * x.nbytes - 1, 0)
    )
    assert training_set_on_device(x, "cuda") is x


def test_read_only_uint8_images_are_used_without_a_warning():
    import warnings

    X = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    X.setflags(write=False)  # as np.load(..., mmap_mode="r") gives
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector = VQVAEAnomalyDetector(**SMALL, max_epochs=1, batch_size=4,
                                        random_state=0).fit(X)  # fmt: skip
        assert np.isfinite(detector.score_samples(X)).all()


def test_auto_settings_share_the_cache_of_what_they_mean(tmp_path):
    X = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    params = dict(**SMALL, max_epochs=1, batch_size=4, random_state=0,
                  memory=str(tmp_path))  # fmt: skip
    first = VQVAEAnomalyDetector(**params).fit(X)  # "auto", "auto" on the CPU
    again = VQVAEAnomalyDetector(**params, mixed_precision="no", channels_last=True)
    again.fit(X)
    assert len(list(tmp_path.rglob("output.pkl"))) == 1  # one network trained
    np.testing.assert_array_equal(first.score_samples(X), again.score_samples(X))
    VQVAEAnomalyDetector(**params, channels_last=False).fit(X)
    assert len(list(tmp_path.rglob("output.pkl"))) == 2


# ------------------------------------------------------------ scoring batches


def test_eval_batch_size_changes_no_result(fitted_fp32):
    detector, data = fitted_fp32
    reference = (
        detector.anomaly_map(data.X_test),
        detector.score_samples(data.X_test),
        detector.reconstruct(data.X_test),
    )
    for size in (1, 5, 64):
        detector.set_params(eval_batch_size=size)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # offset_ is not stale
                labels = detector.predict(data.X_test)
            results = (
                detector.anomaly_map(data.X_test),
                detector.score_samples(data.X_test),
                detector.reconstruct(data.X_test),
            )
        finally:
            detector.set_params(eval_batch_size="auto")
        for got, want in zip(results, reference):
            assert got.shape == want.shape
            # Rounding only: batched convolutions sum in another order
            # (measured: 1.4e-6 of the maps' range, 1.2e-6 on the
            # reconstructions' [0, 1] scale).
            assert np.abs(got - want).max() <= 1e-5 * max(np.ptp(want), 1.0)
        assert labels.shape == (len(data.X_test),)


def test_fit_passes_with_other_batches_give_the_same_threshold():
    data = make_texture_defects(n_train=20, n_test=4, image_size=32, random_state=1)
    params = dict(**SMALL, max_epochs=1, batch_size=8, lr=1e-3, random_state=0)
    default = VQVAEAnomalyDetector(**params).fit(data.X_train)
    single = VQVAEAnomalyDetector(**params, eval_batch_size=3).fit(data.X_train)
    assert single.offset_ == pytest.approx(default.offset_, rel=1e-5)
    for name, values in default.map_statistics_.items():
        np.testing.assert_allclose(
            single.map_statistics_[name], values, rtol=1e-4, atol=1e-6
        )
    np.testing.assert_allclose(
        single.code_alignment_, default.code_alignment_, rtol=1e-5
    )


@pytest.mark.parametrize(
    "device, size, batch_size, shape, expected",
    [
        ("cpu", "auto", 16, (9, 256, 256, 3), 16),  # the CPU: batch_size
        ("cuda", "auto", 16, (9, 256, 256, 3), 64),  # 64 images of 256 x 256
        ("cuda", "auto", 16, (9, 64, 64, 1), 256),  # at most 256
        ("cuda", "auto", 16, (9, 1024, 1024, 3), 16),  # never below batch_size
        ("cuda:1", "auto", 2, (9, 1024, 1024, 3), 4),
        ("cuda", 7, 16, (9, 256, 256, 3), 7),  # an int as given
    ],
)
def test_auto_eval_batch_size(device, size, batch_size, shape, expected):
    detector = SimpleNamespace(
        eval_batch_size=size,
        batch_size=batch_size,
        net_=SimpleNamespace(device=device),
    )
    assert eval_batch_size(detector, shape) == expected


@pytest.mark.parametrize("size", [0, -3, 2.5, "large", None])
def test_bad_eval_batch_size_is_rejected_by_name(size):
    X = np.zeros((4, 16, 16), dtype=np.float32)
    detector = VQVAEAnomalyDetector(eval_batch_size=size)
    with pytest.raises(InvalidParameterError, match="eval_batch_size"):
        detector.fit(X)
