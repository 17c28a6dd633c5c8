"""A small thread pool for the NumPy work around the matrix products.

BLAS spreads a matrix product over its own threads, but plain NumPy copies,
additions and multiplications run on one core. They release the GIL, so
splitting an array operation into slices and running the slices in threads
uses the other cores.

Two ways of sharing the cores with BLAS are used:

- Fine-grained: copies and element-wise operations run in this pool, and
  the matrix products stay on the calling thread, where BLAS threads them.
- Coarse-grained (:func:`run_chunks`): whole chunks (copy, product, write
  back) run in the pool while BLAS is limited to one thread. A two-thread
  BLAS product waits at every block for its second thread. On a loaded
  machine a waiting thread can lose whole scheduler slices: a
  ``(32 x 3200) @ (3200 x 160)`` product was measured at 0.7 ms on one
  thread and 64 ms on two. Chunks synchronize once per chunk instead. This
  needs threadpoolctl to set the BLAS thread count; without it the
  fine-grained way is used.

Work submitted from inside a task runs inline, so tasks never wait on the
pool they run in.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Operations on fewer bytes than this run on the calling thread: handing work
# to another thread costs tens of microseconds.
MIN_PARALLEL_BYTES = 1 << 18

# Passes of fewer floating point operations run their chunks on the calling
# thread: on the 1d-first benchmark case (1.6 MFLOP per pass) spreading
# them took 1.6 ms against 0.9 ms inline.
MIN_CHUNK_FLOPS = 8_000_000

_lock = threading.Lock()
_task_state = threading.local()
_blas_controller = None  # threadpoolctl controller of the BLAS libraries; False if unavailable
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
    if threads <= 1 or getattr(_task_state, "active", False):
        for task in tasks:
            task()
        return

    # NumPy's error state is per thread: carry the caller's into the workers,
    # so that for example inf * 0 warns or stays silent as the caller chose.
    error_state = np.geterr()

    def run_bundle(bundle):
        _task_state.active = True
        try:
            with np.errstate(**error_state):
                for task in bundle:
                    task()
        finally:
            _task_state.active = False

    bundles = [tasks[start:stop] for start, stop in split_range(len(tasks), threads)]
    pool = _get_pool(threads - 1)
    futures = [pool.submit(run_bundle, bundle) for bundle in bundles[1:]]
    try:
        run_bundle(bundles[0])
    finally:
        for future in futures:
            future.result()


def parallel_parts(nbytes: int) -> int:
    """Return how many parts an operation on ``nbytes`` bytes is worth splitting into."""
    if nbytes < MIN_PARALLEL_BYTES or getattr(_task_state, "active", False):
        return 1
    return get_num_threads()


def _get_blas_controller():
    global _blas_controller
    if _blas_controller is None:
        try:
            import threadpoolctl
        except ImportError:
            _blas_controller = False
        else:
            controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
            _blas_controller = controller if controller.lib_controllers else False
    return _blas_controller or None


def chunk_threads() -> int:
    """Return how many threads :func:`run_chunks` would use: 1 without threadpoolctl or inside a task."""
    if getattr(_task_state, "active", False) or _get_blas_controller() is None:
        return 1
    return get_num_threads()


def run_chunks(items, make_buffers, work, flops: int | None = None) -> list:
    """Run ``work(item, buffers)`` for every item, the items split over :func:`chunk_threads` threads.

    Each thread gets one contiguous run of items and its own ``buffers =
    make_buffers()``. Work of fewer than :data:`MIN_CHUNK_FLOPS` floating
    point operations (``flops``, when given) runs on the calling thread. With more than one thread, BLAS is limited to one
    thread meanwhile (process-wide, so NumPy products in other threads of
    the program are single-threaded for that time too). Returns the buffers
    of each run, in order, so that callers can combine per-thread partial
    results.
    """
    items = list(items)
    threads = min(chunk_threads(), len(items))
    if flops is not None and flops < MIN_CHUNK_FLOPS:
        threads = 1
    runs = [items[start:stop] for start, stop in split_range(len(items), max(1, threads))]
    results = [None] * len(runs)

    def run(index):
        buffers = make_buffers()
        for item in runs[index]:
            work(item, buffers)
        results[index] = buffers

    if threads <= 1:
        for index in range(len(runs)):
            run(index)
        return results
    with _get_blas_controller().limit(limits=1):
        run_tasks((lambda i=i: run(i)) for i in range(len(runs)))
    return results


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
