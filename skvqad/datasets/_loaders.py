"""Loaders for anomaly-detection data sets stored in local folders.

Nothing is downloaded: every loader reads a folder the user already has and
raises ``FileNotFoundError`` naming a missing folder; an anomalous image
without its mask is kept for image metrics (``has_mask``), with a warning.
"""

import pickle
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from joblib import effective_n_jobs
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

from ._files import find_mask, list_images, list_images_and_masks, warn_left_out
from ._image_files import ImageFiles
from ._io import (
    check_size,
    file_header,
    file_shape,
    fitted_shape,
    n_padded,
    read_images,
    read_mask,
    target_shape,
)

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


def _describe_size(size, image_size, keep_aspect, padded, n):
    """What the reader did to the images' size, for reports."""
    if size is None:
        return "file sizes kept"
    shape = f"resized to {size[0]}x{size[1]} px"
    if not keep_aspect:
        return f"{shape} (stretched: aspect ratio not kept)"
    side = f"short side {min(size)}, " if np.isscalar(image_size) else ""
    extra = (
        f"; {padded} of {n} images of another aspect fitted inside and padded "
        "by mirror reflection"
        if padded
        else ""
    )
    return f"{shape} ({side}aspect ratio kept{extra})"


def _read_data_set(train_paths, test_paths, mask_file_of, options):
    """Read a data set's files into one shape and one colour mode.

    Training and test images are read as one set: one target shape
    (:func:`~._io.target_shape`), and RGB as soon as any file, in either
    split, is in colour (unless ``color`` says otherwise). ``mask_file_of``
    (None: no masks) gives a test image's mask file, None for a normal
    image, or raises FileNotFoundError. Returns ``X_train, X_test, masks,
    has_mask, resize`` (a sentence for reports); with ``lazy`` the images
    are :class:`~._image_files.ImageFiles` (masks are read all the same).
    """
    image_size, keep_aspect, color, n_jobs, lazy = options
    paths = list(train_paths) + list(test_paths)
    headers = [file_header(p) for p in paths]  # read once
    shapes = [None if h is None else h[0] for h in headers]
    size = target_shape(shapes, image_size, keep_aspect)
    if lazy and color is None and any(h is not None and h[1] for h in headers):
        color = "rgb"  # one colour mode for all files, as read_images gives
    reading = dict(image_size=size, color=color, keep_aspect=keep_aspect)
    if lazy:  # files read when drawn
        workers = 0 if n_jobs in (None, 1) else effective_n_jobs(n_jobs)
        images = ImageFiles(paths, **reading, num_workers=workers)
        images.check()  # every file's header, now; the two splits keep the shape
    else:
        images = read_images(paths, **reading, n_jobs=n_jobs)
    X_train, X_test = images[: len(train_paths)], images[len(train_paths) :]
    masks = has_mask = None
    if mask_file_of is not None:
        masks, has_mask = _masks_for(
            list(test_paths), mask_file_of, size, keep_aspect, X_test.shape[1:3]
        )
    padded = n_padded(shapes, size, keep_aspect)
    resize = _describe_size(size, image_size, keep_aspect, padded, len(paths))
    return X_train, X_test, masks, has_mask, resize


