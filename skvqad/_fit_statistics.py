"""What ``fit`` learns from the training images once the network is trained.

One pass over the training images after training gives the mean AM per
codebook vector (``alignment_normalization="per_code"``), the share of the
codebook in use and the calibration of the reconstruction
(:func:`training_statistics`); the maps made with those give the per-pixel
statistics of the maps (``map_normalization="per_pixel"``,
:func:`map_statistics`) and the training scores. For an array of training
images whose network outputs take at most :data:`KEPT_OUTPUT_BYTES`, the
outputs of the first pass are kept for the maps: one forward pass in all.
The maps themselves come from :mod:`skvqad._anomaly_map`.
"""

import warnings

import numpy as np
import torch
from sklearn.isotonic import IsotonicRegression

from ._anomaly_map import (
    MAP_TYPES,
    RECONSTRUCTIONS,
    device_batch,
    eval_batch_size,
    forward_batches,
    map_settings,
    map_tensor_batches,
    maps_of_output,
    normalize_maps,
    padded_size,
    reconstruction,
)
from ._model import CALIBRATION_KNOTS, VQVAEOutput
from ._scoring import caller_level, detector_tensor_scores
from ._validation import tensor_of

__all__ = [
    "KEPT_OUTPUT_BYTES",
    "SCALE_FLOOR",
    "after_training",
    "map_statistics",
    "training_statistics",
    "variant_statistics",
]

#: Floor of the per-pixel scale of ``map_normalization="per_pixel"``, as a
#: fraction of the scale's mean over the image (:func:`map_statistics`).
SCALE_FLOOR = 0.1


#: Most bytes of network outputs (logits, code indices, AM) that ``fit``
#: keeps from its first pass over an array of training images for the maps
#: of the second, instead of running the network again.
KEPT_OUTPUT_BYTES = 2**30

#: Pixel pairs per channel that the isotonic calibration is fitted on.
_CALIBRATION_PIXELS = 200_000
#: Bins of the reconstruction's value the pairs are pooled in before the fit.
_CALIBRATION_BINS = 4 * (CALIBRATION_KNOTS - 1)


def after_training(detector, images):
    """What a detector's ``fit`` learns from its training images once trained.

    Sets the network's calibration and per-code alignment
    (:func:`training_statistics`), then makes the per-pixel map statistics
    (:func:`map_statistics`) and scores the training images, for the
    threshold, from the same maps. The network runs once over an array
    whose outputs take at most :data:`KEPT_OUTPUT_BYTES` (they are kept
    for the maps), twice otherwise, and three times over image files (their
    maps are not kept either).

    Parameters
    ----------
    detector : VQVAEAnomalyDetector
        With a trained ``net_``; its map and scoring parameters are read.
    images : ndarray of shape (n, H, W, C), float32 or uint8, or ImageFiles
        The training images.

    Returns
    -------
    usage : float
        The share of the codebook in use, in [0, 1].
    settings : dict
        The map parameters the statistics were made under.
    statistics : dict of str to ndarray of shape (2, H, W), float32
        As :func:`map_statistics` returns them.
    scores : ndarray of shape (n,), float64
        The detector's ``score_samples`` of the training images.
    """
    module, device = detector.net_.module_, detector.net_.device
    batch_size = eval_batch_size(detector, images.shape)
    files = not isinstance(images, np.ndarray)
    kept = None if files or _output_bytes(module, images) > KEPT_OUTPUT_BYTES else []
    code_alignment, usage, calibration = training_statistics(
        module, images, batch_size=batch_size, device=device, kept=kept
    )
    module.calibration.copy_(calibration)
    module.quantizer.code_alignment.copy_(code_alignment)
    settings = map_settings(detector.get_params())
    map_type = detector.anomaly_map_type
    statistics, maps = map_statistics(
        module,
        images,
        settings,
        None if files else map_type,  # files: a second pass
        batch_size=batch_size,
        device=device,
        outputs=kept,
    )
    standardise = detector.map_normalization == "per_pixel"  # as detector_maps does
    if files:  # score_samples' pass, with these statistics
        scores = np.empty(len(images), dtype=np.float64)
        for batch_slice, _, batch_maps in map_tensor_batches(
            module,
            images,
            settings,
            (map_type,),
            batch_size=batch_size,
            device=device,
            statistics=statistics if standardise else None,
        ):
            scores[batch_slice] = detector_tensor_scores(detector, batch_maps[map_type])
        return usage, settings, statistics, scores
    maps = torch.from_numpy(maps)
    if standardise:
        maps = normalize_maps(maps, statistics[map_type])
    return usage, settings, statistics, detector_tensor_scores(detector, maps)


