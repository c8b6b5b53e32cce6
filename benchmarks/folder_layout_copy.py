"""Rewrite an MVTec AD-layout data set as users often have it (issue 18).

The copy is in anomalib's Folder layout (``good/``, ``normal_test/``, one
folder per defect type) with each mask stored *beside* its image as
``<stem>.png`` next to the photograph ``<stem>.jpg``, every image cropped to a
non-square band (``--keep`` of its height, centred), and ``--other-aspect``
defect images left uncropped and ``--drop-masks`` masks left out, so that one
data set exercises the Folder layout, masks beside images, photographs of two
aspect ratios and defect images without masks. Nothing in
the source is changed. Then, for example::

    python benchmarks/folder_layout_copy.py /work/shared/data/hazelnut_toy \\
        --output /tmp/hazelnut_folder
    skvqad benchmark folder --root /tmp/hazelnut_folder --quick
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import io


def _save(image, path, keep):
    rows = image.shape[0]
    band = int(round(rows * keep))
    top = (rows - band) // 2
    extra = {"quality": 95} if path.suffix == ".jpg" else {}
    Image.fromarray(image[top : top + band]).save(path, **extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="an MVTec AD-layout category")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--keep", type=float, default=0.75, help="height kept")
    parser.add_argument("--other-aspect", type=int, default=2)
    parser.add_argument("--drop-masks", type=int, default=1, help="masks left out")
    args = parser.parse_args()
    out = args.output
    for folder, target in (("train/good", "good"), ("test/good", "normal_test")):
        (out / target).mkdir(parents=True, exist_ok=True)
        for path in sorted((args.source / folder).iterdir()):
            _save(io.imread(path), out / target / f"{path.stem}.jpg", args.keep)
    uncropped = dropped = 0
    for defect in sorted(p for p in (args.source / "test").iterdir() if p.is_dir()):
        if defect.name == "good":
            continue
        (out / defect.name).mkdir(exist_ok=True)
        for path in sorted(defect.iterdir()):
            image = io.imread(path)
            masks = list(
                (args.source / "ground_truth" / defect.name).glob(f"{path.stem}*")
            )
            keep = 1.0 if uncropped < args.other_aspect else args.keep
            uncropped += keep == 1.0
            _save(image, out / defect.name / f"{path.stem}.jpg", keep)
            if masks and dropped < args.drop_masks:
                dropped += 1
            elif masks:
                mask = (io.imread(masks[0]) > 127).astype(np.uint8) * 255
                _save(mask, out / defect.name / f"{path.stem}.png", keep)
    print(
        f"wrote {out}: {uncropped} defect image(s) of the original aspect, "
        f"{dropped} without a mask"
    )


if __name__ == "__main__":
    main()
