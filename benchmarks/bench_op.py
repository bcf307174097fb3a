"""Op benchmark: involution_cuda against unfold, shift-and-add (hand-written backward), and
torch.compile of shift-and-add, on CPU or CUDA.

For each shape, dtype and method: forward (inference, no autograd), backward alone, and
forward+backward (one training step of the op), and for this extension also grad_input and
grad_weight alone, each as min / median / interquartile range of cold calls (measure.py); the
peak extra memory of a training step; and the floor: a streaming copy of the op's minimal bytes
(read input and weight, write output; grad_input and grad_weight each move the same count, so
backward's floor is two such copies and a training step's three),
timed the same way in the same run. The methods of one shape and dtype are measured in turns,
a chunk of calls each, so that drift of the machine hits them alike. A group whose numbers are
inconsistent (backward slower than forward+backward, or a spread above --max-iqr) is measured
again, and rows still inconsistent after --retries are marked rejected (exit status 3). A case
that raises is recorded with its error and the run goes on (exit status 1, except for the
methods whose code the installed torch generates: their cases first run once in a process of
their own against the float64 reference, then are timed in another, right after the group's
other methods, and one that crashes or disagrees is recorded as unavailable). Results are
written after every group, so a run that is killed keeps what it measured.

    python benchmarks/bench_op.py              # quick preset: the four RedNet-50 shapes
    python benchmarks/bench_op.py --full       # plus sweeps over kernel, group size, resolution
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import signal
import subprocess
import sys
import time
import traceback
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
from baselines import CompiledShiftAdd, depthwise_conv, load_official_cupy, shift_add  # noqa: E402
from environment import environment  # noqa: E402
from measure import Timer, keep_freed_memory, last_level_cache_bytes, peak_memory, run_isolated, summarize  # noqa: E402
from report import print_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE = "unfold"
MODES = ("forward", "backward", "train")
# The backward's two ops timed alone (the raw ops, no autograd), for this extension's methods
# (the others have no such ops): each against one copy, to say which op is far from its floor.
OP_MODES = ("grad_input", "grad_weight")
FLOOR_COPIES = {"forward": 1, "backward": 2, "train": 3,  # op-sized copies each mode must move
                "grad_input": 1, "grad_weight": 1}
# What a user could run instead of this extension; speed-ups are also given against the best.
COMPETITORS = ("unfold", "shift_add", "shift_add_compiled", "official_cupy")
YARDSTICKS = ("depthwise_conv",)  # different bytes and work: times only, never a speed-up
# Methods whose code the installed torch generates: each case first runs once in a process of
# its own and is checked against the eager formulation there, then is timed in a process of its
# own, so that generated code that crashes ends that process, not the run, and wrong results
# are never timed (inductor's AVX-512 code corrupted the heap on a Zen 4 host with torch 2.13,
# at some shapes in one run and not in the next: a probe that passed was no guarantee).
PROBED = ("shift_add_compiled",)
# Largest error of a probed method's results, relative to the float64 reference's largest value.
PROBE_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-10, torch.bfloat16: 5e-2, torch.float16: 1e-2}


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
    def padding(self) -> int:
        return (self.kernel - 1) // 2  # the op's default at dilation 1

    @property
    def out_size(self) -> int:
        return involution_cuda.output_size(self.size, self.kernel, self.stride, self.padding, 1)

    def minimal_bytes(self, element_size: int) -> int:
        """Fewest bytes a forward moves: read input and weight once, write output once (and the
        same count for grad_input and for grad_weight)."""
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


def method_table(device: torch.device, official_checkout=None) -> Dict[str, Callable[[], Callable]]:
    """Each method's factory: called once per case, so that compiled methods compile per case."""
    table = {
        "involution_cuda": lambda: involution_cuda.involution,
        BASELINE: lambda: involution_cuda.reference.involution,
        "shift_add": lambda: shift_add,
        "shift_add_compiled": CompiledShiftAdd,
    }
    if device.type == "cuda":
        # The fast kernels, on NCHW and on channels_last inputs ("involution_cuda" runs the
        # default choice, the baseline kernels).
        fast = functools.partial(involution_cuda.involution, kernels="fast")
        table["involution_cuda_fast"] = table["involution_cuda_fast_nhwc"] = lambda: fast
        table["depthwise_conv"] = lambda: depthwise_conv
    if official_checkout:
        official = load_official_cupy(official_checkout)
        table["official_cupy"] = lambda: official
    return table


