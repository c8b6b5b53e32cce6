"""Grid search on a Dask cluster, and networks trained once across processes.

Issue 16, part 1. The cluster tests need dask and distributed (the ``scale``
extra) and skip without them; the cache tests need neither.
"""

import multiprocessing
import os
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from filelock import FileLock
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skvqad import OneClassKFold, VQVAEAnomalyDetector, get_scorer
from skvqad._cache import LOCK_DIR, cached_call, call_key

from .conftest import TINY, paste_square, stripes

#: 24-pixel stripes, 3 epochs: four candidates with four different scores.
PARAMS = {**TINY, "max_epochs": 3, "lr": 1e-3}
GRID = {"beta": [0.1, 1.0], "dilation_size": [1, 5]}


class TrainingLog(Callback):
    """Appends a line to ``path`` when a network starts training, in any process.

    ``delay`` (seconds) holds the training there, so that a second process
    asking for the same network meanwhile would find nothing cached.
    """

    def __init__(self, path, delay=0.0):
        self.path, self.delay = str(path), delay

    def on_train_begin(self, net, **kwargs):
        with open(self.path, "a") as f:  # appends of one short line are atomic
            f.write(f"{os.getpid()}\n")
        time.sleep(self.delay)


def _n_trained(log):
    return len(Path(log).read_text().split()) if Path(log).exists() else 0


@pytest.fixture(scope="module")
def labelled():
    """12 normal and 4 defective 24x24 stripe images, and their labels."""
    defective, _ = paste_square(stripes(4, size=24, seed=5), 4, 4, side=5, value=0.0)
    X = np.concatenate([stripes(12, size=24, seed=0), defective])
    return X, np.r_[np.zeros(12, int), np.ones(4, int)]


