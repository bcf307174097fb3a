"""Sequence benchmark: involution1d against its unfold formulation on long sequences.

For each case: forward, backward and forward+backward time and the peak extra memory of a
training step, for involution_cuda.involution1d and involution_cuda.reference.involution1d
(``Tensor.unfold`` over the padded sequence). Prints a table, writes JSON under
benchmarks/results/.

    python benchmarks/bench_1d.py            # B 4, C 512, L 4096, K 7, 16 channels per group
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from environment import environment  # noqa: E402
from measure import median_ms, peak_memory, run_isolated  # noqa: E402

import involution_cuda  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {"involution_cuda": involution_cuda.involution1d, "unfold": involution_cuda.reference.involution1d}


def inputs(batch, channels, length, kernel, causal, device):
    groups = channels // 16
    x = torch.randn(batch, channels, length, device=device, requires_grad=True)
    w = torch.randn(batch, groups, kernel, length, device=device, requires_grad=True)
    return x, w, torch.randn(batch, channels, length, device=device), dict(causal=causal)


def peak_train_mb(method, batch, channels, length, kernel, causal, device_name):
    device = torch.device(device_name)
    x, w, grad, options = inputs(batch, channels, length, kernel, causal, device)
    torch.autograd.grad(METHODS[method](x, w, **options), (x, w), grad)  # warm-up
    result = {}
    with peak_memory(device, result):
        torch.autograd.grad(METHODS[method](x, w, **options), (x, w), grad)
    return result["peak_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--channels", type=int, default=512)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--kernel", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    info = environment(device, argv)
    shape = (args.batch, args.channels, args.length, args.kernel)
    print(f"device: {info['device']} ({info['threads']} threads), torch {info['torch']}; "
          f"B {args.batch}, C {args.channels}, L {args.length}, K {args.kernel}")
    results = []
    for causal in (False, True):
        for method, function in METHODS.items():
            x, w, grad, options = inputs(*shape, causal, device)

            def forward(k):
                with torch.no_grad():
                    function(x, w, **options)

            def train(k):
                torch.autograd.grad(function(x, w, **options), (x, w), grad)

            row = {"method": method, "causal": causal, "batch": args.batch, "channels": args.channels,
                   "length": args.length, "kernel": args.kernel,
                   "forward_ms": median_ms(forward, device, args.repeats, 1),
                   "train_ms": median_ms(train, device, args.repeats, 1)}
            memory_args = (method, *shape, causal, str(device))
            row["peak_train_mb"] = (peak_train_mb(*memory_args) if device.type == "cuda"
                                    else run_isolated(peak_train_mb, *memory_args))
            results.append(row)
    for row in results:
        base = next(r for r in results if r["method"] == "unfold" and r["causal"] == row["causal"])
        row["speedup_forward"] = base["forward_ms"] / row["forward_ms"]
        row["speedup_train"] = base["train_ms"] / row["train_ms"]
        row["memory_ratio"] = row["peak_train_mb"] / base["peak_train_mb"] if base["peak_train_mb"] else None
        memory = f"{row['memory_ratio']:.3f}" if row["memory_ratio"] is not None else "-"
        print(f"{'causal' if row['causal'] else 'centred':<8}{row['method']:<17}fwd {row['forward_ms']:8.2f} ms"
              f"  fwd+bwd {row['train_ms']:8.2f} ms  peak {row['peak_train_mb']:8.1f} MB  "
              f"x{row['speedup_forward']:.1f} fwd  x{row['speedup_train']:.1f} fwd+bwd  mem {memory}")
    output = args.output or RESULTS / f"op1d_{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"environment": info, "results": results}, indent=1) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
