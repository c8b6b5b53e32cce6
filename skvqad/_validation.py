"""Input validation for batches of images."""

import multiprocessing
import warnings

import numpy as np
import torch
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import check_array
from sklearn.utils.validation import validate_data

#: Bound on min-max scaled tabular values (training rows lie in [0, 1]).
_TABULAR_CLIP = 1e3

#: Channel counts of grey, RGB and RGBA images: a 4-D input with one of these
#: in axis 1 and none in axis 3 is taken for channels-first and refused.
_CHANNEL_COUNTS = (1, 3, 4)

_INTEGER_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def check_images(X, *, input_name="X", keep_uint8=False):
    """Validate a batch of images and return it as float32 in [0, 1].

    Parameters
    ----------
    X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels)
        Images, channels last. ``uint8`` is divided by 255, ``uint16`` by
        65535, ``bool`` becomes 0/1; floating values must already lie in
        [0, 1]. (2-D tabular input is handled by the estimator itself.)
    input_name : str, default="X"
        Name used in error messages.
    keep_uint8 : bool, default=False
        Return uint8 images as uint8 (a view of ``X``, channels axis added),
        for code that converts each batch with :func:`as_unit_float`.

    Returns
    -------
    ndarray of shape (n_samples, height, width, channels), float32 (or uint8)
        A new float32 array (or, with ``keep_uint8``, a view of a uint8
        ``X``); ``X`` is never modified.

    Raises
    ------
    ValueError
        If ``X`` is empty (or an image dimension is 0), ragged (images of
        mixed sizes), not 3- or 4-D (1-D input included), contains NaN or
        infinity, holds floats outside [0, 1], or looks channels-first: 4-D
        with 1, 3 or 4 in axis 1 and more than 4 in axis 3
        (``(n, 3, 32, 32)``); move the channels last.
        Also if it is 3-D with 3 or 4 in axis 2 and more than 4 in axis 1 (one
        ``(H, W, 3)`` colour image without the batch axis).
    TypeError
        If the dtype is neither floating, bool, uint8 nor uint16.
    """
    if _flat(X):
        raise ValueError(
            f"{input_name} must be images (n_samples, height, width[, "
            f"channels]); got {np.asarray(X).ndim}-D input of shape "
            f"{np.asarray(X).shape}."
        )
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
    if X.ndim not in (3, 4):
        raise ValueError(
            f"{input_name} must be (n_samples, height, width) or (n_samples, "
            f"height, width, channels); got {X.ndim}-D shape {X.shape}."
        )
    if 0 in X.shape[1:]:
        raise ValueError(f"{input_name} has an empty dimension: shape {X.shape}.")
    if X.ndim == 3 and X.shape[2] in (3, 4) and X.shape[1] > 4:
        raise ValueError(
            f"{input_name} has shape {X.shape}: one colour image without the "
            f"batch axis? Pass {input_name}[np.newaxis] (shape (1, "
            f"{X.shape[0]}, {X.shape[1]}, {X.shape[2]})). Greyscale images "
            "(n_samples, height, width) must be more than 4 pixels wide."
        )
    if X.ndim == 4 and X.shape[1] in _CHANNEL_COUNTS and X.shape[3] not in (1, 2, 3, 4):
        raise ValueError(
            f"{input_name} has shape {X.shape}, which looks channels-first "
            f"(n_samples, channels, height, width), the torch habit; images must "
            f"be channels last (n_samples, height, width, channels). Pass "
            f"np.moveaxis({input_name}, 1, -1) (for a tensor, "
            f"{input_name}.permute(0, 2, 3, 1))."
        )
    if X.dtype.kind == "f":
        low, high = float(X.min()), float(X.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"Floating-point {input_name} must lie in [0, 1], got values in "
                f"[{low:.4g}, {high:.4g}]; scale the images first (e.g. divide "
                "8-bit values by 255)."
            )
    elif X.dtype not in _INTEGER_SCALES and X.dtype.kind != "b":
        raise TypeError(
            f"{input_name} has dtype {X.dtype}; expected uint8, uint16, bool or "
            "floating values in [0, 1]."
        )
    # uint8 kept as it is: no float32 copy of the set, 4x less to hold and
    # to move to a device; each batch is divided there (as_unit_float).
    out = X if keep_uint8 and X.dtype == np.uint8 else unit_float32(X)
    if out.ndim == 3:
        out = out[..., np.newaxis]
    return out


