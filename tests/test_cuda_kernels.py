"""Both sets of CUDA kernels, tested on the CPU through emulated launches and on a GPU when present.

The emulated ops (tests/csrc/emulated_launch.cpp, built by tests/emulation.py) run the kernels'
per-thread code for every thread of the very grid the CUDA launch uses, so these tests check the
GPU's index math, grid-stride loops, pack choice and pack alignment without a GPU. The GPU tests
compare both kernel sets with the reference.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import involution_cuda
from involution_cuda import reference

import emulation
from kernel_choice_probe import forward_and_backward_choices
from conftest import (GRADCHECK_PROBLEMS, REALISTIC_PROBLEMS, WEIGHT_LAYOUTS, Problem, assert_close,
                      needs_gpu, weight_in_layout)

LAYOUTS = [torch.contiguous_format, torch.channels_last]
KERNEL_SETS = ["baseline", "fast"]
NO_GRID_LIMIT = 1 << 20  # a GPU that holds every block at once: one item per thread


def options_of(problem):
    return problem.pairs()[1:]


def reference_results(problem, x, w, grad):
    """Forward, grad_input and grad_weight of the unfold reference (float64)."""
    x = x.detach().double().requires_grad_()
    w = w.detach().double().requires_grad_()
    out = reference.involution(x, w, **problem.options)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), grad.double())
    return out.detach(), grad_x, grad_w


def emulated_launches(problem, x, w, grad, kernels="fast", max_blocks=NO_GRID_LIMIT,
                      threads_limit=None):
    """The three ops through emulated launches, an emulation.Launch each."""
    ops = emulation.ops()
    stride, padding, dilation = options_of(problem)
    launches = (
        ops.forward(x, w, stride, padding, dilation, kernels, max_blocks, threads_limit),
        ops.grad_input(grad, w, list(x.shape[2:]), stride, padding, dilation, kernels, max_blocks,
                       threads_limit),
        ops.grad_weight(grad, x, w.shape[1], list(w.shape[2:4]), stride, padding, dilation, kernels,
                        max_blocks, threads_limit),
    )
    return tuple(emulation.Launch(*launch) for launch in launches)


def emulated_results(problem, x, w, grad, kernels="fast", max_blocks=NO_GRID_LIMIT):
    """The three results through emulated launches, and each launch's pack width."""
    launches = emulated_launches(problem, x, w, grad, kernels, max_blocks)
    return tuple(launch.result for launch in launches), tuple(launch.pack for launch in launches)


def cuda_results(problem, x, w, grad, kernels):
    """The three raw ops on the GPU with the given kernel set."""
    ops = torch.ops.involution_cuda
    stride, padding, dilation = options_of(problem)
    x, w, grad = (t.cuda() for t in (x, w, grad))
    return (ops.involution(x, w, stride, padding, dilation, kernels),
            ops.involution_grad_input(grad, w, list(x.shape[2:]), stride, padding, dilation, kernels),
            ops.involution_grad_weight(grad, x, w.shape[1], list(w.shape[2:4]), stride, padding,
                                       dilation, kernels))


