"""Official RedNet checkpoints (mmcls format) as plain state dicts for :class:`RedNet`.

    python -m involution_cuda.convert rednet50.pth rednet50-plain.pth

An official checkpoint is a dict whose ``state_dict`` holds the classifier's tensors under
``backbone.`` (the RedNet) and ``head.`` (``head.fc.weight``, ``head.fc.bias``), beside a ``meta``
entry. The output is the state dict of ``RedNet(depth, num_classes=...)``, loadable with
``model.load_state_dict(torch.load(OUT))``. Anything else (a plain state dict, another model's
checkpoint, a file torch cannot read) is refused with an error naming the file and what was
expected.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
from typing import Dict, Optional, Tuple, Union

import torch

from .models.rednet import ARCHITECTURES, RedNet, convert_official_state_dict

PathLike = Union[str, "os.PathLike[str]"]
EXPECTED = ("an official RedNet checkpoint (mmcls format): a dict with a 'state_dict' entry whose "
            "keys start with 'backbone.' (and 'head.' for the classifier)")


class CheckpointError(ValueError):
    """The file is not an official RedNet checkpoint."""


def _refuse(path: PathLike, found: str) -> CheckpointError:
    return CheckpointError(f"{os.fspath(path)} is not {EXPECTED}; {found}")


def _sample(keys, count: int = 3) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(key) for key in keys[:count])
    return shown + (f" and {len(keys) - count} more" if len(keys) > count else "")


def load_checkpoint(path: PathLike, trust: bool = False):
    """``torch.load`` of ``path`` on the CPU; tensors and plain Python values only unless
    ``trust`` (a file from a source you trust may hold other pickled objects in its ``meta``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        # The weights-only loader names the class it refused ("Unsupported global: GLOBAL ...").
        if not trust and "global" in str(error).lower():
            raise CheckpointError(
                f"{os.fspath(path)} holds objects other than tensors and plain Python values, "
                f"which are not loaded unless trusted (--trust, or trust=True, if its source is "
                f"trusted)") from error
        raise _refuse(path, f"torch cannot read it ({str(error).splitlines()[0]})") from error
    except Exception as error:  # zip, EOF and format errors of a file that is no torch file
        raise _refuse(path, f"torch cannot read it ({type(error).__name__}: {error})") from error


def official_layout(state: Dict[str, torch.Tensor]) -> Tuple[int, Optional[int]]:
    """(depth, num_classes or None) of a converted RedNet state dict; ValueError if its keys
    are not exactly those of a RedNet."""
    blocks = []
    for stage in range(1, 5):
        indices = {int(key.split(".")[1]) for key in state if key.startswith(f"layer{stage}.")}
        blocks.append(max(indices) + 1 if indices else 0)
    depths = [depth for depth, layout in ARCHITECTURES.items() if layout == tuple(blocks)]
    if not depths:
        raise ValueError(f"its stages have {tuple(blocks)} bottlenecks, which is no RedNet "
                         f"depth ({', '.join(f'{d}: {b}' for d, b in ARCHITECTURES.items())})")
    depth = depths[0]
    num_classes = state["fc.weight"].shape[0] if "fc.weight" in state else None
    with torch.device("meta"):
        expected = set(RedNet(depth, num_classes=num_classes).state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing {_sample(missing)}")
        if unexpected:
            problems.append(f"unexpected {_sample(unexpected)}")
        raise ValueError(f"its keys are not those of RedNet-{depth}: {'; '.join(problems)}")
    return depth, num_classes


def convert_checkpoint(checkpoint, path: PathLike = "<checkpoint>") -> Tuple[Dict[str, torch.Tensor], int, Optional[int]]:
    """The plain state dict of an official checkpoint (already loaded), its depth and classes.

    ``path`` only names the source in the errors."""
    if not isinstance(checkpoint, dict):
        raise _refuse(path, f"it holds a {type(checkpoint).__name__}")
    if "state_dict" not in checkpoint:
        keys = [key for key in checkpoint if isinstance(key, str)]
        hint = (" (it looks like a plain state dict already: load it with "
                "model.load_state_dict)") if any(k.startswith(("stem.", "layer1.")) for k in keys) else ""
        raise _refuse(path, f"it has no 'state_dict' entry, only {_sample(keys) or 'no keys'}{hint}")
    state = checkpoint["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _refuse(path, "its 'state_dict' is not a dict of tensors")
    keys = [str(key) for key in state]
    outside = [key for key in keys if not key.startswith(("backbone.", "head."))]
    if not any(key.startswith("backbone.") for key in keys) or outside:
        found = (f"keys without those prefixes: {_sample(outside)}" if outside
                 else "it has no 'backbone.' keys")
        raise _refuse(path, found)
    converted = convert_official_state_dict(checkpoint)
    try:
        depth, num_classes = official_layout(converted)
    except ValueError as error:
        raise _refuse(path, str(error)) from None
    return converted, depth, num_classes


def convert_file(source: PathLike, target: PathLike, trust: bool = False,
                 backbone_only: bool = False) -> Tuple[int, Optional[int], int]:
    """Converts the official checkpoint ``source`` and saves the plain state dict to ``target``;
    returns (depth, num_classes or None, tensors written)."""
    state, depth, num_classes = convert_checkpoint(load_checkpoint(source, trust), source)
    if backbone_only:
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        num_classes = None
    torch.save(state, target)
    return depth, num_classes, len(state)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m involution_cuda.convert",
        description="Convert an official RedNet checkpoint (mmcls format: 'state_dict' with "
                    "'backbone.'/'head.' keys) to a plain state dict for involution_cuda.models.RedNet.")
    parser.add_argument("source", help="the official checkpoint (.pth)")
    parser.add_argument("target", help="where to write the plain state dict")
    parser.add_argument("--backbone-only", action="store_true",
                        help="leave out the classifier (fc.*): a backbone, RedNet(num_classes=None)")
    parser.add_argument("--trust", action="store_true",
                        help="load a file whose 'meta' holds arbitrary pickled objects (only for a "
                             "file from a trusted source: unpickling can run code)")
    args = parser.parse_args(argv)
    try:
        depth, num_classes, count = convert_file(args.source, args.target, args.trust, args.backbone_only)
    except (CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    head = f"{num_classes} classes" if num_classes is not None else "backbone, no classifier"
    print(f"RedNet-{depth} ({head}): {count} tensors written to {args.target}")
    print(f"load with: RedNet({depth}, num_classes={num_classes}).load_state_dict(torch.load({args.target!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
