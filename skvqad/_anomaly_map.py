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

import warnings

import numpy as np
import torch

from ._continuous_bernoulli import cb_mean
from ._maps import (
    grey_dilation,
    ssim_map,
    symmetric_pad,
    upsample_alignment_map,
)
from ._parameters import MAP, POOLINGS
from ._scoring import caller_level, detector_tensor_scores, plain
from ._validation import as_unit_float, reading_workers, tensor_of

__all__ = [
    "MAP_TYPES",
    "POOLINGS",
    "anomaly_maps",
    "calibrate",
    "compared_reconstruction",
    "detector_image_scores",
    "detector_map_batches",
    "detector_maps",
    "detector_reconstructions",
    "detector_statistics",
    "device_batch",
    "eval_batch_size",
    "forward_batches",
    "map_settings",
    "map_tensor_batches",
    "maps_of_output",
    "normalize_maps",
    "pad_to_stride",
    "padded_size",
    "reconstruction",
]

#: The maps a network gives: SM (``1 - SSIM``), AM, and their product.
MAP_TYPES = ("ssim", "am", "ssim+am")
#: What SSIM compares the image with (:func:`reconstruction`).
RECONSTRUCTIONS = ("mean", "probs")
#: Pixels per scoring batch that ``eval_batch_size="auto"`` aims at off the
#: CPU (64 images of 256 x 256), and its most images per batch.
AUTO_EVAL_PIXELS = 64 * 256 * 256
AUTO_EVAL_IMAGES = 256


