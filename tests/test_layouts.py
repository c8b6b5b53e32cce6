"""Real data as users have it (issue 18): both folder layouts, masks beside
the images, photographs of any size and aspect, through loaders and CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from skvqad._cli import main
from skvqad.datasets import load_data_set, load_image_folder
from skvqad.datasets._files import list_images, list_images_and_masks, looks_like_mask
from skvqad.datasets._io import (
    file_shape,
    n_padded,
    read_image,
    read_mask,
    target_shape,
)
from skvqad.datasets._layout import data_set_layout, training_paths

from .test_cli import SMALL


def _photo(path, shape=(24, 32), seed=0, rgb=True):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(40, 216, shape + ((3,) if rgb else ()), np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _mask(path, shape=(24, 32), box=(4, 10, 6, 14)):
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros(shape, np.uint8)
    mask[box[0] : box[1], box[2] : box[3]] = 255
    Image.fromarray(mask).save(path)
    return path


def _folder_tree(root, *, beside=False, n_normal=10, shape=(24, 32)):
    """good/, crack/ (3 images) and masks in mask/ or beside the images."""
    for i in range(n_normal):
        _photo(root / "good" / f"n{i}.jpg", shape, seed=i)
    for i in range(3):
        _photo(root / "crack" / f"c{i}.jpg", shape, seed=100 + i)
        where = root / "crack" if beside else root / "mask"
        # Beside: one mask named by suffix, the others by content (same stem).
        name = f"c{i}_mask.png" if (beside and i == 0) else f"c{i}.png"
        _mask(where / name, shape)
    return root


# Masks beside the images -------------------------------------------------


def test_masks_beside_images_are_found_and_never_read_as_images(tmp_path):
    _folder_tree(tmp_path, beside=True)
    images, masks, left_out = list_images_and_masks(tmp_path / "crack")
    assert [p.name for p in images] == ["c0.jpg", "c1.jpg", "c2.jpg"]
    assert {p.name: m.name for p, m in masks.items()} == {
        "c0.jpg": "c0_mask.png",
        "c1.jpg": "c1.png",
        "c2.jpg": "c2.png",
    }
    assert left_out == []
    data = load_image_folder(
        tmp_path / "good", tmp_path / "crack", random_state=0, image_size=None
    )
    assert len(data.X_test) == 2 + 3  # 20% of 10 normal images, 3 defects
    assert data.masks_test is not None and data.has_mask.all()
    assert data.masks_test[data.y_test == 1].sum(axis=(1, 2)).tolist() == [48] * 3
    assert "beside the images" in data.layout


def test_masks_among_training_images_are_left_out_with_a_warning(tmp_path):
    _folder_tree(tmp_path)
    _mask(tmp_path / "good" / "n0_mask.png")
    _mask(tmp_path / "good" / "n1.png", box=(0, 0, 0, 0))  # an empty mask
    with pytest.warns(UserWarning, match=r"2 mask file\(s\) .* left out"):
        paths = list_images(tmp_path / "good")
    assert len(paths) == 10 and all(p.suffix == ".jpg" for p in paths)


def test_which_file_is_the_mask_is_told_by_content(tmp_path):
    photo = _photo(tmp_path / "x.png")
    grey = _photo(tmp_path / "g.png", rgb=False)
    mask = _mask(tmp_path / "x.jpg")  # a JPEG mask: soft edges, still a mask
    noisy = np.clip(
        np.asarray(Image.open(_mask(tmp_path / "n.png"))).astype(int)
        + np.random.default_rng(0).integers(-12, 13, (24, 32)),
        0,
        255,
    ).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "n.png")
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[4:10, 6:14] = (200, 30, 30, 255)  # painted, opaque region = defect
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert not looks_like_mask(photo) and not looks_like_mask(grey)
    assert looks_like_mask(mask) and looks_like_mask(tmp_path / "n.png")
    assert looks_like_mask(tmp_path / "a.png")
    images, masks, _ = list_images_and_masks(tmp_path)
    assert masks == {photo: mask}
    assert sorted(p.name for p in images) == ["a.png", "g.png", "n.png", "x.png"]


def test_two_masks_of_one_stem_are_an_error(tmp_path):
    _mask(tmp_path / "x.png")
    _mask(tmp_path / "x.bmp")
    with pytest.raises(ValueError, match="cannot tell the image from its mask"):
        list_images(tmp_path)


def test_a_folder_of_masks_only_is_named(tmp_path):
    _mask(tmp_path / "a_mask.png")
    with pytest.raises(FileNotFoundError, match="only 1 mask files"):
        list_images(tmp_path)


# Layouts -----------------------------------------------------------------


def test_folder_layout_is_found_by_its_folder_names(tmp_path):
    _folder_tree(tmp_path)
    layout, folders = data_set_layout(tmp_path)
    assert layout == "folder"
    assert folders["normal_dir"].name == "good"
    assert [p.name for p in folders["abnormal_dir"]] == ["crack"]
    assert folders["mask_dir"].name == "mask"
    data = load_data_set(tmp_path, image_size=None, random_state=0)
    assert data.masks_test.shape == (5, 24, 32) and data.has_mask.all()
    assert list(data.defect_types) == ["good", "good", "crack", "crack", "crack"]
    # The split is the one `fit` trains on, without reading a file.
    paths, where = training_paths(tmp_path, random_state=0)
    assert [str(p) for p in paths] == list(data.filenames_train)
    assert "Folder layout" in where and "20% held out" in where


def test_named_folders_and_per_type_mask_folders(tmp_path):
    for i in range(4):
        _photo(tmp_path / "ok_parts" / f"{i}.png", seed=i)
    for kind in ("dent", "scratch"):
        _photo(tmp_path / "bad" / kind / "0.png", seed=9)
        _mask(tmp_path / "labels" / kind / "0.png")
    data = load_data_set(
        tmp_path,
        normal_dir="ok_parts",
        abnormal_dir=["bad/dent", "bad/scratch"],
        mask_dir="labels",
        normal_split_ratio=0.25,
        image_size=None,
        random_state=0,
    )
    assert list(data.defect_types) == ["good", "dent", "scratch"]
    assert data.masks_test[1:].sum(axis=(1, 2)).tolist() == [48, 48]


def test_unknown_layout_lists_what_is_there(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match=r"cannot tell the layout.*photos"):
        load_data_set(tmp_path)


# Size and aspect ---------------------------------------------------------


def test_aspect_ratio_is_kept_and_other_aspects_are_padded(tmp_path):
    paths = [_photo(tmp_path / f"{i}.png", (30, 60), seed=i) for i in range(3)]
    odd = _photo(tmp_path / "odd.png", (30, 30), seed=7)
    shapes = [file_shape(p) for p in paths + [odd]]
    assert shapes[-1] == (30, 30) and shapes[0] == (30, 60)
    assert target_shape(shapes, 16) == (16, 32)
    assert target_shape(shapes, 16, keep_aspect=False) == (16, 16)
    assert target_shape(shapes, (20, 10)) == (20, 10)
    assert n_padded(shapes, (16, 32), keep_aspect=True) == 1
    image = read_image(odd, image_size=(16, 32), keep_aspect=True)
    assert image.shape == (16, 32, 3)
    # The square photo is 16 x 16 in the middle; mirrored on both sides.
    np.testing.assert_allclose(image[:, 7], image[:, 8])
    stretched = read_image(odd, image_size=(16, 32))
    assert stretched.shape == (16, 32, 3)
    mask = _mask(tmp_path / "odd_mask.png", (30, 30), box=(0, 30, 0, 15))
    padded = read_mask(mask, image_size=(16, 32), keep_aspect=True)
    assert padded.shape == (16, 32)
    assert padded[:, :8].sum() == 0 and padded[:, 24:].sum() == 0  # padding
    assert padded[:, 8:16].all() and not padded[:, 16:24].any()


def test_photographs_of_two_aspects_load_and_say_what_was_done(tmp_path):
    _folder_tree(tmp_path, shape=(40, 80))
    _photo(tmp_path / "crack" / "wide.jpg", (40, 120), seed=50)
    with pytest.warns(UserWarning, match="no mask"):
        data = load_data_set(tmp_path, image_size=16, random_state=0)
    assert data.X_train.shape[1:] == (16, 32, 3)
    assert data.masks_test.shape[1:] == (16, 32)
    assert "short side 16, aspect ratio kept; 1 of 14 images" in data.resize
    assert not data.has_mask[data.filenames == str(tmp_path / "crack/wide.jpg")][0]


# Command line ------------------------------------------------------------


def test_evaluate_and_fit_read_the_folder_layout(tmp_path, capsys):
    _folder_tree(tmp_path / "parts", beside=True, shape=(16, 32))
    model = tmp_path / "m.joblib"
    fit = ["fit", "--data", str(tmp_path / "parts"), "--out", str(model),
           "--image-size", "16", *SMALL]  # fmt: skip
    assert main(fit) == 0
    assert "Folder layout; 20% held out" in capsys.readouterr().out
    out = tmp_path / "eval"
    evaluate = ["evaluate", "--data", str(tmp_path / "parts"), "--model", str(model),
                "--image-size", "16", "--output-dir", str(out)]  # fmt: skip
    assert main(evaluate) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["image_size"] == [16, 32] and report["n_test"] == 5
    assert "Folder layout" in report["layout"]
    assert "aspect ratio kept" in report["resize"]
    assert 0 <= report["results"]["ssim+am"]["pixel ROC-AUC"] <= 1
    text = (out / "report.md").read_text()
    assert "Read: Folder layout" in text and "Images resized to 16x32" in text


def test_benchmark_folder_takes_the_folder_layout_without_masks(tmp_path):
    _folder_tree(tmp_path / "parts", shape=(16, 32))
    (tmp_path / "parts/mask").rename(tmp_path / "labels")  # now: no masks
    out = tmp_path / "bench"
    argv = ["benchmark", "folder", "--root", str(tmp_path / "parts"), "--quick",
            "--max-epochs", "1", "--image-size", "16", "--quiet",
            "--abnormal-dir", "crack", "--output-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "benchmark.json").read_text())
    result = report["results"]["parts"]
    assert (
        result["has_masks"] is False and "pixel ROC-AUC (pooled)" not in result["ssim"]
    )
    assert 0 <= result["ssim+am"]["image ROC-AUC"] <= 1
    text = (out / "benchmark.md").read_text()
    assert "no masks, so no pixel metrics" in text
    assert "short side 16 px (aspect ratio kept)" in text.splitlines()[0]


def test_folder_options_are_refused_where_they_do_not_apply(tmp_path, capsys):
    argv = ["benchmark", "mvtec", "--root", str(tmp_path), "--mask-dir", "m"]
    assert main(argv) == 1
    assert "--mask-dir applies to 'benchmark folder' only" in capsys.readouterr().err


# Found by trying it as a user would -------------------------------------


def test_fit_on_a_folder_layout_with_loose_files_at_its_root(tmp_path):
    _folder_tree(tmp_path)
    (tmp_path / "README.md").write_text("notes")
    _photo(tmp_path / "overview.jpg", seed=99)  # a picture of the set, not data
    paths, where = training_paths(tmp_path, random_state=0)
    assert len(paths) == 8 and all(p.parent.name == "good" for p in paths)
    assert "Folder layout" in where


def test_phone_photographs_are_read_upright_with_their_masks(tmp_path):
    # Stored 24 x 40 with EXIF orientation 6: shown (and masked) as 40 x 24.
    rows, cols = np.mgrid[0:40, 0:24]  # smooth, so that JPEG keeps it closely
    upright = np.stack([rows * 5, cols * 8, np.full_like(rows, 128)], -1)
    upright = upright.astype(np.uint8)
    stored = Image.fromarray(np.rot90(upright, 1).copy())
    exif = stored.getexif()
    exif[274] = 6
    stored.save(tmp_path / "x.jpg", exif=exif, quality=100)
    image = read_image(tmp_path / "x.jpg")
    assert image.shape == (40, 24, 3)
    assert np.abs(image * 255 - upright).mean() < 3  # JPEG noise only
    _mask(tmp_path / "x_mask.png", (40, 24), box=(0, 10, 0, 24))
    assert read_mask(tmp_path / "x_mask.png")[:10].all()


def test_a_mask_of_another_aspect_than_its_image_is_refused(tmp_path):
    _folder_tree(tmp_path)
    _mask(tmp_path / "mask" / "c1.png", (32, 24))  # its image is 24 x 32
    with pytest.raises(ValueError, match=r"c1.png is 32x24 .* another aspect"):
        load_data_set(tmp_path, image_size=16, random_state=0)


def test_one_flat_mask_folder_for_two_defect_folders_sharing_names(tmp_path):
    _folder_tree(tmp_path)
    for i in range(3):
        _photo(tmp_path / "stain" / f"c{i}.jpg", seed=200 + i)
    with pytest.raises(ValueError, match=r"share the name 'c0' .*mask/<defect"):
        load_data_set(tmp_path, image_size=None, random_state=0)
    (tmp_path / "mask" / "crack").mkdir()
    for i in range(3):  # per-type folders: unambiguous
        (tmp_path / "mask" / f"c{i}.png").rename(tmp_path / f"mask/crack/c{i}.png")
        _mask(tmp_path / "mask" / "stain" / f"c{i}.png", box=(0, 2, 0, 2))
    data = load_data_set(tmp_path, image_size=None, random_state=0)
    areas = dict(zip(data.defect_types, data.masks_test.sum(axis=(1, 2))))
    assert areas == {"good": 0, "crack": 48, "stain": 4}


def test_red_masks_beside_photographs_and_suffixes_in_any_case(tmp_path):
    for i in range(2):
        _photo(tmp_path / "crack" / f"d{i}.jpg", seed=i)
        red = np.zeros((24, 32, 3), np.uint8)
        red[4:10, 6:14, 0] = 255
        Image.fromarray(red).save(tmp_path / "crack" / f"d{i}.png")
    images, masks, _ = list_images_and_masks(tmp_path / "crack")
    assert [p.name for p in images] == ["d0.jpg", "d1.jpg"] and len(masks) == 2
    _mask(tmp_path / "labels" / "d0_MASK.png")
    from skvqad.datasets._files import find_mask

    assert find_mask(tmp_path / "labels", "d0").name == "d0_MASK.png"


def test_layout_mistakes_are_named_before_any_training(tmp_path, capsys):
    (tmp_path / "mvtec" / "train" / "good").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="MVTec AD layout .* leave them out"):
        data_set_layout(tmp_path / "mvtec", mask_dir="mine")
    _folder_tree(tmp_path / "set")
    with pytest.raises(FileNotFoundError, match="folder not found: .*missing"):
        training_paths(tmp_path / "set", abnormal_dir="missing")
    for i in range(3):  # a mask folder under another name
        _mask(tmp_path / "set" / "labels" / f"c{i}.png")
    with pytest.warns(UserWarning, match="labels look like masks"):
        data_set_layout(tmp_path / "set")
    argv = ["evaluate", "--data", str(tmp_path / "set"), "--normal-split-ratio", "0",
            "--abnormal-dir", "crack", *SMALL]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "no normal test images" in err and "--normal-split-ratio" in err
    assert "training on" not in capsys.readouterr().out


def test_images_in_sub_folders_and_capitalised_mvtec_folders_are_named(tmp_path):
    _folder_tree(tmp_path / "set")
    _photo(tmp_path / "set" / "good" / "more" / "m0.jpg")
    with pytest.warns(UserWarning, match=r"sub-folder\(s\) holding images \(more\)"):
        assert len(list_images(tmp_path / "set" / "good")) == 10
    (tmp_path / "caps" / "Train" / "good").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not named train/ in lower case"):
        data_set_layout(tmp_path / "caps")
