"""Image- and pixel-level anomaly detection metrics."""

from numbers import Real

import numpy as np
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

__all__ = ["aupro", "f1_max", "image_roc_auc", "pixel_roc_auc"]


def _as_array(a):
    """A tensor (on any device, even one that requires gradients) as numpy."""
    if isinstance(a, torch.Tensor):
        a = a.detach().resolve_conj().cpu()
        if a.dtype in (torch.bfloat16, torch.float16):  # no numpy bfloat16
            a = a.float()
        return a.numpy()
    return np.asarray(a)


def _binary(y, name):
    y = _as_array(y)
    if y.dtype == bool:
        return y
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric or boolean, got dtype {y.dtype}.")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 or boolean values.")
    return y.astype(bool)


def _scores(s, name):
    s = _as_array(s)
    if s.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {s.dtype}.")
    if s.dtype not in (np.float32, np.float64):  # float32 ranks as it is
        s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return s


def _check_pair(masks, maps):
    masks = _binary(masks, "masks")
    maps = _scores(maps, "maps")
    if masks.shape != maps.shape or masks.ndim != 3:
        raise ValueError(
            f"masks {masks.shape} and maps {maps.shape} must both be (n_images, "
            "height, width) of the same shape."
        )
    return masks, maps


def _both_classes(y, what, unit):
    if y.size == 0:
        raise ValueError(f"{what} needs {unit}; got none (an empty input).")
    if y.all() or not y.any():
        present = "anomalous" if y.all() else "normal"
        raise ValueError(
            f"{what} needs both normal and anomalous {unit}; got only {present} ones."
        )


def _curve(y, s):
    """The detection curve, one point per distinct score from the highest
    down, from one torch sort (no Python loop).

    Returns ``thresholds`` (the distinct scores, descending), ``true`` (int64:
    positives with a score >= each threshold), ``flagged`` (int64: all
    samples with a score >= it), and ``order`` and ``last`` (the descending
    sort and its tie groups' ends, to accumulate other per-sample weights).
    """
    values, order = torch.sort(
        torch.from_numpy(np.ascontiguousarray(s)), descending=True
    )
    scores, order = values.numpy(), order.numpy()
    last = np.r_[scores[1:] != scores[:-1], True]  # the end of each tie group
    true = np.cumsum(y[order], dtype=np.int64)[last]
    return scores[last], true, np.flatnonzero(last) + 1, order, last


def _roc_from_curve(true, flagged, n):
    """Exact ROC-AUC (ties counted as half: trapezoids between the points),
    and the (fpr) abscissae of the curve, starting at 0."""
    n_pos = int(true[-1])
    tpr = np.r_[0.0, true / n_pos]
    fpr = np.r_[0.0, (flagged - true) / (n - n_pos)]
    return float(np.trapezoid(tpr, fpr)), fpr


def _f1_from_curve(thresholds, true, flagged):
    """F1-max and its threshold (the lowest of equal F1s, as scikit-learn's
    precision-recall curve gives them)."""
    f1 = 2 * true / (flagged + int(true[-1]))
    best = len(f1) - 1 - int(np.argmax(f1[::-1]))
    return float(f1[best]), float(thresholds[best])


def _roc_auc_rows(y, s):
    """Exact ROC-AUC of every row of ``y`` (n, m) bool against ``s`` (n, m),
    from one batched sort: average ranks within each row's tie groups."""
    n, m = s.shape
    values, order = torch.sort(torch.from_numpy(np.ascontiguousarray(s)), dim=1)
    labels = torch.from_numpy(np.ascontiguousarray(y)).gather(1, order)
    new = torch.ones_like(values, dtype=torch.bool)
    new[:, 1:] = values[:, 1:] != values[:, :-1]
    group = (new.cumsum(1) - 1 + torch.arange(n).unsqueeze(1) * m).ravel()
    rank = torch.arange(1, m + 1, dtype=torch.float64).repeat(n)
    first = torch.full((n * m,), np.inf, dtype=torch.float64)
    last = torch.zeros(n * m, dtype=torch.float64)
    first = first.scatter_reduce(0, group, rank, "amin")
    last = last.scatter_reduce(0, group, rank, "amax")
    average = ((first + last) / 2)[group].view(n, m)
    n_pos = labels.sum(1).double()
    rank_sum = (average * labels).sum(1)
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * (m - n_pos))
    return auc.numpy()


