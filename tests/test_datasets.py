"""Built-in texture data and the folder loaders, on trees the tests build."""

import pickle

import numpy as np
import pytest
from PIL import Image

from skvqad.datasets import (
    load_cifar10_one_vs_rest,
    load_image_folder,
    load_mvtec_ad,
    load_ucsd_ped,
    make_texture_defects,
)
from skvqad.datasets._texture import _hole, _patch, _photograph, _scratch, _stain

# ------------------------------------------------------------ texture defects


def test_make_texture_defects_layout_and_determinism():
    a = make_texture_defects(
        "grass", n_train=5, n_test=8, image_size=32, random_state=0
    )
    b = make_texture_defects(
        "grass", n_train=5, n_test=8, image_size=32, random_state=0
    )
    assert a.X_train.shape == (5, 32, 32) and a.X_train.dtype == np.float32
    assert a.X_test.shape == a.masks_test.shape == (8, 32, 32)
    assert a.masks_test.dtype == bool
    np.testing.assert_array_equal(a.y_test, [0, 1] * 4)
    assert list(a.defect_types) == [
        "good",
        "scratch",
        "good",
        "hole",
        "good",
        "stain",
        "good",
        "patch",
    ]
    assert not a.masks_test[a.y_test == 0].any()
    assert all(m.any() for m in a.masks_test[a.y_test == 1])
    assert 0 <= a.X_test.min() and a.X_test.max() <= 1
    np.testing.assert_array_equal(a.X_test, b.X_test)
    c = make_texture_defects(
        "grass", n_train=5, n_test=8, image_size=32, random_state=1
    )
    assert not np.array_equal(a.X_train, c.X_train)


def test_test_tiles_come_from_rows_no_training_tile_covers():
    data = make_texture_defects(
        n_train=30, n_test=6, image_size=16, scale=0.25, random_state=0
    )
    photo = _photograph("brick", 0.25)  # 128 x 128; training band = rows < 77
    windows = np.lib.stride_tricks.sliding_window_view(photo, (16, 16))
    for tiles, inside in (
        (data.X_train, lambda y: y + 16 <= 77),
        (data.X_test[data.y_test == 0], lambda y: y >= 77),
    ):
        for tile in tiles:
            ys, _ = np.nonzero((windows == tile).all(axis=(2, 3)))
            assert len(ys) and all(inside(y) for y in ys)


@pytest.mark.parametrize("make", [_scratch, _hole, _stain])
def test_defect_masks_are_exactly_the_changed_pixels(make):
    tile = np.full((32, 32), 0.5, dtype=np.float32)
    out, mask = make(tile, np.random.default_rng(3))
    np.testing.assert_array_equal(out != tile, mask)
    assert mask.any()


def test_patch_mask_covers_the_pasted_pixels():
    rng = np.random.default_rng(0)
    tile = np.full((32, 32), 0.5, dtype=np.float32)
    other = rng.uniform(0.6, 1.0, size=(64, 64)).astype(np.float32)
    out, mask = _patch(tile, rng, other)
    np.testing.assert_array_equal(out != tile, mask)


def test_make_texture_defects_errors():
    with pytest.raises(ValueError, match="texture"):
        make_texture_defects("wood")
    with pytest.raises(ValueError, match="does not fit"):
        make_texture_defects(image_size=200)
    with pytest.raises(ValueError, match="n_test"):
        make_texture_defects(n_test=1)


# ---------------------------------------------------------------- file trees


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def _mvtec_tree(root, rgb=False):
    rng = np.random.default_rng(0)
    shape = (20, 24, 3) if rgb else (20, 24)
    cat = root / "widget"
    for i in range(3):
        _save(
            cat / "train" / "good" / f"{i:03d}.png",
            rng.integers(0, 256, shape, np.uint8),
        )
    _save(cat / "test" / "good" / "000.png", rng.integers(0, 256, shape, np.uint8))
    for i in range(2):
        _save(
            cat / "test" / "crack" / f"{i:03d}.png",
            rng.integers(0, 256, shape, np.uint8),
        )
        mask = np.zeros((20, 24), np.uint8)
        mask[5:9, 6:12] = 1 if i == 0 else 255  # defect pixels stored below 255 too
        _save(cat / "ground_truth" / "crack" / f"{i:03d}_mask.png", mask)
    return cat


def test_load_mvtec_ad_layout(tmp_path):
    _mvtec_tree(tmp_path)
    data = load_mvtec_ad(tmp_path, "widget", image_size=None)
    assert data.X_train.shape == (3, 20, 24) and data.X_train.dtype == np.float32
    assert list(data.defect_types) == ["crack", "crack", "good"]
    np.testing.assert_array_equal(data.y_test, [1, 1, 0])
    assert data.masks_test.sum(axis=(1, 2)).tolist() == [24, 24, 0]
    assert data.filenames[0].endswith("crack/000.png")


