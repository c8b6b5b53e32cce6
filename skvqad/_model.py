"""The VQ-VAE network and its training loss, as plain PyTorch modules.

Nothing in this module knows about scikit-learn or skorch: it is the model of
Gangloff et al. (2022), Section II-A and III-A, written as ``torch.nn.Module``
objects so that it can be trained by any loop. The estimator in
:mod:`skvqad._detector` trains it with skorch.

Tensor shapes use ``n`` for the batch, ``C`` for the image channels, ``H, W`` for
the image height and width, ``D`` for the codebook vector dimension, ``M`` for
the number of codebook vectors and ``h, w = H / 2**k, W / 2**k`` for the latent
grid after ``k`` downsamplings.

References
----------
.. [Gangloff2022] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
   Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
   Detection", 2022. https://hal.science/hal-03541964
.. [Oord2017] A. van den Oord, O. Vinyals, K. Kavukcuoglu, "Neural Discrete
   Representation Learning", NeurIPS 2017. arXiv:1711.00937
.. [Loaiza2019] G. Loaiza-Ganem, J. P. Cunningham, "The continuous Bernoulli: fixing a
   pervasive error in variational autoencoders", NeurIPS 2019.
   arXiv:1907.06845
"""

from typing import NamedTuple

import torch
from torch import nn

from ._continuous_bernoulli import FLOAT32_LOGIT_BOUND, cb_log_prob

__all__ = ["VQVAE", "VQVAELoss", "VQVAEOutput", "vq_vae_loss_terms"]


class _ResidualLayer(nn.Module):
    """ReLU, conv 3x3, ReLU, conv 1x1, plus the input ([Gangloff2022]_, III-A)."""

    def __init__(self, channels):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=1, stride=1, padding=0),
        )

    def forward(self, x):
        return x + self.block(x)


def _down_block(in_channels, out_channels):
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(out_channels),
    ]


