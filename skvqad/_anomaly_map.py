"""Anomaly maps and image scores from a trained VQ-VAE (Gangloff et al., 2022).

The one place where a trained :class:`~skvqad.VQVAE` and a batch of images
become reconstructions, SM, AM and SSIM+AM maps, and maps become image scores
(the role of anomalib's ``anomaly_map.py``). The estimator, the map
transformers, the benchmark and its ablation all go through these functions.

``settings`` is always a mapping holding the map parameters of
:data:`skvqad._parameters.MAP` (as ``VQVAEAnomalyDetector.get_params()``
does); the batched map math itself lives in :mod:`skvqad._maps`.

References
----------
.. [1] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
   Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
   Detection", 2022. https://hal.science/hal-03541964
"""

import inspect
import math
import os
import sys
import warnings

import numpy as np
import sklearn
import torch

from ._continuous_bernoulli import cb_mean
from ._maps import (
    gaussian_filter,
    grey_dilation,
    ssim_map,
    symmetric_pad,
    upsample_alignment_map,
)
from ._parameters import MAP, POOLINGS
from ._validation import reading_workers

__all__ = [
    "MAP_TYPES",
    "POOLINGS",
    "anomaly_map_batches",
    "anomaly_maps",
    "calibrate",
    "caller_level",
    "compared_reconstruction",
    "detector_image_scores",
    "detector_maps",
    "detector_scores",
    "detector_statistics",
    "forward_batches",
    "map_settings",
    "maps_of_output",
    "normalize_maps",
    "offset_from_scores",
    "pad_to_stride",
    "plain",
    "pool_maps",
    "record_offset_params",
    "reconstruction",
    "warn_if_offset_is_stale",
]

#: The maps a network gives: SM (``1 - SSIM``), AM, and their product.
MAP_TYPES = ("ssim", "am", "ssim+am")
#: What SSIM compares the image with (:func:`reconstruction`).
RECONSTRUCTIONS = ("mean", "probs")
#: Share of the smoothed map's pixels below the level that
#: ``"gaussian_contrast"`` subtracts: its lower quartile.
FLOOR_QUANTILE = 0.25


def map_settings(params):
    """The map parameters of ``params`` (e.g. ``detector.get_params()``), as a dict.

    ``map_normalization`` is left out: it says whether the maps are divided
    by statistics made under the other settings, not how they are made.
    """
    return {name: params[name] for name in MAP if name != "map_normalization"}


