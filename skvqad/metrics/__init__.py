"""Metrics for image and pixel anomaly detection: ROC-AUC, AUPRO, F1-max.

All take labels with 1 (or True) = anomalous and scores or maps where higher
is more anomalous (see ``greater_is_anomalous`` of :func:`image_roc_auc` for
scikit-learn's opposite sign) and never squash or clip scores. The functions
are exact (one sort, on the CPU, in float64); :class:`PixelMetrics` and
:class:`PixelROCAUC` accumulate batches in fixed-size histograms on the maps'
device, for test sets whose maps do not fit in memory.
"""

from ._metrics import aupro, f1_max, image_roc_auc, pixel_roc_auc
from ._streaming import PixelMetrics, PixelROCAUC

__all__ = [
    "PixelMetrics",
    "PixelROCAUC",
    "aupro",
    "f1_max",
    "image_roc_auc",
    "pixel_roc_auc",
]
