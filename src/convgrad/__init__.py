"""convgrad: N-dimensional convolution in NumPy with exact gradients.

The public operators follow PyTorch's semantics and argument names:

- :func:`conv`, :func:`conv1d`, :func:`conv2d`, :func:`conv3d`
- :func:`conv_input_grad`, :func:`conv_weight_grad`, :func:`conv_bias_grad`,
  :func:`conv_backward`
- :func:`conv_transpose` and its 1-, 2- and 3-D forms

:mod:`convgrad.reference` has the same operators written as loops (the
oracle), :mod:`convgrad.signal` the flipped-kernel convolution of signal
processing, and :func:`gradcheck` checks any operator's backward pass by
finite differences. :func:`conv_forward_saved` returns, with the output, the
state its gradients reuse, and :func:`set_num_threads` sets the size of the
kernels' thread pool.
"""

from convgrad.conv import (
    conv,
    conv1d,
    conv2d,
    conv3d,
    conv_backward,
    conv_bias_grad,
    conv_input_grad,
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    conv_weight_grad,
)
from convgrad.geometry import ConvGeometry
from convgrad.gradcheck import GradcheckError, GradcheckReport, gradcheck, gradcheck_module
from convgrad import reference, signal
from convgrad.kernels import SavedConv, conv_forward_saved, get_num_threads, set_num_threads
from convgrad import nn  # after the operators, which the layers import

__version__ = "0.1.0"

__all__ = [
    "ConvGeometry",
    "GradcheckError",
    "GradcheckReport",
    "SavedConv",
    "conv_forward_saved",
    "get_num_threads",
    "set_num_threads",
    "gradcheck",
    "gradcheck_module",
    "nn",
    "reference",
    "signal",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_backward",
    "conv_bias_grad",
    "conv_input_grad",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_weight_grad",
]
