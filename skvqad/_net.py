"""skorch net that trains a :class:`~skvqad.VQVAE` without targets."""

import torch
from skorch import NeuralNet
from skorch.callbacks import PassthroughScoring
from skorch.utils import to_tensor

__all__ = ["VQVAENet"]


class VQVAENet(NeuralNet):
    """skorch ``NeuralNet`` for a VQ-VAE: the loss needs the input, not a target.

    Everything is skorch's own training loop; only :meth:`get_loss` is
    overridden, to feed the module's output and the input batch to the
    criterion (:class:`~skvqad.VQVAELoss`). Fit with ``net.fit(X)``, ``X`` a
    float32 array of shape (n_samples, channels, height, width) in [0, 1], with
    height and width multiples of ``2**n_downsampling``.

    The history also records the codebook ``perplexity`` of every training
    batch, ``exp(-sum_m p_m log p_m)`` with ``p_m`` the share of latent
    positions that select code ``m``: 1 when a single code is used, up to
    ``n_embeddings`` when all are used equally (van den Oord et al., 2017).
    Its per-epoch mean is the ``perplexity`` column of ``net.history``.

    Parameters
    ----------
    module, criterion, **kwargs
        As for :class:`skorch.NeuralNet`; ``criterion`` is called as
        ``criterion(logits, x, z_e, z_q)``.
    """

    def get_default_callbacks(self):
        """skorch's defaults plus the per-epoch mean of the batch perplexity."""
        return [
            *super().get_default_callbacks(),
            (
                "perplexity",
                PassthroughScoring(
                    name="perplexity", on_train=True, lower_is_better=False
                ),
            ),
        ]

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Loss of a batch from the module output ``y_pred`` and the input ``X``.

        Parameters
        ----------
        y_pred : VQVAEOutput
            ``(logits, z_e, z_q, indices, alignment)`` from
            :meth:`skvqad.VQVAE.forward`.
        y_true : ignored
            skorch's placeholder target.
        X : torch.Tensor of shape (n, C, H, W), float32
            The input batch.
        training : bool, default=False
            Whether the module is in training mode.

        Returns
        -------
        torch.Tensor, scalar
        """
        x = to_tensor(X, device=self.device)
        if training:
            self.history.record_batch(
                "perplexity",
                codebook_perplexity(
                    y_pred.indices, self.module_.quantizer.codebook.num_embeddings
                ),
            )
        return self.criterion_(y_pred.logits, x, y_pred.z_e, y_pred.z_q)


def codebook_perplexity(indices, n_embeddings):
    """Perplexity of codebook usage, ``exp(entropy)``, in ``[1, n_embeddings]``.

    Parameters
    ----------
    indices : torch.Tensor of int64, any shape
        Selected codebook indices.
    n_embeddings : int
        Codebook size ``M``.

    Returns
    -------
    float
    """
    counts = torch.bincount(indices.reshape(-1), minlength=n_embeddings).float()
    p = counts / counts.sum()
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return float(torch.exp(entropy))
