"""Every kernel path, called directly, against the loop reference.

The dispatcher in :mod:`convgrad.kernels` picks one path per shape, so the
public operators only ever run some paths on some shapes. Here each path that
accepts a configuration runs on it through the ``path`` argument and must
match :mod:`convgrad.reference`. The tolerance is 1e-12 relative in float64
and float32 rounding in float32. NaN and infinity must appear in exactly the
entries where the direct sum puts them.
"""

import numpy as np
import pytest

from convgrad import kernels, reference
from convgrad.geometry import ConvGeometry
from conftest import assert_close

# (id, input shape, weight shape, keyword arguments)
CONFIGS = [
    ("1d-basic", (2, 3, 9), (4, 3, 3), {"padding": 1}),
    ("1d-stride-remainder", (2, 2, 10), (3, 2, 3), {"stride": 3}),
    ("1d-dilation", (2, 2, 11), (3, 2, 3), {"dilation": 2, "padding": "same"}),
    ("1d-even-kernel-same", (1, 2, 7), (3, 2, 4), {"padding": "same"}),
    ("1d-first-layer", (3, 1, 12), (6, 1, 5), {"padding": "same"}),
    ("1d-groups", (2, 4, 9), (6, 2, 3), {"groups": 2, "padding": 1}),
    ("1d-depthwise", (2, 3, 10), (3, 1, 3), {"groups": 3, "padding": 1}),
    ("1d-depthwise-multiplier", (2, 3, 10), (6, 1, 3), {"groups": 3, "padding": 1}),
    ("1d-depthwise-stride", (2, 3, 11), (6, 1, 4), {"groups": 3, "stride": 2, "padding": 1}),
    ("1d-reflect", (2, 2, 6), (2, 2, 3), {"padding": 2, "padding_mode": "reflect"}),
    ("1d-wide-zero-padding", (1, 2, 4), (2, 2, 3), {"padding": 4}),
    ("1d-tap-only-in-padding", (2, 2, 2), (3, 2, 3), {"padding": 5, "dilation": 4, "stride": 2}),
    ("1d-pointwise", (2, 3, 5), (4, 3, 1), {}),
    ("1d-unbatched", (3, 7), (2, 3, 3), {"padding": 1}),
    ("2d-basic", (2, 2, 5, 6), (3, 2, 3, 3), {"padding": 1}),
    ("2d-stride-remainders", (1, 2, 7, 8), (2, 2, 3, 2), {"stride": (2, 3), "padding": (1, 0)}),
    ("2d-dilation", (1, 2, 8, 7), (2, 2, 3, 2), {"dilation": (2, 3), "padding": (2, 1)}),
    ("2d-even-kernel-same", (2, 1, 5, 6), (2, 1, 2, 4), {"padding": "same"}),
    ("2d-first-layer", (2, 1, 6, 6), (8, 1, 3, 3), {"padding": "same"}),
    ("2d-groups", (1, 4, 5, 5), (4, 2, 2, 3), {"groups": 2}),
    ("2d-depthwise", (2, 3, 6, 5), (3, 1, 3, 3), {"groups": 3, "padding": 1}),
    ("2d-depthwise-multiplier-dilation", (1, 2, 7, 7), (4, 1, 2, 3), {"groups": 2, "dilation": 2, "padding": "same"}),
    ("2d-circular", (1, 2, 5, 4), (2, 2, 3, 3), {"padding": 1, "padding_mode": "circular"}),
    ("2d-pointwise", (2, 4, 3, 5), (3, 4, 1, 1), {}),
    ("2d-batch-1", (1, 3, 6, 6), (2, 3, 3, 3), {"stride": 2, "padding": 1}),
    ("3d-basic", (1, 2, 4, 5, 3), (2, 2, 2, 3, 2), {"padding": (1, 1, 0)}),
    ("3d-stride-dilation", (1, 1, 6, 5, 5), (2, 1, 2, 2, 2), {"stride": (2, 1, 2), "dilation": (1, 2, 1)}),
    ("3d-depthwise", (1, 2, 4, 4, 3), (2, 1, 3, 3, 2), {"groups": 2, "padding": "same"}),
]

DTYPES = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-5)}


