"""Datasets: the built-in texture-defect data and loaders for local folders.

Nothing here downloads: :func:`make_texture_defects` cuts tiles from
photographs bundled with scikit-image, and the ``load_*`` functions read
folders the user already has; :func:`load_data_set` reads one data set in
either the MVTec AD layout or anomalib's Folder layout.
"""

from ._image_files import ImageFiles
from ._layout import load_data_set
from ._loaders import (
    load_cifar10_one_vs_rest,
    load_image_folder,
    load_mvtec_ad,
    load_ucsd_ped,
)
from ._texture import make_texture_defects

__all__ = [
    "ImageFiles",
    "load_cifar10_one_vs_rest",
    "load_data_set",
    "load_image_folder",
    "load_mvtec_ad",
    "load_ucsd_ped",
    "make_texture_defects",
]
