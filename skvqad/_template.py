"""A detector with no learning: SSIM against the mean training image."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._anomaly_map import POOLINGS
from ._maps import ssim_map
from ._parameters import Count
from ._scoring import (
    detector_scores,
    offset_from_scores,
    record_offset_params,
    warn_if_offset_is_stale,
)
from ._validation import check_device, check_images, tensor_to_array
from .datasets._image_files import as_image_files

__all__ = ["TemplateAnomalyDetector"]


class TemplateAnomalyDetector(OutlierMixin, BaseEstimator):
    """Baseline with no learning: ``1 - SSIM`` against the mean training image.

    :meth:`fit` stores the pixel-wise mean of the normal training images, the
    *template*. An image's anomaly map is ``1 - SSIM(image, template)``
    (Wang et al., 2004, with the window and constants of
    :class:`VQVAEAnomalyDetector`'s SM), its score the map pooled by
    ``score_pooling``. Every figure skvqad publishes says how far a learnt
    detector is above this one: a VQ-VAE that does not beat it has learnt
    nothing useful about the data. It works where normal images are aligned
    (objects in a fixed pose); on textures at random offsets it is near
    chance.

    Parameters
    ----------
    ssim_win_size : int, default=11
        Side of the SSIM window, in pixels; odd, >= 3.
    ssim_gaussian_weights : bool, default=True
        Gaussian window of standard deviation 1.5 pixels if True, else
        uniform.
    ssim_k1, ssim_k2 : float, default=0.01, 0.03
        SSIM constants ``c1 = ssim_k1**2``, ``c2 = ssim_k2**2`` (data range
        1), in (0, 1].
    ssim_channel_reduction : {"mean", "min", "luminance"}, default="mean"
        How colour images give one SSIM map (see :func:`skvqad.ssim_map`).
    score_pooling : {"mean", "max", "gaussian_max", "gaussian_contrast"}, \
default="mean"
        How a map becomes an image score (see
        :class:`VQVAEAnomalyDetector`).
    score_sigma : float, default=8.0
        Smoothing of "gaussian_max" and "gaussian_contrast", in pixels, > 0.
    contamination : "auto" or float, default="auto"
        Sets ``offset_`` on the training scores, as for
        :class:`VQVAEAnomalyDetector`.
    batch_size : int, default=64
        Images per batch when scoring, >= 1.
    device : str, default="auto"
        Torch device for the SSIM maps; "auto" is CUDA when available.

    Attributes
    ----------
    template_ : ndarray of shape (height, width, channels), float32
        The mean training image, in [0, 1].
    offset_ : float
        Threshold on :meth:`score_samples`.

    See Also
    --------
    VQVAEAnomalyDetector : the learnt detector this one is a baseline for.

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad import TemplateAnomalyDetector
    >>> X = np.full((4, 16, 16), 0.5, dtype=np.float32)
    >>> X[:, 4:8] = 0.8
    >>> baseline = TemplateAnomalyDetector(device="cpu").fit(X)
    >>> test = X[:2].copy()
    >>> test[1, 10:14, 10:14] = 0.0
    >>> maps = baseline.anomaly_map(test)
    >>> bool(maps[1, 12, 12] > 0.5 > maps[0, 12, 12])
    True
    """

    _parameter_constraints: dict = {
        "ssim_win_size": [Count(Integral, 3, None, closed="left")],
        "ssim_gaussian_weights": ["boolean"],
        "ssim_k1": [Interval(Real, 0, 1, closed="right")],
        "ssim_k2": [Interval(Real, 0, 1, closed="right")],
        "ssim_channel_reduction": [StrOptions({"mean", "min", "luminance"})],
        "score_pooling": [StrOptions(set(POOLINGS))],
        "score_sigma": [Interval(Real, 0, None, closed="neither")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "batch_size": [Count(Integral, 1, None, closed="left")],
        "device": [str],
    }

    def __init__(
        self,
        *,
        ssim_win_size=11,
        ssim_gaussian_weights=True,
        ssim_k1=0.01,
        ssim_k2=0.03,
        ssim_channel_reduction="mean",
        score_pooling="mean",
        score_sigma=8.0,
        contamination="auto",
        batch_size=64,
        device="auto",
    ):
        self.ssim_win_size = ssim_win_size
        self.ssim_gaussian_weights = ssim_gaussian_weights
        self.ssim_k1 = ssim_k1
        self.ssim_k2 = ssim_k2
        self.ssim_channel_reduction = ssim_channel_reduction
        self.score_pooling = score_pooling
        self.score_sigma = score_sigma
        self.contamination = contamination
        self.batch_size = batch_size
        self.device = device

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Store the mean of the normal training images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels), or image paths
            Normal images, as for :meth:`VQVAEAnomalyDetector.fit`; image
            paths or an :class:`~skvqad.datasets.ImageFiles` are read into
            memory (the baseline holds no network to stream through).
        y : None
            Ignored.

        Returns
        -------
        self : TemplateAnomalyDetector

        Raises
        ------
        ValueError
            If ``X`` is not a valid batch of images (see
            :meth:`VQVAEAnomalyDetector.fit`) or ``ssim_win_size`` is even.
        """
        if self.ssim_win_size % 2 == 0:
            raise ValueError(f"ssim_win_size must be odd, got {self.ssim_win_size}.")
        images = check_images(_as_array(X))
        self.device_ = check_device(self.device)
        self.template_ = images.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.offset_ = offset_from_scores(-self._pooled(images), self.contamination)
        record_offset_params(self, [k for k in self.get_params() if k != "device"])
        return self

    def anomaly_map(self, X):
        """``1 - SSIM`` between each image and the template.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width[, channels])
            Images of the training size and channel count.

        Returns
        -------
        ndarray of shape (n_samples, height, width), float32
            In [0, 2]; higher is more anomalous.

        Raises
        ------
        ValueError
            If ``X`` is invalid or its images' size or channels differ from
            the template's.
        """
        check_is_fitted(self)
        self._validate_params()  # set_params may have changed them
        images = check_images(_as_array(X))
        if images.shape[1:] != self.template_.shape:
            raise ValueError(
                f"X holds images of shape {images.shape[1:]} (height, width, "
                f"channels), but the template is {self.template_.shape}."
            )
        return self._maps(images)

    def score_samples(self, X):
        """Normality score: minus the pooled anomaly map; higher is more normal.

        Parameters
        ----------
        X : array-like, shapes as for :meth:`anomaly_map`

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return detector_scores(self, self.anomaly_map(X))

    def decision_function(self, X):
        """``score_samples(X) - offset_``; negative for outliers.

        Parameters
        ----------
        X : array-like, shapes as for :meth:`anomaly_map`

        Returns
        -------
        ndarray of shape (n_samples,), float64

        Warns
        -----
        UserWarning
            If an SSIM or scoring parameter (or ``contamination``) was changed
            with ``set_params`` after :meth:`fit`: ``offset_`` belongs to the
            fit settings (refit, or :func:`skvqad.fit_threshold`).
        """
        return self._decision_function(X, stacklevel=3)

    def _decision_function(self, X, stacklevel):
        warn_if_offset_is_stale(self, stacklevel + 1)
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """-1 for an anomaly, +1 for a normal image.

        Parameters
        ----------
        X : array-like, shapes as for :meth:`anomaly_map`

        Returns
        -------
        ndarray of shape (n_samples,), int
        """
        return np.where(self._decision_function(X, stacklevel=3) < 0, -1, 1)

    def _maps(self, images):
        maps = np.empty(images.shape[:3], dtype=np.float32)
        for start in range(0, len(images), self.batch_size):
            batch = torch.from_numpy(images[start : start + self.batch_size])
            batch = batch.movedim(-1, 1).to(self.device_)
            maps[start : start + self.batch_size] = template_maps(self, batch).cpu()
        return maps

    def _pooled(self, images):
        return -detector_scores(self, self._maps(images))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = False
        return tags


def _as_array(X):
    """``X`` as an array: image paths (or ImageFiles) are read, all at once."""
    files = as_image_files(X)
    return tensor_to_array(X) if files is None else np.asarray(files)


def template_maps(baseline, batch):
    """``1 - SSIM`` of a batch against a fitted baseline's template, on its device.

    Parameters
    ----------
    baseline : TemplateAnomalyDetector
        Fitted.
    batch : torch.Tensor of shape (b, C, H, W), float32
        Images in [0, 1] of the template's shape, on any device.

    Returns
    -------
    torch.Tensor of shape (b, H, W), float32, on the baseline's device
        In [0, 2]; higher is more anomalous.
    """
    template = torch.from_numpy(baseline.template_).movedim(-1, 0)[None]
    batch = batch.to(baseline.device_)
    ssim = ssim_map(
        batch,
        template.to(batch.device).expand_as(batch),
        data_range=1.0,
        win_size=baseline.ssim_win_size,
        gaussian_weights=baseline.ssim_gaussian_weights,
        K1=baseline.ssim_k1,
        K2=baseline.ssim_k2,
        channel_reduction=baseline.ssim_channel_reduction,
    )
    return 1.0 - ssim
