"""Reading image and mask files into float32 arrays (scikit-image I/O)."""

import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from skimage import color as skcolor
from skimage import io
from skimage.transform import resize
from skimage.util import img_as_float32

#: File name extensions read as images (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def list_images(folder, *, what="images"):
    """Sorted image files directly inside ``folder`` (hidden files skipped).

    Raises FileNotFoundError if the folder is missing or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}")
    # Hidden files are skipped: macOS copies leave "._name.png" resource forks.
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower() in IMAGE_EXTENSIONS
        and not p.name.startswith(".")
    )
    if not files:
        raise FileNotFoundError(
            f"no image files ({', '.join(IMAGE_EXTENSIONS)}) in {what} folder {folder}"
        )
    return files


_COLORS = (None, "gray", "rgb")


def check_size(image_size):
    """``image_size`` as None or a (height, width) pair of positive ints.

    Raises
    ------
    ValueError
        If it is not None, a positive int or a pair of positive ints.
    """
    if image_size is None:
        return None
    size = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    if len(size) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
        for v in size
    ):
        raise ValueError(
            f"image_size must be None, a positive int or two positive ints, got "
            f"{image_size!r}."
        )
    return tuple(int(v) for v in size)


def check_color(color):
    """Raise ValueError unless ``color`` is None, "gray" or "rgb"."""
    if color not in _COLORS:
        raise ValueError(f"color must be None, 'gray' or 'rgb', got {color!r}.")


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _why(path, exc):
    """A one-line reason why ``path`` could not be decoded.

    Pillow's diagnosis is preferred to the reader's: imageio's messages for a
    non-image file change with its plugins (a DICOM deprecation notice, a
    list of backends to install).
    """
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    try:
        with Image.open(path) as pil:
            pil.load()
    except Exception as pil_exc:  # noqa: BLE001 - any decoder failure is reported
        message = _first_line(pil_exc)
        if "cannot identify" in message:
            return (
                "not an image file of a known format (damaged, or another kind of file)"
            )
        if "truncated" in message.lower():
            return f"the file is truncated ({message})"
        return message
    return _first_line(exc)


def _is_cmyk(path):
    with Image.open(path) as pil:
        return pil.mode == "CMYK"


def read_image(path, *, image_size=None, color=None):
    """One image as float32 in [0, 1], shape (H, W) or (H, W, 3).

    8- and 16-bit integers are scaled by their maximum (255, 65535), alpha
    channels are dropped (the colour is kept even where alpha is 0), palette
    images are read through their palette, and the image is resized with
    anti-aliasing when ``image_size`` is given. ``color`` is None (keep),
    ``"gray"`` or ``"rgb"``.
    """
    try:
        image = io.imread(path)
    except Exception as exc:  # imageio raises many types for unreadable files
        raise ValueError(f"cannot read image file {path}: {_why(path, exc)}") from exc
    if image.ndim == 3 and image.shape[-1] == 4 and _is_cmyk(path):
        with Image.open(path) as pil:  # CMYK JPEGs: the 4th channel is K, not alpha
            image = np.asarray(pil.convert("RGB"))
    if image.ndim == 3 and image.shape[-1] in (2, 4):  # LA / RGBA: drop alpha
        image = image[..., :-1]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"unsupported image layout {image.shape} in {path}")
    if image.dtype.kind == "f":
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise ValueError(
                f"floating-point image {path} holds values outside [0, 1] or NaN"
            )
    elif image.dtype not in (np.uint8, np.uint16, np.bool_):
        raise ValueError(
            f"image {path} has pixel type {image.dtype}; expected 8- or 16-bit "
            "unsigned integers or floats in [0, 1]"
        )
    image = img_as_float32(image)
    if color == "gray" and image.ndim == 3:
        image = skcolor.rgb2gray(image).astype(np.float32)
    elif color == "rgb" and image.ndim == 2:
        image = skcolor.gray2rgb(image)
    size = check_size(image_size)
    if size is not None and image.shape[:2] != size:
        image = resize(image, size, anti_aliasing=True, preserve_range=True)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


#: Pillow formats whose compression rings around edges.
LOSSY_FORMATS = ("JPEG", "MPO", "WEBP")


def _half_range(mask):
    """Half the value range of a mask's type: 128, 32768, ... or 0.5 (floats)."""
    if np.issubdtype(mask.dtype, np.integer):
        return (int(np.iinfo(mask.dtype).max) + 1) // 2
    return 0.5


