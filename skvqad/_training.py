"""Training a :class:`~skvqad.VQVAENet` for the detector: the factory ``fit`` calls.

Kept at module level, apart from the estimator, so that ``joblib.Memory`` can
cache :func:`train_net` (its arguments are the cache key).
"""

import copy
import threading

import torch
from skorch.callbacks import Callback, ProgressBar

from ._model import VQVAE, VQVAELoss
from ._net import DeadCodeRestart, VQVAENet

__all__ = ["EpochCounter", "StoppedEarly", "train_net"]

#: Serialises the seeded weight initialisation of fits in parallel threads.
_GLOBAL_RNG_LOCK = threading.Lock()


class EpochCounter(Callback):
    """Counts the epochs that run in one training call."""

    def on_train_begin(self, net, **kwargs):
        self.n_epochs_ = 0

    def on_epoch_end(self, net, **kwargs):
        self.n_epochs_ += 1


class StoppedEarly(Exception):
    """Training ended before ``max_epochs``; carries the net, is never cached."""

    def __init__(self, net, n_epochs):
        super().__init__(n_epochs)
        self.net, self.n_epochs = net, n_epochs


def train_net(X, training_params, seed, device, verbose):
    """Build and train a :class:`VQVAENet` on padded (n, C, H, W) float32 ``X``.

    Module level so that ``joblib.Memory`` can cache it: the key is the data,
    the training parameters, the seed and the device (not ``verbose``).
    """
    p = training_params
    counter = EpochCounter()
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
        augment_scale=float(p["augment_scale"]),
        crop_size=None if p["crop_size"] is None else int(p["crop_size"]),
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
        net.module_.quantizer.release_training_state()
        net.augment_generator_ = None
    if counter.n_epochs_ < int(p["max_epochs"]):
        raise StoppedEarly(net, counter.n_epochs_)
    return net
