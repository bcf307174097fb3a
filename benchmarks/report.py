"""Tables of an op-benchmark result: ``print_table`` for the console, and, run as a script, the
Markdown tables the README and benchmarks/CPU_KERNELS.md show (rejected or failed rows are listed,
never shown as numbers):

    python benchmarks/report.py benchmarks/results/op_cpu_quick.json
    python benchmarks/report.py --levels benchmarks/results/op_cpu_quick_zen5_*.json  # one host, every ISA level
    python benchmarks/report.py --targets benchmarks/results/op_cpu_quick_*_*.json  # every run against the targets
"""
import argparse
import json
from typing import List

NAN = float("nan")


def _spread(stats: dict) -> str:
    return f"{100 * stats['iqr_rel']:.0f}%"


def print_table(results: List[dict]) -> None:
    header = (f"{'shape':<8}{'dtype':<10}{'method':<27}{'fwd ms':>9}{'±':>5}{'bwd ms':>9}{'f+b ms':>9}{'±':>5}"
              f"{'xfloor f':>9}{'xfloor fb':>10}{'peak MB':>9}{'xunf fb':>8}{'mem/unf':>8}{'xbest fb':>9}  notes")
    print(header)
    print("-" * len(header))
    for r in results:
        if "train" not in r:
            print(f"{r['shape']:<8}{r['dtype']:<10}{r['method']:<27}  error: {r.get('error')}")
            continue
        peak = r.get("peak_train_mb")
        memory = r.get("memory_ratio")
        notes = "; ".join(r.get("rejected") or []) or ("" if r.get("compiles") is None else f"{r['compiles']} graphs")
        print(f"{r['shape']:<8}{r['dtype']:<10}{r['method']:<27}{r['forward_ms']:>9.2f}{_spread(r['forward']):>5}"
              f"{r['backward_ms']:>9.2f}{r['train_ms']:>9.2f}{_spread(r['train']):>5}"
              f"{r.get('forward_x_floor', NAN):>9.1f}{r.get('train_x_floor', NAN):>10.1f}"
              f"{(peak if peak is not None else NAN):>9.1f}{r.get('speedup_train', NAN):>8.1f}"
              f"{(memory if memory is not None else NAN):>8.3f}{r.get('speedup_train_vs_best', NAN):>9.2f}  {notes}")


def _shown(row) -> bool:
    """Whether a result row has numbers to show: measured, and not rejected for its spread."""
    return row is not None and "train" in row and not row.get("rejected")


def _commit(commit) -> str:
    """Short hash, with "-dirty" when the tree had uncommitted changes."""
    if not commit:
        return "unknown"
    return commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")


def _shape(r: dict) -> str:
    return f"{r['shape']} (C{r['channels']}, {r['size']}², K{r['kernel']}, G{r['channels'] // r['group_channels']})"