def _masks_for(paths, mask_file_of, size, keep_aspect, shape):
    """Masks (n, H, W) bool and ``has_mask`` (n,) bool of the test images.

    Paths whose ``mask_file_of`` is None (normal images) get an all-zero mask
    that is their ground truth. An anomalous image whose mask is not found
    gets zeros and ``has_mask`` False, with one warning for all of them:
    it counts for image metrics and is left out of pixel metrics.
    """
    masks = np.zeros((len(paths),) + shape, dtype=bool)
    has_mask = np.ones(len(paths), dtype=bool)
    defect = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        try:
            mask_path = mask_file_of(path)
        except FileNotFoundError:
            defect[i], has_mask[i] = True, False
            continue
        if mask_path is None:
            continue
        defect[i] = True
        _check_mask_aspect(mask_path, path)
        masks[i] = _mask_of_shape(mask_path, size, keep_aspect, shape)
    area = masks.mean(axis=(1, 2))
    odd = np.flatnonzero(defect & has_mask & ((area == 0) | (area > 0.5)))
    if len(odd):
        shown = ", ".join(f"{paths[i]} ({area[i]:.0%})" for i in odd[:3])
        warnings.warn(
            f"{len(odd)} defect mask(s) are empty or cover more than half of "
            f"their image ({shown}{', ...' if len(odd) > 3 else ''}): an "
            "inverted mask, or a palette whose index 0 is the defect colour? "
            "Masks are True where the stored value is at least half its range, "
            "or > 0 for masks whose values all lie below it.",
            UserWarning,
            stacklevel=3,
        )
    if not has_mask.all():
        missing = [str(paths[i]) for i in np.flatnonzero(~has_mask)]
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        warnings.warn(
            f"{len(missing)} anomalous test image(s) have no mask ({shown}): they "
            "count for image metrics and are left out of pixel metrics "
            "(has_mask is False for them).",
            UserWarning,
            stacklevel=3,
        )
    return masks, has_mask


def _check_mask_aspect(mask_path, image_path):
    """Raise ValueError if a mask's aspect ratio is not its image's.

    Such a mask cannot be laid over its image by resizing (EXIF orientations
    included: a phone photograph stored sideways is compared upright).
    """
    mask_shape, image_shape = file_shape(mask_path), file_shape(image_path)
    if None in (mask_shape, image_shape):
        return
    if fitted_shape(mask_shape, image_shape, True) != tuple(image_shape):
        raise ValueError(
            f"mask {mask_path} is {mask_shape[0]}x{mask_shape[1]} but its image "
            f"{image_path} is {image_shape[0]}x{image_shape[1]} (as displayed): "
            "another aspect ratio, so the mask cannot be laid over the image."
        )


def _mask_of_shape(mask_path, size, keep_aspect, shape):
    mask = read_mask(mask_path, image_size=size, keep_aspect=keep_aspect)
    if mask.shape != shape:
        raise ValueError(
            f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but its image is "
            f"{shape[0]}x{shape[1]}; pass image_size (--image-size) to resize both."
        )
    return mask


_LAZY_DOC = """n_jobs : int or None, default=None
        Parallel file reading with joblib (with ``lazy``: the ``num_workers``
        of the returned :class:`ImageFiles`, 0 for None or 1).
    lazy : bool, default=False
        Return ``X_train`` and ``X_test`` as :class:`ImageFiles` (paths,
        each image read when drawn: for data sets larger than memory; the
        detector reads them in batches) instead of arrays; the masks are
        arrays all the same. The images are those the arrays would hold,
        with a channel axis (``(H, W, 1)`` for grey images)."""

_SIZE_DOC = """image_size : int, (int, int) or None, default={default}
        Images are resized with anti-aliasing, masks with the nearest
        neighbour (and stay binary). An int is the short side: the long side
        follows the most common aspect ratio of the files, and a file of
        another aspect is fitted inside that shape and padded by mirror
        reflection (its mask with False), so nothing is squashed or cut off;
        with ``keep_aspect=False`` an int is a square's side. A pair is the
        (height, width). None keeps the file sizes (which must then agree).
    keep_aspect : bool, default=True
        Keep the files' aspect ratio (see ``image_size``); False stretches
        every image to the shape, as the paper's 256x256 protocol does."""


