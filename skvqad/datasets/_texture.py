"""Built-in default data: real texture photographs with synthetic defects."""

import numpy as np
from skimage import data as skdata
from skimage import draw
from skimage.transform import rescale
from sklearn.utils import Bunch, check_random_state

TEXTURES = ("brick", "grass", "gravel")
DEFECT_TYPES = ("scratch", "hole", "stain", "patch")

#: Fraction of the photograph's rows (from the top) that training tiles come from.
_TRAIN_BAND = 0.6


def _photograph(texture, scale):
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}.")
    photo = getattr(skdata, texture)().astype(np.float32) / 255.0
    if scale != 1.0:
        photo = rescale(photo, scale, anti_aliasing=True).astype(np.float32)
    return photo


def _tiles(photo, n, size, rows, rng):
    """``n`` random ``size`` x ``size`` tiles whose rows lie within ``rows``."""
    low, high = rows
    if high - low < size or photo.shape[1] < size:
        raise ValueError(
            f"image_size={size} does not fit in the {high - low}x{photo.shape[1]} "
            "band of the photograph; lower image_size or raise scale."
        )
    ys = rng.integers(low, high - size + 1, n)
    xs = rng.integers(0, photo.shape[1] - size + 1, n)
    return np.stack([photo[y : y + size, x : x + size] for y, x in zip(ys, xs)])


def _scratch(tile, rng):
    size = tile.shape[0]
    r0, c0, r1, c1 = rng.integers(0, size, 4)
    while abs(r1 - r0) + abs(c1 - c0) < size // 2:
        r0, c0, r1, c1 = rng.integers(0, size, 4)
    mask = np.zeros(tile.shape, bool)
    width = int(rng.integers(1, 3))
    for offset in range(width):
        rr, cc = draw.line(r0, c0 + offset, r1, min(c1 + offset, size - 1))
        mask[rr, np.clip(cc, 0, size - 1)] = True
    value = 0.95 if rng.random() < 0.5 else 0.05
    return np.where(mask, value, tile), mask


def _hole(tile, rng):
    size = tile.shape[0]
    radius = rng.uniform(0.06, 0.14) * size
    center = rng.uniform(radius, size - radius, 2)
    mask = np.zeros(tile.shape, bool)
    mask[draw.disk(tuple(center), radius, shape=tile.shape)] = True
    return np.where(mask, rng.uniform(0.0, 0.08), tile), mask


def _stain(tile, rng):
    """A smooth blob that darkens or brightens; non-zero exactly on its mask."""
    size = tile.shape[0]
    radius = rng.uniform(0.12, 0.25) * size
    center = rng.uniform(radius, size - radius, 2)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - center[0], xx - center[1])
    mask = r < radius
    alpha = np.clip(3.0 * (1.0 - r / radius), 0.0, 1.0)  # flat core, soft rim
    target = 0.15 if rng.random() < 0.5 else 0.9
    out = tile + rng.uniform(0.6, 0.9) * alpha * (target - tile)
    return out.astype(np.float32), mask


def _patch(tile, rng, other):
    size = tile.shape[0]
    h, w = (rng.uniform(0.2, 0.4, 2) * size).astype(int) + 2
    top, left = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
    src_top = rng.integers(0, other.shape[0] - h + 1)
    src_left = rng.integers(0, other.shape[1] - w + 1)
    mask = np.zeros(tile.shape, bool)
    mask[draw.ellipse(top + h / 2, left + w / 2, h / 2, w / 2, shape=tile.shape)] = True
    source = np.zeros_like(tile)
    source[top : top + h, left : left + w] = other[
        src_top : src_top + h, src_left : src_left + w
    ]
    return np.where(mask, source, tile), mask