def _geometry(input_shape, weight_shape, kwargs):
    return ConvGeometry.create(
        input_shape,
        weight_shape,
        kwargs.get("stride", 1),
        kwargs.get("padding", 0),
        kwargs.get("dilation", 1),
        kwargs.get("groups", 1),
        kwargs.get("padding_mode", "zeros"),
    )


def _applies(path: str, geometry: ConvGeometry) -> bool:
    """Whether a path accepts the geometry, written from the paths' documented conditions."""
    stride_one = all(s == 1 for s in geometry.stride)
    if path == "pointwise":
        return kernels.is_pointwise(geometry)
    if path == "depthwise":
        return kernels.is_depthwise(geometry)
    if path == "depthwise_flat":
        return kernels.is_depthwise(geometry) and stride_one
    if path == "transposed_conv":
        return stride_one
    return True


def _arrays(rng, geometry, dtype):
    x = rng.standard_normal(geometry.input_shape).astype(dtype)
    w = rng.standard_normal(geometry.weight_shape).astype(dtype)
    go = rng.standard_normal(geometry.output_shape).astype(dtype)
    return x, w, go


def _batched(array, geometry):
    return array if geometry.batched else array[np.newaxis]


def _expected(x, w, go, kwargs):
    x64, w64, go64 = (a.astype(np.float64) for a in (x, w, go))
    return (
        reference.conv(x64, w64, **kwargs),
        reference.conv_input_grad(x.shape, w64, go64, **kwargs),
        reference.conv_weight_grad(x64, w.shape, go64, **kwargs),
    )


@pytest.mark.parametrize("dtype", list(DTYPES), ids=["float64", "float32"])
@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_every_path_matches_reference(rng, name, input_shape, weight_shape, kwargs, dtype):
    geometry = _geometry(input_shape, weight_shape, kwargs)
    x, w, go = _arrays(rng, geometry, dtype)
    expected_out, expected_grad_x, expected_grad_w = _expected(x, w, go, kwargs)
    tolerance = DTYPES[dtype]
    x_batched = _batched(x, geometry)
    go_batched = _batched(go, geometry)

    for path in kernels.FORWARD_PATHS:
        if _applies(path, geometry):
            out = kernels.forward(x_batched, w, geometry, path=path)
            assert out.dtype == dtype
            assert_close(out, _batched(expected_out, geometry), **tolerance, context=f"{name} forward {path}")
    for path in kernels.INPUT_GRAD_PATHS:
        if _applies(path, geometry):
            grad_x = kernels.input_grad(w, go_batched, geometry, path=path)
            assert grad_x.dtype == dtype
            assert_close(grad_x, _batched(expected_grad_x, geometry), **tolerance, context=f"{name} input grad {path}")
    for path in kernels.WEIGHT_GRAD_PATHS:
        if _applies(path, geometry):
            grad_w = kernels.weight_grad(x_batched, go_batched, geometry, path=path)
            assert grad_w.dtype == dtype
            assert_close(grad_w, expected_grad_w, **tolerance, context=f"{name} weight grad {path}")


def test_every_path_is_tested():
    for kind, paths in (
        ("forward", kernels.FORWARD_PATHS),
        ("input grad", kernels.INPUT_GRAD_PATHS),
        ("weight grad", kernels.WEIGHT_GRAD_PATHS),
    ):
        for path in paths:
            assert any(_applies(path, _geometry(c[1], c[2], c[3])) for c in CONFIGS), f"{kind} path {path} untested"


def _with_specials(array, rng, count):
    """Return a copy with ``count`` random entries set to NaN, +inf and -inf in turn."""
    array = array.copy()
    flat = array.reshape(-1)
    for i, index in enumerate(rng.choice(flat.size, size=min(count, flat.size), replace=False)):
        flat[index] = (np.nan, np.inf, -np.inf)[i % 3]
    return array


