"""A set of our own: tiles of the Hubble deep field with telescope artefacts.

Built from ``skimage.data.hubble_deep_field()`` (bundled with scikit-image,
nothing is downloaded): galaxies on a black sky, a dark background like many
real inspection images. Normal tiles come from the left two thirds of the
photograph (training) and from the right third (testing), so that no test
tile overlaps a training tile. Half the test tiles get one artefact of a kind
that skvqad's defaults were not designed around, each with its pixel mask:

- a satellite trail: a straight bright line, 1-2 pixels wide, across the tile;
- a bleed column: a saturated vertical streak below a point, as a CCD bleeds;
- a ghost: a faint, large, soft-edged disc (+0.12), an internal reflection.

Runs the command line's defaults (the CPU model, 6000 optimisation steps) and
prints the template / SSIM / AM / SSIM+AM table::

    python benchmarks/hubble_tiles.py --output benchmarks/results/cpu-hubble
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from skimage import data as skdata
from skimage import draw
from sklearn.utils import Bunch

from skvqad import VQVAEAnomalyDetector
from skvqad._anomaly_map import POOLINGS
from skvqad._benchmark import COLUMN_NAMES, COLUMNS, epochs_for_steps, evaluate
from skvqad._cli import CLI_MODEL

TILE = 64


def _tiles(image, n, rng):
    height, width = image.shape[:2]
    rows = rng.integers(0, height - TILE + 1, n)
    cols = rng.integers(0, width - TILE + 1, n)
    return np.stack([image[r : r + TILE, c : c + TILE] for r, c in zip(rows, cols)])


def _artefact(tile, kind, rng):
    """Add one artefact to a float tile in place; return its mask."""
    mask = np.zeros(tile.shape[:2], bool)
    if kind == "trail":
        r0, r1 = rng.integers(0, TILE, 2)
        rr, cc = draw.line(r0, 0, r1, TILE - 1)
        width = rng.integers(1, 3)
        for shift in range(width):
            mask[np.clip(rr + shift, 0, TILE - 1), cc] = True
        tile[mask] = np.maximum(tile[mask], 0.85)
    elif kind == "bleed":
        c = rng.integers(4, TILE - 4)
        r0 = rng.integers(0, TILE // 2)
        length = rng.integers(TILE // 4, TILE // 2)
        mask[r0 : r0 + length, c : c + 3] = True
        tile[mask] = 1.0
    else:  # ghost
        r, c = rng.integers(16, TILE - 16, 2)
        radius = rng.integers(10, 16)
        yy, xx = np.mgrid[:TILE, :TILE]
        inside = np.hypot(yy - r, xx - c) / radius
        weight = np.clip(1.5 - inside, 0, 1)  # soft edge
        mask[:] = weight > 0.5
        tile += 0.12 * weight[..., None]
    np.clip(tile, 0, 1, out=tile)
    return mask


def make_hubble_defects(n_train=300, n_test=64, random_state=0):
    """Training tiles, and test tiles of which half hold an artefact."""
    rng = np.random.default_rng(random_state)
    sky = skdata.hubble_deep_field().astype(np.float32) / 255
    split = sky.shape[1] * 2 // 3
    X_train = _tiles(sky[:, :split], n_train, rng)
    X_test = _tiles(sky[:, split:], n_test, rng).copy()
    masks = np.zeros(X_test.shape[:3], bool)
    kinds = np.array(["good"] * n_test, dtype=object)
    for i in range(n_test // 2, n_test):
        kinds[i] = ("trail", "bleed", "ghost")[i % 3]
        masks[i] = _artefact(X_test[i], kinds[i], rng)
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        y_test=(kinds != "good").astype(int),
        masks_test=masks,
        defect_types=kinds,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    data = make_hubble_defects(random_state=args.seed)
    epochs = epochs_for_steps(len(data.X_train), CLI_MODEL["batch_size"], args.steps)
    detector = VQVAEAnomalyDetector(
        **CLI_MODEL, crop_size=64, max_epochs=epochs, random_state=args.seed
    )
    start = time.perf_counter()
    detector.fit(data.X_train)
    fit_seconds = round(time.perf_counter() - start, 1)
    figures, _ = evaluate(detector, data, detailed=False)
    lines = [
        f"Hubble tiles, {len(data.X_train)} training / {len(data.X_test)} test "
        f"tiles of {TILE} px, {args.steps} steps ({epochs} epochs), fit "
        f"{fit_seconds} s on {detector.net_.device}",
        "",
        "| metric | " + " | ".join(COLUMN_NAMES[c] for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    metrics = ["pixel ROC-AUC (pooled)", "image ROC-AUC"]
    metrics += [f"image ROC-AUC ({how})" for how in POOLINGS]
    for metric in metrics:
        values = " | ".join(f"{figures[c][metric]:.3f}" for c in COLUMNS)
        lines.append(f"| {metric} | {values} |")
    table = "\n".join(lines)
    print(table)
    if args.output is not None:
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / "hubble.md").write_text(table + "\n")
        (args.output / "hubble.json").write_text(
            json.dumps({"fit_seconds": fit_seconds, "epochs": epochs, **figures})
        )


if __name__ == "__main__":
    main()
