"""The official involution layer's forward (d-li14/involution, involution_naive.py), written out
in plain torch: the independent statement of the layer that tests compare ``Involution`` with.

Generalised to rectangular kernels and dilation; its pool keeps partial windows (``ceil_mode``:
the official pool crashes on odd sizes). Nothing here calls ``Involution.forward`` or
``involution_cuda.reference``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def official_forward(layer, x, dtype=None):
    """``layer``'s output for ``x`` with its own parameters, and the running mean and variance
    its BatchNorm leaves (computed on copies: the layer's buffers are untouched).

    With ``dtype``, the step autocast makes: each convolution and the involution itself take
    their inputs (parameters included) cast to ``dtype``; pooling, BatchNorm and ReLU run on the
    dtype they are given.
    """
    cast = (lambda t: t) if dtype is None else (lambda t: t.to(dtype))
    (kh, kw), stride, dilation = layer.kernel_size, layer.stride, layer.dilation
    groups, group_channels = layer.groups, layer.group_channels
    pooled = x if stride == (1, 1) else F.avg_pool2d(x, stride, stride, ceil_mode=True)
    bn = layer.conv1.bn
    running_mean, running_var = bn.running_mean.clone(), bn.running_var.clone()
    hidden = F.conv2d(cast(pooled), cast(layer.conv1.conv.weight))
    hidden = F.relu(F.batch_norm(hidden, running_mean, running_var, bn.weight, bn.bias,
                                 layer.training, bn.momentum, bn.eps))
    weight = F.conv2d(cast(hidden), cast(layer.conv2.conv.weight), cast(layer.conv2.conv.bias))
    # The involution: products and sums (the gradients' too) in float32 or wider, as the op's.
    x, weight = cast(x), cast(weight)
    acc = torch.promote_types(x.dtype, torch.float32)
    b, _, h, w = weight.shape
    weight = weight.to(acc).view(b, groups, kh * kw, h, w).unsqueeze(2)
    padding = (dilation[0] * (kh - 1) // 2, dilation[1] * (kw - 1) // 2)
    patches = F.unfold(x.to(acc), (kh, kw), dilation, padding, stride)
    patches = patches.view(b, groups, group_channels, kh * kw, h, w)
    out = (weight * patches).sum(dim=3).view(b, layer.channels, h, w)
    return out.to(x.dtype), running_mean, running_var
