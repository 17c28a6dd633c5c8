"""A small thread pool for the NumPy work around the matrix products.

BLAS spreads a matrix product over its own threads, but plain NumPy copies,
additions and multiplications run on one core. They release the GIL, so
splitting an array operation into slices and running the slices in threads
uses the other cores.

Mostly copies and element-wise operations run in this pool. Large matrix
products stay on the calling thread, where BLAS threads them itself, because
a large product inside a pool thread would start BLAS threads of its own and
oversubscribe the cores. The depthwise path runs its small batched products
in the pool: OpenBLAS runs products that small on one thread.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Operations on fewer bytes than this run on the calling thread: handing work
# to another thread costs tens of microseconds.
MIN_PARALLEL_BYTES = 1 << 18

_lock = threading.Lock()
_requested_threads: int | None = None
_default_threads: int | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _blas_threads() -> int | None:
    """Return the thread count of NumPy's BLAS, when threadpoolctl is installed."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    counts = [pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"]
    return counts[0] if counts else None


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """Return the number of threads the kernels use for copies and element-wise work.

    The count is the one given to :func:`set_num_threads`, else the environment
    variable ``CONVGRAD_NUM_THREADS``, else the thread count of NumPy's BLAS as
    threadpoolctl reports it, else the number of cores this process may use.
    """
    global _default_threads
    if _requested_threads is not None:
        return _requested_threads
    if _default_threads is None:
        from_env = os.environ.get("CONVGRAD_NUM_THREADS")
        if from_env is not None:
            try:
                _default_threads = max(1, int(from_env))
            except ValueError:
                raise ValueError(
                    f"CONVGRAD_NUM_THREADS must be a positive integer, got {from_env!r}"
                ) from None
        else:
            _default_threads = _blas_threads() or _available_cores()
    return _default_threads


def set_num_threads(threads: int | None) -> None:
    """Set the number of threads for copies and element-wise work; None restores the default.

    This does not change the thread count of BLAS (use threadpoolctl for that).
    """
    global _requested_threads
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise TypeError(f"threads must be an int or None, got {threads!r} of type {type(threads).__name__}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
    _requested_threads = threads


def _get_pool(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != threads:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="convgrad")
            _pool_size = threads
        return _pool


def split_range(length: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(length)`` into at most ``parts`` contiguous, nearly equal ``(start, stop)`` pairs."""
    parts = max(1, min(parts, length))
    bounds = [length * i // parts for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i] < bounds[i + 1]]


def run_tasks(tasks) -> None:
    """Run callables without arguments on :func:`get_num_threads` threads, the calling one included.

    The tasks are dealt in order into one contiguous bundle per thread; the
    calling thread runs the first bundle.
    """
    tasks = list(tasks)
    threads = min(get_num_threads(), len(tasks))
    if threads <= 1:
        for task in tasks:
            task()
        return

    # NumPy's error state is per thread: carry the caller's into the workers,
    # so that for example inf * 0 warns or stays silent as the caller chose.
    error_state = np.geterr()

    def run_bundle(bundle):
        with np.errstate(**error_state):
            for task in bundle:
                task()

    bundles = [tasks[start:stop] for start, stop in split_range(len(tasks), threads)]
    pool = _get_pool(threads - 1)
    futures = [pool.submit(run_bundle, bundle) for bundle in bundles[1:]]
    for task in bundles[0]:
        task()
    for future in futures:
        future.result()


def parallel_parts(nbytes: int) -> int:
    """Return how many parts an operation on ``nbytes`` bytes is worth splitting into."""
    if nbytes < MIN_PARALLEL_BYTES:
        return 1
    return get_num_threads()


def _split_axis(shape: tuple[int, ...], parts: int) -> int | None:
    """Return the first axis long enough to give every part a slice, else the longest axis."""
    for axis, length in enumerate(shape):
        if length >= parts:
            return axis
    if not shape:
        return None
    axis = int(np.argmax(shape))
    return axis if shape[axis] > 1 else None


def _sliced(array: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    return array[tuple(index)]


def parallel_copy(destination: np.ndarray, source: np.ndarray) -> None:
    """Copy ``source`` into ``destination`` (same shape), in slices over the thread pool."""
    parts = parallel_parts(destination.nbytes)
    axis = _split_axis(destination.shape, parts) if parts > 1 else None
    if axis is None:
        np.copyto(destination, source)
        return
    run_tasks(
        lambda a=start, b=stop: np.copyto(_sliced(destination, axis, a, b), _sliced(source, axis, a, b))
        for start, stop in split_range(destination.shape[axis], parts)
    )