def load_mvtec_ad(
    root,
    category,
    *,
    image_size=256,
    keep_aspect=True,
    color=None,
    n_jobs=None,
    lazy=False,
):
    """Load one category of MVTec AD from its official folder layout.

    ``<root>/<category>/train/good/*.png`` are the normal training images;
    ``test/<defect>/*.png`` the test images, ``good`` being normal;
    ``ground_truth/<defect>/<stem>_mask.png`` (or ``<stem>.png``) the masks,
    or masks stored beside their test images (``<stem>_mask.*``, or a file
    of the same stem with mask content, such as ``x.png`` beside ``x.jpg``),
    which are never read as images. Other image formats (``.jpg``, ``.bmp``,
    ``.tif``) are read too. Good test images have no mask and get an
    all-zero one. A defect image without a mask gets zeros and ``has_mask``
    False, with a warning: it counts for image metrics and the benchmark
    leaves it out of pixel metrics.

    Parameters
    ----------
    root : str or Path
        Folder holding the category folders (``root/category`` must exist).
    category : str
        Category name, e.g. ``"grid"``.
    %(size_doc)s
    color : {None, "gray", "rgb"}, default=None
        None keeps greyscale categories at one channel and colour ones at
        three; "gray" or "rgb" converts.
    %(lazy_doc)s

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train`` (n_train, H, W[, 3]) float32 in [0, 1]; ``X_test``
        (n_test, H, W[, 3]) float32; ``y_test`` (n_test,) int64, 1 =
        anomalous; ``masks_test`` (n_test, H, W) bool, binarised by
        one rule (:func:`skvqad.datasets._io.binarize_mask`: > 0 for label
        masks, half the range for soft grey and JPEG masks, the alpha
        channel where it varies); ``has_mask`` (n_test,) bool, False for
        defect images whose mask is missing; ``defect_types`` (n_test,) str;
        ``filenames`` (n_test,) str and ``filenames_train`` (n_train,) str,
        the image paths; ``layout`` and ``resize`` (str), what was read and
        how it was resized, for reports.

    Raises
    ------
    FileNotFoundError
        If the category, its training or test folder, or every test image is
        missing.
    ValueError
        If a file cannot be read, or sizes differ with ``image_size=None``.
    """
    base = Path(root) / category
    if not base.is_dir():
        raise FileNotFoundError(f"MVTec AD category folder not found: {base}")
    train_paths = list_images(base / "train" / "good", what="training")
    test_root = base / "test"
    if not test_root.is_dir():
        raise FileNotFoundError(f"MVTec AD test folder not found: {test_root}")
    test_paths, beside = [], {}
    defect_dirs = (
        p for p in test_root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )  # hidden folders (.ipynb_checkpoints) are not defect types
    for defect_dir in sorted(defect_dirs):
        images, masks, left_out = list_images_and_masks(defect_dir, what="test")
        test_paths += images
        if defect_dir.name == "good":
            left_out += list(masks.values())
        else:
            beside |= masks
        warn_left_out(defect_dir, left_out)
    if not test_paths:
        raise FileNotFoundError(f"no test images under {test_root}")

    def mask_file_of(path):
        if path.parent.name == "good":
            return None
        if path in beside:
            return beside[path]
        return find_mask(base / "ground_truth" / path.parent.name, path.stem)

    X_train, X_test, masks, has_mask, resize = _read_data_set(
        train_paths,
        test_paths,
        mask_file_of,
        (image_size, keep_aspect, color, n_jobs, lazy),
    )
    defect_types = np.array([p.parent.name for p in test_paths])
    where = "beside the test images" if beside else "in ground_truth/"
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        y_test=(defect_types != "good").astype(np.int64),
        masks_test=masks,
        has_mask=has_mask,
        defect_types=defect_types,
        filenames=np.array([str(p) for p in test_paths]),
        filenames_train=np.array([str(p) for p in train_paths]),
        layout=f"MVTec AD ({base}: train/good, test/<defect>, masks {where})",
        resize=resize,
        DESCR=f"MVTec AD category '{category}' read from {base}.",
    )


load_mvtec_ad.__doc__ = load_mvtec_ad.__doc__.replace(
    "%(size_doc)s", _SIZE_DOC.format(default=256)
).replace("%(lazy_doc)s", _LAZY_DOC)


