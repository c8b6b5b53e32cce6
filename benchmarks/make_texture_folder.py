"""A texture data set of any size in the MVTec AD layout, for evaluation benchmarks.

Tiles of :func:`skvqad.datasets.make_texture_defects` (scikit-image's CC0
photographs, synthetic defects with exact masks), upscaled by ``--upscale``
(nearest neighbour, so that masks stay exact) and written as PNG files::

    <output>/train/good/000.png
    <output>/test/good/001.png, <output>/test/<defect>/002.png, ...
    <output>/ground_truth/<defect>/002_mask.png

so that ``skvqad benchmark folder --root <output>`` reads it. Issue 14's
evaluation figure uses::

    python benchmarks/make_texture_folder.py --output /tmp/gravel1000 \\
        --n-train 200 --n-test 1000 --tile 128 --upscale 2
"""

import argparse
from pathlib import Path

import numpy as np
from skimage import io

from skvqad.datasets import make_texture_defects


def _png(image):
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--texture", default="gravel")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--upscale", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = make_texture_defects(args.texture, n_train=args.n_train,
                                n_test=args.n_test, image_size=args.tile,
                                scale=1.0, random_state=args.seed)  # fmt: skip
    k = args.upscale
    up = lambda a: a.repeat(k, axis=-2).repeat(k, axis=-1)  # noqa: E731
    (args.output / "train" / "good").mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(data.X_train):
        io.imsave(args.output / "train" / "good" / f"{i:04d}.png", _png(up(image)))
    for i, (image, mask, kind) in enumerate(
        zip(data.X_test, data.masks_test, data.defect_types)
    ):
        folder = args.output / "test" / kind
        folder.mkdir(parents=True, exist_ok=True)
        io.imsave(folder / f"{i:04d}.png", _png(up(image)))
        if kind != "good":
            truth = args.output / "ground_truth" / kind
            truth.mkdir(parents=True, exist_ok=True)
            mask = up(mask).astype(np.uint8) * 255
            io.imsave(truth / f"{i:04d}_mask.png", mask, check_contrast=False)
    print(f"wrote {args.n_train} training and {args.n_test} test images to "
          f"{args.output}")  # fmt: skip


if __name__ == "__main__":
    main()