def image_roc_auc(y_true, scores, *, greater_is_anomalous=True):
    """Image-level ROC-AUC.

    Parameters
    ----------
    y_true : array-like of shape (n_images,)
        1 (or True) for anomalous images, 0 for normal ones.
    scores : array-like of shape (n_images,)
        Image scores. With ``greater_is_anomalous=True`` higher means more
        anomalous (e.g. the mean of :meth:`~skvqad.VQVAEAnomalyDetector.anomaly_map`);
        pass ``greater_is_anomalous=False`` for scikit-learn's
        ``score_samples`` / ``decision_function``, which are higher for normal
        images.
    greater_is_anomalous : bool, default=True
        The direction of ``scores``.

    Returns
    -------
    float
        ROC-AUC in [0, 1]; 0.5 is chance.

    Raises
    ------
    ValueError
        If shapes differ, labels are not 0/1, scores are not finite, or a
        class is missing.
    """
    y = _binary(y_true, "y_true").ravel()
    s = _scores(scores, "scores").ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} entries but scores {s.size}.")
    _both_classes(y, "image ROC-AUC", "images")
    return float(roc_auc_score(y, s if greater_is_anomalous else -s))


def pixel_roc_auc(masks, maps, *, average="pooled"):
    """Pixel-level ROC-AUC of anomaly maps against ground-truth masks.

    Parameters
    ----------
    masks : array-like of shape (n_images, height, width), bool or 0/1
        Ground truth, True on anomalous pixels.
    maps : array-like of shape (n_images, height, width), float
        Anomaly maps, higher is more anomalous.
    average : {"pooled", "per_image"}, default="pooled"
        ``"pooled"``: one ROC-AUC over all pixels of all images, the standard
        MVTec AD protocol (Bergmann et al., CVPR 2019) and the one every skvqad
        table uses. ``"per_image"``: the mean of per-image ROC-AUCs over the
        images that contain both classes, a habit of some public code.

    Returns
    -------
    float
        ROC-AUC in [0, 1].

    Raises
    ------
    ValueError
        If shapes differ, masks are not binary, maps are not finite, no
        image (``"per_image"``) or no pixel set (``"pooled"``) holds both
        classes, or ``average`` is unknown.
    """
    masks, maps = _check_pair(masks, maps)
    if average == "pooled":
        _both_classes(masks, "pixel ROC-AUC", "pixels")
        _, true, flagged, _, _ = _curve(masks.ravel(), maps.ravel())
        return _roc_from_curve(true, flagged, masks.size)[0]
    if average == "per_image":
        both = [i for i, m in enumerate(masks) if m.any() and not m.all()]
        if not both:
            raise ValueError(
                "per-image pixel ROC-AUC needs an image with both classes."
            )
        flat = (len(both), -1)
        return float(
            np.mean(_roc_auc_rows(masks[both].reshape(flat), maps[both].reshape(flat)))
        )
    raise ValueError(f"average must be 'pooled' or 'per_image', got {average!r}.")


def aupro(masks, maps, *, fpr_limit=0.3):
    """Area under the per-region-overlap curve, up to a false positive rate.

    The PRO of Bergmann et al. (2020, 2021): every connected ground-truth
    region (8-connectivity) counts equally, whatever its size. For a
    threshold, the PRO is the mean over regions of the fraction of the region
    above the threshold, and the FPR the fraction of normal pixels (of all
    images) above it. The PRO curve is integrated over FPR in
    ``[0, fpr_limit]`` (trapezoids, exact at every distinct map value) and
    divided by ``fpr_limit``, giving a value in [0, 1].

    Parameters
    ----------
    masks : array-like of shape (n_images, height, width), bool or 0/1
    maps : array-like of shape (n_images, height, width), float
    fpr_limit : float, default=0.3
        Upper FPR limit of the integration, in (0, 1].

    Returns
    -------
    float
        Normalised AUPRO in [0, 1].

    Raises
    ------
    ValueError
        If shapes differ, inputs are invalid, ``fpr_limit`` is outside
        (0, 1], or there is no anomalous or no normal pixel.

    References
    ----------
    P. Bergmann, K. Batzner, M. Fauser, D. Sattlegger, C. Steger, "The MVTec
    Anomaly Detection Dataset", IJCV 129, 2021. doi:10.1007/s11263-020-01400-4
    """
    masks, maps = _check_pair(masks, maps)
    _both_classes(masks, "AUPRO", "pixels")
    return pooled_pixel_metrics(masks, maps, fpr_limit=fpr_limit)["AUPRO"]


