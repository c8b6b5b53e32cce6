"""Finding image and mask files in folders, and telling the two apart."""

import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

#: File name extensions read as images (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Stem endings that name a mask (case-insensitive): ``x_mask.png`` is the
#: mask of ``x.*``.
MASK_SUFFIXES = ("_mask", "-mask")
#: A file is mask-like when at least this fraction of its pixels lies in the
#: lowest or highest tenth of its range (0/255 masks, noisy ones, 0/1 ones).
_MASK_LIKE_FRACTION = 0.95


def image_files(folder):
    """Image files directly inside ``folder``, sorted (hidden files skipped)."""
    # Hidden files are skipped: macOS copies leave "._name.png" resource forks.
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not p.name.startswith(".")
    )


def _mask_base(stem):
    """The image stem that ``stem`` is the mask of, or None."""
    lower = stem.lower()
    for suffix in MASK_SUFFIXES:
        if lower.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return None


def looks_like_mask(path):
    """Whether a file's content is a mask: nearly every pixel at the bottom
    or top tenth of the range in every channel (white or red on black, 0/1
    values) or in its alpha where that varies, or a palette of at most 16
    colours.

    Used only to tell apart files that share a stem (``x.jpg`` and
    ``x.png``); unreadable files are not masks.
    """
    try:
        with Image.open(path) as pil:
            if pil.mode == "1":
                return True
            if pil.mode == "P":
                return len(pil.getcolors(256) or range(257)) <= 16
            array = np.asarray(pil)
    except Exception:  # noqa: BLE001 - the reader reports unreadable files
        return False
    if array.ndim == 3:
        alpha = array[..., -1] if array.shape[-1] in (2, 4) else None
        if alpha is not None and alpha.min() != alpha.max():
            array = alpha
        else:  # every colour channel must be at an extreme (red on black too)
            array = array[..., : min(3, array.shape[-1] - (alpha is not None))]
    top = np.iinfo(array.dtype).max if array.dtype.kind in "ui" else 1.0
    values = array.astype(np.float32) / top
    extreme = (values <= 0.1) | (values >= 0.9)
    if extreme.ndim == 3:
        extreme = extreme.all(axis=-1)
    return bool(np.mean(extreme) >= _MASK_LIKE_FRACTION)


def _split_masks(files):
    """(images, masks, unused) of a folder's files; masks: image -> mask path.

    A file is a mask when its stem ends in ``_mask`` / ``-mask`` (it
    belongs to the image of the remaining stem; without one it is left
    out, unused, and so is any second mask of one image), or when it
    shares its stem with other files and is the only one of them, or the
    only one not, with mask-like content (:func:`looks_like_mask`).

    Raises ValueError when files share a stem and all look like masks, so
    that the image cannot be told from its mask.
    """
    by_stem = defaultdict(list)
    for path in files:
        by_stem[path.stem].append(path)
    masks, orphans = {}, []
    for stem, group in list(by_stem.items()):
        if _mask_base(stem) is None:
            continue
        base = by_stem.get(_mask_base(stem))
        for path in group:
            if base:
                masks[path] = base
            else:
                orphans.append(path)
        del by_stem[stem]
    images = []
    for group in by_stem.values():
        if len(group) > 1:
            like = [looks_like_mask(p) for p in group]
            if all(like):
                raise ValueError(
                    "cannot tell the image from its mask among "
                    f"{', '.join(str(p) for p in group)}: name the mask "
                    f"{group[0].stem}_mask{group[0].suffix} or keep masks in a "
                    "folder of their own."
                )
            photos = [p for p, m in zip(group, like) if not m]
            for path, mask_like in zip(group, like):
                if mask_like:
                    masks[path] = photos
            group = photos
        images += group
    # Each image gets the first mask naming it (sorted order).
    mask_of = {}
    for mask, owners in sorted(masks.items()):
        for owner in owners:
            mask_of.setdefault(owner, mask)
    unused = set(masks) - set(mask_of.values())
    return sorted(images), mask_of, sorted(unused | set(orphans))


