"""
================================================
Grid search over beta and dilation without waste
================================================

Tune the commitment weight ``beta`` (a training parameter) and the alignment
map's ``dilation_size`` (a post-processing parameter) with scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV`.

- :class:`skvqad.OneClassKFold` keeps anomalous images out of every training
  fold, so the VQ-VAE only ever trains on normal images.
- ``memory=`` caches trained networks with joblib: candidates that differ
  only in post-processing reuse the network, so a grid of 2 betas x 3
  dilation sizes with 2 folds trains 4 networks instead of 12.
- The pooled pixel ROC-AUC scorer compares every pixel of the anomaly maps
  with the defect masks, passed as ``y``.
"""

# %%
# Data: normal tiles of the brick photograph plus test tiles with defects.
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from skvqad import OneClassKFold, VQVAEAnomalyDetector, get_scorer
from skvqad.datasets import make_texture_defects

data = make_texture_defects(
    "brick", n_train=60, n_test=24, image_size=32, random_state=0
)
# The search sees one pool of images; y holds the masks (all False = normal).
X = np.concatenate([data.X_train, data.X_test])
masks = np.concatenate([np.zeros_like(data.X_train, dtype=bool), data.masks_test])

# %%
# The search. Every candidate is scored by pooled pixel ROC-AUC.
cache = tempfile.mkdtemp(prefix="skvqad-cache-")
detector = VQVAEAnomalyDetector(
    n_downsampling=2,
    n_residual_layers=1,
    hidden_channels=32,
    embedding_dim=32,
    n_embeddings=128,
    max_epochs=10,
    lr=1e-3,
    random_state=0,
    memory=cache,
)
search = GridSearchCV(
    detector,
    {"beta": [0.25, 1.0], "dilation_size": [1, 5, 9]},
    scoring=get_scorer("pixel_roc_auc"),
    cv=OneClassKFold(n_splits=2),
    refit=False,
)
search.fit(X, masks)

# %%
# Results. Each cached training is one folder in the joblib cache.
trained = len(list(Path(cache).glob("joblib/**/output.pkl")))
shutil.rmtree(cache)  # a temporary cache: remove it once counted
print(
    f"{len(search.cv_results_['params'])} candidates x 2 folds = 12 fits, "
    f"{trained} networks trained"
)
print("best parameters:", search.best_params_)
for params, score in zip(
    search.cv_results_["params"], search.cv_results_["mean_test_score"]
):
    print(f"  {params}: pixel ROC-AUC {score:.3f}")

# %%
# The score surface: mean pixel ROC-AUC over the folds for each candidate.
betas, dilations = [0.25, 1.0], [1, 5, 9]
surface = np.array(search.cv_results_["mean_test_score"]).reshape(
    len(betas), len(dilations)
)  # cv_results_ follows the grid's sorted order: beta, then dilation_size
fig, ax = plt.subplots(figsize=(4.2, 2.8), layout="constrained")
shown = ax.imshow(surface, cmap="viridis")
ax.set_xticks(range(len(dilations)), dilations)
ax.set_yticks(range(len(betas)), betas)
ax.set_xlabel("dilation_size (pixels)")
ax.set_ylabel("beta (commitment weight)")
for (r, c), value in np.ndenumerate(surface):
    ax.text(c, r, f"{value:.3f}", ha="center", va="center", color="w")
fig.colorbar(shown, label="pooled pixel ROC-AUC")
plt.show()
