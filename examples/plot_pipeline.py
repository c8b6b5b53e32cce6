"""
===================================================
Anomaly maps as features in a scikit-learn pipeline
===================================================

The map transformers (:class:`skvqad.SSIMAMMapTransformer`,
:class:`~skvqad.SSIMMapTransformer`, :class:`~skvqad.AlignmentMapTransformer`)
turn images into their flattened anomaly maps, so a VQ-VAE trained on normal
images can feed any scikit-learn step. Here a few labelled images train a
logistic regression on three summaries of each map (mean, maximum, mean of
the top 1 % pixels), compared by cross-validated ROC-AUC with the detector's
own unsupervised score.
"""

# %%
# A detector fitted on normal tiles only, then frozen: ``prefit=True`` and
# scikit-learn's :class:`~sklearn.frozen.FrozenEstimator` (which cloning in
# cross-validation keeps as it is), so that fitting the pipeline on labelled
# images never retrains it on defects.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import RocCurveDisplay
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from skvqad import SSIMAMMapTransformer, VQVAEAnomalyDetector
from skvqad.datasets import make_texture_defects

data = make_texture_defects("grass", n_train=80, n_test=48, random_state=0)
detector = VQVAEAnomalyDetector(
    n_downsampling=2, n_residual_layers=1, hidden_channels=32, embedding_dim=32,
    n_embeddings=128, max_epochs=15, lr=1e-3, dilation_size=5, random_state=0,
).fit(data.X_train)  # fmt: skip


def summaries(flat_maps):
    """(n, 3): mean, max and mean of the top 1 % pixels of each map."""
    top = np.sort(flat_maps, axis=1)[:, -max(1, flat_maps.shape[1] // 100) :]
    return np.c_[flat_maps.mean(1), flat_maps.max(1), top.mean(1)]


pipeline = make_pipeline(
    SSIMAMMapTransformer(FrozenEstimator(detector), prefit=True),
    FunctionTransformer(summaries),
    StandardScaler(),
    LogisticRegression(),
)

# %%
# Cross-validated probabilities on the labelled test tiles, against the
# detector's score (``-score_samples``: higher is more anomalous).
X, y = data.X_test, data.y_test
cv = StratifiedKFold(n_splits=4, shuffle=True, random_state=0)
proba = cross_val_predict(pipeline, X, y, cv=cv, method="predict_proba")[:, 1]
unsupervised = -detector.score_samples(X)

fig, ax = plt.subplots(figsize=(4.5, 4.2), layout="constrained")
RocCurveDisplay.from_predictions(y, unsupervised, name="detector score", ax=ax)
RocCurveDisplay.from_predictions(y, proba, name="maps -> logistic (4-fold CV)", ax=ax)
ax.set_title("Image-level detection on grass tiles")
# A supervised step only pays when labelled defects are plentiful and
# resemble the ones to come; with a few dozen, as here, the unsupervised
# score is a strong baseline that the pipeline need not beat.
for line in ax.get_legend().get_texts():
    print(line.get_text().replace("AUC", "ROC-AUC"))
plt.show()
