"""The continuous Bernoulli distribution, computed stably for every logit.

The VQ-VAE's decoder outputs continuous Bernoulli logits ``eta`` ([1]_,
Section III-A). With ``lambda = sigmoid(eta)`` the density on [0, 1] is
``C(eta) * lambda**x * (1 - lambda)**(1 - x)`` ([2]_, Eq. 3) and, written in
the logit,

* the normalising constant ``C(eta) = eta / tanh(eta / 2)`` (``2`` at 0),
* the mean ``E[x] = 1 / (1 - exp(-eta)) - 1 / eta`` (``1/2`` at 0),

both even or odd in ``eta`` and smooth through 0 ([2]_, Eq. 5 and its mean).
``torch.distributions.ContinuousBernoulli`` computes them from
``lambda`` clamped to float32's epsilon, so its mean never falls below 0.063
(at logit -50 the true mean is 0.0200) and its log-normaliser stops growing
beyond ``|eta| ~ 16``. Here they are computed from the logit: Taylor series
for ``|eta| < 0.5`` (error below 1e-8) and ``expm1`` / ``log1p`` forms
elsewhere, so that a black or white region the network reconstructs
confidently gets a mean near 0 or 1.

References
----------
.. [1] H. Gangloff, M.-T. Pham, L. Courtrai, S. Lefèvre, "Leveraging
   Vector-Quantized Variational Autoencoder Inner Metrics for Anomaly
   Detection", 2022. https://hal.science/hal-03541964
.. [2] G. Loaiza-Ganem, J. P. Cunningham, "The continuous Bernoulli: fixing a
   pervasive error in variational autoencoders", NeurIPS 2019.
   arXiv:1907.06845
"""

import math

import torch
import torch.nn.functional as F

__all__ = ["FLOAT32_LOGIT_BOUND", "cb_log_normalizer", "cb_log_prob", "cb_mean"]

#: |logit| below which the Taylor series are used.
_SERIES_BOUND = 0.5


def cb_mean(logits):
    """Mean of the continuous Bernoulli distribution of each logit.

    Parameters
    ----------
    logits : torch.Tensor of any shape, floating
        The decoder's logits ``eta``, any real value.

    Returns
    -------
    mean : torch.Tensor, shape and dtype of ``logits``
        ``1 / (1 - exp(-eta)) - 1 / eta`` in (0, 1), ``1/2`` at ``eta = 0``;
        about ``-1 / eta`` for large negative ``eta`` and ``1 - 1 / eta`` for
        large positive ones ([2]_).
    """
    small = logits.abs() < _SERIES_BOUND
    signed = torch.where(small, torch.ones_like(logits), logits)
    far = -1.0 / torch.expm1(-signed) - 1.0 / signed
    e2 = logits * logits
    near = 0.5 + logits * (1 / 12 + e2 * (-1 / 720 + e2 * (1 / 30240 - e2 / 1209600)))
    return torch.where(small, near, far)


def cb_log_normalizer(logits):
    """Log of the continuous Bernoulli normalising constant ``C(eta)``.

    Parameters
    ----------
    logits : torch.Tensor of any shape, floating

    Returns
    -------
    torch.Tensor of the same shape and dtype
        ``log(eta / tanh(eta / 2))``, even in ``eta``, ``log 2`` at 0 and about
        ``log |eta|`` for large ``|eta|`` ([2]_, Eq. 3).
    """
    magnitude = logits.abs()
    small = magnitude < _SERIES_BOUND
    safe = torch.where(small, torch.ones_like(magnitude), magnitude)  # no log(0)
    # log tanh(a / 2) = log(1 - exp(-a)) - log(1 + exp(-a)) for a > 0.
    log_tanh = torch.log(-torch.expm1(-safe)) - torch.log1p(torch.exp(-safe))
    far = torch.log(safe) - log_tanh
    e2 = magnitude * magnitude
    near = math.log(2.0) + e2 * (
        1 / 12 + e2 * (-7 / 1440 + e2 * (31 / 90720 - e2 * 127 / 4838400))
    )
    return torch.where(small, near, far)


#: ``logit(1 - eps)`` for float32's eps: the largest |logit| torch's
#: ``ContinuousBernoulli`` can tell apart from a saturated one.
FLOAT32_LOGIT_BOUND = math.log((1 - 2.0**-23) / 2.0**-23)


def cb_log_prob(x, logits, *, normalizer_bound=None):
    """Log-density of ``x`` under the continuous Bernoulli of ``logits``.

    Parameters
    ----------
    x : torch.Tensor, values in [0, 1]
    logits : torch.Tensor broadcastable with ``x``, floating
    normalizer_bound : float > 0 or None, default=None
        If given, the log-normaliser is taken at the logits clipped to
        ``[-normalizer_bound, normalizer_bound]`` (its gradient is then 0
        beyond), as torch's ``ContinuousBernoulli`` does at
        :data:`FLOAT32_LOGIT_BOUND` (about 15.9). The exact normaliser grows
        like ``log |eta|`` without bound, so a pixel at exactly 0 or 1 has no
        finite best logit; the VQ-VAE loss keeps torch's bound (see
        :func:`skvqad.vq_vae_loss_terms`).

    Returns
    -------
    torch.Tensor
        ``x * eta - log(1 + exp(eta)) + log C(eta)`` ([2]_, Eq. 3), elementwise.
    """
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    bounded = logits
    if normalizer_bound is not None:
        bounded = logits.clamp(-normalizer_bound, normalizer_bound)
    return cb_log_normalizer(bounded) - bce