def make_texture_defects(
    texture="brick",
    *,
    n_train=200,
    n_test=64,
    image_size=64,
    scale=0.5,
    random_state=None,
):
    """Tiles of a real texture photograph, with synthetic defects in the test set.

    Normal tiles are cut at random from the top 60 % of one of the CC0 texture
    photographs bundled with scikit-image (``skimage.data.brick``, ``grass``
    or ``gravel``, 512x512 greyscale), downscaled by ``scale``. Test tiles
    come from the bottom 40 %, which no training tile overlaps. Half of the
    test tiles (every other one) get one defect, chosen in turn from:

    - ``"scratch"``: a straight line 1-2 px wide, near black or near white;
    - ``"hole"``: a dark disc;
    - ``"stain"``: a blob with a soft rim that darkens or brightens the texture;
    - ``"patch"``: an ellipse pasted from another of the three textures.

    Each defect's mask marks exactly the pixels it changed.

    Parameters
    ----------
    texture : {"brick", "grass", "gravel"}, default="brick"
        The photograph.
    n_train : int, default=200
        Number of normal training tiles, >= 1.
    n_test : int, default=64
        Number of test tiles, >= 2; ``n_test // 2`` of them are defective.
    image_size : int, default=64
        Side of the square tiles, in pixels of the downscaled photograph,
        >= 16 (smaller tiles cannot hold every defect kind).
    scale : float, default=0.5
        Downscaling factor of the 512x512 photograph, in (0, 1].
    random_state : int, RandomState instance or None, default=None
        Seeds tile positions and defects; an int makes the output
        deterministic.

    Returns
    -------
    data : sklearn.utils.Bunch
        - ``X_train`` : ndarray of shape (n_train, image_size, image_size),
          float32 in [0, 1];
        - ``X_test`` : ndarray of shape (n_test, image_size, image_size),
          float32 in [0, 1];
        - ``y_test`` : ndarray of shape (n_test,), int64; 1 = anomalous;
        - ``masks_test`` : ndarray of shape (n_test, image_size, image_size),
          bool; True on defect pixels, all False for normal tiles;
        - ``defect_types`` : ndarray of shape (n_test,), str; ``"good"`` or
          one of the defect names above;
        - ``DESCR`` : str.

    Raises
    ------
    ValueError
        If ``texture`` is unknown, a count is too small, or ``image_size``
        does not fit in the training or test band.

    Examples
    --------
    >>> from skvqad.datasets import make_texture_defects
    >>> data = make_texture_defects(n_train=4, n_test=4, random_state=0)
    >>> data.X_train.shape, data.y_test.tolist()
    ((4, 64, 64), [0, 1, 0, 1])
    """
    for name, value, low in (
        ("n_train", n_train, 1),
        ("n_test", n_test, 2),
        ("image_size", image_size, 16),
    ):
        if (
            not isinstance(value, (int, np.integer))
            or isinstance(value, bool)
            or (value < low)
        ):
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}.")
    rng = np.random.default_rng(check_random_state(random_state).randint(2**31 - 1))
    photo = _photograph(texture, scale)
    split = int(round(_TRAIN_BAND * photo.shape[0]))
    X_train = _tiles(photo, n_train, image_size, (0, split), rng)
    X_test = _tiles(photo, n_test, image_size, (split, photo.shape[0]), rng)
    others = [_photograph(t, scale) for t in TEXTURES if t != texture]
    masks = np.zeros(X_test.shape, dtype=bool)
    kinds = np.array(["good"] * n_test, dtype=object)
    makers = {"scratch": _scratch, "hole": _hole, "stain": _stain}
    for k, i in enumerate(range(1, n_test, 2)):
        kind = DEFECT_TYPES[k % len(DEFECT_TYPES)]
        if kind == "patch":
            other = others[k // len(DEFECT_TYPES) % len(others)]
            X_test[i], masks[i] = _patch(X_test[i], rng, other)
        else:
            X_test[i], masks[i] = makers[kind](X_test[i], rng)
        kinds[i] = kind
    X_test = np.clip(X_test, 0.0, 1.0).astype(np.float32)
    return Bunch(
        X_train=X_train,
        X_test=X_test,
        y_test=masks.any(axis=(1, 2)).astype(np.int64),
        masks_test=masks,
        defect_types=kinds.astype(str),
        DESCR=(
            f"Tiles of skimage.data.{texture}() (CC0) at scale {scale}: "
            f"{n_train} normal training tiles from the top {_TRAIN_BAND:.0%} of "
            f"the photograph, {n_test} test tiles from the rest, every other one "
            "with a synthetic defect and its exact mask."
        ),
    )
