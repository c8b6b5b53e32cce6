"""Pipelines, grid search without retraining, CV splitting, scorers, persistence."""

import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skvqad import (
    AlignmentMapTransformer,
    OneClassKFold,
    SSIMAMMapTransformer,
    SSIMMapTransformer,
    VQVAEAnomalyDetector,
    VQVAENet,
    get_scorer,
    image_roc_auc_scorer,
)

from .conftest import TINY, brick_tiles, paste_square


@pytest.fixture(scope="module")
def labelled():
    """12 normal and 4 defective 16x16 brick tiles, labels and masks."""
    normal = brick_tiles(12, size=16, seed=0)
    defective, masks = paste_square(
        brick_tiles(4, size=16, rows=(80, 128), seed=1), top=4, left=4, side=6
    )
    X = np.concatenate([normal, defective])
    masks = np.concatenate([np.zeros((12, 16, 16), bool), masks])
    y = masks.any(axis=(1, 2)).astype(int)
    return X, y, masks


@pytest.fixture
def count_trainings(monkeypatch):
    """Count network trainings (the detector trains with ``partial_fit``)."""
    calls = []
    original = VQVAENet.partial_fit

    def counting_fit(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(VQVAENet, "partial_fit", counting_fit)
    return calls


def test_one_class_kfold_trains_on_normal_images_only(labelled):
    X, y, masks = labelled
    splits = list(OneClassKFold(n_splits=4).split(X, y))
    assert len(splits) == 4
    tested = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(X)))
    for train, test in splits:
        assert (y[train] == 0).all()
        assert set(y[test]) == {0, 1}
        assert not set(train) & set(test)
    from_masks = list(OneClassKFold(n_splits=4).split(X, masks))
    for (a, b), (c, d) in zip(splits, from_masks):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    with pytest.raises(ValueError, match="anomalous"):
        next(OneClassKFold(n_splits=5).split(X, y))
    with pytest.raises(ValueError, match="needs y"):
        next(OneClassKFold().split(X, None))


def test_grid_search_trains_once_per_training_setting(
    labelled, tmp_path, count_trainings
):
    X, y, masks = labelled
    search = GridSearchCV(
        VQVAEAnomalyDetector(**TINY, memory=str(tmp_path)),
        {"beta": [0.1, 0.25, 1.0], "dilation_size": [1, 3, 5, 7]},
        scoring=get_scorer("pixel_roc_auc"),
        cv=OneClassKFold(n_splits=2),
        refit=False,
    )
    search.fit(X, masks)
    assert len(search.cv_results_["params"]) == 12
    assert len(count_trainings) == 6  # 3 betas x 2 folds, not 24
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (0 <= scores).all() and (scores <= 1).all()
    # Dilation does change the result, so the cached nets were really reused.
    assert len(np.unique(np.round(scores, 6))) > 3


def test_cached_refit_equals_fresh_fit(labelled, tmp_path, count_trainings):
    X, _, _ = labelled
    cached = VQVAEAnomalyDetector(**TINY, memory=str(tmp_path)).fit(X)
    again = clone(cached).set_params(dilation_size=5).fit(X)
    assert len(count_trainings) == 1
    fresh = VQVAEAnomalyDetector(**{**TINY, "dilation_size": 5}).fit(X)
    np.testing.assert_allclose(
        again.score_samples(X), fresh.score_samples(X), rtol=1e-6
    )
    cached.set_params(beta=0.5).fit(X)  # a training parameter: trains again
    assert len(count_trainings) == 3


def test_image_scorer_and_n_jobs(labelled, tmp_path):
    X, y, _ = labelled
    grid = {"dilation_size": [1, 5]}
    common = dict(scoring=image_roc_auc_scorer, cv=OneClassKFold(2), refit=False)
    # CPU results are reproducible for one thread count: joblib's worker
    # processes get cpu_count // n_jobs threads, so every run here uses one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        serial = GridSearchCV(VQVAEAnomalyDetector(**TINY), grid, **common).fit(X, y)
        with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
            parallel = GridSearchCV(
                VQVAEAnomalyDetector(**TINY, memory=str(tmp_path)),
                grid,
                n_jobs=2,
                **common,
            ).fit(X, y)
        with joblib.parallel_config(backend="threading", n_jobs=2):
            threaded = GridSearchCV(VQVAEAnomalyDetector(**TINY), grid, **common)
            threaded.fit(X, y)
    finally:
        torch.set_num_threads(threads)
    for other in (parallel, threaded):
        np.testing.assert_allclose(
            serial.cv_results_["mean_test_score"], other.cv_results_["mean_test_score"]
        )


def test_cross_val_score_and_metrics(labelled):
    X, y, masks = labelled
    scores = cross_val_score(
        VQVAEAnomalyDetector(**TINY),
        X,
        y,
        cv=OneClassKFold(2),
        scoring=image_roc_auc_scorer,
    )
    assert scores.shape == (2,) and ((0 <= scores) & (scores <= 1)).all()
    detector = VQVAEAnomalyDetector(**TINY).fit(X[y == 0])
    auc = roc_auc_score(y, -detector.score_samples(X))
    assert auc == pytest.approx(get_scorer("image_roc_auc")(detector, X, y))
    with pytest.raises(ValueError, match="unknown scorer"):
        get_scorer("f1")
    labels = VQVAEAnomalyDetector(**TINY).fit_predict(X[y == 0])
    np.testing.assert_array_equal(
        labels, VQVAEAnomalyDetector(**TINY).fit(X[y == 0]).predict(X[y == 0])
    )