#: 8-connectivity within each image and none across images: a batch of masks
#: labelled as one 3-D array, without a loop over its images.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = True


def defect_regions(masks):
    """Connected defect regions of a batch of masks (8-connectivity per image).

    Returns the (n, H, W) labels, numbered 1 to R across the batch (0 off
    the defects), and R.
    """
    return ndimage.label(masks, structure=_IN_PLANE)


def _region_weights(masks):
    """Per pixel, 1 / (R * size of its region) inside defects, else 0."""
    regions, n_regions = defect_regions(masks)
    regions = regions.ravel()
    sizes = np.bincount(regions).astype(np.float64)
    # Each pixel of region r adds 1 / (R * size_r) to the PRO when it turns on.
    return np.where(regions > 0, 1.0 / (n_regions * sizes[regions]), 0.0)


def _pro_area(fpr, pro, fpr_limit):
    keep = fpr <= fpr_limit
    end = np.interp(fpr_limit, fpr, pro)
    fpr, pro = np.r_[fpr[keep], fpr_limit], np.r_[pro[keep], end]
    # Clipped: summing the trapezoids can overshoot 1 by a rounding error.
    return float(min(1.0, np.trapezoid(pro, fpr) / fpr_limit))


def pooled_pixel_metrics(masks, maps, *, fpr_limit=0.3):
    """Pooled pixel ROC-AUC, F1-max and AUPRO from one sort of the pixels.

    Each equals its own function's value (:func:`pixel_roc_auc`,
    :func:`f1_max`, :func:`aupro`): every metric is read off the same
    curve, one point per distinct map value from the highest down, so the
    pixels are sorted once instead of three times.

    Parameters
    ----------
    masks : array-like of shape (n_images, height, width), bool or 0/1
    maps : array-like of shape (n_images, height, width), float
    fpr_limit : float, default=0.3
        AUPRO's FPR limit, in (0, 1].

    Returns
    -------
    dict
        ``"ROC-AUC"``, ``"F1-max"``, ``"F1-max threshold"`` and ``"AUPRO"``.

    Raises
    ------
    ValueError
        As the three functions do.
    """
    if isinstance(fpr_limit, bool) or not isinstance(fpr_limit, Real):
        raise TypeError(f"fpr_limit must be a number, got {fpr_limit!r}.")
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}.")
    masks, maps = _check_pair(masks, maps)
    _both_classes(masks, "pixel metrics", "pixels")
    thresholds, true, flagged, order, last = _curve(masks.ravel(), maps.ravel())
    roc_auc, fpr = _roc_from_curve(true, flagged, masks.size)
    f1, threshold = _f1_from_curve(thresholds, true, flagged)
    pro = np.r_[0.0, np.cumsum(_region_weights(masks)[order])[last]]
    return {
        "ROC-AUC": roc_auc,
        "F1-max": f1,
        "F1-max threshold": threshold,
        "AUPRO": _pro_area(fpr, pro, fpr_limit),
    }


def f1_max(y_true, scores, *, return_threshold=False):
    """Best F1 score over all thresholds (image or pixel level).

    Parameters
    ----------
    y_true : array-like of any shape, bool or 0/1
        1 for anomalous images or pixels.
    scores : array-like of the same shape, float
        Higher is more anomalous.
    return_threshold : bool, default=False
        Also return the threshold reaching it: label anomalous where
        ``scores >= threshold``. Fitting it on a labelled validation set is
        one way to choose an operating point.

    Returns
    -------
    f1 : float
        In [0, 1].
    threshold : float
        Only if ``return_threshold``.

    Raises
    ------
    ValueError
        If shapes differ, inputs are invalid or a class is missing.
    """
    y = _binary(y_true, "y_true").ravel()
    s = _scores(scores, "scores").ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} entries but scores {s.size}.")
    _both_classes(y, "F1-max", "samples")
    thresholds, true, flagged, _, _ = _curve(y, s)
    f1, threshold = _f1_from_curve(thresholds, true, flagged)
    return (f1, threshold) if return_threshold else f1
