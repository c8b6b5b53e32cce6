"""
==========================================================
The paper's Fig. 2: input, reconstruction, SM, AM, SSIM+AM
==========================================================

Gangloff et al. (2022) show, for a few defects, the input, the VQ-VAE's
reconstruction, the SSIM anomaly map (SM), the alignment map (AM) and their
product (SSIM+AM). One fitted detector gives every map through
``anomaly_map(X, map_type=...)``, with no retraining. Here on defects pasted
into tiles of the brick photograph bundled with scikit-image.
"""

# %%
# Train a small VQ-VAE on normal tiles (a minute on a laptop CPU).
import matplotlib.pyplot as plt
import numpy as np

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import make_texture_defects
from skvqad.metrics import pixel_roc_auc

data = make_texture_defects("brick", n_train=80, n_test=16, random_state=0)
detector = VQVAEAnomalyDetector(
    n_downsampling=2, n_residual_layers=1, hidden_channels=32, embedding_dim=32,
    n_embeddings=128, max_epochs=20, lr=1e-3, dilation_size=5, random_state=0,
).fit(data.X_train)  # fmt: skip

# %%
# The three maps of four defective tiles. With the default
# ``map_normalization="per_pixel"`` each map is in training standard
# deviations (0: as on normal tiles), so one colour scale per row fits all.
X = data.X_test[data.y_test == 1][:4]
rows = {
    "input": X,
    "reconstruction": detector.reconstruct(X),
    "SM (1 - SSIM)": detector.anomaly_map(X, map_type="ssim"),
    "AM": detector.anomaly_map(X, map_type="am"),
    "SSIM+AM": detector.anomaly_map(X, map_type="ssim+am"),
}
fig, axes = plt.subplots(5, 4, figsize=(6.4, 8.4), layout="constrained")
for r, (label, images) in enumerate(rows.items()):
    is_map = r >= 2
    top = np.percentile(images, 99) if is_map else 1
    for c in range(4):
        shown = axes[r, c].imshow(
            images[c], cmap="jet" if is_map else "gray", vmin=0, vmax=top
        )
        axes[r, c].set_xticks([])
        axes[r, c].set_yticks([])
        if is_map:
            axes[r, c].contour(data.masks_test[data.y_test == 1][c], [0.5], colors="w")
    axes[r, 0].set_ylabel(label, fontsize=9)
    if is_map:
        fig.colorbar(shown, ax=axes[r, :].tolist(), shrink=0.8, extend="both",
                     label="training s.d.")  # fmt: skip
for c, kind in enumerate(data.defect_types[data.y_test == 1][:4]):
    axes[0, c].set_title(kind, fontsize=9)
fig.suptitle("White outline: the true defect")

# %%
# How well each map finds the defect pixels (pooled pixel ROC-AUC).
for map_type in ("ssim", "am", "ssim+am"):
    maps = detector.anomaly_map(data.X_test, map_type=map_type)
    print(f"{map_type:8s} pixel ROC-AUC {pixel_roc_auc(data.masks_test, maps):.3f}")
plt.show()