def eval_batch_size(detector, image_shape):
    """Images per batch when a fitted detector maps, scores or reconstructs.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted; its ``eval_batch_size``, ``batch_size`` and ``net_.device``
        are read.
    image_shape : tuple of int
        ``(n, H, W, C)`` (or ``(H, W, ...)`` after ``n``) of the images.

    Returns
    -------
    int
        ``eval_batch_size`` when it is an int. For ``"auto"``: ``batch_size``
        on the CPU (larger batches were no faster on two cores, 0.93x at 64
        images), else ``batch_size`` raised to ``AUTO_EVAL_PIXELS / (H W)``
        images, at most ``AUTO_EVAL_IMAGES`` (64 images at 256 x 256, 4 at
        1024 x 1024): inference keeps no activations for a backward pass,
        so an accelerator fits several training batches at once.
    """
    size = detector.eval_batch_size
    if size != "auto":
        return int(size)
    batch = int(detector.batch_size)
    if torch.device(detector.net_.device).type == "cpu":
        return batch
    pixels = int(image_shape[1]) * int(image_shape[2])
    return max(batch, min(AUTO_EVAL_IMAGES, AUTO_EVAL_PIXELS // max(pixels, 1)))


def map_settings(params):
    """The map parameters of ``params`` (e.g. ``detector.get_params()``), as a dict.

    ``map_normalization`` is left out: it says whether the maps are divided
    by statistics made under the other settings, not how they are made.
    """
    return {name: params[name] for name in MAP if name != "map_normalization"}


def padded_size(height, width, stride):
    """``(H', W')``: the smallest multiples of ``stride`` that are >= the
    image's ``height`` and ``width`` and >= ``2 * stride`` (what
    :func:`pad_to_stride` pads to)."""
    return (
        max(-(-height // stride) * stride, 2 * stride),
        max(-(-width // stride) * stride, 2 * stride),
    )


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
    target_h, target_w = padded_size(height, width, stride)
    if (target_h, target_w) == (height, width):
        return x
    return symmetric_pad(x, 0, target_h - height, 0, target_w - width)


def forward_batches(module, images, *, batch_size, device):
    """Run the network on images, batch by batch, without gradients.

    Parameters
    ----------
    module : skvqad.VQVAE
        The trained network; put in evaluation mode.
    images : ndarray of shape (n, H, W, C), float32 or uint8, or ImageFiles
        Images in [0, 1] (uint8: 0-255, divided batch by batch), channels
        last; or a
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
        batch = device_batch(batch, device)
        with torch.no_grad():
            output = module.run(pad_to_stride(batch, stride))
        yield batch_slice, batch, output


def device_batch(batch, device):
    """A ``(b, H, W, C)`` batch tensor of images as the network takes it.

    Returns the ``(b, C, H, W)`` float32 batch in [0, 1] on ``device``, in
    one memory layout whatever the source (an array's slice or a
    ``DataLoader``'s stack), so that both give the same float32 results;
    uint8 is divided by 255 on the device.
    """
    batch = batch.movedim(-1, 1).to(device, memory_format=torch.contiguous_format)
    return as_unit_float(batch)


def _image_batches(images, batch_size, device):
    """``(slice, (b, H, W, C) float32 tensor)`` batches of an array or files."""
    if isinstance(images, np.ndarray):
        for start in range(0, images.shape[0], batch_size):
            batch_slice = slice(start, start + batch_size)
            yield batch_slice, tensor_of(images[batch_slice])
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


#: The map parameters each part of the maps depends on (for ``cache``).
_RECONSTRUCTION_KEYS = ("reconstruction", "reconstruction_calibration")
_SSIM_KEYS = _RECONSTRUCTION_KEYS + (
    "ssim_win_size", "ssim_gaussian_weights", "ssim_k1", "ssim_k2",
    "ssim_channel_reduction", "ssim_dilation_size",
)  # fmt: skip
_AM_KEYS = ("alignment_normalization", "alignment_distance", "upsampling",
            "dilation_size")  # fmt: skip


def maps_of_output(batch, output, module, settings, map_types, *, cache=None):
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
    cache : dict or None, default=None
        Parts already computed for this batch and forward pass under other
        settings (the reconstruction, SM and AM, each keyed by the parameters
        it depends on); filled as parts are computed. One dict per batch lets
        variants of the settings (the benchmark's ablation) share every part
        they can.

    Returns
    -------
    dict of str to torch.Tensor of shape (b, H, W), float32, on the batch's device
        >= 0 (SM is in [0, 2]); higher is more anomalous.
    """
    cache = {} if cache is None else cache

    def part(name, keys, compute):
        key = (name,) + tuple(plain(settings[k]) for k in keys)
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    size = tuple(batch.shape[-2:])
    parts = {}
    if {"ssim", "ssim+am"} & set(map_types):
        recon = part(
            "reconstruction",
            _RECONSTRUCTION_KEYS,
            lambda: compared_reconstruction(output, module, size, settings),
        )
        parts["ssim"] = part("ssim", _SSIM_KEYS, lambda: _sm(batch, recon, settings))
    if {"am", "ssim+am"} & set(map_types):
        parts["am"] = part(
            "am",
            _AM_KEYS,
            lambda: upsample_alignment_map(
                _alignment(output, module, settings),
                output_size=size,
                scale_factor=2**module.n_downsampling,
                upsampling=settings["upsampling"],
                dilation_size=settings["dilation_size"],
            ),
        )
    if "ssim+am" in map_types:
        parts["ssim+am"] = part(
            "ssim+am", _SSIM_KEYS + _AM_KEYS, lambda: parts["ssim"] * parts["am"]
        )
    return {map_type: parts[map_type] for map_type in map_types}


def _sm(batch, recon, settings):
    """SM: ``1 - SSIM`` (Eq. 5 of [1]_), grey-dilated by ``ssim_dilation_size``."""
    ssim = ssim_map(
        batch,
        recon,
        data_range=1.0,
        win_size=settings["ssim_win_size"],
        gaussian_weights=settings["ssim_gaussian_weights"],
        K1=settings["ssim_k1"],
        K2=settings["ssim_k2"],
        channel_reduction=settings["ssim_channel_reduction"],
    )
    return grey_dilation(1.0 - ssim, settings["ssim_dilation_size"])


def anomaly_maps(
    module, images, settings, map_types, *, batch_size, device, statistics=None
):
    """Every requested map of every image, from one forward pass per batch.

    Parameters
    ----------
    module : skvqad.VQVAE
        The trained network.
    images : ndarray of shape (n, H, W, C), float32 or uint8
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
    for batch_slice, _, batch_maps in map_tensor_batches(
        module,
        images,
        settings,
        map_types,
        batch_size=batch_size,
        device=device,
        statistics=statistics,
    ):
        for map_type, values in batch_maps.items():
            maps[map_type][batch_slice] = values.cpu().numpy()
    return maps


def map_tensor_batches(
    module, images, settings, map_types, *, batch_size, device, statistics=None
):
    """:func:`anomaly_maps` batch by batch, the maps left on the device.

    Parameters are those of :func:`anomaly_maps`.

    Yields
    ------
    batch_slice : slice
        The batch's rows of ``images``.
    batch : torch.Tensor of shape (b, C, H, W), float32, on ``device``
        The images.
    maps : dict of str to torch.Tensor of shape (b, H, W), float32, on ``device``
        The batch's maps of each map type (standardised with ``statistics``).
    """
    for batch_slice, batch, output in forward_batches(
        module, images, batch_size=batch_size, device=device
    ):
        batch_maps = maps_of_output(batch, output, module, settings, map_types)
        if statistics is not None:
            batch_maps = {
                mt: normalize_maps(m, statistics[mt]) for mt, m in batch_maps.items()
            }
        yield batch_slice, batch, batch_maps


def detector_map_batches(detector, images, map_types):
    """:func:`map_tensor_batches` with a fitted detector's network and settings.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted (as for :func:`detector_maps`).
    images : ndarray of shape (n, H, W, C), float32 or uint8, or ImageFiles
        Validated images in [0, 1].
    map_types : sequence of {"ssim", "am", "ssim+am"}

    Yields
    ------
    The batches of :func:`map_tensor_batches`.
    """
    settings = map_settings(detector.get_params())
    yield from map_tensor_batches(
        detector.net_.module_,
        images,
        settings,
        map_types,
        batch_size=eval_batch_size(detector, images.shape),
        device=detector.net_.device,
        statistics=detector_statistics(detector, settings),
    )


def detector_reconstructions(detector, images):
    """A fitted detector's reconstructions of validated images, as SSIM sees them.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted.
    images : ndarray of shape (n, H, W, C), float32 or uint8, or ImageFiles
        Validated images.

    Returns
    -------
    ndarray of shape (n, H, W, C), float32
        :func:`compared_reconstruction` of each image, in [0, 1].
    """
    module = detector.net_.module_
    settings = map_settings(detector.get_params())
    out = np.empty(images.shape, dtype=np.float32)
    for batch_slice, batch, output in forward_batches(
        module,
        images,
        batch_size=eval_batch_size(detector, images.shape),
        device=detector.net_.device,
    ):
        recon = compared_reconstruction(output, module, batch.shape[-2:], settings)
        out[batch_slice] = recon.movedim(1, -1).cpu().numpy()
    return out


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
    images : ndarray of shape (n, H, W, C), float32 or uint8
        Validated images in [0, 1].
    map_types : sequence of {"ssim", "am", "ssim+am"}

    Returns
    -------
    dict of str to ndarray of shape (n, H, W), float32
    """
    maps = {mt: np.empty(images.shape[:3], dtype=np.float32) for mt in map_types}
    for batch_slice, _, batch_maps in detector_map_batches(detector, images, map_types):
        for map_type, values in batch_maps.items():
            maps[map_type][batch_slice] = values.cpu().numpy()
    return maps


def detector_image_scores(detector, images):
    """A detector's ``score_samples`` of images, pooled batch by batch.

    The scores of :func:`detector_scores`, with every batch's maps pooled on
    the detector's device (float32) and only the scores brought back: the
    memory of a batch, not of the set.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        Fitted.
    images : ndarray of shape (n, H, W, C), float32 or uint8, or ImageFiles
        Validated images in [0, 1].

    Returns
    -------
    ndarray of shape (n,), float64
    """
    map_type = detector.anomaly_map_type
    scores = np.empty(len(images), dtype=np.float64)
    for batch_slice, _, maps in detector_map_batches(detector, images, (map_type,)):
        scores[batch_slice] = detector_tensor_scores(detector, maps[map_type])
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
