"""VQ-VAE image anomaly detector (Gangloff et al., 2022) as a scikit-learn estimator."""

import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _parameters
from ._anomaly_map import (
    MAP_TYPES,
    detector_image_scores,
    detector_maps,
    detector_reconstructions,
    pad_to_stride,
)
from ._fit_statistics import after_training
from ._maps import check_luminance_channels
from ._model import resolve_execution
from ._scoring import (
    caller_level,
    offset_from_scores,
    plain,
    record_offset_params,
    warn_if_offset_is_stale,
)
from ._training import PaddedImageFiles, StoppedEarly, fit_network
from ._validation import check_detector_input, check_device, tensor_of
from .datasets._image_files import as_image_files

__all__ = ["VQVAEAnomalyDetector"]


class VQVAEAnomalyDetector(OutlierMixin, BaseEstimator):
    """Image anomaly detector from the inner metrics of a VQ-VAE.

    The method of Gangloff et al. (2022) [1]_. :meth:`fit` trains a VQ-VAE
    (:class:`~skvqad.VQVAE`) on normal images only, with skorch. At test time
    two maps are built per image: SM, the anomaly ``1 - SSIM`` between the
    image and its reconstruction (the continuous Bernoulli mean of the decoder
    output), and AM, the alignment map, the distance between the encoder
    output and its nearest codebook vector (squared in the paper, see
    ``alignment_distance``), upsampled to image size and grey-dilated. The
    anomaly map is SM x AM ("SSIM+AM"), and an image's score pools its map
    (the paper: its mean).

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
    augment_rotation : float, default=15.0
        Largest random rotation of a training image, in degrees, in
        [0, 180]: each image turns about its centre by an angle drawn
        uniformly in ``[-augment_rotation, augment_rotation]`` (bilinear,
        reflected at the borders), after the flips; with ``crop_size`` only
        the crop is resampled. 0 is the paper's training; a few training
        images never show every small turn of a part or texture.
    augment_scale : float, default=1.0
        Largest random zoom of a training image (or crop), >= 1, log-uniform
        in ``[1 / augment_scale, augment_scale]``, in the rotation's
        resampling. 1 (none) is the paper's training (``docs/method.rst``).
    crop_size : int or None, default=None
        Side, in pixels, of the random square crop of each training image
        that the network trains on, each time the image is drawn (after the
        flips and rotations); a multiple of ``2**n_downsampling``, at least
        twice it. None trains on whole images, as in the paper. The network is
        fully convolutional and scores whole images either way; a step on
        crops of side ``s`` costs about ``(s / side)**2`` of a whole-image
        step, so large images train in a fraction of the time.
    anomaly_map_type : {"ssim+am", "ssim", "am"}, default="ssim+am"
        The map returned by :meth:`anomaly_map` and pooled by
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
        squared distance by the mean of the training latent vectors that
        selected the same codebook vector (``code_alignment_``), so that codes
        of busy content, far from their vectors even on normal images, do not
        dominate the map (then unitless). Not in the paper.
    reconstruction : {"mean", "probs"}, default="mean"
        The reconstruction compared with the image by SSIM: the mean of the
        decoder's continuous Bernoulli distribution (Loaiza-Ganem and
        Cunningham, 2019, Eq. 5) or its parameter ``sigmoid(logits)``.
    reconstruction_calibration : {"isotonic", None}, default="isotonic"
        "isotonic" passes the reconstruction through a monotone map fitted
        at :meth:`fit` on the training images (scikit-learn's isotonic
        regression of each channel's pixel values on their reconstructions,
        ``reconstruction_calibration_``) before SSIM. The continuous
        Bernoulli mean cannot reach 0 or 1, so without it a black or
        saturated region that is normal reconstructs as grey and SSIM's
        luminance term calls it anomalous. None compares the raw
        reconstruction, as in [1]_.
    ssim_win_size : int, default=11
        Side of the SSIM window, in pixels; odd, >= 3.
    ssim_gaussian_weights : bool, default=True
        Gaussian window of standard deviation 1.5 pixels (Wang et al. 2004)
        if True, else uniform.
    ssim_k1, ssim_k2 : float, default=0.01, 0.03
        SSIM stabilising constants ``c1 = (ssim_k1 * L)^2`` and
        ``c2 = (ssim_k2 * L)^2`` with data range ``L = 1`` (Wang et al.,
        2004), in (0, 1]. ``ssim_k2=0.3`` helps textures and hurts some
        CIFAR-10 classes (``docs/method.rst``). [1]_, Eq. 5, states ``c1 =
        0.01`` and ``c2 = 0.03`` literally: ``ssim_k1=0.1``,
        ``ssim_k2=0.03**0.5``.
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
    map_normalization : {"per_pixel", None}, default="per_pixel"
        ``"per_pixel"`` standardises every map pixel by pixel by the maps of
        the training images, ``(map - mean) / scale`` (``map_statistics_``),
        so that a region that is always busy or dark on normal images (a
        grid's wires, a black background) does not outscore a defect
        elsewhere; maps are then in training standard deviations and can be
        negative. Images of another size than the training images use the
        statistics resized. None returns the maps as in [1]_. Not in the
        paper: see Notes.
    score_pooling : {"mean", "max", "gaussian_max", "gaussian_contrast"}, \
default="gaussian_contrast"
        An image's score in :meth:`score_samples`: its map's mean, as in
        [1]_ (for anomalies that fill the image, as in CIFAR-10), maximum,
        maximum once smoothed by a Gaussian of ``score_sigma`` (anomalib's),
        or that less the smoothed map's lower quartile, so that an image
        reconstructed a little worse everywhere ranks below a local defect.
    score_sigma : float, default=8.0
        Standard deviation, in pixels, > 0, of the smoothing of "gaussian_max"
        and "gaussian_contrast"; the latter wants images of at least 8 sigma
        a side (a defect's blur otherwise lifts the quartile too).
    max_epochs : int, default=100
        Training epochs (passes over the training images), >= 1.
    batch_size : int, default=16
        Images per training batch, >= 1.
    eval_batch_size : int or "auto", default="auto"
        Images per batch, >= 1, of everything after training (maps, scores,
        reconstructions, the passes ``fit`` makes over the training images);
        the results do not depend on it beyond float rounding. "auto":
        ``batch_size`` on the CPU, larger batches on an accelerator (64
        images of 256 x 256, at most 256).
    lr : float, default=2e-4
        Learning rate, > 0.
    optimizer : type, default=torch.optim.Adam
        A ``torch.optim.Optimizer`` class, instantiated by skorch.
    device : str, default="auto"
        Torch device for training and scoring: ``"auto"`` is ``"cuda"`` when
        available, else ``"cpu"``; or any torch device string.
    contamination : "auto" or float, default="auto"
        Sets the threshold ``offset_`` on the training scores. A float in
        (0, 0.5] is the fraction of training images to call outliers (the
        interval scikit-learn's outlier detectors share). With ``"auto"``, an
        image is an outlier when its score lies more than three robust
        standard deviations (1.4826 x median absolute deviation) below the
        median training score. :func:`skvqad.fit_threshold` sets it afterwards
        from images known to be normal (the training images themselves, so
        that none is flagged), a false-positive rate, or F1-max.
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
        transformers. A training that stops early is not cached; an int
        ``random_state`` is needed to hit the cache; None caches nothing. The
        key is the training images, the seed drawn from ``random_state``, the
        device and the training parameters:

        {training}.

        Refitting with only map or scoring parameters changed, as a grid
        search does, loads the network instead of training it (once across
        processes sharing the folder: a file lock per network). Those are:

        {post}.
    accelerator : accelerate.Accelerator or None, default=None
        Train through Hugging Face accelerate (skorch's ``AccelerateMixin``):
        run under ``accelerate launch`` or ``torchrun``, each process trains
        on its share of every epoch (``batch_size`` per process), and all end
        with the same network; ``device`` is then ignored, and with several
        processes so is ``memory``. The user guide's "Scaling out" tells how.
    mixed_precision : {"auto", "no", "bf16"}, default="auto"
        bfloat16 autocast of the convolutions, in training and for the maps
        (quantiser, loss, SSIM and maps stay float32); "auto": on a CUDA
        device that supports it. The tests pin "bf16" to float32 on the CPU.
    channels_last : bool or "auto", default="auto"
        The channels-last memory format ("auto": on CPUs and CUDA): faster
        convolutions, float32 results equal up to rounding.
    compile : bool, default=False
        Train through ``torch.compile`` (skorch's ``compile``); ``net_``
        then holds the plain module. The first steps compile (a minute).
    verbose : int, default=0
        0 silent; 1 prints skorch's per-epoch table; 2 adds its progress bar.

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
    reconstruction_calibration_ : ndarray of shape (2, n_channels, 1025), \
float32
        The calibration tables for ``reconstruction="mean"`` (row 0) and
        ``"probs"`` (row 1): the fitted isotonic regressions at 1025 uniform
        knots of [0, 1], interpolated linearly when applied. Stored in the
        network (``net_.module_.calibration``), so saved with its weights.
    code_alignment_ : ndarray of shape (n_embeddings,), float32
        Mean AM (squared latent distance, > 0) of the training latent vectors
        that selected each codebook vector; the overall mean for vectors that
        none selected. Used by ``alignment_normalization="per_code"``; stored
        in the network (``net_.module_.quantizer.code_alignment``), so it is
        saved and loaded with ``net_.save_params`` / ``load_params``.
    map_statistics_ : dict of str to ndarray of shape (2, height, width), \
float32
        For each map type, its per-pixel mean (row 0) and scale (row 1, > 0)
        over the training images' maps, made at :meth:`fit` under the map
        parameters of ``map_statistics_settings_`` (a dict); used by
        ``map_normalization="per_pixel"``.

    See Also
    --------
    skvqad.ssim_map, skvqad.alignment_map, skvqad.ssim_am_map : the maps.
    sklearn.ensemble.IsolationForest : the outlier-detector API this follows.

    Notes
    -----
    Images: channels last, ``(n, H, W)`` or ``(n, H, W, C)``, uint8 (/ 255),
    uint16 (/ 65535) or floats in [0, 1], any size (padded by reflection to a
    multiple of ``2**n_downsampling``); 2-D input is tabular (rows become
    images of height 1); a list of image paths or a
    :class:`~skvqad.datasets.ImageFiles` is read in batches, for data sets
    larger than memory (same results as the array of its images);
    ``docs/usage.rst``. The loss sums each term over an image's pixels or
    latents, averaged over the batch (Eq. 4 of [1]_).

    Departures from the paper, each measured (``docs/method.rst``): an EMA
    codebook with restarts of unused vectors, flips and small turns of the
    training images, plain distances in the AM, the calibrated
    reconstruction, maps standardised per pixel by the training maps, and the
    image score. The paper's setting is
    ``codebook_update="loss", restart_dead_codes=False, augment=None,
    augment_rotation=0, augment_scale=1, alignment_distance="squared",
    reconstruction_calibration=None, map_normalization=None,
    score_pooling="mean"``.

    Ctrl-C during :meth:`fit` stops training and leaves a fitted detector,
    with a warning. A fitted detector pickles as a whole; ``docs/usage.rst``
    tells how to save the weights alone and load CUDA-trained ones on a CPU.

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

    _parameter_constraints: dict = dict(_parameters.CONSTRAINTS)

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
        augment_rotation=15.0,
        augment_scale=1.0,
        crop_size=None,
        anomaly_map_type="ssim+am",
        dilation_size=7,
        upsampling="nearest",
        alignment_normalization=None,
        alignment_distance="euclidean",
        reconstruction="mean",
        reconstruction_calibration="isotonic",
        ssim_win_size=11,
        ssim_gaussian_weights=True,
        ssim_k1=0.01,
        ssim_k2=0.03,
        ssim_channel_reduction="mean",
        ssim_dilation_size=1,
        map_normalization="per_pixel",
        score_pooling="gaussian_contrast",
        score_sigma=8.0,
        max_epochs=100,
        batch_size=16,
        eval_batch_size="auto",
        lr=2e-4,
        optimizer=torch.optim.Adam,
        device="auto",
        contamination="auto",
        random_state=None,
        callbacks=None,
        memory=None,
        accelerator=None,
        mixed_precision="auto",
        channels_last="auto",
        compile=False,
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
        self.augment_scale = augment_scale
        self.crop_size = crop_size
        self.anomaly_map_type = anomaly_map_type
        self.dilation_size = dilation_size
        self.upsampling = upsampling
        self.alignment_normalization = alignment_normalization
        self.alignment_distance = alignment_distance
        self.reconstruction = reconstruction
        self.reconstruction_calibration = reconstruction_calibration
        self.ssim_win_size = ssim_win_size
        self.ssim_gaussian_weights = ssim_gaussian_weights
        self.ssim_k1 = ssim_k1
        self.ssim_k2 = ssim_k2
        self.ssim_channel_reduction = ssim_channel_reduction
        self.ssim_dilation_size = ssim_dilation_size
        self.map_normalization = map_normalization
        self.score_pooling = score_pooling
        self.score_sigma = score_sigma
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.device = device
        self.contamination = contamination
        self.random_state = random_state
        self.callbacks = callbacks
        self.memory = memory
        self.accelerator = accelerator
        self.mixed_precision = mixed_precision
        self.channels_last = channels_last
        self.compile = compile
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the VQ-VAE on normal images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels) or (n_samples, n_features), or paths
            Normal (defect-free) training images, or their files (Notes).
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
            NaN, infinity, floats outside [0, 1] or unreadable files; if a
            parameter is invalid (``crop_size`` not a multiple of
            ``2**n_downsampling``), ``device`` is not a torch device, or it
            asks for CUDA where there is none.
        TypeError
            If the dtype of ``X`` is neither floating, bool, uint8 nor uint16.
        """
        stride = 2 ** int(self.n_downsampling)
        if self.crop_size is not None and (
            self.crop_size < 2 * stride or self.crop_size % stride
        ):
            raise ValueError(
                f"crop_size must be a multiple of 2**n_downsampling = {stride} "
                f"and at least {2 * stride}, got {self.crop_size}."
            )
        images = self._validate_images(X, reset=True)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        device = check_device(self.device)
        # Plain Python numbers, so that 2e-4 and np.float64(2e-4) share a cache key.
        training_params = {
            name: plain(getattr(self, name)) for name in _parameters.TRAINING
        }
        # What "auto" means on this device: one cache key per actual setting.
        execution = resolve_execution(self.mixed_precision, self.channels_last, device)
        training_params["mixed_precision"], training_params["channels_last"] = execution
        files = not isinstance(images, np.ndarray)  # ImageFiles, read in batches
        if files:
            x = PaddedImageFiles(images, stride)
        else:
            x = pad_to_stride(tensor_of(images).movedim(-1, 1), stride)
            x = x.contiguous().numpy()
        try:
            self.net_ = fit_network(
                x,
                training_params,
                seed,
                device,
                verbose=self.verbose,
                memory=self.memory,
                accelerator=self.accelerator,
            )
        except StoppedEarly as stopped:
            self.net_ = stopped.net
            warnings.warn(
                f"Training stopped after {stopped.n_epochs} of {self.max_epochs} "
                "epochs (interrupted, or stopped by a callback); the detector is "
                "fitted with the network as it was then.",
                UserWarning,
                stacklevel=caller_level(),
            )
        self.image_shape_ = images.shape[1:3]
        statistics = after_training(self, images)
        self.codebook_usage_, self.map_statistics_settings_ = statistics[:2]
        self.map_statistics_, train_scores = statistics[2:]
        if not np.isfinite(train_scores).all():
            raise ValueError(
                "Training diverged: the anomaly maps of the training images are "
                f"not finite (last loss {self.net_.history[-1, 'train_loss']:.4g}). "
                "Lower lr or beta."
            )
        self.offset_ = offset_from_scores(train_scores, self.contamination)
        record_offset_params(self, _parameters.MAP + _parameters.SCORING)
        return self

    def anomaly_map(self, X, *, map_type=None):
        """Pixel anomaly map of each image; higher is more anomalous.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width) or \
(n_samples, height, width, channels) or (n_samples, n_features)
            Images with as many channels as the training images; any height
            and width.
        map_type : {"ssim+am", "ssim", "am"} or None, default=None
            The map to return; None uses ``anomaly_map_type``. Lets one
            fitted detector give every map without ``set_params``.

        Returns
        -------
        maps : ndarray of shape (n_samples, height, width), float32
            The map, same height and width as the input (height 1 for 2-D
            input). Without ``map_normalization``: >= 0; for "ssim" its
            values are ``1 - SSIM`` in [0, 2], for "am" and "ssim+am" in units
            of latent distance (squared with ``alignment_distance="squared"``,
            unitless with ``alignment_normalization="per_code"``). With
            ``map_normalization="per_pixel"`` (default): unitless, in training
            standard deviations at each pixel, about 0 on normal images.

        Raises
        ------
        ValueError
            If ``X`` is invalid, its channel count differs from training, or
            ``map_type`` is not one of the three.
        """
        if map_type is None:
            map_type = self.anomaly_map_type
        elif map_type not in MAP_TYPES:
            raise ValueError(
                f"map_type must be one of {MAP_TYPES} or None, got {map_type!r}."
            )
        images = self._validate_images(X, reset=False)
        return self._maps(images, (map_type,))[map_type]

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
            ``score_pooling="max"``, the maximum of the smoothed map with
            ``"gaussian_max"``, less its lower quartile with
            ``"gaussian_contrast"``); <= 0 with ``"mean"`` or ``"max"`` and
            without ``map_normalization``.
        """
        images = self._validate_images(X, reset=False)
        return self._score(images)

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
        warn_if_offset_is_stale(self, stacklevel + 1)
        return self.score_samples(X) - self.offset_

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
        return detector_reconstructions(self, self._validate_images(X, reset=False))

    # ----------------------------------------------------------------- private

    def _validate_images(self, X, *, reset):
        if not reset:
            check_is_fitted(self)
            # Post-processing parameters may have been changed by set_params.
            self._validate_params()
        self._check_ssim_win_size()
        files = as_image_files(X)
        images = check_detector_input(self, X, reset=reset, files=files)
        if self.ssim_channel_reduction == "luminance":  # before any training
            check_luminance_channels(images.shape[-1])
        return images

    def _check_ssim_win_size(self):
        if self.ssim_win_size % 2 == 0:
            raise ValueError(f"ssim_win_size must be odd, got {self.ssim_win_size}.")

    def _maps(self, images, map_types):
        """{map type: (n, H, W) float32 maps} of validated (n, H, W, C) images."""
        return detector_maps(self, images, map_types)

    def _score(self, images):
        """Scores (n,) float64 of validated images, pooled batch by batch."""
        return detector_image_scores(self, images)

    @property
    def reconstruction_calibration_(self):
        check_is_fitted(self, "net_")
        return self.net_.module_.calibration.cpu().numpy().copy()

    @property
    def code_alignment_(self):
        check_is_fitted(self, "net_")
        return self.net_.module_.quantizer.code_alignment.cpu().numpy().copy()

    def __setstate__(self, state):
        super().__setstate__(state)
        _parameters.fill_missing_params(self)  # saved by an older skvqad

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.allow_nan = False
        tags.non_deterministic = torch.cuda.is_available()
        return tags


VQVAEAnomalyDetector.__doc__ = _parameters.fill_groups(VQVAEAnomalyDetector.__doc__)