def _normal_split(normal_dir, normal_test_dir, normal_split_ratio, random_state):
    """(training, normal test) image paths of a Folder layout."""
    if not 0 <= normal_split_ratio < 1:
        raise ValueError(
            f"normal_split_ratio must be in [0, 1), got {normal_split_ratio!r}."
        )
    normal = list_images(normal_dir, what="normal")
    if normal_test_dir is not None:
        return normal, list_images(normal_test_dir, what="normal test")
    if normal_split_ratio > 0 and len(normal) > 1:
        train, test = train_test_split(
            normal, test_size=normal_split_ratio, random_state=random_state
        )
        return sorted(train), sorted(test)
    return normal, []


def normal_training_paths(
    normal_dir, *, normal_test_dir=None, normal_split_ratio=0.2, random_state=None
):
    """The training images of a Folder layout, as :func:`load_image_folder`
    splits them (same arguments, same split), without reading any file."""
    return _normal_split(normal_dir, normal_test_dir, normal_split_ratio, random_state)[
        0
    ]


def _check_flat_masks(paths, mask_dir):
    """Raise ValueError if images of two defect folders share a stem and
    their masks would be looked up in one flat ``mask_dir``."""
    folders = defaultdict(set)
    for path in paths:
        if not (mask_dir / path.parent.name).is_dir():
            folders[path.stem].add(path.parent)
    clashes = sorted(stem for stem, parents in folders.items() if len(parents) > 1)
    if clashes:
        where = " and ".join(str(p) for p in sorted(folders[clashes[0]])[:2])
        raise ValueError(
            f"anomalous images in {where} share the name '{clashes[0]}' "
            f"({len(clashes)} name(s) in all), and the masks are looked up in "
            f"the one folder {mask_dir}, which cannot say whose mask "
            f"'{clashes[0]}.*' is: put each defect type's masks in "
            f"{mask_dir}/<defect folder name>/."
        )


def _as_folders(abnormal_dir):
    if abnormal_dir is None:
        return []
    if isinstance(abnormal_dir, (str, Path)):
        return [Path(abnormal_dir)]
    return [Path(p) for p in abnormal_dir]


