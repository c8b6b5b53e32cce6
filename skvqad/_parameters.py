"""The split of :class:`~skvqad.VQVAEAnomalyDetector`'s parameters, declared once.

Every constructor parameter belongs to exactly one group (a test checks that
the groups cover ``get_params()`` exactly). The groups decide what a parameter
may change:

- ``TRAINING``: the trained network. They form, with the training images, the
  seed and the device, the key under which ``memory=`` caches a network; a
  parameter missing here would silently reuse a network trained without it.
- ``MAP``: how a trained network's output becomes an anomaly map
  (:mod:`skvqad._anomaly_map`). Changeable by ``set_params`` after fit.
- ``SCORING``: which map is scored, how a map becomes an image score, and the
  threshold ``offset_``. Changeable after fit; ``offset_`` then needs a refit.
- ``RUNTIME``: where and how verbosely the work runs, and the seed and cache
  themselves.

Docstrings that list a group are generated from these tuples
(:func:`format_names`).
"""

import inspect
import os
import textwrap
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

__all__ = [
    "CONSTRAINTS",
    "Count",
    "MAP",
    "POOLINGS",
    "RUNTIME",
    "SCORING",
    "TRAINING",
    "fill_groups",
    "fill_missing_params",
    "fill_names",
    "format_names",
]


class Count(Interval):
    """scikit-learn's ``Interval`` of integers, refusing booleans.

    ``True`` is an ``int`` to Python, so ``Interval(Integral, 1, None)``
    takes ``batch_size=True`` as 1 while it refuses ``False``; a count given
    as a boolean is a mistake, refused with the same message as other
    values out of the interval.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


#: How a map becomes an image score (:func:`skvqad._anomaly_map.pool_maps`).
POOLINGS = ("mean", "max", "gaussian_max", "gaussian_contrast")

#: Parameters that change the trained network (the ``memory`` cache key).
TRAINING = (
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
    "augment_scale",
    "crop_size",
    "max_epochs",
    "batch_size",
    "lr",
    "optimizer",
    "callbacks",
    "mixed_precision",
    "channels_last",
    "compile",
)

#: Parameters that turn a network's output into an anomaly map.
MAP = (
    "dilation_size",
    "upsampling",
    "alignment_normalization",
    "alignment_distance",
    "reconstruction",
    "reconstruction_calibration",
    "ssim_win_size",
    "ssim_gaussian_weights",
    "ssim_k1",
    "ssim_k2",
    "ssim_channel_reduction",
    "ssim_dilation_size",
    "map_normalization",
)

#: Parameters that turn maps into image scores and labels.
SCORING = ("anomaly_map_type", "score_pooling", "score_sigma", "contamination")

#: Parameters that change neither the network nor the maps.
RUNTIME = (
    "device",
    "eval_batch_size",
    "random_state",
    "memory",
    "accelerator",
    "verbose",
)

#: scikit-learn's ``_parameter_constraints`` of the detector, per parameter.
CONSTRAINTS = {
    "n_downsampling": [Count(Integral, 1, None, closed="left")],
    "n_residual_layers": [Count(Integral, 0, None, closed="left")],
    "hidden_channels": [Count(Integral, 1, None, closed="left")],
    "n_embeddings": [Count(Integral, 1, None, closed="left")],
    "embedding_dim": [Count(Integral, 1, None, closed="left")],
    "beta": [Interval(Real, 0, None, closed="left")],
    "codebook_update": [StrOptions({"loss", "ema"})],
    "restart_dead_codes": ["boolean"],
    "augment": [None, StrOptions({"hflip", "flips"})],
    "augment_rotation": [Interval(Real, 0, 180, closed="both")],
    "augment_scale": [Interval(Real, 1, None, closed="left")],
    "crop_size": [None, Count(Integral, 2, None, closed="left")],
    "anomaly_map_type": [StrOptions({"ssim+am", "ssim", "am"})],
    "dilation_size": [Count(Integral, 1, None, closed="left")],
    "upsampling": [StrOptions({"nearest", "bilinear"})],
    "reconstruction": [StrOptions({"mean", "probs"})],
    "reconstruction_calibration": [None, StrOptions({"isotonic"})],
    "alignment_normalization": [None, StrOptions({"per_code"})],
    "alignment_distance": [StrOptions({"squared", "euclidean"})],
    "ssim_win_size": [Count(Integral, 3, None, closed="left")],
    "ssim_gaussian_weights": ["boolean"],
    "ssim_k1": [Interval(Real, 0, 1, closed="right")],
    "ssim_k2": [Interval(Real, 0, 1, closed="right")],
    "ssim_channel_reduction": [StrOptions({"mean", "min", "luminance"})],
    "ssim_dilation_size": [Count(Integral, 1, None, closed="left")],
    "map_normalization": [None, StrOptions({"per_pixel"})],
    "score_pooling": [StrOptions(set(POOLINGS))],
    "score_sigma": [Interval(Real, 0, None, closed="neither")],
    "max_epochs": [Count(Integral, 1, None, closed="left")],
    "batch_size": [Count(Integral, 1, None, closed="left")],
    "lr": [Interval(Real, 0, None, closed="neither")],
    "optimizer": [type],
    "device": [str],
    "eval_batch_size": [
        StrOptions({"auto"}),
        Count(Integral, 1, None, closed="left"),
    ],
    "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
    "random_state": ["random_state"],
    "callbacks": [list, None],
    "memory": [None, str, os.PathLike, HasMethods(["cache"])],
    "accelerator": [None, HasMethods(["prepare"])],
    "verbose": ["verbose"],
    "mixed_precision": [StrOptions({"auto", "no", "bf16"})],
    "channels_last": ["boolean", StrOptions({"auto"})],
    "compile": ["boolean"],
}


def format_names(names):
    """``names`` as a docstring list: ``` ``a``, ``b`` and ``c`` ```.

    Parameters
    ----------
    names : sequence of str

    Returns
    -------
    str
    """
    quoted = [f"``{name}``" for name in names]
    if len(quoted) < 2:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def fill_names(doc, placeholder, names, indent=8):
    """Replace the line ``placeholder`` of ``doc`` by ``names``, wrapped.

    Parameters
    ----------
    doc : str
        A docstring holding ``placeholder`` on a line of its own, indented by
        ``indent`` spaces.
    placeholder : str
    names : sequence of str
    indent : int, default=8

    Returns
    -------
    str
    """
    text = textwrap.fill(
        format_names(names),
        width=79,
        initial_indent=" " * indent,
        subsequent_indent=" " * indent,
    )
    return doc.replace(" " * indent + placeholder, text)


def fill_groups(doc):
    """Write the lines ``{training}`` and ``{post}`` of ``doc``: the groups' names.

    ``{training}`` lists :data:`TRAINING`, ``{post}`` :data:`MAP` and
    :data:`SCORING` (the detector's docstring, as generated).
    """
    doc = fill_names(doc, "{training}", TRAINING)
    return fill_names(doc, "{post}", MAP + SCORING)


def fill_missing_params(estimator):
    """Give an estimator unpickled from an older skvqad its newer parameters.

    A parameter added since the estimator was saved (``augment_scale``, say)
    is set to its default, which leaves what the saved network does unchanged
    when, as for every parameter added so far, the default is the old
    behaviour; ``get_params`` and ``clone`` then work on it.
    """
    signature = inspect.signature(type(estimator).__init__)
    for name, parameter in signature.parameters.items():
        if parameter.default is not parameter.empty and name not in vars(estimator):
            setattr(estimator, name, parameter.default)