def _output_bytes(module, images):
    """Bytes of the kept outputs (float32 logits, int64 indices, float32 AM)."""
    n, height, width, n_channels = images.shape
    stride = 2**module.n_downsampling
    padded_h, padded_w = padded_size(height, width, stride)
    latents = (padded_h // stride) * (padded_w // stride)
    return n * (4 * n_channels * padded_h * padded_w + 12 * latents)


def _kept_outputs(images, outputs, device):
    """:func:`forward_batches`' triples again, from its kept outputs."""
    for batch_slice, output in outputs:
        yield batch_slice, device_batch(tensor_of(images[batch_slice]), device), output


def training_statistics(module, images, *, batch_size, device, kept=None):
    """What ``fit`` learns from the training images after training.

    One forward pass over the training images gives the mean AM per codebook
    vector (for ``alignment_normalization="per_code"``), the share of the
    codebook in use, and the monotone calibration of the reconstruction.

    Parameters
    ----------
    module : skvqad.VQVAE
        The trained network.
    images : ndarray of shape (n, H, W, C), float32 or uint8, or ImageFiles
        The training images (files are read in batches).
    batch_size : int
        Images per forward pass, >= 1.
    device : str or torch.device
        The network's device.
    kept : list or None, default=None
        If a list, each batch's ``(slice, output)`` is appended to it, the
        output (:class:`~skvqad.VQVAEOutput`) without ``z_e`` and ``z_q``,
        for :func:`map_statistics`' ``outputs``.

    Returns
    -------
    code_alignment : torch.Tensor of shape (M,), float32, on the CPU
        Mean squared latent distance of the training vectors that select each
        codebook vector, > 0; the overall mean for vectors none selects;
        floored at 1e-3 x the overall mean (and 1e-12).
    usage : float
        Fraction, in [0, 1], of the ``M`` vectors selected at least once.
    calibration : torch.Tensor of shape (2, C, CALIBRATION_KNOTS), float32
        For each kind of reconstruction (:data:`RECONSTRUCTIONS`, in order)
        and each channel, the isotonic regression (scikit-learn's
        :class:`~sklearn.isotonic.IsotonicRegression`, increasing, in [0, 1])
        of the training pixels' values on their reconstructions' values
        (pooled in ``4 * (CALIBRATION_KNOTS - 1)`` bins of the
        reconstruction's value, each weighted by its count: the fit of every
        pair up to a bin's width), evaluated at ``CALIBRATION_KNOTS`` uniform
        knots of [0, 1]. See :func:`calibrate`.
    """
    n_codes = module.quantizer.codebook.num_embeddings
    sums = torch.zeros(n_codes, dtype=torch.float64)
    counts = torch.zeros(n_codes, dtype=torch.float64)
    n, height, width, n_channels = images.shape
    # A fixed stride through the training pixels: deterministic, no RNG.
    step = max(1, (n * height * width) // _CALIBRATION_PIXELS)
    # Every pixel pair kept goes into one array allocated up front: many
    # small arrays kept among the freed batches fragment the heap, and the
    # memory of a pass over image files then grows with their number.
    per_batch = [
        -(-min(batch_size, n - start) * height * width // step)
        for start in range(0, n, batch_size)
    ]
    pairs = np.empty((len(RECONSTRUCTIONS), n_channels, 2, sum(per_batch)), np.float32)
    ends = np.cumsum(per_batch)
    for i, (batch_slice, batch, output) in enumerate(
        forward_batches(module, images, batch_size=batch_size, device=device)
    ):
        if kept is not None:
            small = VQVAEOutput(output.logits, None, None, *output[3:])
            kept.append((batch_slice, small))
        idx = output.indices.reshape(-1).cpu()
        # Accumulated in float64 on the CPU, never on the device.
        sums.index_add_(0, idx, output.alignment.reshape(-1).cpu().double())
        counts += torch.bincount(idx, minlength=n_codes).double()
        for k, kind in enumerate(RECONSTRUCTIONS):
            recon = reconstruction(output.logits, batch.shape[-2:], kind)
            both = torch.stack([recon, batch]).movedim(2, 0)
            sample = both.reshape(n_channels, 2, -1)[:, :, ::step]
            pairs[k, ..., ends[i] - per_batch[i] : ends[i]] = sample.cpu().numpy()
    overall = sums.sum() / counts.sum()
    means = torch.where(counts > 0, sums / counts.clamp_min(1.0), overall)
    # Floor: a code whose training vectors sit exactly on it must not divide by 0.
    floor = max(float(overall) * 1e-3, 1e-12)
    usage = float((counts > 0).double().mean())
    calibration = torch.from_numpy(
        np.stack([[_isotonic_table(*pair) for pair in kind] for kind in pairs])
    )
    return means.clamp_min(floor).float(), usage, calibration


def _isotonic_table(recon, pixels):
    """(K,) float32 isotonic fit of ``pixels`` on ``recon`` at uniform knots.

    The identity where no finite pair is left (a diverged network, which the
    detector reports itself).
    """
    knots = np.linspace(0.0, 1.0, CALIBRATION_KNOTS)
    finite = np.isfinite(recon) & np.isfinite(pixels)
    if not finite.any():
        return knots.astype(np.float32)
    recon, pixels = recon[finite].astype(np.float64), pixels[finite]
    # The pairs pooled in _CALIBRATION_BINS bins of the reconstruction's
    # value: the isotonic fit of the bins' mean pairs, weighted by their
    # counts, is the fit of every pair up to a bin's width (1/4 of the knots'
    # spacing), at a fraction of the cost (a fit of 200,000 pairs took 0.06 s,
    # six of them half of a small fit).
    bins = np.clip(
        (recon * _CALIBRATION_BINS).astype(np.int64), 0, _CALIBRATION_BINS - 1
    )
    counts = np.bincount(bins, minlength=_CALIBRATION_BINS).astype(np.float64)
    used = counts > 0
    mean_recon = np.bincount(bins, recon, _CALIBRATION_BINS)[used] / counts[used]
    mean_pixel = np.bincount(bins, pixels, _CALIBRATION_BINS)[used] / counts[used]
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(mean_recon, mean_pixel, sample_weight=counts[used])
    return isotonic.predict(knots).astype(np.float32)


def map_statistics(
    module, images, settings, map_type, *, batch_size, device, outputs=None
):
    """Per-pixel mean and scale of every map over the training images.

    The statistics of ``map_normalization="per_pixel"``: at each pixel, the
    mean ``mu`` and standard deviation ``sd`` of the SM, AM and SSIM+AM
    maps of the training images, and the scale ``sd + SCALE_FLOOR *
    mean(sd)`` (the floor keeps pixels that never vary, such as a black
    background, from dividing by zero). Standardising a map by its training
    maps, pixel by pixel, is the Gaussian model of normal pixels of PaDiM
    (Defard et al., 2021, Section 3.2) applied to the maps, with the
    covariance reduced to a variance.

    Parameters
    ----------
    module, images, batch_size, device
        As for :func:`training_statistics`.
    settings : mapping
        The map parameters (:func:`skvqad._anomaly_map.map_settings`).
    map_type : {"ssim", "am", "ssim+am"} or None
        The map whose raw values are also returned (the detector scores the
        training images from them: one forward pass for both); None keeps
        none (image files: the memory must not grow with their number).
    outputs : list or None, default=None
        The ``kept`` outputs of :func:`training_statistics` for an array of
        ``images``, used instead of running the network again (the same
        network in evaluation mode: the same maps); None runs it.

    Returns
    -------
    statistics : dict of str to ndarray of shape (2, H, W), float32
        For each of :data:`MAP_TYPES`, ``mu`` (row 0) and the scale (row 1,
        > 0; all ones, with a warning, when no pixel varies over the
        training maps, as with one training image or identical ones).
    maps : ndarray of shape (n, H, W), float32, or None
        The raw ``map_type`` maps of the training images.
    """
    sums = {}
    maps = None if map_type is None else np.empty(images.shape[:3], np.float32)
    if outputs is None:
        batches = forward_batches(module, images, batch_size=batch_size, device=device)
    else:
        batches = _kept_outputs(images, outputs, device)
    for batch_slice, batch, output in batches:
        for name, values in maps_of_output(
            batch, output, module, settings, MAP_TYPES
        ).items():
            _accumulate(sums, name, values)
            if name == map_type:
                maps[batch_slice] = values.cpu().numpy()
    return _mean_and_scale(sums, images.shape[0]), maps


def variant_statistics(module, images, variants, *, batch_size, device):
    """:func:`map_statistics` under several map settings, one forward pass a batch.

    Parameters
    ----------
    module, images, batch_size, device
        As for :func:`training_statistics`.
    variants : sequence of mapping
        Map parameters (:func:`skvqad._anomaly_map.map_settings`), one per
        set of statistics.

    Returns
    -------
    list of dict of str to ndarray of shape (2, H, W), float32
        The statistics of each variant, in order.
    """
    sums = [{} for _ in variants]
    for _, batch, output in forward_batches(
        module, images, batch_size=batch_size, device=device
    ):
        parts = {}  # one reconstruction, SM and AM per distinct setting
        for settings, variant_sums in zip(variants, sums):
            for map_type, values in maps_of_output(
                batch, output, module, settings, MAP_TYPES, cache=parts
            ).items():
                _accumulate(variant_sums, map_type, values)
    return [_mean_and_scale(variant_sums, images.shape[0]) for variant_sums in sums]


def _accumulate(sums, map_type, values):
    """Add a batch's per-pixel sum and sum of squares of ``values`` to ``sums``."""
    values = values.cpu().double()  # float64 on the CPU, never on the device
    both = torch.stack([values.sum(0), values.square().sum(0)])
    sums[map_type] = both + sums.get(map_type, 0.0)


def _mean_and_scale(sums, n):
    """{map type: (2, H, W) float32 mean and scale} from sums over ``n`` maps."""
    statistics, constant = {}, []
    for map_type, (total, squares) in sums.items():
        mean = total / n
        sd = (squares / n - mean.square()).clamp_min(0.0).sqrt()
        scale = sd + SCALE_FLOOR * sd.mean()
        # (Not finite: a diverged network, which the detector reports.)
        if bool(scale.isfinite().all()) and not bool((scale > 0).all()):
            constant.append(map_type)
            scale = torch.ones_like(scale)
        statistics[map_type] = torch.stack([mean, scale]).float().numpy()
    if constant:
        warnings.warn(
            f"The training images' {', '.join(constant)} maps do not vary (one "
            "training image, or identical ones): map_normalization only "
            "subtracts their mean, dividing by 1; those maps are not in "
            "standard deviations.",
            UserWarning,
            stacklevel=caller_level(),
        )
    return statistics
