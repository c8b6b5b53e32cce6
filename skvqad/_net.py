"""skorch net that trains a :class:`~skvqad.VQVAE` without targets."""

import math
import sys
import time

import torch
import torch.nn.functional as F
from skorch import NeuralNet
from skorch.callbacks import Callback, PassthroughScoring, PrintLog
from skorch.dataset import get_len, unpack_data
from skorch.hf import AccelerateMixin
from skorch.utils import Ansi, to_tensor
from tqdm.auto import tqdm

from ._model import run_network
from ._validation import as_unit_float

__all__ = ["AcceleratedVQVAENet", "EpochProgressBar", "VQVAENet"]

#: Values of ``VQVAENet(augment=...)``.
AUGMENTATIONS = (None, "hflip", "flips")


class VQVAENet(NeuralNet):
    """skorch ``NeuralNet`` for a VQ-VAE: the loss needs the input, not a target.

    Everything is skorch's own training loop; only :meth:`get_loss` is
    overridden, to feed the module's output and the input batch to the
    criterion (:class:`~skvqad.VQVAELoss`). Fit with ``net.fit(X)``, ``X`` a
    float32 array of shape (n_samples, channels, height, width) in [0, 1] (or
    uint8 in 0-255, divided by 255 batch by batch on the device), with
    height and width multiples of ``2**n_downsampling``.

    The history also records (callback :class:`CodebookPerplexity`) the
    codebook ``perplexity`` of every training batch,
    ``exp(-sum_m p_m log p_m)`` with ``p_m`` the share of latent positions
    that select code ``m``: 1 when a single code is used, up to
    ``n_embeddings`` when all are used equally (van den Oord et al., 2017).
    Its per-epoch mean is the ``perplexity`` column of ``net.history``.

    Parameters
    ----------
    module, criterion
        As for :class:`skorch.NeuralNet`; ``criterion`` is called as
        ``criterion(logits, x, z_e, z_q)``.
    augment : {None, "hflip", "flips"}, default=None
        Random flips of each training image, drawn independently per image
        with probability 1/2 on the device, batched: ``"hflip"`` left-right
        only, ``"flips"`` left-right and up-down.
    augment_rotation : float, default=0.0
        Largest rotation of a training image, in degrees, in [0, 180]: each
        image turns about its centre by an angle drawn uniformly in
        ``[-augment_rotation, augment_rotation]``, bilinear, reflected at the
        borders (after the flips). 0 turns nothing.
    augment_scale : float, default=1.0
        Largest zoom of a training image (or crop), >= 1: each is magnified
        by a factor drawn log-uniformly in ``[1 / augment_scale,
        augment_scale]`` about its centre, in the same resampling as the
        rotation (so that textures and parts seen a little closer or farther
        away are normal). 1 zooms nothing.
    crop_size : int or None, default=None
        Train on one random square crop of this side, in pixels, of each
        training image in each batch (after the flips and rotations); a
        multiple of ``2**n_downsampling`` so that the latent grid tiles it.
        None, or a side not smaller than the images, trains on whole images.
        The network is fully convolutional, so it scores whole images all
        the same.
    augment_seed : int, default=0
        Seed of the private CPU generator that draws the flips, angles and
        crops.
    **kwargs
        As for :class:`skorch.NeuralNet`.
    """

    def __init__(
        self,
        module,
        criterion,
        *args,
        augment=None,
        augment_rotation=0.0,
        augment_scale=1.0,
        crop_size=None,
        augment_seed=0,
        **kwargs,
    ):
        super().__init__(module, criterion, *args, **kwargs)
        self.augment = augment
        self.augment_rotation = augment_rotation
        self.augment_scale = augment_scale
        self.crop_size = crop_size
        self.augment_seed = augment_seed

    def get_default_callbacks(self):
        """skorch's defaults (its table as :class:`PlainPrintLog`), the batch
        perplexity and its per-epoch mean."""
        defaults = [
            (name, PlainPrintLog() if name == "print_log" else callback)
            for name, callback in super().get_default_callbacks()
        ]
        return [
            *defaults,
            ("codebook_perplexity", CodebookPerplexity()),
            (
                "perplexity",
                PassthroughScoring(
                    name="perplexity", on_train=True, lower_is_better=False
                ),
            ),
        ]

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the augmentation settings once per training call."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if self.augment not in AUGMENTATIONS:
            raise ValueError(
                f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}"
            )
        if not 0 <= self.augment_rotation <= 180:
            raise ValueError(
                f"augment_rotation must be in [0, 180] degrees, "
                f"got {self.augment_rotation!r}"
            )
        if not self.augment_scale >= 1:
            raise ValueError(f"augment_scale must be >= 1, got {self.augment_scale!r}")
        stride = 2 ** unwrapped_module(self).n_downsampling
        if self.crop_size is not None and (
            self.crop_size < 2 * stride or self.crop_size % stride
        ):
            raise ValueError(
                f"crop_size must be a multiple of 2**n_downsampling = {stride} "
                f"and at least {2 * stride}, got {self.crop_size!r}."
            )

    def train_step_single(self, batch, **fit_params):
        """skorch's training step, on a randomly flipped, turned and cropped batch."""
        return super().train_step_single(self.augmented_batch(batch), **fit_params)

    def augmented_batch(self, batch):
        """``batch`` randomly flipped, turned and cropped (as set), on the device."""
        resample = bool(self.augment_rotation) or self.augment_scale > 1
        Xi, yi = unpack_data(batch)
        # uint8 training images (0-255) move to the device as they are and
        # become float32 in [0, 1] there.
        x = as_unit_float(to_tensor(Xi, device=self.device))
        if self.augment is None and not resample and not self.crop_size:
            return x, yi
        generator = getattr(self, "augment_generator_", None)
        if generator is None:
            generator = torch.Generator().manual_seed(int(self.augment_seed))
            self.augment_generator_ = generator
        axes = {None: (), "hflip": (-1,), "flips": (-1, -2)}[self.augment]
        for axis in axes:
            flip = torch.rand(x.shape[0], generator=generator) < 0.5
            flip = flip.to(x.device).view(-1, *([1] * (x.ndim - 1)))
            x = torch.where(flip, x.flip(axis), x)
        turn, zoom = self.augment_rotation, self.augment_scale
        if resample and self.crop_size:
            # One resampling of the crop only: turning the whole image then
            # cropping draws the same crops (but for how borders reflect) at
            # (side / crop)**2 times the cost.
            x = random_rotated_crop(x, self.crop_size, turn, generator, zoom)
        elif resample:
            x = random_rotation(x, turn, generator, zoom)
        elif self.crop_size:
            x = random_crop(x, self.crop_size, generator)
        return x, yi

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch, without a host synchronisation per batch.

        As :meth:`skorch.NeuralNet.run_single_epoch`, except that each
        batch's loss is recorded as the (detached) tensor on the device and
        turned into a float for every batch at once when the epoch ends, so
        that a GPU is not stopped after every step to read one number.
        Callbacks run on ``on_epoch_end`` (skorch's loss scoring, the
        printed table) see floats; a callback reading the batch loss on
        ``on_batch_end`` gets the tensor (``float()`` reads it).
        """
        if iterator is None:
            return
        losses = []
        try:
            for batch in iterator:
                self.notify("on_batch_begin", batch=batch, training=training)
                step = step_fn(batch, **fit_params)
                losses.append(step["loss"].detach())
                self.history.record_batch(prefix + "_loss", losses[-1])
                size = get_len(batch[0] if isinstance(batch, (tuple, list)) else batch)
                self.history.record_batch(prefix + "_batch_size", size)
                self.notify("on_batch_end", batch=batch, training=training, **step)
        finally:  # floats in the history even when training is interrupted
            rows = self.history[-1]["batches"][-len(losses) :] if losses else []
            values = torch.stack(losses).tolist() if losses else []
            for row, value in zip(rows, values):
                row[prefix + "_loss"] = value
        self.history.record(prefix + "_batch_count", len(losses))

    def infer(self, x, **fit_params):
        """The module's forward pass, in its mixed precision and memory format.

        :func:`skvqad._model.run_network` of the (possibly wrapped) module, as
        :meth:`skvqad.VQVAE.set_execution` set it; float32 outputs.
        """
        x = to_tensor(x, device=self.device)
        return run_network(self.module_, unwrapped_module(self), x)

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
        return self.criterion_(y_pred.logits, x, y_pred.z_e, y_pred.z_q)


class AcceleratedVQVAENet(AccelerateMixin, VQVAENet):
    """:class:`VQVAENet` trained through Hugging Face accelerate (skorch's mixin).

    skorch's :class:`~skorch.hf.AccelerateMixin` prepares the module, the
    optimizer and every epoch's data loader with the ``accelerator`` (under
    ``accelerate launch`` or ``torchrun``: PyTorch DDP, each process training
    on its share of the batches) and unwraps the module after training. What
    the VQ-VAE learns without gradients is kept the same on every process:

    * the quantiser sums its selection counts and EMA statistics over the
      processes (:attr:`skvqad._model.VectorQuantizer.sync_statistics`), so
      the codebook follows all the data, and dead codes restart from rank
      0's draws;
    * at the end of training every buffer (the batch-norm running
      statistics) is rank 0's, as DDP makes it before each forward pass;
    * process ``i`` draws its augmentations from seed ``augment_seed + i``,
      so that the processes do not flip their different images alike.

    Parameters
    ----------
    accelerator : accelerate.Accelerator
        As for :class:`skorch.hf.AccelerateMixin`; ``device`` must be None
        when it places the tensors (its default).
    **kwargs
        As for :class:`VQVAENet` and :class:`skorch.hf.AccelerateMixin`.
    """

    def _initialize_accelerator(self):
        # skorch's preparation but for the criterion: it has no parameters (nor
        # a device), and accelerate (1.16) wraps every module it prepares on
        # several CPU processes in DDP, which refuses such a module.
        criteria, self._criteria = self._criteria, []
        try:
            return super()._initialize_accelerator()
        finally:
            self._criteria = criteria

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the settings; seed this process's augmentations; sync the codes."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        if getattr(self, "augment_generator_", None) is None:
            seed = int(self.augment_seed) + self.accelerator.process_index
            self.augment_generator_ = torch.Generator().manual_seed(seed)
        quantizer = unwrapped_module(self).quantizer
        quantizer.sync_statistics = self.accelerator.num_processes > 1

    def train_step_single(self, batch, **fit_params):
        """skorch's accelerated training step, on the augmented batch."""
        return super().train_step_single(self.augmented_batch(batch), **fit_params)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        """Give every process rank 0's buffers, then unwrap (skorch's mixin)."""
        module = unwrapped_module(self)
        module.quantizer.sync_statistics = False
        if self.accelerator.num_processes > 1:
            # DDP broadcasts rank 0's buffers before each forward pass only:
            # the batch-norm statistics of each process's last batch differ.
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer, src=0)
        return super().on_train_end(net, X=X, y=y, **kwargs)