@pytest.mark.parametrize(
    "transformer_class",
    [SSIMMapTransformer, AlignmentMapTransformer, SSIMAMMapTransformer],
)
def test_map_transformers(labelled, transformer_class):
    X, y, _ = labelled
    detector = VQVAEAnomalyDetector(**TINY)
    transformer = transformer_class(detector).fit(X[y == 0])
    features = transformer.transform(X)
    assert features.shape == (16, 16 * 16) and features.dtype == np.float32
    names = transformer.get_feature_names_out()
    assert len(names) == 256 and names[17].endswith("_r1_c1")
    map_type = transformer_class._map_type
    expected = transformer.detector_.set_params(anomaly_map_type=map_type).anomaly_map(
        X
    )
    np.testing.assert_allclose(features, expected.reshape(16, -1))
    prefit = transformer_class(transformer.detector_, prefit=True).fit(X[:2])
    np.testing.assert_array_equal(prefit.transform(X), features)
    with pytest.raises(ValueError, match="size"):
        transformer.transform(X[:, :8, :8])
    with pytest.raises(ValueError, match="prefit"):
        transformer_class(prefit=True).fit(X)


def test_pipeline_map_pooling_isolation_forest(labelled):
    X, y, _ = labelled
    pipe = make_pipeline(
        SSIMAMMapTransformer(VQVAEAnomalyDetector(**{**TINY, "max_epochs": 5})),
        FunctionTransformer(lambda maps: np.c_[maps.mean(1), maps.max(1)]),
        IsolationForest(random_state=0),
    )
    pipe.fit(X[y == 0])
    assert set(pipe.predict(X)) <= {-1, 1}
    assert roc_auc_score(y, -pipe.score_samples(X)) > 0.5
    nested = clone(pipe).set_params(ssimammaptransformer__detector__dilation_size=9)
    assert nested.get_params()["ssimammaptransformer__detector__dilation_size"] == 9


def test_pickle_and_joblib_round_trip(labelled, tmp_path):
    X, y, _ = labelled
    detector = VQVAEAnomalyDetector(**TINY).fit(X[y == 0])
    transformer = SSIMMapTransformer(VQVAEAnomalyDetector(**TINY)).fit(X[y == 0])
    for obj, method in ((detector, "score_samples"), (transformer, "transform")):
        expected = getattr(obj, method)(X)
        np.testing.assert_array_equal(
            getattr(pickle.loads(pickle.dumps(obj)), method)(X), expected
        )
        path = tmp_path / "model.joblib"
        joblib.dump(obj, path)
        np.testing.assert_array_equal(getattr(joblib.load(path), method)(X), expected)


def test_scorer_and_splitter_input_checks(labelled):
    X, y, masks = labelled
    detector = VQVAEAnomalyDetector(**TINY).fit(X[y == 0])
    pixel = get_scorer("pixel_roc_auc")
    assert 0 <= pixel(detector, X, masks[..., None]) <= 1  # (n, H, W, 1) is fine
    with pytest.raises(ValueError, match="shape"):
        pixel(detector, X[:, :, :12], masks[:, :, :12].transpose(0, 2, 1))
    with pytest.raises(ValueError, match="shape"):
        pixel(detector, X, masks.reshape(len(X), 8, 32))
    for bad in (np.where(y == 1, -1, 1), y.astype(str), np.full(len(y), np.nan)):
        with pytest.raises(ValueError, match="labels|numeric"):
            image_roc_auc_scorer(detector, X, bad)
        with pytest.raises(ValueError, match="labels|numeric"):
            next(OneClassKFold(2).split(X, bad))


def test_far_out_tabular_rows_stay_finite_and_are_outliers():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(40, 6))
    detector = VQVAEAnomalyDetector(**TINY, contamination=0.1).fit(T)
    far = np.r_[T[:2], T[:1] * 1e40]
    scores = detector.score_samples(far)
    assert np.isfinite(scores).all()
    assert detector.predict(far)[-1] == -1


def test_frozen_detector_and_path_memory(labelled, tmp_path, count_trainings):
    from sklearn.frozen import FrozenEstimator

    X, y, _ = labelled
    detector = VQVAEAnomalyDetector(**TINY, memory=tmp_path).fit(X[y == 0])
    frozen = SSIMAMMapTransformer(FrozenEstimator(detector)).fit(X)
    np.testing.assert_array_equal(
        frozen.transform(X),
        SSIMAMMapTransformer(detector, prefit=True).fit(X).transform(X),
    )
    again = VQVAEAnomalyDetector(
        **{**TINY, "lr": np.float64(TINY.get("lr", 2e-4))}, memory=tmp_path
    ).fit(X[y == 0])
    assert len(count_trainings) == 1  # np.float64 lr hits the same cache entry
    np.testing.assert_array_equal(again.score_samples(X), detector.score_samples(X))


def test_prefit_transformer_checks_x_at_fit(fitted_grey, grey_images):
    from skvqad import SSIMMapTransformer

    rgb = np.repeat(grey_images[..., None], 3, axis=-1)
    with pytest.raises(ValueError, match="channel"):
        SSIMMapTransformer(fitted_grey, prefit=True).fit(rgb)
    fitted = SSIMMapTransformer(fitted_grey, prefit=True).fit(grey_images)
    assert fitted.map_shape_ == grey_images.shape[1:3]
