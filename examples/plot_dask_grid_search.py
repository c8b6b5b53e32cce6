"""
=============================
Grid search on a Dask cluster
=============================

:class:`~sklearn.model_selection.GridSearchCV` runs its fits through joblib,
and joblib's ``"dask"`` backend sends each one to a ``dask.distributed``
worker: a process of this machine, of another machine, or one per GPU. Here
a grid of 2 betas x 2 dilation sizes with 2 folds (8 fits) runs on a
:class:`~distributed.LocalCluster` of two worker processes.

- ``memory=`` is a folder every worker reads and writes. A network is
  trained once per training setting and fold: the candidates that differ
  only in ``dilation_size`` load it, and a file lock makes a worker that
  needs a network another worker is training wait for it rather than train
  it again. 8 fits train 4 networks.
- The results are those of the same search run on one process
  (``tests/test_scale_out_dask.py`` checks it, bit for bit on the CPU with
  one torch thread per process, as Dask's workers run).

Needs the ``scale`` extra: ``pip install -e ".[scale]"`` (dask and
distributed).
"""

# %%
# Data: normal tiles of the brick photograph, and test tiles with defects.
# The workers started below are new Python processes that import this script
# again (Python's rule for starting processes), so the work further down runs
# under ``if __name__ == "__main__":`` and only here.
import shutil
import tempfile
import time
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV

from skvqad import OneClassKFold, VQVAEAnomalyDetector, get_scorer
from skvqad.datasets import make_texture_defects

data = make_texture_defects(
    "brick", n_train=32, n_test=16, image_size=32, random_state=0
)
X = np.concatenate([data.X_train, data.X_test])
masks = np.concatenate([np.zeros_like(data.X_train, dtype=bool), data.masks_test])
betas, dilations = [0.25, 1.0], [1, 7]

# %%
# The search on the cluster.
#
# On a real cluster, connect to its scheduler instead of starting a
# LocalCluster, and give ``memory=`` a folder that every worker mounts at the
# same path (a network file system whose file locks work across machines)::
#
#     client = Client("tcp://scheduler:8786")
#     detector.set_params(memory="/shared/skvqad-cache", device="auto")
#
# On a host with several GPUs, start one single-threaded worker per GPU, its
# GPU first in ``CUDA_VISIBLE_DEVICES``: ``dask-cuda``'s
# ``Client(LocalCUDACluster())`` does so, or by hand, one per GPU::
#
#     CUDA_VISIBLE_DEVICES=1 dask worker tcp://scheduler:8786 --nworkers 1 --nthreads 1
#
# With ``device="auto"`` (or ``"cuda"``, never ``"cuda:1"``) each fit then
# trains on its worker's GPU.
if __name__ == "__main__":
    cache = tempfile.mkdtemp(prefix="skvqad-cache-")
    detector = VQVAEAnomalyDetector(
        n_downsampling=2, n_residual_layers=1, hidden_channels=16,
        embedding_dim=16, n_embeddings=64, max_epochs=4, lr=1e-3,
        random_state=0, memory=cache,
    )  # fmt: skip
    search = GridSearchCV(
        detector,
        {"beta": betas, "dilation_size": dilations},
        scoring=get_scorer("pixel_roc_auc"),
        cv=OneClassKFold(n_splits=2),
        refit=False,  # refit below, on the normal images only
        n_jobs=-1,  # every worker of the cluster
    )
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask"), get_task_stream() as stream:
            search.fit(X, masks)
        seconds = time.perf_counter() - start
    # Refit search.best_params_ on the normal images yourself (refit=False):
    # clone(detector).set_params(**search.best_params_).fit(data.X_train).

# %%
# Results. Each network is one entry of the joblib cache, one per beta and
# fold (``tests/test_scale_out_dask.py`` counts the trainings: each network is
# trained once, by one worker). The task stream records which worker ran
# which batch of fits, and when: a batch that trains a network is long, one
# that only loads networks short.
if __name__ == "__main__":
    n_fits = len(search.cv_results_["params"]) * search.n_splits_
    stored = len(list(Path(cache).glob("joblib/**/output.pkl")))
    shutil.rmtree(cache)  # a temporary cache: remove it once counted
    print(
        f"{n_fits} fits on 2 workers in {seconds:.1f} s, {stored} networks in the cache"
    )
    print("best parameters:", search.best_params_)
    for params, score in zip(
        search.cv_results_["params"], search.cv_results_["mean_test_score"]
    ):
        print(f"  {params}: pixel ROC-AUC {score:.3f}")

    fig, (ax_time, ax_grid) = plt.subplots(
        1, 2, figsize=(7.5, 2.8), layout="constrained", width_ratios=(1.6, 1)
    )
    tasks = [t for t in stream.data if "fit" in str(t.get("key", ""))]
    workers = sorted({t["worker"] for t in tasks})
    t0 = min(s["start"] for t in tasks for s in t["startstops"])
    for row, worker in enumerate(workers):
        spans = [
            (s["start"] - t0, s["stop"] - s["start"])
            for t in tasks
            if t["worker"] == worker
            for s in t["startstops"]
            if s["action"] == "compute"
        ]
        ax_time.broken_barh(spans, (row - 0.35, 0.7), edgecolor="k")
    ax_time.set_yticks(
        range(len(workers)), [f"worker {i}" for i in range(len(workers))]
    )
    ax_time.set_xlabel("time since the first fit (s)")
    ax_time.set_title("batches of fits per worker", fontsize=9)
    surface = np.reshape(search.cv_results_["mean_test_score"], (2, 2))
    shown = ax_grid.imshow(surface, cmap="viridis")
    ax_grid.set_xticks(range(2), dilations)
    ax_grid.set_yticks(range(2), betas)
    ax_grid.set_xlabel("dilation_size (pixels)")
    ax_grid.set_ylabel("beta")
    for (r, c), value in np.ndenumerate(surface):
        ax_grid.text(c, r, f"{value:.3f}", ha="center", va="center", color="w")
    fig.colorbar(shown, ax=ax_grid, label="pixel ROC-AUC")
    plt.show()
