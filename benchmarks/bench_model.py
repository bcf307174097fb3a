"""Model benchmark: RedNet-50 with this extension's op, with the unfold reference, and as the
same-depth ResNet (3×3 convolutions in place of involution).

For each variant: training-step time (forward, backward, SGD step), inference throughput, and the
peak extra memory of a training step. Prints a table and writes JSON under benchmarks/results/.

    python benchmarks/bench_model.py                 # CPU: batch 4 at 160x160
    python benchmarks/bench_model.py --device cuda   # GPU: batch 64 at 224x224
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

from involution_cuda.models import RedNet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "rednet50 (involution_cuda)": dict(mixer="involution", backend="native"),
    "rednet50 (unfold)": dict(mixer="involution", backend="reference"),
    "resnet50-style (3x3 conv)": dict(mixer="conv"),
}


class Workload:
    def __init__(self, variant: str, batch: int, size: int, device: torch.device):
        torch.manual_seed(0)
        self.model = RedNet(50, **VARIANTS[variant]).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.images = torch.randn(batch, 3, size, size, device=device)
        self.labels = torch.randint(0, 1000, (batch,), device=device)

    def train_step(self, k=0):
        self.model.train()
        loss = torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def inference(self, k=0):
        self.model.eval()
        with torch.no_grad():
            self.model(self.images)


def peak_train_mb(variant: str, batch: int, size: int, device_name: str) -> float:
    """Peak memory of a training step beyond the model, optimizer state and inputs."""
    device = torch.device(device_name)
    workload = Workload(variant, batch, size, device)
    workload.train_step()  # creates the optimizer state and the gradients
    result = {}
    with peak_memory(device, result):
        workload.train_step()
    return result["peak_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    batch, size = args.batch or (64 if on_gpu else 4), args.size or (224 if on_gpu else 160)
    info = environment(device, argv)
    print(f"device: {info['device']} ({info['threads']} threads), torch {info['torch']}, "
          f"batch {batch} at {size}x{size}")
    results = []
    for variant in VARIANTS:
        workload = Workload(variant, batch, size, device)
        train_ms = median_ms(workload.train_step, device, args.repeats, args.warmup)
        inference_ms = median_ms(workload.inference, device, args.repeats, args.warmup)
        del workload
        memory_args = (variant, batch, size, str(device))
        peak = peak_train_mb(*memory_args) if on_gpu else run_isolated(peak_train_mb, *memory_args)
        params = sum(p.numel() for p in RedNet(50, **VARIANTS[variant]).parameters())
        results.append({"variant": variant, "params_m": params / 1e6, "train_step_ms": train_ms,
                        "inference_images_per_s": batch / (inference_ms * 1e-3),
                        "peak_train_mb": peak})
        r = results[-1]
        print(f"{variant:<28} params {r['params_m']:6.2f}M  train step {train_ms:9.1f} ms  "
              f"inference {r['inference_images_per_s']:8.1f} img/s  peak {peak:8.1f} MB", flush=True)
    output = args.output or RESULTS / f"model_{device.type}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"environment": info, "batch": batch, "size": size,
                                  "results": results}, indent=1) + "\n")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
