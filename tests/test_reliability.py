"""Input and numerics faults replayed from public bug reports (issue 13).

Each test covers one kind of fault with several inputs: file lookups by
extension case, lossy masks, channels-first arrays, continuous Bernoulli
numerics, colour mode across splits, broken files and thresholds for clean
training data.
"""

import io as stdio
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone

from skvqad import TemplateAnomalyDetector, VQVAEAnomalyDetector, fit_threshold
from skvqad._continuous_bernoulli import cb_log_normalizer, cb_log_prob, cb_mean
from skvqad.datasets import load_image_folder, load_mvtec_ad
from skvqad.datasets._files import find_mask
from skvqad.datasets._io import binarize_mask, read_image, read_mask

from .conftest import TINY


def _save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def _square_mask(size=64, side=16):
    mask = np.zeros((size, size), np.uint8)
    start = (size - side) // 2
    mask[start : start + side, start : start + side] = 255
    return mask


# ------------------------------------------------- 1. extension case of masks


@pytest.mark.parametrize(
    "name", ["000_mask.Png", "000_mask.PNG", "000.Bmp", "000.JPEG", "000.tIf"]
)
def test_masks_are_found_whatever_the_case_of_their_extension(tmp_path, name):
    path = tmp_path / name
    fmt = {"png": "PNG", "bmp": "BMP", "jpeg": "JPEG", "tif": "TIFF"}
    _save(path, _square_mask(), format=fmt[path.suffix[1:].lower()])
    assert find_mask(tmp_path, "000") == path


def test_missing_mask_error_lists_what_is_there(tmp_path):
    for i in range(7):
        _save(tmp_path / f"other{i}.png", _square_mask())
    with pytest.raises(FileNotFoundError, match=r"'000'.*found: other0\.png.*7 files"):
        find_mask(tmp_path, "000")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no files"):
        find_mask(empty, "000")


def test_mvtec_layout_with_upper_case_extensions_loads(tmp_path):
    rng = np.random.default_rng(0)
    cat = tmp_path / "widget"
    for i in range(2):
        _save(
            cat / "train" / "good" / f"{i:03d}.PNG",
            rng.integers(0, 256, (16, 16), np.uint8),
        )
    _save(cat / "test" / "cut" / "000.Png", rng.integers(0, 256, (16, 16), np.uint8))
    _save(cat / "ground_truth" / "cut" / "000_mask.pNg", _square_mask(16, 4))
    data = load_mvtec_ad(tmp_path, "widget", image_size=None)
    assert data.masks_test.sum() == 16


# ------------------------------------------------------------ 2. lossy masks


@pytest.mark.parametrize("quality", [50, 75, 95])
@pytest.mark.parametrize("radius", [9, 14])
def test_jpeg_masks_keep_their_true_area(tmp_path, quality, radius):
    rows, cols = np.mgrid[:64, :64]
    mask = np.where((rows - 29.5) ** 2 + (cols - 34.5) ** 2 <= radius**2, 255, 0)
    true_area = (mask > 0).sum()
    path = tmp_path / "m.jpg"
    _save(path, mask.astype(np.uint8), quality=quality)
    stored = np.asarray(Image.open(path))
    if quality <= 75:  # the old "> 0" rule inflates it
        assert (stored > 0).sum() > 1.2 * true_area
    assert abs(read_mask(path).sum() - true_area) <= 0.05 * true_area


@pytest.mark.parametrize("high", [1, 2, 255, 65535])
def test_label_masks_read_exactly_and_faint_values_beside_strong_ones_do_not(high):
    mask = np.zeros((8, 8), np.uint16 if high > 255 else np.uint8)
    mask[2:4, 2:6] = high
    mask[6, 6] = 1
    # Below half the range (0/1, class indices) every non-zero value is a
    # defect; beside values from half the range up, a faint value is noise
    # or a soft edge (one rule: tests/test_reliability.py, soft masks).
    assert binarize_mask(mask).sum() == (9 if high <= 2 else 8)
    assert binarize_mask(mask.astype(bool)).sum() == 9


