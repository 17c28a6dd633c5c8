"""PyTorch-side computation of a convolution and its gradients, for comparison.

PyTorch pads with ``torch.nn.functional.pad`` (last axis first), so every
padding form and mode is expressed as an explicit pad followed by an
unpadded convolution; autograd then differentiates through both.
"""

from __future__ import annotations

import numpy as np
import torch

from convgrad.geometry import ConvGeometry

TORCH_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
CONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}
CONV_T = {
    1: torch.nn.functional.conv_transpose1d,
    2: torch.nn.functional.conv_transpose2d,
    3: torch.nn.functional.conv_transpose3d,
}


def torch_conv_with_grads(x, w, b, go, stride, padding, dilation, groups, padding_mode):
    """Return (output, grad_input, grad_weight, grad_bias) from PyTorch autograd in float64."""
    geometry = ConvGeometry.create(x.shape, w.shape, stride, padding, dilation, groups, padding_mode)
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True)
    bt = None if b is None else torch.tensor(np.asarray(b, dtype=np.float64), requires_grad=True)

    xb = xt if geometry.batched else xt.unsqueeze(0)
    pads = [p for lo_hi in reversed(geometry.padding) for p in lo_hi]
    if any(pads):
        xb = torch.nn.functional.pad(xb, pads, mode=TORCH_PAD_MODES[padding_mode])
    out = CONV[geometry.ndim](xb, wt, bt, stride=geometry.stride, dilation=geometry.dilation, groups=groups)
    if not geometry.batched:
        out = out[0]
    out.backward(torch.tensor(np.asarray(go, dtype=np.float64)))
    grad_bias = None if bt is None else bt.grad.numpy()
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), grad_bias


def torch_conv_transpose_with_grads(x, w, b, go, stride, padding, output_padding, groups, dilation):
    """Return (output, grad_input, grad_weight) of PyTorch's transposed convolution in float64."""
    ndim = w.ndim - 2
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    wt = torch.tensor(np.asarray(w, dtype=np.float64), requires_grad=True)
    bt = None if b is None else torch.tensor(np.asarray(b, dtype=np.float64))
    out = CONV_T[ndim](xt, wt, bt, stride=stride, padding=padding, output_padding=output_padding,
                       groups=groups, dilation=dilation)
    out.backward(torch.tensor(np.asarray(go, dtype=np.float64)))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy()