def random_problem_tensors(problem, dtype, layout, seed=0):
    x, w = problem.tensors(dtype=dtype, seed=seed)
    grad = torch.randn(problem.batch, problem.channels, *problem.output_size(),
                       generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64).to(dtype)
    return x.contiguous(memory_format=layout), w, grad.contiguous(memory_format=layout)


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_emulated_float64_matches_reference(problem, layout, kernels):
    x, w, grad = random_problem_tensors(problem, torch.float64, layout)
    expected = reference_results(problem, x, w, grad)
    for max_blocks in (NO_GRID_LIMIT, 1):
        launches = emulated_launches(problem, x, w, grad, kernels, max_blocks)
        for launch, wanted in zip(launches, expected):
            torch.testing.assert_close(launch.result, wanted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", REALISTIC_PROBLEMS, ids=str)
def test_emulated_realistic_sizes_match_reference(problem, dtype, layout, kernels):
    x, w, grad = random_problem_tensors(problem, dtype, layout)
    expected = reference_results(problem, x, w, grad)
    for max_blocks in (NO_GRID_LIMIT, 1):
        launches = emulated_launches(problem, x, w, grad, kernels, max_blocks)
        for launch, wanted in zip(launches, expected):
            assert launch.result.dtype == dtype
            assert_close(launch.result, wanted, dtype)
    # With one block of 256 threads, every op's grid-stride loop really runs several items per
    # thread: the items past the first 256 are right only because the loop reached them.
    assert [launch.most_items_per_thread >= 2 for launch in launches] == [True, True, True]


@pytest.mark.parametrize("dtype, wide", [(torch.float64, 2), (torch.float32, 4), (torch.float16, 8),
                                         (torch.bfloat16, 8)], ids=str)
def test_channels_last_takes_16_byte_packs_when_groups_allow(dtype, wide):
    problem = Problem(2, 32, 2, (9, 7), (3, 5), stride=(2, 1))  # 16 channels per group
    x, w, grad = random_problem_tensors(problem, dtype, torch.channels_last)
    results, packs = emulated_results(problem, x, w, grad)
    assert packs == (wide, wide, wide)
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        assert_close(actual, wanted, dtype)
    # Results come back in the input's layout (grad_weight always contiguous).
    assert results[0].is_contiguous(memory_format=torch.channels_last)
    assert results[1].is_contiguous(memory_format=torch.channels_last)
    assert results[2].is_contiguous()


# Problems the row kernels (csrc/cuda/fast/rows.h) take in channels_last: unit stride and
# dilation along the width, kernel width 3 or 7 (grad_input also unit height stride); rows whose
# width is no multiple of the pixels per thread (the last block is shifted), padding on both
# sides, height stride and dilation.
ROW_PROBLEMS = [
    Problem(2, 32, 2, (9, 11), (3, 3)),
    Problem(4, 16, 1, (13, 10), (7, 7), stride=(2, 1), dilation=(2, 1)),
    Problem(4, 16, 1, (13, 10), (7, 7), dilation=(2, 1)),
    Problem(12, 16, 2, (5, 7), (5, 7), padding=(1, 3)),
    Problem(8, 32, 4, (6, 9), (3, 7), padding=(0, 1)),
]


def row_kernel_items(problem, rows, cols, dtype, outputs_per_thread):
    """Work items of a row kernel: (n, row, block of pixels, group, chunk of channels)."""
    channels_per_thread = 4 if dtype == torch.float64 else 8
    return (problem.batch * rows * -(-cols // outputs_per_thread) * problem.channels
            // channels_per_thread)


@pytest.mark.parametrize("weight_layout", ["contiguous", "conv_nhwc_view"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("problem", ROW_PROBLEMS, ids=str)
def test_row_kernels_match_reference(problem, dtype, weight_layout):
    x, w, grad = random_problem_tensors(problem, dtype, torch.channels_last)
    w = weight_in_layout(w, weight_layout)
    expected = reference_results(problem, x, w, grad)
    launches = emulated_launches(problem, x, w, grad, "fast", max_blocks=1)
    for launch, wanted in zip(launches, expected):
        assert_close(launch.result, wanted, dtype)
    # The row kernels ran: their item counts (one block of 256 threads loops over them) are not
    # those of the one-pixel kernels. Pixels per thread in the forward: 4 for half types, 3 for
    # float32 (2 with the conv-view weight), 2 for float64; in grad_input 4 for half types, else 2.
    half = dtype.itemsize == 2
    forward_outputs = 4 if half else 2 if dtype == torch.float64 or weight_layout == "conv_nhwc_view" else 3
    grad_input_outputs = 4 if half else 2
    out_h, out_w = problem.output_size()
    forward_items = row_kernel_items(problem, out_h, out_w, dtype, forward_outputs)
    grad_input_items = row_kernel_items(problem, *problem.size, dtype, grad_input_outputs)
    if problem.pairs()[1][0] != 1:  # grad_input's row kernel needs unit height stride
        grad_input_items = (problem.batch * problem.size[0] * problem.size[1] * problem.channels
                            // (16 // dtype.itemsize))
    one_pixel_items = problem.batch * out_h * out_w * problem.channels // (16 // dtype.itemsize)
    assert -(-forward_items // 256) != -(-one_pixel_items // 256)  # the check below can tell
    assert launches[0].most_items_per_thread == -(-forward_items // 256)
    assert launches[1].most_items_per_thread == -(-grad_input_items // 256)
    assert launches[0].pack == launches[1].pack == 16 // dtype.itemsize


# A problem for the row kernels' NaN and Inf handling, and its tensors with NaN and Inf weights at
# padding taps in an image that is not the first (the row kernels' own padding path, not the
# one-pixel code at the tensor's ends), and Inf inputs and grad_output next to the padding: in
# channels_last, the pixels that a padding column's load reaches in memory (the next row's first,
# the previous row's last), which bfloat16 loads and masks; no result may pick them up.
NAN_PROBLEM = Problem(3, 16, 2, (6, 9), (3, 7))


def tensors_with_nan_and_inf(dtype, layout):
    x, w, grad = random_problem_tensors(NAN_PROBLEM, dtype, layout)
    w, x, grad = w.clone(), x.clone(), grad.clone()
    w[1, 0, 0, 0, 0, 0] = float("nan")  # top-left tap of pixel (0, 0): a padding row and column
    w[1, 1, 1, 6, 3, 8] = float("inf")  # right-most tap of the last pixel of a row: padding
    w[2, 1, 0, 2, 4, 4] = float("nan")  # a padding row only
    x[1, 3, 2, 0] = float("inf")  # read past the end of row 1 by its last pixels' padding taps
    grad[2, 5, 0, 8] = float("inf")  # read before the start of row 1 in grad_input
    return x, w, grad


def assert_nan_and_inf_like_the_reference(launches, x, w, grad, dtype):
    for launch, wanted in zip(launches, reference_results(NAN_PROBLEM, x, w, grad)):
        assert torch.equal(torch.isnan(launch.result), torch.isnan(wanted))
        assert torch.equal(torch.isinf(launch.result), torch.isinf(wanted))
        finite = torch.isfinite(wanted)
        assert_close(launch.result[finite], wanted[finite], dtype)
    assert torch.isnan(launches[0].result[1, :8, 0, 0]).all()
    assert torch.isfinite(launches[1].result[2, :, 1, :3]).all()


@pytest.mark.parametrize("weight_layout", ["contiguous", "conv_nhwc_view"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_row_kernels_propagate_nan_and_inf_like_the_reference(dtype, weight_layout):
    x, w, grad = tensors_with_nan_and_inf(dtype, torch.channels_last)
    w = weight_in_layout(w, weight_layout)
    launches = emulated_launches(NAN_PROBLEM, x, w, grad, "fast", max_blocks=1)
    outputs = 2 if dtype == torch.float32 and weight_layout == "conv_nhwc_view" else 3
    outputs = 4 if dtype == torch.bfloat16 else outputs
    forward_items = row_kernel_items(NAN_PROBLEM, 6, 9, dtype, outputs)
    assert launches[0].most_items_per_thread == -(-forward_items // 256)
    assert_nan_and_inf_like_the_reference(launches, x, w, grad, dtype)


# Problems the grad_weight row kernel (csrc/cuda/fast/grad_weight_rows.h) takes in channels_last:
# 16 channels per group, unit stride and dilation along the width, kernel width 3 or 7; odd
# widths (the last block of 4 pixels is shifted), padding on both sides, height stride and
# dilation, a kernel taller than the image.
GRAD_WEIGHT_ROW_PROBLEMS = [
    Problem(4, 32, 2, (9, 11), (3, 3)),
    Problem(4, 16, 1, (13, 10), (7, 7), stride=(2, 1), dilation=(2, 1)),
    Problem(3, 48, 3, (5, 7), (5, 7), padding=(1, 3)),
    Problem(6, 64, 4, (6, 9), (3, 7), padding=(0, 1)),
    Problem(12, 16, 1, (3, 5), (9, 3), padding=(4, 2)),
]


def grad_weight_row_items(problem, dtype):
    """Work items of the grad_weight row kernel: (n, slice of kernel rows, row, block, group),
    with as many kernel rows per item as GradWeightRowsChannelsLast::make chooses."""
    pixels = 1 if dtype == torch.float64 else 4
    out_h, out_w = problem.output_size()
    base = problem.batch * out_h * -(-out_w // pixels) * problem.groups
    kernel_h = problem.pairs()[0][0]
    slices = min(-(-(1 << 19) // base), kernel_h)
    rows_per_item = -(-kernel_h // slices)
    return base * -(-kernel_h // rows_per_item), rows_per_item


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", GRAD_WEIGHT_ROW_PROBLEMS, ids=str)
def test_grad_weight_row_kernel_matches_reference(problem, dtype):
    x, w, grad = random_problem_tensors(problem, dtype, torch.channels_last)
    expected = reference_results(problem, x, w, grad)[2]
    launch = emulated_launches(problem, x, w, grad, "fast", max_blocks=1)[2]
    assert_close(launch.result, expected, dtype)
    assert launch.result.is_contiguous()
    # The row kernel ran: its item count (one block of 256 threads loops over them) is not the
    # one-pixel kernel's (one item per (n, g, i, j)).
    items, _ = grad_weight_row_items(problem, dtype)
    out_h, out_w = problem.output_size()
    one_pixel_items = problem.batch * problem.groups * out_h * out_w
    assert -(-items // 256) != -(-one_pixel_items // 256)  # the check below can tell
    assert launch.most_items_per_thread == -(-items // 256)
    assert launch.pack == 16 // dtype.itemsize


def direct_grad_weight(problem, x, grad):
    """grad_weight by one product and channel sum per tap (float64): cheap where the unfold
    reference would need gigabytes."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = problem.pairs()
    out_h, out_w = problem.output_size()
    b, c, g = problem.batch, problem.channels, problem.groups
    padded = torch.nn.functional.pad(x.double(), (pw, pw, ph, ph))
    grad = grad.double()
    result = torch.empty(b, g, kh, kw, out_h, out_w, dtype=torch.float64)
    for u in range(kh):
        for v in range(kw):
            window = padded[:, :, u * dh:u * dh + (out_h - 1) * sh + 1:sh,
                            v * dw:v * dw + (out_w - 1) * sw + 1:sw]
            result[:, :, u, v] = (grad * window).view(b, g, c // g, out_h, out_w).sum(2)
    return result


def test_grad_weight_row_kernel_splits_kernel_rows_evenly():
    # Enough (n, row, block, group) items that an item covers 2 of the 7 kernel rows (4 slices:
    # rows 0-1, 2-3, 4-5, 6): the loop over an item's kernel rows advances input and result.
    problem = Problem(12000, 16, 1, (4, 8), (7, 3), stride=(1, 1), padding=(3, 1))
    items, rows_per_item = grad_weight_row_items(problem, torch.float32)
    assert rows_per_item == 2 and items == 4 * 12000 * 4 * 2
    x, w, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    stride, padding, dilation = options_of(problem)
    launch = emulation.Launch(*emulation.ops().grad_weight(
        grad, x, 1, [7, 3], stride, padding, dilation, "fast", NO_GRID_LIMIT, None))
    assert launch.most_items_per_thread == 1 and launch.pack == 4
    assert_close(launch.result, direct_grad_weight(problem, x, grad), torch.float32)


# Problems the channels-first row kernels (csrc/cuda/fast/rows_channels_first.h) take: as
# ROW_PROBLEMS, plus rows as short as the 4 pixels of a thread, a width of 4 + 3 (the last block
# shifted by 3; float32 grad_weight's rows of 5 are shorter than its blocks of 7), 24 channels
# per group (3 chunks of 8) and height stride and dilation with padding. In each, the items at
# the tensor's two ends take the one-pixel kernels' code.
CF_ROW_PROBLEMS = ROW_PROBLEMS + [
    Problem(24, 16, 2, (4, 4), (3, 3)),
    Problem(3, 48, 2, (7, 7), (7, 7), padding=(3, 2)),
    Problem(8, 16, 2, (8, 12), (3, 3), stride=(3, 1), padding=(2, 1), dilation=(2, 1)),
    Problem(4, 16, 2, (5, 15), (3, 7)),  # float32 grad_weight's blocks of 7: the last shifted by 6
]


def cf_row_kernel_items(problem, dtype):
    """Work items of the channels-first row kernels: forward and grad_input (n, g, chunk of 8
    channels, row, block of 4 pixels; float64: 4 channels, 2 pixels); grad_weight (n, g, kernel
    row, row, block of 4 pixels; float32 with 7 taps per row: 7; float64: 2), None where its
    rows are shorter than a block (the one-pixel kernel runs)."""
    chunk, pixels = (4, 2) if dtype == torch.float64 else (8, 4)
    gw_pixels = {torch.float64: 2, torch.float32: 7 if problem.kernel[1] == 7 else 4}.get(dtype, 4)
    out_h, out_w = problem.output_size()
    in_h, in_w = problem.size
    chunks = problem.batch * problem.channels // chunk
    gw_items = problem.batch * problem.groups * problem.kernel[0] * out_h * -(-out_w // gw_pixels)
    return (chunks * out_h * -(-out_w // pixels), chunks * in_h * -(-in_w // pixels),
            gw_items if out_w >= gw_pixels else None)


TILE_BYTES = 80 * 1024  # fast/tiles_channels_first.h, kMaxTileBytes


def cf_tiles(problem, op):
    """Tiles of the channels-first tile kernels (2-byte types) for op 0, 1, 2 (forward,
    grad_input, grad_weight), None where they do not apply: bands of result rows as tall as fit
    TILE_BYTES of float rows (4·quads + KW − 1 floats, rounded up to 4), evened out; forward and
    grad_input tiles take as many chunks of 8 channels as keep their items (chunk, row, quad)
    within 256 threads, or down to half as many where that leaves fewer empty chunks in the last
    tile; grad_weight tiles one group with its input and grad_output rows."""
    (kh, kw), (sh, sw), _, (dh, dw) = problem.pairs()
    per_group = problem.channels // problem.groups
    if sw != 1 or dw != 1 or kw not in (3, 7) or (op < 2 and per_group % 8) or (op == 1 and sh != 1):
        return None
    rows_total, cols = problem.size if op == 1 else problem.output_size()
    quads = -(-cols // 4)
    row_floats = -(-(4 * quads + kw - 1) // 4) * 4
    if row_floats > 256:
        return None

    def window_rows(rows):
        return rows + (kh - 1) * dh if op == 1 else (rows - 1) * sh + (kh - 1) * dh + 1

    def tile_bytes(rows, chunks):
        if op == 2:
            return per_group * (window_rows(rows) * row_floats + rows * 4 * quads) * 4
        return chunks * 8 * window_rows(rows) * row_floats * 4

    tallest = max((r for r in range(1, rows_total + 1) if tile_bytes(r, 1) <= TILE_BYTES), default=0)
    if tallest == 0:
        return None
    bands = -(-rows_total // tallest)
    rows = -(-rows_total // bands)
    if op == 2:
        return problem.batch * problem.groups * bands
    chunks_total = problem.channels // 8
    chunks = min(max(256 // (rows * quads), 1), chunks_total)
    while chunks > 1 and tile_bytes(rows, chunks) > TILE_BYTES:
        chunks -= 1
    chunks = min(range(-(-chunks // 2), chunks + 1),
                 key=lambda k: (-(-chunks_total // k) * k - chunks_total, -k))
    return problem.batch * -(-chunks_total // chunks) * bands


def cf_kernel_trips(problem, dtype):
    """What an emulated launch on one block reports as its most items per thread, per op: the
    tiles of the tile kernels (2-byte types, where they apply), else the row kernels' items over
    256 threads (None where grad_weight's rows are shorter than its blocks)."""
    trips = [None if items is None else -(-items // 256)
             for items in cf_row_kernel_items(problem, dtype)]
    if dtype.itemsize == 2:
        trips = [trip if cf_tiles(problem, op) is None else cf_tiles(problem, op)
                 for op, trip in enumerate(trips)]
    return trips


# CF_ROW_PROBLEMS, plus rows too wide for a tile (the half types take the row kernels) and
# images of several bands and channel blocks with a partial last band.
CF_TILE_PROBLEMS = CF_ROW_PROBLEMS + [
    Problem(1, 16, 2, (3, 260), (3, 3)),
    Problem(2, 48, 3, (90, 30), (7, 7)),
    Problem(2, 32, 1, (61, 5), (3, 7), stride=(2, 1), dilation=(3, 1), padding=(2, 3)),
]


@pytest.mark.parametrize("weight_layout", ["contiguous", "conv_nhwc_view"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=str)
@pytest.mark.parametrize("problem", CF_TILE_PROBLEMS, ids=str)
def test_channels_first_row_kernels_match_reference(problem, dtype, weight_layout):
    x, w, grad = random_problem_tensors(problem, dtype, torch.contiguous_format)
    w = weight_in_layout(w, weight_layout)
    expected = reference_results(problem, x, w, grad)
    launches = emulated_launches(problem, x, w, grad, "fast", max_blocks=1)
    for launch, wanted in zip(launches, expected):
        assert_close(launch.result, wanted, dtype)
    # The row or tile kernels ran: one block of 256 threads loops over their items (or tiles),
    # whose counts are not those of the one-pixel kernels (16 channels, or a row of up to 8 taps,
    # at one pixel).
    out_h, out_w = problem.output_size()
    sixteens = problem.batch * problem.groups * -(-problem.channels // problem.groups // 16)
    one_pixel_items = (sixteens * out_h * out_w, sixteens * problem.size[0] * problem.size[1],
                       problem.batch * problem.groups * problem.kernel[0] * out_h * out_w)
    told = []
    for launch, trips, pixel_items in zip(launches, cf_kernel_trips(problem, dtype),
                                          one_pixel_items):
        if trips is None:  # grad_weight on rows shorter than its blocks
            assert launch.most_items_per_thread == -(-pixel_items // 256)
            continue
        assert launch.most_items_per_thread == trips
        told.append(trips != -(-pixel_items // 256))  # whether the check can tell
    # (float64 forward and grad_input items hold 4 channels × 2 pixels, half the elements of the
    # one-pixel kernels' 16 channels: for few items their counts may agree; so may a few tiles.)
    assert told[-1] or dtype.itemsize == 2
    assert dtype in (torch.float64, torch.float16, torch.bfloat16) or all(told)
    assert [launch.pack for launch in launches] == [1, 1, 1]


def test_tile_kernels_take_the_problems_they_are_for():
    """The RedNet shapes take tiles (forward and grad_input: one band of rows per image but
    stage 1's two, several chunks per tile; grad_weight: bands of 7, 14, 14 and 7 rows), the
    cases outside the tile kernels none."""
    for size, channels, groups, bands, gw_bands in [(56, 64, 4, 2, 8), (28, 128, 8, 1, 2),
                                                    (14, 256, 16, 1, 1), (7, 512, 32, 1, 1)]:
        problem = Problem(2, channels, groups, (size, size), (7, 7))
        assert cf_tiles(problem, 2) == 2 * groups * gw_bands
        assert 2 * bands <= cf_tiles(problem, 0) == cf_tiles(problem, 1) <= 2 * channels // 8 * bands
    assert cf_tiles(Problem(2, 16, 2, (9, 11), (3, 5)), 0) is None  # kernel width 5
    assert cf_tiles(Problem(2, 16, 2, (9, 11), (3, 3), stride=(2, 1)), 1) is None
    assert cf_tiles(Problem(2, 16, 4, (9, 11), (3, 3)), 0) is None  # 4 channels per group
    assert cf_tiles(Problem(2, 16, 4, (9, 11), (3, 3)), 2) == 2 * 4  # grad_weight reads no weight
    assert cf_tiles(Problem(2, 16, 2, (9, 11), (3, 3), stride=(1, 2)), 2) is None


def test_tile_kernel_blocks_write_exactly_their_tiles():
    """Two blocks take alternate tiles; with only the first block's threads running, exactly
    its tiles' results are written (the others stay NaN), equal to the full launch's."""
    problem = REALISTIC_PROBLEMS[0]  # 28², 64 channels: 8 tiles of one chunk per image
    x, w, grad = random_problem_tensors(problem, torch.bfloat16, torch.contiguous_format)
    full = emulated_launches(problem, x, w, grad, "fast", max_blocks=2)
    first_block = emulated_launches(problem, x, w, grad, "fast", max_blocks=2, threads_limit=256)
    assert [launch.most_items_per_thread for launch in full] == [8, 8, 8]
    # forward, grad_input: tile n·8 + chunk, so block 0 has the even chunks of 8 channels;
    # grad_weight: tile (n·4 + g)·2 + band (bands of 14 rows), so block 0 has the first bands.
    even_chunks = (torch.arange(64) // 8 % 2 == 0).view(1, 64, 1, 1)
    first_rows = (torch.arange(28) < 14).view(1, 1, 1, 1, 28, 1)
    assert not any(torch.isnan(launch.result).any() for launch in full)
    for all_blocks, block0, expected in zip(full, first_block,
                                            [even_chunks, even_chunks, first_rows]):
        written = ~torch.isnan(block0.result)
        assert torch.equal(written, expected.expand_as(written))
        assert torch.equal(block0.result[written], all_blocks.result[written])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_tile_kernels_poisoned_shared_memory_never_reaches_a_result(dtype):
    """The emulation fills each tile's shared memory with NaN before its fill: every value
    the threads read was written by the fill (results finite on finite inputs, at the RedNet
    stage-4 and stage-1 shapes, partial quads included)."""
    for problem in [Problem(2, 64, 4, (7, 7), (7, 7)), Problem(1, 16, 1, (56, 54), (7, 7))]:
        x, w, grad = random_problem_tensors(problem, dtype, torch.contiguous_format)
        launches = emulated_launches(problem, x, w, grad, "fast", max_blocks=3)
        assert [launch.most_items_per_thread for launch in launches] == [
            -(-cf_tiles(problem, op) // 3) for op in range(3)]
        for launch, wanted in zip(launches, reference_results(problem, x, w, grad)):
            assert torch.isfinite(launch.result).all()
            assert_close(launch.result, wanted, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_channels_first_row_kernels_propagate_nan_and_inf_like_the_reference(dtype):
    x, w, grad = tensors_with_nan_and_inf(dtype, torch.contiguous_format)
    launches = emulated_launches(NAN_PROBLEM, x, w, grad, "fast", max_blocks=1)
    assert [launch.most_items_per_thread for launch in launches] == cf_kernel_trips(NAN_PROBLEM,
                                                                                    dtype)
    assert_nan_and_inf_like_the_reference(launches, x, w, grad, dtype)


def test_channels_last_falls_back_to_single_channels():
    # 6 channels per group: no 16-byte pack of float32 fits inside a group.
    problem = Problem(1, 12, 2, (6, 5), (3, 3))
    x, w, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    results, packs = emulated_results(problem, x, w, grad)
    assert packs == (1, 1, 1)
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        assert_close(actual, wanted, torch.float32)


def test_misaligned_channels_last_storage_falls_back_to_single_channels():
    # A view that starts one element into its storage: 16-byte packs would be misaligned.
    problem = Problem(1, 16, 1, (5, 6), (3, 3))
    x, w, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    storage = torch.empty(x.numel() + 1, dtype=torch.float32)
    shifted = storage[1:].as_strided(x.shape, x.stride())
    shifted.copy_(x)
    assert shifted.is_contiguous(memory_format=torch.channels_last) and shifted.data_ptr() % 16 != 0
    results, packs = emulated_results(problem, shifted, w, grad)
    assert packs[0] == 1 and packs[2] == 1
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        assert_close(actual, wanted, torch.float32)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", [
    Problem(1, 40, 1, (6, 7), (3, 3)),              # 40 channels per group: chunks of 16, 16, 8
    Problem(2, 8, 2, (5, 13), (3, 11), padding=(1, 4)),  # 11 taps per row: tap chunks of 8 and 3
    Problem(1, 4, 4, (9, 9), (1, 9), dilation=(1, 2)),
], ids=str)
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_emulated_chunk_remainders(problem, layout, kernels):
    x, w, grad = random_problem_tensors(problem, torch.float64, layout)
    results, _ = emulated_results(problem, x, w, grad, kernels, max_blocks=3)
    for actual, wanted in zip(results, reference_results(problem, x, w, grad)):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
def test_emulated_padding_taps_propagate_nan_like_the_reference(layout):
    problem = Problem(1, 16, 1, (4, 5), (3, 3))
    x, w, grad = random_problem_tensors(problem, torch.float32, layout)
    w = w.clone()
    w[0, 0, 0, 0, 0, 0] = float("nan")  # the top-left tap of pixel (0, 0) reads the padding
    results, _ = emulated_results(problem, x, w, grad)
    expected = reference_results(problem, x, w, grad)
    assert torch.isnan(results[0][0, :, 0, 0]).all()
    for actual, wanted in zip(results, expected):
        torch.testing.assert_close(actual.double(), wanted, rtol=1e-4, atol=1e-4, equal_nan=True)


def test_emulated_ops_validate_their_arguments():
    emulated = emulation.ops()
    problem = Problem(1, 4, 2, (5, 5), (3, 3))
    x, w, _ = random_problem_tensors(problem, torch.float32, torch.contiguous_format)
    stride, padding, dilation = options_of(problem)
    with pytest.raises(ValueError, match="max_blocks"):
        emulated.forward(x, w, stride, padding, dilation, "fast", 0)
    with pytest.raises(ValueError, match="threads_limit"):
        emulated.forward(x, w, stride, padding, dilation, "fast", 1, -1)
    with pytest.raises(ValueError, match="weight"):
        emulated.forward(x, w[..., :-1], stride, padding, dilation, "fast", 1)


# ---- the emulation's own instruments: NaN-poisoned results, operands read in place ------------

@pytest.mark.parametrize("max_blocks", [NO_GRID_LIMIT, 1], ids=["full_grid", "one_block"])
@pytest.mark.parametrize("threads_limit", [0, 100])
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=str)
def test_emulated_results_are_nan_exactly_where_no_thread_wrote(dtype, layout, threads_limit,
                                                                 max_blocks):
    # The baseline kernels write item k to the result element at flat offset k (NCHW, the
    # logical order). A grid of W warps deals the items out 32 at a time (plumbing.h): item k is
    # lane k % 32 of warp-item k // 32, which goes to warp w = (k // 32) mod W, warp w // blocks
    # of block w % blocks. With only the first threads_limit threads running, the others'
    # elements must come back NaN: the result buffer is poisoned before the launch, so no
    # unwritten element can pass a test.
    problem = REALISTIC_PROBLEMS[5]  # every op has more than 256 items: one block loops
    x, w, grad = random_problem_tensors(problem, dtype, layout)
    launches = emulated_launches(problem, x, w, grad, "baseline", max_blocks, threads_limit)
    for launch, wanted in zip(launches, reference_results(problem, x, w, grad)):
        flat, wanted = launch.result.reshape(-1), wanted.reshape(-1)
        assert flat.numel() > 256
        blocks = min(-(-flat.numel() // 32), max_blocks)
        item = torch.arange(flat.numel())
        warp = item // 32 % (blocks * 8)
        thread = warp % blocks * 256 + warp // blocks * 32 + item % 32
        written = thread < threads_limit
        assert torch.equal(torch.isnan(flat), ~written)
        assert_close(flat[written], wanted[written], dtype)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
def test_fast_kernels_leave_nan_where_no_thread_wrote(layout):
    # The fast kernels' items cover several elements each (their mapping is theirs to change):
    # with half the threads of one block running, part of each result is written, and exactly
    # the written part is free of NaN and equal to the full launch's.
    problem = REALISTIC_PROBLEMS[1]  # 16 channels per group: 16-byte packs in channels_last
    x, w, grad = random_problem_tensors(problem, torch.float32, layout)
    full = emulated_launches(problem, x, w, grad, "fast", max_blocks=1)
    half = emulated_launches(problem, x, w, grad, "fast", max_blocks=1, threads_limit=128)
    none = emulated_launches(problem, x, w, grad, "fast", max_blocks=1, threads_limit=0)
    for all_threads, some, no_thread in zip(full, half, none):
        assert all_threads.most_items_per_thread >= 2
        assert not torch.isnan(all_threads.result).any()
        assert torch.isnan(no_thread.result).all()
        written = ~torch.isnan(some.result)
        assert 0 < written.sum() < written.numel()
        assert torch.equal(some.result[written], all_threads.result[written])


# The baseline set reads image-shaped operands in NCHW, so it copies a channels_last one (an
# image-sized copy); the fast set reads them in the call's own layout. Neither copies the weight,
# which is G*KH*KW/C times the output (about 3x in a RedNet layer).
def image_read_in_place(kernels, layout):
    return kernels == "fast" or layout == torch.contiguous_format


@pytest.mark.parametrize("weight_layout", WEIGHT_LAYOUTS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("problem, dtype", [
    (REALISTIC_PROBLEMS[1], torch.float32),  # stride (1, 2), 16 channels per group: packs
    (REALISTIC_PROBLEMS[4], torch.bfloat16),  # a late RedNet stage: 7x7 kernels on 7x7
], ids=str)
def test_emulated_ops_read_the_weight_in_place(problem, dtype, kernels, layout, weight_layout):
    x, w, grad = random_problem_tensors(problem, dtype, layout)
    w = weight_in_layout(w, weight_layout)
    assert w.is_contiguous() == (weight_layout == "contiguous")
    forward, grad_input, grad_weight = launches = emulated_launches(problem, x, w, grad, kernels)
    for launch, wanted in zip(launches, reference_results(problem, x, w, grad)):
        assert_close(launch.result, wanted, dtype)
    assert forward.second_in_place and grad_input.second_in_place  # the weight, never copied
    image = image_read_in_place(kernels, layout)
    assert (forward.first_in_place, grad_input.first_in_place) == (image, image)
    assert (grad_weight.first_in_place, grad_weight.second_in_place) == (image, image)


def test_channels_last_layer_hands_the_op_a_conv_view_weight(monkeypatch):
    """The weight an Involution layer of a channels_last model passes to the op is the
    conv_nhwc_view layout the tests above cover, and the emulated kernels read it in place."""
    problem = Problem(2, 32, 2, (9, 11), (7, 7))
    layer = involution_cuda.Involution(32, kernel_size=7, group_channels=16)
    layer = layer.to(memory_format=torch.channels_last)
    x, _, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    calls = []
    real = involution_cuda.module.call_op

    def recording(input, weight, *args):
        calls.append((input, weight))
        return real(input, weight, *args)

    monkeypatch.setattr(involution_cuda.module, "call_op", recording)
    layer(x)
    [(x_seen, w)] = calls
    w = w.detach()  # same storage and strides
    assert x_seen is x
    assert w.shape == (2, 2, 7, 7, 9, 11) and not w.is_contiguous()
    assert w.stride() == weight_in_layout(torch.empty(w.shape), "conv_nhwc_view").stride()
    for kernels in KERNEL_SETS:
        launches = emulated_launches(problem, x, w, grad, kernels)
        for launch, wanted in zip(launches, reference_results(problem, x, w, grad)):
            assert_close(launch.result, wanted, torch.float32)
        assert launches[0].second_in_place and launches[1].second_in_place


ROOT = Path(__file__).resolve().parent.parent
NVCC = shutil.which("nvcc", path=os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin")) \
    or shutil.which("nvcc")


@pytest.mark.skipif(NVCC is None, reason="needs nvcc (the CUDA toolkit), no GPU")
def test_cuda_half_types_on_the_host(tmp_path):
    """The GPU's own half types (__half, __nv_bfloat16) through the fast kernels' pair
    conversions and channels_last functors, compiled by nvcc and run on the host."""
    binary = tmp_path / "half_pack_check"
    # A separate program: it takes no preloaded runtime of a sanitized run of the suite.
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    subprocess.run([NVCC, "-std=c++17", "-O2", "-D__CUDA_NO_HALF_OPERATORS__",
                    "-D__CUDA_NO_HALF_CONVERSIONS__", "-D__CUDA_NO_BFLOAT16_CONVERSIONS__",
                    "-D__CUDA_NO_HALF2_OPERATORS__", "-Werror", "all-warnings", f"-I{ROOT / 'csrc'}",
                    str(ROOT / "tests" / "half_pack_check.cu"), "-o", str(binary)], check=True, env=env)
    result = subprocess.run([str(binary)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all half checks passed" in result.stdout


# ---- the kernel choice --------------------------------------------------------------------------

@pytest.mark.parametrize("kernels", ["auto", *KERNEL_SETS])
def test_backward_runs_the_kernels_of_its_forward(kernels):
    """Every op of a forward, its backward and its double backward carries the forward's choice."""
    choices = forward_and_backward_choices(kernels, create_graph=True)
    names = {name for name, _ in choices}
    assert names == {"involution", "involution_grad_input", "involution_grad_weight"}
    assert {choice for _, choice in choices} == {kernels}


def test_kernel_choice_is_per_call_across_threads():
    """Threads choosing different kernel sets at the same time each get their own, forward and
    backward: the choice is an argument of the call, no setting is shared."""
    kernel_sets = ["baseline", "fast", "auto", "fast"]
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("kernel_choice_probe.py")),
                             *kernel_sets], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout) == [[kernels] for kernels in kernel_sets]


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_cpu_results_do_not_depend_on_the_cuda_choice(kernels):
    problem = REALISTIC_PROBLEMS[1]
    x, w = problem.tensors(dtype=torch.float32)
    out = involution_cuda.involution(x, w, **problem.options, kernels=kernels)
    assert_close(out, reference.involution(x.double(), w.double(), **problem.options), torch.float32)


# ---- on a GPU: both kernel sets against the reference ------------------------------------------

@needs_gpu
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_cuda_ops_do_not_copy_a_conv_view_weight(kernels):
    # One group per channel makes the weight 49x an image (float32, 128 KiB each), so a copy of
    # it would dwarf all the op allocates: its result, and for the baseline set an NCHW copy of
    # the channels_last image operand and the NCHW result before it is laid out channels_last.
    problem = Problem(2, 16, 16, (32, 32), (7, 7))
    x, w, grad = random_problem_tensors(problem, torch.float32, torch.channels_last)
    x, grad = x.cuda(), grad.cuda()
    w = weight_in_layout(w.cuda(), "conv_nhwc_view")
    assert not w.is_contiguous()
    image_bytes = x.numel() * x.element_size()  # input, grad_output and both results alike
    weight_bytes = w.numel() * w.element_size()
    assert 3 * image_bytes < weight_bytes / 10
    ops = torch.ops.involution_cuda
    stride, padding, dilation = options_of(problem)
    calls = [lambda: ops.involution(x, w, stride, padding, dilation, kernels),
             lambda: ops.involution_grad_input(grad, w, list(x.shape[2:]), stride, padding,
                                               dilation, kernels)]
    for call in calls:
        call()  # first-call initialisation stays out of the measurement
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        result = call()
        torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - before
        assert result.numel() * result.element_size() == image_bytes
        assert image_bytes <= extra <= 3 * image_bytes, (extra, image_bytes, weight_bytes)
        del result


@needs_gpu
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("problem", GRADCHECK_PROBLEMS, ids=str)
def test_cuda_gradcheck_both_kernels(problem, layout, kernels):
    x, w = problem.tensors(dtype=torch.float64, device="cuda", requires_grad=True)
    x = x.detach().contiguous(memory_format=layout).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: involution_cuda.involution(a, b, **problem.options, kernels=kernels), (x, w))


@needs_gpu
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("problem", REALISTIC_PROBLEMS, ids=str)
def test_cuda_both_kernels_match_reference(problem, dtype, layout, kernels):
    x, w, grad = random_problem_tensors(problem, dtype, layout)
    expected = reference_results(problem, x, w, grad)
    out, grad_x, grad_w = cuda_results(problem, x, w, grad, kernels)
    torch.cuda.synchronize()
    assert out.is_contiguous(memory_format=layout) and grad_x.is_contiguous(memory_format=layout)
    for actual, wanted in zip((out, grad_x, grad_w), expected):
        assert_close(actual, wanted, dtype)


@needs_gpu
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=["nchw", "nhwc"])
def test_cuda_kernels_agree_with_their_emulation(layout, kernels):
    # The GPU runs the same per-thread code as the emulation: float64 results agree to rounding.
    problem = REALISTIC_PROBLEMS[0]
    x, w, grad = random_problem_tensors(problem, torch.float64, layout)
    emulated = emulated_results(problem, x, w, grad, kernels)[0]
    for actual, wanted in zip(cuda_results(problem, x, w, grad, kernels), emulated):
        torch.testing.assert_close(actual.cpu(), wanted, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("storage", ["aligned", "odd_offset", "even_row_stride"])
@pytest.mark.parametrize("problem", ROW_PROBLEMS, ids=str)
def test_bfloat16_row_forward_reads_weight_pairs_only_where_aligned(problem, storage):
    # The bfloat16 forward row kernel loads its weights two pixels at a time where every pair is
    # 4-byte aligned (rows.h: weight_pairs_aligned: even output widths, even strides, an aligned
    # base), else one at a time; the emulation throws on a misaligned pair, so a wrong choice
    # fails here: odd widths (also with the rows padded to an even stride) and the odd offset
    # must take the single loads.
    x, w, grad = random_problem_tensors(problem, torch.bfloat16, torch.channels_last)
    if storage == "even_row_stride":
        width = w.shape[-1] + w.shape[-1] % 2
        weight = torch.zeros(*w.shape[:-1], width, dtype=w.dtype)[..., :w.shape[-1]]
    else:
        offset = int(storage == "odd_offset")
        weight = torch.zeros(w.numel() + offset, dtype=w.dtype)[offset:].view(w.shape)
    weight.copy_(w)
    expected = reference_results(problem, x, weight, grad)[0]
    stride, padding, dilation = options_of(problem)
    launch = emulation.Launch(*emulation.ops().forward(x, weight, stride, padding, dilation,
                                                       "fast", NO_GRID_LIMIT, None))
    assert_close(launch.result, expected, torch.bfloat16)
    assert launch.second_in_place and launch.pack == 8