def tensor_of(array):
    """``torch.from_numpy(array)``, also for a read-only array (a memory map).

    torch warns that writing to such a tensor is undefined; skvqad never
    writes to the tensors it makes of the user's images, so that warning is
    silenced here rather than copying the array.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array)


def as_unit_float(batch):
    """A batch tensor as float32 in [0, 1]: uint8 divided by 255, as
    :func:`unit_float32` divides (the same float32 values); others as they are."""
    if batch.dtype == torch.uint8:
        return batch.float() / 255.0
    return batch


def unit_float32(X):
    """Pixel values as float32 in [0, 1]: the one integer-to-float conversion.

    Parameters
    ----------
    X : ndarray of uint8, uint16, bool or floating dtype
        Pixel values; floats must already lie in [0, 1] (not checked).

    Returns
    -------
    ndarray of X's shape, float32
        A new array: uint8 divided by 255, uint16 by 65535 (in float32,
        so that files and arrays of the same pixels agree bit for bit),
        bool as 0 / 1, floats cast. ``X`` is not modified.
    """
    out = X.astype(np.float32)  # always a copy
    if X.dtype in _INTEGER_SCALES:
        out /= np.float32(_INTEGER_SCALES[X.dtype])
    return out


def check_tensor(tensor, name, *, ndim=None, like=None):
    """Check a floating torch tensor (and its match with ``like``) for map functions.

    Raises
    ------
    TypeError
        If ``tensor`` is not a floating-point ``torch.Tensor``, or its dtype or
        device differs from ``like``'s.
    ValueError
        If its number of dimensions is not ``ndim`` or a dimension is 0.
    """
    import torch

    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}.")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {tensor.dtype}.")
    if ndim is not None and tensor.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(tensor.shape)}.")
    if 0 in tensor.shape:
        raise ValueError(f"{name} has an empty dimension: shape {tuple(tensor.shape)}.")
    if like is not None and (tensor.dtype, tensor.device) != (like.dtype, like.device):
        raise TypeError(
            f"{name} is {tensor.dtype} on {tensor.device}, but the other input is "
            f"{like.dtype} on {like.device}; use one dtype and device."
        )


def tensor_to_array(X):
    """A torch tensor as a numpy array (detached, on the CPU); anything else as is.

    The tensor is read, never changed; float16 and bfloat16 become float32
    (numpy has no bfloat16).
    """
    if not isinstance(X, torch.Tensor):
        return X
    X = X.detach().cpu()
    if X.dtype in (torch.bfloat16, torch.float16):
        X = X.float()
    return X.numpy()


def _flat(X):
    """Whether ``X`` is a scalar or a 1-D sequence (not images)."""
    if hasattr(X, "ndim"):
        return X.ndim < 2
    try:
        return np.asarray(X).ndim < 2
    except ValueError:  # ragged nested lists: check_array explains
        return False


def is_tabular(X):
    """Whether ``X`` is 2-D (n_samples, n_features) data rather than images."""
    if hasattr(X, "ndim"):
        return X.ndim == 2
    try:
        return np.asarray(X).ndim == 2
    except ValueError:  # ragged nested lists: check_images explains
        return False


def check_device(device):
    """The torch device string to use for ``device`` ("auto" or a torch device).

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA when available, else the CPU) or a torch device
        string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``device`` is not a torch device, is ``"meta"``, or names CUDA or
        MPS where it is not available.
    """
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise ValueError(
            f"device={device!r} is not a torch device ('auto', 'cpu', "
            "'cuda', 'cuda:1', ...)."
        ) from exc
    if kind == "meta":
        raise ValueError("device='meta' holds no data; use 'cpu' or 'cuda'.")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available here.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available here; use "
            "device='auto' or 'cpu'."
        )
    return device


def tabular_as_images(estimator, X, *, reset):
    """2-D rows as (n, 1, n_features, 1) images, min-max scaled on the training rows.

    Parameters
    ----------
    estimator : BaseEstimator
        Gets ``n_features_in_`` (scikit-learn's ``validate_data``) and, with
        ``reset``, ``scaler_`` (a fitted
        :class:`~sklearn.preprocessing.MinMaxScaler`).
    X : array-like of shape (n_samples, n_features)
    reset : bool
        True at fit time.

    Returns
    -------
    ndarray of shape (n_samples, 1, n_features, 1), float32
        Scaled values, clipped to [-1000, 1000] so that rows far outside the
        training range stay far and float32-finite.

    Raises
    ------
    ValueError
        If ``X`` is invalid, has another number of features than at fit time,
        or the estimator was fitted on images.
    """
    if not reset and not hasattr(estimator, "scaler_"):
        raise ValueError(
            "X is 2-D (n_samples, n_features), but the detector was fitted on "
            "images (n_samples, height, width[, channels]); for one image, "
            "pass X[None] (a batch of one)."
        )
    X = validate_data(
        estimator, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_samples=1
    )
    if reset:
        estimator.scaler_ = MinMaxScaler().fit(X)
    scaled = np.clip(estimator.scaler_.transform(X), -_TABULAR_CLIP, _TABULAR_CLIP)
    return scaled.astype(np.float32)[:, np.newaxis, :, np.newaxis]


def check_detector_input(estimator, X, *, reset, files=None):
    """A detector's input as (n, H, W, C) float32 images, or as image files.

    Parameters
    ----------
    estimator : VQVAEAnomalyDetector
        With ``reset`` (at fit time) it gets ``n_channels_`` (and, for 2-D
        input, the attributes of :func:`tabular_as_images`); otherwise its
        ``n_channels_`` is checked.
    X : array-like or tensor
        Images (:func:`check_images`) or 2-D tabular rows; ignored when
        ``files`` is given.
    reset : bool
        True at fit time.
    files : ImageFiles or None, default=None
        ``X`` as image files (:func:`skvqad.datasets._image_files.as_image_files`),
        checked from the files' headers and read later, in batches.

    Returns
    -------
    ndarray of shape (n, H, W, C), float32 (uint8 kept as uint8), or ImageFiles

    Raises
    ------
    ValueError
        As :func:`check_images`; if a file cannot be read or files differ
        in size; if the channel count differs from the training images'; if
        2-D input follows images (or images follow 2-D input).
    """
    if files is None:
        X = tensor_to_array(X)
    # A 1-D row for a detector fitted on rows: scikit-learn's message.
    row = not reset and hasattr(estimator, "scaler_") and _flat(X)
    if files is None and (is_tabular(X) or row):
        images = tabular_as_images(estimator, X, reset=reset)
    else:
        images = check_images(X, keep_uint8=True) if files is None else files
        images.shape  # noqa: B018 - image files: reads the headers, raises
        if reset:
            for attribute in ("n_features_in_", "feature_names_in_", "scaler_"):
                estimator.__dict__.pop(attribute, None)
        elif hasattr(estimator, "scaler_"):
            raise ValueError(
                "The detector was fitted on 2-D (n_samples, n_features) data; "
                "pass 2-D data with the same features."
            )
    channels = images.shape[-1]
    if not reset and channels != estimator.n_channels_:
        raise ValueError(
            f"X has {channels} channel(s), but the detector was fitted "
            f"on images with {estimator.n_channels_} channel(s)."
        )
    if reset:
        estimator.n_channels_ = channels
    return images


def reading_workers(dataset):
    """How many worker processes a ``DataLoader`` over ``dataset`` may start.

    ``dataset.num_workers`` (0 when it has none), except in a process started
    by :mod:`multiprocessing` (a joblib or Dask worker running one fit of a
    grid search), which reads in the process itself: such processes may not
    start children (Dask's are daemonic, loky's have their own start method),
    and their cores are taken by the other fits. What is read is the same.
    """
    if multiprocessing.parent_process() is not None:
        return 0
    return int(getattr(dataset, "num_workers", 0))
