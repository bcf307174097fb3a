"""A catalogue of bad inputs, each sent through every public entry point it applies to.

Run as a script it tries every case and prints one JSON line per case with the exception
raised (or "no error"/"crash" is seen by the caller as a missing line or a dead process);
tests/test_bad_input_catalogue.py runs it in a subprocess, so that a crash could not take the
test runner down, and checks each line.
"""
import json
import sys

import torch

import involution_cuda
from involution_cuda import Involution, Involution1d, involution1d, reference
from involution_cuda.decomposition import involution as decomposition
from involution_cuda.ops import ops


def good():
    """A valid problem: input (2, 4, 7, 9), weight (2, 2, 3, 5, 7, 9), same padding (1, 2)."""
    return torch.randn(2, 4, 7, 9), torch.randn(2, 2, 3, 5, 7, 9)


# Each case: kind -> (the argument names its message must contain, a call). An error that names
# the argument it rejects is what makes it clear.

# kind -> (names, function of a good (x, w) returning (args, kwargs) for the functional entry points)
FUNCTIONAL_CASES = {
    "input not a tensor": ("input", lambda x, w: ((x.tolist(), w), {})),
    "input 3-D": ("input", lambda x, w: ((x[0], w), {})),
    "weight 5-D": ("weight", lambda x, w: ((x, w[:, 0]), {})),
    "channels not divisible by groups": (("channels", "groups"), lambda x, w: ((x[:, :3], w), {})),
    "weight spatial size not the output size": ("weight", lambda x, w: ((x, w[..., :8]), {})),
    "batch mismatch": (("input", "weight", "batch"), lambda x, w: ((x[:1], w), {})),
    "dtype mismatch": (("input", "weight", "dtype"), lambda x, w: ((x.double(), w), {})),
    "integer dtype": ("input", lambda x, w: ((x.long(), w.long()), {})),
    "bool dtype": ("input", lambda x, w: ((x > 0, w > 0), {})),
    "complex dtype": ("input", lambda x, w: ((x.to(torch.complex64), w.to(torch.complex64)), {})),
    "devices differ": (("input", "weight", "device"), lambda x, w: ((x, w.to("meta")), {})),
    "stride 0": ("stride", lambda x, w: ((x, w), {"stride": 0})),
    "negative stride": ("stride", lambda x, w: ((x, w), {"stride": (1, -2)})),
    "dilation 0": ("dilation", lambda x, w: ((x, w), {"dilation": (0, 1)})),
    "negative padding": ("padding", lambda x, w: ((x, w), {"padding": -1})),
    "padding of 3 values": ("padding", lambda x, w: ((x, w), {"padding": (1, 2, 3)})),
    "float stride": ("stride", lambda x, w: ((x, w), {"stride": 1.0})),
    "kernel larger than padded input": (("kernel", "padding"),
        lambda x, w: ((x[:, :, :2], torch.randn(2, 2, 3, 5, 1, 9)), {"padding": (0, 2)})),
    "zero groups": ("groups", lambda x, w: ((x, w[:, :0]), {})),
    "zero kernel size": (("weight", "kernel size"), lambda x, w: ((x, w[:, :, :0]), {})),
}

# kind -> (names, call of a raw op with bad arguments (the ops take int lists))
RAW_CASES = {
    "raw forward: weight size": ("weight",
        lambda x, w: ops.involution(x, w[..., :8], [1, 1], [1, 2], [1, 1])),
    "raw forward: groups": ("groups",
        lambda x, w: ops.involution(x[:, :3], w, [1, 1], [1, 2], [1, 1])),
    "raw forward: stride 0": ("stride", lambda x, w: ops.involution(x, w, [0, 1], [1, 2], [1, 1])),
    "raw forward: 3 strides": ("stride",
        lambda x, w: ops.involution(x, w, [1, 1, 1], [1, 2], [1, 1])),
    "raw forward: integer dtype": ("input",
        lambda x, w: ops.involution(x.int(), w.int(), [1, 1], [1, 2], [1, 1])),
    "raw forward: dtype mismatch": (("input", "weight"),
        lambda x, w: ops.involution(x.double(), w, [1, 1], [1, 2], [1, 1])),
    "raw forward: 3-D input": ("input",
        lambda x, w: ops.involution(x[0], w, [1, 1], [1, 2], [1, 1])),
    # input_size disagrees with both tensors; the message names weight (the first one checked).
    "raw grad_input: input size": ("weight",
        lambda x, w: ops.involution_grad_input(x, w, [7, 8], [1, 1], [1, 2], [1, 1])),
    "raw grad_input: negative padding": ("padding",
        lambda x, w: ops.involution_grad_input(x, w, [7, 9], [1, 1], [-1, 2], [1, 1])),
    "raw grad_input: grad_output size": ("grad_output",
        lambda x, w: ops.involution_grad_input(x[..., :8], w, [7, 9], [1, 1], [1, 2], [1, 1])),
    "raw grad_weight: groups": ("groups",
        lambda x, w: ops.involution_grad_weight(x, x, 3, [3, 5], [1, 1], [1, 2], [1, 1])),
    "raw grad_weight: zero groups": ("groups",
        lambda x, w: ops.involution_grad_weight(x, x, 0, [3, 5], [1, 1], [1, 2], [1, 1])),
    "raw grad_weight: channels": (("grad_output", "input", "channels"),
        lambda x, w: ops.involution_grad_weight(x[:, :2], x, 2, [3, 5], [1, 1], [1, 2], [1, 1])),
    "raw grad_weight: kernel 0": ("kernel_size",
        lambda x, w: ops.involution_grad_weight(x, x, 2, [3, 0], [1, 1], [1, 2], [1, 1])),
    "raw grad_weight: batch": (("grad_output", "input", "batch"),
        lambda x, w: ops.involution_grad_weight(x[:1], x, 2, [3, 5], [1, 1], [1, 2], [1, 1])),
}