def test_class_index_masks_count_every_class():
    mask = np.zeros((6, 6), np.uint8)
    mask[0, :3], mask[1, :3], mask[2, :3] = 1, 2, 3
    assert binarize_mask(mask).sum() == 9


def test_lossless_masks_in_files_read_alike(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[3:7, 3:7], mask[10, 10] = 1, 2  # class indices
    for name in ("m.png", "m.bmp", "m.tif"):
        _save(tmp_path / name, mask)
        assert read_mask(tmp_path / name).sum() == 17
        _save(tmp_path / name, mask * 120)  # 0/120/240: one value >= 128
        assert read_mask(tmp_path / name).sum() == 1


# ------------------------------------------------------- 3. channels-first


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_channels_first_input_is_refused_with_the_fix(channels, as_tensor):
    X = np.random.default_rng(0).random((4, channels, 16, 16), dtype=np.float32)
    X_in = torch.from_numpy(X) if as_tensor else X
    before = X.copy()
    for estimator in (VQVAEAnomalyDetector(max_epochs=1), TemplateAnomalyDetector()):
        with pytest.raises(ValueError, match="channels-first.*permute"):
            estimator.fit(X_in)
    np.testing.assert_array_equal(X, before)


def test_channels_first_at_predict_time_on_a_fitted_model():
    rng = np.random.default_rng(0)
    template = TemplateAnomalyDetector().fit(rng.random((4, 16, 16, 3)))
    with pytest.raises(ValueError, match="channels-first"):
        template.score_samples(rng.random((2, 3, 16, 16)))


@pytest.mark.parametrize("shape", [(2, 16, 16, 3), (2, 16, 16, 1), (2, 3, 16, 3)])
def test_channels_last_shapes_are_still_accepted(shape):
    X = np.random.default_rng(0).random(shape)
    assert TemplateAnomalyDetector().fit(X).score_samples(X).shape == (2,)


# -------------------------------------------- 4. continuous Bernoulli numerics

_LOGITS = [-300.0, -50.0, -16.0, -3.0, -0.6, -0.5, -0.49, -1e-3, -1e-7, 0.0, 1e-7,
           1e-3, 0.25, 0.49, 0.5, 0.51, 2.0, 16.0, 50.0, 300.0]  # fmt: skip


def _reference(logits):
    e = torch.tensor(logits, dtype=torch.float64)
    safe = torch.where(e == 0, torch.ones_like(e), e)
    mean = torch.where(
        e == 0, torch.full_like(e, 0.5), 1 / -torch.expm1(-safe) - 1 / safe
    )
    log_norm = torch.where(
        e == 0, torch.full_like(e, np.log(2.0)), torch.log(safe / torch.tanh(safe / 2))
    )
    return mean, log_norm


def test_continuous_bernoulli_mean_matches_float64_everywhere():
    mean, _ = _reference(_LOGITS)
    got = cb_mean(torch.tensor(_LOGITS)).double()
    torch.testing.assert_close(got, mean, rtol=1e-5, atol=3e-7)
    # torch's own mean is stuck at 0.0627 for saturated logits:
    assert got[1].item() == pytest.approx(0.02, rel=1e-5)


def test_continuous_bernoulli_log_normalizer_matches_float64_everywhere():
    _, log_norm = _reference(_LOGITS)
    got = cb_log_normalizer(torch.tensor(_LOGITS)).double()
    torch.testing.assert_close(got, log_norm, rtol=1e-6, atol=1e-6)


def test_continuous_bernoulli_log_prob_and_gradients():
    logits = torch.tensor(_LOGITS, requires_grad=True)
    x = torch.linspace(0, 1, len(_LOGITS))
    log_prob = cb_log_prob(x, logits)
    log_prob.sum().backward()
    assert torch.isfinite(log_prob).all() and torch.isfinite(logits.grad).all()
    moderate = torch.tensor([-3.0, -0.2, 0.7, 4.0])
    xm = torch.tensor([0.1, 0.5, 0.3, 0.95])
    expected = torch.distributions.ContinuousBernoulli(logits=moderate).log_prob(xm)
    torch.testing.assert_close(
        cb_log_prob(xm, moderate), expected, rtol=1e-5, atol=1e-5
    )
    # Uniform density at logit 0: log p = 0 for every x.
    torch.testing.assert_close(
        cb_log_prob(x, torch.zeros_like(x)), torch.zeros_like(x), atol=1e-6, rtol=0
    )


def test_the_loss_keeps_torchs_normaliser_bound_at_saturated_logits():
    from skvqad import vq_vae_loss_terms

    logits = torch.tensor([-60.0, -20.0, -16.5, -1e-6, 0.3, 17.0, 80.0])
    x = torch.tensor([0.0, 0.0, 0.02, 0.5, 0.4, 1.0, 1.0])
    zeros = torch.zeros(1, 1, 1, 1)
    nll, _, _ = vq_vae_loss_terms(logits[None, None, None], x[None, None, None],
                                  zeros, zeros)  # fmt: skip
    torch_nll = -torch.distributions.ContinuousBernoulli(logits=logits).log_prob(x)
    torch.testing.assert_close(nll, torch_nll.sum(), rtol=1e-5, atol=1e-5)
    # Unbounded, the density at 0 keeps growing as the logit falls.
    assert cb_log_prob(x[:1], logits[:1]) > cb_log_prob(x[1:2], logits[1:2]) + 1.0


# -------------------------------------------------- 5. colour mode across splits


def test_one_colour_mode_for_training_and_test_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):  # greyscale normal images
        _save(tmp_path / "good" / f"g{i}.png", rng.integers(0, 256, (12, 12), np.uint8))
    rgba = rng.integers(0, 256, (12, 12, 4), np.uint8)
    _save(tmp_path / "bad" / "x.png", rgba)  # one RGBA anomaly
    grey16 = (rng.integers(0, 65536, (12, 12))).astype(np.uint16)
    _save(tmp_path / "bad" / "y.png", grey16)
    data = load_image_folder(
        tmp_path / "good", tmp_path / "bad", normal_split_ratio=0.25, random_state=0
    )
    assert data.X_train.shape[1:] == data.X_test.shape[1:] == (12, 12, 3)
    np.testing.assert_allclose(data.X_test[-2], rgba[..., :3] / 255, atol=1e-6)
    grey = load_image_folder(tmp_path / "good", tmp_path / "bad", color="gray")
    assert grey.X_train.shape[1:] == grey.X_test.shape[1:] == (12, 12)


