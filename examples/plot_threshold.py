"""
============================================
Choosing a threshold and reading ``predict``
============================================

``predict`` answers the inspector's question, "is this part defective?":
-1 (anomalous) where ``score_samples(X) < offset_``, +1 otherwise.
``fit`` sets ``offset_`` from the training scores (``contamination``);
:func:`skvqad.fit_threshold` moves it with held-out data: normal images
only (a false-positive budget), or labelled images (the F1-optimal
threshold). Here the three thresholds on one score histogram, and the
confusion matrix of each.
"""

# %%
# A detector trained on normal tiles; a validation set and a test set, each
# half defective.
import copy

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import confusion_matrix

from skvqad import VQVAEAnomalyDetector, fit_threshold
from skvqad.datasets import make_texture_defects

data = make_texture_defects("gravel", n_train=80, n_test=64, random_state=0)
X_val, y_val = data.X_test[:32], data.y_test[:32]
X_test, y_test = data.X_test[32:], data.y_test[32:]
detector = VQVAEAnomalyDetector(
    n_downsampling=2, n_residual_layers=1, hidden_channels=32, embedding_dim=32,
    n_embeddings=128, max_epochs=15, lr=1e-3, dilation_size=5, random_state=0,
).fit(data.X_train)  # fmt: skip

# %%
# Three thresholds: ``fit``'s (``contamination="auto"``), at most 5 % of the
# normal validation tiles flagged, and the best F1 on the labelled ones.
thresholds = {"fit (contamination='auto')": detector}
thresholds["normal images, max_fpr=0.05"] = fit_threshold(
    copy.deepcopy(detector), X_val[y_val == 0], max_fpr=0.05
)
thresholds["labelled images, best F1"] = fit_threshold(
    copy.deepcopy(detector), X_val, y_val
)
for name, fitted in thresholds.items():
    predicted = (fitted.predict(X_test) == -1).astype(int)  # 1 = anomalous
    (tn, fp), (fn, tp) = confusion_matrix(y_test, predicted, labels=[0, 1])
    print(f"{name:30s} offset_ {fitted.offset_:8.3f}  TP {tp:2d} FP {fp:2d} "
          f"FN {fn:2d} TN {tn:2d}")  # fmt: skip

# %%
# The test scores and the three thresholds: tiles left of a line are
# flagged by it.
scores = detector.score_samples(X_test)
fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
bins = np.linspace(scores.min(), scores.max(), 25)
ax.hist(scores[y_test == 0], bins, alpha=0.6, label="normal tiles")
ax.hist(scores[y_test == 1], bins, alpha=0.6, label="defective tiles")
for (name, fitted), style in zip(thresholds.items(), ["-", "--", ":"]):
    ax.axvline(fitted.offset_, color="k", linestyle=style, label=name)
ax.set_xlabel("score_samples (higher = more normal; unitless)")
ax.set_ylabel("test tiles")
ax.legend(fontsize=7)
plt.show()
