"""FLOP formulas of the involution ops for ``torch.utils.flop_counter.FlopCounterMode``.

Like the counter's convolution formulas, one multiply-add counts as 2 FLOPs: each of the three
ops performs one multiply-add per (output element, kernel tap) pair,
``B * C * Ho * Wo * KH * KW`` in all (the paper's "FLOPs" are these multiply-adds).
"""
from torch.utils import flop_counter
from torch.utils.flop_counter import register_flop_formula

from .ops import ops


def involution_flops(batch: int, channels: int, out_h: int, out_w: int, kernel_h: int,
                     kernel_w: int) -> int:
    return 2 * batch * channels * out_h * out_w * kernel_h * kernel_w


@register_flop_formula(ops.involution)
def _forward_flops(input_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    batch, channels = input_shape[:2]
    return involution_flops(batch, channels, weight_shape[4], weight_shape[5], weight_shape[2], weight_shape[3])


@register_flop_formula(ops.involution_grad_input)
def _grad_input_flops(grad_output_shape, weight_shape, *args, out_shape=None, **kwargs) -> int:
    batch, channels = grad_output_shape[:2]
    return involution_flops(batch, channels, weight_shape[4], weight_shape[5], weight_shape[2], weight_shape[3])


@register_flop_formula(ops.involution_grad_weight)
def _grad_weight_flops(grad_output_shape, input_shape, groups, kernel_size, *args, out_shape=None,
                       **kwargs) -> int:
    batch, channels, out_h, out_w = grad_output_shape
    return involution_flops(batch, channels, out_h, out_w, kernel_size[0], kernel_size[1])


# torch before 2.5 files a formula under each overload of the op but looks it up under the op
# (the overload packet); file it there too so that FlopCounterMode counts the ops on every torch.
for _packet in (ops.involution, ops.involution_grad_input, ops.involution_grad_weight):
    if _packet not in flop_counter.flop_registry:
        flop_counter.flop_registry[_packet] = flop_counter.flop_registry[_packet.default]
