"""Anomaly maps of Gangloff et al. (2022): SSIM map, alignment map, SSIM+AM.

Pure, batched torch functions: they run on the device and in the floating
dtype of their inputs (use float32 on a GPU), keep no state, and treat every
image of a batch independently (no per-batch normalisation), so an image's map
does not depend on the other images it is scored with.

References
----------
.. [Gangloff2022] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
   Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
   Detection", 2022. https://hal.science/hal-03541964
.. [Wang2004] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
   assessment: from error visibility to structural similarity", IEEE Trans.
   Image Process. 13(4), 600-612, 2004. doi:10.1109/TIP.2003.819861
"""

import math
from numbers import Integral

import torch
import torch.nn.functional as F

from ._model import squared_distances
from ._validation import check_tensor

__all__ = [
    "alignment_map",
    "gaussian_filter",
    "grey_dilation",
    "ssim_am_map",
    "ssim_map",
    "upsample_alignment_map",
]


_CHANNEL_REDUCTIONS = ("mean", "min", "luminance")
#: ITU-R BT.709 luma weights, as in ``skimage.color.rgb2gray``.
_LUMA_WEIGHTS = (0.2125, 0.7154, 0.0721)


def _symmetric_index(n, before, after, device):
    """Indices of a length-``n`` axis padded in scipy's ``mode='reflect'``.

    ``(d c b a | a b c d | d c b a)``, repeated as often as needed, so that
    pads larger than ``n`` work too.
    """
    idx = torch.arange(-before, n + after, device=device) % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _symmetric_pad_axis(x, dim, before, after):
    n = x.shape[dim]
    if before <= n and after <= n:  # flipped slices: fast, the common case
        parts = [x.narrow(dim, 0, before).flip(dim), x]
        parts.append(x.narrow(dim, n - after, after).flip(dim))
        return torch.cat(parts, dim=dim)
    return x.index_select(dim, _symmetric_index(n, before, after, x.device))


def symmetric_pad(x, top, bottom, left, right):
    """Pad the last two axes of ``x`` by half-sample symmetric reflection."""
    x = _symmetric_pad_axis(x, x.ndim - 2, top, bottom)
    return _symmetric_pad_axis(x, x.ndim - 1, left, right)


def _window_1d(win_size, gaussian_weights, sigma, dtype, device):
    if gaussian_weights:
        r = torch.arange(win_size, dtype=torch.float64) - (win_size - 1) / 2
        w = torch.exp(-0.5 * (r / sigma) ** 2)
    else:
        w = torch.ones(win_size, dtype=torch.float64)
    return (w / w.sum()).to(dtype=dtype, device=device)


#: Elements of the unfolded buffer one batch of :func:`gaussian_filter` may
#: need (2**25: 256 MiB in float64).
_UNFOLD_ELEMENTS = 2**25


#: Sides, in window lengths, up to which a separable filter runs as matrix
#: products (:func:`_axis_matrix`): their cost grows with the side, a
#: convolution's with the window; on a CPU the products were faster up to
#: about 24 window lengths (float32, 2 cores: 8x at 256 px with 65 taps,
#: 1.9x with 11; even at about 500 px with 11 taps).
_MATMUL_TAPS = 24