NONFINITE_CONFIGS = [c for c in CONFIGS if c[0] in (
    "1d-basic", "1d-stride-remainder", "1d-first-layer", "1d-depthwise", "1d-depthwise-multiplier",
    "1d-pointwise", "2d-basic", "2d-dilation", "2d-first-layer", "2d-depthwise", "2d-pointwise",
    "3d-depthwise",
)]


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs", NONFINITE_CONFIGS, ids=[c[0] for c in NONFINITE_CONFIGS])
def test_every_path_keeps_nan_and_inf_local(rng, name, input_shape, weight_shape, kwargs):
    """NaN and infinity in the input, weight and output gradient reach exactly the entries of the direct sum.

    Paths that need finite data get it where they need it: ``transposed_conv``
    a finite weight, ``depthwise_flat`` a finite input.
    """
    geometry = _geometry(input_shape, weight_shape, kwargs)
    x, w, go = _arrays(rng, geometry, np.float64)
    x_bad, w_bad, go_bad = _with_specials(x, rng, 3), _with_specials(w, rng, 2), _with_specials(go, rng, 3)
    tolerance = DTYPES[np.float64]

    for path in kernels.FORWARD_PATHS:
        if _applies(path, geometry):
            out = kernels.forward(_batched(x_bad, geometry), w_bad, geometry, path=path)
            expected = reference.conv(x_bad, w_bad, **kwargs)
            assert_close(out, _batched(expected, geometry), **tolerance, context=f"{name} forward {path}")
    for path in kernels.INPUT_GRAD_PATHS:
        if _applies(path, geometry):
            weight = w if path == "transposed_conv" else w_bad
            grad_x = kernels.input_grad(weight, _batched(go_bad, geometry), geometry, path=path)
            expected = reference.conv_input_grad(x.shape, weight, go_bad, **kwargs)
            assert_close(grad_x, _batched(expected, geometry), **tolerance, context=f"{name} input grad {path}")
    for path in kernels.WEIGHT_GRAD_PATHS:
        if _applies(path, geometry):
            inputs = x if path == "depthwise_flat" else x_bad
            grad_w = kernels.weight_grad(_batched(inputs, geometry), _batched(go_bad, geometry), geometry, path=path)
            expected = reference.conv_weight_grad(inputs, w.shape, go_bad, **kwargs)
            assert_close(grad_w, expected, **tolerance, context=f"{name} weight grad {path}")


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs", NONFINITE_CONFIGS, ids=[c[0] for c in NONFINITE_CONFIGS])
def test_dispatcher_keeps_nan_and_inf_local(rng, name, input_shape, weight_shape, kwargs):
    """The dispatcher avoids the finite-only paths when the data is not finite."""
    geometry = _geometry(input_shape, weight_shape, kwargs)
    x, w, go = _arrays(rng, geometry, np.float64)
    x_bad, w_bad, go_bad = _with_specials(x, rng, 3), _with_specials(w, rng, 2), _with_specials(go, rng, 3)
    tolerance = DTYPES[np.float64]

    grad_x = kernels.input_grad(w_bad, _batched(go_bad, geometry), geometry)
    expected = reference.conv_input_grad(x.shape, w_bad, go_bad, **kwargs)
    assert_close(grad_x, _batched(expected, geometry), **tolerance, context=f"{name} input grad")

    grad_w = kernels.weight_grad(_batched(x_bad, geometry), _batched(go_bad, geometry), geometry)
    expected = reference.conv_weight_grad(x_bad, w.shape, go_bad, **kwargs)
    assert_close(grad_w, expected, **tolerance, context=f"{name} weight grad")


def test_path_rejects_inapplicable_geometry():
    geometry = _geometry((1, 2, 8), (2, 2, 3), {"stride": 2})
    x = np.zeros((1, 2, 8))
    weight = np.zeros((2, 2, 3))
    go = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="pointwise"):
        kernels.forward(x, weight, geometry, path="pointwise")
    with pytest.raises(ValueError, match="depthwise"):
        kernels.weight_grad(x, go, geometry, path="depthwise")
    with pytest.raises(ValueError, match="stride 1"):
        kernels.input_grad(weight, go, geometry, path="transposed_conv")
    with pytest.raises(ValueError, match="must be one of"):
        kernels.forward(x, weight, geometry, path="fast")


def test_finite_weight_required_for_transposed_conv_choice():
    geometry = _geometry((1, 4, 8), (4, 4, 3), {"padding": 1})
    assert kernels.choose_input_grad(geometry, weight_finite=True) == "transposed_conv"
    assert kernels.choose_input_grad(geometry, weight_finite=False) == "col2im"


