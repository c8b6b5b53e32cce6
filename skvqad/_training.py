"""Training a :class:`~skvqad.VQVAENet` for the detector: the factory ``fit`` calls.

Kept at module level, apart from the estimator, so that ``joblib.Memory`` can
cache :func:`train_net` (its arguments are the cache key).
"""

import copy
import os
import threading

import numpy as np
import torch
from skorch.callbacks import Callback, ProgressBar

from ._anomaly_map import pad_to_stride
from ._cache import cached_call
from ._model import VQVAE, VQVAELoss, resolve_execution
from ._net import AcceleratedVQVAENet, DeadCodeRestart, VQVAENet, unwrapped_module
from ._validation import reading_workers

__all__ = [
    "EpochCounter",
    "PaddedImageFiles",
    "StoppedEarly",
    "fit_network",
    "train_net",
    "training_set_on_device",
]

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


class PaddedImageFiles(torch.utils.data.Dataset):
    """Training images read from files, channels first and padded, for skorch.

    ``files``: a :class:`~skvqad.datasets.ImageFiles`. A torch ``Dataset`` of
    ``(image, 0)`` pairs: ``image`` a tensor of shape
    (channels, H', W'), float32, the file's image padded by reflection to a
    multiple of ``stride`` (as the detector pads training arrays), and the 0
    skorch's placeholder target. Its pickle, hence the ``memory=`` cache key,
    holds the paths, the reading options and each file's size and
    modification time, so that a file changed on disk is trained on again.
    """

    def __init__(self, files, stride):
        self.files = files
        self.stride = int(stride)
        stats = (os.stat(p) for p in files.paths)
        self.stamps = tuple((s.st_size, s.st_mtime_ns) for s in stats)
        n, height, width, channels = files.shape
        probe = pad_to_stride(torch.zeros(1, 1, height, width), self.stride)
        self.shape = (n, channels, *probe.shape[-2:])
        self.num_workers = files.num_workers

    def __len__(self):
        return len(self.files)

    def __getstate__(self):
        # The reading workers change nothing read: not in the cache key.
        state = dict(self.__dict__, num_workers=0)
        state["files"] = copy.copy(self.files)
        state["files"].num_workers = 0
        return state

    def __getitem__(self, i):
        image = torch.from_numpy(self.files[i]).movedim(-1, 0)[None]
        return pad_to_stride(image, self.stride)[0].contiguous(), torch.zeros(1)


def fit_network(X, training_params, seed, device, *, verbose, memory, accelerator):
    """Train (or load from ``memory``) the detector's network: what ``fit`` calls.

    ``X``: the padded (n, C, H, W) float32 training images, or a torch
    Dataset of them. ``memory``: the detector's parameter (None, a path or a
    ``joblib.Memory``). ``accelerator``: None or an ``accelerate.Accelerator``.
    With a cache folder, a network is trained once even when processes or
    machines sharing the folder ask for it together (:func:`cached_call`).

    With an ``accelerator`` of several processes, ``memory`` is not used:
    they train one network together, and a cache lock that made one wait
    for another would leave the other waiting for it in the training's
    collectives. With one process, the key also holds the accelerator's
    device, mixed precision and gradient accumulation.
    """
    if accelerator is not None and accelerator.num_processes > 1:
        return train_net(X, training_params, seed, None, verbose, accelerator)
    if accelerator is not None:
        settings = {
            "mixed_precision": accelerator.mixed_precision,
            "gradient_accumulation_steps": accelerator.gradient_accumulation_steps,
        }
        return cached_call(
            memory,
            train_net,
            X,
            {**training_params, "accelerate": settings},
            seed,
            str(accelerator.device),  # in the key; train_net takes the accelerator's
            verbose,
            accelerator,
            ignore=["verbose", "accelerator"],
        )
    return cached_call(
        memory, train_net, X, training_params, seed, device, verbose, ignore=["verbose"]
    )


#: Share of a CUDA device's free memory a uint8 training set may take there.
DEVICE_SET_SHARE = 0.25


