"""Pooled pixel metrics of a stream of batches, in memory that does not grow.

Every pixel's map value goes to a histogram bin given by the leading bits of
its float32 pattern, mapped to an unsigned key whose order is the order of
the values (the sign bit flipped for positive values, every bit flipped for
negative ones: the radix-sort key of IEEE 754 floats). With ``bits``
leading bits of that key a bin spans a relative range of about
``2**(bits - 32 + 23) = 2**(bits - 9)`` ulps, that is values that agree to
``bits - 9`` bits of the mantissa, whatever their magnitude or sign: no range
to guess from the first batch, and the same bins in any batch order. The
pooled ROC-AUC, F1-max and AUPRO are then read from the curve with one point
per non-empty bin, exactly as :func:`~skvqad.metrics.pixel_roc_auc`,
:func:`~skvqad.metrics.f1_max` and :func:`~skvqad.metrics.aupro` read it with
one point per distinct value; they differ only where pixels of both kinds (or
of two regions) share a bin.
"""

from numbers import Real

import numpy as np
import torch

from ._metrics import (
    _binary,
    _f1_from_curve,
    _pro_area,
    _roc_from_curve,
    defect_regions,
)

__all__ = ["PixelMetrics", "PixelROCAUC"]

#: Fixed-point unit of the AUPRO weights: a defect pixel of a region of
#: ``s`` pixels adds ``round(2**40 / s)``; int64 holds 2**23 regions' sums.
_PRO_UNIT = 2.0**40


def _keys(maps, bits):
    """Histogram bin of every value: the top ``bits`` of its order-preserving key.

    The key of a float32 pattern ``p`` (as int32) is ``p + 2**31`` for
    ``p >= 0`` and ``-1 - p`` (all bits flipped) for ``p < 0``; the bin is
    that key shifted right by ``32 - bits``, computed in int32.
    """
    shift = 32 - bits
    pattern = (maps.to(torch.float32) + 0.0).view(torch.int32)  # -0.0 -> +0.0
    return torch.where(
        pattern >= 0, (pattern >> shift) + 2 ** (bits - 1), (~pattern) >> shift
    )


def _lowest_value(bins, bits):
    """The smallest float32 of each bin (inverse of :func:`_keys`), float64."""
    key = np.asarray(bins, dtype=np.int64) << (32 - bits)
    pattern = np.where(key >= 2**31, key - 2**31, -1 - key).astype(np.int32)
    values = pattern.view(np.float32).astype(np.float64)
    finite = np.finfo(np.float32).max
    return np.clip(np.nan_to_num(values, nan=-finite), -finite, finite)


