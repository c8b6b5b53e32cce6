"""Setting a fitted detector's threshold from images the user has checked.

``fit`` puts the threshold ``offset_`` on the training scores
(``contamination``); but the network has seen those images, so their scores
are optimistic, and a user often has a few more images known to be normal, or
a small labelled validation set. :func:`fit_threshold` moves ``offset_`` to
the threshold those images call for, the way anomalib adapts its threshold on
a validation split (F1-max) or an inspector fixes a false-alarm rate.
"""

from numbers import Real

import numpy as np
from sklearn.metrics import precision_recall_curve
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._scoring import record_offset_params

__all__ = ["fit_threshold"]


def _anomaly_labels(y, n):
    """``y`` as a bool array, True = anomalous, from {0, 1} or {-1, 1} labels."""
    y = column_or_1d(y, warn=True)
    if y.shape[0] != n:
        raise ValueError(f"y has {y.shape[0]} labels for {n} images.")
    values = set(np.unique(y).tolist())
    if values <= {0, 1}:
        return y == 1
    if values <= {-1, 1}:
        return y == -1
    raise ValueError(
        "y must hold 0 (normal) / 1 (anomalous) or 1 (normal) / -1 (anomalous) "
        f"labels, got values {sorted(values)}."
    )


def fit_threshold(detector, X, y=None, *, max_fpr=None):
    """Set ``detector.offset_`` from validation images; return the detector.

    Parameters
    ----------
    detector : VQVAEAnomalyDetector or TemplateAnomalyDetector
        Fitted. Its ``offset_`` is replaced; nothing else changes.
    X : array-like of shape (n_samples, height, width[, channels])
        Validation images, as for ``detector.score_samples``; not modified.
    y : array-like of shape (n_samples,), optional
        Their labels: 0 normal / 1 anomalous (the loaders' ``y_test``), or
        ``predict``'s 1 normal / -1 anomalous. None: every image is normal.
    max_fpr : float in [0, 1) or None, default=None
        The largest share of the normal images of ``X`` that may be flagged
        (false-positive rate). The threshold is then the lowest that flags
        at most ``floor(max_fpr * n_normal)`` of them. None means 0 when
        ``y`` is None (no normal image flagged) and, with ``y``, the
        threshold that maximises the F1 score of the anomalous images
        (F1-max, as anomalib's adaptive threshold).

    Returns
    -------
    detector
        The same object, with the new ``offset_``: ``predict`` flags an image
        when ``score_samples`` < ``offset_``.

    Raises
    ------
    ValueError
        If ``X`` is invalid, ``y`` does not match it or holds other labels,
        ``max_fpr`` is outside [0, 1), there is no normal image for
        ``max_fpr``, or no anomalous one for F1-max.
    sklearn.exceptions.NotFittedError
        If the detector is not fitted.

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad import TemplateAnomalyDetector, fit_threshold
    >>> rng = np.random.default_rng(0)
    >>> X_good = rng.random((8, 32, 32)) * 0.1 + 0.45
    >>> detector = TemplateAnomalyDetector(device="cpu").fit(X_good[:4])
    >>> X_val = np.concatenate([X_good[4:], rng.random((2, 32, 32))])
    >>> y_val = np.array([0, 0, 0, 0, 1, 1])  # 1 = anomalous
    >>> _ = fit_threshold(detector, X_good[4:])  # none of them flagged
    >>> detector.predict(X_good[4:]).tolist()
    [1, 1, 1, 1]
    >>> _ = fit_threshold(detector, X_val, y_val)  # F1-max on a labelled set
    >>> detector.predict(X_val).tolist()
    [1, 1, 1, 1, -1, -1]
    """
    check_is_fitted(detector, "offset_")
    if max_fpr is not None and (
        not isinstance(max_fpr, Real)
        or isinstance(max_fpr, bool)
        or not 0.0 <= max_fpr < 1.0
    ):
        raise ValueError(f"max_fpr must be in [0, 1) or None, got {max_fpr!r}.")
    scores = detector.score_samples(X)
    anomalous = (
        np.zeros(len(scores), bool) if y is None else _anomaly_labels(y, len(scores))
    )
    if max_fpr is not None or y is None:
        normal = np.sort(scores[~anomalous])
        if normal.size == 0:
            raise ValueError("max_fpr needs normal images in X; y marks none.")
        allowed = int(np.floor((max_fpr or 0.0) * normal.size))
        # score < offset_ is flagged: the allowed lowest scores lie below it.
        offset = normal[allowed]
    else:
        if not anomalous.any() or anomalous.all():
            raise ValueError("F1-max needs both normal and anomalous images in X.")
        precision, recall, thresholds = precision_recall_curve(anomalous, -scores)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = thresholds[np.argmax(f1[:-1])]
        # Anomaly score -s >= best is flagged, i.e. s <= -best < offset_.
        offset = np.nextafter(-best, np.inf)
    detector.offset_ = float(offset)
    record_offset_params(detector)  # the threshold is now current
    return detector