def unwrapped_module(net):
    """``net.module_``, without the wrapper (DDP) that accelerate may put on it."""
    accelerator = getattr(net, "accelerator", None)
    if accelerator is None:
        return net.module_
    return accelerator.unwrap_model(net.module_)


def random_rotation(x, max_degrees, generator, max_scale=1.0):
    """Turn (and zoom) each image of a batch by its own random angle, batched.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W), floating
        The images.
    max_degrees : float
        Largest angle, in degrees; angles are uniform in
        ``[-max_degrees, max_degrees]``.
    generator : torch.Generator
        CPU generator the angles (and zooms) are drawn from.
    max_scale : float, default=1.0
        Largest zoom, >= 1 (:func:`_zooms`); 1 draws none.

    Returns
    -------
    torch.Tensor of shape (n, C, H, W), dtype and device of ``x``
        The turned images (about their centres, bilinear, reflected at the
        borders).
    """
    n, _, height, width = x.shape
    angles = (2 * torch.rand(n, generator=generator) - 1) * math.radians(max_degrees)
    zoom = _zooms(n, max_scale, generator)
    cos, sin, zero = angles.cos() * zoom, angles.sin() * zoom, torch.zeros(n)
    # A rotation in pixels, written in affine_grid's [-1, 1] coordinates,
    # which scale x by 2 / width and y by 2 / height.
    theta = torch.stack(
        [
            torch.stack([cos, -sin * height / width, zero], dim=-1),
            torch.stack([sin * width / height, cos, zero], dim=-1),
        ],
        dim=1,
    ).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def random_rotated_crop(x, size, max_degrees, generator, max_scale=1.0):
    """A random square crop of each image, turned (and zoomed) at random.

    Samples only the crop's pixels (one ``grid_sample`` of the whole batch),
    so its cost does not grow with the image: the crop's centre is uniform
    over the centres of the crops that fit (as :func:`random_crop`), the
    angle uniform in ``[-max_degrees, max_degrees]`` (as
    :func:`random_rotation`), and pixels the turned square takes from
    outside the image are reflected back in.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W), floating
        The images.
    size : int
        Side of the crops, in pixels, >= 1; an axis shorter than ``size`` is
        kept whole.
    max_degrees : float
        Largest angle, in degrees.
    generator : torch.Generator
        CPU generator the offsets and angles (and zooms) are drawn from.
    max_scale : float, default=1.0
        Largest zoom, >= 1 (:func:`_zooms`): the crop samples a square of
        side ``size * f`` about the same centre, ``f`` log-uniform in
        ``[1 / max_scale, max_scale]``, resampled to ``size``; 1 draws none.

    Returns
    -------
    torch.Tensor of shape (n, C, min(size, H), min(size, W)), dtype of ``x``
        Bilinear samples; with an angle of 0 exactly :func:`random_crop`'s
        crop.
    """
    n, _, height, width = x.shape
    crop_h, crop_w = min(size, height), min(size, width)
    top = torch.randint(0, height - crop_h + 1, (n,), generator=generator)
    left = torch.randint(0, width - crop_w + 1, (n,), generator=generator)
    angles = (2 * torch.rand(n, generator=generator) - 1) * math.radians(max_degrees)
    zoom = _zooms(n, max_scale, generator)
    cos, sin = angles.cos() * zoom, angles.sin() * zoom
    # affine_grid maps the crop's [-1, 1] coordinates (half a crop side to
    # a unit) to the image's (half an image side to a unit): turn by the
    # angle in pixels, then move to the crop's centre.
    theta = torch.stack(
        [
            torch.stack(
                [
                    cos * crop_w / width,
                    -sin * crop_h / width,
                    (2 * left + crop_w) / width - 1,
                ],
                dim=-1,
            ),
            torch.stack(
                [
                    sin * crop_w / height,
                    cos * crop_h / height,
                    (2 * top + crop_h) / height - 1,
                ],
                dim=-1,
            ),
        ],
        dim=1,
    ).to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [n, x.shape[1], crop_h, crop_w], align_corners=False)
    return F.grid_sample(
        x, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def _zooms(n, max_scale, generator):
    """(n,) inverse zoom factors, log-uniform in ``[1 / max_scale, max_scale]``.

    Ones, drawing nothing from ``generator``, when ``max_scale == 1``, so
    that training without zooms draws the same flips, angles and crops as
    before the option existed.
    """
    if max_scale == 1:
        return torch.ones(n)
    log_scale = math.log(max_scale)
    return torch.exp((2 * torch.rand(n, generator=generator) - 1) * log_scale)


def random_crop(x, size, generator):
    """One random square crop of each image of a batch, batched on its device.

    Parameters
    ----------
    x : torch.Tensor of shape (n, C, H, W)
        The images.
    size : int
        Side of the crops, in pixels, >= 1; an axis shorter than ``size`` is
        kept whole.
    generator : torch.Generator
        CPU generator the offsets are drawn from (uniform over all crops that
        fit).

    Returns
    -------
    torch.Tensor of shape (n, C, min(size, H), min(size, W)), dtype of ``x``
    """
    n, _, height, width = x.shape
    crop_h, crop_w = min(size, height), min(size, width)
    if (crop_h, crop_w) == (height, width):
        return x
    top = torch.randint(0, height - crop_h + 1, (n,), generator=generator)
    left = torch.randint(0, width - crop_w + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(crop_h)).to(x.device)
    cols = (left[:, None] + torch.arange(crop_w)).to(x.device)
    images = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing gathers every crop at once: (n, crop_h, crop_w, C).
    crops = x.movedim(1, -1)[images, rows[:, :, None], cols[:, None, :]]
    return crops.movedim(-1, 1).contiguous()


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
    return float(perplexity_tensor(indices, n_embeddings))


def perplexity_tensor(indices, n_embeddings):
    """:func:`codebook_perplexity` as a 0-d float32 tensor on the indices' device."""
    counts = torch.bincount(indices.reshape(-1), minlength=n_embeddings).float()
    p = counts / counts.sum()
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return torch.exp(entropy)


class DeadCodeRestart(Callback):
    """Restart codebook vectors left unused (skorch callback).

    At the end of every epoch but the last, once the quantiser has counted at
    least ``min_selections_per_code`` x ``n_embeddings`` selections since the
    last restart, calls :meth:`skvqad.VectorQuantizer.restart_dead_codes` on
    it; the number of vectors restarted goes into the history column
    ``restarted_codes``. Waiting for enough selections makes "unused" mean
    the same whatever an epoch holds: a few crops of a small data set or
    thousands of whole images (an epoch of full-size training images usually
    holds enough, and then every epoch restarts).

    Parameters
    ----------
    seed : int, default=0
        Seed of the private CPU generator that picks the encoder outputs.
    min_selections_per_code : int, default=100
        Latent vectors per codebook vector to see before calling a vector
        that none of them selected dead, >= 0.
    """

    def __init__(self, seed=0, min_selections_per_code=100):
        self.seed = seed
        self.min_selections_per_code = min_selections_per_code

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.generator_ = torch.Generator().manual_seed(int(self.seed))
        self.max_epochs_ = len(net.history) + int(net.max_epochs)

    def on_epoch_end(self, net, **kwargs):
        quantizer = unwrapped_module(net).quantizer
        if len(net.history) >= self.max_epochs_:
            quantizer.epoch_counts.zero_()
            net.history.record("restarted_codes", 0)
            return
        n_codes = quantizer.codebook.num_embeddings
        if quantizer.epoch_counts.sum() < self.min_selections_per_code * n_codes:
            net.history.record("restarted_codes", 0)  # too few seen to judge
            return
        net.history.record(
            "restarted_codes", quantizer.restart_dead_codes(self.generator_)
        )

    def on_train_end(self, net, **kwargs):
        unwrapped_module(net).quantizer.release_training_state()
        self.generator_ = None


class CodebookPerplexity(Callback):
    """Record the codebook perplexity of every training batch (skorch callback).

    Writes the perplexity (:func:`codebook_perplexity`) of the batch's
    selected indices into the batch history under ``perplexity``, as a
    tensor on the device; at the end of the epoch all of them are read off
    the device at once and become floats, which skorch's
    :class:`~skorch.callbacks.PassthroughScoring` then averages per epoch.
    """

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training and y_pred is not None:
            n_codes = unwrapped_module(net).quantizer.codebook.num_embeddings
            value = perplexity_tensor(y_pred.indices, n_codes)
            net.history.record_batch("perplexity", value)

    def on_epoch_end(self, net, **kwargs):
        self.read_values(net)

    def on_train_end(self, net, **kwargs):
        self.read_values(net)  # an interrupted epoch's too

    def read_values(self, net):
        """Turn the last epoch's perplexity tensors into floats, with one read."""
        if not len(net.history):
            return
        rows = [row for row in net.history[-1]["batches"] if "perplexity" in row]
        tensors = [
            r["perplexity"] for r in rows if isinstance(r["perplexity"], torch.Tensor)
        ]
        if tensors:
            values = iter(torch.stack(tensors).tolist())
            for row in rows:
                if isinstance(row["perplexity"], torch.Tensor):
                    row["perplexity"] = next(values)


class PlainPrintLog(PrintLog):
    """skorch's per-epoch table, without colours where they would be noise.

    skorch colours each epoch's best values with ANSI escape codes; written
    to a file or a pipe (a log) those show as ``[36m...[0m``. When standard
    output is a terminal, the table is skorch's own.
    """

    def format_row(self, row, key, color):
        if sys.stdout.isatty():
            return super().format_row(row, key, color)
        return super().format_row(row, key, color="").replace(Ansi.ENDC.value, "")


class EpochProgressBar(Callback):
    """One tqdm progress bar over the epochs of a training (skorch callback).

    For trainings of many short epochs (random crops of a small data set),
    where skorch's per-epoch table and per-batch :class:`~skorch.callbacks.
    ProgressBar` print a line or a bar per epoch. Shows the epochs done, the
    time left, and the last epoch's ``train_loss`` and ``perplexity``, on
    standard error; when that is not a terminal (a log file), one plain line
    per tenth of the epochs instead.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        # Written to a file or a pipe (a log), a bar's redraws pile up on one
        # line: there, one plain line per tenth of the training instead.
        self.total_ = int(net.max_epochs)
        self.start_ = time.monotonic()
        self.bar_ = (
            tqdm(total=self.total_, unit="epoch", leave=True)
            if sys.stderr.isatty()
            else None
        )

    def on_epoch_end(self, net, **kwargs):
        last = net.history[-1]
        loss = f"{last['train_loss']:.4g}"
        perplexity = f"{last.get('perplexity', float('nan')):.1f}"
        if self.bar_ is not None:
            self.bar_.set_postfix(train_loss=loss, perplexity=perplexity, refresh=False)
            self.bar_.update(1)
            return
        epoch, step = len(net.history), max(1, self.total_ // 10)
        if epoch % step == 0 or epoch == self.total_:
            print(
                f"epoch {epoch}/{self.total_}, {time.monotonic() - self.start_:.0f} s, "
                f"train_loss={loss}, perplexity={perplexity}",
                file=sys.stderr,
                flush=True,
            )

    def on_train_end(self, net, **kwargs):
        # The bar holds the standard error stream: drop it, so that the
        # fitted detector (which keeps its callbacks) can be pickled.
        if getattr(self, "bar_", None) is not None:
            self.bar_.close()
        self.bar_ = None

    def __getstate__(self):  # interrupted trainings keep the bar: never pickle it
        state = self.__dict__.copy()
        state.pop("bar_", None)
        return state
