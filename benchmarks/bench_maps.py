"""Speed of the batched torch maps against per-image scikit-image / scipy loops.

Usage::

    python benchmarks/bench_maps.py [--n 64] [--size 256] [--device cpu]

Prints, for one run on this machine, the time of each implementation and the
ratio (reference time / skvqad time) for the SSIM map and the grey dilation.
Results agree to 1e-5 (checked here too; scikit-image runs on float64 input, as
its own float32 path is off by up to ~4e-5). Ratios, not absolute times, are what
carry over between machines.
"""

import argparse
import time

import numpy as np
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from skvqad import grey_dilation, ssim_map


def _time(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a = ndimage.gaussian_filter(
        rng.uniform(size=(args.n, args.size, args.size)), (0, 2, 2)
    )
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    a64, b64 = a, b  # the reference runs in float64 (its float32 path is less exact)
    a, b = a.astype(np.float32), b.astype(np.float32)
    ta = torch.from_numpy(a)[:, None].to(args.device)
    tb = torch.from_numpy(b)[:, None].to(args.device)

    ref_t, ref = _time(
        lambda: np.stack(
            [
                structural_similarity(
                    x,
                    y,
                    data_range=1.0,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    full=True,
                )[1]
                for x, y in zip(a64, b64)
            ]
        )
    )
    ours_t, ours = _time(
        lambda: ssim_map(ta, tb, data_range=1.0, use_sample_covariance=False)
    )
    np.testing.assert_allclose(ours.cpu().numpy(), ref, atol=1e-5)
    print(
        f"SSIM map, {args.n} x {args.size}^2: skimage loop {ref_t:.3f} s, "
        f"skvqad ({args.device}) {ours_t:.3f} s, ratio {ref_t / ours_t:.1f}"
    )

    maps = torch.from_numpy(a).to(args.device)
    ref_t, ref = _time(
        lambda: np.stack([ndimage.grey_dilation(m, size=(15, 15)) for m in a])
    )
    ours_t, ours = _time(lambda: grey_dilation(maps, 15))
    np.testing.assert_array_equal(ours.cpu().numpy(), ref)
    print(
        f"grey dilation 15x15, {args.n} x {args.size}^2: scipy loop {ref_t:.3f} s, "
        f"skvqad ({args.device}) {ours_t:.3f} s, ratio {ref_t / ours_t:.1f}"
    )


if __name__ == "__main__":
    main()
