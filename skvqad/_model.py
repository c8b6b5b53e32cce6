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
.. [1] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
   Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
   Detection", 2022. https://hal.science/hal-03541964
.. [2] A. van den Oord, O. Vinyals, K. Kavukcuoglu, "Neural Discrete
   Representation Learning", NeurIPS 2017. arXiv:1711.00937
.. [3] G. Loaiza-Ganem, J. P. Cunningham, "The continuous Bernoulli: fixing a
   pervasive error in variational autoencoders", NeurIPS 2019.
   arXiv:1907.06845
"""

from typing import NamedTuple

import torch
from torch import nn
from torch.distributions import ContinuousBernoulli

__all__ = ["VQVAE", "VQVAELoss", "VQVAEOutput", "vq_vae_loss_terms"]


class _ResidualLayer(nn.Module):
    """ReLU, conv 3x3, ReLU, conv 1x1, added to the input ([1]_, Section III-A)."""

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
    """Encoder of [1]_, Section III-A.

    ``n_downsampling`` convolutions (kernel 4, stride 2, padding 1), each
    followed by ReLU and batch normalisation, then ``n_residual_layers``
    residual layers, then a 1x1 convolution to ``embedding_dim`` channels
    (the pre-quantisation projection of [2]_).

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
    """Decoder of [1]_: the encoder reversed.

    A 1x1 convolution from ``embedding_dim`` to ``hidden_channels``, the
    residual layers, then ``n_downsampling`` transposed convolutions (kernel 4,
    stride 2, padding 1), all but the last followed by ReLU and batch
    normalisation. The last one outputs the logits of a continuous Bernoulli
    likelihood per pixel and channel [3]_.

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
    """Codebook of ``M`` vectors in ``R^D`` and nearest-vector lookup (Eq. 2 of [1]_).

    The codebook is initialised uniformly in ``[-1/M, 1/M]`` as in [2]_.
    """

    def __init__(self, n_embeddings, embedding_dim):
        super().__init__()
        self.codebook = nn.Embedding(n_embeddings, embedding_dim)
        bound = 1.0 / n_embeddings
        nn.init.uniform_(self.codebook.weight, -bound, bound)

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
        ``sq_distances`` (n, h, w) are as returned by :meth:`nearest`.
        """
        indices, sq_distances = self.nearest(z_e)
        z_q = self.codebook(indices).movedim(-1, 1)
        return z_q, indices, sq_distances


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
        alignment map of Eq. 6 of [1]_, a by-product of the quantisation.
    """

    logits: torch.Tensor
    z_e: torch.Tensor
    z_q: torch.Tensor
    indices: torch.Tensor
    alignment: torch.Tensor


class VQVAE(nn.Module):
    """Vector-quantised variational autoencoder of Gangloff et al. (2022).

    The architecture of [1]_, Section III-A, after [2]_: an :class:`Encoder`, a
    :class:`VectorQuantizer` and a :class:`Decoder` whose output parametrises
    a continuous Bernoulli distribution per pixel and channel [3]_.

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
    ):
        super().__init__()
        self.n_downsampling = n_downsampling
        self.encoder = Encoder(
            in_channels,
            hidden_channels,
            embedding_dim,
            n_downsampling,
            n_residual_layers,
        )
        self.quantizer = VectorQuantizer(n_embeddings, embedding_dim)
        self.decoder = Decoder(
            in_channels,
            hidden_channels,
            embedding_dim,
            n_downsampling,
            n_residual_layers,
        )

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
            straight-through estimate ``z_e + sg[z_q - z_e]`` [2]_, so the
            reconstruction gradient reaches the encoder unchanged.
        """
        z_e = self.encoder(x)
        z_q, indices, alignment = self.quantizer(z_e)
        z_st = z_e + (z_q - z_e).detach()
        return VQVAEOutput(self.decoder(z_st), z_e, z_q, indices, alignment)


def vq_vae_loss_terms(logits, x, z_e, z_q):
    """The three terms of the VQ-VAE loss (Eq. 4 of [1]_), averaged over the batch.

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
        ``-log p(x | z)`` under ``ContinuousBernoulli(logits=logits)`` [3]_.
    alignment : torch.Tensor, scalar
        ``||sg[z_e] - e||^2``: moves the codebook only.
    commitment : torch.Tensor, scalar
        ``||z_e - sg[e]||^2``: moves the encoder only.
    """
    n = x.shape[0]
    likelihood = ContinuousBernoulli(logits=logits, validate_args=False)
    nll = -likelihood.log_prob(x).sum() / n
    alignment = (z_e.detach() - z_q).pow(2).sum() / n
    commitment = (z_e - z_q.detach()).pow(2).sum() / n
    return nll, alignment, commitment


class VQVAELoss(nn.Module):
    """VQ-VAE loss of Eq. 4 in [1]_: ``nll + alignment + beta * commitment``.

    Parameters
    ----------
    beta : float, default=0.25
        Weight of the commitment term, in ``[0, inf)``; 0.25 as in [2]_.

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
