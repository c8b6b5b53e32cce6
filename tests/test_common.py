"""scikit-learn's own estimator checks on every public estimator.

The checks feed 2-D tabular data, which the detector reads as rows of pixels
after per-feature min-max scaling (see the Notes of VQVAEAnomalyDetector).
"""

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

#: Checks expected to fail, with the reason. Strict xfail: a check that starts
#: passing fails the suite and must be removed from here.
EXPECTED_FAILED_CHECKS = {
    "VQVAEAnomalyDetector": {
        "check_methods_subset_invariance": (
            "float32 convolutions give results that differ by ~1e-7 with the "
            "batch composition (CPU kernels block by batch size), above the "
            "check's atol of 1e-7; maps agree to 1e-5 (tests/test_detector.py)"
        ),
    },
}


@parametrize_with_checks(
    ESTIMATORS,
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(
        type(est).__name__, {}
    ),
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
