"""Train a RedNet on an image folder: ``python -m involution_cuda.train DATA [options]``.

``DATA/train/<class>/<image>`` (and ``DATA/val/<class>/<image>`` for evaluation), as ImageNet is
laid out. One process, or one per GPU / CPU share under torchrun:

    python -m involution_cuda.train DATA --model rednet50 --epochs 90 --amp --channels-last
    torchrun --nproc_per_node 8 -m involution_cuda.train DATA --model rednet50 --sync-bn --amp

``--batch-size`` is the global batch (all processes together), so a run gives the same global
batches, in the same order, whatever the number of processes. Data order and augmentations
depend only on ``--seed`` and the epoch; checkpoints (``OUTPUT/last.pth``, at the end of each
epoch and every ``--save-every`` steps) hold the model, optimizer, gradient scaler, epoch, step
and random states, and ``--resume`` continues a run exactly where it stopped, mid-epoch too.
``--init`` starts from an official RedNet checkpoint (mmcls format, converted with
:func:`involution_cuda.models.convert_official_state_dict`), a plain state dict or a training
checkpoint; a classifier of another number of classes is left out.

Per epoch the main process prints training loss and top-1, validation loss, top-1 and top-5, and
appends them as one JSON line to ``OUTPUT/metrics.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from . import models
from .convert import CheckpointError, convert_checkpoint, load_checkpoint
from .models.rednet import MIXERS, RedNet
from .training import data as datalib
from .training.distributed import Context, cleanup, convert_sync_batchnorm, exit_process, setup

CHECKPOINT_FORMAT = "involution_cuda.train/1"
MODEL_NAMES = ("rednet26", "rednet38", "rednet50", "rednet101", "rednet152")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m involution_cuda.train",
        description="Train a RedNet on an image folder (DATA/train/<class>/<image>, and DATA/val "
                    "for evaluation); under torchrun, with one process per device.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("data", type=Path, help="folder with train/ (and val/) image folders")
    group = parser.add_argument_group("model")
    group.add_argument("--model", default="rednet50", choices=MODEL_NAMES, help="depth")
    group.add_argument("--stem-channels", type=int, default=64, help="stem width (official: 64)")
    group.add_argument("--base-channels", type=int, default=64,
                       help="bottleneck width of the first stage (official: 64)")
    group.add_argument("--mixer", default="involution", choices=MIXERS,
                       help="'conv': the same network with 3x3 convolutions (the ResNet baseline)")
    group.add_argument("--init", type=Path,
                       help="initial weights: an official RedNet checkpoint (mmcls), a plain state "
                            "dict or a checkpoint of this command")
    group.add_argument("--trust", action="store_true",
                       help="load --init/--resume files holding arbitrary pickled objects (only "
                            "from trusted sources)")
    group = parser.add_argument_group("optimisation")
    group.add_argument("--epochs", type=int, default=90, help="length of the schedule")
    group.add_argument("--batch-size", type=int, default=256,
                       help="global batch: all processes together (a multiple of their number)")
    group.add_argument("--lr", type=float, default=0.1, help="peak learning rate (SGD)")
    group.add_argument("--min-lr", type=float, default=0.0, help="end of the cosine schedule")
    group.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    group.add_argument("--nesterov", action="store_true", help="Nesterov momentum")
    group.add_argument("--weight-decay", type=float, default=1e-4, help="L2, on every parameter")
    group.add_argument("--label-smoothing", type=float, default=0.0, help="of the cross-entropy")
    group = parser.add_argument_group("data")
    group.add_argument("--image-size", type=int, default=224, help="training and evaluation crop")
    group.add_argument("--crop-pct", type=float, default=0.875,
                       help="evaluation: the shorter side resized to image-size / crop-pct")
    group.add_argument("--no-augment", action="store_true",
                       help="train on the evaluation crop (no random crop or flip)")
    group.add_argument("--workers", type=int, default=4, help="loader processes per process")
    group = parser.add_argument_group("performance")
    group.add_argument("--device", help="cuda or cpu; unset: cuda when available")
    group.add_argument("--amp", action="store_true",
                       help="mixed precision: bfloat16 autocast on CPUs, float16 with a gradient "
                            "scaler on GPUs")
    group.add_argument("--amp-dtype", choices=("bfloat16", "float16"),
                       help="autocast dtype instead of the device's default")
    group.add_argument("--channels-last", action="store_true", help="NHWC model and inputs")
    group.add_argument("--compile", action="store_true", help="torch.compile the training model")
    group.add_argument("--sync-bn", action="store_true",
                       help="BatchNorm statistics over the global batch (several processes)")
    group.add_argument("--deterministic", action="store_true",
                       help="torch.use_deterministic_algorithms (slower on GPUs)")
    group = parser.add_argument_group("run")
    group.add_argument("--seed", type=int, default=0, help="initialisation, data order, augmentation")
    group.add_argument("--output", type=Path, default=Path("runs/rednet"),
                       help="checkpoints (last.pth) and metrics.jsonl")
    group.add_argument("--resume", type=Path, help="a checkpoint of this command to continue")
    group.add_argument("--save-every", type=int, default=0,
                       help="also save OUTPUT/last.pth every N steps (0: at epoch ends only)")
    group.add_argument("--max-steps", type=int, default=0,
                       help="stop (and save) after this many steps in all; the schedule still "
                            "spans --epochs")
    group.add_argument("--eval-only", action="store_true",
                       help="evaluate the --init or --resume weights on DATA/val and stop")
    group.add_argument("--log-every", type=int, default=10, help="progress-bar loss every N steps")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2 ** 32)
    except ImportError:
        pass


def build_model(args: argparse.Namespace, num_classes: int) -> RedNet:
    factory = getattr(models, args.model)
    return factory(num_classes=num_classes, stem_channels=args.stem_channels,
                   base_channels=args.base_channels, mixer=args.mixer)


def initial_state(path: Path, trust: bool) -> Dict[str, torch.Tensor]:
    """The model weights of ``path``: an official checkpoint (converted), a checkpoint of this
    command, or a plain state dict."""
    checkpoint = load_checkpoint(path, trust)
    if isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT:
        return checkpoint["model"]
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        return convert_checkpoint(checkpoint, path)[0]
    if isinstance(checkpoint, dict) and checkpoint and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in checkpoint.items()):
        return checkpoint
    raise CheckpointError(f"{path} holds no RedNet weights: expected an official RedNet checkpoint "
                          f"(mmcls format), a plain state dict or a checkpoint of "
                          f"python -m involution_cuda.train")


def load_initial_weights(model: nn.Module, path: Path, trust: bool, log) -> None:
    state = dict(initial_state(path, trust))
    own = model.state_dict()
    head = [k for k in ("fc.weight", "fc.bias") if k in state and (k not in own or state[k].shape != own[k].shape)]
    if head:
        log(f"init: {path} has a classifier of {state['fc.weight'].shape[0]} classes, the model "
            f"{own['fc.weight'].shape[0] if 'fc.weight' in own else 'none'}: a new classifier starts")
        for key in head:
            del state[key]
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in head]
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit {type(model).__name__}: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    log(f"init: weights from {path}")


def learning_rate(args: argparse.Namespace, step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to ``min_lr`` at ``total``."""
    if step < warmup:
        return args.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return args.min_lr + (args.lr - args.min_lr) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def all_reduce(tensor: torch.Tensor, ctx: Context) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(tensor)
    return tensor


