"""Image ROC-AUC of alternative alignment maps on CIFAR-10 one-vs-rest.

Trains (or loads) one reduced-model detector per class, as
``skvqad benchmark cifar10 --quick --max-epochs 10 --param batch_size=32``
does with ``--seed 0``, and scores the test set with several ways of turning
the latent distances into the AM, each alone and multiplied with 1 - SSIM
(image score = mean of the map, as in the paper). Used to choose
``alignment_distance`` (``benchmarks/RESULTS.md``)::

    python benchmarks/cifar_am_variants.py --root DATA/cifar10 --models DIR

``--models DIR`` keeps the trained detectors (``DIR/<class>.joblib``) and
reuses them on a second run. Prints one JSON line per class, then the means;
``--output FILE`` also writes ``{class: {variant|map: ROC-AUC}}`` as JSON.
"""

import argparse
import json
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from skvqad import VQVAEAnomalyDetector, ssim_am_map, ssim_map, upsample_alignment_map
from skvqad._anomaly_map import reconstruction
from skvqad._benchmark import CPU_MODEL, PROTOCOLS
from skvqad._scoring import pool_maps
from skvqad.datasets import load_cifar10_one_vs_rest

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]  # fmt: skip


def _variants(output, codebook, code_alignment):
    """AM variants (n, h, w) of one forward pass."""
    am = output.alignment  # squared distance, Eq. 6
    z_e = output.z_e.movedim(1, -1)
    nearest = codebook[output.indices]
    distances = torch.cdist(z_e.reshape(-1, z_e.shape[-1]), codebook).pow(2)
    two = distances.topk(2, largest=False).values
    per_code = am / code_alignment[output.indices]
    return {
        "squared (paper)": am,
        "squared, per code": per_code,
        "euclidean": am.sqrt(),
        "euclidean, per code": per_code.sqrt(),
        "relative to |z_e|^2": am / z_e.pow(2).sum(-1).clamp_min(1e-12),
        "relative to |e|^2": am / nearest.pow(2).sum(-1).clamp_min(1e-12),
        "relative to |z_e|^2 + |e|^2": am
        / (z_e.pow(2).sum(-1) + nearest.pow(2).sum(-1)).clamp_min(1e-12),
        "nearest / second nearest": (two[:, 0] / two[:, 1].clamp_min(1e-12)).reshape(
            am.shape
        ),
    }


def _detector(root, name, models):
    path = models / f"{name}.joblib" if models else None
    if path is not None and path.exists():
        return joblib.load(path)
    settings = PROTOCOLS["cifar10"]
    detector = VQVAEAnomalyDetector(
        **{**CPU_MODEL, "batch_size": 32},
        n_downsampling=settings["n_downsampling"],
        dilation_size=settings["dilation_size"],
        max_epochs=10,
        random_state=0,
    ).fit(load_cifar10_one_vs_rest(root, name).X_train)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(detector, path)
    return detector


@torch.no_grad()
def evaluate(detector, data, batch_size=500):
    """{variant|map type: image ROC-AUC} on the test set."""
    module = detector.net_.module_.eval()
    codebook = module.quantizer.codebook.weight
    code_alignment = module.quantizer.code_alignment
    scale = 2**detector.n_downsampling
    scores = {}
    for start in range(0, len(data.X_test), batch_size):
        x = torch.from_numpy(data.X_test[start : start + batch_size]).movedim(-1, 1)
        x = x.to(detector.net_.device)
        output = module(x)
        recon = reconstruction(output.logits, x.shape[-2:], detector.reconstruction)
        ssim = ssim_map(x, recon, data_range=1.0)
        scores.setdefault("SSIM", []).append(pool_maps(1 - ssim, "mean").cpu())
        for name, am in _variants(output, codebook, code_alignment).items():
            alone = upsample_alignment_map(
                am, output_size=x.shape[-2:], scale_factor=scale,
                upsampling="nearest", dilation_size=detector.dilation_size,
            )  # fmt: skip
            product = ssim_am_map(
                ssim, am, scale_factor=scale, dilation_size=detector.dilation_size
            )
            scores.setdefault(f"{name}|AM", []).append(pool_maps(alone, "mean").cpu())
            scores.setdefault(f"{name}|SSIM+AM", []).append(
                pool_maps(product, "mean").cpu()
            )
    return {
        key: round(float(roc_auc_score(data.y_test, torch.cat(values).numpy())), 4)
        for key, values in scores.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=None)
    parser.add_argument("--category", action="append", choices=CLASSES)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    results = {}
    for name in args.category or CLASSES:
        detector = _detector(args.root, name, args.models)
        results[name] = evaluate(detector, load_cifar10_one_vs_rest(args.root, name))
        print(name, json.dumps(results[name]), flush=True)
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=1))
    print("mean over", len(results), "classes:")
    for key in next(iter(results.values())):
        print(f"  {key}: {np.mean([r[key] for r in results.values()]):.4f}")


if __name__ == "__main__":
    main()
