"""Metrics for image and pixel anomaly detection: ROC-AUC, AUPRO, F1-max.

All take labels with 1 (or True) = anomalous and scores or maps where higher
is more anomalous (see ``greater_is_anomalous`` of :func:`image_roc_auc` for
scikit-learn's opposite sign), compute on the CPU in float64, and never
squash or clip scores.
"""

from ._metrics import PixelROCAUC, aupro, f1_max, image_roc_auc, pixel_roc_auc

__all__ = ["PixelROCAUC", "aupro", "f1_max", "image_roc_auc", "pixel_roc_auc"]
