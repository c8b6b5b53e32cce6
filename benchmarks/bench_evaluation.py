"""Memory and time of ``skvqad benchmark folder --quick`` against a bare maps pass.

Usage::

    python benchmarks/make_texture_folder.py --output /tmp/gravel1000
    python benchmarks/bench_evaluation.py --root /tmp/gravel1000 [--max-epochs 1]

Runs the command as a user would (a subprocess), and reads its peak resident
memory (``getrusage`` of the child) and the seconds it spent after the fit
(``after_fit_seconds`` of ``benchmark.json``: evaluation of the template,
SSIM, AM and SSIM+AM, every metric, the figure). Then, in this process, a
bare PyTorch maps pass over the same test images with a network of the same
architecture (the quick CPU model at the protocol's depth): each batch of
files read with ``skimage.io.imread``, the forward pass, the continuous
Bernoulli mean, ``1 - SSIM`` times the upsampled, dilated AM; timed once
reading the files and once from an array already in memory. Prints the
figures and the ratios. Training quality does not matter to either time, so
``--max-epochs 1`` keeps the run short.
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
import torch
from bench_throughput import bare_maps
from skimage import io

from skvqad import VQVAE
from skvqad._benchmark import CPU_MODEL, PROTOCOLS

ARCH = {k: CPU_MODEL[k] for k in ("hidden_channels", "n_embeddings",
                                  "embedding_dim", "n_residual_layers")}  # fmt: skip


def test_files(root):
    return sorted(p for p in (root / "test").rglob("*") if p.suffix == ".png")


def bare_pass_from_files(model, paths, batch_size):
    """The bare maps pass, reading each batch of files first."""
    for start in range(0, len(paths), batch_size):
        batch = np.stack([io.imread(p) for p in paths[start : start + batch_size]])
        if batch.ndim == 3:
            batch = np.repeat(batch[..., None], 3, axis=-1)
        bare_maps(model, batch, batch_size, "cpu")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--max-epochs", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "skvqad", "benchmark", "folder",
                   "--root", str(args.root), "--quick", "--quiet",
                   "--max-epochs", str(args.max_epochs),
                   "--output-dir", out]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        report = json.loads((Path(out) / "benchmark.json").read_text())
    result = next(iter(report["results"].values()))
    paths = test_files(args.root)
    torch.manual_seed(0)
    depth = PROTOCOLS["folder"]["n_downsampling"]
    model = VQVAE(in_channels=3, n_downsampling=depth, **ARCH).eval()
    batch_size = CPU_MODEL["batch_size"]
    bare_pass_from_files(model, paths[:batch_size], batch_size)  # warm-up
    start = time.perf_counter()
    bare_pass_from_files(model, paths, batch_size)
    bare_files = time.perf_counter() - start
    images = np.stack([io.imread(p) for p in paths])
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    start = time.perf_counter()
    bare_maps(model, images, batch_size, "cpu")
    bare_array = time.perf_counter() - start
    after = result["after_fit_seconds"]
    print(f"{len(paths)} test images {images.shape[1]}x{images.shape[2]}, "
          f"{result['n_train']} training images, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print("| figure | value |")
    print("|---|---|")
    print(f"| `skvqad benchmark folder --quick` peak resident memory | "
          f"{peak_kib / 2**20:.2f} GiB |")  # fmt: skip
    print(f"| its wall time / fit / after the fit | {wall:.1f} s / "
          f"{result['fit_seconds']} s / {after} s |")  # fmt: skip
    print(f"| bare maps pass, reading the files | {bare_files:.1f} s |")
    print(f"| bare maps pass, from memory | {bare_array:.1f} s |")
    print(f"| after the fit / bare pass with reading | {after / bare_files:.2f} |")
    print(f"| after the fit / bare pass from memory | {after / bare_array:.2f} |")


if __name__ == "__main__":
    main()