def load_image_folder(
    normal_dir,
    abnormal_dir=None,
    mask_dir=None,
    *,
    normal_test_dir=None,
    normal_split_ratio=0.2,
    image_size=None,
    keep_aspect=True,
    color=None,
    random_state=None,
    n_jobs=None,
    lazy=False,
):
    """Load a folder data set in the layout of anomalib's ``Folder``.

    Parameters
    ----------
    normal_dir : str or Path
        Normal images. All are training images when ``normal_test_dir`` is
        given; otherwise ``normal_split_ratio`` of them are held out as normal
        test images.
    abnormal_dir : str, Path or list of them, optional
        Anomalous test images; one folder per defect type (its name becomes
        the ``defect_types`` entry).
    mask_dir : str or Path, optional
        Masks of the anomalous images, matched by file stem (``<stem>.*``,
        ``<stem>_mask.*`` or ``<stem>-mask.*``), in ``mask_dir/<abnormal
        folder name>`` where that exists, else in ``mask_dir``. Masks stored
        beside the anomalous images (``x_mask.png``, or ``x.png`` with mask
        content beside ``x.jpg``) are recognised without it and never read
        as images; ``mask_dir`` equal to ``abnormal_dir`` says the same. An
        anomalous image without a mask counts for image metrics only
        (``has_mask`` False, a warning); a missing folder is an error.
    normal_test_dir : str or Path, optional
        Normal test images.
    normal_split_ratio : float, default=0.2
        Fraction of ``normal_dir`` held out for testing when
        ``normal_test_dir`` is None, in [0, 1).
    %(size_doc)s
    color : {None, "gray", "rgb"}, default=None
        Channel conversion, as in :func:`load_mvtec_ad`.
    random_state : int, RandomState instance or None, default=None
        Seeds the normal split.
    %(lazy_doc)s

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train``, ``X_test``, ``y_test`` (1 = anomalous), ``masks_test``
        (all False for normal images; None when there is no ``mask_dir`` and
        no mask beside the anomalous images), ``has_mask`` (as in
        :func:`load_mvtec_ad`; None when ``masks_test`` is), ``defect_types``
        ("good" or the abnormal folder's name), ``filenames``,
        ``filenames_train``, ``layout`` and ``resize``; shapes and dtypes as
        in :func:`load_mvtec_ad`.

    Raises
    ------
    FileNotFoundError
        If a folder is missing.
    ValueError
        If no test images result, or sizes differ with ``image_size=None``.
    """
    train_paths, normal_test = _normal_split(
        normal_dir, normal_test_dir, normal_split_ratio, random_state
    )
    abnormal, beside = [], {}
    for folder in _as_folders(abnormal_dir):
        images, masks, left_out = list_images_and_masks(folder, what="abnormal")
        abnormal += images
        beside |= masks
        warn_left_out(folder, left_out)
    test_paths = list(normal_test) + abnormal
    if not test_paths:
        raise ValueError("no test images: give abnormal_dir or normal_test_dir.")
    if mask_dir is not None and not Path(mask_dir).is_dir():
        raise FileNotFoundError(f"mask folder not found: {mask_dir}")
    if mask_dir is not None:
        _check_flat_masks([p for p in abnormal if p not in beside], Path(mask_dir))
    abnormal_set = set(abnormal)

    def mask_file_of(path):
        if path not in abnormal_set:
            return None
        if path in beside:
            return beside[path]
        if mask_dir is None or Path(mask_dir).resolve() == path.parent.resolve():
            raise FileNotFoundError(path)
        folder = Path(mask_dir) / path.parent.name
        return find_mask(folder if folder.is_dir() else mask_dir, path.stem)

    masked = mask_dir is not None or bool(beside)
    X_train, X_test, masks, has_mask, resize = _read_data_set(
        train_paths,
        test_paths,
        mask_file_of if masked else None,
        (image_size, keep_aspect, color, n_jobs, lazy),
    )
    y_test = np.r_[np.zeros(len(normal_test)), np.ones(len(abnormal))].astype(np.int64)
    defect_types = np.array(
        ["good"] * len(normal_test) + [p.parent.name for p in abnormal]
    )
    where = (
        "none" if not masked else "beside the images" if beside and mask_dir is None
        else f"in {mask_dir}" + (" and beside the images" if beside else "")
    )  # fmt: skip
    split = (
        f"normal test: {normal_test_dir}"
        if normal_test_dir is not None
        else f"{len(normal_test)} of the normal images held out for testing"
    )
    folders = ", ".join(str(p) for p in _as_folders(abnormal_dir)) or "none"
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        y_test=y_test,
        masks_test=masks,
        has_mask=has_mask,
        defect_types=defect_types,
        filenames=np.array([str(p) for p in test_paths]),
        filenames_train=np.array([str(p) for p in train_paths]),
        layout=(
            f"Folder layout (normal: {normal_dir}, {split}; abnormal: {folders}; "
            f"masks: {where})"
        ),
        resize=resize,
        DESCR=f"Image folder data set: normal images from {normal_dir}.",
    )


load_image_folder.__doc__ = load_image_folder.__doc__.replace(
    "%(size_doc)s", _SIZE_DOC.format(default=None)
).replace("%(lazy_doc)s", _LAZY_DOC)