def pad_to_stride(x, stride):
    """Pad a batch on the bottom and right to a multiple of the latent stride.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W), floating
    stride : int
        ``2**n_downsampling``, >= 1.

    Returns
    -------
    torch.Tensor of shape (n, C, H', W')
        ``x`` padded by half-sample symmetric reflection, with ``H'`` and
        ``W'`` the smallest multiples of ``stride`` that are >= ``H``, ``W``
        and ``2 * stride``; ``x`` itself when nothing is needed.
    """
    height, width = x.shape[-2:]
    target_h = max(-(-height // stride) * stride, 2 * stride)
    target_w = max(-(-width // stride) * stride, 2 * stride)
    if (target_h, target_w) == (height, width):
        return x
    return symmetric_pad(x, 0, target_h - height, 0, target_w - width)


def forward_batches(module, images, *, batch_size, device):
    """Run the network on images, batch by batch, without gradients.

    Parameters
    ----------
    module : skvqad.VQVAE
        The trained network; put in evaluation mode.
    images : ndarray of shape (n, H, W, C), float32, or ImageFiles
        Images in [0, 1], channels last; or a
        :class:`~skvqad.datasets.ImageFiles` (any sequence whose items are
        such images, with a ``num_workers`` attribute), read batch by batch
        by a torch ``DataLoader``.
    batch_size : int
        Images per forward pass, >= 1.
    device : str or torch.device
        The network's device.

    Yields
    ------
    batch_slice : slice
        The batch's rows of ``images``.
    batch : torch.Tensor of shape (b, C, H, W), float32, on ``device``
        The images, unpadded.
    output : skvqad.VQVAEOutput
        The forward pass of the padded batch (latent grid of the padded size).
    """
    module.eval()
    stride = 2**module.n_downsampling
    for batch_slice, batch in _image_batches(images, batch_size, device):
        # One memory layout whatever the source (an array's slice or a
        # DataLoader's stack), so that both give the same float32 results.
        batch = batch.movedim(-1, 1).to(device, memory_format=torch.contiguous_format)
        with torch.no_grad():
            output = module(pad_to_stride(batch, stride))
        yield batch_slice, batch, output


def _image_batches(images, batch_size, device):
    """``(slice, (b, H, W, C) float32 tensor)`` batches of an array or files."""
    if isinstance(images, np.ndarray):
        for start in range(0, images.shape[0], batch_size):
            batch_slice = slice(start, start + batch_size)
            yield batch_slice, torch.from_numpy(images[batch_slice])
        return
    loader = torch.utils.data.DataLoader(
        images,
        batch_size=batch_size,
        num_workers=reading_workers(images),
        pin_memory=torch.device(device).type == "cuda",
    )
    start = 0
    for batch in loader:
        yield slice(start, start + len(batch)), batch
        start += len(batch)


def reconstruction(logits, size, kind):
    """The reconstruction SSIM compares with the image.

    Parameters
    ----------
    logits : torch.Tensor of shape (b, C, H', W'), floating
        Continuous Bernoulli logits of the decoder.
    size : tuple of int (H, W)
        The unpadded image size, ``H <= H'`` and ``W <= W'``.
    kind : {"mean", "probs"}
        The distribution's mean (Loaiza-Ganem and Cunningham, 2019; computed
        stably for every logit by :func:`skvqad._continuous_bernoulli.cb_mean`)
        or its parameter ``sigmoid(logits)``.

    Returns
    -------
    torch.Tensor of shape (b, C, H, W), dtype of ``logits``
        Values in [0, 1], cropped to ``size`` from the top left.
    """
    height, width = size
    if kind == "probs":
        recon = torch.sigmoid(logits)
    else:
        recon = cb_mean(logits)
    return recon[..., :height, :width]


def compared_reconstruction(output, module, size, settings):
    """The reconstruction SSIM compares with the image, calibrated if asked.

    Parameters
    ----------
    output : skvqad.VQVAEOutput
        A forward pass.
    module : skvqad.VQVAE
        The network; its ``calibration`` tables are read.
    size : tuple of int (H, W)
        The unpadded image size.
    settings : mapping
        The map parameters; ``reconstruction`` and
        ``reconstruction_calibration`` are read.

    Returns
    -------
    torch.Tensor of shape (b, C, H, W), dtype of the logits, in [0, 1]
    """
    kind = settings["reconstruction"]
    recon = reconstruction(output.logits, size, kind)
    if settings["reconstruction_calibration"] == "isotonic":
        table = module.calibration[RECONSTRUCTIONS.index(kind)]
        recon = calibrate(recon, table.to(recon))
    return recon


def _alignment(output, module, settings):
    """The AM (b, h, w) of a forward pass: Eq. 6 of [1]_, normalised if asked."""
    am = output.alignment  # computed once by the quantiser
    if settings["alignment_normalization"] == "per_code":
        am = am / module.quantizer.code_alignment[output.indices]
    if settings["alignment_distance"] == "euclidean":
        am = am.sqrt()
    return am


def maps_of_output(batch, output, module, settings, map_types):
    """Anomaly maps of a batch from its forward pass, each part computed once.

    Parameters
    ----------
    batch : torch.Tensor of shape (b, C, H, W), float32
        The unpadded images, in [0, 1].
    output : skvqad.VQVAEOutput
        ``module``'s forward pass of the padded batch.
    module : skvqad.VQVAE
        The network (its stride, per-code statistics and calibration are read).
    settings : mapping
        The map parameters (:data:`skvqad._parameters.MAP`).
    map_types : sequence of {"ssim", "am", "ssim+am"}
        SM ``1 - SSIM`` (Eq. 5 of [1]_, grey-dilated by
        ``ssim_dilation_size``), the upsampled, dilated AM (Eq. 6), or their
        product (Section II-C, as :func:`skvqad.ssim_am_map`). The SSIM and the
        AM are computed once however many of the three are asked for.

    Returns
    -------
    dict of str to torch.Tensor of shape (b, H, W), float32, on the batch's device
        >= 0 (SM is in [0, 2]); higher is more anomalous.
    """
    size = tuple(batch.shape[-2:])
    parts = {}
    if {"ssim", "ssim+am"} & set(map_types):
        ssim = ssim_map(
            batch,
            compared_reconstruction(output, module, size, settings),
            data_range=1.0,
            win_size=settings["ssim_win_size"],
            gaussian_weights=settings["ssim_gaussian_weights"],
            K1=settings["ssim_k1"],
            K2=settings["ssim_k2"],
            channel_reduction=settings["ssim_channel_reduction"],
        )
        parts["ssim"] = grey_dilation(1.0 - ssim, settings["ssim_dilation_size"])
    if {"am", "ssim+am"} & set(map_types):
        parts["am"] = upsample_alignment_map(
            _alignment(output, module, settings),
            output_size=size,
            scale_factor=2**module.n_downsampling,
            upsampling=settings["upsampling"],
            dilation_size=settings["dilation_size"],
        )
    if "ssim+am" in map_types:
        parts["ssim+am"] = parts["ssim"] * parts["am"]
    return {map_type: parts[map_type] for map_type in map_types}


def anomaly_maps(
    module, images, settings, map_types, *, batch_size, device, statistics=None
):
    """Every requested map of every image, from one forward pass per batch.

    Parameters
    ----------
    module : skvqad.VQVAE
        The trained network.
    images : ndarray of shape (n, H, W, C), float32
        Validated images in [0, 1].
    settings : mapping
        The map parameters (:data:`skvqad._parameters.MAP`).
    map_types : sequence of {"ssim", "am", "ssim+am"}
    batch_size : int
        Images per forward pass, >= 1.
    device : str or torch.device
        The network's device.
    statistics : dict of str to ndarray of shape (2, h, w), float32, or None
        Per map type, the per-pixel mean and scale of :func:`map_statistics`:
        each map is standardised by them (:func:`normalize_maps`). None
        returns the maps as they are.

    Returns
    -------
    dict of str to ndarray of shape (n, H, W), float32
        One map stack per map type.
    """
    maps = {mt: np.empty(images.shape[:3], dtype=np.float32) for mt in map_types}
    for batch_slice, batch_maps in anomaly_map_batches(
        module,
        images,
        settings,
        map_types,
        batch_size=batch_size,
        device=device,
        statistics=statistics,
    ):
        for map_type, values in batch_maps.items():
            maps[map_type][batch_slice] = values
    return maps


def anomaly_map_batches(
    module, images, settings, map_types, *, batch_size, device, statistics=None
):
    """:func:`anomaly_maps` batch by batch, so that the maps need not all fit.

    Parameters are those of :func:`anomaly_maps`.

    Yields
    ------
    batch_slice : slice
        The batch's rows of ``images``.
    maps : dict of str to ndarray of shape (b, H, W), float32
        The batch's maps of each map type, on the CPU.
    """
    for batch_slice, batch, output in forward_batches(
        module, images, batch_size=batch_size, device=device
    ):
        batch_maps = maps_of_output(batch, output, module, settings, map_types)
        for map_type, values in batch_maps.items():
            if statistics is not None:
                values = normalize_maps(values, statistics[map_type])
            batch_maps[map_type] = values.cpu().numpy()
        yield batch_slice, batch_maps


def normalize_maps(maps, statistics):
    """Standardise maps pixel by pixel: ``(map - mu) / scale``.

    Parameters
    ----------
    maps : torch.Tensor of shape (b, H, W), float32
        Anomaly maps of one map type.
    statistics : ndarray of shape (2, h, w), float32
        ``mu`` and the scale of that map type (:func:`map_statistics`). If
        ``(h, w)`` is not ``(H, W)`` both are resized bilinearly to it (the
        pixel correspondence of the training size is then approximate).

    Returns
    -------
    torch.Tensor of shape (b, H, W), float32, on the maps' device
        In training standard deviations at that pixel: about 0 where the
        map is as on the training images, negative where lower.
    """
    stats = torch.from_numpy(statistics).to(maps.device)
    if stats.shape[-2:] != maps.shape[-2:]:
        stats = torch.nn.functional.interpolate(
            stats[None], size=tuple(maps.shape[-2:]), mode="bilinear"
        )[0]
    return (maps - stats[0]) / stats[1]


def detector_maps(detector, images, map_types):
    """:func:`anomaly_maps` with a fitted detector's network and map parameters.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted; its ``net_``, ``batch_size``, map parameters and (with
        ``map_normalization="per_pixel"``) ``map_statistics_`` are read.
    images : ndarray of shape (n, H, W, C), float32
        Validated images in [0, 1].
    map_types : sequence of {"ssim", "am", "ssim+am"}

    Returns
    -------
    dict of str to ndarray of shape (n, H, W), float32
    """
    settings = map_settings(detector.get_params())
    return anomaly_maps(
        detector.net_.module_,
        images,
        settings,
        map_types,
        batch_size=int(detector.batch_size),
        device=detector.net_.device,
        statistics=detector_statistics(detector, settings),
    )


def detector_image_scores(detector, images):
    """A detector's ``score_samples`` of images, pooled batch by batch.

    The scores of :func:`detector_scores` on :func:`detector_maps`, without
    holding every map at once (the memory of a batch, not of the set).

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted.
    images : ndarray of shape (n, H, W, C), float32, or ImageFiles
        Validated images in [0, 1].

    Returns
    -------
    ndarray of shape (n,), float64
    """
    settings = map_settings(detector.get_params())
    map_type = detector.anomaly_map_type
    scores = np.empty(len(images), dtype=np.float64)
    for batch_slice, maps in anomaly_map_batches(
        detector.net_.module_,
        images,
        settings,
        (map_type,),
        batch_size=int(detector.batch_size),
        device=detector.net_.device,
        statistics=detector_statistics(detector, settings),
    ):
        scores[batch_slice] = detector_scores(detector, maps[map_type])
    return scores


def detector_statistics(detector, settings):
    """The ``map_statistics_`` a detector's maps are standardised by, or None.

    None unless ``map_normalization="per_pixel"``. Warns when the map
    parameters differ from those of the fit, under which the statistics
    were made (after ``set_params``).
    """
    if detector.map_normalization != "per_pixel":
        return None
    fitted = detector.map_statistics_settings_
    changed = sorted(k for k, v in fitted.items() if plain(settings[k]) != v)
    if changed:
        warnings.warn(
            "map_statistics_ were computed at fit time, before "
            f"{', '.join(changed)} changed; the maps are standardised by "
            "statistics of other maps. Refit (with memory= the trained network "
            "is reused).",
            UserWarning,
            stacklevel=caller_level(),
        )
    return detector.map_statistics_


def pool_maps(maps, pooling, sigma=8.0):
    """Image anomaly scores from anomaly maps: the score of every table and method.

    Parameters
    ----------
    maps : torch.Tensor or ndarray of shape (n, H, W), floating
        Anomaly maps, higher is more anomalous.
    pooling : {"mean", "max", "gaussian_max", "gaussian_contrast"}
        The map's mean over its pixels (the image score of [1]_), its
        maximum, the maximum of the map smoothed by a Gaussian of standard
        deviation ``sigma`` (:func:`skvqad.gaussian_filter`; the image score
        of anomalib's models), which keeps a small defect from drowning in
        the mean without letting one noisy pixel decide, or that maximum
        minus the smoothed map's lower quartile (the ``ceil(n / 4)``-th
        smallest of its ``n`` values, not interpolated: numpy's
        ``percentile(..., 25, method="lower")``): how far the most
        anomalous region stands out from the image's own normal level, so
        that an image that is a little worse reconstructed everywhere (a
        texture at an unusual angle or scale) does not outscore a local
        defect. For defects smaller than about half the image; where the
        whole image is the anomaly (CIFAR-10 one-vs-rest) it removes the
        signal and "mean" is the score to use.
    sigma : float, default=8.0
        Standard deviation of the smoothing, in pixels, > 0; used by
        "gaussian_max" and "gaussian_contrast" only.

    Returns
    -------
    torch.Tensor of shape (n,) (dtype and device of ``maps``) or ndarray of
    shape (n,), float64
        Higher is more anomalous; a tensor for a tensor, an array for an
        array (the mean reduced in float64, the smoothing in float32).

    Raises
    ------
    ValueError
        If ``pooling`` is not one of the four, or ``sigma`` is not > 0 for
        the two smoothed ones.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    if not isinstance(maps, torch.Tensor):
        maps = np.asarray(maps)
        if pooling == "mean":
            return maps.mean(axis=(1, 2), dtype=np.float64)
        # Smoothed in float32: float64 convolutions have no fast CPU kernel
        # (about 20 times slower); the maximum is exact either way.
        maps = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
        return pool_maps(maps, pooling, sigma).double().numpy()
    if pooling == "gaussian_max":
        return gaussian_filter(maps, sigma).amax(dim=(1, 2))
    if pooling == "gaussian_contrast":
        smooth = gaussian_filter(maps, sigma).flatten(1)
        k = max(1, math.ceil(FLOOR_QUANTILE * smooth.shape[1]))
        return smooth.amax(dim=1) - smooth.kthvalue(k, dim=1).values
    if pooling == "max":
        return maps.amax(dim=(1, 2))
    return maps.mean(dim=(1, 2))


def detector_scores(detector, maps):
    """A detector's ``score_samples`` from its maps: the one scoring path.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector or TemplateAnomalyDetector
        Its ``score_pooling`` and ``score_sigma`` are read.
    maps : ndarray of shape (n, H, W), float32
        Its anomaly maps (``anomaly_map_type`` for the VQ-VAE).

    Returns
    -------
    ndarray of shape (n,), float64
        Minus the pooled maps: higher is more normal, as ``score_samples``.
        The estimators, ``skvqad score`` and ``skvqad evaluate`` all score
        through here, so their scores and decisions agree.
    """
    return -pool_maps(maps, detector.score_pooling, detector.score_sigma)


def caller_level():
    """The ``stacklevel`` of the first frame outside skvqad and scikit-learn.

    Counted for a ``warnings.warn`` in the function that calls this, so that
    the warning names the user's line, also through scikit-learn's ``fit``
    wrapper, a pipeline or a search.
    """
    packages = tuple(
        os.path.dirname(os.path.abspath(module.__file__)) + os.sep
        for module in (sys.modules[__package__], sklearn)
    )
    frame, level = inspect.currentframe().f_back, 1
    while frame is not None and frame.f_code.co_filename.startswith(packages):
        frame, level = frame.f_back, level + 1
    return level


def plain(value):
    """numpy scalars as Python numbers (stable cache keys and comparisons)."""
    return value.item() if isinstance(value, np.generic) else value


def record_offset_params(estimator, names=None):
    """Remember the parameters ``offset_`` was computed under.

    ``names`` lists them at fit time; None refreshes the ones recorded then
    (after :func:`skvqad.fit_threshold`), and does nothing if none were.
    """
    if names is None:
        names = getattr(estimator, "_offset_params", None)
        if names is None:
            return
    estimator._offset_params = {k: plain(getattr(estimator, k)) for k in names}


def warn_if_offset_is_stale(estimator, stacklevel):
    """Warn if a parameter recorded by :func:`record_offset_params` has changed.

    ``decision_function`` and ``predict`` of both estimators call this:
    after ``set_params`` of a map or scoring parameter, ``offset_`` still
    belongs to the scores of the fit settings.
    """
    fitted = getattr(estimator, "_offset_params", None)
    if fitted is None:
        return
    changed = sorted(k for k, v in fitted.items() if plain(getattr(estimator, k)) != v)
    if changed:
        warnings.warn(
            f"offset_ was computed at fit time, before {', '.join(changed)} "
            "changed; decision_function and predict compare the new scores "
            "with the old threshold. Refit (with memory= the trained network is "
            "reused) or call skvqad.fit_threshold to update offset_.",
            UserWarning,
            stacklevel=stacklevel,  # counted from this function's frame
        )


def offset_from_scores(scores, contamination):
    """The threshold ``offset_`` of an outlier detector from its training scores.

    Parameters
    ----------
    scores : ndarray of shape (n,), float64
        ``score_samples`` of the training images (higher = more normal).
    contamination : "auto" or float in (0, 0.5]
        A float is the fraction of training images to call outliers (the
        ``contamination`` percentile). ``"auto"``: the median minus three
        robust standard deviations (1.4826 x the median absolute deviation).

    Returns
    -------
    float
    """
    if contamination == "auto":
        median = np.median(scores)
        mad = np.median(np.abs(scores - median))
        return float(median - 3.0 * 1.4826 * mad)
    return float(np.percentile(scores, 100.0 * contamination))


def calibrate(recon, calibration):
    """Apply a reconstruction calibration table, per channel, batched.

    The continuous Bernoulli mean cannot reach 0 or 1 (it behaves like
    ``-1 / logit`` near 0), so black or saturated regions that are normal
    are reconstructed as dark or light grey, and SSIM's luminance term calls
    them dissimilar. The table maps each reconstructed value to the mean
    training pixel value reconstructed so (see :func:`training_statistics`),
    which brings such regions back to their true level and leaves well
    reconstructed values where they are.

    Parameters
    ----------
    recon : torch.Tensor of shape (b, C, H, W), floating, values in [0, 1]
    calibration : torch.Tensor of shape (C, K), same dtype and device
        The table at ``K`` uniform knots of [0, 1].

    Returns
    -------
    torch.Tensor of shape (b, C, H, W), dtype of ``recon``
        Linear interpolation of the table, in [0, 1].
    """
    n_knots = calibration.shape[-1]
    # NaN (a diverged network) stays NaN, for the detector to report.
    position = recon.nan_to_num(0.0).clamp(0.0, 1.0) * (n_knots - 1)
    below = position.floor().long().clamp_max(n_knots - 2)
    weight = position - below
    table = calibration.view(1, -1, 1, n_knots).expand(recon.shape[0], -1, -1, -1)
    flat = below.flatten(2).unsqueeze(2)  # (b, C, 1, H*W)
    low = torch.gather(table, 3, flat).view_as(recon)
    high = torch.gather(table, 3, flat + 1).view_as(recon)
    return torch.where(recon.isnan(), recon, low + weight * (high - low))
