"""The static performance model of the CUDA kernels (scripts/kernel_model.py).

The parts that are plain Python (SASS instruction counting, the graphviz CFG parser, the loop
finder, occupancy, the prediction and the budget with its exceptions) run everywhere; the launch
plan needs g++ and the SASS check of a small kernel needs nvcc and nvdisasm, else they skip.
"""
from __future__ import annotations

import fnmatch
import importlib.util
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_model():
    spec = importlib.util.spec_from_file_location("kernel_model", ROOT / "scripts/kernel_model.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["kernel_model"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


km = _load_model()


# ---- instructions ------------------------------------------------------------------------------

@pytest.mark.parametrize("instruction, fmas", [
    ("FFMA R4, R64, R47, R4", 1),
    ("@!P1 FFMA R4, R1, R2, R3", 1),
    ("FFMA R44, R44, R39, RZ", 1),          # zero addend: still a multiply-add
    ("FFMA.FTZ R1, R2, 0.5, R3", 1),
    ("DFMA R2, R4, R6, R8", 1),
    ("HFMA2 R2, R3, R4, R5", 2),            # paired
    ("HFMA2.MMA R46, -RZ, RZ, 0, 0", 0),    # ptxas's constant move
    ("FMUL R1, R2, R3", 0),
    ("DMUL R2, R4, R6", 0),
    ("FADD R1, R2, R3", 0),
    ("IMAD R1, R2, R3, R4", 0),
])
def test_multiply_adds(instruction, fmas):
    assert km.multiply_adds(instruction) == fmas


def test_opcode_drops_the_predicate():
    assert km.opcode("@!P3 BRA `(.L_x_3191)") == "BRA"
    assert km.opcode("@PT LDG.E.128.CONSTANT R4, desc[UR6][R2.64]") == "LDG.E.128.CONSTANT"


# ---- control-flow graph ----------------------------------------------------------------------

# As nvdisasm -bbcfg -poff writes it: an entry block, a self-loop of two FFMAs, an exit block.
DOT = r'''digraph f {
subgraph "cluster_kern" {
node [fontname="Courier",fontsize=10,shape=Mrecord];
".text.kern"
[label="{<entry>.text.kern:\l	.type		kern,@function\lkern:\l0000:\ \ \ MOV\ R1,\ c\[0x0\]\[0x28\]\ ;\l|<exit0>0010:\ \ \ @P0\ EXIT\ ;\l}"]
".text.kern":exit0:s -> ".L_x_0":entry:n [style=solid];
node [fontname="Courier",fontsize=10,shape=Mrecord];
".L_x_0"
[label="{<entry>.L_x_0:\l0020:\ \ \ FFMA\ R2,\ R3,\ R4,\ R2\ ;\l0030:\ \ \ FFMA\ R5,\ R3,\ R6,\ R5\ ;\l0040:\ \ \ IADD3\ R7,\ R7,\ 0x1,\ RZ\ ;\l0050:\ \ \ ISETP.NE.AND\ P0,\ PT,\ R7,\ R8,\ PT\ ;\l|<exit0>0060:\ \ \ @P0\ BRA\ `(.L_x_0)\ ;\l}"]
".L_x_0":exit0:e -> ".L_x_0":entry:n [style=solid];
".L_x_0":exit0:s -> "BB0":entry:n [style=solid];
node [fontname="Courier",fontsize=10,shape=Mrecord];
"BB0"
[label="{<entry>BB0:\l0070:\ \ \ STG.E\ desc\[UR4\]\[R10.64\],\ R2\ ;\l0080:\ \ \ EXIT\ ;\l}"]
}
subgraph "cluster_other" {
node [fontname="Courier",fontsize=10,shape=Mrecord];
".text.other"
[label="{<entry>.text.other:\l0000:\ \ \ RET.REL.NODEC\ R20\ `(kern)\ ;\l}"]
}
}
'''


def test_parse_bbcfg():
    functions = km.parse_bbcfg(DOT)
    assert set(functions) == {"kern", "other"}
    kern = functions["kern"]
    assert kern.entry == ".text.kern"
    assert kern.blocks[".text.kern"] == ["MOV R1, c[0x0][0x28]", "@P0 EXIT"]
    assert kern.blocks[".L_x_0"][0] == "FFMA R2, R3, R4, R2"
    assert kern.blocks[".L_x_0"][-1] == "@P0 BRA `(.L_x_0)"
    assert sorted(kern.successors[".L_x_0"]) == [".L_x_0", "BB0"]
    assert kern.successors["BB0"] == []
    assert functions["other"].blocks[".text.other"] == ["RET.REL.NODEC R20 `(kern)"]


def test_hot_loop_of_parsed_cfg():
    hot = km.hot_loop(km.parse_bbcfg(DOT)["kern"])
    assert (hot.instructions, hot.multiply_adds, hot.blocks, hot.loops, hot.depth) == (5, 2, 1, 1, 1)
    assert not hot.whole_function
    assert hot.per_multiply_add == 2.5


def _graph(edges):
    successors = {}
    for source, target in edges:
        successors.setdefault(source, []).append(target)
        successors.setdefault(target, [])
    return successors


# entry -> A (outer header) -> B (inner header) <-> C, B -> D -> A (outer back edge), D -> exit;
# a second inner loop E <-> E off A; Z is unreachable and in a cycle of its own.
NESTED = _graph([("entry", "A"), ("A", "B"), ("B", "C"), ("C", "B"), ("B", "D"), ("A", "E"),
                 ("E", "E"), ("E", "D"), ("D", "A"), ("D", "exit"), ("Z", "Z")])


def test_dominators():
    dom = km.dominators("entry", NESTED)
    assert dom["C"] == {"entry", "A", "B", "C"}
    assert dom["D"] == {"entry", "A", "D"}  # reached from B and from E
    assert "Z" not in dom


def test_find_loops_nested():
    loops = {loop.header: loop for loop in km.find_loops("entry", NESTED)}
    assert set(loops) == {"A", "B", "E"}
    assert loops["A"].body == {"A", "B", "C", "D", "E"}
    assert loops["B"].body == {"B", "C"}
    assert loops["E"].body == {"E"}
    assert {loop.header for loop in km.innermost(list(loops.values()))} == {"B", "E"}


def test_back_edges_of_one_header_merge():
    graph = _graph([("entry", "H"), ("H", "X"), ("H", "Y"), ("X", "H"), ("Y", "H"), ("H", "out")])
    (loop,) = km.find_loops("entry", graph)
    assert loop.header == "H" and loop.body == {"H", "X", "Y"}
    assert sorted(loop.back_edges) == [("X", "H"), ("Y", "H")]


def test_irreducible_cycle_is_no_natural_loop():
    # entry branches into both P and Q, which form a cycle: neither dominates the other.
    graph = _graph([("entry", "P"), ("entry", "Q"), ("P", "Q"), ("Q", "P")])
    assert km.find_loops("entry", graph) == []


def _cfg(blocks, edges, entry="entry"):
    successors = _graph(edges)
    for name in blocks:
        successors.setdefault(name, [])
    return km.Cfg("k", entry, {name: blocks.get(name, []) for name in successors}, successors)


FMA = "FFMA R1, R2, R3, R1"
OTHER = "IADD3 R4, R4, 0x1, RZ"


def test_hot_loop_is_the_innermost_with_most_multiply_adds():
    # Outer loop A holds more FMAs in all, but inner loops B (2 FMAs) and E (3 FMAs) are the
    # innermost candidates: E wins.
    blocks = {"A": [FMA] * 10, "B": [FMA] * 2 + [OTHER] * 2, "C": [OTHER], "E": [FMA] * 3 + [OTHER],
              "D": [OTHER]}
    hot = km.hot_loop(_cfg(blocks, [(s, t) for s, ts in NESTED.items() for t in ts]))
    assert (hot.multiply_adds, hot.instructions, hot.blocks, hot.depth, hot.loops) == (3, 4, 1, 2, 3)


def test_hot_loop_ties_go_to_more_instructions():
    blocks = {"B": [FMA] * 2, "C": [OTHER] * 5, "E": [FMA] * 2 + [OTHER]}
    hot = km.hot_loop(_cfg(blocks, [(s, t) for s, ts in NESTED.items() for t in ts]))
    assert (hot.multiply_adds, hot.instructions) == (2, 7)  # B + C beats E's 3


def test_no_multiply_add_in_a_loop_counts_the_whole_function():
    blocks = {"entry": [FMA, OTHER], "L": [OTHER] * 3, "exit": [OTHER]}
    hot = km.hot_loop(_cfg(blocks, [("entry", "L"), ("L", "L"), ("L", "exit")]))
    assert hot.whole_function and (hot.multiply_adds, hot.instructions) == (1, 6)
    empty = km.hot_loop(_cfg({"entry": [OTHER]}, []))
    assert empty.whole_function and empty.per_multiply_add is None


# ---- occupancy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("threads, registers, blocks, occupancy", [
    (256, 32, 8, 1.0),      # 1024 registers a warp: 64 warps fit
    (256, 64, 4, 0.5),      # 2048 a warp: 8 warps per scheduler partition, 32 per SM
    (256, 84, 2, 0.25),     # 2688 -> 2816 a warp: 5 warps per partition, 20 per SM: 2 blocks
    (256, 128, 2, 0.25),
    (256, 255, 1, 0.125),   # 8160 -> 8192 a warp: 2 per partition
    (128, 40, 12, 0.75),    # 1280 a warp: 12 per partition, 48 warps, 12 blocks of 4
    (1024, 64, 1, 0.5),
    (32, 16, 32, 0.5),      # the 32-blocks-per-SM limit
    (256, 256, 0, 0.0),     # over the per-thread limit: cannot launch
])
def test_occupancy(threads, registers, blocks, occupancy):
    assert km.occupancy(registers, threads) == (blocks, occupancy)