def supports(method: str, dtype: torch.dtype) -> bool:
    return method != "official_cupy" or dtype in (torch.float32, torch.float64)


class Case:
    """Rotated input copies (input, weight, grad_output) and the calls to time for one method."""

    def __init__(self, shape: Shape, name: str, fn, dtype, device, copies: int):
        self.name, self.fn, self.copies = name, fn, copies
        memory_format = MEMORY_FORMATS.get(name, torch.contiguous_format)
        self.options = dict(stride=shape.stride)
        self.modes = MODES + OP_MODES if name.startswith("involution_cuda") else MODES
        # the raw ops' arguments: (input size, stride, padding, dilation, kernels)
        self.op_options = ([shape.size] * 2, [shape.stride] * 2, [shape.padding] * 2, [1, 1],
                           getattr(fn, "keywords", {}).get("kernels", "auto"))
        self.kernel_size, self.groups = [shape.kernel] * 2, shape.groups
        self.inputs, self.grads = [], []
        for _ in range(copies):
            x = torch.randn(shape.batch, shape.channels, shape.size, shape.size, dtype=dtype, device=device)
            if name in YARDSTICKS:  # a static (C, 1, K, K) weight instead of a generated one
                w = torch.randn(shape.channels, 1, shape.kernel, shape.kernel, dtype=dtype, device=device)
            else:
                w = torch.randn(shape.batch, shape.groups, shape.kernel, shape.kernel, shape.out_size,
                                shape.out_size, dtype=dtype, device=device)
            self.inputs.append((x.contiguous(memory_format=memory_format).requires_grad_(), w.requires_grad_()))
            self.grads.append(torch.randn(shape.batch, shape.channels, shape.out_size, shape.out_size,
                                          dtype=dtype, device=device).contiguous(memory_format=memory_format))

    def forward(self, k=0):
        with torch.no_grad():
            self.fn(*self.inputs[k % self.copies], **self.options)

    def forward_with_graph(self, k=0):
        return self.fn(*self.inputs[k % self.copies], **self.options)

    def backward(self, k, out):
        torch.autograd.grad(out, self.inputs[k % self.copies], self.grads[k % self.copies])

    def train_step(self, k=0):
        self.backward(k, self.forward_with_graph(k))

    def grad_input(self, k=0):
        size, stride, padding, dilation, kernels = self.op_options
        with torch.no_grad():
            torch.ops.involution_cuda.involution_grad_input(
                self.grads[k % self.copies], self.inputs[k % self.copies][1], size, stride, padding,
                dilation, kernels)

    def grad_weight(self, k=0):
        _, stride, padding, dilation, kernels = self.op_options
        with torch.no_grad():
            torch.ops.involution_cuda.involution_grad_weight(
                self.grads[k % self.copies], self.inputs[k % self.copies][0], self.groups,
                self.kernel_size, stride, padding, dilation, kernels)

    def timed_calls(self, mode):
        """(run, prepare) for the timer: prepare runs untimed, before the cache flush."""
        return {"forward": (self.forward, None), "backward": (self.backward, self.forward_with_graph),
                "train": (self.train_step, None), "grad_input": (self.grad_input, None),
                "grad_weight": (self.grad_weight, None)}[mode]


