"""The JSON that ``skvqad`` writes (``report.json``, ``benchmark.json``).

Strict JSON, as ``jq``, JavaScript's ``JSON.parse`` and other languages'
parsers read it: a figure that does not exist (NaN: a metric with one class,
a variant the data cannot have) is ``null`` rather than Python's ``NaN``
extension, numpy scalars are numbers rather than strings, and anything else
JSON cannot hold is written as its ``str``.
"""

import json
import math

import numpy as np

__all__ = ["json_text"]


def json_text(value, indent=2):
    """``value`` as strict JSON text.

    Parameters
    ----------
    value : object
        Dicts, lists, tuples, numbers (Python or numpy), strings, None,
        nested; other objects become their ``str``.
    indent : int or None, default=2
        As for :func:`json.dumps`; None writes one line.

    Returns
    -------
    str
        JSON with every non-finite float (NaN, +-inf) as ``null``.
    """
    return json.dumps(_finite(value), indent=indent, default=str, allow_nan=False)


def _finite(value):
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