def test_occupancy_with_shared_memory():
    # 64 registers allow 4 blocks of 256 threads; 50 KB of shared memory (+1 KB reserved each)
    # fit 4 blocks in 228 KB, 80 KB only 2, 120 KB one.
    assert km.occupancy(64, 256, km.MACHINE, 50 * 1024) == (4, 0.5)
    assert km.occupancy(64, 256, km.MACHINE, 80 * 1024) == (2, 0.25)
    assert km.occupancy(64, 256, km.MACHINE, 120 * 1024) == (1, 0.125)
    assert km.occupancy(64, 256, km.MACHINE, 0) == km.occupancy(64, 256)


def test_tile_grid():
    # 2 blocks per SM: 264 resident blocks. 384 tiles: block b takes tiles b and b + 264 (120
    # of them take two), so an SM with two such blocks does 4 tiles against a mean of 384 / 132.
    assert km.tile_grid(384, 2, km.MACHINE) == (264, pytest.approx(384 / 264),
                                                pytest.approx(384 / 132 / 4))
    assert km.tile_grid(528, 2, km.MACHINE) == (264, pytest.approx(2.0), pytest.approx(1.0))
    # fewer tiles than SMs: one block each.
    assert km.tile_grid(100, 2, km.MACHINE) == (100, pytest.approx(100 / 264),
                                                pytest.approx(100 / 132))


