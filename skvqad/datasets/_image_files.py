"""Image files as a lazy sequence: data sets larger than memory.

:class:`ImageFiles` holds paths, not pixels: an image is read (scikit-image
I/O, :func:`~._io.read_image`) when it is indexed, so that the detector's
``fit``, ``score_samples`` and ``anomaly_map`` draw batches of files through
a torch :class:`~torch.utils.data.DataLoader` (with worker processes if
asked) and their memory does not grow with the number of images.
"""

import os
from collections.abc import Sequence
from numbers import Integral

import numpy as np
from skimage import color as skcolor

from ._io import check_color, check_size, file_header, read_image

__all__ = ["ImageFiles", "as_image_files"]


class ImageFiles(Sequence):
    """A sequence of image files, each read when it is indexed.

    Pass it (or a plain list of paths) wherever the detector takes images:
    :meth:`~skvqad.VQVAEAnomalyDetector.fit`, ``score_samples``,
    ``anomaly_map``, ``predict``, ``reconstruct``. The files are then read
    in batches, by a torch ``DataLoader`` with ``num_workers`` worker
    processes, so that memory stays bounded however many files there are;
    the same files give the same network and the same scores as the array of
    their images (:func:`numpy.asarray` of the sequence).

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files (any format scikit-image reads: PNG, JPEG, TIFF, BMP).
    image_size : int, (int, int) or None, default=None
        Resize every image to this (height, width), in pixels, with
        anti-aliasing (``keep_aspect``); None keeps the files' size, which
        must then be the same for all.
    color : {None, "gray", "rgb"}, default=None
        None gives three channels when any file is in colour (greyscale ones
        are repeated), else one; "gray" or "rgb" converts every image.
    keep_aspect : bool, default=False
        With ``image_size``: fit each image inside it and pad by mirror
        reflection instead of stretching it (as the ``load_*`` loaders do).
    num_workers : int, default=0
        Worker processes that read files while the network works (torch
        ``DataLoader`` ``num_workers``), >= 0; 0 reads in the calling process.
        At most the cores left free by training; ignored (0) inside a joblib
        or Dask worker process, such as one fit of a parallel grid search.

    Attributes
    ----------
    paths : tuple of str
    shape : tuple of int
        ``(n_images, height, width, channels)``, from the files' headers
        (read once, at first use); raises ValueError as :meth:`check` does.
    dtype : numpy.dtype
        float32: images come as floats in [0, 1].

    Examples
    --------
    >>> from skvqad.datasets import ImageFiles
    >>> files = ImageFiles(["a.png", "b.png"], image_size=64)
    >>> len(files), files[1:].paths
    (2, ('b.png',))
    """

    dtype = np.dtype(np.float32)
    ndim = 4

    def __init__(
        self, paths, *, image_size=None, color=None, keep_aspect=False, num_workers=0
    ):
        if isinstance(paths, (str, bytes, os.PathLike)):
            raise TypeError(
                f"paths must be a sequence of image paths, got one path {paths!r}; "
                "pass [path]."
            )
        paths = tuple(paths)
        for path in paths:
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(
                    f"paths must hold str or path-like objects, got "
                    f"{type(path).__name__} {path!r}."
                )
        self.paths = tuple(os.fspath(p) for p in paths)
        self.image_size = check_size(image_size)
        check_color(color)
        self.color = color
        self.keep_aspect = bool(keep_aspect)
        if (
            not isinstance(num_workers, Integral)
            or isinstance(num_workers, bool)
            or num_workers < 0
        ):
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}.")
        self.num_workers = int(num_workers)
        self._shape = None

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, key):
        """One image for an int; an ImageFiles of the selected files otherwise.

        ``files[i]`` is an ndarray of shape (height, width, channels),
        float32 in [0, 1]; a slice, an int array or a boolean mask selects
        files (as scikit-learn's cross-validation indexes its data).
        """
        if isinstance(key, tuple) and all(k is Ellipsis for k in key[1:]):
            key = key[0]  # X[indices, ...], as scikit-learn indexes arrays
        if isinstance(key, Integral):
            if not -len(self) <= key < len(self):
                raise IndexError(f"index {key} is out of range for {len(self)} files.")
            return self._read(self.paths[key])
        if isinstance(key, slice):
            selected = self.paths[key]
        else:
            key = np.asarray(key)
            if key.dtype == bool:
                if key.shape != (len(self),):
                    raise IndexError(
                        f"boolean index of shape {key.shape} for {len(self)} files."
                    )
                key = np.flatnonzero(key)
            elif key.dtype.kind not in "iu" or key.ndim != 1:
                raise IndexError(
                    "ImageFiles takes an int, a slice, or a 1-D int or boolean array, "
                    f"got {key!r}."
                )
            selected = [self.paths[i] for i in key]
        subset = ImageFiles(
            selected,
            image_size=self.image_size,
            color=self.color,
            keep_aspect=self.keep_aspect,
            num_workers=self.num_workers,
        )
        if self._shape is not None:  # the headers were read: the shape carries over
            subset._shape = (len(subset), *self._shape[1:])
        return subset

    @property
    def shape(self):
        """``(n_images, height, width, channels)``, from the files' headers."""
        return self.check() if self._shape is None else self._shape

    def check(self):
        """Read every file's header: the shape the images will have (kept).

        Returns
        -------
        tuple of int
            ``(n_images, height, width, channels)``.

        Raises
        ------
        ValueError
            If there is no file, a file cannot be read, or (without
            ``image_size``) two files differ in size; each naming the files.
        """
        if not self.paths:
            raise ValueError("ImageFiles holds no file: pass at least one path.")
        headers = []
        for path in self.paths:
            header = file_header(path)
            if header is None:
                read_image(path)  # raises ValueError naming the file and why
                raise ValueError(f"cannot read the header of image file {path}.")
            headers.append(header)
        size = self.image_size
        if size is None:
            shapes = [shape for shape, _ in headers]
            other = next((i for i, s in enumerate(shapes) if s != shapes[0]), None)
            if other is not None:
                raise ValueError(
                    f"images have different sizes ({self.paths[0]}: {shapes[0]}, "
                    f"{self.paths[other]}: {shapes[other]}); pass image_size to "
                    "resize them."
                )
            size = shapes[0]
        if self.color is None:
            channels = 3 if any(colour for _, colour in headers) else 1
        else:
            channels = 3 if self.color == "rgb" else 1
        self._shape = (len(self.paths), *size, channels)
        return self._shape

    def _read(self, path):
        image = read_image(
            path,
            image_size=self.image_size,
            color=self.color,
            keep_aspect=self.keep_aspect,
        )
        channels = self.shape[-1]
        if image.ndim == 2 and channels == 3:
            image = skcolor.gray2rgb(image)  # as read_images promotes grey files
        if image.ndim == 2:
            image = image[..., np.newaxis]
        if image.shape != self.shape[1:]:
            raise ValueError(
                f"image file {path} reads as shape {image.shape}, not "
                f"{self.shape[1:]} as its header and the other files said "
                "(height, width, channels); pass color= or image_size=."
            )
        return image

    def __array__(self, dtype=None, copy=None):
        if not self.paths:
            raise ValueError("ImageFiles holds no file.")
        images = np.stack([self[i] for i in range(len(self))])
        return images if dtype is None else images.astype(dtype)

    def __repr__(self):
        first = f"{self.paths[0]!r}, ..." if self.paths else ""
        return f"ImageFiles([{first}] {len(self)} files, image_size={self.image_size})"


def as_image_files(X):
    """``X`` as an :class:`ImageFiles` if it is one or holds paths, else None.

    A list, tuple or 1-D string/object array whose items are all str or
    path-like is taken for image paths; anything else (arrays of pixels,
    tensors, lists of arrays) gives None.
    """
    if isinstance(X, ImageFiles):
        return X
    if isinstance(X, (str, bytes, os.PathLike)):
        raise TypeError(
            f"X is one path {X!r}; pass a list of image paths, or an array of images."
        )
    if isinstance(X, np.ndarray):
        if X.ndim != 1 or X.dtype.kind not in "UO":
            return None
        X = X.tolist()
    if not isinstance(X, (list, tuple)):
        return None
    if not X:
        raise ValueError("X is empty: pass at least one image or image path.")
    if any(isinstance(item, bytes) for item in X):
        raise TypeError("image paths must be str or path-like, not bytes.")
    is_path = [isinstance(item, (str, os.PathLike)) for item in X]
    if all(is_path):
        return ImageFiles(X)
    if any(is_path):
        raise TypeError(
            "X mixes image paths with other items; pass paths only, or images only."
        )
    return None
