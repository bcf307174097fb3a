#!/usr/bin/env python3
"""Static performance model of the CUDA kernels (no GPU needed).

For every kernel functor that the launchers run at the RedNet-50 involution shapes:
  1. compiles csrc/cuda/launchers.cu for sm_90 (or takes a compiled object, --object) and reads
     each run_items<Functor> (and run_tiles<Functor>) kernel's registers and local memory (cuobjdump -res-usage) and its
     basic blocks (nvdisasm -bbcfg);
  2. finds the loops of each kernel's control-flow graph (dominators, back edges, natural
     loops); the hot loop is the innermost loop with the most multiply-adds, and its
     instructions per multiply-add is the kernel's cost per channel·tap;
  3. gets the launch geometry from the kernels' own code: scripts/kernel_plan.cpp (host C++)
     calls the entry points of csrc/cuda/kernel_sets.h with a recording launch;
  4. predicts per launch the instruction-issue time and the DRAM time of the minimal traffic,
     and checks the fast set's budget (issue time against DRAM time, occupancy), with the known
     exceptions of scripts/kernel_budget_exceptions.json.
Writes benchmarks/results/cuda_kernel_model.json and the table of benchmarks/CUDA_KERNELS.md
between its kernel-model markers (not with --check). Exits non-zero when a fast kernel is over
budget and not excepted, an exception is stale, or a launched kernel is missing from the SASS.

Pure Python (standard library) plus nvcc, g++, c++filt, cuobjdump and nvdisasm. cuobjdump and
nvdisasm are found in --tools, on PATH, or in the nvidia-cuda-cuobjdump / nvidia-cuda-nvdisasm
wheels of the interpreter named by PYTHON (default .venv-cuda/bin/python).
"""
from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent

# ---- machine constants -------------------------------------------------------------------------

MACHINE = {
    "name": "H100 SXM5 (GH100; the H200 has the same SM array)",
    "sms": 132,
    "schedulers_per_sm": 4,
    "warp_instructions_per_scheduler_cycle": 1,
    "clock_ghz": 1.755,
    "source": "NVIDIA H100 Tensor Core GPU Architecture whitepaper: 132 SMs (H100 SXM5), "
              "4 warp schedulers per SM issuing 1 warp instruction per clock each, "
              "1.755 GHz boost clock",
    "registers_per_sm": 65536,
    "register_allocation_unit": 256,  # registers, allocated per warp
    "register_sub_partitions": 4,     # the register file is split among the 4 schedulers
    "max_registers_per_thread": 255,
    "max_threads_per_sm": 2048,
    "max_warps_per_sm": 64,
    "max_blocks_per_sm": 32,
    "shared_bytes_per_sm": 233472,  # 228 KB, of which a block may take up to 227 KB
    "shared_bytes_reserved_per_block": 1024,
    "limits_source": "CUDA C++ Programming Guide, compute capability 9.0; register allocation "
                     "per warp in units of 256, per scheduler partition, as cuda_occupancy.h "
                     "computes it; 228 KB of shared memory per SM, 1 KB of it reserved per "
                     "block (only the tile kernels use shared memory).",
    "copy_bandwidth_tbs": 3.0,
    "copy_bandwidth_source": "assumption, not a measurement on our machines: HBM3 peak "
                             "3.35 TB/s x ~0.9 achievable for a device-to-device copy; to be "
                             "replaced by the copy bandwidth the GPU suite measures "
                             "(--copy-bandwidth)",
}


def issue_rate(machine: dict) -> float:
    """Warp instructions per second the whole GPU can issue (~0.927e12 for the H100)."""
    return (machine["sms"] * machine["schedulers_per_sm"] *
            machine["warp_instructions_per_scheduler_cycle"] * machine["clock_ghz"] * 1e9)


# ---- what is modelled ------------------------------------------------------------------------

# RedNet-50's involution layers at batch 64: K = 7, stride 1, padding 3, dilation 1.
SHAPES = [  # name, batch, channels, height = width, kernel, groups
    ("stage1", 64, 64, 56, 7, 4),
    ("stage2", 64, 128, 28, 7, 8),
    ("stage3", 64, 256, 14, 7, 16),
    ("stage4", 64, 512, 7, 7, 32),
]
STRIDE, PADDING, DILATION = 1, 3, 1
OPS = ["forward", "grad_input", "grad_weight"]
REPORTED_DTYPES = ["float32", "bfloat16"]
ELEMENT_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
# The plan program's host stand-ins for CUDA's half types.
STANDIN_TYPES = {"standin::BFloat16": "__nv_bfloat16", "standin::Half": "__half"}

# Budget of the fast set: issue time at most this fraction of the DRAM time, and occupancy.
FAST_PREFIX = "fast::"
ISSUE_BUDGET = {"float32": 0.7, "bfloat16": 1.0}
MIN_OCCUPANCY = 0.5

DEFINES = ["-D__CUDA_NO_HALF_OPERATORS__", "-D__CUDA_NO_HALF_CONVERSIONS__",
           "-D__CUDA_NO_BFLOAT16_CONVERSIONS__", "-D__CUDA_NO_HALF2_OPERATORS__"]