def training_set_on_device(X, device):
    """uint8 training images as a tensor on the training device, when they fit.

    ``X``: the padded (n, C, H, W) training images. A uint8 array goes to a
    CUDA device whole if it takes at most ``DEVICE_SET_SHARE`` of the
    device's free memory, so that each batch is cut there with no
    host-to-device copy per batch; on the CPU it becomes a tensor sharing
    the array's memory (no copy). skorch draws the same batches from either,
    with the same values. Float32 arrays and image files are returned as
    they are (a float32 set on the device would take four times the room).
    """
    if not isinstance(X, np.ndarray) or X.dtype != np.uint8:
        return X
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if X.nbytes > DEVICE_SET_SHARE * free:
            return X
    elif device.type != "cpu":
        return X
    return torch.from_numpy(X).to(device)


def train_net(X, training_params, seed, device, verbose, accelerator=None):
    """Build and train a :class:`VQVAENet` on padded (n, C, H, W) float32 ``X``.

    Module level so that ``joblib.Memory`` can cache it: the key is the data,
    the training parameters, the seed and the device (not ``verbose``). With
    an ``accelerate.Accelerator``, an :class:`AcceleratedVQVAENet` on its
    device instead (``device`` is ignored; the accelerator is not in the
    key); afterwards the accelerator keeps no reference to it
    (``accelerator.free_memory()``).
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
    net_class, placement = VQVAENet, {"device": device}
    if accelerator is not None:
        device = accelerator.device  # torch.load knows "cpu", not "cpu:0"
        device = "cpu" if device.type == "cpu" else str(device)
        # skorch's mixin wants device None where the accelerator places tensors.
        net_class = AcceleratedVQVAENet
        placement = {
            "accelerator": accelerator,
            "device": None if accelerator.device_placement else device,
            # Its "auto" sink (the main process's print) ignores verbose=0.
            "callbacks__print_log__sink": "auto" if verbose else print,
        }
    net = net_class(
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
        # Image files (skvqad.datasets.ImageFiles) are read by worker processes.
        iterator_train__num_workers=reading_workers(X),
        callbacks=callbacks,
        augment=p["augment"],
        augment_rotation=float(p["augment_rotation"]),
        augment_scale=float(p["augment_scale"]),
        crop_size=None if p["crop_size"] is None else int(p["crop_size"]),
        augment_seed=seed,
        verbose=int(verbose),
        compile=bool(p["compile"]),
        **placement,
    )
    # Weight and codebook initialisation draw from torch's global RNG. Seed it
    # in a forked state (the user's state comes back untouched), under a lock
    # so that fits in parallel threads cannot interleave their draws.
    forked = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=forked, device_type="cuda"):
        torch.manual_seed(seed)
        net.initialize()
    execution = resolve_execution(p["mixed_precision"], p["channels_last"], device)
    unwrapped_module(net).set_execution(*execution)
    # skorch ends training quietly on Ctrl-C (KeyboardInterrupt) and early
    # stopping callbacks; such a net is returned through an exception so that
    # joblib.Memory does not cache it.
    if accelerator is None:
        X = training_set_on_device(X, device)
    try:
        net.partial_fit(X, y=None)  # trains max_epochs epochs; no re-initialisation
    finally:  # training-only state, not worth pickling
        # torch.compile's wrapper off: the plain module pickles and maps.
        net.module_ = getattr(net.module_, "_orig_mod", net.module_)
        quantizer = unwrapped_module(net).quantizer
        quantizer.release_training_state()
        net.augment_generator_ = None
        if accelerator is not None:
            quantizer.sync_statistics = False  # also after a failure
            accelerator.free_memory()
    if accelerator is not None:
        # The unwrapped module is on the accelerator's device: say so, for the
        # detector's statistics and for unpickling where that device is absent.
        net.device = device
    if counter.n_epochs_ < int(p["max_epochs"]):
        raise StoppedEarly(net, counter.n_epochs_)
    return net
