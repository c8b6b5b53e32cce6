"""VQ-VAE image anomaly detector (Gangloff et al., 2022) as a scikit-learn estimator."""

import copy
import os
import threading
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_memory, validate_data
from skorch.callbacks import Callback, ProgressBar
from torch.distributions import ContinuousBernoulli

from ._maps import (
    _check_luminance_channels,
    _symmetric_pad,
    grey_dilation,
    ssim_am_map,
    ssim_map,
    upsample_alignment_map,
)
from ._model import VQVAE, VQVAELoss
from ._net import DeadCodeRestart, VQVAENet
from ._validation import check_images

__all__ = ["VQVAEAnomalyDetector"]

_GLOBAL_RNG_LOCK = threading.Lock()

#: Bound on min-max scaled tabular values (training rows lie in [0, 1]).
_TABULAR_CLIP = 1e3

#: Parameters that change the scores of a trained network (and so ``offset_``).
_SCORING_PARAMS = (
    "anomaly_map_type",
    "dilation_size",
    "upsampling",
    "alignment_normalization",
    "alignment_distance",
    "reconstruction",
    "ssim_win_size",
    "ssim_gaussian_weights",
    "ssim_k1",
    "ssim_k2",
    "ssim_channel_reduction",
    "ssim_dilation_size",
    "score_pooling",
    "contamination",
)

#: Parameters that change the trained network; the others only post-process.
_TRAINING_PARAMS = (
    "n_downsampling",
    "n_residual_layers",
    "hidden_channels",
    "n_embeddings",
    "embedding_dim",
    "beta",
    "codebook_update",
    "restart_dead_codes",
    "augment",
    "augment_rotation",
    "max_epochs",
    "batch_size",
    "lr",
    "optimizer",
    "callbacks",
)


class _EpochCounter(Callback):
    """Counts the epochs that run in one training call."""

    def on_train_begin(self, net, **kwargs):
        self.n_epochs_ = 0

    def on_epoch_end(self, net, **kwargs):
        self.n_epochs_ += 1


class _StoppedEarly(Exception):
    """Training ended before ``max_epochs``; carries the net, is never cached."""

    def __init__(self, net, n_epochs):
        super().__init__(n_epochs)
        self.net, self.n_epochs = net, n_epochs


def _plain(value):
    """numpy scalars as Python numbers (for stable cache keys)."""
    return value.item() if isinstance(value, np.generic) else value


def _is_tabular(X):
    """Whether ``X`` is 2-D (n_samples, n_features) data rather than images."""
    if hasattr(X, "ndim"):
        return X.ndim == 2
    try:
        return np.asarray(X).ndim == 2
    except ValueError:  # ragged nested lists: check_images explains
        return False


def _train_net(X, training_params, seed, device, verbose):
    """Build and train a :class:`VQVAENet` on padded (n, C, H, W) float32 ``X``.

    Module level so that ``joblib.Memory`` can cache it: the key is the data,
    the training parameters, the seed and the device (not ``verbose``).
    """
    p = training_params
    counter = _EpochCounter()
    # The counter runs before the user's callbacks, which may stop training.
    # A copy: skorch sets attributes on callbacks, and the user's objects
    # (a constructor parameter and part of the cache key) must not change.
    callbacks = [("epochs_run", counter), *copy.deepcopy(p["callbacks"] or [])]
    if p["restart_dead_codes"]:
        callbacks.insert(1, ("restart_dead_codes", DeadCodeRestart(seed=seed)))
    if verbose >= 2:
        callbacks.append(("progress", ProgressBar()))
    net = VQVAENet(
        module=VQVAE,
        module__in_channels=X.shape[1],
        module__hidden_channels=int(p["hidden_channels"]),
        module__n_embeddings=int(p["n_embeddings"]),
        module__embedding_dim=int(p["embedding_dim"]),
        module__n_downsampling=int(p["n_downsampling"]),
        module__n_residual_layers=int(p["n_residual_layers"]),
        module__ema_decay=0.99 if p["codebook_update"] == "ema" else None,
        criterion=VQVAELoss,
        criterion__beta=float(p["beta"]),
        optimizer=p["optimizer"],
        lr=float(p["lr"]),
        max_epochs=int(p["max_epochs"]),
        batch_size=int(p["batch_size"]),
        train_split=None,
        iterator_train__shuffle=True,
        # Batch order from a generator of our own, not torch's global one.
        iterator_train__generator=torch.Generator().manual_seed(seed),
        callbacks=callbacks,
        augment=p["augment"],
        augment_rotation=float(p["augment_rotation"]),
        augment_seed=seed,
        device=device,
        verbose=int(verbose),
    )
    # Weight and codebook initialisation draw from torch's global RNG. Seed it
    # in a forked state (the user's state comes back untouched), under a lock
    # so that fits in parallel threads cannot interleave their draws.
    forked = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=forked, device_type="cuda"):
        torch.manual_seed(seed)
        net.initialize()
    # skorch ends training quietly on Ctrl-C (KeyboardInterrupt) and early
    # stopping callbacks; such a net is returned through an exception so that
    # joblib.Memory does not cache it.
    try:
        net.partial_fit(X, y=None)  # trains max_epochs epochs; no re-initialisation
    finally:  # training-only state, not worth pickling
        net.module_.quantizer._last_z_e = None
        net.augment_generator_ = None
    if counter.n_epochs_ < int(p["max_epochs"]):
        raise _StoppedEarly(net, counter.n_epochs_)
    return net