class PixelMetrics:
    """Pooled pixel ROC-AUC, AUPRO and F1-max, batch by batch, in fixed memory.

    ``update(masks, maps)`` adds a batch to three histograms (normal pixels,
    anomalous pixels, and anomalous pixels weighted by one over the size of
    their connected region, for the AUPRO) held on the maps' device;
    ``compute()`` reads the metrics off the histograms. The memory is
    ``3 * 2**bits`` int64 counts (24 MiB at the default), whatever the number
    of images. Counting is in exact integers, so the result does not depend
    on the order or the grouping of the batches.

    Parameters
    ----------
    fpr_limit : float, default=0.3
        AUPRO's upper false positive rate, in (0, 1] (as :func:`aupro`).
    bits : int, default=20
        Histogram resolution: values that agree to their ``bits - 9``
        leading mantissa bits share a bin (relative width ``2**(9 - bits)``,
        about 5e-4 at the default), in [10, 24].

    Attributes
    ----------
    counts_ : torch.Tensor of shape (3, 2**bits), int64
        Normal-pixel counts, anomalous-pixel counts, and the AUPRO weights
        (fixed point, ``2**40`` per region), per bin; on the device of the
        first batch.
    n_regions_ : int
        Connected defect regions (8-connectivity, per image) added so far.

    Notes
    -----
    The metrics equal the exact ones of :func:`pixel_roc_auc`, :func:`f1_max`
    and :func:`aupro` (a curve point per distinct value, ties counted as
    half) when no two distinct values share a bin, and differ only by the
    pixels that do; "F1-max threshold" is then the smallest value of the
    best bin. Measured in ``tests/test_metrics.py`` and
    ``tests/test_benchmark.py`` (against :func:`sklearn.metrics.roc_auc_score`
    and the exact functions, on synthetic maps and on a detector's and the
    template's maps) and in two new users' checks, at the default
    resolution: ROC-AUC within 6e-6, AUPRO within 2.1e-5, F1-max within
    3.3e-4 (a maximum over thresholds moves when nearby thresholds merge);
    the tests allow 1e-4, 1e-4 and 5e-4. The bins are relative
    to the values: maps that vary little around a large offset (0.01 around
    100, say) share few bins and lose resolution (an error of 0.07 there);
    subtract the offset first. Values are compared in float32: float64
    maps beyond its range are refused, below its smallest normal values
    they count as 0, and float64 values that differ only beyond float32's
    precision (0.3 and 0.1 + 0.2) tie. The AUPRO follows Bergmann et al. (IJCV 2021),
    as :func:`aupro`.

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad.metrics import PixelMetrics
    >>> metric = PixelMetrics()
    >>> masks = np.zeros((2, 4, 4), bool); masks[:, :2] = True
    >>> maps = masks + 0.01 * np.arange(16).reshape(4, 4)
    >>> metric.update(masks[:1], maps[:1]); metric.update(masks[1:], maps[1:])
    >>> {k: round(v, 3) for k, v in metric.compute().items()}
    {'ROC-AUC': 1.0, 'F1-max': 1.0, 'F1-max threshold': 1.0, 'AUPRO': 1.0}
    """

    def __init__(self, *, fpr_limit=0.3, bits=20):
        if isinstance(fpr_limit, bool) or not isinstance(fpr_limit, Real):
            raise TypeError(f"fpr_limit must be a number, got {fpr_limit!r}.")
        if not 0 < fpr_limit <= 1:
            raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}.")
        if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
            raise TypeError(f"bits must be an integer, got {bits!r}.")
        if not 10 <= bits <= 24:
            raise ValueError(f"bits must be in [10, 24], got {bits}.")
        self.fpr_limit = fpr_limit
        self.bits = int(bits)
        self.reset()

    def reset(self):
        """Forget every update."""
        self.counts_ = None
        self.n_regions_ = 0

    def update(self, masks, maps):
        """Add a batch of maps and their ground truth.

        Parameters
        ----------
        masks : array-like or torch.Tensor of shape (n, height, width), bool or 0/1
            True on anomalous pixels.
        maps : array-like or torch.Tensor of shape (n, height, width), floating
            Anomaly maps, higher is more anomalous, any sign; compared in
            float32. A tensor is counted on its own device (a GPU's maps are
            not copied to the host).

        Raises
        ------
        ValueError
            If the shapes differ or are not 3-D, the masks are not binary or
            a map value is NaN, infinite or beyond the float32 range.
        """
        if isinstance(maps, torch.Tensor):
            if maps.is_complex():
                raise ValueError(f"maps must be real, got dtype {maps.dtype}.")
            # Compared in float32: float64 values beyond its range become
            # infinite here and are refused below, as for arrays.
            maps = maps.detach().to(torch.float32)
        else:
            maps = np.asarray(maps)
            if maps.dtype.kind not in "biuf":
                raise ValueError(f"maps must be numeric, got dtype {maps.dtype}.")
            if maps.dtype.kind == "f" and not np.isfinite(maps).all():
                raise ValueError("maps contains NaN or infinity.")
            with np.errstate(over="ignore"):
                maps = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
        if isinstance(masks, torch.Tensor):
            masks = masks.detach().cpu().numpy()
        masks = _binary(masks, "masks")
        if masks.shape != tuple(maps.shape) or masks.ndim != 3:
            raise ValueError(
                f"masks {masks.shape} and maps {tuple(maps.shape)} must both be "
                "(n_images, height, width) of the same shape."
            )
        if not bool(torch.isfinite(maps).all()):
            raise ValueError(
                "maps contains NaN or infinity (or values beyond the float32 range)."
            )
        device = maps.device
        n_bins = 2**self.bits
        if self.counts_ is None:
            self.counts_ = torch.zeros(3 * n_bins, dtype=torch.int64, device=device)
        counts = self.counts_.view(-1)
        bins = _keys(maps, self.bits).ravel()
        defect = np.flatnonzero(masks)
        if len(defect):
            index = torch.from_numpy(defect).to(device)
            bins.index_add_(0, index, torch.full_like(index, n_bins, dtype=bins.dtype))
        counts += torch.bincount(bins, minlength=3 * n_bins)
        if len(defect):
            weights, n_regions = _region_weights(masks)
            weights = torch.from_numpy(weights).to(device)
            counts.index_add_(0, bins[index] + n_bins, weights)
            self.n_regions_ += n_regions
        self.counts_ = counts.view(3, n_bins)

    def compute(self):
        """The pooled metrics of everything added so far.

        Returns
        -------
        dict
            ``"ROC-AUC"``, ``"F1-max"`` and ``"AUPRO"`` (AUPRO up to
            ``fpr_limit``, normalised), floats in [0, 1], and
            ``"F1-max threshold"``: label anomalous where ``map >= threshold``.

        Raises
        ------
        ValueError
            If no normal or no anomalous pixel was added.
        """
        if self.counts_ is None:
            raise ValueError("no batch was added (call update first).")
        normal, anomalous, weights = self.counts_.cpu().numpy()
        if normal.sum() == 0 or anomalous.sum() == 0:
            raise ValueError("pixel metrics need both normal and anomalous pixels.")
        # One curve point per non-empty bin, from the highest down.
        bins = np.flatnonzero(normal + anomalous)[::-1]
        true = np.cumsum(anomalous[bins])
        flagged = np.cumsum(normal[bins] + anomalous[bins])
        roc_auc, fpr = _roc_from_curve(true, flagged, int(flagged[-1]))
        f1, threshold = _f1_from_curve(_lowest_value(bins, self.bits), true, flagged)
        pro = np.r_[0.0, np.cumsum(weights[bins]) / weights.sum()]
        return {
            "ROC-AUC": roc_auc,
            "F1-max": f1,
            "F1-max threshold": threshold,
            "AUPRO": _pro_area(fpr, pro, self.fpr_limit),
        }


