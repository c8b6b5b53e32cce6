"""scikit-learn's own estimator checks on every public estimator.

The checks feed 2-D tabular data, which the detector reads as rows of pixels
after per-feature min-max scaling (see the Notes of VQVAEAnomalyDetector).
"""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from skvqad import (
    AlignmentMapTransformer,
    SSIMAMMapTransformer,
    SSIMMapTransformer,
    VQVAEAnomalyDetector,
)


def _tiny(**params):
    return VQVAEAnomalyDetector(
        n_downsampling=1,
        n_residual_layers=1,
        hidden_channels=4,
        n_embeddings=8,
        embedding_dim=2,
        max_epochs=1,
        batch_size=64,
        random_state=0,
        **params,
    )


ESTIMATORS = [
    # contamination as a float: with "auto" a training set may hold no outlier,
    # which check_outliers_train does not allow.
    _tiny(contamination=0.1),
    SSIMMapTransformer(_tiny()),
    AlignmentMapTransformer(_tiny()),
    SSIMAMMapTransformer(_tiny()),
]

#: Checks whose outcome depends on the CPU's float rounding, with the reason:
#: marked as non-strict xfail (a pass or a failure both count as expected).
#: The property they test is asserted with a tolerance elsewhere.
ROUNDING_DEPENDENT_CHECKS = {
    "VQVAEAnomalyDetector": {
        "check_methods_subset_invariance": (
            "float32 convolutions can differ by ~1e-7 with the batch "
            "composition (CPU kernels block by batch size), around the check's "
            "atol of 1e-7, depending on the CPU and the scale of the scores "
            "(maps standardised per pixel divide it by small scales); maps "
            "agree to 1e-4 (tests/test_detector.py)"
        ),
    },
}


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check, request):
    name = getattr(check, "func", check).__name__
    reason = ROUNDING_DEPENDENT_CHECKS.get(type(estimator).__name__, {}).get(name)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    check(estimator)