def markdown(data: dict) -> str:
    env = data["environment"]
    kernels = f", this op's CPU kernels {env['kernel_cpu_capability']}" if "kernel_cpu_capability" in env else ""
    lines = [f"*{env['device']} ({' '.join(env.get('isa_flags', [])) or 'no AVX'}; torch CPU capability "
             f"{env.get('torch_cpu_capability')}{kernels}), {env['threads']} threads, torch {env['torch']}, batch "
             f"{data['batch']}, {env['date'][:10]}, commit {_commit(env.get('commit'))}. Median of cold calls "
             f"in ms (± is the interquartile range over the median); × floor: time over a streaming copy "
             f"of the op's minimal bytes measured in the same run; speed-ups and memory relative to unfold; "
             f"× best: forward+backward speed-up over the fastest other method.*", "",
             "| shape | method | forward | ± | backward | fwd+bwd | ± | × floor fwd | × floor fwd+bwd "
             "| peak MB (fwd+bwd) | × unfold fwd | × unfold fwd+bwd | memory / unfold | × best fwd+bwd |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    left_out = []
    for r in data["results"]:
        if "train" not in r or r.get("rejected"):
            left_out.append(f"{r['shape']} {r['dtype']} {r['method']}: "
                            + (r.get("error") or "; ".join(r.get("rejected") or [])))
            continue
        fmt = lambda key, spec: format(r[key], spec) if r.get(key) is not None else "-"  # noqa: E731
        best = (f"{r['speedup_train_vs_best']:.2f}× ({r['best_competitor_train']})"
                if "speedup_train_vs_best" in r else "-")
        lines.append(
            f"| {_shape(r)} {r['dtype']} | {r['method']} | {r['forward_ms']:.2f} | {_spread(r['forward'])} | "
            f"{r['backward_ms']:.2f} | {r['train_ms']:.2f} | {_spread(r['train'])} | {fmt('forward_x_floor', '.1f')} | "
            f"{fmt('train_x_floor', '.1f')} | {fmt('peak_train_mb', '.1f')} | {fmt('speedup_forward', '.1f')} | "
            f"{fmt('speedup_train', '.1f')} | {fmt('memory_ratio', '.3f')} | {best} |")
    if left_out:
        lines += ["", "Not shown (failed or rejected): " + "; ".join(left_out)]
    if not data.get("complete", True) or data.get("skipped"):
        lines += ["", "Incomplete run; skipped: " + "; ".join(data.get("skipped") or ["(killed)"])]
    return "\n".join(lines)


def levels_markdown(runs: List[dict], method: str = "involution_cuda",
                    compiled: str = "shift_add_compiled") -> str:
    """One method across runs of the same host at different ISA levels (ATEN_CPU_CAPABILITY):
    its times, their multiples of each run's floor, and its speed-up over torch.compile of
    shift-and-add in the same run."""
    env = runs[0]["environment"]
    commits = ", ".join(dict.fromkeys(_commit(run["environment"].get("commit")) for run in runs))
    lines = [f"*{env['device']} ({' '.join(env.get('isa_flags', []))}), {env['threads']} threads, torch "
             f"{env['torch']}, batch {runs[0]['batch']}, {env['date'][:10]}, commit {commits}; "
             f"level: the ISA level this op's CPU kernels ran at. Median of cold calls in ms; × floor as "
             f"above (backward: grad_input and grad_weight against two copies; each of them alone, the raw "
             f"op, against one); × compiled: speed-up over "
             f"`{compiled}` in the same run.*", "",
             "| shape | dtype | level | forward | × floor | backward | × floor | grad_input × floor "
             "| grad_weight × floor | fwd+bwd | × floor | × compiled fwd | × compiled fwd+bwd |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows, left_out = [], []
    for run in runs:
        level = run["environment"].get("kernel_cpu_capability", "?")
        by_key = {(r["shape"], r["dtype"], r["method"]): r for r in run["results"]}
        for (shape, dtype, name), r in by_key.items():
            if name != method:
                continue
            if not _shown(r):
                left_out.append(f"{shape} {dtype} {level}: "
                                + (r.get("error") or "; ".join(r.get("rejected") or [])))
                continue
            other = by_key.get((shape, dtype, compiled), {})
            ratio = lambda key: (f"{other[key] / r[key]:.1f}" if _shown(other)  # noqa: E731
                                 else "failed" if "error" in other else "-")
            alone = lambda op: f"{r[op + '_x_floor']:.1f}" if op + "_x_floor" in r else "-"  # noqa: E731
            rows.append((r, f"| {_shape(r)} | {dtype} | {level} | {r['forward_ms']:.2f} | "
                            f"{r['forward_x_floor']:.1f} | {r['backward_ms']:.2f} | {r['backward_x_floor']:.1f} | "
                            f"{alone('grad_input')} | {alone('grad_weight')} | "
                            f"{r['train_ms']:.2f} | {r['train_x_floor']:.1f} | "
                            f"{ratio('forward_ms')} | {ratio('train_ms')} |"))
    shapes = list(dict.fromkeys(r["shape"] for r, _ in rows))
    rows.sort(key=lambda item: (shapes.index(item[0]["shape"]), item[0]["dtype"] != "float32"))
    lines += [line for _, line in rows]
    if left_out:
        lines += ["", "Not shown (failed or rejected): " + "; ".join(left_out)]
    return "\n".join(lines)


def targets_markdown(runs: List[dict], method: str = "involution_cuda",
                     compiled: str = "shift_add_compiled") -> str:
    """One row per run (a host at one ISA level): the float32 multiples of its own copy floor at
    each shape, and the forward's speed-up over torch.compile of shift-and-add, beside the
    targets."""
    lines = ["| host | level | commit | forward × floor | grad_input × floor | grad_weight × floor "
             "| × compiled forward |",
             "|---|---|---|---|---|---|---|",
             "| target | | | ≤ 2 | ≤ 3 | ≤ 3 | ≥ 4 |"]
    for run in runs:
        env = run["environment"]
        rows = {(r["shape"], r["method"]): r for r in run["results"] if r["dtype"] == "float32"}
        shapes = list(dict.fromkeys(shape for shape, name in rows if name == method))

        def series(key):
            values = [rows.get((shape, method)) for shape in shapes]
            return " / ".join(f"{r[key]:.1f}" if _shown(r) and key in r else "-" for r in values)

        def speedup(shape):
            ours, other = rows.get((shape, method)), rows.get((shape, compiled))
            if not _shown(ours) or other is None:
                return "-"
            return f"{other['forward_ms'] / ours['forward_ms']:.1f}" if _shown(other) else "failed"

        lines.append(f"| {env['device']} | {env.get('kernel_cpu_capability', '?')} | "
                     f"{_commit(env.get('commit'))} | {series('forward_x_floor')} | "
                     f"{series('grad_input_x_floor')} | {series('grad_weight_x_floor')} | "
                     f"{' / '.join(speedup(shape) for shape in shapes)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="bench_op.py JSON files")
    views = parser.add_mutually_exclusive_group()
    views.add_argument("--levels", action="store_true",
                       help="one table of this op across runs of one host at different ISA levels")
    views.add_argument("--targets", action="store_true",
                       help="a row per run (host and ISA level): float32 multiples of the floor "
                            "and speed-ups over torch.compile, beside the targets")
    args = parser.parse_args(argv)
    if len(args.results) > 1 and not (args.levels or args.targets):
        parser.error("give one results file, or several with --levels or --targets")
    runs = []
    for path in args.results:
        try:
            with open(path) as file:
                runs.append(json.load(file))
        except (OSError, ValueError) as error:
            parser.error(f"results {path}: {error}")
    if args.levels:
        print(levels_markdown(runs))
    elif args.targets:
        print(targets_markdown(runs))
    else:
        print(markdown(runs[0]))


if __name__ == "__main__":
    main()