def test_predict_takes_the_tile_grid_and_shared_memory_of_a_tile_kernel():
    kernel = {"registers": 64, "instructions_per_multiply_add": 1.5}
    launch = {"op": "forward", "dtype": "bfloat16", "threads": 256, "items": 384 * 256,
              "tiles": 384, "shared_bytes": 80 * 1024}
    result = km.predict(launch, kernel, STAGE1, km.MACHINE)
    assert result["blocks_per_sm"] == 2 and result["occupancy"] == 0.25
    assert result["blocks"] == 264 and result["tail_efficiency"] == pytest.approx(384 / 132 / 4)
    assert result["shared_bytes"] == 80 * 1024


# ---- prediction and budget -------------------------------------------------------------------

STAGE1 = {"batch": 64, "channels": 64, "groups": 4, "kernel": 7, "height": 56, "width": 56,
          "output_height": 56, "output_width": 56}


def test_minimal_bytes_and_multiply_adds_of_stage1():
    # CUDA_KERNELS.md: 260.1 MB for float32 at stage 1, the same for all three ops at stride 1.
    for op in km.OPS:
        assert km.minimal_bytes(op, STAGE1, 4) == 260_112_384
    assert km.minimal_bytes("forward", STAGE1, 2) == 130_056_192
    assert km.op_multiply_adds(STAGE1) == 64 * 64 * 56 * 56 * 49


def test_issue_rate_of_the_h100():
    assert km.issue_rate(km.MACHINE) == pytest.approx(0.92664e12)


