"""Train the detector on the MVTec AD grid subset and report pooled pixel ROC-AUC.

Usage::

    python benchmarks/core_mvtec_grid.py --root ../shared/data/mvtec_ad/grid \
        --hidden-channels 64 --max-epochs 300

Reads the official MVTec AD layout, resizes images (anti-aliased) and masks
(nearest neighbour) to ``--image-size``, trains on ``train/good`` and reports
the pooled pixel ROC-AUC (``sklearn.metrics.roc_auc_score`` over all test
pixels) of the SSIM, AM and SSIM+AM maps, and the image ROC-AUC of each.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import load_mvtec_ad


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/mvtec_ad/grid")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--hidden-channels", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--n-embeddings", type=int, default=512)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--dilation-size", type=int, default=7)
    parser.add_argument("--out", default=None, help="optional JSON file for results")
    args = parser.parse_args()

    root = Path(args.root).resolve()
    data = load_mvtec_ad(root.parent, root.name, image_size=args.image_size)
    X_train, X_test, masks, y_test = (
        data.X_train,
        data.X_test,
        data.masks_test,
        data.y_test,
    )
    detector = VQVAEAnomalyDetector(
        hidden_channels=args.hidden_channels,
        embedding_dim=args.embedding_dim,
        n_embeddings=args.n_embeddings,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        dilation_size=args.dilation_size,
        random_state=0,
        verbose=0,
    )
    start = time.perf_counter()
    detector.fit(X_train)
    fit_seconds = time.perf_counter() - start
    results = {
        "settings": vars(args),
        "device": str(detector.net_.device),
        "torch_threads": torch.get_num_threads(),
        "n_train": len(X_train),
        "n_test": len(X_test),
        "fit_seconds": round(fit_seconds, 1),
        "final_train_loss": detector.net_.history[-1, "train_loss"],
        "codebook_usage": detector.codebook_usage_,
    }
    for map_type in ("ssim", "am", "ssim+am"):
        # Post-processing parameters need no retraining.
        detector.set_params(anomaly_map_type=map_type)
        start = time.perf_counter()
        maps = detector.anomaly_map(X_test)
        results[f"{map_type} score_seconds"] = round(time.perf_counter() - start, 2)
        results[f"{map_type} pixel ROC-AUC"] = roc_auc_score(
            masks.ravel(), maps.ravel()
        )
        results[f"{map_type} image ROC-AUC"] = roc_auc_score(
            y_test, maps.mean(axis=(1, 2))
        )
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
