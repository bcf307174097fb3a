"""Processes under ``torchrun``: the process group (NCCL on GPUs, gloo on CPUs), and a
SyncBatchNorm for CPU processes, where ``torch.nn.SyncBatchNorm`` refuses to run."""
from __future__ import annotations

import dataclasses
import os
import sys
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@dataclasses.dataclass
class Context:
    """This process's place: ``rank`` of ``world_size``, ``local_rank`` on its machine, the
    device it computes on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: Optional[str] = None) -> Context:
    """Joins the process group that ``torchrun`` describes (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK`` and the rendezvous variables); a single process when they are absent.

    ``device``: ``"cuda"``, ``"cpu"`` or None (CUDA when available). Under torchrun each process
    takes the GPU of its local rank."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda, but torch sees no GPU")
        index = local_rank if world_size > 1 or kind == "cuda" else torch.device(kind).index
        torch.cuda.set_device(index)
        target = torch.device("cuda", index)
    else:
        target = torch.device(kind)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return Context(rank, world_size, local_rank, target)


def cleanup(synchronise: bool = True) -> None:
    """Leaves the process group at the end of a run: after a barrier when ``synchronise`` (a
    process that ends normally), at once otherwise (a failing process must end, so that torchrun
    sees it and stops the others). A gloo group is left to the process's exit: with torch 2.4,
    ``destroy_process_group`` after collectives run in backward (SyncBatchNorm) can hang."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if synchronise:
        dist.barrier()
    if dist.get_backend() != "gloo":
        dist.destroy_process_group()


def exit_process(code: int) -> None:
    """Ends the process with exit status ``code``. A process still in a (gloo) group ends at
    once, its output flushed, without Python's teardown: with torch 2.4 the gloo group's
    destruction at exit can abort the process ("terminate called without an active exception")
    after a run that succeeded, and ``destroy_process_group`` can hang (see :func:`cleanup`)."""
    if dist.is_available() and dist.is_initialized():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes, with the sum of the incoming gradients as its backward."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=group)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


def all_reduce_sum(tensor: torch.Tensor, group=None) -> torch.Tensor:
    return _AllReduceSum.apply(tensor, group)


class AllReduceBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the whole batch across the processes,
    on any device (``torch.nn.SyncBatchNorm`` supports GPUs only); the same parameters and
    buffers as ``nn.BatchNorm2d``, so state dicts are interchangeable.

    Mean and variance come from two all-reduces (sums, then squared deviations from the global
    mean), in float32 for lower-precision inputs; their backward sums the gradients of
    all processes, as ``nn.SyncBatchNorm``'s does. Outside training, or in a single process, it
    is plain BatchNorm.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True, process_group=None,
                 device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def _synchronised(self) -> bool:
        return (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self._synchronised():
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0] + list(range(2, input.dim()))
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.to(torch.promote_types(input.dtype, torch.float32))
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        totals = all_reduce_sum(torch.cat([x.sum(dims), count]), self.process_group)
        total = totals[-1].detach()
        mean = totals[:-1] / total
        centred = x - mean.view(shape)
        var = all_reduce_sum(centred.square().sum(dims), self.process_group) / total
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.to(x.dtype).view(shape) + self.bias.to(x.dtype).view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                unbiased = var * (total / (total - 1).clamp(min=1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        return out.to(input.dtype)

    @classmethod
    def convert(cls, module: nn.Module, process_group=None) -> nn.Module:
        """``module`` with each BatchNorm layer replaced by an ``AllReduceBatchNorm`` holding the
        same parameters and statistics (as ``nn.SyncBatchNorm.convert_sync_batchnorm``)."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, (cls, nn.SyncBatchNorm)):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            if module.affine:
                with torch.no_grad():
                    converted.weight = module.weight
                    converted.bias = module.bias
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
            converted.train(module.training)
        for name, child in module.named_children():
            converted.add_module(name, cls.convert(child, process_group))
        return converted


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Synchronised BatchNorm for ``device``: ``nn.SyncBatchNorm`` on GPUs, else
    :class:`AllReduceBatchNorm`."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return AllReduceBatchNorm.convert(module)