# kind -> (names, call of a layer with bad options or input)
MODULE_CASES = {
    "layer: channels not divisible by group_channels": (("channels", "group_channels"),
        lambda x, w: Involution(30, 3)),
    "layer: even kernel": ("kernel_size", lambda x, w: Involution(16, 4)),
    "layer: stride 0": ("stride", lambda x, w: Involution(16, 3, stride=0)),
    "layer: unknown backend": ("backend", lambda x, w: Involution(16, 3, backend="cupy")),
    "layer: unknown kernels": ("kernels",
        lambda x, w: Involution(16, 3, kernels="quick").eval()(torch.randn(1, 16, 5, 5))),
    "layer: kernel_size of 3 values": ("kernel_size", lambda x, w: Involution(16, (3, 3, 3))),
    "raw forward: unknown kernels": ("kernels",
        lambda x, w: ops.involution(x, w, [1, 1], [1, 2], [1, 1], "quick")),
    "layer: wrong input channels": ("input",
        lambda x, w: Involution(16, 3)(torch.randn(1, 8, 5, 5))),
    "layer: 3-D input": ("input", lambda x, w: Involution(16, 3)(torch.randn(16, 5, 5))),
    "layer: integer input": ("input",
        lambda x, w: Involution(16, 3, group_channels=8).eval()(torch.ones(1, 16, 5, 5, dtype=torch.long))),
    "1-D layer: even kernel": ("kernel_size", lambda x, w: Involution1d(16, 4)),
    "1-D layer: wrong input": ("input", lambda x, w: Involution1d(16, 3)(torch.randn(2, 16, 5, 5))),
    "1-D: weight length": ("weight",
        lambda x, w: involution1d(x[:, :, 0], torch.randn(2, 2, 3, 8))),
    "1-D: causal with padding": (("padding", "causal"),
        lambda x, w: involution1d(x[:, :, 0], torch.randn(2, 2, 3, 9), padding=1, causal=True)),
}

FUNCTIONAL_ENTRY_POINTS = {
    "involution": involution_cuda.involution,
    "reference": reference.involution,
    "decomposition": decomposition,
}


def calls():
    """(kind, entry point, names the message must contain, zero-argument call) for every case."""
    def names_of(names):
        return [names] if isinstance(names, str) else list(names)

    for kind, (names, make) in FUNCTIONAL_CASES.items():
        for entry, function in FUNCTIONAL_ENTRY_POINTS.items():
            yield kind, entry, names_of(names), (lambda make=make, function=function: (
                lambda args, kwargs: function(*args, **kwargs))(*make(*good())))
    for kind, (names, call) in RAW_CASES.items():
        yield kind, "raw op", names_of(names), (lambda call=call: call(*good()))
    for kind, (names, call) in MODULE_CASES.items():
        yield kind, "module", names_of(names), (lambda call=call: call(*good()))


def main() -> int:
    for kind, entry, names, call in calls():
        try:
            call()
            outcome = {"error": None, "message": ""}
        except Exception as error:  # noqa: BLE001 - the point is to record what was raised
            outcome = {"error": type(error).__name__, "message": str(error).split("\n")[0]}
        print(json.dumps({"kind": kind, "entry": entry, "names": names, **outcome}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
