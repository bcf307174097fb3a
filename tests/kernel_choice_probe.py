"""Records the kernel choice that every involution op receives, forward and backward.

Imported by tests/test_cuda_kernels.py; run as a script it runs threads that choose different
kernel sets at the same time and prints, as JSON, the choices each thread's ops received. The
threaded run lives in its own process because torch dispatch modes entered on several threads
at once can leave process-wide dispatch flags behind that some torch releases read later.
"""
import json
import sys
import threading

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import involution_cuda
from conftest import REALISTIC_PROBLEMS


class OpRecorder(TorchDispatchMode):
    """Records (op name, kernel choice) of every involution op dispatched in its block."""

    def __init__(self):
        super().__init__()
        self.choices = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.namespace == "involution_cuda":
            position = next(i for i, a in enumerate(func._schema.arguments) if a.name == "kernels")
            choice = kwargs.get("kernels", args[position] if len(args) > position else "auto")
            self.choices.append((func.__name__.split(".")[0], choice))
        return func(*args, **kwargs)


def forward_and_backward_choices(kernels, create_graph=False):
    problem = REALISTIC_PROBLEMS[1]
    x, w = problem.tensors(dtype=torch.float32, requires_grad=True)
    recorder = OpRecorder()
    with recorder:
        out = involution_cuda.involution(x, w, **problem.options, kernels=kernels)
        grads = torch.autograd.grad(out.square().sum(), (x, w), create_graph=create_graph)
        if create_graph:
            torch.autograd.grad(sum(g.sum() for g in grads), (x, w))
    return recorder.choices


def choices_of_concurrent_threads(kernel_sets, rounds=5):
    """Runs one thread per entry of `kernel_sets`, all starting together; returns the set of
    choices the ops of each thread received."""
    barrier = threading.Barrier(len(kernel_sets))
    seen = [set() for _ in kernel_sets]

    def work(index):
        barrier.wait()
        for _ in range(rounds):
            seen[index].update(c for _, c in forward_and_backward_choices(kernel_sets[index]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(kernel_sets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [sorted(choices) for choices in seen]


if __name__ == "__main__":
    print(json.dumps(choices_of_concurrent_threads(sys.argv[1:])))
