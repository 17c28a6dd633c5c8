"""Benchmark convgrad's default convolution path against PyTorch on the CPU.

For every case the script times three passes separately, in float32:

- forward: ``convgrad.conv`` against ``torch.nn.functional.conv{1,2}d``;
- input gradient: ``convgrad.conv_input_grad`` against
  ``torch.nn.grad.conv{1,2}d_input``;
- weight gradient: ``convgrad.conv_weight_grad`` against
  ``torch.nn.grad.conv{1,2}d_weight``.

Both ``torch.nn.grad`` functions call ``aten.convolution_backward`` with a
one-entry output mask, the same kernel autograd uses.

Calls of the two libraries are interleaved, and each timed sample starts after
a pause (``--settle``). A PyTorch call issued right after NumPy work was
measured 2.3x slower than one after a pause of 0.1 s or more, because the two
thread pools (OpenBLAS pthreads and PyTorch's OpenMP) contend. Both libraries
get the same thread count: ``torch.set_num_threads`` and, through
threadpoolctl, the BLAS pool of NumPy.

Reported per case and pass: median time over ``--repeats`` samples, GFLOP/s
(``2 N C_out C_in/groups prod(K) prod(O)`` per pass) from the medians, the
ratio of convgrad's median to PyTorch's, the same ratio of the fastest
samples ("best ratio", less sensitive to other processes on a shared
machine), and the peak memory convgrad allocated beyond its result during
the pass (tracemalloc, which sees NumPy's allocations), next to the size of
the pass's im2col matrix ``N C_in prod(K) prod(O)``.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python benchmarks/bench_conv.py

``--json FILE`` stores the results for ``benchmarks/plot_ratios.py``;
``--reference`` also times the loop reference on a scaled-down 2-D case.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

import convgrad
from convgrad.geometry import ConvGeometry

try:
    import threadpoolctl
except ImportError:  # optional: without it NumPy's BLAS keeps its own thread count
    threadpoolctl = None


@dataclass(frozen=True)
class Case:
    """One benchmark configuration; ``padding`` is per side and symmetric."""

    name: str
    batch: int
    in_channels: int
    out_channels: int
    spatial: tuple[int, ...]
    kernel: int
    stride: int = 1
    padding: int | None = None  # None: 'same' (stride 1, odd kernel)
    groups: int = 1

    @property
    def pad(self) -> int:
        return (self.kernel - 1) // 2 if self.padding is None else self.padding

    @property
    def convgrad_padding(self):
        return "same" if self.padding is None else self.padding

    def geometry(self) -> ConvGeometry:
        d = len(self.spatial)
        return ConvGeometry.create(
            (self.batch, self.in_channels, *self.spatial),
            (self.out_channels, self.in_channels // self.groups, *(self.kernel,) * d),
            self.stride,
            self.convgrad_padding,
            1,
            self.groups,
        )


CASES = [
    Case("1d-first", 128, 1, 32, (40,), 5),
    Case("1d-hidden", 128, 32, 32, (40,), 5),
    Case("1d-long", 32, 64, 64, (4096,), 9),
    Case("2d-first-k3", 64, 1, 32, (28, 28), 3),
    Case("2d-14x14", 64, 32, 64, (14, 14), 3),
    Case("2d-32x32", 32, 64, 128, (32, 32), 3),
    Case("2d-first-k5", 64, 1, 16, (28, 28), 5),
    Case("2d-stride2", 32, 32, 32, (28, 28), 3, stride=2, padding=1),
    Case("2d-depthwise", 64, 32, 32, (28, 28), 3, groups=32),
    Case("2d-pointwise", 64, 64, 64, (28, 28), 1),
]

PASSES = ("forward", "input_grad", "weight_grad")


# ---------------------------------------------------------------------------
# The calls being timed
# ---------------------------------------------------------------------------


def make_calls(case: Case, rng: np.random.Generator):
    """Return ``{pass: (convgrad_call, torch_call)}`` on shared float32 data."""
    geometry = case.geometry()
    d = len(case.spatial)
    x = rng.standard_normal(geometry.input_shape, dtype=np.float32)
    w = rng.standard_normal(geometry.weight_shape, dtype=np.float32)
    go = rng.standard_normal(geometry.output_shape, dtype=np.float32)
    tx, tw, tgo = (torch.from_numpy(a) for a in (x, w, go))

    conv_fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
    input_fn = {1: torch.nn.grad.conv1d_input, 2: torch.nn.grad.conv2d_input, 3: torch.nn.grad.conv3d_input}[d]
    weight_fn = {1: torch.nn.grad.conv1d_weight, 2: torch.nn.grad.conv2d_weight, 3: torch.nn.grad.conv3d_weight}[d]
    kwargs = dict(stride=case.stride, padding=case.convgrad_padding, groups=case.groups)
    torch_kwargs = dict(stride=case.stride, padding=case.pad, groups=case.groups)

    return {
        "forward": (
            lambda: convgrad.conv(x, w, **kwargs),
            lambda: conv_fn(tx, tw, **torch_kwargs),
        ),
        "input_grad": (
            lambda: convgrad.conv_input_grad(x.shape, w, go, **kwargs),
            lambda: input_fn(tx.shape, tw, tgo, **torch_kwargs),
        ),
        "weight_grad": (
            lambda: convgrad.conv_weight_grad(x, w.shape, go, **kwargs),
            lambda: weight_fn(tx, tw.shape, tgo, **torch_kwargs),
        ),
    }


# ---------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------


def calls_per_sample(fn, target_seconds: float) -> int:
    """Number of back-to-back calls that make one sample last about ``target_seconds``."""
    fn()
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return max(1, min(200, int(target_seconds / max(once, 1e-7))))


def time_sample(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def time_interleaved(ours, theirs, repeats: int, settle: float, target: float) -> tuple[list[float], list[float]]:
    """Seconds per call of ``ours`` and ``theirs``, one sample each per repeat, alternately after a pause."""
    numbers = (calls_per_sample(ours, target), calls_per_sample(theirs, target))
    samples = ([], [])
    for _ in range(repeats):
        for index, fn in enumerate((ours, theirs)):
            time.sleep(settle)
            samples[index].append(time_sample(fn, numbers[index]))
    return samples


def peak_extra_bytes(fn) -> int:
    """Peak bytes traced during ``fn()`` beyond what its result keeps alive."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result_bytes = sum(r.nbytes for r in (result if isinstance(result, tuple) else (result,)))
    return max(0, peak - before - result_bytes)


