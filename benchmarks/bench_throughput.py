"""Throughput of skvqad's ``fit`` and ``anomaly_map`` against a bare PyTorch loop.

Usage::

    python benchmarks/bench_throughput.py [--device cpu|cuda] [--n 64] [--size 64]
        [--model cpu|paper] [--epochs 2] [--batch-size 16] [--eval-batch-size N]

Both sides train and score the same network (:class:`skvqad.VQVAE`, the
paper's training: codebook by the loss, no restarts, no augmentation) on the
same random RGB images. The bare side is a plain loop: the images as one
float32 tensor on the device, Adam, :class:`skvqad.VQVAELoss`, then
``1 - SSIM`` times the upsampled AM per batch. skvqad's side is
``VQVAEAnomalyDetector.fit`` (skorch's loop, plus the passes over the
training images that ``fit`` makes after training: calibration, map
statistics, threshold) and ``anomaly_map``, with its defaults for
``mixed_precision`` and ``channels_last`` ("auto": bfloat16 on CUDA only,
channels-last on CPUs and CUDA); the bare loop runs float32, contiguous.
Each side runs once to warm up, then ``--repeat`` times timed, interleaved
in one process, and its best time counts. Prints images per second and
the ratios skvqad / bare (also for skorch's training loop alone, without
the passes after it); on CUDA also the FLOPs per image counted by
``torch.utils.flop_counter`` and the ceiling they give at the measured bf16
matrix-product rate.
"""

import argparse
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from skvqad import (
    VQVAE,
    VQVAEAnomalyDetector,
    VQVAELoss,
    ssim_map,
    upsample_alignment_map,
)
from skvqad._anomaly_map import eval_batch_size
from skvqad._parameters import TRAINING
from skvqad._training import train_net

MODELS = {
    "cpu": dict(hidden_channels=64, n_embeddings=256, embedding_dim=64,
                n_residual_layers=2, n_downsampling=2),
    "paper": dict(hidden_channels=256, n_embeddings=512, embedding_dim=256,
                  n_residual_layers=3, n_downsampling=3),
}  # fmt: skip


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def bare_fit(X, arch, epochs, batch_size, device, lr=1e-3):
    x_all = torch.from_numpy(X).movedim(-1, 1).float().div(255).to(device)
    torch.manual_seed(0)
    model = VQVAE(in_channels=3, **arch).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = VQVAELoss(0.25)
    for _ in range(epochs):
        for idx in torch.randperm(len(x_all), device=device).split(batch_size):
            xb = x_all[idx]
            out = model(xb)
            loss = loss_fn(out.logits, xb, out.z_e, out.z_q)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(device)
    return model


def bare_maps(model, X, batch_size, device):
    model.eval()
    maps = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            xb = torch.from_numpy(X[start : start + batch_size]).to(device)
            xb = xb.movedim(-1, 1).float().div(255)
            out = model(xb)
            recon = torch.distributions.ContinuousBernoulli(logits=out.logits).mean
            sm = 1.0 - ssim_map(xb, recon, data_range=1.0)
            am = upsample_alignment_map(
                out.alignment.sqrt(),
                output_size=xb.shape[-2:],
                scale_factor=2**model.n_downsampling,
                upsampling="nearest",
                dilation_size=7,
            )
            maps.append((sm * am).cpu())
    _sync(device)
    return torch.cat(maps)


def _detector(arch, epochs, batch_size, device, eval_batch_size="auto"):
    return VQVAEAnomalyDetector(
        **arch, max_epochs=epochs, batch_size=batch_size, lr=1e-3, device=device,
        eval_batch_size=eval_batch_size,
        codebook_update="loss", restart_dead_codes=False, augment=None,
        augment_rotation=0, augment_scale=1, random_state=0,
    )  # fmt: skip


def skvqad_fit(X, arch, epochs, batch_size, device, eval_batch_size="auto"):
    return _detector(arch, epochs, batch_size, device, eval_batch_size).fit(X)


def skvqad_training_only(X, arch, epochs, batch_size, device):
    """skorch's training loop alone (``train_net``), without what ``fit``
    does before (validation, padding) and after (calibration, statistics,
    threshold)."""
    detector = _detector(arch, epochs, batch_size, device)
    params = {name: getattr(detector, name) for name in TRAINING}
    x = np.ascontiguousarray(np.moveaxis(X, -1, 1), dtype=np.float32) / 255
    return train_net(x, params, 0, device, 0)