def _filter(x, window):
    """Separable filter of ``(n, c, H, W)`` by ``window`` with symmetric edges.

    Two matrix products (one matrix per axis, reflections included) for
    maps up to ``_MATMUL_TAPS`` window lengths a side, two one-channel
    convolutions of the padded maps otherwise: the same values up to float
    rounding.
    """
    height, width = x.shape[-2:]
    if max(height, width) <= _MATMUL_TAPS * window.numel():
        return _axis_matrix(height, window) @ x @ _axis_matrix(width, window).T
    p = (window.numel() - 1) // 2
    c = x.shape[1]
    x = symmetric_pad(x, p, p, p, p)
    x = F.conv2d(x, window.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, window.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def _axis_matrix(n, window):
    """The (n, n) matrix of the 1-D filter ``window`` with symmetric edges.

    Row ``i`` holds the weight of every input sample in output sample ``i``:
    the filter applied to the identity, reflected as :func:`symmetric_pad`
    reflects.
    """
    radius = (window.numel() - 1) // 2
    eye = torch.eye(n, dtype=window.dtype, device=window.device)
    padded = _symmetric_pad_axis(eye, 0, radius, radius)  # (n + 2 radius, n)
    columns = F.conv1d(padded.T.unsqueeze(1), window.view(1, 1, -1))
    return columns.squeeze(1).T


def gaussian_filter(maps, sigma, truncate=4.0):
    """Gaussian smoothing of a batch of maps: ``scipy.ndimage.gaussian_filter``.

    Separable, with half-sample symmetric edges (scipy's ``mode='reflect'``)
    and the kernel truncated at ``truncate`` standard deviations, as scipy
    does, so that each map is smoothed independently and as in scipy. The
    kernel's radius is also capped at twice the map's larger side (a wider
    Gaussian only sees more reflections of the same map), so that a huge
    ``sigma`` costs no more memory than the map; up to that cap the result
    is scipy's. Maps of sides up to 24 kernel lengths are filtered by two
    matrix products (the filter along each axis, reflections included, as a
    matrix: several times faster than a one-channel convolution on a CPU,
    the same values up to float rounding); larger ones by separable
    convolution, in batches, so that memory stays bounded however many
    there are.

    Parameters
    ----------
    maps : torch.Tensor of shape (n, H, W), floating
    sigma : float
        Standard deviation, in pixels, > 0.
    truncate : float, default=4.0
        Kernel radius in standard deviations.

    Returns
    -------
    torch.Tensor of shape (n, H, W), dtype of ``maps``

    Raises
    ------
    ValueError
        If ``maps`` is not 3-D or ``sigma`` is not positive.
    TypeError
        If ``maps`` is not a floating-point tensor.
    """
    check_tensor(maps, "maps", ndim=3)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}.")
    radius = min(int(truncate * float(sigma) + 0.5), 2 * max(maps.shape[-2:]))
    window = _window_1d(2 * radius + 1, True, float(sigma), maps.dtype, maps.device)
    height, width = maps.shape[-2:]
    if max(height, width) <= _MATMUL_TAPS * window.numel():  # no unfolding
        return _filter(maps.unsqueeze(1), window).squeeze(1)
    # Convolutions without a fast kernel (float64 on the CPU) unfold each
    # padded map times the window's length: batches bound that buffer. Fast
    # kernels (float32) need only the padded maps: fewer, larger batches.
    slow = maps.dtype == torch.float64 and maps.device.type == "cpu"
    padded = (height + 2 * radius) * (width + 2 * radius)
    step = max(1, _UNFOLD_ELEMENTS // (padded * (window.numel() if slow else 4)))
    chunks = [_filter(c.unsqueeze(1), window).squeeze(1) for c in maps.split(step)]
    return torch.cat(chunks)


def ssim_map(
    image1,
    image2,
    *,
    data_range,
    win_size=11,
    gaussian_weights=True,
    sigma=1.5,
    use_sample_covariance=True,
    K1=0.01,
    K2=0.03,
    channel_reduction="mean",
):
    """Local SSIM between two batches of images, averaged over channels (Eq. 5).

    ``SSIM = (2 mu_p mu_q + c1)(2 sigma_pq + c2) /
    ((mu_p^2 + mu_q^2 + c1)(sigma_p^2 + sigma_q^2 + c2))`` with
    ``c1 = (K1 * data_range)^2`` and ``c2 = (K2 * data_range)^2`` [Wang2004]_, computed
    in a window around every pixel, per channel, then averaged over channels
    (``channel_reduction`` chooses another reduction). The SM anomaly map of
    [Gangloff2022]_ is ``1 - ssim_map(x, x_hat, data_range=1)``.

    With the same settings it agrees with
    ``skimage.metrics.structural_similarity(..., full=True)`` (whose full map
    is averaged over channels here), borders included: the local statistics
    are computed with half-sample symmetric edges, scipy's ``mode='reflect'``.

    Parameters
    ----------
    image1, image2 : torch.Tensor of shape (n, C, H, W), floating
        The two batches, same shape, dtype and device.
    data_range : float
        Dynamic range of the images, in their units (1.0 for images in
        [0, 1]). Required, as in scikit-image, to avoid a silent guess.
    win_size : int, default=11
        Side of the square window, in pixels; odd, >= 1.
    gaussian_weights : bool, default=True
        If True the window is a Gaussian of standard deviation ``sigma``
        truncated to ``win_size`` pixels, as in [Wang2004]_ (scikit-image's
        ``gaussian_weights=True`` with ``win_size = 2 * int(3.5 * sigma + 0.5)
        + 1``, i.e. 11 for ``sigma=1.5``); else uniform.
    sigma : float, default=1.5
        Standard deviation of the Gaussian window, in pixels, > 0.
    use_sample_covariance : bool, default=True
        Scale variances and covariance by ``N / (N - 1)``, ``N = win_size**2``,
        as scikit-image does by default.
    K1, K2 : float, default=0.01, 0.03
        Stability constants of [Wang2004]_.
    channel_reduction : {"mean", "min", "luminance"}, default="mean"
        How the channels of colour images make one map: the mean of the
        per-channel SSIM maps (scikit-image's ``channel_axis``), their
        minimum (the worst-reconstructed channel at each pixel), or the SSIM
        of the two images' luminance ``0.2125 R + 0.7154 G + 0.0721 B``
        (the weights of ``skimage.color.rgb2gray``, ITU-R BT.709), computed
        once. All three agree for one-channel images.

    Returns
    -------
    torch.Tensor of shape (n, H, W), dtype of the inputs
        Local SSIM, in [-1, 1]; 1 where the images agree.

    Raises
    ------
    ValueError
        If the shapes differ, the tensors are not 4-D or have an empty
        dimension, ``win_size`` is not an odd integer >= 1, ``sigma <= 0``,
        ``channel_reduction`` is not one of the three, or it is
        ``"luminance"`` and the images have neither 1 nor 3 channels.
    TypeError
        If the inputs are not floating-point tensors of one dtype and device.
    """
    check_tensor(image1, "image1", ndim=4)
    check_tensor(image2, "image2", ndim=4, like=image1)
    if image1.shape != image2.shape:
        raise ValueError(
            "image1 and image2 must be 4-D tensors (n, C, H, W) of the same shape, "
            f"got {tuple(image1.shape)} and {tuple(image2.shape)}."
        )
    if not isinstance(win_size, Integral) or win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 1, got {win_size}.")
    if gaussian_weights and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}.")
    if channel_reduction not in _CHANNEL_REDUCTIONS:
        raise ValueError(
            f"channel_reduction must be one of {_CHANNEL_REDUCTIONS}, "
            f"got {channel_reduction!r}."
        )
    if channel_reduction == "luminance":
        image1, image2 = _luminance(image1), _luminance(image2)
    window = _window_1d(win_size, gaussian_weights, sigma, image1.dtype, image1.device)
    n_channels = image1.shape[1]
    # Moments of images centred on image1's mean (per image and channel): the
    # (co)variances are shift invariant, and centring keeps E[x^2] - E[x]^2
    # from losing float32 digits to cancellation.
    shift = image1.mean(dim=(-2, -1), keepdim=True)
    x1, x2 = image1 - shift, image2 - shift
    # One filtering pass for the five local moments, stacked along channels.
    moments = torch.cat([x1, x2, x1 * x1, x2 * x2, x1 * x2], dim=1)
    mu1, mu2, m11, m22, m12 = _filter(moments, window).split(n_channels, dim=1)
    n_points = win_size**2
    cov_norm = (
        n_points / (n_points - 1) if use_sample_covariance and n_points > 1 else 1.0
    )
    var1 = cov_norm * (m11 - mu1 * mu1)
    var2 = cov_norm * (m22 - mu2 * mu2)
    cov12 = cov_norm * (m12 - mu1 * mu2)
    mu1, mu2 = mu1 + shift, mu2 + shift
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    ssim = ((2 * mu1 * mu2 + c1) * (2 * cov12 + c2)) / (
        (mu1 * mu1 + mu2 * mu2 + c1) * (var1 + var2 + c2)
    )
    if channel_reduction == "min":
        return ssim.amin(dim=1)
    return ssim.mean(dim=1)