def _region_weights(masks):
    """Fixed-point weight ``2**40 / size`` of each defect pixel, in the
    row-major order of ``masks[masks]``, and the number of regions."""
    regions, n_regions = defect_regions(masks)
    sizes = np.bincount(regions.ravel())
    return np.rint(_PRO_UNIT / sizes[regions[masks]]).astype(np.int64), n_regions


class PixelROCAUC(PixelMetrics):
    """Streaming pooled pixel ROC-AUC: :class:`PixelMetrics` giving one number.

    Parameters
    ----------
    bits : int, default=20
        Histogram resolution, as for :class:`PixelMetrics`.

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad.metrics import PixelROCAUC
    >>> metric = PixelROCAUC()
    >>> masks = np.zeros((2, 4, 4), bool); masks[:, :2] = True
    >>> metric.update(masks, masks + 0.01 * np.arange(16).reshape(4, 4))
    >>> round(metric.compute(), 3)
    1.0
    """

    def __init__(self, bits=20):
        super().__init__(bits=bits)

    def compute(self):
        """Pooled pixel ROC-AUC of everything added so far.

        Returns
        -------
        float
            In [0, 1].

        Raises
        ------
        ValueError
            If no normal or no anomalous pixel was added.
        """
        return super().compute()["ROC-AUC"]
