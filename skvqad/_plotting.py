"""Figures in the layout of Fig. 2 of Gangloff et al. (2022)."""

import numpy as np

__all__ = ["plot_anomaly_maps", "save_evaluation_figure"]


def plot_anomaly_maps(
    images,
    maps,
    *,
    reconstructions=None,
    masks=None,
    threshold=None,
    titles=None,
    alpha=0.5,
    cmap="jet",
    vmax=None,
    colorbar_label="anomaly, unitless",
):
    """Plot images, anomaly maps over reconstructions, and segmentations.

    One column per image, as in Fig. 2 of [1]_: the input on the top row, the
    anomaly map overlaid on the reconstruction (or on the input when no
    reconstruction is given) in the middle, and at the bottom the map
    thresholded at ``threshold`` (red) with the ground-truth outline
    (white), when given.

    Parameters
    ----------
    images : array-like of shape (n, H, W) or (n, H, W, C)
        Images, float in [0, 1] or uint8.
    maps : array-like of shape (n, H, W), float
        Anomaly maps (higher is more anomalous). All panels share one colour
        scale, from 0 to ``vmax``, so maps are comparable across images;
        values outside it (below 0 in maps standardised by
        ``map_normalization``) are drawn at its ends.
    reconstructions : array-like of shape (n, H, W) or (n, H, W, C), optional
        Reconstructions to draw the maps on.
    masks : array-like of shape (n, H, W), bool, optional
        Ground-truth defect masks, outlined in white.
    threshold : float, optional
        Value of ``maps`` above which a pixel is segmented as anomalous; the
        bottom row is drawn only when given.
    titles : list of str, optional
        One title per column.
    alpha : float, default=0.5
        Opacity of the overlaid maps, in [0, 1].
    cmap : str, default="jet"
        Matplotlib colormap of the maps.
    vmax : float, optional
        Top of the colour scale, in map units; by default the 99th percentile
        of ``maps``, so that one extreme defect does not wash out the others.
    colorbar_label : str, default="anomaly, unitless"
        The colour bar's label: the maps' unit ("training s.d." for maps
        standardised by ``map_normalization="per_pixel"``); the bar also
        says that its arrows mark clipped values.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``maps`` is empty, or ``images``, ``maps``, ``reconstructions``,
        ``masks`` and ``titles`` disagree in number or size.

    References
    ----------
    .. [1] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
       Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
       Detection", 2022. https://hal.science/hal-03541964
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    maps = np.asarray(maps)
    if maps.ndim != 3 or images.shape[:3] != maps.shape:
        raise ValueError(
            f"images {images.shape} and maps {maps.shape} must share (n, H, W)."
        )
    if len(maps) == 0:
        raise ValueError("nothing to plot: maps is empty.")
    if masks is not None and np.shape(masks) != maps.shape:
        raise ValueError(f"masks {np.shape(masks)} must have the shape of maps.")
    background = images if reconstructions is None else np.asarray(reconstructions)
    if background.shape[:3] != maps.shape:
        raise ValueError(
            f"reconstructions {background.shape} must share (n, H, W) with maps."
        )
    if titles is not None and len(titles) != len(maps):
        raise ValueError(f"{len(titles)} titles for {len(maps)} images.")
    n_rows = 3 if threshold is not None else 2
    n = len(images)
    fig, axes = plt.subplots(
        n_rows, n, figsize=(1.8 * n, 1.8 * n_rows), squeeze=False, layout="constrained"
    )
    if vmax is None:
        vmax = float(np.percentile(maps, 99)) or float(maps.max()) or 1.0
    for i in range(n):
        _show(axes[0, i], images[i])
        _show(axes[1, i], background[i])
        overlay = axes[1, i].imshow(maps[i], cmap=cmap, alpha=alpha, vmin=0, vmax=vmax)
        if threshold is not None:
            _show(axes[2, i], images[i])
            segmented = np.ma.masked_where(maps[i] <= threshold, maps[i])
            axes[2, i].imshow(segmented > threshold, cmap="autumn", alpha=0.6)
        if masks is not None and min(maps.shape[1:]) >= 2:
            axes[-1, i].contour(np.asarray(masks[i], float), levels=[0.5], colors="w")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    labels = ["input", "map on reconstruction", "segmentation"]
    if threshold is not None:
        labels[2] = f"map > {threshold:.3g}"
        _legend(fig, masks is not None)
    for row in range(n_rows):
        axes[row, 0].text(
            -0.08,
            0.5,
            labels[row],
            rotation=90,
            va="center",
            ha="right",
            transform=axes[row, 0].transAxes,
            fontsize=8,
        )
    bar = fig.colorbar(overlay, ax=axes[1, :].tolist(), shrink=0.9, extend="both")
    bar.set_label(f"{colorbar_label}\n(arrows: values clipped)", fontsize=7)
    return fig


def segmentation_threshold(detector, X_train):
    """The figures' pixel threshold: the 99.5th percentile of the pixels of
    the anomaly maps of (up to 64) training images, so about 0.5 % of the
    pixels of normal images are segmented."""
    return float(np.percentile(detector.anomaly_map(X_train[:64]), 99.5))


def _legend(fig, with_masks):
    """The segmentation row's key: red prediction, white ground truth."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color="red", alpha=0.6, label="predicted anomalous")]
    if with_masks:
        handles.append(Line2D([], [], color="w", label="ground truth outline"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=len(handles),
        fontsize=7,
        facecolor="0.5",
        frameon=True,
    )


def _show(ax, image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype in (np.uint8, np.uint16):
        image = image / float(np.iinfo(image.dtype).max)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1)


def save_evaluation_figure(detector, data, output_dir):
    """Write ``anomaly_maps.png``: one normal test image and two per defect type.

    The layout of :func:`plot_anomaly_maps` (Fig. 2 of Gangloff et al., 2022),
    for the reports
    of ``skvqad evaluate``, ``demo`` and ``benchmark``. The segmentation
    threshold comes from normal data only: the 99.5th percentile of the
    pixels of (up to 64) training maps.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted.
    data : sklearn.utils.Bunch
        ``X_train``, ``X_test`` (arrays or image files), ``y_test``,
        ``masks_test`` (may be None) and, when the
        loader gives it, ``defect_types`` (else the images are titled
        "anomalous" or "good" from ``y_test``).
    output_dir : pathlib.Path
        Existing folder to write into.

    Returns
    -------
    pathlib.Path
        The figure's path.
    """
    import matplotlib

    matplotlib.use("Agg")

    types = data.get("defect_types")
    if types is None:  # e.g. UCSD: anomalous or not, from the masks
        types = np.where(data.y_test == 1, "anomalous", "good")
    picks = [np.flatnonzero(types == "good")[:1]]
    picks += [
        np.flatnonzero(types == k)[:2] for k in dict.fromkeys(types) if k != "good"
    ]
    picks = np.concatenate(picks)[:10]
    threshold = segmentation_threshold(detector, data.X_train)
    images = np.asarray(data.X_test[picks])  # only these are read and mapped
    fig = plot_anomaly_maps(
        images,
        detector.anomaly_map(images),
        reconstructions=detector.reconstruct(images),
        masks=None if data.get("masks_test") is None else data.masks_test[picks],
        threshold=threshold,
        titles=list(types[picks]),
        colorbar_label=(
            "anomaly, training s.d."
            if getattr(detector, "map_normalization", None) == "per_pixel"
            else "anomaly, unitless"
        ),
    )
    path = output_dir / "anomaly_maps.png"
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
