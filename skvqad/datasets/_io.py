"""Reading image and mask files into arrays of one size (scikit-image I/O).

Resizing keeps the aspect ratio unless told not to: :func:`target_shape`
chooses one (height, width) for a data set, and each file of another
aspect is fitted inside it and padded by mirror reflection (masks with
False), so that nothing is squashed or cut off.
"""

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from PIL import Image
from skimage import color as skcolor
from skimage import io
from skimage.transform import resize

from .._validation import unit_float32

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


#: EXIF orientations (tag 274) as numpy operations on (H, W[, C]) arrays,
#: as Pillow's ``ImageOps.exif_transpose`` applies them.
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _orientation(path):
    """The EXIF orientation of a file (1, upright, when it has none)."""
    try:
        with Image.open(path) as pil:
            return int(pil.getexif().get(274, 1))
    except Exception:  # noqa: BLE001 - the reader reports unreadable files
        return 1


def _upright(array, orientation):
    """``array`` turned as the EXIF orientation says: as a viewer shows it."""
    turn = _UPRIGHT.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def _is_cmyk(path):
    with Image.open(path) as pil:
        return pil.mode == "CMYK"


def read_image(path, *, image_size=None, color=None, keep_aspect=False):
    """One image as float32 in [0, 1], shape (H, W) or (H, W, 3).

    The file is turned upright as its EXIF orientation says (phone
    photographs), 8- and 16-bit integers are scaled by their maximum (255, 65535), alpha
    channels are dropped (the colour is kept even where alpha is 0), palette
    images are read through their palette, and the image is resized with
    anti-aliasing when ``image_size`` is given: to exactly that shape, or,
    with ``keep_aspect``, fitted inside it and padded by mirror reflection
    when its aspect ratio differs (by more than a pixel). ``color`` is None
    (keep), ``"gray"`` or ``"rgb"``.
    """
    try:
        image = io.imread(path)
    except Exception as exc:  # imageio raises many types for unreadable files
        raise ValueError(f"cannot read image file {path}: {_why(path, exc)}") from exc
    image = _upright(image, _orientation(path))
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
    # As the detector converts arrays: a file and its pixels agree bit for bit.
    image = unit_float32(image)
    if color == "gray" and image.ndim == 3:
        image = skcolor.rgb2gray(image).astype(np.float32)
    elif color == "rgb" and image.ndim == 2:
        image = skcolor.gray2rgb(image)
    size = check_size(image_size)
    if size is not None and image.shape[:2] != size:
        inner = fitted_shape(image.shape[:2], size, keep_aspect)
        image = resize(image, inner, anti_aliasing=True, preserve_range=True)
        image = _pad_to(image, size, "symmetric")
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def fitted_shape(shape, size, keep_aspect):
    """The (height, width) an image of ``shape`` is resized to inside ``size``.

    ``size`` itself unless ``keep_aspect`` and the aspect ratios differ by
    more than a pixel's rounding; then the largest shape of the image's
    aspect that fits (the rest is padding).
    """
    if not keep_aspect:
        return tuple(size)
    (height, width), (target_h, target_w) = shape, size
    scale = min(target_h / height, target_w / width)
    inner = (
        min(target_h, max(1, round(height * scale))),
        min(target_w, max(1, round(width * scale))),
    )
    if abs(inner[0] - target_h) <= 1 and abs(inner[1] - target_w) <= 1:
        return tuple(size)
    return inner