def test_grid_spreads_warp_items_over_every_resident_block():
    # 4 blocks per SM: 528 resident blocks, 4224 warps. 5000 warp-items: block 0's warps are
    # warps 0, 528, ..., 3696 of the grid; warps 0 and 528 take a second warp-item (5000 - 4224
    # = 776 warps do), the other six one: 10, so an SM of four such blocks does 40 against a
    # mean of 5000 / 132.
    blocks, rounds, tail = km.grid(32 * 5000, 256, 4, km.MACHINE)
    assert blocks == 528 and rounds == pytest.approx(5000 / 4224)
    assert tail == pytest.approx(5000 / 132 / 40)
    # 1.5 rounds: every block's warps 0-3 take two warp-items, 4-7 one: no SM does more than
    # the mean.
    assert km.grid(32 * 6336, 256, 4, km.MACHINE) == (528, pytest.approx(1.5), pytest.approx(1.0))
    # 100 warp-items: one block each, on 100 of the 132 SMs.
    assert km.grid(32 * 100 - 5, 256, 4, km.MACHINE) == (100, pytest.approx(100 / 4224),
                                                         pytest.approx(100 / 132))
    assert km.grid(0, 256, 4, km.MACHINE)[0] == 0


def test_predict_applies_the_tail_efficiency():
    kernel = {"registers": 64, "instructions_per_multiply_add": 5.0}
    launch = {"op": "forward", "dtype": "float32", "threads": 256, "items": 32 * 5000}
    result = km.predict(launch, kernel, STAGE1, km.MACHINE)
    tail = 5000 / 132 / 40  # test_grid_spreads_warp_items_over_every_resident_block
    assert result["blocks_per_sm"] == 4 and result["blocks"] == 528
    assert result["waves"] == pytest.approx(5000 / 4224)
    assert result["tail_efficiency"] == pytest.approx(tail)
    issue = km.op_multiply_adds(STAGE1) * 5.0 / 32 / km.issue_rate(km.MACHINE) / tail * 1e6
    assert result["issue_us"] == pytest.approx(issue)
    assert result["dram_us"] == pytest.approx(260_112_384 / 3.0e12 * 1e6)
    assert result["bound"] == "issue" and result["predicted_us"] == result["issue_us"]
    fast_dram = km.predict(launch, dict(kernel, instructions_per_multiply_add=0.1), STAGE1,
                           km.MACHINE)
    assert fast_dram["bound"] == "DRAM" and fast_dram["predicted_us"] == fast_dram["dram_us"]


def _row(kernel="fast::ForwardChannelsLast<float, 4>", dtype="float32", issue=69.0, dram=100.0,
         occupancy=0.5, layout="channels_last", stage="stage1", op="forward"):
    return {"kernel": kernel, "dtype": dtype, "layout": layout, "stage": stage, "op": op,
            "issue_us": issue, "dram_us": dram, "occupancy": occupancy}


def test_budget_rule():
    assert km.budget_failures(_row(issue=70.0)) == []
    assert km.budget_failures(_row(issue=70.1)) == ["issue"]
    assert km.budget_failures(_row(dtype="bfloat16", issue=100.0)) == []
    assert km.budget_failures(_row(dtype="bfloat16", issue=100.1)) == ["issue"]
    assert km.budget_failures(_row(occupancy=0.375)) == ["occupancy"]
    assert km.budget_failures(_row(issue=None, occupancy=0.25)) == ["issue", "occupancy"]
    assert km.budget_failures(_row(kernel="baseline::Forward<float>", issue=1e6, occupancy=0.1)) == []


def test_exceptions_excuse_and_go_stale():
    over = _row(issue=90.0, occupancy=0.375)
    other = _row(kernel="fast::GradInputChannelsLast<float, 4>", issue=90.0, op="grad_input")
    within = _row(kernel="fast::GradWeightChannelsLast<float, 4>", op="grad_weight")
    exceptions = [
        {"kernel": "fast::ForwardChannelsLast<float, *>", "dtype": "float32",
         "layout": "channels_last", "rules": ["issue", "occupancy"], "reason": "r"},
        {"kernel": "fast::GradWeightChannelsLast<float, 4>", "dtype": "float32",
         "layout": "channels_last", "rules": ["issue"], "reason": "stale"},
        {"kernel": "fast::ForwardChannelsLast<float, 4>", "dtype": "float32",
         "layout": "channels_first", "rules": ["issue"], "reason": "wrong layout"},
    ]
    rows = [over, other, within]
    failures = km.apply_budget(rows, exceptions)
    assert over["excused"] == ["issue", "occupancy"] and km.budget_cell(over).endswith("(exception)")
    assert other["over_budget"] == ["issue"] and other["excused"] == []
    assert km.budget_cell(within) == "yes"
    assert any("GradInputChannelsLast" in f and "not in the exceptions" in f for f in failures)
    stale = [f for f in failures if f.startswith("stale")]
    assert len(stale) == 2
    assert any("GradWeightChannelsLast" in f for f in stale)
    assert any("ForwardChannelsLast<float, 4> float32 channels_first" in f for f in stale)
    assert len(failures) == 3