def binarize_mask(mask, *, lossy=False, source=None):
    """A stored mask as bool: the defect pixels.

    Parameters
    ----------
    mask : ndarray of shape (H, W), integer, bool or floating
        The stored values (one channel).
    lossy : bool, default=False
        Whether the file was lossily compressed (JPEG).
    source : str or Path, optional
        The file, named in the warning.

    Returns
    -------
    ndarray of shape (H, W), bool
        One rule for every kind of file: True where the value is at least
        half the range of its type (128 for 8 bits, 32768 for 16 bits, 0.5
        for floats), unless no value reaches half the range (0/1, palette or
        class-index masks), which are True where the value is > 0. So 0/255
        and 0/65535 masks read exactly, and the noise of grey masks, the
        soft edges of resized or anti-aliased ones and the rings JPEG
        compression leaves around every edge do not count as defect (a
        256-pixel defect in a JPEG loads as 360 at "> 0"; a noisy grey mask
        at more than 1.5 times its area).

    Warns
    -----
    UserWarning
        If a lossy mask has non-zero values but none >= 128: a 0/1 mask saved
        as JPEG, which compression has made unrecoverable (read as empty).
    """
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return mask.copy()
    half = _half_range(mask)
    if not lossy:
        return mask >= half if mask.max() >= half else mask > 0
    binary = mask >= half
    if mask.max() > 0 and not binary.any():
        warnings.warn(
            f"JPEG mask {source or ''} holds only values below 128 (a 0/1 "
            "mask saved as JPEG?); lossy compression has blurred it beyond "
            "recovery and it is read as empty. Store masks as PNG.",
            UserWarning,
            stacklevel=3,
        )
    return binary


def read_mask(path, *, image_size=None):
    """One mask as bool (H, W), binarised by :func:`binarize_mask` (lossy: JPEG).

    Palette files are read as their indices (not their colours); a file
    with an alpha channel that varies is read by its alpha (the painted,
    opaque region is the defect, whatever its colour); other colour files by
    their brightest channel per pixel. Resizing uses the nearest neighbour
    only, so masks stay binary. An unreadable file raises ValueError naming
    it.
    """
    try:
        with Image.open(path) as pil:
            mask = np.asarray(pil)
            lossy = pil.format in LOSSY_FORMATS
    except Exception as exc:
        raise ValueError(f"cannot read mask file {path}: {_why(path, exc)}") from exc
    if mask.ndim == 3:
        alpha = mask[..., -1] if mask.shape[-1] in (2, 4) else None
        if alpha is not None and alpha.min() != alpha.max():
            mask = alpha
        else:
            mask = mask[..., :3].max(axis=-1) if mask.shape[-1] >= 3 else mask[..., 0]
    mask = binarize_mask(mask, lossy=lossy, source=path)
    size = check_size(image_size)
    if size is not None and mask.shape != size:
        mask = resize(mask, size, order=0, anti_aliasing=False).astype(bool)
    return mask


def read_images(paths, *, image_size=None, color=None, n_jobs=None):
    """Stack images into (n, H, W) or (n, H, W, 3) float32.

    Greyscale files are promoted to RGB when any file is in colour (unless
    ``color="gray"``). Raises ValueError naming two files of different sizes
    when ``image_size`` is None and sizes differ.
    """
    check_size(image_size)
    check_color(color)
    images = Parallel(n_jobs=n_jobs)(
        delayed(read_image)(p, image_size=image_size, color=color) for p in paths
    )
    if color is None and any(im.ndim == 3 for im in images):
        images = [skcolor.gray2rgb(im) if im.ndim == 2 else im for im in images]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        first = images[0].shape
        other = next(i for i, im in enumerate(images) if im.shape != first)
        raise ValueError(
            f"images have different sizes ({paths[0]}: {first}, {paths[other]}: "
            f"{images[other].shape}); pass image_size to resize them."
        )
    return np.stack(images)


def find_mask(mask_dir, stem):
    """The mask for image ``stem`` in ``mask_dir``: ``stem.*`` or ``stem_mask.*``.

    Extensions are matched whatever their case (``.PNG``, ``.Png``, ``.bmp``),
    as :func:`list_images` does for images; ``stem`` itself is matched
    exactly. Raises FileNotFoundError listing a few of the files that are
    there when none matches.
    """
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise FileNotFoundError(f"mask folder not found: {mask_dir}")
    candidates = {
        (p.stem, p.suffix.lower()): p
        for p in mask_dir.iterdir()
        if p.is_file() and not p.name.startswith(".")
    }
    for name in (stem, f"{stem}_mask"):
        for ext in IMAGE_EXTENSIONS:
            if (name, ext) in candidates:
                return candidates[(name, ext)]
    found = sorted(p.name for p in candidates.values())
    shown = ", ".join(found[:5])
    if len(found) > 5:
        shown += f", ... ({len(found)} files)"
    raise FileNotFoundError(
        f"no mask for image '{stem}' in {mask_dir} (looked for {stem}.* and "
        f"{stem}_mask.* with extensions {', '.join(IMAGE_EXTENSIONS)}, any case; "
        f"found: {shown or 'no files'})"
    )