# The benchmark cases of benchmarks/bench_conv.py: (N, C_in, C_out, spatial,
# kernel, stride, padding, groups) and the documented choice of path for the
# forward pass, the input gradient (finite weight) and the weight gradient
# (finite input).
BENCHMARK_CHOICES = [
    ((128, 1, 32, (40,), 5, 1, 2, 1), ("gemm_per_sample", "col2im_per_sample", "gemm_per_sample")),
    ((128, 32, 32, (40,), 5, 1, 2, 1), ("gemm", "transposed_conv", "gemm")),
    ((32, 64, 64, (4096,), 9, 1, 4, 1), ("gemm", "transposed_conv", "gemm")),
    ((64, 1, 32, (28, 28), 3, 1, 1, 1), ("gemm_per_sample", "col2im_per_sample", "gemm_per_sample")),
    ((64, 32, 64, (14, 14), 3, 1, 1, 1), ("gemm", "transposed_conv", "gemm")),
    ((32, 64, 128, (32, 32), 3, 1, 1, 1), ("gemm", "transposed_conv", "gemm")),
    ((64, 1, 16, (28, 28), 5, 1, 2, 1), ("gemm_per_sample", "col2im_per_sample", "gemm_per_sample")),
    ((32, 32, 32, (28, 28), 3, 2, 1, 1), ("gemm", "col2im", "gemm")),
    ((64, 32, 32, (28, 28), 3, 1, 1, 32), ("depthwise", "transposed_conv", "depthwise_flat")),
    ((64, 64, 64, (28, 28), 1, 1, 0, 1), ("pointwise", "pointwise", "pointwise")),
]


