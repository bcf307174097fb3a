"""The CPU's instruction floor: the forward's innermost loop alone, at every ISA level.

Compiles benchmarks/tile_loop.cpp (the kernels' own two-row tile, csrc/cpu/tiles.h) once per
tile shape (csrc/cpu/dispatch.h) of each ISA level this host and torch's ATEN_CPU_CAPABILITY
allow, with that level's compiler flags, and times it with all its data in L1: the host's peak
multiply-add rate at the level's vector width, the tile's rate as the kernels run it (vector
loads straddling cache lines) and its rate with every load on a vector boundary. At the baseline
level, which has no fused multiply-add, the peak is a load, a multiply and an add per vector,
and the broadcast peak the same with a float broadcast for every four (the pixel tile's
weights). From the tile's rate it gives each RedNet-50 shape's loop-bound forward time (its
vector multiply-adds, rows padded to whole vectors, spread over the threads), beside the copy
floor of a committed bench_op.py result when one is given. It also times the float forward's
pixel tile of 16-channel vectors (csrc/cpu/channel_vectors.h), the loop RedNet's groups of 16
channels run (at the baseline level where rows are not a whole number of vectors), inlined (its
strides known to the compiler) and as the kernels run it (a function of its own, strides read
at run time, at every tile width), and gives its loop-bound forward times the same way; and grad_weight's plane tile
(csrc/cpu/grad_weight_plane_tasks.h, 7 taps) at each of the 16 floats of a cache line where its
first input read can start. Prints a table, writes JSON under benchmarks/results/.

    python benchmarks/bench_tile_loop.py --op-results benchmarks/results/op_cpu_quick_zen5_avx512.json
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils import cpp_extension

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_op import rednet50_shapes  # noqa: E402
from environment import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SOURCE = ROOT / "benchmarks" / "tile_loop.cpp"
# Each level's tile shapes (csrc/cpu/dispatch.h: Wide, and Narrow for rows of up to 32 bytes
# where it differs) and the target flags of its entry point.
AVX512_FLAGS = ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c",
                "-mbmi", "-mbmi2"]
# channel: the register of the float forward's 16-channel vectors (csrc/cpu/dispatch.h:
# ChannelNative).
LEVELS = {
    "avx512": dict(wide=(64, 8), narrow=(32, 8), channel=64, flags=AVX512_FLAGS),
    "avx2": dict(wide=(32, 4), narrow=None, channel=32,
                 flags=["-mavx2", "-mfma", "-mf16c", "-mbmi", "-mbmi2"]),
    "default": dict(wide=(16, 4), narrow=None, channel=16, flags=[]),
}
ORDER = ["default", "avx2", "avx512"]


def available_levels() -> list:
    """The levels up to torch's capability (which ATEN_CPU_CAPABILITY caps), as the kernels'."""
    capability = torch.backends.cpu.get_cpu_capability().lower()
    top = {"avx512": "avx512", "avx2": "avx2"}.get(capability, "default")
    return ORDER[: ORDER.index(top) + 1]


def run_shape(level: str, shape: tuple, build: Path, channel_bytes: int | None = None) -> dict:
    vector_bytes, channels = shape
    flags = LEVELS[level]["flags"]
    binary = build / f"tile_loop_{level}_{vector_bytes}"
    includes = [f"-I{path}" for path in cpp_extension.include_paths()]
    channel = [f"-DCHANNEL_NATIVE_BYTES={channel_bytes}"] if channel_bytes else []
    command = ["g++", "-O3", "-std=c++17", f"-DTILE_BYTES={vector_bytes}", f"-DTILE_CHANNELS={channels}",
               *channel, *flags, f"-I{ROOT / 'csrc' / 'cpu'}", *includes, str(SOURCE), "-o", str(binary)]
    subprocess.run(command, check=True)
    result = json.loads(subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout)
    return {"level": level, "flags": ["-O3", *flags], **result}


def loop_bound_ms(wide: dict, narrow: dict, shapes: list, threads: int) -> dict:
    """Each shape's forward at its tile's rate (the narrow tile for rows of up to 32 bytes of
    float, as csrc/cpu/kernels.h: narrow chooses): its vector multiply-adds over the threads."""
    out = {}
    for shape in shapes:
        row = narrow if shape.out_size * 4 <= 32 else wide
        vectors = (shape.batch * shape.channels * shape.out_size * math.ceil(shape.out_size / row["lanes"])
                   * shape.kernel ** 2)
        out[shape.name] = vectors * row["tile_ns_per_vector_multiply_add"] / threads * 1e-6
    return out


def channel_loop_bound_ms(row: dict, shapes: list, threads: int) -> dict:
    """Each shape's float forward at the pixel tile's rate (inlined, strides known to the
    compiler): its multiply-adds of 16-channel vectors (no lane is padding) over the threads."""
    return {shape.name: shape.batch * shape.channels // 16 * shape.out_size ** 2 * shape.kernel ** 2
            * row["channel_tile_ns_per_multiply_add"] / threads * 1e-6 for shape in shapes}


def tile_widths(length: int, most: int) -> list:
    """The pixel tiles of a row of `length` outputs as the kernels split it
    (csrc/cpu/forward_channel_tasks.h): ceil(length / most) tiles of equal width."""
    tiles = math.ceil(length / most)
    return [length * (t + 1) // tiles - length * t // tiles for t in range(tiles)]


def channel_as_run_loop_bound_ms(row: dict, shapes: list, threads: int) -> dict:
    """channel_loop_bound_ms at the rate of the tiles as the kernels run them: each row's tiles
    at their own width, strides read at run time."""
    rates = row["channel_tile_as_run_ns_per_multiply_add"]  # index: pixels - 1
    out = {}
    for shape in shapes:
        row_ns = sum(width * shape.kernel ** 2 * rates[width - 1]
                     for width in tile_widths(shape.out_size, row["channel_tile_pixels"]))
        out[shape.name] = shape.batch * shape.channels // 16 * shape.out_size * row_ns / threads * 1e-6
    return out


def floors_ms(path: Path | None) -> dict:
    if path is None:
        return {}
    rows = json.loads(path.read_text())["results"]
    return {row["shape"]: row["forward_floor_ms"] for row in rows
            if row.get("method") == "involution_cuda" and row.get("dtype") == "float32"
            and "forward_floor_ms" in row}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--op-results", type=Path, help="a bench_op.py result: its copy floors")
    parser.add_argument("--output", type=Path, default=RESULTS / "tile_loop_cpu.json")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    floors = floors_ms(args.op_results)
    shapes = rednet50_shapes(args.batch)
    rows = []
    with tempfile.TemporaryDirectory() as build:
        for level in available_levels():
            row = run_shape(level, LEVELS[level]["wide"], Path(build), LEVELS[level]["channel"])
            narrow = LEVELS[level]["narrow"]
            if narrow:
                row["narrow"] = run_shape(level, narrow, Path(build))
            row["loop_bound_forward_ms"] = loop_bound_ms(row, row.get("narrow", row), shapes, threads)
            if "channel_tile_ns_per_multiply_add" in row:
                row["channel_loop_bound_forward_ms"] = channel_loop_bound_ms(row, shapes, threads)
                row["channel_as_run_loop_bound_forward_ms"] = channel_as_run_loop_bound_ms(
                    row, shapes, threads)
            for key in ("loop_bound", "channel_loop_bound", "channel_as_run_loop_bound"):
                if floors and f"{key}_forward_ms" in row:
                    row[f"{key}_x_floor"] = {name: ms / floors[name]
                                             for name, ms in row[f"{key}_forward_ms"].items()
                                             if name in floors}
            rows.append(row)
    header = (f"{'level':11} {'peak ns':>8} {'tile ns':>8} {'aligned':>8}  "
              + "  ".join(f"{shape.name:>14}" for shape in shapes))
    print(f"ns per vector multiply-add; loop-bound forward ms at batch {args.batch}, {threads} threads"
          + (" (x copy floor)" if floors else ""))
    print(header)
    for row in rows:
        cells = []
        for name, ms in row["loop_bound_forward_ms"].items():
            ratio = row.get("loop_bound_x_floor", {}).get(name)
            cells.append(f"{ms:7.3f}" + (f" ({ratio:4.2f})" if ratio is not None else "       "))
        for shape in [row, row.get("narrow")] if "narrow" in row else [row]:
            label = f"{row['level']}/{shape['vector_bytes']}B"
            peak = shape["peak_ns_per_vector_multiply_add"]
            print(f"{label:11} {peak if peak is not None else '-':>8.4} "
                  f"{shape['tile_ns_per_vector_multiply_add']:8.4f} "
                  f"{shape['aligned_tile_ns_per_vector_multiply_add']:8.4f}  "
                  + ("  ".join(cells) if shape is row else ""))
            if shape.get("broadcast_peak_ns_per_vector_multiply_add") is not None:
                print(f"{'':11} {shape['broadcast_peak_ns_per_vector_multiply_add']:8.4f}"
                      f"{'':>20}(peak with a float broadcast for every four multiply-adds)")
    for row in rows:
        if "channel_tile_ns_per_multiply_add" not in row:
            continue
        for key, suffix, ns, note in (
                ("channel_loop_bound", "", row["channel_tile_ns_per_multiply_add"],
                 "16-channel pixel tile inlined, ns per 64-byte multiply-add"),
                ("channel_as_run_loop_bound", "r", min(row["channel_tile_as_run_ns_per_multiply_add"]),
                 "as the kernels run it, each row's tiles at their width; ns: the best width")):
            cells = []
            for name, ms in row[f"{key}_forward_ms"].items():
                ratio = row.get(f"{key}_x_floor", {}).get(name)
                cells.append(f"{ms:7.3f}" + (f" ({ratio:4.2f})" if ratio is not None else "       "))
            label = f"{row['level']}/ch{row['channel_tile_pixels']}{suffix}"
            print(f"{label:11} {'':>8} {ns:8.4f} {'':>8}  " + "  ".join(cells) + f"   ({note})")
    for row in rows:
        starts = row.get("plane_tile_ns_by_start")
        if starts:
            label = f"{row['level']}/plane7"
            print(f"{label:11} {'':>8} {sum(starts) / len(starts):8.4f} {'':>8}  min {min(starts):.4f}, "
                  f"max {max(starts):.4f} (grad_weight's plane tile, 7 taps: ns per vector "
                  f"multiply-add, the mean over the {len(starts)} starts of its first read in a line)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "environment": environment(torch.device("cpu")), "batch": args.batch,
        "op_results": str(args.op_results) if args.op_results else None, "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