MARK_BEGIN = "<!-- kernel-model:begin -->"
MARK_END = "<!-- kernel-model:end -->"


# ---- SASS: instructions ----------------------------------------------------------------------

# Multiply-adds per instruction; paired ones do two. Multiplies and adds alone count zero.
MULTIPLY_ADDS = {"FFMA": 1, "DFMA": 1, "HFMA": 1, "HFMA2": 2, "FFMA2": 2}
_PREDICATE = re.compile(r"^@!?U?P[T0-9]+\s+")


def opcode(instruction: str) -> str:
    """The opcode with modifiers ("FFMA.FTZ"), without a guard predicate."""
    text = _PREDICATE.sub("", instruction.strip())
    return text.split(None, 1)[0] if text else ""


def multiply_adds(instruction: str) -> int:
    """Multiply-adds done by one SASS instruction. ptxas moves constants with
    `HFMA2.MMA Rd, -RZ, RZ, imm, imm`: a multiplicand RZ is a move, not a multiply-add."""
    op = opcode(instruction)
    weight = MULTIPLY_ADDS.get(op.split(".")[0], 0)
    if not weight:
        return 0
    operands = [o.strip() for o in _PREDICATE.sub("", instruction.strip())[len(op):]
                .rstrip(" ;").split(",")]
    multiplicands = operands[1:3]
    if any(m.strip("-|") == "RZ" for m in multiplicands):
        return 0
    return weight


# ---- SASS: control-flow graph ------------------------------------------------------------------

@dataclasses.dataclass
class Cfg:
    """One function's basic blocks (instruction texts) and successor lists."""
    name: str
    entry: str
    blocks: Dict[str, List[str]]
    successors: Dict[str, List[str]]


_INSTRUCTION = re.compile(r"^[0-9a-f]{4,}:\s+(.*?)\s*;?\s*$")
_EDGE = re.compile(r'^"([^"]+)"(?::\w+)*\s*->\s*"([^"]+)"')


def _label_instructions(label: str) -> List[str]:
    """Instructions of a graphviz record label of nvdisasm -bbcfg -poff: lines end in \\l,
    fields start with an (unescaped) port <name>, everything else is backslash-escaped."""
    instructions = []
    for line in label.split("\\l"):
        line = re.sub(r"^[{|]*(<\w+>)?", "", line).rstrip("}")
        line = re.sub(r"\\(.)", r"\1", line)
        match = _INSTRUCTION.match(line.strip())
        if match:
            instructions.append(match.group(1))
    return instructions


def parse_bbcfg(text: str) -> Dict[str, Cfg]:
    """The functions of `nvdisasm -bbcfg -poff` output, by (mangled) name."""
    functions: Dict[str, Cfg] = {}
    current: Optional[Cfg] = None
    node: Optional[str] = None
    for raw in text.splitlines():
        line = raw.strip()
        cluster = re.match(r'^subgraph "cluster_(.*)" \{$', line)
        if cluster:
            name = cluster.group(1)
            current = functions[name] = Cfg(name, ".text." + name, {}, {})
            continue
        if current is None:
            continue
        if line == "}":
            current, node = None, None
            continue
        declared = re.match(r'^"([^"]+)"$', line)
        if declared:
            node = declared.group(1)
            current.blocks.setdefault(node, [])
            current.successors.setdefault(node, [])
            continue
        if line.startswith("[label=") and node is not None:
            current.blocks[node] = _label_instructions(line[len('[label="'):-2])
            continue
        edge = _EDGE.match(line)
        if edge:
            source, target = edge.groups()
            current.successors.setdefault(source, []).append(target)
            current.successors.setdefault(target, [])
            current.blocks.setdefault(target, [])
    for cfg in functions.values():
        if cfg.entry not in cfg.blocks:  # no .text node: the first block declared
            cfg.entry = next(iter(cfg.blocks), cfg.entry)
    return functions


# ---- loops -------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Loop:
    header: str
    body: frozenset
    back_edges: Tuple[Tuple[str, str], ...]


def _reverse_postorder(entry: str, successors: Dict[str, List[str]]) -> List[str]:
    order, seen, stack = [], {entry}, [(entry, iter(successors.get(entry, ())))]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            order.append(node)
        elif child not in seen:
            seen.add(child)
            stack.append((child, iter(successors.get(child, ()))))
    return order[::-1]


def dominators(entry: str, successors: Dict[str, List[str]]) -> Dict[str, Set[str]]:
    """Dominator sets of the nodes reachable from entry (iterative data flow)."""
    order = _reverse_postorder(entry, successors)
    predecessors: Dict[str, List[str]] = {n: [] for n in order}
    for node in order:
        for child in successors.get(node, ()):
            predecessors[child].append(node)
    everything = set(order)
    dom = {n: set(everything) for n in order}
    dom[entry] = {entry}
    changed = True
    while changed:
        changed = False
        for node in order[1:]:
            incoming = [dom[p] for p in predecessors[node]]
            new = set.intersection(*incoming) | {node} if incoming else {node}
            if new != dom[node]:
                dom[node], changed = new, True
    return dom