def test_one_colour_mode_across_mvtec_splits(tmp_path):
    rng = np.random.default_rng(1)
    cat = tmp_path / "c"
    for i in range(2):
        _save(
            cat / "train" / "good" / f"{i}.png", rng.integers(0, 256, (8, 8), np.uint8)
        )
    _save(cat / "test" / "good" / "0.png", rng.integers(0, 256, (8, 8, 3), np.uint8))
    data = load_mvtec_ad(tmp_path, "c", image_size=None)
    assert data.X_train.shape == (2, 8, 8, 3) and data.X_test.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(data.X_train[0, ..., 0], data.X_train[0, ..., 2])


# -------------------------------------------------------------- 8. broken files


def _broken_files(folder):
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (16, 16, 3), np.uint8)
    png, jpg = stdio.BytesIO(), stdio.BytesIO()
    Image.fromarray(good).save(png, format="PNG")
    Image.fromarray(good).save(jpg, format="JPEG")
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "truncated.png": png.getvalue()[: len(png.getvalue()) // 2],
        "truncated.jpg": jpg.getvalue()[: len(jpg.getvalue()) // 2],
        "empty.png": b"",
        "notes.jpg": b"these are my notes, not an image",
        "html.png": b"<html><body>404 Not Found</body></html>",
    }


@pytest.mark.parametrize(
    "name, reason",
    [("truncated.png", "truncated"), ("truncated.jpg", "truncated"),
     ("empty.png", "empty"), ("notes.jpg", "not an image"),
     ("html.png", "not an image")],
)  # fmt: skip
def test_broken_image_files_are_named_in_one_clear_error(tmp_path, name, reason):
    folder = tmp_path / "good"
    content = _broken_files(folder)[name]
    for i in range(3):
        _save(folder / f"ok{i}.png", np.zeros((16, 16, 3), np.uint8))
    (folder / name).write_bytes(content)
    for reader in (read_image, read_mask):
        with pytest.raises(ValueError, match=rf"{name}: .*{reason}") as info:
            reader(folder / name)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=name):
        load_image_folder(folder, normal_test_dir=folder, n_jobs=2)


