"""Op benchmark: involution_cuda against the unfold reference and pure-PyTorch alternatives.

For each shape and method: forward time (inference, no autograd), backward time (alone),
forward+backward time (one training step of the op), and the peak extra memory of that step.
On CUDA also the forward's achieved bandwidth against a device-to-device copy measured in the
same run, the opt-in fast kernels (NCHW and channels_last inputs) against the baseline kernels
("f+b vs base"), and torch.compile of the shift-and-add formulation. Prints a table, writes JSON (and PNG plots) under benchmarks/results/.

    python benchmarks/bench_op.py              # quick preset: the four RedNet-50 shapes
    python benchmarks/bench_op.py --full       # plus sweeps over kernel, group size, resolution
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import datetime
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Callable, Dict, List

import torch

try:
    from tqdm import tqdm
except ImportError:  # a progress bar is a nicety: machines without tqdm still run the benchmark
    def tqdm(iterable, **_):
        return iterable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import involution_cuda  # noqa: E402
from baselines import depthwise_conv, shift_add_involution  # noqa: E402
from measure import copy_bandwidth_gbs, median_ms, peak_memory, run_isolated  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "unfold"


@dataclasses.dataclass(frozen=True)
class Shape:
    name: str
    batch: int
    channels: int
    size: int
    kernel: int = 7
    group_channels: int = 16
    stride: int = 1

    @property
    def groups(self) -> int:
        return self.channels // self.group_channels

    @property
    def out_size(self) -> int:
        return involution_cuda.output_size(self.size, self.kernel, self.stride, (self.kernel - 1) // 2, 1)

    def minimal_bytes(self, element_size: int) -> int:
        """Fewest bytes a forward moves: read input and weight once, write output once."""
        input_elems = self.batch * self.channels * self.size ** 2
        output_elems = self.batch * self.channels * self.out_size ** 2
        weight_elems = self.batch * self.groups * self.kernel ** 2 * self.out_size ** 2
        return element_size * (input_elems + output_elems + weight_elems)


def rednet50_shapes(batch: int) -> List[Shape]:
    return [Shape(f"stage{i + 1}", batch, c, s) for i, (c, s) in
            enumerate([(64, 56), (128, 28), (256, 14), (512, 7)])]


def sweep_shapes(batch: int) -> List[Shape]:
    shapes = [Shape(f"k{k}", batch, 128, 28, kernel=k) for k in (3, 5)]
    shapes += [Shape(f"gc{g}", batch, 128, 28, group_channels=g) for g in (4, 8, 32, 128)]
    shapes += [Shape(f"res{s}", batch, 64, s) for s in (14, 28, 112)]
    return shapes


# The inputs' memory format of each method; methods not listed take contiguous inputs.
MEMORY_FORMATS = {"involution_cuda_fast_nhwc": torch.channels_last}


def methods(device: torch.device, cupy_op=None) -> Dict[str, Callable]:
    found = {
        "involution_cuda": involution_cuda.involution,
        BASELINE: involution_cuda.reference.involution,
        "shift_add": shift_add_involution,
    }
    if device.type == "cuda":
        # The opt-in fast kernels, on NCHW and on channels_last inputs ("involution_cuda" runs
        # the default choice, the baseline kernels).
        found["involution_cuda_fast"] = functools.partial(involution_cuda.involution, kernels="fast")
        found["involution_cuda_fast_nhwc"] = found["involution_cuda_fast"]
        found["shift_add_compiled"] = torch.compile(shift_add_involution, dynamic=False)
        found["depthwise_conv"] = None  # built per shape: it takes a static (C, 1, K, K) weight
    if cupy_op is not None:
        found["official_cupy"] = cupy_op
    return found


def load_official_cupy(checkout: str):
    """The paper's CuPy op, loaded from a user's checkout of d-li14/involution (never vendored).

    Its file imports mmcv for the layer class only; a stand-in module is provided when mmcv is
    absent, since the op itself does not use it. It supports float32 and float64 only.
    """
    import importlib.util
    import types

    path = os.path.join(checkout, "cls", "mmcls", "models", "utils", "involution_cuda.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"--official-checkout: {path} not found")
    try:
        import mmcv.cnn  # noqa: F401
    except ImportError:
        sys.modules.setdefault("mmcv", types.ModuleType("mmcv"))
        sys.modules["mmcv.cnn"] = types.SimpleNamespace(ConvModule=None)
    spec = importlib.util.spec_from_file_location("official_involution_cuda", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def official(x, w, stride=1, padding=None, dilation=1):
        pad = dilation * (w.shape[2] - 1) // 2 if padding is None else padding
        return module._involution_cuda(x, w, stride=stride, padding=pad, dilation=dilation)

    return official


def make_inputs(shape: Shape, dtype, device, copies: int, memory_format=torch.contiguous_format):
    def one():
        x = torch.randn(shape.batch, shape.channels, shape.size, shape.size, dtype=dtype, device=device)
        x = x.contiguous(memory_format=memory_format)
        w = torch.randn(shape.batch, shape.groups, shape.kernel, shape.kernel, shape.out_size,
                        shape.out_size, dtype=dtype, device=device)
        return x.requires_grad_(), w.requires_grad_()
    return [one() for _ in range(copies)]


class Case:
    """Inputs and the calls to measure for one (shape, method, dtype)."""

    def __init__(self, shape: Shape, name: str, fn, dtype, device, copies: int = 1):
        self.copies = copies
        memory_format = MEMORY_FORMATS.get(name, torch.contiguous_format)
        self.inputs = make_inputs(shape, dtype, device, copies, memory_format)
        if name == "depthwise_conv":  # a static (C, 1, K, K) weight instead of a generated one
            self.inputs = [(x, torch.randn(shape.channels, 1, shape.kernel, shape.kernel, dtype=dtype,
                                           device=device, requires_grad=True)) for x, _ in self.inputs]
            fn = depthwise_conv
        self.fn = fn
        self.options = dict(stride=shape.stride)
        self.grad_out = torch.randn(shape.batch, shape.channels, shape.out_size, shape.out_size,
                                    dtype=dtype, device=device).contiguous(memory_format=memory_format)

    def forward(self, k=0):
        with torch.no_grad():
            self.fn(*self.inputs[k % self.copies], **self.options)

    def forward_with_graph(self, k=0):
        return self.fn(*self.inputs[k % self.copies], **self.options)

    def backward(self, k, out):
        torch.autograd.grad(out, self.inputs[k % self.copies], self.grad_out)

    def train_step(self, k=0):
        self.backward(k, self.forward_with_graph(k))


def peak_memory_mb(shape: Shape, name: str, dtype_name: str, device_name: str, fn=None) -> dict:
    """Peak extra memory of one training step and of one inference forward."""
    device = torch.device(device_name)
    case = Case(shape, name, fn or methods(device).get(name), getattr(torch, dtype_name), device)
    case.train_step()  # warm-up: one-time allocations (thread pools, workspaces) are not the op's
    train, forward = {}, {}
    with peak_memory(device, train):
        case.train_step()
    with peak_memory(device, forward):
        case.forward()
    return {"peak_train_mb": train["peak_mb"], "peak_forward_mb": forward["peak_mb"]}


def bench_one(shape: Shape, name: str, fn, dtype, device, args) -> dict:
    element_size = torch.empty((), dtype=dtype).element_size()
    # Rotate through enough copies of the inputs that they do not stay in cache between calls.
    copies = max(1, min(8, math.ceil(args.rotate_mb * 2**20 / shape.minimal_bytes(element_size))))
    case = Case(shape, name, fn, dtype, device, copies)
    result = {"shape": shape.name, "method": name, "dtype": str(dtype).replace("torch.", ""),
              **dataclasses.asdict(shape)}
    reps, warm = args.repeats, args.warmup
    result["forward_ms"] = median_ms(case.forward, device, reps, warm)
    result["backward_ms"] = median_ms(case.backward, device, reps, warm, prepare=case.forward_with_graph)
    result["train_ms"] = median_ms(case.train_step, device, reps, warm)
    del case
    memory_args = (shape, name, result["dtype"], str(device))
    # On CPU the process's resident set is the only honest gauge, and reading it needs an allocator
    # setting that would slow the timed runs: measure memory in a separate process.
    if device.type == "cuda":
        result.update(peak_memory_mb(*memory_args, fn=fn))
    else:
        result.update(run_isolated(peak_memory_mb, *memory_args))
    if device.type == "cuda" and name != "depthwise_conv":
        result["forward_gbs"] = shape.minimal_bytes(element_size) / (result["forward_ms"] * 1e-3) / 1e9
    return result


def add_ratios(results: List[dict]) -> None:
    baseline = {(r["shape"], r["dtype"]): r for r in results if r["method"] == BASELINE}
    for r in results:
        base = baseline.get((r["shape"], r["dtype"]))
        if base is None:
            continue
        for key in ("forward_ms", "backward_ms", "train_ms"):
            r[f"speedup_{key[:-3]}"] = base[key] / r[key]
        r["memory_ratio"] = r["peak_train_mb"] / base["peak_train_mb"] if base["peak_train_mb"] else None
    # The fast kernels against the baseline kernels (same shape and dtype).
    kernels = {(r["shape"], r["dtype"]): r for r in results if r["method"] == "involution_cuda"}
    for r in results:
        base = kernels.get((r["shape"], r["dtype"]))
        if base is not None and r["method"].startswith("involution_cuda_fast"):
            for key in ("forward_ms", "backward_ms", "train_ms"):
                r[f"speedup_{key[:-3]}_vs_baseline_kernels"] = base[key] / r[key]


def print_table(results: List[dict], copy_gbs) -> None:
    header = (f"{'shape':<8}{'dtype':<10}{'method':<27}{'fwd ms':>9}{'bwd ms':>9}{'f+b ms':>9}"
              f"{'peak MB':>9}{'x fwd':>8}{'x f+b':>8}{'mem/unf':>9}{'f+b vs base':>12}")
    if copy_gbs:
        header += f"{'GB/s':>8}{'%copy':>7}"
    print(header)
    print("-" * len(header))
    for r in results:
        memory = f"{r['memory_ratio']:.3f}" if r.get("memory_ratio") is not None else "-"
        line = (f"{r['shape']:<8}{r['dtype']:<10}{r['method']:<27}{r['forward_ms']:>9.2f}"
                f"{r['backward_ms']:>9.2f}{r['train_ms']:>9.2f}{r['peak_train_mb']:>9.1f}"
                f"{r.get('speedup_forward', float('nan')):>8.1f}{r.get('speedup_train', float('nan')):>8.1f}"
                f"{memory:>9}")
        versus = r.get("speedup_train_vs_baseline_kernels")
        line += f"{versus:>12.2f}" if versus is not None else f"{'-':>12}"
        if copy_gbs and "forward_gbs" in r:
            line += f"{r['forward_gbs']:>8.0f}{100 * r['forward_gbs'] / copy_gbs:>7.1f}"
        print(line)


def plot(results: List[dict], path: Path) -> bool:
    """Speed-up and memory bar charts; False when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [m for m in dict.fromkeys(r["method"] for r in results) if m != BASELINE]
    keys = list(dict.fromkeys((r["shape"], r["dtype"]) for r in results))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(others))
    for index, method in enumerate(others):
        rows = {(r["shape"], r["dtype"]): r for r in results if r["method"] == method}
        xs = [k + index * width for k in range(len(keys))]
        axes[0].bar(xs, [rows[k].get("speedup_train", 0) if k in rows else 0 for k in keys], width, label=method)
        axes[1].bar(xs, [rows[k].get("memory_ratio") or 0 if k in rows else 0 for k in keys], width, label=method)
    single_dtype = len({d for _, d in keys}) == 1
    labels = [s if single_dtype else f"{s}\n{d}" for s, d in keys]
    for ax, title in zip(axes, ("forward+backward speed-up over unfold (higher is better)",
                                "peak memory / unfold's (lower is better)")):
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.legend(fontsize=8)
    for ax in axes:
        ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def environment(device: torch.device) -> dict:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as cpuinfo:
                name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    return {"device": name, "device_type": device.type, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="add the kernel / group / resolution sweeps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, help="batch size (default 8 on CPU, 64 on CUDA)")
    parser.add_argument("--dtypes", nargs="+", help="default float32 (CPU); float32 float16 bfloat16 (CUDA)")
    parser.add_argument("--methods", nargs="+", help="subset of methods to run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rotate-mb", type=float, default=64.0, help="rotate inputs up to this many MB")
    parser.add_argument("--official-checkout", help="path to a d-li14/involution checkout (needs CuPy, CUDA)")
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/op_<device>_<preset>.json)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    batch = args.batch or (64 if device.type == "cuda" else 8)
    args.repeats = args.repeats or (20 if device.type == "cuda" else 7)
    dtypes = [getattr(torch, d) for d in (args.dtypes or (["float32", "float16", "bfloat16"]
                                                          if device.type == "cuda" else ["float32"]))]
    shapes = rednet50_shapes(batch) + (sweep_shapes(batch) if args.full else [])
    cupy_op = load_official_cupy(args.official_checkout) if args.official_checkout else None
    chosen = methods(device, cupy_op)
    if args.methods:
        unknown = set(args.methods) - set(chosen)
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(chosen)}")
        chosen = {m: f for m, f in chosen.items() if m in args.methods or m == BASELINE}

    info = environment(device)
    copy_gbs = copy_bandwidth_gbs(device) if device.type == "cuda" else None
    print(f"device: {info['device']} ({info['threads']} threads), torch {info['torch']}, batch {batch}"
          + (f", copy bandwidth {copy_gbs:.0f} GB/s" if copy_gbs else ""))
    jobs = [(s, d, m) for s in shapes for d in dtypes for m in chosen
            if not (m == "official_cupy" and d not in (torch.float32, torch.float64))]
    results = []
    for shape, dtype, method in tqdm(jobs, desc="benchmark", unit="case"):
        results.append(bench_one(shape, method, chosen[method], dtype, device, args))
    add_ratios(results)
    print_table(results, copy_gbs)

    preset = "full" if args.full else "quick"
    output = args.output or RESULTS / f"op_{device.type}_{preset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"environment": info, "copy_bandwidth_gbs": copy_gbs, "batch": batch,
                                  "preset": preset, "results": results}, indent=1) + "\n")
    plotted = plot(results, output.with_suffix(".png"))
    print(f"wrote {output}" + (f" and {output.with_suffix('.png')}" if plotted else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
