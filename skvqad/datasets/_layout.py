"""One entry point for a data set folder in either layout: MVTec AD or Folder."""

import warnings
from pathlib import Path

from ._files import image_files, list_images, looks_like_mask
from ._loaders import load_image_folder, load_mvtec_ad, normal_training_paths

#: Folder names (lower case) found without being named, in the Folder layout.
NORMAL_NAMES = ("good", "normal", "ok")
NORMAL_TEST_NAMES = ("normal_test", "good_test")
MASK_NAMES = ("mask", "masks", "ground_truth", "gt")


def _sub(root, name):
    return None if name is None else Path(root) / name


def data_set_layout(
    root, *, normal_dir=None, abnormal_dir=None, mask_dir=None, normal_test_dir=None
):
    """Which layout ``root`` is in, and its folders.

    Parameters
    ----------
    root : str or Path
        The data set folder.
    normal_dir, abnormal_dir, mask_dir, normal_test_dir : str or Path, optional
        Folders of the Folder layout, relative to ``root`` (or absolute);
        ``abnormal_dir`` may be a list. Naming any of them selects the Folder
        layout; the others are then found by their usual names.

    Returns
    -------
    layout : {"mvtec", "folder"}
        "mvtec" when ``root`` has a ``train`` folder and no folder is named.
    folders : dict or None
        For "folder": the arguments of :func:`load_image_folder`. The normal
        folder is ``good``, ``normal`` or ``ok``; masks ``mask``, ``masks``,
        ``ground_truth`` or ``gt``; normal test images ``normal_test`` or
        ``good_test``; every other sub-folder holds anomalous images.

    Raises
    ------
    FileNotFoundError
        If ``root`` is missing, or is in neither layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data set folder not found: {root}")
    named = (normal_dir, abnormal_dir, mask_dir, normal_test_dir)
    if all(n is None for n in named) and (root / "train").is_dir():
        return "mvtec", None
    subdirs = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
    )

    def find(names):
        return next((p for p in subdirs if p.name.lower() in names), None)

    normal = _sub(root, normal_dir) or find(NORMAL_NAMES)
    if normal is None and (root / "train").is_dir():
        raise FileNotFoundError(
            f"{root} is in the MVTec AD layout (it has train/), but folders of the "
            "Folder layout were named (normal_dir, abnormal_dir, mask_dir, "
            "normal_test_dir; --normal-dir ...): leave them out to read it as "
            "MVTec AD, or name its normal folder too."
        )
    if normal is None and any(p.name.lower() == "train" for p in subdirs):
        raise FileNotFoundError(
            f"cannot tell the layout of {root}: its training folder is not named "
            "train/ in lower case, as the MVTec AD layout needs (train/good, test/, "
            "ground_truth/): rename it, or use the Folder layout's options."
        )
    if normal is None:
        raise FileNotFoundError(
            f"cannot tell the layout of {root}: expected train/ and test/ (MVTec AD "
            f"layout) or a folder of normal images named {', '.join(NORMAL_NAMES)} "
            "(Folder layout; name folders with --normal-dir, --abnormal-dir, "
            "--mask-dir). Sub-folders found: "
            + (", ".join(p.name for p in subdirs) or "none")
        )
    masks = _sub(root, mask_dir) or find(MASK_NAMES)
    normal_test = _sub(root, normal_test_dir) or find(NORMAL_TEST_NAMES)
    if abnormal_dir is None:
        taken = {p.resolve() for p in (normal, masks, normal_test) if p is not None}
        abnormal = [p for p in subdirs if p.resolve() not in taken]
        _warn_mask_folders(abnormal)
    elif isinstance(abnormal_dir, (str, Path)):
        abnormal = [root / abnormal_dir]
    else:
        abnormal = [root / a for a in abnormal_dir]
    for folder in [normal, masks, normal_test, *abnormal]:
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
    return "folder", dict(
        normal_dir=normal,
        abnormal_dir=abnormal,
        mask_dir=masks,
        normal_test_dir=normal_test,
    )


def _warn_mask_folders(folders):
    """Warn about a folder taken for anomalous images whose files look like
    masks (its first three): a mask folder of another name?"""
    for folder in folders:
        sample = image_files(folder)[:3]
        if sample and all(looks_like_mask(p) for p in sample):
            warnings.warn(
                f"the files of {folder} look like masks, but it is read as a "
                "folder of anomalous images; if it holds masks, name it with "
                "mask_dir (--mask-dir).",
                UserWarning,
                stacklevel=3,
            )


def load_data_set(
    root,
    *,
    normal_dir=None,
    abnormal_dir=None,
    mask_dir=None,
    normal_test_dir=None,
    normal_split_ratio=0.2,
    image_size=256,
    keep_aspect=True,
    color=None,
    random_state=None,
    n_jobs=None,
    lazy=False,
):
    """Load a data set folder in the MVTec AD layout or anomalib's Folder layout.

    The layout is found by :func:`data_set_layout`: ``root`` with ``train/good``
    and ``test/<defect>`` is read by :func:`load_mvtec_ad`; ``root`` with a
    normal folder (``good``, ``normal``, ``ok``, or ``normal_dir``) by
    :func:`load_image_folder`, the other sub-folders being anomalous images
    and ``mask``/``masks``/``ground_truth``/``gt`` their masks. Masks stored
    beside their images are recognised in both.

    Parameters
    ----------
    root : str or Path
        The data set folder.
    normal_dir, abnormal_dir, mask_dir, normal_test_dir : str or Path, optional
        Folder-layout folders relative to ``root``, as in
        :func:`load_image_folder` (``abnormal_dir`` may be a list); naming one
        selects the Folder layout.
    normal_split_ratio : float, default=0.2
        Fraction of the normal images held out for testing when there is no
        normal test folder (Folder layout), in [0, 1).
    image_size : int, (int, int) or None, default=256
        As in :func:`load_mvtec_ad`: an int is the short side, the aspect
        ratio being kept.
    keep_aspect : bool, default=True
        False stretches every image to ``image_size`` x ``image_size``.
    color : {None, "gray", "rgb"}, default=None
        Channel conversion.
    random_state : int, RandomState instance or None, default=None
        Seeds the normal split of the Folder layout.
    n_jobs : int or None, default=None
        Parallel file reading with joblib.
    lazy : bool, default=False
        Images as :class:`ImageFiles`, read when drawn, not arrays (as in
        :func:`load_mvtec_ad`).

    Returns
    -------
    data : sklearn.utils.Bunch
        As :func:`load_mvtec_ad` returns it (``masks_test`` and ``has_mask``
        None for a Folder data set without masks); ``layout`` says which
        layout and folders were read, ``resize`` how images were resized.

    Raises
    ------
    FileNotFoundError
        If ``root`` or a named folder is missing, or ``root`` is in neither
        layout.
    ValueError
        If a file cannot be read, or there are no test images.
    """
    named = dict(
        normal_dir=normal_dir,
        abnormal_dir=abnormal_dir,
        mask_dir=mask_dir,
        normal_test_dir=normal_test_dir,
    )
    layout, folders = data_set_layout(root, **named)
    reading = dict(
        image_size=image_size, keep_aspect=keep_aspect, color=color, lazy=lazy
    )
    if layout == "mvtec":
        root = Path(root).resolve()
        return load_mvtec_ad(root.parent, root.name, **reading, n_jobs=n_jobs)
    return load_image_folder(
        **folders,
        normal_split_ratio=normal_split_ratio,
        random_state=random_state,
        n_jobs=n_jobs,
        **reading,
    )


def training_paths(root, *, normal_split_ratio=0.2, random_state=None, **folders):
    """The training image files of a folder, without reading any.

    A folder that itself holds images (and no folder is named) is a folder
    of training images; otherwise the training images of the data set's
    layout, split as :func:`load_data_set` splits them with the same
    arguments (``folders``: its ``normal_dir``, ``abnormal_dir``,
    ``mask_dir`` and ``normal_test_dir``). Returns ``(paths, description)``.
    """
    root = Path(root)
    plain = all(n is None for n in folders.values()) and root.is_dir()
    if plain and not (root / "train").is_dir() and image_files(root):
        subdirs = {p.name.lower() for p in root.iterdir() if p.is_dir()}
        if not subdirs & set(NORMAL_NAMES):  # images, not a Folder layout
            return list_images(root, what="training"), f"{root}"
    layout, folders = data_set_layout(root, **folders)
    if layout == "mvtec":
        folder = root / "train" / "good"
        return list_images(folder, what="training"), f"{folder} (MVTec AD layout)"
    paths = normal_training_paths(
        folders["normal_dir"],
        normal_test_dir=folders["normal_test_dir"],
        normal_split_ratio=normal_split_ratio,
        random_state=random_state,
    )
    held_out = (
        "its normal test images are in " + str(folders["normal_test_dir"])
        if folders["normal_test_dir"] is not None
        else f"{normal_split_ratio:.0%} held out for testing"
    )
    return paths, f"{folders['normal_dir']} (Folder layout; {held_out})"