class VQVAEAnomalyDetector(OutlierMixin, BaseEstimator):
    """Image anomaly detector from the inner metrics of a VQ-VAE.

    The method of Gangloff et al. (2022) [1]_. :meth:`fit` trains a VQ-VAE
    (:class:`~skvqad.VQVAE`) on normal images only, with skorch. At test time
    two maps are built per image: SM, the anomaly ``1 - SSIM`` between the
    image and its reconstruction (the continuous Bernoulli mean of the decoder
    output), and AM, the alignment map, the distance between the encoder
    output and its nearest codebook vector (squared in the paper, see
    ``alignment_distance``), upsampled to image size and grey-dilated. The
    anomaly map is SM x AM ("SSIM+AM"), and an image's score is the mean of
    its map.

    Parameters
    ----------
    n_downsampling : int, default=3
        Stride-2 convolutions in the encoder (and transposed ones in the
        decoder), >= 1. The latent grid is the image size divided by
        ``2**n_downsampling``. [1]_ uses 3 at 256x256 and 2 for 32x32 and
        128x128 images.
    n_residual_layers : int, default=3
        Residual layers in the encoder and the decoder, >= 0.
    hidden_channels : int, default=256
        Channels of every hidden convolution, >= 1.
    n_embeddings : int, default=512
        Codebook size ``M``, >= 1.
    embedding_dim : int, default=256
        Codebook vector dimension ``D``, >= 1.
    beta : float, default=0.25
        Weight of the commitment term in the loss (Eq. 4 of [1]_), >= 0.
    codebook_update : {"ema", "loss"}, default="ema"
        How the codebook learns: ``"ema"`` by exponential moving averages
        (decay 0.99) of the encoder outputs assigned to each vector (van den
        Oord et al., 2017, Appendix A.1); ``"loss"`` by the alignment term of
        the loss (Eq. 4 of [1]_, as in the paper). See Notes for why the
        default departs from the paper.
    restart_dead_codes : bool, default=True
        At the end of every training epoch but the last, move the codebook
        vectors that no latent position selected during the epoch onto
        encoder outputs drawn from the last batch (random restarts,
        Dhariwal et al., 2020). Not in the paper.
    augment : {"hflip", "flips", None}, default="hflip"
        Random flips of the training images, per image with probability 1/2:
        left-right (``"hflip"``), left-right and up-down (``"flips"``), or
        none. Not in the paper.
    augment_rotation : float, default=0.0
        Largest random rotation of a training image, in degrees, in
        [0, 180]: each image turns about its centre by an angle drawn
        uniformly in ``[-augment_rotation, augment_rotation]`` (bilinear,
        reflected at the borders), after the flips. 0 (no rotation) as in the
        paper.
    anomaly_map_type : {"ssim+am", "ssim", "am"}, default="ssim+am"
        The map returned by :meth:`anomaly_map` and averaged by
        :meth:`score_samples`: SM x AM, SM alone (``1 - SSIM``) or the
        upsampled, dilated AM alone.
    dilation_size : int, default=7
        Side, in image pixels, of the flat square that grey-dilates the
        upsampled AM, >= 1 (1 = no dilation).
    upsampling : {"nearest", "bilinear"}, default="nearest"
        Interpolation that brings the AM to image size.
    alignment_distance : {"euclidean", "squared"}, default="euclidean"
        What the AM holds at each latent position: the distance from the
        encoder output to its nearest codebook vector, or its square as in
        Eq. 6 of [1]_ (the root is taken after ``alignment_normalization``).
        The root narrows the AM's range, so that in SM x AM a few far latent
        vectors weigh less against the SSIM map. Not in the paper: see
        Notes.
    alignment_normalization : {None, "per_code"}, default=None
        None uses the AM as it is, as in [1]_. ``"per_code"`` divides each
        latent position's squared distance by the mean squared distance of
        the training latent vectors that selected
        the same codebook vector (``code_alignment_``), so that codes that
        stand for busy content, which sit farther from their vectors even on
        normal images, do not dominate the map; the map is then unitless.
        Not in the paper.
    reconstruction : {"mean", "probs"}, default="mean"
        The reconstruction compared with the image by SSIM: the mean of the
        decoder's continuous Bernoulli distribution (Loaiza-Ganem and
        Cunningham, 2019, Eq. 5) or its parameter ``sigmoid(logits)``.
    ssim_win_size : int, default=11
        Side of the SSIM window, in pixels; odd, >= 3.
    ssim_gaussian_weights : bool, default=True
        Gaussian window of standard deviation 1.5 pixels (Wang et al. 2004)
        if True, else uniform.
    ssim_k1, ssim_k2 : float, default=0.01, 0.03
        SSIM stabilising constants ``c1 = (ssim_k1 * L)^2`` and
        ``c2 = (ssim_k2 * L)^2`` with data range ``L = 1`` (Wang et al.,
        2004), in (0, 1]. [1]_, Eq. 5, states ``c1 = 0.01`` and ``c2 = 0.03``
        literally, i.e. ``ssim_k1=0.1``, ``ssim_k2=0.03**0.5``.
    ssim_channel_reduction : {"mean", "min", "luminance"}, default="mean"
        How colour images give one SSIM map: the mean of the per-channel
        maps (as scikit-image's ``structural_similarity`` with
        ``channel_axis``), their minimum (worst channel), or the SSIM of the
        two images' luminance (BT.709 weights of ``skimage.color.rgb2gray``;
        needs 1 or 3 channels). No effect on one-channel images. The paper
        does not say how it reduces channels.
    ssim_dilation_size : int, default=1
        Side of the flat square that grey-dilates the SM map, >= 1 (1 = none;
        [1]_ dilates it for UCSD Ped1).
    score_pooling : {"mean", "max"}, default="mean"
        How an image's anomaly map becomes its score in
        :meth:`score_samples`: its mean over pixels, as in [1]_, or its
        maximum.
    max_epochs : int, default=100
        Training epochs (passes over the training images), >= 1.
    batch_size : int, default=16
        Images per training and scoring batch, >= 1.
    lr : float, default=2e-4
        Learning rate, > 0.
    optimizer : type, default=torch.optim.Adam
        A ``torch.optim.Optimizer`` class, instantiated by skorch.
    device : str, default="auto"
        Torch device for training and scoring: ``"auto"`` is ``"cuda"`` when
        available, else ``"cpu"``; or any torch device string.
    contamination : "auto" or float, default="auto"
        Sets the threshold ``offset_`` on the training scores. A float in
        (0, 0.5] is the fraction of training images to call outliers. With
        ``"auto"``, an image is an outlier when its score lies more than three
        robust standard deviations (1.4826 x median absolute deviation) below
        the median training score.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation and the batch shuffling. Makes results
        reproducible on the CPU; on CUDA, cuDNN's non-deterministic kernels
        can still make two runs differ slightly. The global torch and numpy
        random states are left as they were.
    callbacks : list or None, default=None
        Extra skorch callbacks for training, as for
        :class:`skorch.NeuralNet` (callback instances or ``(name, callback)``
        tuples). For example ``[Checkpoint(dirname=d, monitor="train_loss_best"),
        LoadInitState(...)]`` saves the network as it trains and resumes a
        stopped training from the last checkpoint (there is no validation
        split, so monitor ``train_loss_best``).
    memory : str, path-like, joblib.Memory or None, default=None
        Caches the trained network, as ``Pipeline(memory=...)`` caches
        transformers: the key is the training images, the training
        parameters (architecture, ``beta``, ``codebook_update``,
        ``restart_dead_codes``, ``augment``, ``augment_rotation``,
        ``max_epochs``, ``batch_size``,
        ``lr``, ``optimizer``, ``callbacks``), the seed drawn from
        ``random_state`` and the device. A training that stops early is not
        cached. Refitting with only post-processing parameters changed
        (``anomaly_map_type``, ``dilation_size``, ``upsampling``,
        ``alignment_normalization``, ``alignment_distance``,
        ``reconstruction``, ``ssim_*``,
        ``score_pooling``, ``contamination``),
        as a grid search does, then loads the network
        instead of training it. Needs an int ``random_state`` to hit the
        cache. None caches nothing.
    verbose : int, default=0
        0 is silent; 1 prints skorch's per-epoch table; 2 also shows skorch's
        progress bar.

    Attributes
    ----------
    net_ : VQVAENet
        The trained skorch net; its ``module_`` is the :class:`~skvqad.VQVAE`
        and its ``history`` the training log.
    n_channels_ : int
        Channels of the training images.
    n_features_in_ : int
        Number of features when fitted on 2-D ``(n_samples, n_features)``
        input; absent when fitted on images.
    scaler_ : sklearn.preprocessing.MinMaxScaler
        The per-feature scaling of 2-D input; absent when fitted on images.
    image_shape_ : tuple of int
        ``(height, width)`` of the training images (``(1, n_features)`` for
        2-D input). Other sizes can be scored too.
    offset_ : float
        Threshold on :meth:`score_samples`; ``decision_function = score_samples
        - offset_``.
    codebook_usage_ : float
        Fraction, in [0, 1], of the codebook vectors selected at least once
        over the training images, in evaluation mode (batch normalisation
        with its running statistics, as when scoring). After very short
        trainings it can be far lower than the training ``perplexity``
        suggests, since the running statistics lag behind the batches'.
    code_alignment_ : ndarray of shape (n_embeddings,), float32
        Mean AM (squared latent distance, > 0) of the training latent vectors
        that selected each codebook vector; the overall mean for vectors that
        none selected. Used by ``alignment_normalization="per_code"``; stored
        in the network (``net_.module_.quantizer.code_alignment``), so it is
        saved and loaded with ``net_.save_params`` / ``load_params``.

    See Also
    --------
    skvqad.ssim_map, skvqad.alignment_map, skvqad.ssim_am_map : the maps.
    sklearn.ensemble.IsolationForest : the outlier-detector API this follows.

    Notes
    -----
    Input images are channels last, as in scikit-image: ``(n, H, W)`` or
    ``(n, H, W, C)``. ``uint8`` values are divided by 255, ``uint16`` by
    65535; floating values must already lie in [0, 1]. A ``torch.Tensor`` is
    read as such an array (detached and copied to the CPU; it is not changed).

    A 2-D input ``(n_samples, n_features)`` is tabular data: each row becomes
    a greyscale image of height 1 and width ``n_features``, after per-feature
    min-max scaling fitted on the training rows
    (:class:`~sklearn.preprocessing.MinMaxScaler`; later rows may fall
    outside [0, 1], which is allowed since the likelihood is used for
    training only; scaled values are clipped to [-1000, 1000]). Any numeric
    dtype is accepted there. This is what lets
    scikit-learn's tabular tools and estimator checks drive the detector;
    for images use 3-D or 4-D arrays.

    Any height and width work: images are padded on the
    bottom and right by symmetric reflection to a multiple of
    ``2**n_downsampling`` (and at least ``2**(n_downsampling + 1)``), and
    maps and reconstructions are cropped back to the input size.

    The loss sums each term over an image's pixels or latent entries and
    averages over the batch (:func:`skvqad.vq_vae_loss_terms`).

    Departures from the paper, and why. Trained as in the paper (codebook by
    the loss, no restarts), the codebook collapses: on MVTec AD grid with the
    paper's model on a GPU, 8 % of the 512 vectors were ever selected, and the
    AM alone reached a pixel ROC-AUC of only 0.63, so that SSIM+AM (0.855)
    fell below SSIM (0.861). EMA updates with dead-code restarts keep the
    whole codebook in use (100 %), the AM alone rises to 0.84 and SSIM+AM to
    0.91 (SSIM 0.88; squared AM with per-code normalisation, the defaults
    then). Left-right flips help less and are kept because they
    did not hurt on average over the sets measured. On CIFAR-10 the squared
    distances of Eq. 6 let the AM dominate SM x AM, and the AM alone ranks the
    other classes *below* normal for some classes (automobile 0.33 image
    ROC-AUC with the reduced model on a CPU), so SSIM+AM only tied SSIM on
    the ten-class mean (0.595 vs 0.591); the plain distance
    (``alignment_distance="euclidean"``) gives 0.609 with the same networks,
    at a cost of 0.02 pixel ROC-AUC on MVTec AD grid (0.761 vs 0.782, still
    above SSIM's 0.698) (``benchmarks/RESULTS.md``). The paper's setting is
    ``codebook_update="loss", restart_dead_codes=False, augment=None,
    alignment_distance="squared"``. ``codebook_usage_`` and the per-epoch
    ``perplexity`` and ``restarted_codes`` in ``net_.history`` show how much
    of the codebook is used.

    Pressing Ctrl-C during :meth:`fit` stops training (skorch's behaviour)
    and leaves a fitted detector with the network as it was, with a warning
    giving the number of epochs that ran. A fitted detector pickles and
    ``joblib.dump`` s as a whole; one trained on CUDA loads on a machine without
    CUDA onto the CPU, with skorch's warning. The network's weights alone are
    saved with ``detector.net_.save_params(f_params="vqvae.pt")`` and loaded
    into a detector fitted with the same architecture and
    ``codebook_update`` (the EMA codebook has two more buffers) with
    ``detector.net_.load_params(f_params="vqvae.pt")`` (``offset_`` then
    still comes from that detector's own training images).

    References
    ----------
    .. [1] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
       Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
       Detection", 2022. https://hal.science/hal-03541964

    Examples
    --------
    >>> import numpy as np
    >>> from skvqad import VQVAEAnomalyDetector
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(0.4, 0.6, size=(8, 16, 16)).astype(np.float32)
    >>> detector = VQVAEAnomalyDetector(
    ...     n_downsampling=2, n_residual_layers=1, hidden_channels=8,
    ...     n_embeddings=16, embedding_dim=4, max_epochs=1, random_state=0,
    ... ).fit(X)
    >>> detector.anomaly_map(X[:2]).shape
    (2, 16, 16)
    >>> detector.predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        "n_downsampling": [Interval(Integral, 1, None, closed="left")],
        "n_residual_layers": [Interval(Integral, 0, None, closed="left")],
        "hidden_channels": [Interval(Integral, 1, None, closed="left")],
        "n_embeddings": [Interval(Integral, 1, None, closed="left")],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "codebook_update": [StrOptions({"loss", "ema"})],
        "restart_dead_codes": ["boolean"],
        "augment": [None, StrOptions({"hflip", "flips"})],
        "augment_rotation": [Interval(Real, 0, 180, closed="both")],
        "anomaly_map_type": [StrOptions({"ssim+am", "ssim", "am"})],
        "dilation_size": [Interval(Integral, 1, None, closed="left")],
        "upsampling": [StrOptions({"nearest", "bilinear"})],
        "reconstruction": [StrOptions({"mean", "probs"})],
        "alignment_normalization": [None, StrOptions({"per_code"})],
        "alignment_distance": [StrOptions({"squared", "euclidean"})],
        "ssim_win_size": [Interval(Integral, 3, None, closed="left")],
        "ssim_gaussian_weights": ["boolean"],
        "ssim_k1": [Interval(Real, 0, 1, closed="right")],
        "ssim_k2": [Interval(Real, 0, 1, closed="right")],
        "ssim_channel_reduction": [StrOptions({"mean", "min", "luminance"})],
        "ssim_dilation_size": [Interval(Integral, 1, None, closed="left")],
        "score_pooling": [StrOptions({"mean", "max"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [type],
        "device": [str],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "random_state": ["random_state"],
        "callbacks": [list, None],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        *,
        n_downsampling=3,
        n_residual_layers=3,
        hidden_channels=256,
        n_embeddings=512,
        embedding_dim=256,
        beta=0.25,
        codebook_update="ema",
        restart_dead_codes=True,
        augment="hflip",
        augment_rotation=0.0,
        anomaly_map_type="ssim+am",
        dilation_size=7,
        upsampling="nearest",
        alignment_normalization=None,
        alignment_distance="euclidean",
        reconstruction="mean",
        ssim_win_size=11,
        ssim_gaussian_weights=True,
        ssim_k1=0.01,
        ssim_k2=0.03,
        ssim_channel_reduction="mean",
        ssim_dilation_size=1,
        score_pooling="mean",
        max_epochs=100,
        batch_size=16,
        lr=2e-4,
        optimizer=torch.optim.Adam,
        device="auto",
        contamination="auto",
        random_state=None,
        callbacks=None,
        memory=None,
        verbose=0,
    ):
        self.n_downsampling = n_downsampling
        self.n_residual_layers = n_residual_layers
        self.hidden_channels = hidden_channels
        self.n_embeddings = n_embeddings
        self.embedding_dim = embedding_dim
        self.beta = beta
        self.codebook_update = codebook_update
        self.restart_dead_codes = restart_dead_codes
        self.augment = augment
        self.augment_rotation = augment_rotation
        self.anomaly_map_type = anomaly_map_type
        self.dilation_size = dilation_size
        self.upsampling = upsampling
        self.alignment_normalization = alignment_normalization
        self.alignment_distance = alignment_distance
        self.reconstruction = reconstruction
        self.ssim_win_size = ssim_win_size
        self.ssim_gaussian_weights = ssim_gaussian_weights
        self.ssim_k1 = ssim_k1
        self.ssim_k2 = ssim_k2
        self.ssim_channel_reduction = ssim_channel_reduction
        self.ssim_dilation_size = ssim_dilation_size
        self.score_pooling = score_pooling
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.device = device
        self.contamination = contamination
        self.random_state = random_state
        self.callbacks = callbacks
        self.memory = memory
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the VQ-VAE on normal images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels) or (n_samples, n_features)
            Normal (defect-free) training images; see Notes of the class for
            dtypes and sizes. Converted to float32 in [0, 1].
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : VQVAEAnomalyDetector
            The fitted estimator.

        Raises
        ------
        ValueError
            If ``X`` is empty, not 2-, 3- or 4-D, holds images of mixed sizes,
            contains NaN or infinity, or holds floats outside [0, 1]; if a
            parameter is invalid, ``device`` is not a torch device, or it asks
            for CUDA where there is none.
        TypeError
            If the dtype of ``X`` is neither floating, bool, uint8 nor uint16.
        """
        self._check_ssim_win_size()
        images = self._validate_images(X, reset=True)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        device = self._resolve_device()
        memory = (
            str(self.memory) if isinstance(self.memory, os.PathLike) else self.memory
        )
        train = check_memory(memory).cache(_train_net, ignore=["verbose"])
        # Plain Python numbers, so that 2e-4 and np.float64(2e-4) share a cache key.
        training_params = {
            name: _plain(getattr(self, name)) for name in _TRAINING_PARAMS
        }
        try:
            self.net_ = train(
                self._to_padded_array(images),
                training_params,
                seed,
                device,
                self.verbose,
            )
        except _StoppedEarly as stopped:
            self.net_ = stopped.net
            warnings.warn(
                f"Training stopped after {stopped.n_epochs} of {self.max_epochs} "
                "epochs (interrupted, or stopped by a callback); the detector is "
                "fitted with the network as it was then.",
                UserWarning,
                stacklevel=2,
            )
        self.image_shape_ = images.shape[1:3]
        code_alignment, self.codebook_usage_ = self._code_statistics(images)
        self.net_.module_.quantizer.code_alignment.copy_(code_alignment)
        train_scores = self._score(images, self.anomaly_map_type)
        if not np.isfinite(train_scores).all():
            raise ValueError(
                "Training diverged: the anomaly maps of the training images are "
                f"not finite (last loss {self.net_.history[-1, 'train_loss']:.4g}). "
                "Lower lr or beta."
            )
        self.offset_ = self._offset_from_scores(train_scores)
        self._offset_params = {k: _plain(getattr(self, k)) for k in _SCORING_PARAMS}
        return self

    def anomaly_map(self, X):
        """Pixel anomaly map of each image; higher is more anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels) or (n_samples, n_features)
            Images with as many channels as the training images; any height
            and width.

        Returns
        -------
        maps : ndarray of shape (n_samples, height, width), float32
            The ``anomaly_map_type`` map, >= 0, same height and width as the
            input (height 1 for 2-D input). For "ssim" its values are
            ``1 - SSIM`` in [0, 2]; for "am" and "ssim+am" they are in units of
            squared latent distance (of latent distance with
            ``alignment_distance="euclidean"``), unitless with
            ``alignment_normalization="per_code"``.

        Raises
        ------
        ValueError
            If ``X`` is invalid or its channel count differs from training.
        """
        images = self._validate_images(X, reset=False)
        return self._anomaly_map(images, self.anomaly_map_type)

    def score_samples(self, X):
        """Normality score of each image: minus the mean (or max) of its anomaly map.

        Higher is more normal, following scikit-learn's outlier detectors;
        use ``-score_samples(X)`` as the paper's anomaly score.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels) or (n_samples, n_features)
            Images, as for :meth:`anomaly_map`.

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
            ``-mean(anomaly_map(X)[i])`` (``-max`` with
            ``score_pooling="max"``), <= 0.
        """
        images = self._validate_images(X, reset=False)
        return self._score(images, self.anomaly_map_type)

    def decision_function(self, X):
        """Shifted normality score: ``score_samples(X) - offset_``.

        Negative values are outliers, positive ones inliers.

        Parameters
        ----------
        X : array-like, shapes as for :meth:`anomaly_map`

        Returns
        -------
        ndarray of shape (n_samples,), float64

        Warns
        -----
        UserWarning
            If a post-processing parameter (``anomaly_map_type``,
            ``score_pooling``, ``alignment_normalization``, ``ssim_*``, ...)
            or ``contamination`` was changed with ``set_params`` after
            :meth:`fit`: ``offset_`` still belongs to the scores of the fit
            settings. Refit to update it; with ``memory=`` and an int
            ``random_state`` the network is loaded, not retrained.
        """
        return self._decision_function(X, stacklevel=3)

    def _decision_function(self, X, stacklevel):
        self._warn_if_offset_is_stale(stacklevel + 1)
        return self.score_samples(X) - self.offset_

    def _warn_if_offset_is_stale(self, stacklevel):
        fitted = getattr(self, "_offset_params", None)
        if fitted is None:
            return
        changed = sorted(k for k, v in fitted.items() if _plain(getattr(self, k)) != v)
        if changed:
            warnings.warn(
                f"offset_ was computed at fit time, before {', '.join(changed)} "
                "changed; decision_function and predict compare the new scores "
                "with the old threshold. Refit to update offset_ (with memory= "
                "the trained network is reused).",
                UserWarning,
                stacklevel=stacklevel,
            )

    def predict(self, X):
        """Label each image: -1 for an anomaly, +1 for a normal image.

        Parameters
        ----------
        X : array-like, shapes as for :meth:`anomaly_map`

        Returns
        -------
        ndarray of shape (n_samples,), int
            -1 where ``decision_function(X) < 0``, else 1.
        """
        return np.where(self._decision_function(X, stacklevel=3) < 0, -1, 1)

    def reconstruct(self, X):
        """Reconstruction of each image, as compared by SSIM (see ``reconstruction``).

        Parameters
        ----------
        X : array-like, shapes as for :meth:`anomaly_map`

        Returns
        -------
        ndarray of shape (n_samples, height, width, channels), float32
            Values in [0, 1]; channels last, as the input (one channel for
            greyscale input).
        """
        images = self._validate_images(X, reset=False)
        out = np.empty_like(images)
        for batch_slice, batch in self._iter_batches(images):
            with torch.no_grad():
                output = self.net_.module_(self._pad(batch))
                recon = self._reconstruction(output.logits, batch.shape[-2:])
            out[batch_slice] = recon.movedim(1, -1).cpu().numpy()
        return out

    # ----------------------------------------------------------------- private

    def _validate_images(self, X, *, reset):
        if not reset:
            check_is_fitted(self)
            # Post-processing parameters may have been changed by set_params.
            self._validate_params()
            self._check_ssim_win_size()
        if isinstance(X, torch.Tensor):
            # A tensor (on any device, maybe requiring grad) is read, not kept.
            X = X.detach().cpu()
            if X.dtype in (torch.bfloat16, torch.float16):
                X = X.float()  # numpy has no bfloat16
            X = X.numpy()
        if _is_tabular(X):
            images = self._validate_tabular(X, reset=reset)
        else:
            images = check_images(X)
            if reset:
                for attribute in ("n_features_in_", "feature_names_in_", "scaler_"):
                    self.__dict__.pop(attribute, None)
            elif hasattr(self, "scaler_"):
                raise ValueError(
                    "The detector was fitted on 2-D (n_samples, n_features) data; "
                    "pass 2-D data with the same features."
                )
        if not reset and images.shape[-1] != self.n_channels_:
            raise ValueError(
                f"X has {images.shape[-1]} channel(s), but the detector was fitted "
                f"on images with {self.n_channels_} channel(s)."
            )
        if self.ssim_channel_reduction == "luminance":  # before any training
            _check_luminance_channels(images.shape[-1])
        if reset:
            self.n_channels_ = images.shape[-1]
        return images

    def _validate_tabular(self, X, *, reset):
        """2-D rows -> (n, 1, n_features, 1) images, min-max scaled on training."""
        if not reset and not hasattr(self, "scaler_"):
            raise ValueError(
                "X is 2-D (n_samples, n_features), but the detector was fitted on "
                "images (n_samples, height, width[, channels])."
            )
        X = validate_data(
            self, X, reset=reset, dtype=[np.float64, np.float32], ensure_min_samples=1
        )
        if reset:
            self.scaler_ = MinMaxScaler().fit(X)
        # Rows far outside the training range stay far (and float32-finite).
        scaled = np.clip(self.scaler_.transform(X), -_TABULAR_CLIP, _TABULAR_CLIP)
        scaled = scaled.astype(np.float32)
        return scaled[:, np.newaxis, :, np.newaxis]

    def _check_ssim_win_size(self):
        if self.ssim_win_size % 2 == 0:
            raise ValueError(f"ssim_win_size must be odd, got {self.ssim_win_size}.")

    def _resolve_device(self):
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        try:
            device = torch.device(self.device)
        except RuntimeError as exc:
            raise ValueError(
                f"device={self.device!r} is not a torch device ('auto', 'cpu', "
                "'cuda', 'cuda:1', ...)."
            ) from exc
        if device.type == "meta":
            raise ValueError("device='meta' holds no data; use 'cpu' or 'cuda'.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device={self.device!r} but MPS is not available here.")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"device={self.device!r} but CUDA is not available here; use "
                "device='auto' or 'cpu'."
            )
        return self.device

    @property
    def _scale(self):
        """Latent stride of the fitted network, ``2**n_downsampling``."""
        return 2**self.net_.module_.n_downsampling

    def _pad(self, x, scale=None):
        """Pad (n, C, H, W) bottom/right to a multiple of the latent stride."""
        scale = self._scale if scale is None else scale
        height, width = x.shape[-2:]
        target_h = max(-(-height // scale) * scale, 2 * scale)
        target_w = max(-(-width // scale) * scale, 2 * scale)
        if (target_h, target_w) == (height, width):
            return x
        return _symmetric_pad(x, 0, target_h - height, 0, target_w - width)

    def _to_padded_array(self, images):
        """Training images (n, H, W, C) as a padded (n, C, H', W') array."""
        x = torch.from_numpy(images).movedim(-1, 1)
        return self._pad(x, 2 ** int(self.n_downsampling)).contiguous().numpy()

    def _iter_batches(self, images):
        """Yield (slice, (b, C, H, W) float32 tensor on the net's device)."""
        self.net_.module_.eval()
        batch_size = int(self.batch_size)
        for start in range(0, images.shape[0], batch_size):
            batch_slice = slice(start, start + batch_size)
            batch = torch.from_numpy(images[batch_slice]).movedim(-1, 1)
            yield batch_slice, batch.to(self.net_.device)

    def _reconstruction(self, logits, size):
        height, width = size
        if self.reconstruction == "probs":
            recon = torch.sigmoid(logits)
        else:
            recon = ContinuousBernoulli(logits=logits, validate_args=False).mean
        return recon[..., :height, :width]

    def _alignment(self, output):
        """The AM (b, h, w) of a forward pass, normalised if asked."""
        am = output.alignment  # Eq. 6, computed once by the quantiser
        if self.alignment_normalization == "per_code":
            am = am / self.net_.module_.quantizer.code_alignment[output.indices]
        if self.alignment_distance == "euclidean":
            am = am.sqrt()
        return am

    def _maps_of_output(self, batch, output, map_type):
        """Anomaly maps (b, H, W) of a batch from its forward pass ``output``."""
        size = batch.shape[-2:]
        am = self._alignment(output) if map_type != "ssim" else None
        if map_type == "am":
            maps = upsample_alignment_map(
                am,
                output_size=size,
                scale_factor=self._scale,
                upsampling=self.upsampling,
                dilation_size=self.dilation_size,
            )
            return maps
        ssim = ssim_map(
            batch,
            self._reconstruction(output.logits, size),
            data_range=1.0,
            win_size=self.ssim_win_size,
            gaussian_weights=self.ssim_gaussian_weights,
            K1=self.ssim_k1,
            K2=self.ssim_k2,
            channel_reduction=self.ssim_channel_reduction,
        )
        if map_type == "ssim":
            return grey_dilation(1.0 - ssim, self.ssim_dilation_size)
        return ssim_am_map(
            ssim,
            am,
            scale_factor=self._scale,
            dilation_size=self.dilation_size,
            upsampling=self.upsampling,
            ssim_dilation_size=self.ssim_dilation_size,
        )

    def _iter_maps(self, images, map_type):
        """Yield (slice, maps (b, H, W)) per batch."""
        for batch_slice, batch in self._iter_batches(images):
            with torch.no_grad():
                output = self.net_.module_(self._pad(batch))
                yield batch_slice, self._maps_of_output(batch, output, map_type)

    def _anomaly_map(self, images, map_type):
        """Maps (n, H, W) float32 of validated (n, H, W, C) images."""
        maps = np.empty(images.shape[:3], dtype=np.float32)
        for batch_slice, batch_maps in self._iter_maps(images, map_type):
            maps[batch_slice] = batch_maps.cpu().numpy()
        return maps

    def _score(self, images, map_type):
        """Scores (n,) float64 of validated (n, H, W, C) images."""
        scores = np.empty(images.shape[0], dtype=np.float64)
        for batch_slice, maps in self._iter_maps(images, map_type):
            if self.score_pooling == "max":
                pooled = maps.amax(dim=(1, 2))
            else:
                pooled = maps.mean(dim=(1, 2))
            scores[batch_slice] = -pooled.cpu().numpy()
        return scores

    @property
    def code_alignment_(self):
        check_is_fitted(self, "net_")
        return self.net_.module_.quantizer.code_alignment.cpu().numpy().copy()

    def _code_statistics(self, images):
        """Mean training AM per code, (M,) float32, and the share of codes used.

        Codes no training vector selects get the mean over all vectors.
        """
        n_codes = int(self.n_embeddings)
        sums = torch.zeros(n_codes, dtype=torch.float64)
        counts = torch.zeros(n_codes, dtype=torch.float64)
        for _, batch in self._iter_batches(images):
            with torch.no_grad():
                output = self.net_.module_(self._pad(batch))
            idx = output.indices.reshape(-1).cpu()
            # Accumulated in float64 on the CPU, never on the device.
            sums.index_add_(0, idx, output.alignment.reshape(-1).cpu().double())
            counts += torch.bincount(idx, minlength=n_codes).double()
        overall = sums.sum() / counts.sum()
        means = torch.where(counts > 0, sums / counts.clamp_min(1.0), overall)
        # Floor: a code whose training vectors sit exactly on it must not divide by 0.
        floor = max(float(overall) * 1e-3, 1e-12)
        return means.clamp_min(floor).float(), float((counts > 0).double().mean())

    def _offset_from_scores(self, scores):
        if self.contamination == "auto":
            median = np.median(scores)
            mad = np.median(np.abs(scores - median))
            return float(median - 3.0 * 1.4826 * mad)
        return float(np.percentile(scores, 100.0 * self.contamination))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = torch.cuda.is_available()
        return tags
