"""Image files as input: ``ImageFiles`` and lists of paths, read in batches."""

import os

import numpy as np
import pytest
import torch
from skimage import io
from sklearn.model_selection import cross_val_score

from skvqad import OneClassKFold, VQVAEAnomalyDetector, get_scorer
from skvqad.datasets import ImageFiles, load_image_folder

from .conftest import TINY, brick_tiles, paste_square, stripes


def _save(folder, images, prefix):
    """Write (n, H, W[, 3]) float images in [0, 1] as 8-bit PNGs; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{prefix}{i:03d}.png"
        io.imsave(path, (image * 255).round().astype(np.uint8), check_contrast=False)
        paths.append(str(path))
    return paths


def _as_uint8(images):
    return (images * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def grey_files(tmp_path_factory):
    """Training and test PNG files of brick tiles, with the uint8 arrays."""
    folder = tmp_path_factory.mktemp("grey")
    train = brick_tiles(24, seed=0)
    test, _ = paste_square(brick_tiles(6, rows=(80, 128), seed=1)[:3])
    test = np.concatenate([brick_tiles(3, rows=(80, 128), seed=2), test])
    return (
        _save(folder / "train", train, "train"),
        _save(folder / "test", test, "test"),
        _as_uint8(train),
        _as_uint8(test),
    )


@pytest.fixture(scope="module")
def fitted_pair(grey_files):
    train_paths, _, train, _ = grey_files
    on_array = VQVAEAnomalyDetector(**TINY).fit(train)
    on_files = VQVAEAnomalyDetector(**TINY).fit(train_paths)
    return on_array, on_files


def _same_weights(a, b):
    sa, sb = a.net_.module_.state_dict(), b.net_.module_.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_files_train_the_network_the_array_trains(fitted_pair):
    on_array, on_files = fitted_pair
    assert _same_weights(on_array, on_files)
    assert on_files.offset_ == on_array.offset_
    assert on_files.image_shape_ == on_array.image_shape_ == (32, 32)
    assert on_files.n_channels_ == 1


def test_files_score_as_the_array_scores(fitted_pair, grey_files):
    on_array, on_files = fitted_pair
    _, test_paths, _, test = grey_files
    np.testing.assert_array_equal(
        on_files.score_samples(test_paths), on_array.score_samples(test)
    )
    files = ImageFiles(test_paths)
    np.testing.assert_array_equal(
        on_files.anomaly_map(files, map_type="ssim"),
        on_array.anomaly_map(test, map_type="ssim"),
    )
    np.testing.assert_array_equal(on_files.predict(files), on_array.predict(test))
    np.testing.assert_array_equal(
        on_files.reconstruct(files), on_array.reconstruct(test)
    )


def test_worker_processes_read_the_same_images(grey_files, fitted_pair):
    train_paths, test_paths, train, test = grey_files
    with_workers = VQVAEAnomalyDetector(**TINY).fit(
        ImageFiles(train_paths, num_workers=2)
    )
    assert _same_weights(with_workers, fitted_pair[0])
    np.testing.assert_array_equal(
        with_workers.score_samples(ImageFiles(test_paths, num_workers=2)),
        fitted_pair[0].score_samples(test),
    )


def test_rgb_and_grey_files_mix_as_the_loaders_mix_them(tmp_path):
    rgb = stripes(3, channels=3, seed=3)
    rgb[..., 0] *= 0.5
    grey = stripes(2, seed=4)
    paths = _save(tmp_path, rgb, "rgb") + _save(tmp_path, grey, "grey")
    files = ImageFiles(paths)
    assert files.shape == (5, 32, 32, 3)
    images = np.asarray(files)
    assert images.dtype == np.float32 and images.shape == (5, 32, 32, 3)
    # A grey file is repeated in three channels; values are the uint8 / 255.
    np.testing.assert_array_equal(images[3, ..., 0], images[3, ..., 2])
    np.testing.assert_array_equal(
        images[3, ..., 0], _as_uint8(grey[0]) / np.float32(255)
    )
    assert ImageFiles(paths, color="gray").shape == (5, 32, 32, 1)


def test_indexing_selects_files_without_reading_them(grey_files):
    train_paths = grey_files[0]
    files = ImageFiles(train_paths, num_workers=1)
    assert files[3].shape == (32, 32, 1) and files[3].dtype == np.float32
    for key in (slice(2, 5), np.array([2, 3, 4]), np.arange(24) // 2 == 1):
        subset = files[key]
        assert isinstance(subset, ImageFiles) and subset.num_workers == 1
    assert files[slice(2, 5)].paths == tuple(train_paths[2:5])
    assert files[np.arange(24) // 2 == 1].paths == tuple(train_paths[2:4])
    with pytest.raises(IndexError, match="boolean index"):
        files[np.ones(3, dtype=bool)]
    with pytest.raises(IndexError, match="int, a slice"):
        files[np.array([0.5])]


def test_cross_validation_on_files_equals_cross_validation_on_arrays(grey_files):
    train_paths, test_paths, train, test = grey_files
    y = np.r_[np.zeros(len(train) + 3), np.ones(3)].astype(int)
    detector = VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1})
    cv, scoring = OneClassKFold(2), get_scorer("image_roc_auc")
    on_files = cross_val_score(
        detector, ImageFiles(train_paths + test_paths), y, cv=cv, scoring=scoring
    )
    on_array = cross_val_score(
        detector, np.concatenate([train, test]), y, cv=cv, scoring=scoring
    )
    np.testing.assert_array_equal(on_files, on_array)


def test_a_changed_file_is_trained_on_again(tmp_path):
    paths = _save(tmp_path, stripes(8, seed=5), "x")
    kwargs = dict(TINY, max_epochs=1, memory=str(tmp_path / "cache"))
    first = VQVAEAnomalyDetector(**kwargs).fit(paths)
    again = VQVAEAnomalyDetector(**kwargs).fit(paths)
    assert again.net_.history[-1, "dur"] == first.net_.history[-1, "dur"]  # loaded
    io.imsave(paths[0], _as_uint8(stripes(1, seed=6)[0]), check_contrast=False)
    stat = os.stat(paths[0])
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    changed = VQVAEAnomalyDetector(**kwargs).fit(paths)
    assert changed.net_.history[-1, "dur"] != first.net_.history[-1, "dur"]


def test_the_user_list_is_left_as_it_was(grey_files, fitted_pair):
    test_paths = list(grey_files[1])
    copy = list(test_paths)
    fitted_pair[1].score_samples(test_paths)
    assert test_paths == copy


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda d: d / "one.png", TypeError, "one path"),
        (lambda d: [d / "missing.png"], ValueError, "missing.png"),
        (lambda d: [d / "text.png"], ValueError, "text.png"),
        (lambda d: [d / "a.png", d / "big.png"], ValueError, "different sizes"),
        (lambda d: [d / "a.png", 3], TypeError, "mixes image paths"),
    ],
)
def test_bad_paths_are_named(tmp_path, fitted_pair, make, error, match):
    _save(tmp_path, stripes(1), "a")
    os.rename(tmp_path / "a000.png", tmp_path / "a.png")
    _save(tmp_path, stripes(1, size=40), "big")
    os.rename(tmp_path / "big000.png", tmp_path / "big.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(error, match=match):
        fitted_pair[1].score_samples(make(tmp_path))


def test_files_of_other_channels_are_refused(tmp_path, fitted_pair):
    paths = _save(tmp_path, stripes(2, channels=3), "rgb")
    with pytest.raises(ValueError, match="3 channel"):
        fitted_pair[1].score_samples(paths)
    with pytest.raises(TypeError, match="str or path-like"):
        ImageFiles([tmp_path / "a.png", 1.5])
    with pytest.raises(ValueError, match="num_workers"):
        ImageFiles(paths, num_workers=-1)


def test_loaders_return_files_holding_the_arrays_images(tmp_path):
    normal = _save(tmp_path / "good", brick_tiles(10, seed=7), "n")
    anomalous, _ = paste_square(brick_tiles(2, rows=(80, 128), seed=8))
    _save(tmp_path / "scratch", anomalous, "s")
    kwargs = dict(abnormal_dir=tmp_path / "scratch", image_size=24, random_state=0)
    eager = load_image_folder(tmp_path / "good", **kwargs)
    lazy = load_image_folder(tmp_path / "good", lazy=True, **kwargs)
    assert isinstance(lazy.X_train, ImageFiles) and len(normal) == 10
    assert lazy.X_train.shape == (8, 24, 24, 1)
    np.testing.assert_array_equal(np.asarray(lazy.X_train)[..., 0], eager.X_train)
    np.testing.assert_array_equal(np.asarray(lazy.X_test)[..., 0], eager.X_test)
    np.testing.assert_array_equal(lazy.y_test, eager.y_test)


def test_the_template_reads_paths_into_memory(grey_files):
    from skvqad import TemplateAnomalyDetector

    train_paths, test_paths, train, test = grey_files
    on_files = TemplateAnomalyDetector().fit(train_paths)
    on_array = TemplateAnomalyDetector().fit(train)
    np.testing.assert_array_equal(on_files.template_, on_array.template_)
    np.testing.assert_array_equal(
        on_files.score_samples(test_paths), on_array.score_samples(test)
    )


def test_reading_workers_are_not_in_the_cache_key(tmp_path):
    paths = _save(tmp_path, stripes(8, seed=5), "x")
    kwargs = dict(TINY, max_epochs=1, memory=str(tmp_path / "cache"))
    first = VQVAEAnomalyDetector(**kwargs).fit(paths)
    again = VQVAEAnomalyDetector(**kwargs).fit(ImageFiles(paths, num_workers=2))
    assert again.net_.history[-1, "dur"] == first.net_.history[-1, "dur"]  # loaded


def test_files_with_workers_in_a_parallel_grid_search(grey_files):
    # joblib's worker processes may not start DataLoader workers of their
    # own: there, the files are read in the worker itself.
    from sklearn.model_selection import GridSearchCV

    train_paths, test_paths, train, test = grey_files
    y = np.r_[np.zeros(len(train) + 3), np.ones(3)].astype(int)
    search = GridSearchCV(
        VQVAEAnomalyDetector(**{**TINY, "max_epochs": 1}),
        {"beta": [0.25, 1.0]},
        cv=OneClassKFold(2),
        scoring=get_scorer("image_roc_auc"),
        refit=False,
        n_jobs=2,
        error_score="raise",
    )
    search.fit(ImageFiles(train_paths + test_paths, num_workers=2), y)
    local = GridSearchCV(**{**search.get_params(deep=False), "n_jobs": 1})
    local.fit(np.concatenate([train, test]), y)
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"],
        local.cv_results_["mean_test_score"],
        atol=1e-9,
    )


def test_empty_and_bytes_inputs_and_bad_indices_are_named(grey_files):
    paths = grey_files[0]
    with pytest.raises(ValueError, match="X is empty"):
        VQVAEAnomalyDetector(**TINY).fit([])
    with pytest.raises(TypeError, match="not bytes"):
        VQVAEAnomalyDetector(**TINY).fit([p.encode() for p in paths])
    with pytest.raises(ValueError, match="num_workers"):
        ImageFiles(paths, num_workers=True)
    with pytest.raises(IndexError, match="out of range for 24 files"):
        ImageFiles(paths)[24]
    assert ImageFiles(paths)[-1].shape == (32, 32, 1)
