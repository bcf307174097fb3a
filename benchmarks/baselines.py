"""Formulations a user could run instead of this extension (benchmark baselines).

Unfold: ``involution_cuda.reference.involution``. Shift-and-add, the best pure-PyTorch
formulation without unfold: ``involution_cuda.decomposition.involution``.
"""
import torch.nn.functional as F

from involution_cuda.decomposition import involution as shift_add_involution  # noqa: F401


def depthwise_conv(input, weight_conv, stride=1, padding=None, dilation=1):
    """A depthwise convolution with the same kernel size: a well-optimised yardstick with similar
    memory traffic (its weight is static, so it reads far fewer bytes than involution)."""
    kernel = weight_conv.shape[-2:]
    if padding is None:
        padding = tuple(dilation * (k - 1) // 2 for k in kernel)
    return F.conv2d(input, weight_conv, stride=stride, padding=padding, dilation=dilation,
                    groups=input.shape[1])