# ------------------------------------------ 7. thresholds for clean training data


@pytest.fixture(scope="module")
def template_and_sets():
    rng = np.random.default_rng(0)
    base = np.tile(np.linspace(0, 1, 24, dtype=np.float32), (24, 1))
    normal = np.clip(base + 0.05 * rng.standard_normal((40, 24, 24)), 0, 1)
    anomalous = normal[:10].copy()
    anomalous[:, 8:16, 8:16] = rng.random((10, 8, 8))
    template = TemplateAnomalyDetector().fit(normal[:20])
    return template, normal[20:], anomalous


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_training_images_can_all_be_called_normal(seed):
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(0, 1, 24), (24, 1))
    train = np.clip(base + 0.05 * rng.standard_normal((20, 24, 24)), 0, 1)
    fitted = TemplateAnomalyDetector(contamination=0.1).fit(train)
    assert (fitted.predict(train) == -1).sum() == 2
    fit_threshold(fitted, train)
    assert (fitted.predict(train) == 1).all()
    assert fitted.offset_ == pytest.approx(fitted.score_samples(train).min())
    with pytest.raises(ValueError, match="contamination"):
        TemplateAnomalyDetector(contamination=0.0).fit(train)


@pytest.mark.parametrize("max_fpr", [None, 0.0, 0.1, 0.25])
def test_fit_threshold_on_known_good_images(template_and_sets, max_fpr):
    template, good, _ = template_and_sets
    before = good.copy()
    fit_threshold(template, good, max_fpr=max_fpr)
    flagged = (template.predict(good) == -1).sum()
    assert flagged == int(np.floor((max_fpr or 0) * len(good)))
    np.testing.assert_array_equal(good, before)


def test_fit_threshold_f1_max_and_labels(template_and_sets):
    template, good, bad = template_and_sets
    X = np.concatenate([good, bad])
    for y in (
        np.r_[np.zeros(20), np.ones(10)].astype(int),
        np.r_[np.ones(20), -np.ones(10)],
    ):
        fit_threshold(template, X, y)
        predicted = template.predict(X) == -1
        assert predicted[20:].all() and not predicted[:20].any()  # separable set
    fit_threshold(template, X, y, max_fpr=0.1)
    assert (template.predict(good) == -1).sum() <= 2


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(y=[0, 1]), "labels for"), (dict(y=np.full(20, 2)), "0 \\(normal\\)"),
     (dict(max_fpr=1.0), "max_fpr"), (dict(max_fpr=-0.1), "max_fpr"),
     (dict(y=np.ones(20, int)), "both normal and anomalous"),
     (dict(y=np.ones(20, int), max_fpr=0.1), "normal images")],
)  # fmt: skip
def test_fit_threshold_errors(template_and_sets, kwargs, match):
    template, good, _ = template_and_sets
    with pytest.raises(ValueError, match=match):
        fit_threshold(template, good, **kwargs)


def test_fit_threshold_needs_a_fitted_detector():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fit_threshold(TemplateAnomalyDetector(), np.zeros((2, 8, 8)))


# ------------------------------------------- found by a new user's trial run


