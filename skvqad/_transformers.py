"""Transformers that turn images into the VQ-VAE anomaly maps, for pipelines."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods
from sklearn.utils.validation import check_is_fitted

from ._detector import VQVAEAnomalyDetector
from ._parameters import MAP, fill_names
from ._validation import tensor_to_array

__all__ = ["AlignmentMapTransformer", "SSIMAMMapTransformer", "SSIMMapTransformer"]


_PARAMETERS = """Parameters
    ----------
    detector : VQVAEAnomalyDetector or None, default=None
        The detector whose VQ-VAE makes the maps; cloned and fitted in
        :meth:`fit` unless ``prefit``. None means ``VQVAEAnomalyDetector()``.
        Its map parameters apply, its ``anomaly_map_type`` and
        ``score_pooling`` do not. The map parameters are:

        {map_parameters}.
    prefit : bool, default=False
        If True, ``detector`` must already be fitted and is used as is.

    Attributes
    ----------
    detector_ : VQVAEAnomalyDetector
        The fitted detector.
    map_shape_ : tuple of int
        ``(height, width)`` of the training images and of every map.
    n_features_in_ : int
        Present when fitted on 2-D ``(n_samples, n_features)`` input."""


def _with_shared_docs(cls):
    """Fill ``{parameters}`` in a transformer's docstring (one source of text)."""
    parameters = fill_names(_PARAMETERS, "{map_parameters}", MAP)
    cls.__doc__ = cls.__doc__.replace("{parameters}", parameters)
    return cls


class _MapTransformer(TransformerMixin, BaseEstimator):
    """Base: fit (or take) a detector, transform images into flattened maps."""

    _map_type = None  # set by subclasses
    _prefix = None

    _parameter_constraints: dict = {
        "detector": [HasMethods(["fit", "anomaly_map"]), None],
        "prefit": ["boolean"],
    }

    def __init__(self, detector=None, *, prefit=False):
        self.detector = detector
        self.prefit = prefit

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the detector on normal images (unless ``prefit``).

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width), \
(n_samples, height, width, channels) or (n_samples, n_features)
            Normal training images, as for
            :meth:`VQVAEAnomalyDetector.fit`. Their height and width fix the
            output features.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.

        Raises
        ------
        ValueError
            If ``X`` is invalid, or ``prefit=True`` and no fitted detector is
            given.
        """
        if self.prefit:
            if self.detector is None:
                raise ValueError("prefit=True needs a fitted detector.")
            check_is_fitted(self.detector)
            self.detector_ = self.detector
        else:
            base = VQVAEAnomalyDetector() if self.detector is None else self.detector
            self.detector_ = clone(base).fit(X, y)
        if self.prefit:
            # The detector checks X (channels, features, values) on one image.
            X = tensor_to_array(X)
            first = X[:1] if hasattr(X, "shape") or isinstance(X, list) else X
            self.map_shape_ = self.detector_.anomaly_map(first).shape[1:]
        else:
            self.map_shape_ = tuple(self.detector_.image_shape_)
        if hasattr(self.detector_, "n_features_in_"):
            self.n_features_in_ = self.detector_.n_features_in_
        return self

    def transform(self, X):
        """Anomaly map of each image, flattened row by row.

        Parameters
        ----------
        X : array-like, shapes as for :meth:`fit`
            Images of the training height and width.

        Returns
        -------
        ndarray of shape (n_samples, height * width), float32
            ``maps.reshape(n_samples, -1)`` with ``maps`` as returned by
            :meth:`VQVAEAnomalyDetector.anomaly_map` for this transformer's
            map type: pixel ``(r, c)`` is column ``r * width + c``. Higher is
            more anomalous.

        Raises
        ------
        ValueError
            If ``X`` is invalid or its height and width differ from training.
        """
        check_is_fitted(self)
        maps = self.detector_.anomaly_map(X, map_type=self._map_type)
        if maps.shape[1:] != self.map_shape_:
            raise ValueError(
                f"X has images of size {maps.shape[1:]}, but the transformer "
                f"was fitted on size {self.map_shape_}."
            )
        return maps.reshape(len(maps), -1)

    def get_feature_names_out(self, input_features=None):
        """Names of the output columns: ``<map>_r<row>_c<column>``.

        Parameters
        ----------
        input_features : None
            Ignored (the outputs are map pixels, not input features).

        Returns
        -------
        ndarray of shape (height * width,), object
        """
        check_is_fitted(self)
        height, width = self.map_shape_
        rows, cols = np.divmod(np.arange(height * width), width)
        return np.array(
            [f"{self._prefix}_r{r}_c{c}" for r, c in zip(rows, cols)], dtype=object
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.non_deterministic = self.detector is not None and (
            self.detector.__sklearn_tags__().non_deterministic
        )
        return tags


@_with_shared_docs
class SSIMMapTransformer(_MapTransformer):
    """Images to their SM anomaly maps, ``1 - SSIM(image, reconstruction)``.

    Fits a :class:`VQVAEAnomalyDetector` on normal images (or uses a fitted
    one with ``prefit=True``) and transforms images into their SSIM anomaly
    maps (Eq. 5 of Gangloff et al., 2022), flattened to one row per image so
    that any scikit-learn step can follow.

    {parameters}

    See Also
    --------
    AlignmentMapTransformer, SSIMAMMapTransformer

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad import SSIMMapTransformer, VQVAEAnomalyDetector
    >>> X = np.random.default_rng(0).uniform(size=(6, 16, 16)).astype(np.float32)
    >>> tiny = VQVAEAnomalyDetector(n_downsampling=2, hidden_channels=4,
    ...     n_residual_layers=1, n_embeddings=8, embedding_dim=2, max_epochs=1,
    ...     random_state=0)
    >>> SSIMMapTransformer(tiny).fit_transform(X).shape
    (6, 256)
    """

    _map_type = "ssim"
    _prefix = "ssim"


@_with_shared_docs
class AlignmentMapTransformer(_MapTransformer):
    """Images to their alignment maps, upsampled to image size and dilated.

    The alignment map (Eq. 6 of Gangloff et al., 2022), the distance from
    each encoder output to its nearest codebook vector (plain or squared, by
    the detector's ``alignment_distance``; optionally normalised per code),
    upsampled by the detector's ``upsampling`` and grey-dilated by its
    ``dilation_size``, flattened to one row per image.

    {parameters}
    """

    _map_type = "am"
    _prefix = "am"


@_with_shared_docs
class SSIMAMMapTransformer(_MapTransformer):
    """Images to their SSIM+AM anomaly maps (Section II-C of Gangloff et al.).

    ``(1 - SSIM) x dilate(upsample(AM))``, flattened to one row per image.

    {parameters}
    """

    _map_type = "ssim+am"
    _prefix = "ssim_am"