@pytest.mark.parametrize("shape, choices", BENCHMARK_CHOICES, ids=[str(c[0]) for c in BENCHMARK_CHOICES])
def test_dispatcher_choice_for_benchmark_shapes(shape, choices):
    n, c_in, c_out, spatial, k, stride, padding, groups = shape
    geometry = ConvGeometry.create(
        (n, c_in, *spatial), (c_out, c_in // groups, *(k,) * len(spatial)), stride, padding, 1, groups
    )
    assert kernels.choose_forward(geometry) == choices[0]
    assert kernels.choose_input_grad(geometry, weight_finite=True) == choices[1]
    assert kernels.choose_weight_grad(geometry, input_finite=True) == choices[2]


SAVED_CONFIGS = [c for c in CONFIGS if c[0] in (
    "1d-basic", "1d-stride-remainder", "1d-first-layer", "1d-groups", "1d-depthwise", "1d-pointwise",
    "1d-unbatched", "2d-dilation", "2d-circular", "2d-first-layer", "3d-basic",
)]


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs", SAVED_CONFIGS, ids=[c[0] for c in SAVED_CONFIGS])
def test_saved_forward_gradients_match_reference(rng, name, input_shape, weight_shape, kwargs):
    geometry = _geometry(input_shape, weight_shape, kwargs)
    x, w, go = _arrays(rng, geometry, np.float64)
    x = _with_specials(x, rng, 2)
    bias = rng.standard_normal(geometry.out_channels)
    tolerance = DTYPES[np.float64]

    out, saved = kernels.conv_forward_saved(x, w, bias, **kwargs)
    assert_close(out, reference.conv(x, w, bias, **kwargs), **tolerance, context=f"{name} forward")
    assert_close(saved.weight_grad(go), reference.conv_weight_grad(x, w.shape, go, **kwargs), **tolerance,
                 context=f"{name} weight grad")
    assert_close(saved.input_grad(go), reference.conv_input_grad(x.shape, w, go, **kwargs), **tolerance,
                 context=f"{name} input grad")
    assert_close(saved.bias_grad(go), go.sum(axis=tuple(a for a in range(go.ndim) if a != go.ndim - geometry.ndim - 1)),
                 **tolerance, context=f"{name} bias grad")


def test_saved_forward_keeps_columns_on_im2col_path(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out, saved = kernels.conv_forward_saved(x, w, padding=1)
    assert out.dtype == np.float32
    assert saved.columns is not None
    assert saved.nbytes == 2 * 3 * 9 * 36 * 4
    with pytest.raises(ValueError, match="grad_output has shape"):
        saved.weight_grad(np.zeros((2, 4, 5, 5), dtype=np.float32))


def test_thread_count_setting_validates_and_restores():
    default = kernels.get_num_threads()
    try:
        kernels.set_num_threads(3)
        assert kernels.get_num_threads() == 3
        with pytest.raises(ValueError, match="threads must be >= 1"):
            kernels.set_num_threads(0)
        with pytest.raises(TypeError, match="threads must be an int"):
            kernels.set_num_threads(2.0)
    finally:
        kernels.set_num_threads(None)
    assert kernels.get_num_threads() == default


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("split", ["chunks", "copies"])
def test_thread_count_does_not_change_results(rng, monkeypatch, threads, split):
    """Running chunks in threads, or splitting copies, fills and scatter-adds, gives the single-thread result."""
    from convgrad.kernels import _parallel

    if split == "chunks":
        pytest.importorskip("threadpoolctl")
        monkeypatch.setattr(_parallel, "MIN_CHUNK_FLOPS", 0)
    else:
        monkeypatch.setattr(_parallel, "_blas_controller", False)
    cases = [
        ((6, 3, 9, 8), (4, 3, 3, 3), {"padding": 1}),
        ((6, 2, 11, 10), (4, 2, 3, 3), {"stride": 2, "padding": 1}),
        ((6, 4, 9, 9), (8, 1, 3, 3), {"groups": 4, "padding": 1}),
        ((5, 4, 6, 7), (3, 4, 1, 1), {}),
        ((2, 1, 9, 9), (4, 1, 5, 5), {"padding": 2}),
    ]
    for input_shape, weight_shape, kwargs in cases:
        geometry = _geometry(input_shape, weight_shape, kwargs)
        x, w, go = _arrays(rng, geometry, np.float64)
        results = {}
        for count in (1, threads):
            kernels.set_num_threads(count)
            try:
                results[count] = (
                    kernels.forward(x, w, geometry),
                    kernels.input_grad(w, go, geometry),
                    kernels.weight_grad(x, go, geometry),
                )
            finally:
                kernels.set_num_threads(None)
        for name, single, multi in zip(("forward", "input grad", "weight grad"), results[1], results[threads]):
            assert_close(multi, single, rtol=1e-13, atol=1e-13,
                         context=f"{input_shape} {name} with {threads} threads ({split})")


def test_task_error_reaches_caller():
    from convgrad.kernels._parallel import run_tasks

    def fail():
        raise RuntimeError("task failed")

    kernels.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="task failed"):
            run_tasks([lambda: None, fail])
    finally:
        kernels.set_num_threads(None)


MEMORY_CASES = [
    ("gemm", (8, 8, 16, 16), (16, 8, 3, 3), {"padding": 1}),
    ("gemm-stride", (8, 8, 16, 16), (8, 8, 3, 3), {"stride": 2, "padding": 1}),
    ("per-sample", (8, 1, 16, 16), (16, 1, 5, 5), {"padding": 2}),
    ("depthwise", (8, 8, 16, 16), (8, 1, 3, 3), {"groups": 8, "padding": 1}),
    ("reflect", (8, 8, 16, 16), (8, 8, 3, 3), {"padding": 1, "padding_mode": "reflect"}),
]


@pytest.mark.parametrize("name, input_shape, weight_shape, kwargs", MEMORY_CASES, ids=[c[0] for c in MEMORY_CASES])
def test_peak_memory_below_im2col_size(rng, name, input_shape, weight_shape, kwargs):
    """No pass allocates more than its im2col matrix on top of its result (tracemalloc sees NumPy's arrays)."""
    import tracemalloc

    geometry = _geometry(input_shape, weight_shape, kwargs)
    x, w, go = _arrays(rng, geometry, np.float32)
    im2col_bytes = x.shape[0] * x.shape[1] * int(np.prod(weight_shape[2:])) * int(np.prod(geometry.output_size)) * 4
    calls = {
        "forward": lambda: kernels.forward(x, w, geometry),
        "input grad": lambda: kernels.input_grad(w, go, geometry),
        "weight grad": lambda: kernels.weight_grad(x, go, geometry),
    }
    for pass_name, call in calls.items():
        call()  # create the thread pool and other one-time state outside the measurement
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            result = call()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        extra = peak - before - result.nbytes
        assert extra <= im2col_bytes, f"{name} {pass_name}: {extra} extra bytes, im2col matrix {im2col_bytes}"
