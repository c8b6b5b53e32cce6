"""One GPU session: the paper's benchmarks and the ablations, run side by side.

Usage (on a machine with CUDA; data laid out as in ``../shared/data``)::

    python benchmarks/device_run.py --data DATA --out OUT [--budget 420] [--workers 8]
        [--config defaults paper] [--no-ablation]

Runs a queue of ``skvqad benchmark ... --ablation`` commands (the paper's
model) on MVTec AD grid, the hazelnut photos and the ten CIFAR-10 classes,
under the estimator's defaults or the paper's settings (``--config``),
``--workers`` at a time, most important first.
Commands still running after ``--budget`` seconds are stopped (and listed as
such). Every command's output folder and log end up in ``OUT/results.tar.gz``;
``benchmarks/collect_results.py`` turns them into ``benchmarks/RESULTS.md``.
"""

import argparse
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]  # fmt: skip

#: Training configurations (``--param`` of ``skvqad benchmark``): the
#: estimator's defaults, and the paper's training and post-processing.
CONFIGS = {
    "defaults": [],
    "paper": [
        "codebook_update=loss", "restart_dead_codes=False", "augment=None",
        "augment_rotation=0", "augment_scale=1", "alignment_distance=squared",
        "reconstruction_calibration=None", "map_normalization=None",
        "score_pooling=mean",
    ],
}  # fmt: skip


def _benchmark(kind, root, out, params, extra=()):
    cmd = [sys.executable, "-m", "skvqad", "benchmark", kind, "--root", str(root),
           "--output-dir", str(out), "--ablation", "--quiet", *extra]  # fmt: skip
    for p in params:
        cmd += ["--param", p]
    return cmd


def jobs(data, res, configs=("defaults",)):
    """(name, command) in priority order: grid, hazelnut, then CIFAR-10."""
    grid = dict(kind="mvtec", root=data / "mvtec_ad", extra=["--category", "grid"])
    hazelnut = dict(kind="folder", root=data / "hazelnut_toy", extra=[])
    cifar = data / "cifar10"
    cifar_train = ["batch_size=32", "lr=3e-4", "max_epochs=30"]
    texture_train = ["max_epochs=800"]
    queue = []
    for config in configs:
        params = CONFIGS[config]
        for name, spec in (("grid", grid), ("hazelnut", hazelnut)):
            queue.append((f"{name}-{config}", _benchmark(
                spec["kind"], spec["root"], res / f"{name}-{config}",
                [*texture_train, *params], spec["extra"])))  # fmt: skip
        for cls in CIFAR10:
            queue.append((f"cifar-{cls}-{config}", _benchmark(
                "cifar10", cifar, res / f"cifar-{cls}-{config}",
                [*cifar_train, *params], ["--category", cls])))  # fmt: skip
    return queue


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=420.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--only", nargs="+", help="run only these jobs, in this order")
    parser.add_argument(
        "--config", nargs="+", default=["defaults"], choices=sorted(CONFIGS)
    )
    parser.add_argument("--no-ablation", action="store_true", help="skip --ablation")
    parser.add_argument(
        "--ablation-textures-only", action="store_true", help="no CIFAR-10 ablation"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="quick model, 1 epoch: a CPU check"
    )
    args = parser.parse_args()
    start = time.time()
    res = Path("/tmp/skvqad-results")
    res.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}
    queue, running, status = jobs(args.data, res, args.config), {}, {}
    if args.only:
        named = dict(queue)
        queue = [(n, named[n]) for n in args.only]
    if args.no_ablation or args.ablation_textures_only:
        queue = [
            (n, c if args.ablation_textures_only and not n.startswith("cifar")
             else [a for a in c if a != "--ablation"])
            for n, c in queue
        ]  # fmt: skip
    if args.smoke:
        queue = [(n, [*c, "--quick", "--param", "max_epochs=1"]) for n, c in queue]
    while queue or running:
        while queue and len(running) < args.workers:
            name, cmd = queue.pop(0)
            log = open(res / f"{name}.log", "w")
            log.write(" ".join(map(str, cmd)) + "\n")
            log.flush()
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                              env=env), time.time(), log)  # fmt: skip
            print(f"[{time.time() - start:5.0f} s] start {name}", flush=True)
        for name, (proc, t0, log) in list(running.items()):
            if proc.poll() is not None:
                status[name] = f"rc {proc.returncode}, {time.time() - t0:.0f} s"
                print(f"[{time.time() - start:5.0f} s] done {name}: {status[name]}",
                      flush=True)  # fmt: skip
                log.close()
                del running[name]
        if time.time() - start > args.budget:
            for name, (proc, t0, log) in running.items():
                proc.kill()
                status[name] = f"stopped at the budget after {time.time() - t0:.0f} s"
                log.close()
            for name, _ in queue:
                status[name] = "not started"
            break
        time.sleep(1)
    (res / "status.txt").write_text("".join(f"{k}: {v}\n" for k, v in status.items()))
    print((res / "status.txt").read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.out / "results.tar.gz", "w:gz") as tar:
        tar.add(res, arcname="results")
    print(f"total {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
