"""A small grid search in one process and on a Dask LocalCluster of worker processes.

Usage::

    python benchmarks/bench_dask_grid_search.py [--n-workers 2] [--max-epochs 10]

Runs the same ``GridSearchCV`` (2 betas x 3 dilation sizes, ``OneClassKFold(2)``,
pooled pixel ROC-AUC, ``memory=`` a fresh folder each) with ``n_jobs=1`` and
then through ``joblib.parallel_config(backend="dask")`` on a
``distributed.LocalCluster`` of ``--n-workers`` single-threaded worker
processes, twice (new workers, then the same workers warm). Prints the wall
time of each search, their ratio, the networks each run trained (counted by a
skorch callback that appends a line to a file when a training begins, in
whichever process), and whether the scores agree. The local run uses one
torch thread, as each Dask worker does, so that the scores can agree bit for
bit; the cluster's start (with the workers' import of skvqad) is timed
apart. Needs the ``scale`` extra (dask, distributed).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from skorch.callbacks import Callback

from skvqad import OneClassKFold, VQVAEAnomalyDetector, get_scorer
from skvqad.datasets import make_texture_defects

GRID = {"beta": [0.25, 1.0], "dilation_size": [1, 5, 9]}


class TrainingLog(Callback):
    """Appends a line to ``path`` when a network starts training, in any process."""

    def __init__(self, path):
        self.path = str(path)

    def on_train_begin(self, net, **kwargs):
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")


def _search(X, masks, args, log, n_jobs):
    # The callback is imported from this file as a module, so that it pickles
    # by reference (a class of __main__ could not be stored by joblib.Memory).
    from bench_dask_grid_search import TrainingLog as Log

    detector = VQVAEAnomalyDetector(
        n_downsampling=2,
        n_residual_layers=1,
        hidden_channels=32,
        embedding_dim=32,
        n_embeddings=128,
        max_epochs=args.max_epochs,
        lr=1e-3,
        random_state=0,
        memory=tempfile.mkdtemp(prefix="skvqad-bench-"),
        callbacks=[Log(log)],
    )
    search = GridSearchCV(
        detector,
        GRID,
        scoring=get_scorer("pixel_roc_auc"),
        cv=OneClassKFold(n_splits=2),
        refit=False,
        n_jobs=n_jobs,
    )
    start = time.perf_counter()
    search.fit(X, masks)
    return search, time.perf_counter() - start, len(Path(log).read_text().split())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=10)
    parser.add_argument("--n-train", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    data = make_texture_defects(
        "brick", n_train=args.n_train, n_test=24, image_size=args.image_size,
        random_state=0,
    )  # fmt: skip
    X = np.concatenate([data.X_train, data.X_test])
    masks = np.concatenate([np.zeros_like(data.X_train, dtype=bool), data.masks_test])
    logs = Path(tempfile.mkdtemp(prefix="skvqad-bench-logs-"))
    n_fits = len(GRID["beta"]) * len(GRID["dilation_size"]) * 2
    print(
        f"{n_fits} fits ({len(GRID['beta'])} betas x {len(GRID['dilation_size'])} "
        f"dilations x 2 folds) on {len(X)} images of {args.image_size}^2, "
        f"{args.max_epochs} epochs; torch {torch.__version__}, {os.cpu_count()} CPUs"
    )

    torch.set_num_threads(1)  # as each Dask worker (OMP_NUM_THREADS=1)
    local, local_s, local_n = _search(X, masks, args, logs / "local.log", n_jobs=1)
    print(f"one process: {local_s:.1f} s, {local_n} networks trained")

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=args.n_workers, threads_per_worker=1, processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster),
    ):  # fmt: skip
        up = time.perf_counter() - start  # the workers import this file: skvqad
        print(f"cluster of {args.n_workers} workers started in {up:.1f} s")
        for run in ("new", "warm"):  # the second search on the same workers
            with joblib.parallel_config(backend="dask"):
                dask, dask_s, dask_n = _search(
                    X, masks, args, logs / f"dask-{run}.log", n_jobs=-1
                )
            a = local.cv_results_["mean_test_score"]
            b = dask.cv_results_["mean_test_score"]
            print(
                f"{args.n_workers} Dask workers ({run}): {dask_s:.1f} s, {dask_n} "
                f"networks trained; ratio one process / Dask {local_s / dask_s:.2f}; "
                f"scores equal bit for bit: {np.array_equal(a, b)} (largest "
                f"difference {np.abs(a - b).max():.1e}); best parameters equal: "
                f"{local.best_params_ == dask.best_params_}"
            )
    print(f"best parameters: {local.best_params_}")


if __name__ == "__main__":
    main()
