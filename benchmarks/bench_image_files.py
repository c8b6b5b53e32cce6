"""Peak memory of ``fit`` on image files against ``fit`` on the loaded array.

Usage::

    python benchmarks/bench_image_files.py [--n 2000] [--size 256]
        [--folder /tmp/skvqad-files] [--workers 2]

Writes ``n`` RGB PNG files of ``size`` x ``size`` pixels (random crops,
flips and noise of scikit-image's photographs; once, reused), then fits the
same small detector (one epoch) three ways, each in a fresh process, and
prints each run's peak resident memory (the process's ``ru_maxrss``; with
worker processes, their largest too) and wall time:

* ``array``: ``np.asarray(ImageFiles(paths))``, the float32 array the
  loaders return, then ``fit(array)``;
* ``files``: ``fit(ImageFiles(paths))``, files read in the fitting process;
* ``files+workers``: ``fit(ImageFiles(paths, num_workers=workers))``.

Each run also scores the first 64 files; the script checks that the three
give the same scores (same seed: the same network).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = dict(
    n_downsampling=3,
    n_residual_layers=1,
    hidden_channels=32,
    embedding_dim=32,
    n_embeddings=64,
    max_epochs=1,
    batch_size=8,
    random_state=0,
    device="cpu",
)


def write_files(folder, n, size):
    """``n`` PNG files of ``size``² RGB pixels in ``folder``; their paths."""
    from PIL import Image
    from skimage import data
    from skimage.transform import resize

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"image_{i:05d}.png" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    photos = [
        (resize(p, (2 * size, 2 * size, 3), anti_aliasing=True) * 255).astype(np.uint8)
        for p in photos
    ]
    for path in paths:
        photo = photos[rng.integers(len(photos))]
        top, left = rng.integers(0, size, 2)
        tile = photo[top : top + size, left : left + size].astype(np.int16)
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        tile = tile + rng.integers(-8, 9, tile.shape)
        Image.fromarray(np.clip(tile, 0, 255).astype(np.uint8)).save(path)
    return paths


def run(mode, folder, workers, out):
    """One fit in this process; writes peak memory, time and scores to ``out``."""
    import torch

    from skvqad import VQVAEAnomalyDetector
    from skvqad.datasets import ImageFiles

    torch.set_num_threads(1)
    paths = sorted(str(p) for p in Path(folder).glob("image_*.png"))
    start = time.perf_counter()
    if mode == "array":
        X = np.asarray(ImageFiles(paths))
    else:
        X = ImageFiles(paths, num_workers=workers if mode == "files+workers" else 0)
    detector = VQVAEAnomalyDetector(**MODEL).fit(X)
    fit_s = time.perf_counter() - start
    scores = detector.score_samples(X[:64])
    report = {
        "mode": mode,
        "fit_s": fit_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        / 1024,
        "scores": scores.tolist(),
    }
    Path(out).write_text(json.dumps(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument(
        "--folder", default=str(Path(tempfile.gettempdir()) / "skvqad-files")
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--modes", default="array,files,files+workers")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = Path(args.folder) / f"{args.n}x{args.size}"
    if args.run:
        return run(args.run, folder, args.workers, args.out)
    paths = write_files(folder, args.n, args.size)
    float32_mb = args.n * args.size * args.size * 3 * 4 / 2**20
    print(
        f"{len(paths)} PNG files of {args.size}x{args.size} RGB in {folder}: as a "
        f"float32 array {float32_mb:.0f} MiB, as uint8 {float32_mb / 4:.0f} MiB"
    )
    reports = []
    for mode in args.modes.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, __file__, "--run", mode, "--out", out.name]
            command += ["--folder", args.folder, "--n", str(args.n)]
            command += ["--size", str(args.size), "--workers", str(args.workers)]
            subprocess.run(command, check=True)
            report = json.loads(Path(out.name).read_text())
        reports.append(report)
        print(
            f"{mode:>14}: fit {report['fit_s']:7.1f} s, peak RSS "
            f"{report['peak_rss_mb']:6.0f} MiB (workers' largest "
            f"{report['workers_peak_rss_mb']:.0f} MiB)",
            flush=True,
        )
    first = np.array(reports[0]["scores"])
    for report in reports[1:]:
        gap = np.abs(np.array(report["scores"]) - first).max()
        print(
            f"largest score difference, {report['mode']} vs {reports[0]['mode']}: "
            f"{gap:.3g}"
        )


if __name__ == "__main__":
    main()
