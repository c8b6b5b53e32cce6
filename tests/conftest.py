"""Shared fixtures: tiny detectors and small synthetic images with known defects."""

import os
from pathlib import Path

import numpy as np
import pytest

from skvqad import VQVAEAnomalyDetector

#: Parameters of a detector small enough to train in a second on 2 CPU cores.
TINY = dict(
    n_downsampling=2,
    n_residual_layers=1,
    hidden_channels=8,
    n_embeddings=16,
    embedding_dim=4,
    batch_size=8,
    max_epochs=2,
    dilation_size=3,
    random_state=0,
)


def shared_data_dir():
    """``../shared/data`` beside the checkout, or ``$SKVQAD_SHARED_DATA``."""
    env = os.environ.get("SKVQAD_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def stripes(n, size=32, channels=None, seed=0):
    """Smooth sinusoidal stripes with random phase and mild noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    images = 0.5 + 0.25 * np.sin(2 * np.pi * xx / 8.0 + phase)
    images = images + rng.normal(0, 0.02, size=images.shape)
    images = np.clip(images, 0, 1).astype(np.float32)
    if channels is not None:
        images = np.repeat(images[..., np.newaxis], channels, axis=-1)
    return images


def brick_tiles(n, size=32, rows=(0, 80), seed=0):
    """Tiles of scikit-image's bundled brick photograph (CC0), at 1/4 scale.

    ``rows`` selects the band of the 128x128 downscaled photograph the tiles
    come from, so that training and test tiles can be kept apart.
    """
    from skimage import data
    from skimage.transform import rescale

    photo = rescale(data.brick(), 0.25, anti_aliasing=True).astype(np.float32)
    rng = np.random.default_rng(seed)
    ys = rng.integers(rows[0], rows[1] - size + 1, n)
    xs = rng.integers(0, photo.shape[1] - size + 1, n)
    return np.stack([photo[y : y + size, x : x + size] for y, x in zip(ys, xs)])


def paste_square(images, top=10, left=12, side=8, value=1.0):
    """Copy of ``images`` with a bright square pasted in, and its mask."""
    out = images.copy()
    out[:, top : top + side, left : left + side] = value
    mask = np.zeros(images.shape[:3], dtype=bool)
    mask[:, top : top + side, left : left + side] = True
    return out, mask


@pytest.fixture(scope="module")
def grey_images():
    return stripes(24, seed=1)


@pytest.fixture(scope="module")
def fitted_grey(grey_images):
    return VQVAEAnomalyDetector(**TINY).fit(grey_images)