def find_loops(entry: str, successors: Dict[str, List[str]]) -> List[Loop]:
    """Natural loops, one per header (back edges u -> h with h dominating u, merged by h)."""
    dom = dominators(entry, successors)
    predecessors: Dict[str, List[str]] = {n: [] for n in dom}
    back: Dict[str, List[Tuple[str, str]]] = {}
    for node in dom:
        for child in successors.get(node, ()):
            predecessors[child].append(node)
            if child in dom[node]:
                back.setdefault(child, []).append((node, child))
    loops = []
    for header, edges in back.items():
        body, work = {header}, [source for source, _ in edges]
        while work:
            node = work.pop()
            if node not in body:
                body.add(node)
                work.extend(predecessors[node])
        loops.append(Loop(header, frozenset(body), tuple(edges)))
    return sorted(loops, key=lambda loop: loop.header)


def innermost(loops: Sequence[Loop]) -> List[Loop]:
    """Loops containing no other loop (natural loops of distinct headers nest or are disjoint)."""
    return [loop for loop in loops
            if not any(other is not loop and other.header in loop.body for other in loops)]


@dataclasses.dataclass
class HotLoop:
    instructions: int
    multiply_adds: int
    blocks: int
    whole_function: bool  # no loop has a multiply-add: the function counted as one pass
    loops: int
    depth: int            # loops containing the hot loop, itself included

    @property
    def per_multiply_add(self) -> Optional[float]:
        return self.instructions / self.multiply_adds if self.multiply_adds else None


def hot_loop(cfg: Cfg) -> HotLoop:
    """The innermost loop with the most multiply-adds (ties: more instructions); every
    instruction of its blocks counts, both sides of a branch inside it."""
    loops = find_loops(cfg.entry, cfg.successors)

    def cost(blocks: Iterable[str]) -> Tuple[int, int]:
        instructions = [i for b in blocks for i in cfg.blocks.get(b, ())]
        return sum(multiply_adds(i) for i in instructions), len(instructions)

    best = None
    for loop in innermost(loops):
        fmas, count = cost(loop.body)
        if fmas and (best is None or (fmas, count) > best[:2]):
            best = (fmas, count, loop)
    if best is None:
        fmas, count = cost(cfg.blocks)
        return HotLoop(count, fmas, len(cfg.blocks), True, len(loops), 0)
    fmas, count, loop = best
    depth = sum(loop.header in other.body for other in loops)
    return HotLoop(count, fmas, len(loop.body), False, len(loops), depth)


# ---- names -------------------------------------------------------------------------------------

def demangle(names: Sequence[str]) -> Dict[str, str]:
    result = subprocess.run(["c++filt"], input="\n".join(names) + "\n", capture_output=True,
                            text=True, check=True).stdout.splitlines()
    return dict(zip(names, result))