class CopyFloor:
    """A streaming copy of ``nbytes`` (half read, half written), rotated like the inputs."""

    def __init__(self, nbytes: int, device, copies: int):
        elements = max(1, nbytes // 2 // 4)
        # targets written once here: a first write to fresh pages costs page faults, which the
        # ops' outputs (reused memory) do not pay
        self.pairs = [(torch.randn(elements, device=device), torch.zeros(elements, device=device))
                      for _ in range(copies)]

    def __call__(self, k):
        source, target = self.pairs[k % len(self.pairs)]
        target.copy_(source)


def probe_case(shape: Shape, name: str, dtype_name: str, device_name: str) -> float:
    """One training step of a method against shift-and-add in float64 on the same inputs: the
    largest error of its output and gradients, relative to the reference's largest value."""
    device, dtype = torch.device(device_name), getattr(torch, dtype_name)
    case = Case(shape, name, method_table(device)[name](), dtype, device, copies=1)
    (x, w), grad = case.inputs[0], case.grads[0]
    with torch.no_grad():
        inference = case.fn(x, w, **case.options)
    out = case.fn(x, w, **case.options)
    results = (inference, out, *torch.autograd.grad(out, (x, w), grad))
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    out64 = shift_add(x64, w64, **case.options)
    wanted = (out64, out64, *torch.autograd.grad(out64, (x64, w64), grad.double()))
    return max(((got.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
               for got, ref in zip(results, wanted))


def check_probed(shape: Shape, name: str, dtype, device) -> None:
    """Runs probe_case in a new interpreter; raises when that process fails (a crash of the
    generated code included) or the method disagrees with the reference. A plain interpreter,
    as the benchmark's own: under multiprocessing's workers the generated code that failed here
    ran correctly."""
    dtype_name = str(dtype).replace("torch.", "")
    call = (f"probe_case(bench_op.Shape(**{dataclasses.asdict(shape)!r}), {name!r}, {dtype_name!r}, "
            f"{str(device)!r})")
    error = float(in_new_interpreter(call, "a run"))
    if not error <= PROBE_TOLERANCE[dtype]:
        raise ValueError(f"wrong results: error {error:.3g} relative to the largest value of the "
                         f"float64 reference (tolerance {PROBE_TOLERANCE[dtype]:g})")


def in_new_interpreter(call: str, doing: str) -> str:
    """The JSON of `bench_op.<call>`, evaluated in a new interpreter; raises RuntimeError saying
    how that process ended (its signal or exit status, and its last line of stderr) when it fails."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); "
            f"import bench_op; print(json.dumps(bench_op.{call}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        how = (f"signal {signal.Signals(-done.returncode).name}" if done.returncode < 0
               else f"exit status {done.returncode}")
        last = [line for line in done.stderr.splitlines() if line.strip()][-1:] or ["no message"]
        raise RuntimeError(f"{doing} in a process of its own ended with {how}: {last[0]}")
    return done.stdout.splitlines()[-1]


def process_timer(device, args) -> Timer:
    """The Timer of a benchmark process, with the allocator set up for CPU timing first."""
    if device.type == "cpu":
        keep_freed_memory()
    return Timer(device, args.min_runs, 0.0 if device.type == "cuda" else args.min_seconds)


def isolated_row(shape: Shape, name: str, dtype_name: str, device_name: str, options: dict) -> dict:
    """measure_group's row of one method alone (the child's side of measure_isolated)."""
    args, device = argparse.Namespace(**options), torch.device(device_name)
    rows = measure_group(shape, getattr(torch, dtype_name), device, [name],
                         method_table(device, args.official_checkout), args,
                         process_timer(device, args), isolate=False)
    return rows[0]


def measure_isolated(shape: Shape, name: str, dtype, device, args) -> dict:
    """Times one method of a group in a new interpreter (its own copy floor beside it) and
    returns its row; raises when that process fails."""
    options = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    dtype_name = str(dtype).replace("torch.", "")
    call = (f"isolated_row(bench_op.Shape(**{dataclasses.asdict(shape)!r}), {name!r}, {dtype_name!r}, "
            f"{str(device)!r}, {options!r})")
    return json.loads(in_new_interpreter(call, "timing it"))


def rotation_copies(shape: Shape, element_size: int, device, args) -> int:
    """Copies whose inputs (grads included) total >= --rotate-factor x the last-level cache."""
    per_copy = element_size * (2 * shape.batch * shape.channels * shape.size ** 2) + shape.minimal_bytes(element_size)
    wanted = math.ceil(args.rotate_factor * last_level_cache_bytes(device) / per_copy)
    return max(2, min(wanted, int(args.rotate_cap_mb * 2**20 // per_copy)))


def peak_memory_mb(shape: Shape, name: str, dtype_name: str, device_name: str, fn=None) -> dict:
    """Peak extra memory of one training step and of one inference forward."""
    device = torch.device(device_name)
    fn = fn or method_table(device)[name]()
    case = Case(shape, name, fn, getattr(torch, dtype_name), device, copies=1)
    case.train_step()  # warm-up: one-time allocations (thread pools, workspaces) are not the op's
    train, forward = {}, {}
    with peak_memory(device, train):
        case.train_step()
    with peak_memory(device, forward):
        case.forward()
    return {"peak_train_mb": train["peak_mb"], "peak_forward_mb": forward["peak_mb"]}


def inconsistencies(row: dict, max_iqr: float) -> List[str]:
    """Why a row's numbers cannot be trusted (empty when they can)."""
    reasons = []
    if row["backward"]["median_ms"] > 1.05 * row["train"]["median_ms"]:
        reasons.append("backward slower than forward+backward")
    for mode in MODES:
        if row[mode]["iqr_rel"] > max_iqr:
            reasons.append(f"{mode} spread {100 * row[mode]['iqr_rel']:.0f}% > {100 * max_iqr:.0f}%")
    if row.get("compiles") not in (None, 2):
        reasons.append(f"compiled {row['compiles']} graphs, expected 2 (inference and training)")
    return reasons


def error_text(error: Exception, limit: int = 500) -> str:
    """What the results keep of an error: its type and the start of its message (a compiler's
    message can run to megabytes; the traceback is printed in full)."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= limit else text[:limit] + " ..."


def measure_group(shape: Shape, dtype, device, names: List[str], table, args, timer: Timer,
                  isolate: bool = True) -> List[dict]:
    """Times every method of one shape and dtype in turns, and the copy floor beside them; the
    PROBED methods are checked and then timed in processes of their own (unless `isolate` is
    false: in that process itself)."""
    element_size = torch.empty((), dtype=dtype).element_size()
    copies = rotation_copies(shape, element_size, device, args)
    base = {"shape": shape.name, "dtype": str(dtype).replace("torch.", ""), **dataclasses.asdict(shape),
            "rotation_copies": copies}
    rows, cases = {}, {}
    isolated = [name for name in names if name in PROBED and isolate]
    for name in names:
        rows[name] = {**base, "method": name}
        if name in isolated:
            continue
        try:
            cases[name] = Case(shape, name, table[name](), dtype, device, copies)
            for mode in cases[name].modes:  # warm-up: compiles, allocator and thread pools settle here
                run, prepare = cases[name].timed_calls(mode)
                for k in range(args.warmup):
                    run(k, prepare(k)) if prepare else run(k)
        except Exception as error:  # one failing case must not end the run
            rows[name]["error"] = error_text(error)
            traceback.print_exc()
            cases.pop(name, None)
    floor = CopyFloor(shape.minimal_bytes(element_size), device, copies)
    samples = {(name, mode): [] for name, case in cases.items() for mode in case.modes}
    floor_samples = []
    calls = dict.fromkeys([*samples, "floor"], args.warmup)  # keeps each rotation going
    for round_index in range(args.rounds):
        names_in_turn = list(cases)
        shift = round_index % max(1, len(names_in_turn))
        for name in names_in_turn[shift:] + names_in_turn[:shift]:
            for mode in cases[name].modes:
                run, prepare = cases[name].timed_calls(mode)
                try:
                    times = timer.chunk(run, calls[name, mode], prepare)
                except Exception as error:
                    rows[name]["error"] = error_text(error)
                    continue
                samples[name, mode] += times
                calls[name, mode] += len(times)
        times = timer.chunk(floor, calls["floor"])
        floor_samples += times
        calls["floor"] += len(times)
    floor_ms = summarize(floor_samples)
    for name, case in cases.items():
        row = rows[name]
        if "error" in row:
            continue
        for mode in case.modes:
            row[mode] = summarize(samples[name, mode])
            row[f"{mode}_ms"] = row[mode]["median_ms"]
            if name not in YARDSTICKS:
                row[f"{mode}_floor_ms"] = FLOOR_COPIES[mode] * floor_ms["median_ms"]
                row[f"{mode}_x_floor"] = row[f"{mode}_ms"] / row[f"{mode}_floor_ms"]
        row["copy_floor"] = floor_ms
        row["copy_gbs"] = shape.minimal_bytes(element_size) / (floor_ms["median_ms"] * 1e-3) / 1e9
        if name not in YARDSTICKS:
            row["forward_gbs"] = shape.minimal_bytes(element_size) / (row["forward_ms"] * 1e-3) / 1e9
        if isinstance(case.fn, CompiledShiftAdd):
            row["compiles"] = case.fn.compiles
        row["rejected"] = inconsistencies(row, args.max_iqr)
    memory_fns = {name: case.fn for name, case in cases.items()}
    del cases, floor
    for name in memory_fns:
        add_memory(rows[name], shape, device, memory_fns[name])
    for name in isolated:
        try:
            check_probed(shape, name, dtype, device)
            rows[name] = measure_isolated(shape, name, dtype, device, args)
        except Exception as error:
            rows[name]["error"] = error_text(error)
            traceback.print_exc()
    return list(rows.values())


def add_memory(row: dict, shape: Shape, device, fn) -> None:
    memory_args = (shape, row["method"], row["dtype"], str(device))
    try:
        if device.type == "cuda":
            row.update(peak_memory_mb(*memory_args, fn=fn))
        elif row["method"] == "shift_add_compiled":
            # Compiling again in the memory process would double the run's time; not measured.
            row.update(peak_train_mb=None, peak_forward_mb=None)
        else:
            # On CPU the process's resident set is the only honest gauge, and reading it needs an
            # allocator setting that would slow the timed runs: measure in a separate process.
            row.update(run_isolated(peak_memory_mb, *memory_args))
    except Exception as error:
        row["error"] = f"memory: {type(error).__name__}: {error}"


def add_ratios(results: List[dict]) -> None:
    """Speed-ups over unfold, over the fastest competitor, and of the fast over the baseline
    CUDA kernels; peak memory relative to unfold."""
    timed = [r for r in results if "train_ms" in r and r["method"] not in YARDSTICKS]
    by_key = {}
    for r in timed:
        by_key.setdefault((r["shape"], r["dtype"]), {})[r["method"]] = r
    for rows in by_key.values():
        unfold, kernels = rows.get(BASELINE), rows.get("involution_cuda")
        competitors = [rows[m] for m in COMPETITORS if m in rows]
        for r in rows.values():
            for mode in MODES:
                if unfold:
                    r[f"speedup_{mode}"] = unfold[f"{mode}_ms"] / r[f"{mode}_ms"]
                others = [c for c in competitors if c is not r]
                if r["method"].startswith("involution_cuda") and others:
                    best = min(others, key=lambda c: c[f"{mode}_ms"])
                    r[f"best_competitor_{mode}"] = best["method"]
                    r[f"speedup_{mode}_vs_best"] = best[f"{mode}_ms"] / r[f"{mode}_ms"]
                if kernels and r["method"].startswith("involution_cuda_fast"):
                    r[f"speedup_{mode}_vs_baseline_kernels"] = kernels[f"{mode}_ms"] / r[f"{mode}_ms"]
            if unfold and unfold.get("peak_train_mb") and r.get("peak_train_mb") is not None:
                r["memory_ratio"] = r["peak_train_mb"] / unfold["peak_train_mb"]


def plot(results: List[dict], path: Path) -> bool:
    """Speed-up over unfold, times over the floor, and memory bar charts (no yardsticks)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in results if "train_ms" in r and r["method"] not in YARDSTICKS]
    methods = list(dict.fromkeys(r["method"] for r in results))
    keys = list(dict.fromkeys((r["shape"], r["dtype"]) for r in results))
    panels = [("speedup_train", "forward+backward speed-up over unfold (higher is better)", [m for m in methods if m != BASELINE]),
              ("train_x_floor", "forward+backward time / its copy floor (lower is better)", methods),
              ("memory_ratio", "peak memory / unfold's (lower is better)", [m for m in methods if m != BASELINE])]
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    single_dtype = len({d for _, d in keys}) == 1
    labels = [s if single_dtype else f"{s}\n{d}" for s, d in keys]
    for ax, (key, title, shown) in zip(axes, panels):
        width = 0.8 / max(1, len(shown))
        for index, method in enumerate(shown):
            rows = {(r["shape"], r["dtype"]): r for r in results if r["method"] == method}
            ax.bar([k + index * width for k in range(len(keys))],
                   [(rows[k].get(key) or 0) if k in rows else 0 for k in keys], width, label=method)
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], labels, fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        if shown:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="add the kernel / group / resolution sweeps")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, help="batch size (default 8 on CPU, 64 on CUDA)")
    parser.add_argument("--dtypes", nargs="+", help="default float32 (CPU); float32 bfloat16 (CUDA)")
    parser.add_argument("--methods", nargs="+", help="subset of methods to run (unfold always runs)")
    parser.add_argument("--shapes", nargs="+", help="subset of shapes by name (stage1 ... stage4, sweeps)")
    parser.add_argument("--rounds", type=int, default=5, help="turns of the methods per group")
    parser.add_argument("--min-runs", type=int, help="calls per chunk (default 2 on CPU, 10 on CUDA)")
    parser.add_argument("--min-seconds", type=float, default=0.1, help="least time per CPU chunk")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per method and mode")
    parser.add_argument("--retries", type=int, default=2, help="re-measurements of an inconsistent group")
    parser.add_argument("--max-iqr", type=float, help="largest accepted IQR / median (default 0.5 CPU, 0.15 CUDA)")
    parser.add_argument("--rotate-factor", type=float, default=3.0, help="rotated inputs, in last-level caches")
    parser.add_argument("--rotate-cap-mb", type=float, default=2048.0, help="most memory the rotation may take")
    parser.add_argument("--deadline-s", type=float, help="start no group after this many seconds (default 420 on CUDA)")
    parser.add_argument("--official-checkout", help="path to a d-li14/involution checkout (needs CuPy, CUDA)")
    parser.add_argument("--allow-unstable", action="store_true", help="exit 0 even when rows are rejected")
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/op_<device>_<preset>.json)")
    args = parser.parse_args(argv)
    on_cuda = torch.device(args.device).type == "cuda"
    args.min_runs = args.min_runs or (10 if on_cuda else 2)
    args.max_iqr = args.max_iqr or (0.15 if on_cuda else 0.5)
    return parser, args


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    batch = args.batch or (64 if on_cuda else 8)
    deadline = args.deadline_s if args.deadline_s is not None else (420.0 if on_cuda else math.inf)
    dtypes = [getattr(torch, d) for d in (args.dtypes or (["float32", "bfloat16"] if on_cuda else ["float32"]))]
    shapes = rednet50_shapes(batch) + (sweep_shapes(batch) if args.full else [])
    if args.shapes:
        unknown = set(args.shapes) - {s.name for s in shapes}
        if unknown:
            parser.error(f"unknown shapes {sorted(unknown)}; choose from {[s.name for s in shapes]}")
        shapes = [s for s in shapes if s.name in args.shapes]
    table = method_table(device, args.official_checkout)
    if args.methods:
        unknown = set(args.methods) - set(table)
        if unknown:
            parser.error(f"unknown methods {sorted(unknown)}; choose from {sorted(table)}")
        table = {m: f for m, f in table.items() if m in args.methods or m == BASELINE}

    info = environment(device, sys.argv[1:] if argv is None else argv)
    print(f"device: {info['device']} ({info['threads']} threads, ISA {' '.join(info['isa_flags']) or '-'}, "
          f"torch CPU capability {info['torch_cpu_capability']}, this op's CPU kernels "
          f"{info['kernel_cpu_capability']}), torch {info['torch']}, batch {batch}")
    preset = "full" if args.full else "quick"
    output = args.output or RESULTS / f"op_{device.type}_{preset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    timer = process_timer(device, args)
    groups = [(s, d) for d in dtypes for s in shapes]
    results, skipped, started = [], [], time.monotonic()

    def write(complete: bool):
        add_ratios(results)
        output.write_text(json.dumps({"environment": info, "batch": batch, "preset": preset,
                                      "complete": complete, "skipped": skipped, "results": results},
                                     indent=1) + "\n")

    for shape, dtype in tqdm(groups, desc="benchmark", unit="group"):
        if time.monotonic() - started > deadline:
            skipped.append(f"{shape.name} {dtype}: past the {deadline:.0f} s deadline")
            continue
        names = [m for m in table if supports(m, dtype)]
        for attempt in range(1 + args.retries):
            rows = measure_group(shape, dtype, device, names, table, args, timer)
            if not any(r.get("rejected") for r in rows):
                break
        for r in rows:
            r["attempts"] = attempt + 1
        results += rows
        write(complete=False)
    write(complete=True)
    print_table(results)
    plotted = plot(results, output.with_suffix(".png"))
    print(f"wrote {output}" + (f" and {output.with_suffix('.png')}" if plotted else " (no matplotlib: no plot)"))
    errors = [r for r in results if "error" in r and r["method"] not in PROBED]
    unavailable = [r for r in results if "error" in r and r["method"] in PROBED]
    rejected = [r for r in results if r.get("rejected")]
    for r in unavailable:
        print(f"UNAVAILABLE {r['shape']} {r['dtype']} {r['method']} (the installed torch's code): {r['error']}")
    for r in errors:
        print(f"ERROR {r['shape']} {r['dtype']} {r['method']}: {r['error']}")
    for r in rejected:
        print(f"REJECTED {r['shape']} {r['dtype']} {r['method']}: {'; '.join(r['rejected'])}")
    for line in skipped:
        print(f"SKIPPED {line}")
    if errors:
        return 1
    return 3 if rejected and not args.allow_unstable else 0


if __name__ == "__main__":
    sys.exit(main())
