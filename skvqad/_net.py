"""skorch net that trains a :class:`~skvqad.VQVAE` without targets."""

from skorch import NeuralNet
from skorch.utils import to_tensor

__all__ = ["VQVAENet"]


class VQVAENet(NeuralNet):
    """skorch ``NeuralNet`` for a VQ-VAE: the loss needs the input, not a target.

    Everything is skorch's own training loop; only :meth:`get_loss` is
    overridden, to feed the module's output and the input batch to the
    criterion (:class:`~skvqad.VQVAELoss`). Fit with ``net.fit(X)``, ``X`` a
    float32 array of shape (n_samples, channels, height, width) in [0, 1], with
    height and width multiples of ``2**n_downsampling``.

    Parameters
    ----------
    module, criterion, **kwargs
        As for :class:`skorch.NeuralNet`; ``criterion`` is called as
        ``criterion(logits, x, z_e, z_q)``.
    """

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Loss of a batch from the module output ``y_pred`` and the input ``X``.

        Parameters
        ----------
        y_pred : VQVAEOutput
            ``(logits, z_e, z_q, indices)`` from :meth:`skvqad.VQVAE.forward`.
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
        return self.criterion_(y_pred.logits, x, y_pred.z_e, y_pred.z_q)