def test_cmyk_jpeg_is_read_in_its_true_colours(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:8, :, 0], rgb[8:, :, 2] = 220, 180
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    with Image.open(tmp_path / "c.jpg") as pil:
        expected = np.asarray(pil.convert("RGB")) / 255
    np.testing.assert_allclose(read_image(tmp_path / "c.jpg"), expected, atol=1e-6)


def test_hidden_files_are_skipped(tmp_path):
    for i in range(2):
        _save(tmp_path / f"{i}.png", np.full((8, 8), 100, np.uint8))
    (tmp_path / "._0.png").write_bytes(b"\x00\x05\x16\x07 mac resource fork")
    data = load_image_folder(tmp_path, normal_test_dir=tmp_path)
    assert len(data.X_train) == 2
    cat = tmp_path / "mv" / "c"
    for split in ("train/good", "test/good", "test/.ipynb_checkpoints"):
        _save(cat / split / "0.png", np.full((8, 8), 100, np.uint8))
    (cat / "test" / "good" / "._0.png").write_bytes(b"\x00\x05")
    mvtec = load_mvtec_ad(tmp_path / "mv", "c", image_size=None)
    assert list(mvtec.defect_types) == ["good"]


def test_unrecoverable_jpeg_masks_warn_and_faint_noise_is_not_a_defect(tmp_path):
    rows, cols = np.mgrid[:32, :32]
    disc = ((rows - 15.5) ** 2 + (cols - 16.5) ** 2 <= 81).astype(np.uint8)
    _save(tmp_path / "01.jpg", disc, quality=90)  # a 0/1 mask saved as JPEG
    with pytest.warns(UserWarning, match=r"01\.jpg holds only.*0/1 mask saved as JPEG"):
        assert read_mask(tmp_path / "01.jpg").sum() == 0
    noise = np.random.default_rng(0).integers(0, 3, (32, 32)).astype(np.uint8)
    _save(tmp_path / "noise.jpg", noise, quality=75)
    with pytest.warns(UserWarning):
        assert read_mask(tmp_path / "noise.jpg").sum() == 0


@pytest.mark.parametrize("shape", [(32, 32, 3), (20, 24, 4)])
def test_one_colour_image_without_batch_axis_is_refused(shape):
    image = np.random.default_rng(0).random(shape)
    with pytest.raises(ValueError, match=r"without the batch axis.*np\.newaxis"):
        TemplateAnomalyDetector().fit(image)
    assert TemplateAnomalyDetector().fit(image[np.newaxis]).offset_ <= 0


@pytest.mark.parametrize("max_fpr", ["0.1", True, [0.1]])
def test_fit_threshold_refuses_a_max_fpr_that_is_not_a_number(
    template_and_sets, max_fpr
):
    template, good, _ = template_and_sets
    with pytest.raises(ValueError, match="max_fpr"):
        fit_threshold(template, good, max_fpr=max_fpr)


def test_template_warns_when_its_threshold_is_stale(template_and_sets):
    template, good, _ = template_and_sets
    fitted = clone(template).fit(good)
    fitted.set_params(score_pooling="gaussian_max")
    for method in (fitted.predict, fitted.decision_function):
        with pytest.warns(UserWarning, match="score_pooling") as record:
            method(good[:2])
        assert record[0].filename == __file__
    fit_threshold(fitted, good)  # the threshold is current again
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (fitted.predict(good) == 1).all()


# ------------------------------------------- mask binarisation, every kind
def _disc(size=48, radius=12):
    rows, cols = np.mgrid[:size, :size]
    return (rows - 23.5) ** 2 + (cols - 24.5) ** 2 <= radius**2


@pytest.mark.parametrize("bits", [8, 16])
def test_soft_grey_masks_with_noise_keep_their_true_area(tmp_path, bits):
    # A grey mask with noise on both sides: "> 0" would count the noise.
    top = 255 if bits == 8 else 65535
    disc = _disc()
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 0.15, disc.shape) * top
    stored = np.where(disc, top - noise, noise).round()
    stored = stored.astype(np.uint8 if bits == 8 else np.uint16)
    assert (stored > 0).sum() > 1.5 * disc.sum()  # the old rule's inflation
    path = tmp_path / "soft.png"
    Image.fromarray(stored).save(path)
    np.testing.assert_array_equal(read_mask(path), disc)
    np.testing.assert_array_equal(binarize_mask(stored), disc)