def _class_index(normal_class):
    if not isinstance(normal_class, (str, int, np.integer)) or isinstance(
        normal_class, bool
    ):
        raise ValueError(
            f"normal_class must be a class name or an int in 0-9, got {normal_class!r}."
        )
    if isinstance(normal_class, str):
        if normal_class not in CIFAR10_CLASSES:
            raise ValueError(
                f"normal_class must be one of {CIFAR10_CLASSES} or 0-9, got "
                f"{normal_class!r}."
            )
        return CIFAR10_CLASSES.index(normal_class)
    if not 0 <= int(normal_class) <= 9:
        raise ValueError(f"normal_class must be in 0-9, got {normal_class}.")
    return int(normal_class)


def _cifar_batches(folder, names):
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}")
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="latin1")
            data = np.asarray(batch["data"], np.uint8).reshape(-1, 3, 32, 32)
            batch_labels = np.asarray(batch["labels"], dtype=np.int64)
        except Exception as exc:  # truncated or foreign pickle
            raise ValueError(f"{path} is not a CIFAR-10 batch file: {exc}") from exc
        if len(batch_labels) != len(data):
            raise ValueError(
                f"{path} holds {len(data)} images but {len(batch_labels)} labels"
            )
        images.append(data)
        labels.append(batch_labels)
    return np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels)


def _cifar_folders(root, split, n_jobs, classes=range(len(CIFAR10_CLASSES))):
    images, labels = [], []
    for k in classes:
        name = CIFAR10_CLASSES[k]
        paths = list_images(root / split / name, what=f"CIFAR-10 {split}/{name}")
        images.append(read_images(paths, color="rgb", n_jobs=n_jobs))
        labels.append(np.full(len(paths), k))
    return np.concatenate(images), np.concatenate(labels)


def load_cifar10_one_vs_rest(root, normal_class, *, n_jobs=None):
    """CIFAR-10 in the one-vs-rest protocol of the paper (Section III-D).

    Training: the training images of ``normal_class`` (5,000). Test: all
    test images (10,000), the other nine classes being anomalous.

    Parameters
    ----------
    root : str or Path
        Either the official python version (a folder that is, or contains,
        ``cifar-10-batches-py`` with ``data_batch_1..5`` and ``test_batch``),
        or a folder of images ``<root>/{train,test}/<class name>/*.png|jpg``.
    normal_class : int in 0-9 or str
        The normal class, by index or name (``"airplane"``, ...).
    n_jobs : int or None, default=None
        Parallel reading of image folders with joblib.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train`` (n_train, 32, 32, 3) and ``X_test`` (n_test, 32, 32, 3),
        float32 in [0, 1]; ``y_test`` (n_test,) int64, 1 = anomalous;
        ``labels_test`` (n_test,) int64, the CIFAR-10 class;
        ``class_names``; ``normal_class`` (str).

    Raises
    ------
    FileNotFoundError
        If neither layout is found under ``root``.
    ValueError
        If ``normal_class`` is unknown.
    """
    k = _class_index(normal_class)
    root = Path(root)
    pickled = root if (root / "test_batch").is_file() else root / "cifar-10-batches-py"
    if (pickled / "test_batch").is_file():
        X_tr, y_tr = _cifar_batches(pickled, [f"data_batch_{i}" for i in range(1, 6)])
        X_te, y_te = _cifar_batches(pickled, ["test_batch"])
        X_tr, X_te = (
            X_tr[y_tr == k].astype(np.float32) / 255,
            X_te.astype(np.float32) / 255,
        )
    elif (root / "train").is_dir() and (root / "test").is_dir():
        X_tr, _ = _cifar_folders(root, "train", n_jobs, classes=[k])
        X_te, y_te = _cifar_folders(root, "test", n_jobs)
    else:
        raise FileNotFoundError(
            f"no CIFAR-10 under {root}: expected cifar-10-batches-py/ (python "
            "version) or train/<class>/ and test/<class>/ image folders."
        )
    return Bunch(
        X_train=X_tr,
        X_test=X_te,
        y_test=(y_te != k).astype(np.int64),
        labels_test=y_te.astype(np.int64),
        class_names=list(CIFAR10_CLASSES),
        normal_class=CIFAR10_CLASSES[k],
        DESCR=f"CIFAR-10 one-vs-rest, normal class {CIFAR10_CLASSES[k]}, from {root}.",
    )


