"""GPU-only checks, for a machine with CUDA: persistence, repeatability, speed.

Usage::

    python benchmarks/device_check.py

Prints, for one run:

* a detector trained on CUDA, pickled, then unpickled and scored in a fresh
  process that sees no GPU (``CUDA_VISIBLE_DEVICES=""``): the largest score
  difference from the scores on CUDA;
* two CUDA trainings with the same ``random_state``: the largest score
  difference (cuDNN kernels are not bitwise deterministic), and the largest
  difference from the same training on the CPU;
* ``benchmarks/bench_maps.py --device cuda``: SSIM and dilation speed ratios.
"""

import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import make_texture_defects

_LOAD_AND_SCORE = """
import pickle, sys, warnings
import numpy as np
import torch
assert not torch.cuda.is_available()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    detector = pickle.load(open(sys.argv[1], "rb"))
X = np.load(sys.argv[2])
np.save(sys.argv[3], detector.score_samples(X))
print("loaded on", detector.net_.device, "warnings:",
      sorted({type(w.message).__name__ for w in caught}))
"""


def main():
    if not torch.cuda.is_available():
        sys.exit("device_check.py needs CUDA")
    print("GPU:", torch.cuda.get_device_name(), "torch", torch.__version__)
    data = make_texture_defects(n_train=64, n_test=32, image_size=64, random_state=0)
    params = dict(
        n_downsampling=2, n_residual_layers=2, hidden_channels=64,
        n_embeddings=128, embedding_dim=32, max_epochs=5, batch_size=16,
        lr=1e-3, random_state=0,
    )  # fmt: skip
    fits = {}
    for name, device in (("cuda 1", "cuda"), ("cuda 2", "cuda"), ("cpu", "cpu")):
        start = time.perf_counter()
        detector = VQVAEAnomalyDetector(**params, device=device).fit(data.X_train)
        seconds = time.perf_counter() - start
        fits[name] = (detector, detector.score_samples(data.X_test))
        print(f"fit on {name}: {seconds:.1f} s")
    cuda_1, cuda_2, cpu = (fits[k][1] for k in ("cuda 1", "cuda 2", "cpu"))
    gap = np.abs(cuda_1 - cuda_2).max()
    print(f"same seed, two CUDA fits: max |score diff| {gap:.3g}"
          f" (scores ~{np.abs(cuda_1).mean():.3g})")  # fmt: skip
    print(
        f"same seed, CUDA vs CPU fit: max |score diff| {np.abs(cuda_1 - cpu).max():.3g}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with open(tmp / "model.pkl", "wb") as f:
            pickle.dump(fits["cuda 1"][0], f)
        np.save(tmp / "X.npy", data.X_test)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        run = subprocess.run(
            [sys.executable, "-c", _LOAD_AND_SCORE, tmp / "model.pkl",
             tmp / "X.npy", tmp / "scores.npy"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        print(run.stdout.strip(), run.stderr.strip()[-500:])
        loaded = np.load(tmp / "scores.npy")
        print(f"CUDA-trained pickle scored on CPU: max |score diff| "
              f"{np.abs(loaded - cuda_1).max():.3g}")  # fmt: skip
    here = Path(__file__).parent
    subprocess.run(
        [sys.executable, here / "bench_maps.py", "--device", "cuda", "--n", "64"],
        check=False,
    )


if __name__ == "__main__":
    main()