def check_luminance_channels(n_channels):
    """Raise ValueError unless luminance SSIM can use ``n_channels`` (1 or 3)."""
    if n_channels not in (1, 3):
        raise ValueError(
            "The luminance SSIM (channel reduction 'luminance') needs images "
            f"with 1 or 3 channels, got {n_channels}."
        )


def _luminance(images):
    """(n, 1, H, W) luminance of (n, 1 or 3, H, W) images (BT.709 weights)."""
    check_luminance_channels(images.shape[1])
    if images.shape[1] == 1:
        return images
    weights = images.new_tensor(_LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def alignment_map(z_e, codebook):
    """Alignment map AM (Eq. 6 of [Gangloff2022]_): distance to the nearest code.

    ``AM[i, y, x] = min_m ||z_e[i, :, y, x] - codebook[m]||^2``.

    Parameters
    ----------
    z_e : torch.Tensor of shape (n, D, h, w), floating
        Encoder output.
    codebook : torch.Tensor of shape (M, D), floating
        Codebook vectors, same dtype and device as ``z_e``.

    Returns
    -------
    torch.Tensor of shape (n, h, w), dtype of ``z_e``
        Squared Euclidean distance, >= 0, in the units of the latent space.

    Raises
    ------
    ValueError
        If the shapes do not match or a dimension is 0.
    TypeError
        If the inputs are not floating-point tensors of one dtype and device.
    """
    check_tensor(z_e, "z_e", ndim=4)
    check_tensor(codebook, "codebook", ndim=2, like=z_e)
    if z_e.shape[1] != codebook.shape[1]:
        raise ValueError(
            "z_e must be (n, D, h, w) and codebook (M, D) with the same D, got "
            f"{tuple(z_e.shape)} and {tuple(codebook.shape)}."
        )
    return squared_distances(z_e, codebook).amin(dim=-1).clamp_min(0.0)


def grey_dilation(maps, size):
    """Grey dilation by a flat square, batched: ``scipy.ndimage.grey_dilation(size=)``.

    Each output pixel is the maximum of the input over a ``size`` by ``size``
    square (a flat structuring element: nothing is added to the values, unlike
    ``structure=np.ones(...)``). For an even ``size`` the square is placed as
    scipy places it. Edges behave as scipy's default ``mode='reflect'``, which
    for a maximum is the same as ignoring pixels outside the image.

    Parameters
    ----------
    maps : torch.Tensor of shape (n, H, W), floating
        Maps to dilate, each independently.
    size : int
        Side of the square, in pixels, >= 1; 1 returns the input unchanged.

    Returns
    -------
    torch.Tensor of shape (n, H, W), dtype of ``maps``

    Raises
    ------
    ValueError
        If ``maps`` is not 3-D, has an empty dimension, or ``size`` is not an
        integer >= 1.
    TypeError
        If ``maps`` is not a floating-point tensor.
    """
    check_tensor(maps, "maps", ndim=3)
    if not isinstance(size, Integral) or size < 1:
        raise ValueError(f"size must be an integer >= 1, got {size!r}.")
    if size == 1:
        return maps
    # scipy's grey_dilation mirrors the element: for an even size the window
    # covers offsets -(size//2 - 1) .. size//2.
    before = (size - 1) // 2
    after = size - 1 - before
    if size % 2 == 0:
        before, after = after - 1, before + 1
    padded = F.pad(maps.unsqueeze(1), (before, after, before, after), value=-math.inf)
    # The maximum over a square is separable: rows, then columns.
    rows = F.max_pool2d(padded, kernel_size=(1, size), stride=1)
    return F.max_pool2d(rows, kernel_size=(size, 1), stride=1).squeeze(1)


def ssim_am_map(
    ssim,
    am,
    *,
    scale_factor,
    dilation_size=7,
    upsampling="nearest",
    ssim_dilation_size=1,
):
    """SSIM+AM anomaly map of [Gangloff2022]_, Section II-C and Fig. 1.

    The alignment map is upsampled by ``scale_factor`` (then cropped to the
    SSIM map's top-left ``H`` by ``W``, for inputs that were padded on the
    bottom and right), grey-dilated by a flat ``dilation_size`` square, and
    multiplied with the SM anomaly map ``1 - ssim`` (itself optionally
    grey-dilated by ``ssim_dilation_size``, as [Gangloff2022]_ does for UCSD Ped1).

    Parameters
    ----------
    ssim : torch.Tensor of shape (n, H, W), floating
        Local SSIM from :func:`ssim_map`, in [-1, 1].
    am : torch.Tensor of shape (n, h, w), floating
        Alignment map from :func:`alignment_map`, >= 0, with
        ``h * scale_factor >= H`` and ``w * scale_factor >= W``.
    scale_factor : int
        Ratio of image to latent size, ``2**n_downsampling``.
    dilation_size : int, default=7
        Side of the flat square dilating the upsampled AM, in pixels, >= 1.
    upsampling : {"nearest", "bilinear"}, default="nearest"
        Interpolation of the AM upsampling.
    ssim_dilation_size : int, default=1
        Side of the flat square dilating ``1 - ssim``, in pixels; 1 = none.

    Returns
    -------
    torch.Tensor of shape (n, H, W), dtype of the inputs
        ``dilate(1 - ssim) * dilate(upsample(am))``, >= 0; higher is more
        anomalous. Its unit is that of the AM (squared latent distance).

    Raises
    ------
    ValueError
        If the shapes are inconsistent or ``upsampling`` is unknown.
    TypeError
        If the inputs are not floating-point tensors of one dtype and device.
    """
    check_tensor(ssim, "ssim", ndim=3)
    check_tensor(am, "am", ndim=3, like=ssim)
    if ssim.shape[0] != am.shape[0]:
        raise ValueError(
            f"ssim holds {ssim.shape[0]} maps but am {am.shape[0]}; they must match."
        )
    sm = grey_dilation(1.0 - ssim, ssim_dilation_size)
    return sm * upsample_alignment_map(
        am,
        output_size=ssim.shape[-2:],
        scale_factor=scale_factor,
        upsampling=upsampling,
        dilation_size=dilation_size,
    )


def upsample_alignment_map(am, *, output_size, scale_factor, upsampling, dilation_size):
    """Upsample, crop and grey-dilate an alignment map to image size.

    Parameters
    ----------
    am : torch.Tensor of shape (n, h, w), floating
        Alignment map.
    output_size : tuple of int (H, W)
        Image size; ``H <= h * scale_factor`` and ``W <= w * scale_factor``.
    scale_factor : int
        Upsampling factor, >= 1.
    upsampling : {"nearest", "bilinear"}
        Interpolation mode.
    dilation_size : int
        Side of the flat dilation square, in pixels, >= 1.

    Returns
    -------
    torch.Tensor of shape (n, H, W), dtype of ``am``

    Raises
    ------
    ValueError
        If ``output_size`` or ``scale_factor`` are not positive integers, the
        upsampled map cannot cover ``output_size``, or ``upsampling`` is
        unknown.
    TypeError
        If ``am`` is not a floating-point tensor.
    """
    if upsampling not in ("nearest", "bilinear"):
        raise ValueError(
            f"upsampling must be 'nearest' or 'bilinear', got {upsampling!r}."
        )
    check_tensor(am, "am", ndim=3)
    if not isinstance(scale_factor, Integral) or scale_factor < 1:
        raise ValueError(f"scale_factor must be an integer >= 1, got {scale_factor!r}.")
    height, width = output_size
    if not all(isinstance(v, Integral) and v >= 1 for v in (height, width)):
        raise ValueError(f"output_size must be two integers >= 1, got {output_size}.")
    if am.shape[-2] * scale_factor < height or am.shape[-1] * scale_factor < width:
        raise ValueError(
            f"An alignment map of shape {tuple(am.shape)} upsampled by "
            f"{scale_factor} cannot cover an image of size {height}x{width}."
        )
    kwargs = {"align_corners": False} if upsampling == "bilinear" else {}
    up = F.interpolate(
        am.unsqueeze(1), scale_factor=scale_factor, mode=upsampling, **kwargs
    ).squeeze(1)
    return grey_dilation(up[:, :height, :width], dilation_size)