class Encoder(nn.Module):
    """Encoder of [Gangloff2022]_, Section III-A.

    ``n_downsampling`` convolutions (kernel 4, stride 2, padding 1), each
    followed by ReLU and batch normalisation, then ``n_residual_layers``
    residual layers, then a 1x1 convolution to ``embedding_dim`` channels
    (the pre-quantisation projection of [Oord2017]_).

    Input ``(n, C, H, W)`` float32, output ``z_e`` of shape ``(n, D, h, w)``.
    """

    def __init__(
        self,
        in_channels,
        hidden_channels,
        embedding_dim,
        n_downsampling,
        n_residual_layers,
    ):
        super().__init__()
        layers = _down_block(in_channels, hidden_channels)
        for _ in range(n_downsampling - 1):
            layers += _down_block(hidden_channels, hidden_channels)
        layers += [_ResidualLayer(hidden_channels) for _ in range(n_residual_layers)]
        layers += [nn.ReLU(), nn.Conv2d(hidden_channels, embedding_dim, kernel_size=1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Decoder(nn.Module):
    """Decoder of [Gangloff2022]_: the encoder reversed.

    A 1x1 convolution from ``embedding_dim`` to ``hidden_channels``, the
    residual layers, then ``n_downsampling`` transposed convolutions (kernel 4,
    stride 2, padding 1), all but the last followed by ReLU and batch
    normalisation. The last one outputs the logits of a continuous Bernoulli
    likelihood per pixel and channel [Loaiza2019]_.

    Input ``(n, D, h, w)`` float32, output logits ``(n, C, H, W)`` float32.
    """

    def __init__(
        self,
        out_channels,
        hidden_channels,
        embedding_dim,
        n_downsampling,
        n_residual_layers,
    ):
        super().__init__()
        layers = [nn.Conv2d(embedding_dim, hidden_channels, kernel_size=1)]
        layers += [_ResidualLayer(hidden_channels) for _ in range(n_residual_layers)]
        layers += [nn.ReLU()]
        for _ in range(n_downsampling - 1):
            layers += [
                nn.ConvTranspose2d(hidden_channels, hidden_channels, 4, 2, 1),
                nn.ReLU(),
                nn.BatchNorm2d(hidden_channels),
            ]
        layers += [nn.ConvTranspose2d(hidden_channels, out_channels, 4, 2, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, z):
        return self.layers(z)


def squared_distances(z_e, codebook):
    """Squared distances from every latent vector to every codebook vector.

    Parameters
    ----------
    z_e : torch.Tensor of shape (n, D, h, w), floating
    codebook : torch.Tensor of shape (M, D), floating

    Returns
    -------
    torch.Tensor of shape (n, h, w, M), dtype of ``z_e``
        ``||z_e - e_m||^2`` computed as ``||z||^2 - 2 z.e + ||e||^2`` (one
        matrix product instead of an ``(n, h, w, M, D)`` difference); may be
        slightly negative through rounding.
    """
    flat = z_e.movedim(1, -1)
    return (
        flat.pow(2).sum(-1, keepdim=True)
        - 2.0 * flat @ codebook.t()
        + codebook.pow(2).sum(-1)
    )


class VectorQuantizer(nn.Module):
    """Codebook of ``M`` vectors, nearest-vector lookup ([Gangloff2022]_, Eq. 2).

    The codebook is initialised uniformly in ``[-1/M, 1/M]`` as in [Oord2017]_.

    Parameters
    ----------
    n_embeddings : int
        Codebook size ``M``, >= 1.
    embedding_dim : int
        Codebook vector dimension ``D``, >= 1.
    ema_decay : float in (0, 1) or None, default=None
        None: the codebook is a parameter trained by the alignment term of
        the loss (Eq. 4 of [Gangloff2022]_). A float: the codebook is instead updated in
        training mode as an exponential moving average of the encoder outputs
        assigned to each vector ([Oord2017]_, Appendix A.1; 0.99 there), with Laplace
        smoothing of the counts, and receives no gradient.

    Attributes
    ----------
    epoch_counts : torch.Tensor of shape (M,), float32
        Selections of each vector since the last :meth:`restart_dead_codes`
        (training mode only).
    code_alignment : torch.Tensor of shape (M,), float32
        Typical squared distance of normal encoder outputs to each vector,
        > 0; ones until set (the detector sets it after training, from the
        training images). Saved with the module's parameters.
    sync_statistics : bool
        Whether training-mode batches sum their selection counts (and EMA
        statistics) over the processes of torch.distributed's default group
        before using them, and :meth:`restart_dead_codes` takes rank 0's new
        vectors: data-parallel training, where every process must keep the
        codebook of all the data (as :class:`torch.nn.SyncBatchNorm` keeps
        batch statistics). False (the class default) outside training;
        :class:`~skvqad._net.AcceleratedVQVAENet` sets it while it trains.
    """

    #: Not a constructor argument: set around data-parallel training only.
    sync_statistics = False

    def __init__(self, n_embeddings, embedding_dim, ema_decay=None):
        super().__init__()
        self.codebook = nn.Embedding(n_embeddings, embedding_dim)
        bound = 1.0 / n_embeddings
        nn.init.uniform_(self.codebook.weight, -bound, bound)
        self.ema_decay = ema_decay
        self.register_buffer("epoch_counts", torch.zeros(n_embeddings))
        self.register_buffer("code_alignment", torch.ones(n_embeddings))
        if ema_decay is not None:
            self.codebook.weight.requires_grad_(False)
            # Counts start at 1 so that an unused vector keeps its initial value.
            self.register_buffer("ema_counts", torch.ones(n_embeddings))
            self.register_buffer("ema_sums", self.codebook.weight.detach().clone())
        self._last_z_e = None

    def nearest(self, z_e):
        """Index of, and squared distance to, the nearest codebook vector.

        Parameters
        ----------
        z_e : torch.Tensor of shape (n, D, h, w), float
            Encoder output.

        Returns
        -------
        indices : torch.Tensor of shape (n, h, w), int64
            Index ``m`` in ``[0, M)`` of the nearest codebook vector (Eq. 2).
        sq_distances : torch.Tensor of shape (n, h, w), same dtype as ``z_e``
            ``min_m ||z_e - e_m||^2``, clamped at 0; this is the alignment map
            (Eq. 6).
        """
        sq = squared_distances(z_e, self.codebook.weight)
        sq_distances, indices = sq.min(dim=-1)
        return indices, sq_distances.clamp_min(0.0)

    def forward(self, z_e):
        """Quantise ``z_e`` (n, D, h, w); returns ``(z_q, indices, sq_distances)``.

        ``z_q`` (n, D, h, w) holds the selected codebook vectors ``e_{z_k}``
        themselves (with gradients to the codebook only); the straight-through
        copy to the encoder is made by :class:`VQVAE`. ``indices`` and
        ``sq_distances`` (n, h, w) are as returned by :meth:`nearest`. In
        training mode the selections are counted and, with ``ema_decay``, the
        codebook is updated after ``z_q`` is taken.
        """
        indices, sq_distances = self.nearest(z_e)
        z_q = self.codebook(indices).movedim(-1, 1)
        if self.training:
            with torch.no_grad():
                self._record(z_e, indices)
        return z_q, indices, sq_distances

    def _record(self, z_e, indices):
        flat = z_e.detach().movedim(1, -1).reshape(-1, z_e.shape[1])
        idx = indices.reshape(-1)
        counts = torch.bincount(idx, minlength=self.epoch_counts.numel())
        counts = counts.to(self.epoch_counts.dtype)
        if self.ema_decay is not None:
            sums = torch.zeros_like(self.ema_sums).index_add_(0, idx, flat.float())
        if self.sync_statistics:  # the whole data-parallel batch, on every process
            torch.distributed.all_reduce(counts)
            if self.ema_decay is not None:
                torch.distributed.all_reduce(sums)
        self.epoch_counts += counts
        self._last_z_e = flat
        if self.ema_decay is None:
            return
        decay = float(self.ema_decay)
        self.ema_counts.mul_(decay).add_(counts, alpha=1.0 - decay)
        self.ema_sums.mul_(decay).add_(sums, alpha=1.0 - decay)
        total = self.ema_counts.sum()
        eps = 1e-5
        smoothed = (
            (self.ema_counts + eps) / (total + eps * self.ema_counts.numel()) * total
        )
        self.codebook.weight.copy_(self.ema_sums / smoothed[:, None])

    def release_training_state(self):
        """Drop the last training batch's encoder outputs (kept for restarts)."""
        self._last_z_e = None

    @torch.no_grad()
    def restart_dead_codes(self, generator=None):
        """Move vectors not selected since the last call onto encoder outputs.

        Each codebook vector with a zero count in :attr:`epoch_counts` is set
        to an encoder output drawn at random from the last training batch
        (the "random restart" of Dhariwal et al., 2020, Jukebox, Sec. 3.2;
        Zeghidour et al., 2021, SoundStream). Counts are then reset. With
        :attr:`sync_statistics`, every process takes rank 0's draws.

        Parameters
        ----------
        generator : torch.Generator or None
            CPU generator for the draws (reproducible restarts).

        Returns
        -------
        int
            Number of vectors restarted.
        """
        dead = torch.nonzero(self.epoch_counts == 0).reshape(-1)
        self.epoch_counts.zero_()
        if dead.numel() == 0 or self._last_z_e is None:
            return 0
        pool = self._last_z_e
        picks = torch.randint(pool.shape[0], (dead.numel(),), generator=generator)
        new = pool[picks.to(pool.device)].to(self.codebook.weight.dtype)
        if self.sync_statistics:  # the dead codes are the same on every process
            torch.distributed.broadcast(new, src=0)
        self.codebook.weight[dead] = new
        if self.ema_decay is not None:
            self.ema_sums[dead] = new
            self.ema_counts[dead] = 1.0
        return int(dead.numel())


#: Knots of :attr:`VQVAE.calibration`, uniform in [0, 1].
CALIBRATION_KNOTS = 1025


class VQVAEOutput(NamedTuple):
    """What :meth:`VQVAE.forward` returns.

    Attributes
    ----------
    logits : torch.Tensor of shape (n, C, H, W), float
        Continuous Bernoulli logits of the decoder.
    z_e : torch.Tensor of shape (n, D, h, w), float
        Encoder output.
    z_q : torch.Tensor of shape (n, D, h, w), float
        Selected codebook vectors (gradient flows to the codebook only).
    indices : torch.Tensor of shape (n, h, w), int64
        Selected codebook indices.
    alignment : torch.Tensor of shape (n, h, w), float
        Squared distance from ``z_e`` to its nearest codebook vector: the
        alignment map of Eq. 6 of [Gangloff2022]_, a by-product of the quantisation.
    """

    logits: torch.Tensor
    z_e: torch.Tensor
    z_q: torch.Tensor
    indices: torch.Tensor
    alignment: torch.Tensor


class VQVAE(nn.Module):
    """Vector-quantised variational autoencoder of Gangloff et al. (2022).

    The architecture of [Gangloff2022]_, Section III-A, after [Oord2017]_:
    an :class:`Encoder`, a :class:`VectorQuantizer` and a :class:`Decoder`
    whose output parametrises a continuous Bernoulli distribution per pixel
    and channel [Loaiza2019]_.

    Parameters
    ----------
    in_channels : int, default=1
        Image channels ``C`` (1 for greyscale, 3 for RGB).
    hidden_channels : int, default=256
        Channels of every hidden convolution.
    n_embeddings : int, default=512
        Codebook size ``M``.
    embedding_dim : int, default=256
        Codebook vector dimension ``D``.
    n_downsampling : int, default=3
        Stride-2 convolutions ``k`` in the encoder; the latent grid is
        ``H / 2**k`` by ``W / 2**k``. The paper uses 3 for 256x256 images and
        2 for 32x32 and 128x128 images.
    n_residual_layers : int, default=3
        Residual layers in the encoder and in the decoder.
    ema_decay : float in (0, 1) or None, default=None
        Passed to :class:`VectorQuantizer`: None trains the codebook by the
        loss, a float by exponential moving averages.

    Attributes
    ----------
    calibration : torch.Tensor of shape (2, in_channels, CALIBRATION_KNOTS), \
float32
        Monotone maps of the reconstruction's values, for the continuous
        Bernoulli mean (row 0) and its parameter (row 1), per channel, at
        uniform knots of [0, 1]; the identity until set (the detector fits
        them on its training images). A buffer, so saved with the weights.

    Notes
    -----
    ``H`` and ``W`` must be multiples of ``2**n_downsampling``; the estimator
    pads its inputs to satisfy this.
    """

    def __init__(
        self,
        in_channels=1,
        hidden_channels=256,
        n_embeddings=512,
        embedding_dim=256,
        n_downsampling=3,
        n_residual_layers=3,
        ema_decay=None,
    ):
        super().__init__()
        self.n_downsampling = n_downsampling
        # Identity maps until the detector fits them on the training images.
        identity = torch.linspace(0.0, 1.0, CALIBRATION_KNOTS)
        self.register_buffer("calibration", identity.expand(2, in_channels, -1).clone())
        self.encoder = Encoder(
            in_channels,
            hidden_channels,
            embedding_dim,
            n_downsampling,
            n_residual_layers,
        )
        self.quantizer = VectorQuantizer(n_embeddings, embedding_dim, ema_decay)
        self.decoder = Decoder(
            in_channels,
            hidden_channels,
            embedding_dim,
            n_downsampling,
            n_residual_layers,
        )

    #: How forward passes run (:meth:`set_execution`); class attributes, so
    #: that networks pickled before they existed run as they did.
    mixed_precision = "no"
    channels_last = False

    def set_execution(self, mixed_precision="no", channels_last=False):
        """Set how :meth:`run` (training and maps alike) runs the network.

        Parameters
        ----------
        mixed_precision : {"no", "bf16"}, default="no"
            "bf16": convolutions under ``torch.autocast`` in bfloat16 (the
            quantiser always in float32); outputs are float32 either way.
        channels_last : bool, default=False
            Weights and inputs in ``torch.channels_last`` memory format.

        Returns
        -------
        self : VQVAE
        """
        if mixed_precision not in ("no", "bf16"):
            raise ValueError(
                f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}."
            )
        self.mixed_precision = mixed_precision
        self.channels_last = bool(channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return self.to(memory_format=fmt)

    def run(self, x):
        """:meth:`forward` (same input and output) in the network's mixed
        precision and memory format; ``logits`` and ``z_e`` come back in
        float32 whatever the precision."""
        return run_network(self, self, x)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Weights saved before the calibration existed load with the identity.
        state_dict.setdefault(prefix + "calibration", self.calibration.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def codebook(self):
        """torch.Tensor of shape (M, D): the codebook vectors."""
        return self.quantizer.codebook.weight

    def forward(self, x):
        """Encode, quantise and decode a batch.

        Parameters
        ----------
        x : torch.Tensor of shape (n, C, H, W), float32, values in [0, 1]

        Returns
        -------
        VQVAEOutput
            ``(logits, z_e, z_q, indices, alignment)``. The decoder sees the
            straight-through estimate ``z_e + sg[z_q - z_e]`` [Oord2017]_, so the
            reconstruction gradient reaches the encoder unchanged.
        """
        z_e = self.encoder(x)
        # Nearest codes and the alignment map in float32 even under autocast:
        # bfloat16 distances would pick other codes and blur the AM.
        with torch.autocast(z_e.device.type, enabled=False):
            z_q, indices, alignment = self.quantizer(z_e.float())
        z_st = z_e + (z_q.to(z_e.dtype) - z_e).detach()
        return VQVAEOutput(self.decoder(z_st), z_e, z_q, indices, alignment)


def run_network(network, settings, x):
    """``network(x)`` as ``settings`` (a :class:`VQVAE`) says it runs.

    ``network`` is the module itself or a wrapper of it (a distributed
    training's); inputs go in ``channels_last`` format if set, the forward
    pass under bfloat16 autocast if set, and the logits and encoder output
    come back in float32.
    """
    if settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = settings.mixed_precision == "bf16"
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        output = network(x)
    if output.logits.dtype == torch.float32 and output.z_e.dtype == torch.float32:
        return output
    logits, z_e, z_q, indices, alignment = output
    return VQVAEOutput(logits.float(), z_e.float(), z_q, indices, alignment)


def resolve_execution(mixed_precision, channels_last, device):
    """The ``(mixed_precision, channels_last)`` a detector's settings mean on a device.

    Parameters
    ----------
    mixed_precision : {"auto", "no", "bf16"}
        "auto": "bf16" on a CUDA device that supports bfloat16, else "no".
    channels_last : bool or "auto"
        "auto": True on CPUs and CUDA devices (faster convolutions on both
        here), False elsewhere.
    device : str or torch.device

    Returns
    -------
    tuple of (str, bool)
    """
    device = torch.device(device)
    if mixed_precision == "auto":
        cuda = device.type == "cuda" and torch.cuda.is_available()
        mixed_precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    if channels_last == "auto":
        channels_last = device.type in ("cpu", "cuda")
    return mixed_precision, bool(channels_last)


def vq_vae_loss_terms(logits, x, z_e, z_q):
    """The three terms of the VQ-VAE loss (Eq. 4 of [Gangloff2022]_), batch averages.

    Each term is summed over the pixels (or latent positions and dimensions)
    of one image, then averaged over the ``n`` images of the batch.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, C, H, W), float
        Decoder output, the continuous Bernoulli logits.
    x : torch.Tensor of shape (n, C, H, W), float, values in [0, 1]
        The images.
    z_e : torch.Tensor of shape (n, D, h, w), float
        Encoder output.
    z_q : torch.Tensor of shape (n, D, h, w), float
        The selected codebook vectors.

    Returns
    -------
    nll : torch.Tensor, scalar
        ``-log p(x | z)`` under the continuous Bernoulli of ``logits`` [Loaiza2019]_,
        computed stably for every logit
        (:func:`skvqad._continuous_bernoulli.cb_log_prob`), its log-normaliser
        taken at logits clipped to about +-15.9 as torch's
        ``ContinuousBernoulli`` does: the exact one grows without bound for
        pixels at exactly 0 or 1, and training with it drove the logits of
        dark backgrounds to extremes (on the Hubble tiles of
        ``benchmarks/hubble_tiles.py``, SSIM+AM pixel ROC-AUC 0.866 with
        torch's bound, 0.767 without, same settings, one seed).
    alignment : torch.Tensor, scalar
        ``||sg[z_e] - e||^2``: moves the codebook only.
    commitment : torch.Tensor, scalar
        ``||z_e - sg[e]||^2``: moves the encoder only.
    """
    n = x.shape[0]
    nll = -cb_log_prob(x, logits, normalizer_bound=FLOAT32_LOGIT_BOUND).sum() / n
    alignment = (z_e.detach() - z_q).pow(2).sum() / n
    commitment = (z_e - z_q.detach()).pow(2).sum() / n
    return nll, alignment, commitment


class VQVAELoss(nn.Module):
    """VQ-VAE loss of Eq. 4 in [Gangloff2022]_: ``nll + alignment + beta * commitment``.

    Parameters
    ----------
    beta : float, default=0.25
        Weight of the commitment term, in ``[0, inf)``; 0.25 as in [Oord2017]_.

    See Also
    --------
    vq_vae_loss_terms : the three terms and their exact definitions.
    """

    def __init__(self, beta=0.25):
        super().__init__()
        self.beta = beta

    def forward(self, logits, x, z_e, z_q):
        """Scalar loss for a batch; shapes as in :func:`vq_vae_loss_terms`."""
        nll, alignment, commitment = vq_vae_loss_terms(logits, x, z_e, z_q)
        return nll + alignment + self.beta * commitment
