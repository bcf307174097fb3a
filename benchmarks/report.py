"""Prints a benchmark JSON from benchmarks/results/ as a Markdown table (for the README).

    python benchmarks/report.py benchmarks/results/op_cpu_quick.json
"""
import json
import sys


def main(path: str) -> None:
    data = json.load(open(path))
    env = data["environment"]
    print(f"*{env['device']}, {env['threads']} threads, torch {env['torch']}, batch {data['batch']}, "
          f"{env['date'][:10]}; median times in ms; speed-up and memory relative to unfold.*\n")
    print("| shape | dtype | method | forward | backward | fwd+bwd | peak MB (fwd+bwd) | speed-up fwd | speed-up fwd+bwd | memory / unfold |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in data["results"]:
        shape = f"{r['shape']} (C{r['channels']}, {r['size']}², K{r['kernel']}, G{r['channels'] // r['group_channels']})"
        print(f"| {shape} | {r['dtype']} | {r['method']} | {r['forward_ms']:.2f} | {r['backward_ms']:.2f} | "
              f"{r['train_ms']:.2f} | {r['peak_train_mb']:.1f} | {r['speedup_forward']:.1f}× | "
              f"{r['speedup_train']:.1f}× | {r['memory_ratio']:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1])
