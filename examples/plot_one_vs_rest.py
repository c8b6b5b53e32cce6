"""
=====================================================================
One-vs-rest: the most normal and most anomalous images (paper Fig. 4)
=====================================================================

The paper's CIFAR-10 protocol trains on one class and scores every other
class as anomalous, by the mean of the SSIM+AM map, and its Fig. 4 shows
the test images it finds most normal and most anomalous. The same with the
three texture photographs bundled with scikit-image: train on brick tiles,
score held-out brick, grass and gravel tiles.
"""

# %%
# Brick is normal; grass and gravel tiles are the anomalies.
import matplotlib.pyplot as plt
import numpy as np

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import make_texture_defects
from skvqad.metrics import image_roc_auc

sets = {k: make_texture_defects(k, n_train=60, n_test=32, image_size=32,
                                random_state=0)
        for k in ("brick", "grass", "gravel")}  # fmt: skip
# Defect-free test tiles only: the question is "which texture", not "defect".
X_test = np.concatenate([d.X_test[d.y_test == 0] for d in sets.values()])
classes = np.repeat(list(sets), [int((d.y_test == 0).sum()) for d in sets.values()])
y = (classes != "brick").astype(int)

detector = VQVAEAnomalyDetector(
    n_downsampling=2, n_residual_layers=1, hidden_channels=32, embedding_dim=32,
    n_embeddings=128, max_epochs=20, lr=1e-3, dilation_size=3, random_state=0,
    score_pooling="mean",  # the paper's image score: the map's mean
).fit(sets["brick"].X_train)  # fmt: skip
scores = detector.score_samples(X_test)  # higher = more normal
auc = image_roc_auc(y, scores, greater_is_anomalous=False)
print(f"image ROC-AUC, brick vs rest: {auc:.3f}")

# %%
# The eight most normal and eight most anomalous test tiles.
order = np.argsort(scores)
picks = {"most normal": order[::-1][:8], "most anomalous": order[:8]}
fig, axes = plt.subplots(2, 8, figsize=(9, 2.8), layout="constrained")
for row, (label, index) in enumerate(picks.items()):
    for ax, i in zip(axes[row], index):
        ax.imshow(X_test[i], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{classes[i]}\n{scores[i]:.2f}", fontsize=7)
        ax.set_axis_off()
    axes[row, 0].text(-0.1, 0.5, label, rotation=90, va="center", ha="right",
                      transform=axes[row, 0].transAxes, fontsize=8)  # fmt: skip
fig.suptitle("Trained on brick: class and score_samples (higher = more normal)")
plt.show()
