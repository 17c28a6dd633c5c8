"""A forward pass that keeps what the backward pass can reuse.

A layer that runs ``conv`` forward and later needs the weight gradient
builds the im2col columns twice: once for ``W @ cols`` and once for
``go @ cols^T``. :func:`conv_forward_saved` returns, next to the output, a
:class:`SavedConv` that contains the columns (for the im2col paths) or the
input (for the other paths), so that :meth:`SavedConv.weight_grad` skips the
im2col copy. The object belongs to the caller;
there is no global cache, and dropping it frees the memory.

Example::

    out, saved = conv_forward_saved(x, w, b, stride=1, padding="same")
    ...
    grad_w = saved.weight_grad(grad_out)
    grad_x = saved.input_grad(grad_out)
    grad_b = saved.bias_grad(grad_out)
"""

from __future__ import annotations

import numpy as np

from convgrad import kernels
from convgrad._arrays import as_numeric_array, compute_dtype
from convgrad.geometry import ConvGeometry
from convgrad.kernels import im2col


class SavedConv:
    """The state of one forward convolution that its gradients reuse.

    Attributes
    ----------
    geometry : ConvGeometry
    weight : numpy.ndarray
        The weight of the forward pass, in the compute dtype (not a copy when
        it already had that dtype).
    columns : list of numpy.ndarray or None
        One ``(C_g prod(K), N prod(O))`` im2col matrix per group when the
        forward pass ran on the im2col path, else None.
    x : numpy.ndarray or None
        The batched input when ``columns`` is None.

    Notes
    -----
    Kept columns take ``N C_in prod(K) prod(O)`` elements, the size of the
    im2col matrix, for as long as this object lives: memory traded for the
    copy that the weight gradient would otherwise repeat.
    """

    def __init__(self, geometry, weight, columns, x):
        self.geometry = geometry
        self.weight = weight
        self.columns = columns
        self.x = x

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays this object keeps alive besides the weight."""
        if self.columns is not None:
            return sum(c.nbytes for c in self.columns)
        return self.x.nbytes

    def _batched_grad_output(self, grad_output) -> np.ndarray:
        go = as_numeric_array("grad_output", grad_output)
        self.geometry.check_grad_output(go.shape)
        go = go if self.geometry.batched else go[np.newaxis]
        return go.astype(self.weight.dtype, copy=False)

    @np.errstate(invalid="ignore")
    def weight_grad(self, grad_output) -> np.ndarray:
        """Compute ``dL/d weight`` of shape ``(C_out, C_in / G, *K)``, as :func:`convgrad.conv_weight_grad`."""
        geometry = self.geometry
        go = self._batched_grad_output(grad_output)
        if self.columns is None:
            return kernels.weight_grad(self.x, go, geometry)

        n = go.shape[0]
        out_g = geometry.group_out_channels
        positions = int(np.prod(geometry.output_size))
        go3 = go.reshape(n, geometry.out_channels, positions)
        grad = np.empty((geometry.out_channels, self.columns[0].shape[0]), dtype=go.dtype)
        go_buffer = np.empty(out_g * n * positions, dtype=go.dtype) if n > 1 else None
        for g, cols in enumerate(self.columns):
            channels = slice(g * out_g, (g + 1) * out_g)
            go_g = go3[0, channels] if n == 1 else im2col.to_group_major(go3, 0, n, channels, go_buffer)
            np.matmul(go_g, cols.T, out=grad[channels])
        return grad.reshape(geometry.weight_shape)

    def input_grad(self, grad_output) -> np.ndarray:
        """Compute ``dL/d input`` with the input's shape, as :func:`convgrad.conv_input_grad`."""
        grad = kernels.input_grad(self.weight, self._batched_grad_output(grad_output), self.geometry)
        return grad if self.geometry.batched else grad[0]

    def bias_grad(self, grad_output) -> np.ndarray:
        """Compute ``dL/d bias`` of shape ``(C_out,)``: ``grad_output`` summed over all but the channel axis."""
        go = self._batched_grad_output(grad_output)
        return go.sum(axis=(0, *range(2, go.ndim)))


@np.errstate(invalid="ignore")
def conv_forward_saved(
    input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"
) -> tuple[np.ndarray, SavedConv]:
    """Apply :func:`convgrad.conv` and return the state its gradients reuse.

    Parameters and the output are those of :func:`convgrad.conv`.

    Returns
    -------
    out : numpy.ndarray
        Equal to ``convgrad.conv(input, weight, bias, ...)``.
    saved : SavedConv
        Its :meth:`~SavedConv.weight_grad` reuses the forward pass's im2col
        columns when the dispatcher chose an im2col path (``gemm`` or
        ``gemm_per_sample``), and the input otherwise.
    """
    x = as_numeric_array("input", input)
    w = as_numeric_array("weight", weight)
    geometry = ConvGeometry.create(x.shape, w.shape, stride, padding, dilation, groups, padding_mode)
    b = None
    if bias is not None:
        b = as_numeric_array("bias", bias)
        if b.shape != (geometry.out_channels,):
            raise ValueError(
                f"bias must have shape ({geometry.out_channels},) (one value per output channel), got {b.shape}"
            )
    dtype = compute_dtype(x, w) if b is None else compute_dtype(x, w, b)

    x = (x if geometry.batched else x[np.newaxis]).astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)

    if x.shape[0] > 0 and kernels.choose_forward(geometry) in ("gemm", "gemm_per_sample"):
        out, columns = im2col.forward_keeping_columns(x, w, geometry)
        saved = SavedConv(geometry, w, columns, None)
    else:
        out = kernels.forward(x, w, geometry)
        saved = SavedConv(geometry, w, None, x)

    if b is not None:
        out += b.astype(dtype, copy=False).reshape((1, -1) + (1,) * geometry.ndim)
    return (out if geometry.batched else out[0]), saved