def rng_state(ctx: Context) -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if ctx.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(ctx.device)
    return state


def set_rng_state(state: dict, ctx: Context) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and ctx.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], ctx.device)


class Trainer:
    """One training run: data, model, optimizer and the loop (see the module's documentation)."""

    def __init__(self, args: argparse.Namespace, ctx: Context):
        self.args, self.ctx = args, ctx
        self.log = (lambda message: print(message, flush=True)) if ctx.main else (lambda message: None)
        if args.batch_size % ctx.world_size:
            raise ValueError(f"--batch-size {args.batch_size} is the global batch: it must be a "
                             f"multiple of the {ctx.world_size} processes")
        self.local_batch = args.batch_size // ctx.world_size
        if args.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        seed_everything(args.seed)
        self.build_data()
        self.build_model()

    # -- data -------------------------------------------------------------------------------
    def build_data(self) -> None:
        args, ctx = self.args, self.ctx
        evaluation = datalib.CenterCrop(args.image_size, args.crop_pct)
        training = evaluation if args.no_augment else datalib.RandomResizedCrop(args.image_size)
        self.train_set = None
        if not args.eval_only:
            self.train_set = datalib.ImageFolder(args.data / "train", training, seed=args.seed)
        val_dir = args.data / "val"
        self.val_set = datalib.ImageFolder(val_dir, evaluation, seed=args.seed) if val_dir.is_dir() else None
        if args.eval_only and self.val_set is None:
            raise FileNotFoundError(f"--eval-only needs {val_dir}")
        reference = self.train_set or self.val_set
        if self.train_set and self.val_set and self.val_set.classes != self.train_set.classes:
            raise ValueError(f"{val_dir} has other classes than {args.data / 'train'}")
        self.classes = reference.classes
        loader = dict(num_workers=args.workers, pin_memory=ctx.device.type == "cuda")
        if self.train_set is not None:
            if len(self.train_set) < args.batch_size:
                raise ValueError(f"{args.data / 'train'} has {len(self.train_set)} images, fewer "
                                 f"than one global batch ({args.batch_size})")
            self.sampler = datalib.TrainSampler(self.train_set, ctx.world_size, ctx.rank, args.seed)
            self.train_loader = DataLoader(
                self.train_set, batch_size=self.local_batch, sampler=self.sampler, drop_last=True,
                generator=torch.Generator().manual_seed(args.seed), **loader)
            self.steps_per_epoch = len(self.sampler) // self.local_batch
            self.total_steps = self.steps_per_epoch * args.epochs
        if self.val_set is not None:
            self.val_loader = DataLoader(
                self.val_set, batch_size=self.local_batch,
                sampler=datalib.ShardSampler(len(self.val_set), ctx.world_size, ctx.rank), **loader)

    # -- model ------------------------------------------------------------------------------
    def build_model(self) -> None:
        args, ctx = self.args, self.ctx
        model = build_model(args, len(self.classes))
        if args.init is not None:
            load_initial_weights(model, args.init, args.trust, self.log)
        if args.sync_bn and ctx.distributed:
            model = convert_sync_batchnorm(model, ctx.device)
        memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
        self.model = model.to(ctx.device, memory_format=memory_format)
        self.memory_format = memory_format
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=args.lr, momentum=args.momentum,
                                         weight_decay=args.weight_decay, nesterov=args.nesterov)
        default = torch.float16 if ctx.device.type == "cuda" else torch.bfloat16
        self.amp_dtype = getattr(torch, args.amp_dtype) if args.amp_dtype else default
        self.scaler = torch.amp.GradScaler(ctx.device.type,
                                           enabled=args.amp and self.amp_dtype == torch.float16)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
        self.step, self.epoch_totals = 0, [0.0, 0.0, 0.0]
        if args.resume is not None:
            self.load(args.resume)
        network = self.model
        if ctx.distributed:
            network = nn.parallel.DistributedDataParallel(
                network, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if args.compile:
            network = torch.compile(network)
        self.network = network

    def autocast(self):
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype, enabled=self.args.amp)

    def inputs(self, images: torch.Tensor, labels: torch.Tensor):
        images = images.to(self.ctx.device, non_blocking=True)
        images = datalib.normalize(images).contiguous(memory_format=self.memory_format)
        return images, labels.to(self.ctx.device, non_blocking=True)

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, epoch_sums: torch.Tensor) -> None:
        """``OUTPUT/last.pth`` (every process takes part: random states and the epoch's running
        sums are gathered; the main process writes)."""
        ctx = self.ctx
        states = [rng_state(ctx)]
        if ctx.distributed:
            states = [None] * ctx.world_size
            dist.all_gather_object(states, rng_state(ctx))
        sums = all_reduce(epoch_sums.clone(), ctx).tolist()
        if not ctx.main:
            return
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "global_batch": self.args.batch_size,
            "dataset_size": len(self.train_set),
            "classes": list(self.classes),
            "rng": states,
            "epoch_totals": sums,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.args).items()},
        }
        self.args.output.mkdir(parents=True, exist_ok=True)
        target = self.args.output / "last.pth"
        torch.save(checkpoint, target.with_suffix(".tmp"))
        os.replace(target.with_suffix(".tmp"), target)

    def load(self, path: Path) -> None:
        checkpoint = load_checkpoint(path, self.args.trust)
        if not (isinstance(checkpoint, dict) and checkpoint.get("format") == CHECKPOINT_FORMAT):
            raise CheckpointError(f"{path} is not a checkpoint of python -m involution_cuda.train "
                                  f"(--init takes official checkpoints and state dicts)")
        self.model.load_state_dict(checkpoint["model"])
        if self.args.eval_only:
            return
        for key, ours in (("global_batch", self.args.batch_size), ("dataset_size", len(self.train_set))):
            if checkpoint[key] != ours:
                raise ValueError(f"{path} was saved with {key.replace('_', ' ')} {checkpoint[key]}, "
                                 f"this run has {ours}: it would not continue the same run")
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.step = checkpoint["step"]
        if len(checkpoint["rng"]) == self.ctx.world_size:
            set_rng_state(checkpoint["rng"][self.ctx.rank], self.ctx)
        if self.ctx.main:  # the running sums of a part-done epoch, counted once
            self.epoch_totals = checkpoint["epoch_totals"]
        self.log(f"resume: {path} at step {self.step} (epoch {self.step // self.steps_per_epoch + 1}, "
                 f"step {self.step % self.steps_per_epoch} of {self.steps_per_epoch})")

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> Dict[str, float]:
        """Loss, top-1 and top-5 (%) on DATA/val, each image counted once over the processes."""
        self.model.eval()
        k = min(5, len(self.classes))
        sums = torch.zeros(4, dtype=torch.float64, device=self.ctx.device)
        for images, labels in self.val_loader:
            images, labels = self.inputs(images, labels)
            with self.autocast():
                logits = self.model(images)
            logits = logits.float()
            hits = logits.topk(k, dim=1).indices.eq(labels[:, None])
            sums += torch.stack([F.cross_entropy(logits, labels, reduction="sum").double(),
                                 hits[:, 0].sum().double(), hits.any(1).sum().double(),
                                 torch.tensor(float(labels.numel()), dtype=torch.float64,
                                              device=sums.device)])
        self.model.train()
        loss, top1, top5, count = all_reduce(sums, self.ctx).tolist()
        count = max(count, 1.0)
        return {"val_loss": loss / count, "val_top1": 100 * top1 / count, "val_top5": 100 * top5 / count}

    # -- training ---------------------------------------------------------------------------
    def progress(self, epoch: int, start: int):
        if self.args.no_progress or not self.ctx.main:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=self.steps_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{self.args.epochs}",
                    unit="step", dynamic_ncols=True, leave=False)

    def train(self) -> Optional[Dict[str, float]]:
        args, ctx = self.args, self.ctx
        warmup = round(args.warmup_epochs * self.steps_per_epoch)
        last_step = self.total_steps if not args.max_steps else min(args.max_steps, self.total_steps)
        self.log(f"{args.model}: {len(self.train_set)} training images in {len(self.classes)} classes, "
                 f"{ctx.world_size} process(es) on {ctx.device.type}, global batch {args.batch_size}, "
                 f"{self.steps_per_epoch} steps per epoch")
        metrics = None
        self.model.train()
        while self.step < last_step:
            epoch, start = divmod(self.step, self.steps_per_epoch)
            self.sampler.set_epoch(epoch, skip=start * self.local_batch)
            self.train_set.set_epoch(epoch)
            sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)
            sums += torch.tensor(self.epoch_totals, dtype=torch.float64, device=ctx.device)
            self.epoch_totals = [0.0, 0.0, 0.0]
            bar, began, seen = self.progress(epoch, start), time.perf_counter(), 0
            for images, labels in self.train_loader:
                images, labels = self.inputs(images, labels)
                lr = learning_rate(args, self.step, self.total_steps, warmup)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                with self.autocast():
                    logits = self.network(images)
                loss = self.criterion(logits.float(), labels)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.step += 1
                seen += labels.numel()
                with torch.no_grad():
                    sums += torch.stack([loss.detach().double() * labels.numel(),
                                         logits.argmax(1).eq(labels).sum().double(),
                                         torch.tensor(float(labels.numel()), dtype=torch.float64,
                                                      device=sums.device)])
                if bar is not None:
                    bar.update()
                    if self.step % args.log_every == 0:
                        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.4g}")
                if args.save_every and self.step % args.save_every == 0:
                    self.save(sums)
                if self.step >= last_step:
                    break
            if bar is not None:
                bar.close()
            elapsed = time.perf_counter() - began
            finished = self.step % self.steps_per_epoch == 0
            self.save(sums if not finished else torch.zeros_like(sums))
            if not finished:
                self.log(f"stopped at step {self.step} (--max-steps), saved {args.output / 'last.pth'}")
                break
            loss_sum, correct, count = all_reduce(sums, ctx).tolist()
            metrics = {"epoch": epoch + 1, "step": self.step, "lr": lr,
                       "train_loss": loss_sum / count, "train_top1": 100 * correct / count,
                       "images_per_s": seen * ctx.world_size / max(elapsed, 1e-9)}
            if self.val_set is not None:
                metrics.update(self.evaluate())
            self.report(metrics)
        return metrics

    def report(self, metrics: Dict[str, float]) -> None:
        line = (f"epoch {metrics['epoch']}/{self.args.epochs} step {metrics['step']}: train loss "
                f"{metrics['train_loss']:.4f} top-1 {metrics['train_top1']:.2f}%")
        if "val_loss" in metrics:
            line += (f" | val loss {metrics['val_loss']:.4f} top-1 {metrics['val_top1']:.2f}% "
                     f"top-5 {metrics['val_top5']:.2f}%")
        self.log(line + f" | lr {metrics['lr']:.4g} | {metrics['images_per_s']:.1f} images/s")
        if self.ctx.main:
            self.args.output.mkdir(parents=True, exist_ok=True)
            with open(self.args.output / "metrics.jsonl", "a") as file:
                file.write(json.dumps(metrics) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    ctx = setup(args.device)
    try:
        trainer = Trainer(args, ctx)
    except (CheckpointError, FileNotFoundError, ValueError) as error:
        cleanup(synchronise=False)
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    try:
        if args.eval_only:
            metrics = trainer.evaluate()
            trainer.log(f"val loss {metrics['val_loss']:.4f} top-1 {metrics['val_top1']:.2f}% "
                        f"top-5 {metrics['val_top5']:.2f}% ({len(trainer.val_set)} images)")
        else:
            trainer.train()
    except BaseException:
        cleanup(synchronise=False)
        raise
    cleanup()
    return 0


if __name__ == "__main__":
    exit_process(main())