def test_masks_with_alpha_are_read_by_their_alpha(tmp_path):
    disc = _disc()
    rgba = np.zeros(disc.shape + (4,), np.uint8)
    rgba[..., :3] = 255  # white everywhere, transparent outside the defect
    rgba[..., 3] = np.where(disc, 255, 0)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgba.png"), disc)
    black_defect = rgba.copy()
    black_defect[..., :3] = 0  # a black defect painted on a transparent sheet
    Image.fromarray(black_defect, mode="RGBA").save(tmp_path / "black.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "black.png"), disc)
    grey_alpha = np.stack([np.full(disc.shape, 200, np.uint8), rgba[..., 3]], -1)
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "la.png"), disc)
    # A constant alpha says nothing: the colour is read.
    opaque = rgba.copy()
    opaque[..., 3] = 255
    opaque[..., :3] = np.where(disc, 255, 0)[..., None]
    Image.fromarray(opaque, mode="RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "opaque.png"), disc)


def test_soft_masks_with_few_levels_read_at_half_range(tmp_path):
    # Background 0-5 and defect 250-255: 12 values, still noise around a 0/255
    # mask; and a 0/255 disc resized bilinearly (a dozen grey levels).
    disc = _disc()
    rng = np.random.default_rng(1)
    noisy = np.where(
        disc, 255 - rng.integers(0, 6, disc.shape), rng.integers(0, 6, disc.shape)
    )
    np.testing.assert_array_equal(binarize_mask(noisy.astype(np.uint8)), disc)
    big = Image.fromarray((np.kron(disc, np.ones((2, 2))) * 255).astype(np.uint8))
    big.resize(disc.shape[::-1], Image.BILINEAR).save(tmp_path / "resized.png")
    loaded = read_mask(tmp_path / "resized.png")
    assert abs(int(loaded.sum()) - int(disc.sum())) <= 0.05 * disc.sum()


def test_a_detector_saved_before_a_parameter_existed_loads_with_its_default(
    tmp_path, grey_images
):
    detector = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1})
    detector.fit(grey_images)
    scores = detector.score_samples(grey_images[:3])
    old = pickle.loads(pickle.dumps(detector))
    del old.augment_scale  # as unpickled from a version without it
    path = tmp_path / "old.joblib"
    joblib.dump(old, path)
    loaded = joblib.load(path)
    assert loaded.get_params()["augment_scale"] == 1.0
    np.testing.assert_array_equal(loaded.score_samples(grey_images[:3]), scores)
    assert clone(loaded).augment_scale == 1.0


@pytest.mark.parametrize("X", [np.zeros(10, np.float32), [0.1, 0.2], np.float32(3)])
def test_one_dimensional_input_is_refused_as_not_images(X):
    for estimator in (VQVAEAnomalyDetector(**TINY), TemplateAnomalyDetector()):
        with pytest.raises(ValueError, match=r"must be images \(n_samples, height"):
            estimator.fit(X)


def test_one_image_without_batch_axis_gets_the_fix(fitted_grey, grey_images):
    with pytest.raises(ValueError, match=r"for one image, pass X\[None\]"):
        fitted_grey.score_samples(grey_images[0])
    assert fitted_grey.score_samples(grey_images[0][None]).shape == (1,)


@pytest.mark.parametrize("name", ["batch_size", "eval_batch_size", "n_embeddings"])
@pytest.mark.parametrize("value", [True, np.True_])
def test_a_count_given_as_a_boolean_is_refused(name, value, grey_images):
    detector = VQVAEAnomalyDetector(**{**TINY, name: value})
    with pytest.raises(ValueError, match=f"'{name}' parameter .* an int in the range"):
        detector.fit(grey_images)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        TemplateAnomalyDetector(batch_size=value).fit(grey_images)
