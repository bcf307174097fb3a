"""Pure-PyTorch formulations a user could write instead of this extension (benchmark baselines).

The unfold formulation is ``involution_cuda.reference.involution``.
"""
import torch
import torch.nn.functional as F

from involution_cuda._validation import check_involution_args


def shift_add_involution(input, weight, stride=1, padding=None, dilation=1):
    """Involution as KH*KW broadcast multiply-adds of weight slices with shifted views of the
    padded input: no patch buffer, but one full-size temporary per tap."""
    (sh, sw), (ph, pw), (dh, dw) = check_involution_args(input, weight, stride, padding, dilation)
    batch, channels = input.shape[:2]
    groups, kernel_h, kernel_w, out_h, out_w = weight.shape[1:]
    padded = F.pad(input, (pw, pw, ph, ph))
    padded = padded.view(batch, groups, channels // groups, *padded.shape[2:])
    out = None
    for u in range(kernel_h):
        for v in range(kernel_w):
            shifted = padded[..., u * dh: u * dh + (out_h - 1) * sh + 1: sh,
                             v * dw: v * dw + (out_w - 1) * sw + 1: sw]
            term = weight[:, :, u, v].unsqueeze(2) * shifted
            out = term if out is None else out + term
    return out.reshape(batch, channels, out_h, out_w)


def depthwise_conv(input, weight_conv, stride=1, padding=None, dilation=1):
    """A depthwise convolution with the same kernel size: a well-optimised yardstick with similar
    memory traffic (its weight is static, so it reads far fewer bytes than involution)."""
    kernel = weight_conv.shape[-2:]
    if padding is None:
        padding = tuple(dilation * (k - 1) // 2 for k in kernel)
    return F.conv2d(input, weight_conv, stride=stride, padding=padding, dilation=dilation,
                    groups=input.shape[1])
