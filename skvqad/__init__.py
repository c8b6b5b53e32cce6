"""VQ-VAE image anomaly detection (Gangloff et al., 2022) for scikit-learn."""

from ._detector import VQVAEAnomalyDetector
from ._maps import (
    alignment_map,
    gaussian_filter,
    grey_dilation,
    ssim_am_map,
    ssim_map,
    upsample_alignment_map,
)
from ._model import VQVAE, VQVAELoss, VQVAEOutput, vq_vae_loss_terms
from ._model_selection import (
    OneClassKFold,
    get_scorer,
    image_roc_auc_scorer,
    pixel_roc_auc_scorer,
)
from ._net import VQVAENet
from ._plotting import plot_anomaly_maps
from ._template import TemplateAnomalyDetector
from ._threshold import fit_threshold
from ._transformers import (
    AlignmentMapTransformer,
    SSIMAMMapTransformer,
    SSIMMapTransformer,
)

__version__ = "0.1.0"

__all__ = [
    "AlignmentMapTransformer",
    "OneClassKFold",
    "SSIMAMMapTransformer",
    "SSIMMapTransformer",
    "TemplateAnomalyDetector",
    "VQVAE",
    "VQVAEAnomalyDetector",
    "VQVAELoss",
    "VQVAENet",
    "VQVAEOutput",
    "alignment_map",
    "fit_threshold",
    "gaussian_filter",
    "get_scorer",
    "grey_dilation",
    "image_roc_auc_scorer",
    "pixel_roc_auc_scorer",
    "plot_anomaly_maps",
    "ssim_am_map",
    "ssim_map",
    "upsample_alignment_map",
    "vq_vae_loss_terms",
]