def load_ucsd_ped(root, subset="ped1", *, image_size=128, n_jobs=None):
    """UCSD Anomaly Detection data set (Ped1 or Ped2), frames as images.

    Layout: ``<root>/UCSDped1/Train/TrainNNN/*.tif`` (normal clips),
    ``Test/TestNNN/*.tif``, and for some test clips pixel masks in
    ``Test/TestNNN_gt/*.bmp`` (one per frame, matched by sorted order).
    Frames are resized to ``image_size`` (128x128 in the paper).

    Parameters
    ----------
    root : str or Path
        Folder containing ``UCSDped1`` (or ``UCSDped2``), or that folder itself.
    subset : {"ped1", "ped2"}, default="ped1"
    image_size : int, tuple of int or None, default=128
    n_jobs : int or None, default=None
        Parallel file reading with joblib.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``X_train`` (n_train, H, W) and ``X_test`` (n_test, H, W), float32 in
        [0, 1]; ``masks_test`` (n_test, H, W) bool (all False for frames of
        clips without ground truth); ``has_mask`` (n_test,) bool, True for
        frames whose clip has pixel masks (evaluate pixel metrics on these);
        ``y_test`` (n_test,) int64, 1 where the mask is not empty (meaningful
        only where ``has_mask``); ``clips_test`` (n_test,) str.

    Raises
    ------
    FileNotFoundError
        If a folder is missing, or a ground-truth folder holds a different
        number of masks than its clip has frames.
    """
    if subset not in ("ped1", "ped2"):
        raise ValueError(f"subset must be 'ped1' or 'ped2', got {subset!r}.")
    root = Path(root)
    name = f"UCSD{subset}"
    base = root if root.name == name else root / name
    if not base.is_dir():
        raise FileNotFoundError(f"UCSD folder not found: {base}")

    def clips(split):
        folder = base / split
        if not folder.is_dir():
            raise FileNotFoundError(f"UCSD {split} folder not found: {folder}")
        found = sorted(
            p for p in folder.iterdir() if p.is_dir() and not p.name.endswith("_gt")
        )
        if not found:
            raise FileNotFoundError(f"no clip folders in {folder}")
        return found

    train_paths = [p for clip in clips("Train") for p in list_images(clip, what="clip")]
    test_paths, clip_names, has_mask, mask_paths = [], [], [], []
    for clip in clips("Test"):
        frames = list_images(clip, what="clip")
        gt = clip.parent / f"{clip.name}_gt"
        masks = list_images(gt, what="ground-truth") if gt.is_dir() else None
        if masks is not None and len(masks) != len(frames):
            raise FileNotFoundError(
                f"{gt} holds {len(masks)} masks for {len(frames)} frames in {clip}"
            )
        test_paths += frames
        clip_names += [clip.name] * len(frames)
        has_mask += [masks is not None] * len(frames)
        mask_paths += masks if masks is not None else [None] * len(frames)
    X_train = read_images(
        train_paths, image_size=image_size, color="gray", n_jobs=n_jobs
    )
    X_test = read_images(test_paths, image_size=image_size, color="gray", n_jobs=n_jobs)
    masks_test = np.zeros(X_test.shape, dtype=bool)
    for i, mask_path in enumerate(mask_paths):
        if mask_path is not None:
            masks_test[i] = _mask_of_shape(
                mask_path, check_size(image_size), False, X_test.shape[1:3]
            )
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        masks_test=masks_test,
        has_mask=np.array(has_mask),
        y_test=masks_test.any(axis=(1, 2)).astype(np.int64),
        clips_test=np.array(clip_names),
        DESCR=f"UCSD {subset} read from {base}.",
    )
