"""Image scores from anomaly maps, and the threshold on them.

The one scoring path: every estimator, ``skvqad score``, ``skvqad
evaluate`` and the benchmark pool maps into image scores here
(:func:`pool_maps`), and set and check ``offset_`` here.
"""

import inspect
import math
import os
import sys
import warnings

import numpy as np
import sklearn
import torch

from ._maps import gaussian_filter
from ._parameters import POOLINGS

__all__ = [
    "FLOOR_QUANTILE",
    "caller_level",
    "detector_scores",
    "detector_tensor_scores",
    "offset_from_scores",
    "plain",
    "pool_maps",
    "pool_maps_all",
    "record_offset_params",
    "warn_if_offset_is_stale",
]

#: Share of the smoothed map's pixels below the level that
#: ``"gaussian_contrast"`` subtracts: its lower quartile.
FLOOR_QUANTILE = 0.25


def detector_tensor_scores(detector, maps):
    """:func:`detector_scores` of maps on a device: pooled there in float32.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector or TemplateAnomalyDetector
    maps : torch.Tensor of shape (b, H, W), float32

    Returns
    -------
    ndarray of shape (b,), float64
        Minus the pooled maps.
    """
    pooled = pool_maps(maps, detector.score_pooling, detector.score_sigma)
    return -pooled.cpu().numpy().astype(np.float64)


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
    return pool_maps_all(maps, (pooling,), sigma)[pooling]


def pool_maps_all(maps, poolings, sigma=8.0):
    """:func:`pool_maps` of the same maps under several poolings, smoothing once.

    Parameters
    ----------
    maps : torch.Tensor of shape (n, H, W), floating
    poolings : sequence of {"mean", "max", "gaussian_max", "gaussian_contrast"}
    sigma : float, default=8.0
        As for :func:`pool_maps`.

    Returns
    -------
    dict of str to torch.Tensor of shape (n,)
        Each pooling's scores, equal to :func:`pool_maps`'.
    """
    smooth = None
    scores = {}
    for pooling in poolings:
        if pooling in ("gaussian_max", "gaussian_contrast") and smooth is None:
            smooth = gaussian_filter(maps, sigma).flatten(1)
        if pooling == "gaussian_max":
            scores[pooling] = smooth.amax(dim=1)
        elif pooling == "gaussian_contrast":
            k = max(1, math.ceil(FLOOR_QUANTILE * smooth.shape[1]))
            scores[pooling] = smooth.amax(dim=1) - smooth.kthvalue(k, dim=1).values
        elif pooling == "max":
            scores[pooling] = maps.amax(dim=(1, 2))
        else:
            scores[pooling] = maps.mean(dim=(1, 2))
    return scores


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
