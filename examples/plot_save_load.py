"""
======================================================
Saving a detector on one device and scoring on another
======================================================

A fitted :class:`~skvqad.VQVAEAnomalyDetector` is saved whole with joblib:
network, ``offset_`` (the threshold) and ``map_statistics_`` (the training
maps' statistics that standardise every map). A detector trained on a GPU
loads on a machine without one onto the CPU (with skorch's warning). Here it
is trained on the GPU when there is one, else on the CPU, saved, loaded, and
its maps and decisions compared with the original's.
"""

# %%
# Train and save.
import tempfile
from pathlib import Path

import joblib
import matplotlib.pyplot as plt
import numpy as np
import torch

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import make_texture_defects

data = make_texture_defects("brick", n_train=60, n_test=8, random_state=0)
detector = VQVAEAnomalyDetector(
    n_downsampling=2, n_residual_layers=1, hidden_channels=32, embedding_dim=32,
    n_embeddings=128, max_epochs=10, lr=1e-3, dilation_size=5, random_state=0,
    device="cuda" if torch.cuda.is_available() else "cpu",
).fit(data.X_train)  # fmt: skip
path = Path(tempfile.mkdtemp()) / "detector.joblib"
joblib.dump(detector, path)
print(f"trained on {detector.net_.device}, saved {path.stat().st_size / 1e6:.1f} MB")

# %%
# Load and score. On a machine without CUDA a GPU-trained detector loads onto
# the CPU; its threshold and map statistics come along with the network.
loaded = joblib.load(path)
before = detector.anomaly_map(data.X_test)
after = loaded.anomaly_map(data.X_test)
print(f"loaded on {loaded.net_.device}; same offset_: "
      f"{loaded.offset_ == detector.offset_}; "
      f"largest map difference: {np.abs(before - after).max():.2e}")  # fmt: skip
assert (loaded.predict(data.X_test) == detector.predict(data.X_test)).all()

# %%
# The maps of the same tiles, from the original and from the loaded copy.
fig, axes = plt.subplots(2, 4, figsize=(6.4, 3.6), layout="constrained")
top = np.percentile(before, 99)
for c in range(4):
    for r, (maps, label) in enumerate([(before, "original"), (after, "loaded")]):
        shown = axes[r, c].imshow(maps[c], cmap="jet", vmin=0, vmax=top)
        axes[r, c].set_axis_off()
        axes[r, c].set_title(f"{label}: {data.defect_types[c]}", fontsize=7)
fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8, extend="both",
             label="SSIM+AM (training s.d.)")  # fmt: skip
plt.show()