@pytest.fixture
def dask_client():
    """A client of a LocalCluster of two single-threaded worker processes."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def _search_and_refit(X, y, memory, log, n_jobs):
    """The grid search (refit=False) and the refit on the normal images."""
    detector = VQVAEAnomalyDetector(
        **PARAMS, memory=memory, callbacks=[TrainingLog(log)]
    )
    search = GridSearchCV(
        detector,
        GRID,
        scoring=get_scorer("image_roc_auc"),
        cv=OneClassKFold(n_splits=2),
        refit=False,
        n_jobs=n_jobs,
    ).fit(X, y)
    best = clone(detector).set_params(**search.best_params_).fit(X[y == 0])
    return search, best


def test_dask_grid_search_equals_the_local_one(labelled, dask_client, tmp_path):
    X, y = labelled
    # Dask's workers run torch on one thread (the nanny sets OMP_NUM_THREADS=1);
    # with the same thread count here the CPU results are bitwise equal.
    assert set(dask_client.run(torch.get_num_threads).values()) == {1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local, local_best = _search_and_refit(
            X, y, tmp_path / "local", tmp_path / "local.log", n_jobs=1
        )
        with joblib.parallel_config(backend="dask"):  # fits go to the workers
            dask, dask_best = _search_and_refit(
                X, y, tmp_path / "dask", tmp_path / "dask.log", n_jobs=-1
            )
    finally:
        torch.set_num_threads(threads)
    # 2 betas x 2 folds, plus the refit: not 2 x 2 dilations x 2 folds + 1.
    assert _n_trained(tmp_path / "local.log") == 5
    assert _n_trained(tmp_path / "dask.log") == 5
    workers = set(Path(tmp_path / "dask.log").read_text().split())
    assert str(os.getpid()) in workers and len(workers) >= 2  # the refit ran here
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(dask.cv_results_[key], local.cv_results_[key])
    assert len(np.unique(local.cv_results_["mean_test_score"])) == 4
    assert dask.best_params_ == local.best_params_
    np.testing.assert_array_equal(
        dask_best.score_samples(X), local_best.score_samples(X)
    )


def _fit_together(X, memory, log, rendezvous):
    """Fit once both processes have arrived; return the training scores."""
    Path(rendezvous, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(rendezvous)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    detector = VQVAEAnomalyDetector(
        **PARAMS, memory=memory, callbacks=[TrainingLog(log, delay=1.0)]
    )
    return os.getpid(), detector.fit(X).score_samples(X)


def test_two_processes_asking_for_one_network_train_it_once(labelled, tmp_path):
    X, y = labelled
    (tmp_path / "arrived").mkdir()
    args = (X[y == 0], str(tmp_path / "cache"), tmp_path / "log", tmp_path / "arrived")
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        results = joblib.Parallel(n_jobs=2)(
            joblib.delayed(_fit_together)(*args) for _ in range(2)
        )
    (pid_a, scores_a), (pid_b, scores_b) = results
    assert pid_a != pid_b
    # Without the lock both would miss the cache (the training waits 1 s).
    assert _n_trained(tmp_path / "log") == 1
    np.testing.assert_array_equal(scores_a, scores_b)  # the same network


def _record(log, value):
    """A cached function: appends a line to ``log`` when it computes."""
    with open(log, "a") as f:
        f.write("computed\n")
    return 2 * value


def _fail_first(log, value):
    """Raises the first time (as a stopped training does), then computes."""
    first = not Path(log).exists()
    _record(log, value)
    if first:
        raise KeyboardInterrupt("stopped")
    return 2 * value


def test_a_process_new_to_a_cache_folder_loads_what_another_stored(tmp_path):
    log = str(tmp_path / "log")
    # This process uses the cache at two locations. joblib records the cached
    # function's code at the first only; a fresh process at the second then
    # took its first call for a miss and computed again.
    assert cached_call(str(tmp_path / "one"), _record, log, 21) == 42
    assert cached_call(str(tmp_path / "two"), _record, log, 21) == 42
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(cached_call, (str(tmp_path / "two"), _record, log, 21))
    assert result == 42
    assert _n_trained(log) == 2


def test_the_arguments_are_hashed_once_per_call(tmp_path, monkeypatch):
    X = np.random.default_rng(0).random((64, 1, 16, 16), dtype=np.float32)
    hashed = []
    save = joblib.hashing.NumpyHasher.save

    def counting(self, obj):
        hashed.append(obj is X)
        return save(self, obj)

    monkeypatch.setattr(joblib.hashing.NumpyHasher, "save", counting)
    log = str(tmp_path / "log")
    for _ in range(2):  # computed, then loaded
        hashed.clear()
        cached_call(tmp_path, _record, log, X, ignore=["log"])
        assert hashed.count(True) == 1
    assert _n_trained(log) == 1


def test_the_key_leaves_out_ignored_arguments():
    key = call_key(_record, ("a", 1), {}, ignore=["log"])
    assert key == call_key(_record, ("b",), {"value": 1}, ignore=["log"])
    assert key != call_key(_record, ("a", 2), {}, ignore=["log"])
    assert key != call_key(_record, ("a", 1), {})
    assert len(key) == 32 and int(key, 16) >= 0
    # The device is an argument of train_net: a CPU worker never loads a
    # network cached by a CUDA worker, whose key holds "cuda".
    assert call_key(_record, ("a", "cpu"), {}) != call_key(_record, ("a", "cuda"), {})


def test_an_exception_is_not_cached_and_releases_the_lock(tmp_path):
    log = str(tmp_path / "log")
    with pytest.raises(KeyboardInterrupt, match="stopped"):
        cached_call(tmp_path, _fail_first, log, 21)
    lock = tmp_path / LOCK_DIR / f"{call_key(_fail_first, (log, 21), {})}.lock"
    assert lock.exists()
    with FileLock(lock, timeout=0):  # free: Timeout otherwise
        pass
    assert cached_call(tmp_path, _fail_first, log, 21) == 42  # computes again
    assert cached_call(tmp_path, _fail_first, log, 21) == 42  # loads
    assert _n_trained(log) == 2


class _Recorder:
    """A cache with joblib.Memory's interface but no folder: no lock."""

    def __init__(self):
        self.calls = []

    def cache(self, func, ignore=None):
        self.calls.append((func, ignore))
        return func


@pytest.mark.parametrize("memory", [None, joblib.Memory(None), _Recorder()])
def test_no_lock_without_a_cache_folder(memory, tmp_path):
    log = str(tmp_path / "log")
    for _ in range(2):
        assert cached_call(memory, _record, log, 21, ignore=["log"]) == 42
    assert _n_trained(log) == 2  # nothing cached
    if isinstance(memory, _Recorder):
        assert memory.calls == [(_record, ["log"])] * 2