def test_load_mvtec_ad_resizes_masks_with_nearest_neighbour(tmp_path):
    _mvtec_tree(tmp_path, rgb=True)
    data = load_mvtec_ad(tmp_path, "widget", image_size=40)
    # 20 x 24 files: the short side becomes 40, the aspect ratio is kept.
    assert data.X_test.shape == (3, 40, 48, 3)
    assert data.masks_test.dtype == bool and data.masks_test.shape == (3, 40, 48)
    assert data.masks_test[0].sum() == 24 * 4  # 4 x 6 pixels, scaled by 2
    assert "short side 40, aspect ratio kept" in data.resize
    square = load_mvtec_ad(tmp_path, "widget", image_size=40, keep_aspect=False)
    assert square.X_test.shape == (3, 40, 40, 3) and "stretched" in square.resize
    assert 0 < square.masks_test[0].sum() < 40 * 40


def test_load_mvtec_ad_missing_pieces_are_named(tmp_path):
    cat = _mvtec_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope"):
        load_mvtec_ad(tmp_path, "nope")
    full = load_mvtec_ad(tmp_path, "widget")
    assert full.has_mask.all()
    # A defect image without its mask counts for image metrics only.
    (cat / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.warns(UserWarning, match=r"1 anomalous test image.*001\.png"):
        data = load_mvtec_ad(tmp_path, "widget")
    np.testing.assert_array_equal(data.has_mask, [True, False, True])
    np.testing.assert_array_equal(data.y_test, [1, 1, 0])
    assert not data.masks_test[1].any()
    np.testing.assert_array_equal(data.masks_test[0], full.masks_test[0])


def test_image_files_of_every_kind_are_read_to_the_right_values(tmp_path):
    folder = tmp_path / "normal"
    grey8 = np.array([[0, 255], [128, 64]], np.uint8)
    _save(folder / "a_grey8.png", grey8)
    _save(folder / "b_grey16.png", (grey8.astype(np.uint16) * 257))
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200
    _save(folder / "c_rgb.png", rgb)
    rgba = np.dstack([rgb, np.zeros((2, 2), np.uint8)])  # fully transparent
    _save(folder / "d_rgba.png", rgba, mode="RGBA")
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    palette.save(folder / "e_palette.png")
    data = load_image_folder(folder, normal_test_dir=folder)
    X = data.X_train
    assert X.shape == (5, 2, 2, 3)  # greyscale promoted to RGB alongside colour
    np.testing.assert_allclose(X[0, ..., 0], grey8 / 255, atol=1e-6)
    np.testing.assert_allclose(X[1], X[0], atol=1e-6)  # 16-bit scaled by 65535
    np.testing.assert_allclose(X[2, ..., 0], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(X[3], X[2])  # alpha dropped, colour kept
    np.testing.assert_allclose(X[4, 0, 1], [200 / 255, 0, 0], atol=1e-6)


def test_load_image_folder_matches_masks_by_stem(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("n1", "n2", "n3", "n4", "n5"):
        _save(
            tmp_path / "good" / f"{name}.jpg",
            rng.integers(0, 256, (16, 16, 3), np.uint8),
        )
    for name in ("x1", "x2"):
        _save(
            tmp_path / "bad" / f"{name}.jpg",
            rng.integers(0, 256, (16, 16, 3), np.uint8),
        )
    mask = np.zeros((16, 16), np.uint8)
    mask[:4] = 1
    palette_mask = Image.fromarray(mask, mode="P")
    palette_mask.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)  # index 0 is white
    (tmp_path / "masks").mkdir()
    palette_mask.save(tmp_path / "masks" / "x1.png")
    _save(tmp_path / "masks" / "x2_mask.png", mask * 255)
    data = load_image_folder(
        tmp_path / "good",
        tmp_path / "bad",
        tmp_path / "masks",
        normal_split_ratio=0.4,
        random_state=0,
    )
    assert len(data.X_train) == 3 and len(data.X_test) == 4
    np.testing.assert_array_equal(data.y_test, [0, 0, 1, 1])
    assert data.masks_test.sum(axis=(1, 2)).tolist() == [
        0,
        0,
        64,
        64,
    ]  # indices, not colours
    (tmp_path / "masks" / "x2_mask.png").unlink()
    with pytest.warns(UserWarning, match="x2"):
        data = load_image_folder(
            tmp_path / "good", tmp_path / "bad", tmp_path / "masks"
        )
    # x2, the last test image, has lost its mask; the others keep theirs.
    assert not data.has_mask[-1] and data.has_mask[:-1].all()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_image_folder(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="mask folder not found"):
        load_image_folder(tmp_path / "good", tmp_path / "bad", tmp_path / "nomasks")


def test_mixed_sizes_need_image_size(tmp_path):
    _save(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "b.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(tmp_path, normal_test_dir=tmp_path)
    data = load_image_folder(tmp_path, normal_test_dir=tmp_path, image_size=(6, 7))
    assert data.X_train.shape == (2, 6, 7)


def _cifar_pickles(folder, per_class=2):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = list(np.repeat(np.arange(10), per_class))
        data = rng.integers(0, 256, (len(labels), 3072), np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)


def test_cifar10_from_pickles_and_from_folders(tmp_path):
    _cifar_pickles(tmp_path / "cifar-10-batches-py")
    data = load_cifar10_one_vs_rest(tmp_path, "bird")
    assert data.X_train.shape == (10, 32, 32, 3)  # 5 batches x 2 birds
    assert data.X_test.shape == (20, 32, 32, 3) and data.X_test.dtype == np.float32
    assert data.y_test.sum() == 18 and (data.labels_test[data.y_test == 0] == 2).all()
    from skvqad.datasets._loaders import CIFAR10_CLASSES

    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            _save(
                tmp_path / "jpg" / split / name / "0001.png",
                rng.integers(0, 256, (32, 32, 3), np.uint8),
            )
    folders = load_cifar10_one_vs_rest(tmp_path / "jpg", 0)
    assert folders.X_train.shape == (1, 32, 32, 3) and folders.y_test.sum() == 9
    with pytest.raises(ValueError, match="normal_class"):
        load_cifar10_one_vs_rest(tmp_path, "unicorn")
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        load_cifar10_one_vs_rest(tmp_path / "jpg" / "train", 0)


def test_ucsd_ped_layout(tmp_path):
    base = tmp_path / "UCSDped1"
    rng = np.random.default_rng(0)
    for split, clip, n in (
        ("Train", "Train001", 3),
        ("Train", "Train002", 2),
        ("Test", "Test001", 2),
        ("Test", "Test002", 2),
    ):
        for k in range(n):
            _save(
                base / split / clip / f"{k + 1:03d}.tif",
                rng.integers(0, 256, (158, 238), np.uint8),
            )
    for k in range(2):
        mask = np.zeros((158, 238), np.uint8)
        mask[50:80, 100:140] = 255 * k
        _save(base / "Test" / "Test002_gt" / f"{k + 1:03d}.bmp", mask)
    data = load_ucsd_ped(tmp_path)
    assert data.X_train.shape == (5, 128, 128) and data.X_test.shape == (4, 128, 128)
    np.testing.assert_array_equal(data.has_mask, [False, False, True, True])
    np.testing.assert_array_equal(data.y_test, [0, 0, 0, 1])
    assert list(data.clips_test) == ["Test001"] * 2 + ["Test002"] * 2
    (base / "Test" / "Test002_gt" / "002.bmp").unlink()
    with pytest.raises(FileNotFoundError, match="1 masks for 2 frames"):
        load_ucsd_ped(tmp_path)
    with pytest.raises(FileNotFoundError, match="UCSDped2"):
        load_ucsd_ped(tmp_path, "ped2")


def test_mask_of_another_size_is_named(tmp_path):
    cat = _mvtec_tree(tmp_path)
    _save(cat / "ground_truth" / "crack" / "001_mask.png", np.zeros((40, 48), np.uint8))
    with pytest.raises(ValueError, match="001_mask.png is 40x48"):
        load_mvtec_ad(tmp_path, "widget", image_size=None)
    with pytest.warns(UserWarning, match=r"1 defect mask\(s\) are empty"):
        data = load_mvtec_ad(tmp_path, "widget", image_size=16)
    assert data.masks_test.shape == (3, 16, 19)  # 20 x 24 images, aspect kept
    # An inverted mask (white background) is named too.
    _save(
        cat / "ground_truth" / "crack" / "001_mask.png",
        np.full((40, 48), 255, np.uint8),
    )
    with pytest.warns(UserWarning, match=r"001\.png \(100%\).*inverted"):
        load_mvtec_ad(tmp_path, "widget")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=0), "image_size"),
        (dict(image_size=(8,)), "image_size"),
        (dict(image_size=2.7), "image_size"),
        (dict(color="grey"), "color"),
    ],
)
def test_loader_arguments_are_checked(tmp_path, kwargs, match):
    _mvtec_tree(tmp_path)
    with pytest.raises(ValueError, match=match):
        load_mvtec_ad(tmp_path, "widget", **kwargs)


def test_unusual_pixel_types_are_rejected_by_name(tmp_path):
    from skimage import io

    folder = tmp_path / "normal"
    folder.mkdir()
    io.imsave(folder / "a.tif", np.full((5, 6), np.nan, np.float32))
    with pytest.raises(ValueError, match="a.tif"):
        load_image_folder(folder, normal_test_dir=folder)
    (folder / "a.tif").unlink()
    io.imsave(folder / "b.tif", np.full((5, 6), 7, np.int32), check_contrast=False)
    with pytest.raises(ValueError, match="int32"):
        load_image_folder(folder, normal_test_dir=folder)
    with pytest.raises(ValueError, match="normal_split_ratio"):
        load_image_folder(folder, normal_split_ratio=2)


def test_corrupt_cifar_and_bad_class(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_pickles(folder)
    with pytest.raises(ValueError, match="normal_class"):
        load_cifar10_one_vs_rest(tmp_path, None)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10_one_vs_rest(tmp_path, 0)


def test_texture_sizes_too_small_are_rejected():
    with pytest.raises(ValueError, match="image_size"):
        make_texture_defects(image_size=4)
    with pytest.raises(ValueError, match="n_test"):
        make_texture_defects(n_test=3.0)