def test_exception_stage_and_op_patterns():
    entry = {"kernel": "fast::*", "dtype": "float32", "layout": "*", "stage": "stage[34]",
             "op": "forward", "rules": ["issue"], "reason": "r"}
    assert km.exception_matches(entry, _row(stage="stage3"), "issue")
    assert not km.exception_matches(entry, _row(stage="stage1"), "issue")
    assert not km.exception_matches(entry, _row(stage="stage3", op="grad_input"), "issue")
    assert not km.exception_matches(entry, _row(stage="stage3"), "occupancy")


def test_committed_exceptions_are_well_formed():
    document = json.loads((ROOT / "scripts/kernel_budget_exceptions.json").read_text())
    for entry in document["exceptions"]:
        assert entry["kernel"].startswith(km.FAST_PREFIX)
        assert fnmatch.filter(km.REPORTED_DTYPES, entry["dtype"])
        assert set(entry["rules"]) <= {"issue", "occupancy"} and entry["rules"]
        assert entry["reason"].strip()


# ---- names -------------------------------------------------------------------------------------

def test_readable_names_match_across_spellings():
    sass = ("void involution::cuda::(anonymous namespace)::run_items<involution::cuda::fast::"
            "ForwardChannelsLast<__nv_bfloat16, 8> >(T1)")
    assert km.readable(sass) == "fast::ForwardChannelsLast<__nv_bfloat16, 8>"
    plan = "involution::cuda::fast::ForwardChannelsLast<standin::BFloat16, 8>"
    assert km.name_key(km.readable(plan)) == km.name_key(km.readable(sass))
    # c++filt may spell the parameter as the functor type, with parentheses nested in it.
    enum = ("void involution::cuda::(anonymous namespace)::run_items<involution::cuda::fast::"
            "Rows<float, 7, (involution::cuda::fast::Order)0> >(involution::cuda::fast::"
            "Rows<float, 7, (involution::cuda::fast::Order)0>)")
    assert km.readable(enum) == "fast::Rows<float, 7, (fast::Order)0>"
    tiles = ("void involution::cuda::(anonymous namespace)::run_tiles<involution::cuda::fast::"
             "ForwardTilesChannelsFirst<__nv_bfloat16, 7, (involution::cuda::fast::Order)2> >(T1)")
    assert km.readable(tiles) == "fast::ForwardTilesChannelsFirst<__nv_bfloat16, 7, (fast::Order)2>"


def test_find_kernel_falls_back_to_the_demangled_spelling():
    sass = "fast::Rows<float, 7, (fast::WeightOrder)0>"
    kernels = {km.name_key(sass): {"kernel": sass},
               km.name_key("fast::Tiled<float, 4>, 128"): {"kernel": "fast::Tiled<float, 4>, 128"}}
    launch = {"functor": "involution::cuda::fast::Rows<float, 7, involution::cuda::fast::WeightOrder::kA>",
              "demangled": "involution::cuda::fast::Rows<float, 7, (involution::cuda::fast::WeightOrder)0>"}
    found = km.find_kernel(kernels, launch)
    assert found is kernels[km.name_key(sass)]
    assert found["kernel"] == "fast::Rows<float, 7, fast::WeightOrder::kA>"  # the source's name
    extra = {"functor": "fast::Tiled<float, 4>", "demangled": "fast::Tiled<float, 4>"}
    assert km.find_kernel(kernels, extra) is not None  # a launcher's extra template argument
    assert km.find_kernel(kernels, {"functor": "fast::Gone<float>",
                                    "demangled": "fast::Gone<float>"}) is None


