"""Cross-validation and scoring for one-class (normal-only) training."""

import numpy as np
from sklearn.metrics import make_scorer
from sklearn.model_selection import KFold
from sklearn.model_selection._split import BaseCrossValidator

from .metrics import image_roc_auc, pixel_roc_auc

__all__ = [
    "OneClassKFold",
    "get_scorer",
    "image_roc_auc_scorer",
    "pixel_roc_auc_scorer",
]


def _image_labels(y):
    """(n,) bool, True = anomalous, from labels (n,) or masks (n, H, W).

    Labels must be 0 / 1 (or False / True); masks are anomalous where > 0.
    """
    y = np.asarray(y)
    if y.ndim == 0:
        raise ValueError("y must hold one label or mask per image.")
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.isfinite(y).all()):
        raise ValueError(
            f"y must be numeric labels (1 = anomalous, 0 = normal) or masks; got "
            f"dtype {y.dtype}{' with NaN or inf' if y.dtype.kind == 'f' else ''}."
        )
    if y.ndim == 1:
        if not np.isin(y, (0, 1)).all():
            raise ValueError(
                f"image labels must be 0 (normal) or 1 (anomalous), got values "
                f"{np.unique(y)[:5]}; for scikit-learn's +1/-1 convention pass "
                "(y == -1)."
            )
        return y.astype(bool)
    return (y.reshape(len(y), -1) > 0).any(axis=1)


class OneClassKFold(BaseCrossValidator):
    """K-fold splits whose training folds hold normal images only.

    The normal images are split into ``n_splits`` folds with
    :class:`~sklearn.model_selection.KFold`, and so are the anomalous ones.
    Split ``k`` trains on the normal images outside normal fold ``k`` and
    tests on normal fold ``k`` plus anomalous fold ``k``: every test fold
    holds both classes, no anomalous image is ever trained on, and every image
    is tested once.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, >= 2; at most the number of normal images and of
        anomalous images.
    shuffle : bool, default=False
        Shuffle each class before splitting.
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling when ``shuffle`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad import OneClassKFold
    >>> y = np.array([0, 0, 0, 0, 1, 1])        # 1 = anomalous
    >>> for train, test in OneClassKFold(n_splits=2).split(np.zeros((6, 4, 4)), y):
    ...     print(train, test)
    [2 3] [0 1 4]
    [0 1] [2 3 5]
    """

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def split(self, X, y, groups=None):
        """Generate (train, test) index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Images; only their number is used.
        y : array-like of shape (n_samples,) or (n_samples, height, width)
            Image labels, 1 (or True) = anomalous and 0 = normal, or pixel
            masks, an image being anomalous when its mask has any True pixel.
        groups : None
            Ignored.

        Yields
        ------
        train : ndarray of int
            Indices of normal images only.
        test : ndarray of int
            Indices of normal and anomalous images.

        Raises
        ------
        ValueError
            If ``y`` is missing or does not match ``X``, or a class has fewer
            images than ``n_splits``.
        """
        if y is None:
            raise ValueError("OneClassKFold needs y: image labels or pixel masks.")
        anomalous = _image_labels(y)
        if len(anomalous) != len(X):
            raise ValueError(f"y has {len(anomalous)} entries for {len(X)} images.")
        normal_idx = np.flatnonzero(~anomalous)
        anomalous_idx = np.flatnonzero(anomalous)
        for name, idx in (("normal", normal_idx), ("anomalous", anomalous_idx)):
            if len(idx) < self.n_splits:
                raise ValueError(
                    f"n_splits={self.n_splits} needs at least as many {name} "
                    f"images, got {len(idx)}."
                )
        kfold = KFold(
            self.n_splits, shuffle=self.shuffle, random_state=self.random_state
        )
        normal_folds = kfold.split(normal_idx)
        anomalous_folds = kfold.split(anomalous_idx)
        for (train_n, test_n), (_, test_a) in zip(normal_folds, anomalous_folds):
            yield (
                normal_idx[train_n],
                np.sort(np.r_[normal_idx[test_n], anomalous_idx[test_a]]),
            )

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits, ``n_splits``."""
        return self.n_splits


def _image_roc_auc(y_true, normality):
    # score_samples is higher for normal images; y_true marks anomalies.
    return image_roc_auc(_image_labels(y_true), normality, greater_is_anomalous=False)


def _pixel_roc_auc(masks, maps):
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.dtype.kind in "biu":  # 0/255 masks count as binary here
        masks = masks > 0
    return pixel_roc_auc(masks, maps)


#: Image ROC-AUC of a fitted detector: ``scorer(estimator, X, y)`` with ``y``
#: labels (1 = anomalous) or masks, from ``-score_samples(X)``.
image_roc_auc_scorer = make_scorer(_image_roc_auc, response_method=("score_samples",))

#: Pooled pixel ROC-AUC of a fitted detector: ``scorer(estimator, X, masks)``
#: over all pixels of ``anomaly_map(X)``. The estimator must have
#: ``anomaly_map`` (a detector, not a Pipeline ending in one).
pixel_roc_auc_scorer = make_scorer(_pixel_roc_auc, response_method=("anomaly_map",))

_SCORERS = {
    "image_roc_auc": image_roc_auc_scorer,
    "pixel_roc_auc": pixel_roc_auc_scorer,
}


def get_scorer(name):
    """A scorer by name, for ``GridSearchCV(scoring=...)``.

    Parameters
    ----------
    name : {"image_roc_auc", "pixel_roc_auc"}
        ``"image_roc_auc"`` scores ``-score_samples`` against ``y`` (labels,
        1 = anomalous and 0 = normal, or masks); ``"pixel_roc_auc"`` scores
        every pixel of ``anomaly_map`` against ``y`` masks of shape
        (n_samples, height, width), pooled over all images (the MVTec AD
        protocol); the estimator must have ``anomaly_map``. (scikit-learn's
        own ``"roc_auc"`` is inverted with 1 = anomalous labels, since
        ``decision_function`` is higher for normal images.)

    Returns
    -------
    callable
        ``scorer(estimator, X, y) -> float`` in [0, 1], higher is better; a
        :func:`sklearn.metrics.make_scorer` product.

    Raises
    ------
    ValueError
        If the name is unknown. The scorers raise ValueError when labels are
        not 0/1, or masks do not match the maps' shape.
    """
    try:
        return _SCORERS[name]
    except KeyError:
        raise ValueError(
            f"unknown scorer {name!r}; choose from {sorted(_SCORERS)}."
        ) from None