def list_images_and_masks(folder, *, what="images"):
    """Image files in ``folder`` and the masks stored beside them.

    Parameters
    ----------
    folder : str or Path
        A folder whose image files (:data:`IMAGE_EXTENSIONS`, any case) are
        read, hidden files skipped.
    what : str, default="images"
        The folder's role, named in errors.

    Returns
    -------
    images : list of Path
        Sorted image files, masks left out.
    masks : dict
        Image path -> its mask file in the same folder: ``<stem>_mask.*``
        (or ``-mask``), or a file of the same stem whose content is a mask
        (``x.png`` beside ``x.jpg``).
    left_out : list of Path
        Other mask files: masks named for an image that is not there, or
        second masks of one image.

    Raises
    ------
    FileNotFoundError
        If the folder is missing or holds no image (only masks, or nothing).
    ValueError
        If files share a stem and all look like masks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    files = image_files(folder)
    _warn_nested(folder)
    images, masks, left_out = _split_masks(files)
    if not images:
        only = f" (only {len(files)} mask files)" if files else ""
        raise FileNotFoundError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {what} folder "
            f"{folder}{only}"
        )
    return images, masks, left_out


def _warn_nested(folder):
    """Warn that images in sub-folders of ``folder`` are not read."""
    nested = [
        p.name
        for p in sorted(folder.iterdir())
        if p.is_dir() and not p.name.startswith((".", "__")) and image_files(p)
    ]
    if nested:
        warnings.warn(
            f"{folder} has sub-folder(s) holding images ({', '.join(nested[:3])}"
            f"{', ...' if len(nested) > 3 else ''}): they are not read, only the "
            "image files directly inside it.",
            UserWarning,
            stacklevel=4,
        )


def list_images(folder, *, what="images"):
    """Sorted image files directly inside ``folder``, masks left out.

    Mask files beside the images (see :func:`list_images_and_masks`) are
    never read as images: they are left out with a warning naming them.

    Raises FileNotFoundError if the folder is missing or holds no image.
    """
    images, masks, left_out = list_images_and_masks(folder, what=what)
    warn_left_out(folder, list(masks.values()) + left_out)
    return images


def warn_left_out(folder, masks):
    """Warn that ``masks`` (mask files found among images) were not read."""
    if not masks:
        return
    shown = ", ".join(p.name for p in sorted(masks)[:3])
    warnings.warn(
        f"{len(masks)} mask file(s) among the images in {folder} were left out "
        f"of the images ({shown}{', ...' if len(masks) > 3 else ''}).",
        UserWarning,
        stacklevel=4,
    )


def find_mask(mask_dir, stem):
    """The mask for image ``stem`` in ``mask_dir``: ``stem.*``, ``stem_mask.*``
    or ``stem-mask.*``.

    Extensions and the ``_mask`` suffix are matched whatever their case
    (``.PNG``, ``x_MASK.png``), as :func:`list_images` does beside images;
    ``stem`` itself is matched exactly first. Raises FileNotFoundError
    listing a few of the files that are there when none matches.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask folder not found: {mask_dir}")
    files = [
        p for p in mask_dir.iterdir() if p.is_file() and not p.name.startswith(".")
    ]
    exact = {(p.stem, p.suffix.lower()): p for p in files}
    # The suffix in any case (x_MASK.png), as beside the images.
    suffixed = {(p.stem.lower(), p.suffix.lower()): p for p in files}
    for ext in IMAGE_EXTENSIONS:
        if (stem, ext) in exact:
            return exact[(stem, ext)]
    for suffix in MASK_SUFFIXES:
        for ext in IMAGE_EXTENSIONS:
            if (f"{stem}{suffix}".lower(), ext) in suffixed:
                return suffixed[(f"{stem}{suffix}".lower(), ext)]
    found = sorted(p.name for p in files)
    shown = ", ".join(found[:5])
    if len(found) > 5:
        shown += f", ... ({len(found)} files)"
    raise FileNotFoundError(
        f"no mask for image '{stem}' in {mask_dir} (looked for {stem}.* and "
        f"{stem}_mask.* with extensions {', '.join(IMAGE_EXTENSIONS)}, any case; "
        f"found: {shown or 'no files'})"
    )