def test_measured_column_survives_regeneration():
    row = dict(_row(), registers=64, local_bytes=0, blocks_per_sm=4, waves=1.5,
               instructions_per_multiply_add=2.0, whole_function=False, predicted_us=100.0,
               bound="DRAM", over_budget=[], excused=[])
    table = km.markdown([row], [], km.MACHINE, "abc", [], {})
    document = f"intro\n{km.MARK_BEGIN}\n{table}\n{km.MARK_END}\nrest\n"
    line = next(l for l in document.splitlines() if l.startswith("| `fast::"))
    filled = document.replace(line, line.rstrip(" |") + " | 123.4 |")
    assert filled.count("123.4") == 1
    measured = km.measured_cells(filled)
    assert list(measured.values()) == ["123.4"]
    again = km.markdown([row], [], km.MACHINE, "abc", [], measured)
    assert "| 123.4 |" in again


# ---- tools -------------------------------------------------------------------------------------

def test_launch_plan_covers_every_set_layout_and_op():
    if not shutil.which("g++"):
        pytest.skip("needs g++")
    with tempfile.TemporaryDirectory() as temp:
        binary = km.build_plan(Path(temp))
        problems, launches = km.launch_plan(binary, [("small", 2, 32, 9, 3, 2)])
    assert problems["small"]["output_height"] == problems["small"]["output_width"] == 13  # pad 3
    seen = {(l["set"], l["layout"], l["op"], l["dtype"]) for l in launches}
    for dtype in km.ELEMENT_BYTES:
        for op in km.OPS:
            assert ("fast", "channels_first", op, dtype) in seen
            assert ("fast", "channels_last", op, dtype) in seen
            assert ("baseline", "channels_first", op, dtype) in seen
            assert ("baseline", "channels_last", op, dtype) not in seen  # not launched
    for launch in launches:
        name = km.readable(launch["functor"])
        assert name.startswith(launch["set"] + "::"), name
        assert "standin" not in name
        assert launch["items"] > 0 and launch["threads"] % km.WARP == 0
        assert "blocks" not in launch  # the grid depends on the registers: the model makes it
        # Tile kernels (the half types' channels-first ones at this shape) report their tiles
        # and shared memory; the others none.
        tiled = "TilesChannelsFirst" in name
        assert (launch["tiles"] > 0 and 0 < launch["shared_bytes"] <= 80 * 1024) if tiled else \
            launch["tiles"] == launch["shared_bytes"] == 0
    assert {(l["dtype"], l["op"]) for l in launches
            if "TilesChannelsFirst" in l["functor"]} == {
        (dtype, op) for dtype in ("float16", "bfloat16") for op in km.OPS}


SMALL_KERNEL = r'''
template <typename F> __global__ void run_items(const F f) { f(threadIdx.x); }
struct Dot {
  const float* a; const float* b; float* out; int n;
  __device__ void operator()(int lane) const {
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += a[i * 32 + lane] * b[i];
    out[lane] = sum;
  }
};
template __global__ void run_items<Dot>(const Dot);
'''


def test_sass_of_a_small_kernel():
    nvcc = Path(km.os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin" / "nvcc"
    try:
        cuobjdump, nvdisasm = km.find_tool("cuobjdump", None), km.find_tool("nvdisasm", None)
    except SystemExit:
        pytest.skip("needs cuobjdump and nvdisasm")
    if not nvcc.exists():
        pytest.skip("needs nvcc")
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        (work / "small.cu").write_text(SMALL_KERNEL)
        subprocess.run([str(nvcc), "-O3", "-c", "-gencode", "arch=compute_90,code=sm_90",
                        str(work / "small.cu"), "-o", str(work / "small.o")], check=True)
        kernels = km.sass_kernels(km.sm90_cubin(cuobjdump, work / "small.o", work), cuobjdump,
                                  nvdisasm)
    (kernel,) = kernels.values()
    assert kernel["kernel"] == "Dot"
    assert kernel["registers"] > 0 and kernel["local_bytes"] == 0
    assert kernel["loops"] >= 1 and not kernel["whole_function"]
    assert kernel["hot_loop_multiply_adds"] >= 1  # ptxas unrolls the loop: usually 4
    assert 1 < kernel["instructions_per_multiply_add"] < 20
    assert math.isfinite(kernel["instructions_per_multiply_add"])