def _pad_to(array, size, mode, **kwargs):
    """``array`` centred in ``size`` (height, width), padded by ``mode``."""
    rows, cols = size[0] - array.shape[0], size[1] - array.shape[1]
    if rows == cols == 0:
        return array
    pad = [(rows // 2, rows - rows // 2), (cols // 2, cols - cols // 2)]
    return np.pad(array, pad + [(0, 0)] * (array.ndim - 2), mode=mode, **kwargs)


#: PIL modes read as one channel (:func:`read_image` drops alpha).
_GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def file_header(path):
    """``((height, width), colour)`` of an image file from its header, or None.

    ``colour`` is whether :func:`read_image` gives three channels (RGB, RGBA,
    CMYK and palette files); None when the file cannot be read.
    """
    try:
        with Image.open(path) as pil:
            width, height = pil.size
            turned = int(pil.getexif().get(274, 1)) in (5, 6, 7, 8)
            colour = pil.mode not in _GREY_MODES
    except Exception:  # noqa: BLE001 - the reader reports unreadable files
        return None
    return ((width, height) if turned else (height, width)), colour


def file_shape(path):
    """(height, width) of an image file from its header, or None if unreadable."""
    header = file_header(path)
    return None if header is None else header[0]


def target_shape(shapes, image_size, keep_aspect=True):
    """The one (height, width) every image of a data set is resized to.

    Parameters
    ----------
    shapes : list of (int, int) or None
        The data set's files' (height, width), as :func:`file_shape` reads
        them from their headers (None for a file it cannot read).
    image_size : None, int or (int, int)
        None keeps the file sizes (returned as None); a pair is the shape;
        an int is the side of a square, or with ``keep_aspect`` the short
        side, the long one following the most common aspect ratio of the
        files (rounded to the nearest pixel).
    keep_aspect : bool, default=True
        Keep the files' aspect ratio (see above).

    Returns
    -------
    tuple of (int, int) or None
    """
    size = check_size(image_size)
    if size is None or not keep_aspect or not np.isscalar(image_size):
        return size
    shapes = [s for s in shapes if s is not None]
    if not shapes:
        return size
    ratios = Counter(round(w / h, 2) for h, w in shapes)
    ratio = ratios.most_common(1)[0][0]
    height, width = next(s for s in shapes if round(s[1] / s[0], 2) == ratio)
    side = size[0]
    if height <= width:
        return side, max(side, round(side * width / height))
    return max(side, round(side * height / width)), side


def n_padded(shapes, size, keep_aspect):
    """How many files of these (height, width) ``shapes`` (:func:`file_shape`;
    None: unknown) :func:`read_image` pads to fit ``size``."""
    if size is None or not keep_aspect:
        return 0
    known = [s for s in shapes if s is not None]
    return sum(fitted_shape(s, size, True) != tuple(size) for s in known)


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


def read_mask(path, *, image_size=None, keep_aspect=False):
    """One mask as bool (H, W), binarised by :func:`binarize_mask` (lossy: JPEG).

    Palette files are read as their indices (not their colours); a file
    with an alpha channel that varies is read by its alpha (the painted,
    opaque region is the defect, whatever its colour); other colour files by
    their brightest channel per pixel. Resizing uses the nearest neighbour
    only, so masks stay binary, and fits and pads (with False) as
    :func:`read_image` does with ``keep_aspect``. An unreadable file raises
    ValueError naming it.
    """
    try:
        with Image.open(path) as pil:
            mask = _upright(np.asarray(pil), int(pil.getexif().get(274, 1)))
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
        inner = fitted_shape(mask.shape, size, keep_aspect)
        mask = resize(mask, inner, order=0, anti_aliasing=False).astype(bool)
        mask = _pad_to(mask, size, "constant", constant_values=False)
    return mask


def read_images(paths, *, image_size=None, color=None, keep_aspect=False, n_jobs=None):
    """Stack images into (n, H, W) or (n, H, W, 3) float32.

    ``image_size`` is the shape of every image (see :func:`read_image` for
    ``keep_aspect``; :func:`target_shape` chooses one for a data set).
    Greyscale files are promoted to RGB when any file is in colour (unless
    ``color="gray"``). Raises ValueError naming two files of different sizes
    when ``image_size`` is None and sizes differ.
    """
    check_size(image_size)
    check_color(color)
    images = Parallel(n_jobs=n_jobs)(
        delayed(read_image)(
            p, image_size=image_size, color=color, keep_aspect=keep_aspect
        )
        for p in paths
    )
    if color is None and any(im.ndim == 3 for im in images):
        images = [skcolor.gray2rgb(im) if im.ndim == 2 else im for im in images]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        first = images[0].shape
        other = next(i for i, im in enumerate(images) if im.shape != first)
        raise ValueError(
            f"images have different sizes ({paths[0]}: {first}, {paths[other]}: "
            f"{images[other].shape}); pass image_size (--image-size) to resize them."
        )
    return np.stack(images)
