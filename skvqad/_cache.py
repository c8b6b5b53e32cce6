"""The cached training call, computed once across processes and machines.

``joblib.Memory`` alone lets two processes that miss the cache at the same
time both compute the result: two grid-search candidates that need the same
network (same training parameters and fold, another ``dilation_size``) would
both train it. :func:`cached_call` takes a file lock per key on a miss, so
the second process waits, then loads what the first one stored.
"""

import inspect
import os

import joblib
from filelock import FileLock
from sklearn.utils.validation import check_memory

__all__ = ["LOCK_DIR", "cached_call", "call_key"]

#: Folder of the lock files, inside the memory's location.
LOCK_DIR = "skvqad_locks"


def cached_call(memory, func, *args, ignore=(), **kwargs):
    """``func(*args, **kwargs)`` through ``memory``, computed once across processes.

    With a ``joblib.Memory`` on a local or shared folder, the call is keyed by
    one hash (:func:`call_key`) of ``func``'s name and source and of its
    arguments but ``ignore``. A stored result is loaded without a lock. On a
    miss, a ``filelock.FileLock`` on ``<location>/skvqad_locks/<key>.lock`` is
    held while the cache is looked up again, and the result computed and
    stored: a process asking for the same call meanwhile (a thread of this
    process, another process, or another machine that mounts the same
    folder) waits for the lock, then loads the stored result. Calls with
    other keys run in parallel. An exception raised by ``func`` is not
    cached, and the lock is released.

    Parameters
    ----------
    memory : None, str, path-like or object with a ``cache`` method
        The cache: None caches nothing; a path is a ``joblib.Memory``
        location. A ``joblib.Memory`` without a location, with a non-local
        store backend, or another object with ``joblib.Memory``'s interface
        is used as ``memory.cache(func, ignore=ignore)(*args, **kwargs)``,
        without a lock.
    func : callable
        A module-level function (its qualified name and source are part of
        the key, so that editing it invalidates its results, as
        ``joblib.Memory`` does).
    *args, **kwargs
        Its arguments.
    ignore : sequence of str, default=()
        Names of arguments left out of the key (such as ``verbose``).

    Returns
    -------
    object
        What ``func`` returns, computed or loaded.

    Raises
    ------
    ValueError
        If ``memory`` is neither None, a path nor has a ``cache`` method
        (from :func:`sklearn.utils.validation.check_memory`).
    Exception
        Whatever ``func`` raises; nothing is cached then.

    Notes
    -----
    The lock is ``fcntl.flock`` on Unix and ``msvcrt.locking`` on Windows,
    through filelock, which falls back to a marker-file lock where ``flock``
    is missing. The operating system releases it when its process dies, so a
    killed worker leaves no stale lock. On a network file system whose locks
    are not shared between machines (NFS mounted with ``nolock`` or
    ``local_lock=all``, some FUSE mounts), processes on different machines
    can still compute the same result twice; the cache stays correct, since
    joblib writes each result to a temporary file and renames it.

    Examples
    --------
    >>> import statistics, tempfile
    >>> from skvqad._cache import cached_call
    >>> location = tempfile.mkdtemp()
    >>> cached_call(location, statistics.median, [3, 1, 2])  # computed
    2
    >>> cached_call(location, statistics.median, [3, 1, 2])  # loaded
    2
    """
    memory = check_memory(str(memory) if isinstance(memory, os.PathLike) else memory)
    location = getattr(memory, "location", None)
    if location is None or getattr(memory, "backend", None) != "local":
        return memory.cache(func, ignore=list(ignore))(*args, **kwargs)
    key = call_key(func, args, kwargs, ignore=ignore)
    # joblib hashes only the key: the (possibly large) arguments are hashed once.
    keyed = memory.cache(_keyed_call, ignore=["func", "args", "kwargs"])
    # A first look without the lock, so that cached results load in parallel.
    # It also records _keyed_call's code at a new location, where joblib
    # would otherwise take a process's first call for a miss when that
    # process has used _keyed_call at another location before.
    if keyed.check_call_in_cache(key, func, args, kwargs):
        return keyed(key, func, args, kwargs)
    locks = os.path.join(location, LOCK_DIR)
    os.makedirs(locks, exist_ok=True)
    with FileLock(os.path.join(locks, f"{key}.lock")):
        return keyed(key, func, args, kwargs)  # joblib looks again, then computes


def call_key(func, args, kwargs, *, ignore=()):
    """The cache key of ``func(*args, **kwargs)``: one ``joblib.hash``.

    Parameters
    ----------
    func : callable
        A function; its source is part of the key (its bytecode where the
        source file cannot be read).
    args : tuple
        Positional arguments.
    kwargs : dict
        Keyword arguments.
    ignore : sequence of str, default=()
        Argument names left out.

    Returns
    -------
    str
        32 hexadecimal digits (MD5), the same in every process for equal
        arguments; a ``numpy.memmap`` hashes as the array it maps.

    Raises
    ------
    TypeError
        If the arguments do not fit ``func``'s signature.
    """
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    ignore = set(ignore)
    kept = {k: v for k, v in bound.arguments.items() if k not in ignore}
    try:
        code = inspect.getsource(func)
    except (OSError, TypeError):  # no source file (a frozen install): bytecode
        code = getattr(getattr(func, "__code__", None), "co_code", None)
    name = f"{func.__module__}.{func.__qualname__}"
    return joblib.hash((name, code, kept), coerce_mmap=True)


def _keyed_call(key, func, args, kwargs):
    """``func(*args, **kwargs)``; ``joblib.Memory`` caches it under ``key`` only."""
    return func(*args, **kwargs)
