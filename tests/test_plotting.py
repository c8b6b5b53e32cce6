"""plot_anomaly_maps."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from skvqad import plot_anomaly_maps  # noqa: E402


def test_plot_layout():
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 16, 16)).astype(np.float32)
    maps = rng.uniform(size=(3, 16, 16)).astype(np.float32)
    masks = maps > 0.9
    fig = plot_anomaly_maps(
        images, maps, masks=masks, threshold=0.8, titles=["a", "b", "c"]
    )
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 9  # 3 rows x 3 images
    assert fig.axes[0].get_title() == "a"
    two_rows = plot_anomaly_maps(images, maps)
    assert len([ax for ax in two_rows.axes if ax.images]) == 6


def test_plot_shape_errors():
    with pytest.raises(ValueError, match="share"):
        plot_anomaly_maps(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))
    with pytest.raises(ValueError, match="masks"):
        plot_anomaly_maps(
            np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), masks=np.zeros((2, 4, 4))
        )


def test_plot_argument_errors():
    images, maps = np.zeros((2, 8, 8)), np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="reconstructions"):
        plot_anomaly_maps(images, maps, reconstructions=np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="titles"):
        plot_anomaly_maps(images, maps, titles=["one"])
    with pytest.raises(ValueError, match="empty"):
        plot_anomaly_maps(np.zeros((0, 8, 8)), np.zeros((0, 8, 8)))