def im2col_bytes(geometry: ConvGeometry, itemsize: int = 4) -> int:
    return (
        geometry.batch
        * geometry.in_channels
        * int(np.prod(geometry.kernel_size))
        * int(np.prod(geometry.output_size))
        * itemsize
    )


# ---------------------------------------------------------------------------
# Machine description
# ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def blas_description() -> str:
    if threadpoolctl is None:
        return "threadpoolctl not installed; see numpy.show_config()"
    parts = []
    for pool in threadpoolctl.threadpool_info():
        if pool["user_api"] == "blas":
            parts.append(
                f"{pool['internal_api']} {pool.get('version')} kernel={pool.get('architecture')} "
                f"threading={pool.get('threading_layer')} threads={pool['num_threads']} "
                f"({os.path.basename(pool['filepath'])})"
            )
    return "; ".join(parts) or "no BLAS pool found by threadpoolctl"


def machine_line(threads: int) -> str:
    env = {name: os.environ.get(name, "<unset>") for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return (
        f"machine: {cpu_model()}, {os.cpu_count()} logical cores; python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__}; threads per library: {threads}; "
        f"NumPy BLAS: {blas_description()}; "
        f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={env['OPENBLAS_L2_SIZE']}; "
        f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"
    )


# ---------------------------------------------------------------------------
# Loop reference
# ---------------------------------------------------------------------------


def run_reference(settle: float) -> None:
    """Time the loop reference on a scaled-down 2-D case and extrapolate per FLOP."""
    try:
        from convgrad import reference
    except ImportError as error:
        print(f"reference: convgrad.reference cannot be imported ({error}); skipped")
        return

    full = Case("2d-14x14", 64, 32, 64, (14, 14), 3)
    small = Case("2d-14x14-small", 1, 4, 8, (14, 14), 3)
    rng = np.random.default_rng(1)
    g_full, g_small = full.geometry(), small.geometry()
    x = rng.standard_normal(g_small.input_shape, dtype=np.float32)
    w = rng.standard_normal(g_small.weight_shape, dtype=np.float32)
    go = rng.standard_normal(g_small.output_shape, dtype=np.float32)
    reference_calls = {
        "forward": lambda: reference.conv(x, w, padding="same"),
        "input_grad": lambda: reference.conv_input_grad(x.shape, w, go, padding="same"),
        "weight_grad": lambda: reference.conv_weight_grad(x, w.shape, go, padding="same"),
    }
    default_calls = make_calls(full, rng)
    print(
        f"\nreference: loop reference timed on {small.name} (N={small.batch}, {small.in_channels}->"
        f"{small.out_channels}, {small.spatial}, k{small.kernel}), {g_small.flops / 1e6:.2f} MFLOP per pass; "
        f"its time is extrapolated per FLOP to {full.name} ({g_full.flops / 1e6:.1f} MFLOP), an estimate"
    )
    print("| pass | reference s (small) | reference s (extrapolated) | default s | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for name in PASSES:
        time.sleep(settle)
        t_ref = time_sample(reference_calls[name], 1)
        time.sleep(settle)
        t_default = statistics.median(time_sample(default_calls[name][0], 3) for _ in range(3))
        t_extrapolated = t_ref * g_full.flops / g_small.flops
        print(f"| {name} | {t_ref:.3f} | {t_extrapolated:.1f} | {t_default:.5f} | {t_extrapolated / t_default:,.0f}x |")


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for each library (default: NumPy's BLAS thread count, else os.cpu_count())")
    parser.add_argument("--repeats", type=int, default=7, help="timed samples per pass and library (median taken)")
    parser.add_argument("--settle", type=float, default=0.15,
                        help="pause in seconds before every timed sample (default 0.15)")
    parser.add_argument("--sample-seconds", type=float, default=0.02,
                        help="approximate length of one timed sample; short calls are repeated to fill it")
    parser.add_argument("--cases", default="", help="comma-separated substrings; run only matching case names")
    parser.add_argument("--json", dest="json_path", help="write the results to this JSON file")
    parser.add_argument("--reference", action="store_true",
                        help="also time convgrad.reference on a scaled-down 2-D case")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc measurement")
    return parser.parse_args(argv)


def default_threads() -> int:
    if threadpoolctl is not None:
        counts = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        if counts:
            return counts[0]
    return os.cpu_count() or 1


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = args.threads or default_threads()
    torch.set_num_threads(threads)
    limiter = threadpoolctl.threadpool_limits(limits=threads, user_api="blas") if threadpoolctl else None

    print(machine_line(threads))
    print(f"timing: median of {args.repeats} interleaved samples, {args.settle:.2f} s pause before each; "
          f"PyTorch passes: F.conv*d, torch.nn.grad.conv*d_input, torch.nn.grad.conv*d_weight")
    print()
    print("| case | pass | convgrad ms | torch ms | convgrad GFLOP/s | torch GFLOP/s | ratio | best ratio | "
          "peak extra MiB | im2col MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")

    selected = [c for c in CASES if not args.cases or any(s in c.name for s in args.cases.split(","))]
    rng = np.random.default_rng(0)
    results = []
    for case in selected:
        geometry = case.geometry()
        calls = make_calls(case, rng)
        # Per repeat, the three passes add up to one sample of the total.
        total_samples = ([0.0] * args.repeats, [0.0] * args.repeats)
        for name in PASSES:
            ours, theirs = calls[name]
            samples = time_interleaved(ours, theirs, args.repeats, args.settle, args.sample_seconds)
            for index in (0, 1):
                total_samples[index][:] = [t + s for t, s in zip(total_samples[index], samples[index])]
            t_ours, t_theirs = statistics.median(samples[0]), statistics.median(samples[1])
            best_ratio = min(samples[0]) / min(samples[1])
            extra = -1 if args.no_memory else peak_extra_bytes(ours)
            results.append(dict(case=case.name, pass_=name, convgrad_s=t_ours, torch_s=t_theirs,
                                convgrad_best_s=min(samples[0]), torch_best_s=min(samples[1]),
                                flops=geometry.flops, peak_extra_bytes=extra, im2col_bytes=im2col_bytes(geometry)))
            print(
                f"| {case.name} | {name} | {t_ours * 1e3:.3f} | {t_theirs * 1e3:.3f} | "
                f"{geometry.flops / t_ours / 1e9:.1f} | {geometry.flops / t_theirs / 1e9:.1f} | "
                f"{t_ours / t_theirs:.2f} | {best_ratio:.2f} | {extra / 2**20:.2f} | {im2col_bytes(geometry) / 2**20:.2f} |",
                flush=True,
            )
        t_ours, t_theirs = statistics.median(total_samples[0]), statistics.median(total_samples[1])
        best_ratio = min(total_samples[0]) / min(total_samples[1])
        results.append(dict(case=case.name, pass_="total", convgrad_s=t_ours, torch_s=t_theirs,
                            convgrad_best_s=min(total_samples[0]), torch_best_s=min(total_samples[1])))
        print(f"| {case.name} | **total** | {t_ours * 1e3:.3f} | {t_theirs * 1e3:.3f} | | | "
              f"**{t_ours / t_theirs:.2f}** | **{best_ratio:.2f}** | | |", flush=True)

    if args.reference:
        run_reference(args.settle)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump({"machine": machine_line(threads), "results": results}, handle, indent=1)
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
