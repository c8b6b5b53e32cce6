"""Short trainings on the real photographs in ../shared/data (skipped if absent)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from skvqad import VQVAEAnomalyDetector
from skvqad.datasets import load_mvtec_ad

from .conftest import shared_data_dir

DATA = shared_data_dir()
SMALL = dict(
    n_downsampling=2,
    n_residual_layers=1,
    hidden_channels=16,
    n_embeddings=64,
    embedding_dim=16,
    batch_size=8,
    lr=1e-3,
    dilation_size=5,
    max_epochs=30,
    random_state=0,
)


@pytest.mark.skipif(not (DATA / "hazelnut_toy").is_dir(), reason="no ../shared/data")
def test_hazelnut_photos_defects_are_localised():
    data = load_mvtec_ad(DATA, "hazelnut_toy", image_size=64)
    assert data.X_train.shape == (28, 64, 64, 3)
    detector = VQVAEAnomalyDetector(**SMALL).fit(data.X_train)
    maps = detector.anomaly_map(data.X_test)
    assert roc_auc_score(data.masks_test.ravel(), maps.ravel()) > 0.85


@pytest.mark.skipif(
    not (DATA / "mvtec_ad" / "grid").is_dir(), reason="no ../shared/data"
)
def test_mvtec_grid_loads_and_ssim_beats_chance():
    data = load_mvtec_ad(DATA / "mvtec_ad", "grid", image_size=64)
    assert data.X_train.shape == (25, 64, 64) and data.masks_test.shape == (14, 64, 64)
    assert data.y_test.sum() == 11 and not data.masks_test[data.y_test == 0].any()
    detector = VQVAEAnomalyDetector(**SMALL, anomaly_map_type="ssim").fit(data.X_train)
    maps = detector.anomaly_map(data.X_test)
    assert np.isfinite(maps).all()
    assert roc_auc_score(data.masks_test.ravel(), maps.ravel()) > 0.6


@pytest.mark.skipif(not (DATA / "cifar10_jpg").is_dir(), reason="no ../shared/data")
def test_cifar10_jpeg_folders_one_vs_rest(tmp_path):
    import tarfile

    from skvqad.datasets import load_cifar10_one_vs_rest

    for split in ("train", "test"):
        # Extract 20 images per class (the first in the archive) to stay fast.
        kept = {}
        with tarfile.open(DATA / "cifar10_jpg" / f"{split}_jpg.tar.gz") as archive:
            for member in archive:
                if member.isfile():
                    label = member.name.split("/")[-2]
                    kept[label] = kept.get(label, 0) + 1
                    if kept[label] <= 20:
                        archive.extract(member, tmp_path, filter="data")
    data = load_cifar10_one_vs_rest(tmp_path, "automobile")
    assert data.X_train.shape == (20, 32, 32, 3) and data.X_test.shape == (
        200,
        32,
        32,
        3,
    )
    assert data.y_test.sum() == 180
    assert (data.labels_test[data.y_test == 0] == 1).all()
    assert 0.0 <= data.X_test.min() and data.X_test.max() <= 1.0