def _without_parameters(name: str) -> str:
    """Drops a trailing parameter list, which may nest parentheses ("(Kernel<(Enum)0>)")."""
    if not name.endswith(")"):
        return name
    depth = 0
    for index in range(len(name) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(name[index], 0)
        if depth == 0:
            return name[:index]
    return name


def readable(demangled: str) -> str:
    """The functor a kernel runs, named as scripts/check_cuda_kernels.sh does (which also nests):
    `void involution::cuda::(anonymous namespace)::run_items<involution::cuda::fast::X<float, 4> >(T1)`
    -> `fast::X<float, 4>`. Also applied to the plan's functor names."""
    name = demangled.replace("(anonymous namespace)::", "").replace("involution::", "")
    name = re.sub(r"^void ", "", name)
    name = _without_parameters(name)
    name = re.sub(r"^(?:[\w:]*::)?run_(?:items|tiles)<(.*?) ?>$", r"\1", name)  # its functor
    name = name.replace("cuda::", "")
    for standin, cuda_type in STANDIN_TYPES.items():
        name = name.replace(standin, cuda_type)
    return name


def name_key(name: str) -> str:
    """Spelling-independent form for matching: no whitespace."""
    return re.sub(r"\s+", "", name)


# ---- resources and occupancy -------------------------------------------------------------------

def resource_usage(text: str) -> Dict[str, Dict[str, int]]:
    """REG, STACK, LOCAL, SHARED per function of `cuobjdump -res-usage` of one cubin."""
    usage, function = {}, None
    for line in text.splitlines():
        match = re.match(r"^\s*Function (\S+):\s*$", line)
        if match:
            function = match.group(1)
            continue
        if function and "REG:" in line:
            usage[function] = {k.lower(): int(v) for k, v in re.findall(r"(\w+):(\d+)", line)}
            function = None
    return usage


def spills(ptxas_log: str, arch: str = "sm_90") -> Dict[str, Dict[str, int]]:
    """Spill stores and loads per kernel of one architecture, from nvcc -Xptxas -v output."""
    result = {}
    entries = re.split(r"ptxas info\s*: Compiling entry function ", ptxas_log)[1:]
    for entry in entries:
        head = re.match(r"'(\S+)' for '(sm_\w+)'", entry)
        stores = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", entry)
        if head and head.group(2) == arch and stores:
            result[head.group(1)] = {"spill_store_bytes": int(stores.group(1)),
                                     "spill_load_bytes": int(stores.group(2))}
    return result


def occupancy(registers: int, threads: int, machine: dict = MACHINE,
              shared_bytes: int = 0) -> Tuple[int, float]:
    """Resident blocks per SM and occupancy (resident warps / max warps), from registers, block
    size and shared memory per block: registers are allocated per warp (rounded up to the
    allocation unit) within each scheduler partition's quarter of the register file; each
    block's shared memory comes with a reserved kilobyte."""
    warps_per_block = -(-threads // 32)
    per_warp = -(-registers * 32 // machine["register_allocation_unit"]) * \
        machine["register_allocation_unit"]
    if registers > machine["max_registers_per_thread"] or \
            per_warp * warps_per_block > machine["registers_per_sm"]:
        return 0, 0.0
    partitions = machine["register_sub_partitions"]
    by_registers = (machine["registers_per_sm"] // partitions // per_warp * partitions
                    // warps_per_block) if per_warp else machine["max_blocks_per_sm"]
    by_shared = (machine["shared_bytes_per_sm"] //
                 (shared_bytes + machine["shared_bytes_reserved_per_block"])
                 if shared_bytes else machine["max_blocks_per_sm"])
    blocks = min(by_registers, by_shared, machine["max_blocks_per_sm"],
                 machine["max_warps_per_sm"] // warps_per_block,
                 machine["max_threads_per_sm"] // threads)
    return blocks, blocks * warps_per_block / machine["max_warps_per_sm"]


# ---- the model of one launch -------------------------------------------------------------------

def minimal_bytes(op: str, shape: dict, element_bytes: int) -> int:
    """Each tensor read or written once: the two operands and the result of the op."""
    b, c, g, k = shape["batch"], shape["channels"], shape["groups"], shape["kernel"]
    inputs = b * c * shape["height"] * shape["width"]
    outputs = b * c * shape["output_height"] * shape["output_width"]
    weights = b * g * k * k * shape["output_height"] * shape["output_width"]
    tensors = {"forward": inputs + weights + outputs,      # input, weight -> output
               "grad_input": outputs + weights + inputs,   # grad_output, weight -> grad_input
               "grad_weight": outputs + inputs + weights}  # grad_output, input -> grad_weight
    return tensors[op] * element_bytes


def op_multiply_adds(shape: dict) -> int:
    """B·C·Ho·Wo·KH·KW: the multiply-adds of each of the three ops."""
    return (shape["batch"] * shape["channels"] * shape["output_height"] * shape["output_width"]
            * shape["kernel"] ** 2)


WARP = 32


def grid(items: int, threads: int, blocks_per_sm: int, machine: dict) -> Tuple[int, float, float]:
    """The launch's blocks (plumbing.h, blocks_for: every block the GPU holds at once, or one
    per warp-item where there are fewer), its rounds of warp-items (warp-items per resident warp)
    and its tail efficiency: the mean work of an SM over the busiest SM's. Warp-item m goes to
    warp m mod W of the grid's W warps, numbered block + warp_in_block · blocks, so block 0
    has the most; an SM holds at most blocks_per_sm blocks."""
    warp_items = -(-items // WARP)
    resident = blocks_per_sm * machine["sms"]
    if not resident or not warp_items:
        return 0, math.inf if not resident else 0.0, 0.0
    blocks = min(warp_items, resident)
    warps_per_block = -(-threads // WARP)
    warps = blocks * warps_per_block
    block0 = sum(-(-(warp_items - w) // warps) for w in range(0, warp_items, blocks)
                 if w < warps)
    busiest_sm = min(blocks_per_sm, -(-blocks // machine["sms"])) * block0
    rounds = warp_items / (resident * warps_per_block)
    return blocks, rounds, warp_items / machine["sms"] / busiest_sm


def tile_grid(tiles: int, blocks_per_sm: int, machine: dict) -> Tuple[int, float, float]:
    """The grid of a tile kernel (launchers.cu, run_tiles: a block per tile, at most the
    blocks the GPU holds at once, each block taking every blocks-th tile), its rounds of tiles
    and its tail efficiency: the mean tiles of an SM over the busiest SM's."""
    resident = blocks_per_sm * machine["sms"]
    if not resident or not tiles:
        return 0, math.inf if not resident else 0.0, 0.0
    blocks = min(tiles, resident)
    busiest_sm = min(blocks_per_sm, -(-blocks // machine["sms"])) * -(-tiles // blocks)
    return blocks, tiles / resident, tiles / machine["sms"] / busiest_sm


def predict(launch: dict, kernel: dict, shape: dict, machine: dict) -> dict:
    """Issue time, DRAM time and bound of one launch (times in microseconds)."""
    shared_bytes = launch.get("shared_bytes", 0)
    blocks_per_sm, occupied = occupancy(kernel["registers"], launch["threads"], machine,
                                        shared_bytes)
    if launch.get("tiles"):
        blocks, waves, tail = tile_grid(launch["tiles"], blocks_per_sm, machine)
    else:
        blocks, waves, tail = grid(launch["items"], launch["threads"], blocks_per_sm, machine)
    fmas = op_multiply_adds(shape)
    per_fma = kernel["instructions_per_multiply_add"]
    issue_us = (fmas * per_fma / 32 / issue_rate(machine) / tail * 1e6
                if per_fma is not None and tail else None)
    dram_bytes = minimal_bytes(launch["op"], shape, ELEMENT_BYTES[launch["dtype"]])
    dram_us = dram_bytes / (machine["copy_bandwidth_tbs"] * 1e12) * 1e6
    bound = "issue" if issue_us is None or issue_us > dram_us else "DRAM"
    return {"blocks": blocks, "blocks_per_sm": blocks_per_sm, "occupancy": occupied,
            "shared_bytes": shared_bytes, "waves": waves,
            "tail_efficiency": tail, "op_multiply_adds": fmas, "issue_us": issue_us,
            "dram_bytes": dram_bytes, "dram_us": dram_us, "bound": bound,
            "predicted_us": None if issue_us is None else max(issue_us, dram_us)}


def budget_failures(row: dict) -> List[str]:
    """The budget rules a fast-set row breaks ("issue", "occupancy"); none for the baseline."""
    if not row["kernel"].startswith(FAST_PREFIX):
        return []
    failed = []
    limit = ISSUE_BUDGET.get(row["dtype"])
    if limit is not None and (row["issue_us"] is None or row["issue_us"] > limit * row["dram_us"]):
        failed.append("issue")
    if row["occupancy"] < MIN_OCCUPANCY:
        failed.append("occupancy")
    return failed


def exception_matches(entry: dict, row: dict, rule: str) -> bool:
    """An exception names a kernel (glob on the readable name), dtype and layout, optionally op
    and stage (globs, default all), and the rules it excuses ("issue", "occupancy")."""
    fields = {"kernel": row["kernel"], "dtype": row["dtype"], "layout": row["layout"],
              "op": row["op"], "stage": row["stage"]}
    return rule in entry["rules"] and all(
        fnmatch.fnmatchcase(value, str(entry.get(key, "*"))) for key, value in fields.items())


def apply_budget(rows: List[dict], exceptions: List[dict]) -> List[str]:
    """Marks each row's budget; returns the failures: breaks not excepted, and stale exceptions
    (a rule of an entry that excuses nothing over budget now)."""
    failures, used = [], set()
    for row in rows:
        row["over_budget"] = budget_failures(row)
        row["excused"] = []
        for rule in row["over_budget"]:
            matching = [i for i, e in enumerate(exceptions) if exception_matches(e, row, rule)]
            if matching:
                used.update((i, rule) for i in matching)
                row["excused"].append(rule)
            else:
                failures.append(f"{row['kernel']} {row['dtype']} {row['layout']} {row['stage']}: "
                                f"over budget ({rule}), not in the exceptions")
    for index, entry in enumerate(exceptions):
        for rule in entry["rules"]:
            if (index, rule) not in used:
                failures.append(f"stale exception: {entry['kernel']} {entry.get('dtype', '*')} "
                                f"{entry.get('layout', '*')} ({rule}) excuses nothing now (within "
                                "budget, or no longer launched); remove it from the exceptions")
    return failures


# ---- tools and builds --------------------------------------------------------------------------

def find_tool(name: str, tools_dir: Optional[str]) -> str:
    if tools_dir:
        return str(Path(tools_dir) / name)
    found = shutil.which(name)
    if found:
        return found
    # The wheels' copy, in the site-packages of PYTHON (as scripts/check_cuda_kernels.sh).
    probe = ("import nvidia, pathlib; print(next(p for p in (pathlib.Path(d) / 'cu13' / 'bin' "
             "for d in nvidia.__path__) if (p / 'cuobjdump').exists()))")
    for python in (os.environ.get("PYTHON", str(ROOT / ".venv-cuda/bin/python")), sys.executable):
        try:
            out = subprocess.run([python, "-c", probe], capture_output=True, text=True)
        except OSError:
            continue
        if out.returncode == 0 and (Path(out.stdout.strip()) / name).exists():
            return str(Path(out.stdout.strip()) / name)
    raise SystemExit(f"kernel_model: {name} not found (use --tools, PATH or PYTHON)")


def run(command: Sequence[str], **kwargs) -> str:
    result = subprocess.run(list(command), capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        # The tail of the log, long lines cut (nvcc's stub errors are one huge line).
        log = [line[:400] for line in (result.stdout + result.stderr).splitlines()[-30:]]
        raise SystemExit(f"kernel_model: {' '.join(map(str, command))} failed:\n" +
                         "\n".join(log))
    return result.stdout


def compile_launchers(work: Path) -> Tuple[Path, str]:
    """The sm_90 object of launchers.cu and ptxas's report (nvcc writes it to stderr)."""
    nvcc = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc"
    obj = work / "launchers.o"
    command = [str(nvcc), "-std=c++17", "-O3", "-c", *DEFINES, "-gencode",
               "arch=compute_90,code=sm_90", "-Xptxas", "-v",
               str(ROOT / "csrc/cuda/launchers.cu"), "-o", str(obj)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        run(command)  # fails again, reporting the log's tail
    return obj, result.stdout + result.stderr


def sm90_cubin(cuobjdump: str, obj: Path, work: Path) -> Path:
    """The sm_90 cubin of an object (which may also hold other architectures)."""
    listing = run([cuobjdump, "-lelf", str(obj)])
    names = [line.split(":", 1)[1].strip() for line in listing.splitlines() if "sm_90" in line]
    names = [n for n in names if re.search(r"\.sm_90\.cubin$", n)]
    if not names:
        raise SystemExit(f"kernel_model: no sm_90 code in {obj}")
    run([cuobjdump, "-xelf", names[0], str(obj.resolve())], cwd=work)
    return work / names[0]


def build_plan(work: Path) -> Path:
    binary = work / "kernel_plan"
    run([os.environ.get("CXX", "g++"), "-std=c++17", "-O0", "-I", str(ROOT / "csrc"),
         str(ROOT / "scripts/kernel_plan.cpp"), "-o", str(binary)])
    return binary


def launch_plan(binary: Path, shapes=SHAPES) -> Tuple[Dict[str, dict], List[dict]]:
    """Problem geometry by stage name, and every launch the entry points make."""
    lines = [f"{name} {b} {c} {hw} {hw} {k} {g} {STRIDE} {PADDING} {DILATION}"
             for name, b, c, hw, k, g in shapes]
    out = run([str(binary)], input="\n".join(lines) + "\n")
    problems, launches = {}, []
    for name, b, c, hw, k, g in shapes:
        problems[name] = {"batch": b, "channels": c, "height": hw, "width": hw, "kernel": k,
                          "groups": g, "stride": STRIDE, "padding": PADDING,
                          "dilation": DILATION}
    for line in out.splitlines():
        record = json.loads(line)
        if "functor" in record:
            launches.append(record)
        else:
            problems[record["problem"]].update(output_height=record["output_height"],
                                               output_width=record["output_width"])
    return problems, launches


def source_commit() -> str:
    """HEAD, with -dirty when the kernel sources (csrc/) differ from it."""
    try:
        head = run(["git", "rev-parse", "HEAD"], cwd=ROOT).strip()
        dirty = run(["git", "status", "--porcelain", "--", "csrc"], cwd=ROOT).strip()
    except (SystemExit, OSError):
        return "unknown (not a git checkout)"
    return head + ("-dirty" if dirty else "")


# ---- the kernels of the SASS -------------------------------------------------------------------

def sass_kernels(cubin: Path, cuobjdump: str, nvdisasm: str,
                 ptxas_log: str = "") -> Dict[str, dict]:
    """Static facts of every kernel of the cubin, keyed by name_key(readable name); spill bytes
    where ptxas's report is given."""
    usage = resource_usage(run([cuobjdump, "-res-usage", str(cubin)]))
    spilled = spills(ptxas_log)
    cfgs = parse_bbcfg(run([nvdisasm, "-bbcfg", "-poff", str(cubin)]))
    names = demangle(sorted(usage))
    kernels = {}
    for mangled, res in usage.items():
        if mangled not in cfgs or not re.search(r"run_(items|tiles)<", names[mangled]):
            continue  # device subroutines (64-bit division) and other functions
        hot = hot_loop(cfgs[mangled])
        name = readable(names[mangled])
        kernels[name_key(name)] = {
            "kernel": name, "sass_name": name, "registers": res.get("reg", 0),
            "local_bytes": res.get("local", 0) + res.get("stack", 0),
            **spilled.get(mangled, {"spill_store_bytes": None, "spill_load_bytes": None}),
            "loops": hot.loops, "hot_loop_depth": hot.depth, "hot_loop_blocks": hot.blocks,
            "hot_loop_instructions": hot.instructions,
            "hot_loop_multiply_adds": hot.multiply_adds, "whole_function": hot.whole_function,
            "instructions_per_multiply_add": hot.per_multiply_add,
        }
    return kernels


def find_kernel(kernels: Dict[str, dict], launch: dict) -> Optional[dict]:
    """The SASS kernel of a launched functor (a launcher with more template arguments after the
    functor's also matches)."""
    for spelling in (launch["functor"], launch["demangled"]):
        key = name_key(readable(spelling))
        for other, kernel in kernels.items():
            if other == key or other.startswith(key + ","):
                # Named as the source spells it (enumerators, not casts of integers).
                kernel["kernel"] = readable(launch["functor"])
                return kernel
    return None


# ---- output ------------------------------------------------------------------------------------

def _us(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def budget_cell(row: dict) -> str:
    if not row["kernel"].startswith(FAST_PREFIX):
        return "—"
    if not row["over_budget"]:
        return "yes"
    excused = all(rule in row["excused"] for rule in row["over_budget"])
    return f"no: {', '.join(row['over_budget'])}" + (" (exception)" if excused else "")


TABLE_HEADER = ["kernel", "dtype", "layout", "stage", "regs", "local B", "occupancy (blocks/SM)",
                "waves", "instr/FMA", "issue µs", "DRAM µs", "predicted µs", "bound",
                "budget ok", "measured µs (GPU)"]


def row_key(op: str, cells: Sequence[str]) -> Tuple[str, ...]:
    return (op, *[c.strip() for c in cells[:4]])


def row_cells(row: dict, measured: str) -> List[str]:
    per_fma = row["instructions_per_multiply_add"]
    per_fma_text = "n/a" if per_fma is None else f"{per_fma:.2f}" + ("*" if row["whole_function"] else "")
    return [f"`{row['kernel']}`", row["dtype"], row["layout"], row["stage"],
            str(row["registers"]), str(row["local_bytes"]),
            f"{row['occupancy']:.1%} ({row['blocks_per_sm']})".replace(".0%", "%"),
            f"{row['waves']:.2f}", per_fma_text, _us(row["issue_us"]), _us(row["dram_us"]),
            _us(row["predicted_us"]), row["bound"], budget_cell(row), measured]


def markdown(rows: List[dict], kernels: List[dict], machine: dict, commit: str,
             exceptions: List[dict], measured: Dict[Tuple[str, ...], str]) -> str:
    rate = issue_rate(machine)
    out = [
        f"Generated by `scripts/kernel_model.py` from commit `{commit}` (sm_90 SASS).",
        f"Machine: {machine['name']}: {machine['sms']} SMs × {machine['schedulers_per_sm']} "
        f"schedulers × {machine['clock_ghz']} GHz = {rate / 1e12:.3f} T warp instructions/s "
        f"({machine['source']}). DRAM: {machine['copy_bandwidth_tbs']} TB/s "
        f"({machine['copy_bandwidth_source']}).",
        f"Budget of the fast set: issue ≤ {ISSUE_BUDGET['float32']} × DRAM time (float32), "
        f"≤ {ISSUE_BUDGET['bfloat16']} × (bfloat16); occupancy ≥ {MIN_OCCUPANCY:.0%}. "
        "`*` after instr/FMA: no loop has a multiply-add, the whole function counted once.",
        "",
        "### Hot loops (sm_90)",
        "",
        "| kernel | regs | local B | spill st/ld B | loops | hot loop depth | blocks | "
        "instructions | FMAs | instr/FMA |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in kernels:
        per_fma = k["instructions_per_multiply_add"]
        spilled = ("?" if k.get("spill_store_bytes") is None
                   else f"{k['spill_store_bytes']}/{k['spill_load_bytes']}")
        out.append(f"| `{k['kernel']}` | {k['registers']} | {k['local_bytes']} | {spilled} | "
                   f"{k['loops']} | "
                   f"{k['hot_loop_depth']} | {k['hot_loop_blocks']} | "
                   f"{k['hot_loop_instructions']} | {k['hot_loop_multiply_adds']} | "
                   + ("n/a" if per_fma is None else f"{per_fma:.2f}"
                      + ("*" if k["whole_function"] else "")) + " |")
    loopless = [k["kernel"] for k in kernels if k["whole_function"]]
    out += ["", "No multiply-add in any loop (whole function counted once): "
            + (", ".join(f"`{name}`" for name in loopless) or "none") + "."]
    for op in OPS:
        out += ["", f"### {op}", "", "| " + " | ".join(TABLE_HEADER) + " |",
                "| --- | --- | --- | --- | " + " | ".join(["---:"] * 8) + " | --- | --- | ---: |"]
        for row in rows:
            if row["op"] == op:
                cells = row_cells(row, "")
                cells[-1] = measured.get(row_key(op, cells), "")
                out.append("| " + " | ".join(cells) + " |")
    out += ["", "Known exceptions to the budget (`scripts/kernel_budget_exceptions.json`):", ""]
    out += [f"- `{e['kernel']}` {e.get('dtype', '*')} {e.get('layout', '*')}"
            + (f" {e['op']}" if "op" in e else "") + (f" {e['stage']}" if "stage" in e else "")
            + f" ({', '.join(e['rules'])}): {e['reason']}" for e in exceptions] or ["- none"]
    return "\n".join(out)


def measured_cells(document: str) -> Dict[Tuple[str, ...], str]:
    """The measured column of the current table, so that regenerating keeps it."""
    cells, op = {}, None
    region = document.split(MARK_BEGIN, 1)[-1].split(MARK_END, 1)[0]
    for line in region.splitlines():
        heading = re.match(r"^### (\w+)", line)
        if heading:
            op = heading.group(1)
        elif op in OPS and line.startswith("| `"):
            parts = line.strip().strip("|").split("|")
            if len(parts) == len(TABLE_HEADER) and parts[-1].strip():
                cells[row_key(op, parts)] = parts[-1].strip()
    return cells


def rewrite_markdown(path: Path, table: str) -> None:
    document = path.read_text()
    if MARK_BEGIN not in document or MARK_END not in document:
        raise SystemExit(f"kernel_model: {path} lacks the markers {MARK_BEGIN} / {MARK_END}")
    head, rest = document.split(MARK_BEGIN, 1)
    tail = rest.split(MARK_END, 1)[1]
    path.write_text(f"{head}{MARK_BEGIN}\n{table}\n{MARK_END}{tail}")


# ---- main --------------------------------------------------------------------------------------

def model(kernels: Dict[str, dict], problems: Dict[str, dict], launches: List[dict],
          machine: dict, dtypes: Sequence[str] = REPORTED_DTYPES) -> Tuple[List[dict], List[str]]:
    """One row per reported launch; failures for launches whose kernel is not in the SASS."""
    rows, missing = [], []
    for launch in launches:
        kernel = find_kernel(kernels, launch)
        if kernel is None:
            missing.append(f"{readable(launch['functor'])}: launched by {launch['set']} "
                           f"{launch['op']} ({launch['dtype']}, {launch['layout']}) but not "
                           "found in the SASS")
            continue
        if launch["dtype"] not in dtypes or launch["items"] == 0:
            continue
        shape = problems[launch["problem"]]
        row = {"kernel": kernel["kernel"], "set": launch["set"], "op": launch["op"],
               "dtype": launch["dtype"], "layout": launch["layout"], "stage": launch["problem"],
               "items": launch["items"], "threads": launch["threads"]}
        row.update({k: kernel[k] for k in ("registers", "local_bytes",
                                           "instructions_per_multiply_add", "whole_function")})
        row.update(predict(launch, kernel, shape, machine))
        rows.append(row)
    order = {"fast": 0, "baseline": 1}
    rows.sort(key=lambda r: (OPS.index(r["op"]), order.get(r["set"], 2), r["layout"],
                             REPORTED_DTYPES.index(r["dtype"]) if r["dtype"] in REPORTED_DTYPES
                             else 9, r["stage"], r["kernel"]))
    return rows, sorted(set(missing))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--object", help="compiled launchers.cu object with sm_90 code "
                                         "(default: compile it)")
    parser.add_argument("--ptxas-log", help="nvcc -Xptxas -v output of --object (for spill bytes)")
    parser.add_argument("--check", action="store_true",
                        help="check the budget only; write no files (CI)")
    parser.add_argument("--copy-bandwidth", type=float, default=MACHINE["copy_bandwidth_tbs"],
                        help="DRAM copy bandwidth in TB/s (default: %(default)s, an assumption)")
    parser.add_argument("--tools", help="folder holding cuobjdump and nvdisasm")
    parser.add_argument("--exceptions", default=str(ROOT / "scripts/kernel_budget_exceptions.json"))
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/cuda_kernel_model.json"))
    parser.add_argument("--markdown", default=str(ROOT / "benchmarks/CUDA_KERNELS.md"))
    args = parser.parse_args(argv)

    started = time.monotonic()
    machine = dict(MACHINE, copy_bandwidth_tbs=args.copy_bandwidth)
    if args.copy_bandwidth != MACHINE["copy_bandwidth_tbs"]:
        machine["copy_bandwidth_source"] = "given on the command line (--copy-bandwidth)"
    cuobjdump, nvdisasm = find_tool("cuobjdump", args.tools), find_tool("nvdisasm", args.tools)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        if args.object:
            obj = Path(args.object)
            log = Path(args.ptxas_log).read_text() if args.ptxas_log else ""
        else:
            obj, log = compile_launchers(work)
        compiled = time.monotonic()
        kernels = sass_kernels(sm90_cubin(cuobjdump, obj, work), cuobjdump, nvdisasm, log)
        problems, launches = launch_plan(build_plan(work))
    rows, failures = model(kernels, problems, launches, machine)
    exceptions = json.loads(Path(args.exceptions).read_text())["exceptions"]
    failures += apply_budget(rows, exceptions)

    used = {r["kernel"] for r in rows}
    reported = sorted((k for k in kernels.values() if k["kernel"] in used),
                      key=lambda k: (not k["kernel"].startswith(FAST_PREFIX), k["kernel"]))
    commit = source_commit()
    document = Path(args.markdown)
    table = markdown(rows, reported, machine, commit, exceptions,
                     measured_cells(document.read_text()) if document.exists() else {})
    print(table)
    if not args.check:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "generated_by": "scripts/kernel_model.py", "commit": commit,
            "machine": dict(machine, issue_rate_warp_instructions_per_s=issue_rate(machine)),
            "budget": {"fast_prefix": FAST_PREFIX, "issue_over_dram": ISSUE_BUDGET,
                       "min_occupancy": MIN_OCCUPANCY},
            "kernels": reported, "rows": rows, "exceptions": exceptions,
            "failures": failures}, indent=1) + "\n")
        rewrite_markdown(document, table)
    elapsed = time.monotonic() - started
    compile_note = "" if args.object else f", of which nvcc {compiled - started:.0f} s"
    print(f"\n{len(rows)} launches of {len(reported)} kernels modelled in {elapsed:.0f} s"
          f"{compile_note}")
    if failures:
        print("\n".join(["FAILED:"] + failures))
        return 1
    print("every fast kernel within its budget or a listed exception")
    return 0


if __name__ == "__main__":
    sys.exit(main())
