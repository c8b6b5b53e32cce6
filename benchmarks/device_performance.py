"""Issue 14's GPU figures in one run, for a session with a CUDA device.

Usage::

    python benchmarks/device_performance.py          # on the GPU, about 5 minutes
    python benchmarks/device_performance.py --smoke  # tiny, on the CPU: it runs

Prints, in one run:

* ``bench_throughput.py`` with the paper's model at 256 x 256 from a uint8
  array (training and maps images per second, skvqad against a bare float32
  loop, the FLOP ceiling), skvqad with its defaults (bfloat16 autocast and
  channels-last on CUDA);
* the pooled pixel ROC-AUC of the same detector trained with
  ``mixed_precision="bf16"`` and ``"no"`` on texture tiles of 256 x 256
  (the detection figures must not move beyond noise), with both fit times.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from skvqad import VQVAEAnomalyDetector
from skvqad._benchmark import FULL_MODEL
from skvqad.datasets import make_texture_defects
from skvqad.metrics import pixel_roc_auc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    here = Path(__file__).parent
    throughput = [sys.executable, str(here / "bench_throughput.py"), "--device", device]
    if args.smoke:
        throughput += ["--n", "8", "--size", "32", "--epochs", "1", "--repeat", "1"]
    else:
        throughput += ["--model", "paper", "--size", "256", "--n", "1024",
                       "--batch-size", "128", "--epochs", "2",
                       "--repeat", "2"]  # fmt: skip
    print("$", " ".join(throughput[1:]), flush=True)
    subprocess.run(throughput, check=True, timeout=400)
    size, n_train, epochs = (32, 16, 1) if args.smoke else (256, 512, 20)
    data = make_texture_defects("brick", n_train=n_train, n_test=64,
                                image_size=size, scale=1.0, random_state=0)  # fmt: skip
    to_uint8 = lambda a: (a * 255 + 0.5).astype(np.uint8)  # noqa: E731
    model = dict(FULL_MODEL, batch_size=128, lr=1e-3)
    if args.smoke:
        model = dict(hidden_channels=8, n_embeddings=16, embedding_dim=4,
                     n_residual_layers=1, batch_size=8)  # fmt: skip
    print("| mixed_precision | pixel ROC-AUC | fit (s) |\n|---|---|---|")
    for precision in ("bf16", "no"):
        detector = VQVAEAnomalyDetector(
            **model, n_downsampling=3, max_epochs=epochs, device=device,
            mixed_precision=precision, random_state=0,
        )  # fmt: skip
        start = time.perf_counter()
        detector.fit(to_uint8(data.X_train))
        seconds = time.perf_counter() - start
        auc = pixel_roc_auc(
            data.masks_test, detector.anomaly_map(to_uint8(data.X_test))
        )
        print(f"| {precision} | {auc:.4f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
