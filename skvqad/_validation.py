"""Input validation for batches of images."""

import numpy as np
from sklearn.utils import check_array

_INTEGER_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def check_images(X, *, input_name="X"):
    """Validate a batch of images and return it as float32 in [0, 1].

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width), \
(n_samples, height, width, channels) or (n_samples, n_features)
        Images, channels last. ``uint8`` is divided by 255, ``uint16`` by
        65535, ``bool`` becomes 0/1; floating values must already lie in
        [0, 1]. A 2-D array holds one image per row, read as a greyscale image
        of height 1 and width ``n_features``.
    input_name : str, default="X"
        Name used in error messages.

    Returns
    -------
    ndarray of shape (n_samples, height, width, channels), float32
        A new array; ``X`` is never modified.

    Raises
    ------
    ValueError
        If ``X`` is empty, ragged (images of mixed sizes), not 2-, 3- or 4-D,
        contains NaN or infinity, or holds floats outside [0, 1].
    TypeError
        If the dtype is neither floating, bool, uint8 nor uint16.
    """
    try:
        X = check_array(
            X,
            accept_sparse=False,
            dtype=None,
            allow_nd=True,
            ensure_all_finite=True,
            input_name=input_name,
        )
    except ValueError as exc:
        if "inhomogeneous" in str(exc):
            raise ValueError(
                f"{input_name} holds images of mixed sizes or channel counts; "
                "resize them to one size first."
            ) from exc
        raise
    if X.ndim not in (2, 3, 4):
        raise ValueError(
            f"{input_name} must be (n_samples, height, width), (n_samples, height, "
            f"width, channels) or (n_samples, n_features); got {X.ndim}-D shape "
            f"{X.shape}."
        )
    if X.dtype in _INTEGER_SCALES:
        out = X.astype(np.float32) / np.float32(_INTEGER_SCALES[X.dtype])
    elif X.dtype.kind == "b":
        out = X.astype(np.float32)
    elif X.dtype.kind == "f":
        low, high = float(X.min()), float(X.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"Floating-point {input_name} must lie in [0, 1], got values in "
                f"[{low:.4g}, {high:.4g}]; scale the images first (e.g. divide "
                "8-bit values by 255)."
            )
        out = X.astype(np.float32)  # always a copy
    else:
        raise TypeError(
            f"{input_name} has dtype {X.dtype}; expected uint8, uint16, bool or "
            "floating values in [0, 1]."
        )
    if out.ndim == 2:
        out = out[:, np.newaxis, :]
    if out.ndim == 3:
        out = out[..., np.newaxis]
    return out