def timed(fn, *args, repeat=1):
    """``fn(*args)`` and its best wall time over ``repeat`` runs (as timeit)."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return result, best


def flops_per_image(arch, size, device):
    """(training, maps) FLOPs of one image, counted by torch's FlopCounterMode."""
    model = VQVAE(in_channels=3, **arch).to(device)
    x = torch.rand(2, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        VQVAELoss()(out.logits, x, out.z_e, out.z_q).backward()
    train = counter.get_total_flops() / 2
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return train, counter.get_total_flops() / 2


def bf16_rate(device):
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ a
    _sync(device)
    start = time.perf_counter()
    for _ in range(10):
        a @ a
    _sync(device)
    return 10 * 2 * 8192**3 / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", choices=MODELS, default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval-batch-size", type=int, default=None,
                        help="images per maps batch, both sides (default: "
                        "skvqad's eval_batch_size='auto' for the device)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed runs of each side; the best counts")  # fmt: skip
    args = parser.parse_args()
    arch = MODELS[args.model]
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.n, args.size, args.size, 3), dtype=np.uint8)
    small = X[: 2 * args.batch_size]
    print(f"{args.n} images {args.size}x{args.size}x3, model {args.model}, "
          f"{args.epochs} epochs, batch {args.batch_size}, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    # Warm-up (cuDNN autotuning, allocator), then one timed run of each.
    model = bare_fit(small, arch, 1, args.batch_size, args.device)
    bare_maps(model, small, args.batch_size, args.device)
    eval_size = args.eval_batch_size or "auto"
    detector = skvqad_fit(small, arch, 1, args.batch_size, args.device, eval_size)
    detector.anomaly_map(small)
    maps_batch = eval_batch_size(detector, X.shape)  # the same on both sides
    print(f"maps in batches of {maps_batch}")
    presented = args.n * args.epochs
    times = {}
    for _ in range(args.repeat):  # interleaved, so that drift hits every side
        fits = (args.epochs, args.batch_size, args.device)
        for name, fn, fn_args in (
            ("bare fit", bare_fit, (X, arch, *fits)),
            ("fit", skvqad_fit, (X, arch, *fits, eval_size)),
            ("loop", skvqad_training_only, (X, arch, *fits)),
        ):
            result, seconds = timed(fn, *fn_args)
            times[name] = min(times.get(name, np.inf), seconds)
            if name == "bare fit":
                model = result
            elif name == "fit":
                detector = result
        for name, fn, fn_args in (
            ("bare maps", bare_maps, (model, X, maps_batch, args.device)),
            ("maps", detector.anomaly_map, (X,)),
        ):
            times[name] = min(times.get(name, np.inf), timed(fn, *fn_args)[1])
    t_bare_fit, t_fit, t_loop = times["bare fit"], times["fit"], times["loop"]
    t_bare_maps, t_maps = times["bare maps"], times["maps"]
    rows = [
        ("fit", presented / t_bare_fit, presented / t_fit),
        ("fit: training loop only", presented / t_bare_fit, presented / t_loop),
        ("anomaly_map", args.n / t_bare_maps, args.n / t_maps),
    ]
    print("| step | bare PyTorch img/s | skvqad img/s | ratio skvqad / bare |")
    print("|---|---|---|---|")
    for name, bare, ours in rows:
        print(f"| {name} | {bare:.1f} | {ours:.1f} | {ours / bare:.2f} |")
    if torch.device(args.device).type == "cuda":
        train_flops, map_flops = flops_per_image(arch, args.size, args.device)
        rate = bf16_rate(args.device)
        print(f"FLOPs per image: training {train_flops / 1e9:.1f} G, maps (forward) "
              f"{map_flops / 1e9:.1f} G; bf16 matmul {rate / 1e12:.0f} TFLOP/s; "
              f"ceiling {rate / train_flops:.0f} img/s training, "
              f"{rate / map_flops:.0f} img/s maps")  # fmt: skip


if __name__ == "__main__":
    main()
