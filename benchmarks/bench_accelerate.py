"""Data-parallel training through accelerate: 1 against 2 CPU processes (issue 16).

Usage::

    python benchmarks/bench_accelerate.py [--processes 1 2] [--images 128]
        [--size 64] [--epochs 3] [--batch-size 16]

Fits the same detector (the reduced CPU model of ``bench_throughput.py``) on
the same brick tiles (:func:`skvqad.datasets.make_texture_defects`), once
under ``torch.distributed.run`` (torchrun) for each process count, every
process with ``Accelerator(cpu=True)`` (the gloo backend) and one thread
(torchrun's default), then once in this process without an accelerator, on
one thread too, for reference; each after a one-epoch warm-up fit.
``batch_size`` is per process, so two processes take half the optimisation
steps per epoch, of twice the images. Prints, per run, the training time
(skorch's epoch durations, rank 0's), the images trained on per second, the
wall time of ``fit`` (which adds the post-training statistics every process
computes on all images) and rank 0's last training loss.

On a machine with fewer cores than processes x threads the figures say only
that the path runs; the speed-up of data parallelism is to be measured on
several GPUs (``accelerate launch --multi_gpu``), which this script does not
start.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import make_texture_defects

MODEL = dict(hidden_channels=64, n_embeddings=256, embedding_dim=64,
             n_residual_layers=2, n_downsampling=2, dilation_size=3)  # fmt: skip


def detector(args, accelerator=None, epochs=None):
    return VQVAEAnomalyDetector(
        **MODEL,
        max_epochs=epochs or args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        random_state=0,
        device="cpu",
        accelerator=accelerator,
    )


def training_images(args):
    return make_texture_defects(
        "brick", n_train=args.images, n_test=2, image_size=args.size, random_state=0
    ).X_train


def fit_and_time(args, accelerator=None):
    X = training_images(args)
    # Warm up (first calls of the kernels, the process group) on a few images.
    detector(args, accelerator, epochs=1).fit(X[: 2 * args.batch_size])
    start = time.perf_counter()
    fitted = detector(args, accelerator).fit(X)
    wall = time.perf_counter() - start
    history = fitted.net_.history
    train = float(sum(history[:, "dur"]))
    return {
        "threads": torch.get_num_threads(),
        "train_s": train,
        "images_per_s": args.images * args.epochs / train,
        "fit_wall_s": wall,
        "last_loss": float(history[-1, "train_loss"]),
    }


def worker(args):
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    result = fit_and_time(args, accelerator)
    if accelerator.is_main_process:
        result["processes"] = accelerator.num_processes
        Path(args.worker).write_text(json.dumps(result))


def launch(args, processes, out):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(processes), __file__, "--worker", str(out),
        "--images", str(args.images), "--size", str(args.size),
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(Path(out).read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, default=128, help="training images")
    parser.add_argument("--size", type=int, default=64, help="image side, pixels")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16, help="per process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes in args.processes:
            result = launch(args, processes, Path(tmp) / f"{processes}.json")
            rows.append((f"accelerate, {processes} process(es)", result))
    torch.set_num_threads(1)  # as each torchrun process
    rows.append(("plain fit, no accelerator", fit_and_time(args)))
    print(f"{args.images} images of {args.size}x{args.size}, {args.epochs} "
          f"epochs, batch {args.batch_size} per process, {os.cpu_count()} CPU "
          "cores")  # fmt: skip
    print("| run | threads per process | training s | images/s | fit wall s | "
          "last loss |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['threads']} | {r['train_s']:.1f} | "
              f"{r['images_per_s']:.1f} | {r['fit_wall_s']:.1f} | "
              f"{r['last_loss']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
