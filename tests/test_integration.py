"""The op and the layer inside PyTorch's toolbox: AMP, channels_last, torch.compile, export,
TorchScript, ONNX, distributed data parallel."""
import copy
import os

import pytest
import torch
from torch import nn

import involution_cuda
from conftest import DEVICES, TOLERANCES, Problem, assert_close, needs_torch
from involution_cuda import Involution, Involution1d, reference
from involution_cuda.ops import ops
from official import official_forward

AUTOCAST_DTYPE = {"cpu": torch.bfloat16, "cuda": torch.float16}


def small_net():
    """Two involution layers (one strided) between convolutions, as in a RedNet stage."""
    return nn.Sequential(
        nn.Conv2d(4, 16, 1), Involution(16, 3, group_channels=4), nn.ReLU(),
        Involution(16, (5, 3), stride=2, group_channels=8), nn.Conv2d(16, 8, 1),
    )


class Bottleneck(nn.Module):
    """The RedNet bottleneck: 1x1 conv, involution (the 3x3 conv's place), 1x1 conv, residual."""

    def __init__(self, channels=32, stride=1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels // 2, 1, bias=False), nn.BatchNorm2d(channels // 2)
        self.inv = Involution(channels // 2, 7, stride=stride, group_channels=8)
        self.bn2 = nn.BatchNorm2d(channels // 2)
        self.conv3, self.bn3 = nn.Conv2d(channels // 2, channels, 1, bias=False), nn.BatchNorm2d(channels)
        self.down = nn.AvgPool2d(stride, ceil_mode=True) if stride > 1 else nn.Identity()

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.inv(out)))
        return torch.relu(self.bn3(self.conv3(out)) + self.down(x))


def grads_of(module, x, out):
    return torch.autograd.grad(out.square().sum(), [x, *module.parameters()])


# ---- AMP --------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_autocast_runs_op_in_autocast_dtype(device):
    dtype = AUTOCAST_DTYPE[device]
    problem = Problem(2, 32, 4, (13, 11), (3, 5), stride=(1, 2))
    x, w = problem.tensors(dtype=torch.float32, device=device)
    with torch.autocast(device, dtype=dtype):
        out = involution_cuda.involution(x, w, **problem.options)
    assert out.dtype == dtype
    expected = reference.involution(x.to(dtype).double(), w.to(dtype).double(), **problem.options)
    assert_close(out, expected, dtype)


def autocast_by_hand(net, x, dtype):
    """``small_net``'s forward as autocast runs it, with the casts written out: convolutions and
    involutions (official_forward) take inputs cast to ``dtype``, the rest runs as given."""
    for module in net:
        if isinstance(module, nn.Conv2d):
            x = nn.functional.conv2d(x.to(dtype), module.weight.to(dtype), module.bias.to(dtype))
        elif isinstance(module, Involution):
            x = official_forward(module, x, dtype)[0]
        else:
            x = module(x)
    return x


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_training_step(device):
    """Every gradient of an autocast step (input and each parameter) matches the same step
    computed by hand in the autocast dtype, to that dtype's tolerance of the gradient's scale."""
    dtype = AUTOCAST_DTYPE[device]
    torch.manual_seed(0)
    net = small_net().to(device)
    x = torch.randn(2, 4, 15, 9, device=device, requires_grad=True)
    by_hand = copy.deepcopy(net)
    with torch.autocast(device, dtype=dtype):
        out = net(x)
        out.float().square().mean().backward()
    expected = autocast_by_hand(by_hand, x, dtype)
    expected_grads = torch.autograd.grad(expected.float().square().mean(), [x, *by_hand.parameters()])
    assert out.dtype == dtype
    assert_close(out, expected, dtype)
    rtol, atol = TOLERANCES[dtype]
    grads = [x.grad, *(p.grad for p in net.parameters())]
    assert len(grads) == len(expected_grads) == 15
    for grad, wanted in zip(grads, expected_grads):
        assert grad.dtype == torch.float32
        scale = wanted.abs().max().item()
        torch.testing.assert_close(grad, wanted, rtol=rtol, atol=atol * scale)


def test_autocast_leaves_float64_alone():
    x, w = Problem(1, 4, 2, (5, 6), (3, 3)).tensors()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert involution_cuda.involution(x, w).dtype == torch.float64
        assert ops.involution(x, w, [1, 1], [1, 1], [1, 1]).dtype == torch.float64


def raw_ops_under_autocast(x, w, grad, problem):
    """The three raw ops on float32 tensors under autocast for their device."""
    _, stride, padding, dilation = problem.pairs()
    device = x.device.type
    with torch.autocast(device, dtype=AUTOCAST_DTYPE[device]):
        return (ops.involution(x, w, stride, padding, dilation),
                ops.involution_grad_input(grad, w, list(x.shape[2:]), stride, padding, dilation),
                ops.involution_grad_weight(grad, x, w.shape[1], list(w.shape[2:4]), stride,
                                           padding, dilation))


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_is_an_op_level_rule(device):
    """Raw ops (all three), the functional API and a compiled graph run in the autocast dtype,
    with the values of the ops on tensors cast by hand (each op has an Autocast kernel)."""
    dtype = AUTOCAST_DTYPE[device]
    problem = Problem(2, 16, 4, (13, 11), (3, 5), stride=(1, 2))
    x, w = problem.tensors(dtype=torch.float32, device=device)
    grad = torch.randn(problem.batch, problem.channels, *problem.output_size(), device=device)
    raw = raw_ops_under_autocast(x, w, grad, problem)
    assert [r.dtype for r in raw] == [dtype] * 3
    cast = [t.to(dtype) for t in (x, w, grad)]
    _, stride, padding, dilation = problem.pairs()
    expected = (ops.involution(cast[0], cast[1], stride, padding, dilation),
                ops.involution_grad_input(cast[2], cast[1], list(x.shape[2:]), stride, padding, dilation),
                ops.involution_grad_weight(cast[2], cast[0], w.shape[1], list(w.shape[2:4]), stride,
                                           padding, dilation))
    for got, want in zip(raw, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)

    with torch.autocast(device, dtype=dtype):
        functional = involution_cuda.involution(x, w, **problem.options)
    torch.testing.assert_close(functional, raw[0], rtol=0, atol=0)

    compiled = torch.compile(raw_ops_under_autocast, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(x, w, grad, problem), raw):
        assert got.dtype == dtype
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@needs_torch((2, 5), "torch.export of code that enters torch.autocast")
def test_exported_program_casts_like_eager():
    problem = Problem(2, 16, 4, (13, 11), (3, 5), stride=(1, 2))
    x, w = problem.tensors(dtype=torch.float32)
    _, stride, padding, dilation = problem.pairs()

    class Forward(nn.Module):
        def forward(self, x, w):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return ops.involution(x, w, stride, padding, dilation)

    exported = torch.export.export(Forward(), (x, w)).module()(x, w)
    assert exported.dtype == torch.bfloat16
    torch.testing.assert_close(exported, Forward()(x, w), rtol=0, atol=0)


# ---- channels_last ----------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_matches_and_keeps_format(device):
    problem = Problem(2, 16, 4, (11, 9), (3, 5), stride=(2, 1), dilation=(1, 2))
    x, w = problem.tensors(device=device)
    out_h, out_w = problem.output_size()
    # The module's layout: a channels_last span-conv output viewed as the weight.
    span = w.reshape(2, -1, out_h, out_w).contiguous(memory_format=torch.channels_last)
    w_cl = span.view(w.shape).requires_grad_()
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = involution_cuda.involution(x_cl, w_cl, **problem.options)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, reference.involution(x, w, **problem.options))
    grad_out = torch.randn_like(out)  # channels_last too
    grad_x, grad_w = torch.autograd.grad(out, (x_cl, w_cl), grad_out)
    assert grad_x.is_contiguous(memory_format=torch.channels_last)
    x_ref, w_ref = x.clone().requires_grad_(), w.clone().requires_grad_()
    expected = torch.autograd.grad(reference.involution(x_ref, w_ref, **problem.options), (x_ref, w_ref), grad_out)
    torch.testing.assert_close((grad_x, grad_w), expected)


def test_channels_last_makes_no_copies_on_cpu():
    problem = Problem(2, 16, 4, (11, 9), (3, 3))
    x, w = problem.tensors(dtype=torch.float32)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    w = w.reshape(2, -1, 11, 9).contiguous(memory_format=torch.channels_last).view(w.shape).requires_grad_()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        out = involution_cuda.involution(x, w)
        torch.autograd.grad(out, (x, w), torch.randn_like(out))
    names = {event.name for event in profile.events()}
    assert "involution_cuda::involution" in names
    assert not names & {"aten::copy_", "aten::clone", "aten::contiguous"}, names


# ---- torch.compile / export -------------------------------------------------------------------

# Every layer and option: 2-D and 1-D, stride 1 and 2, odd sizes, causal. (layer, input shape)
LAYERS = {
    "2d": (lambda: Involution(16, 3, group_channels=4), (2, 16, 11, 9)),
    "2d-stride2": (lambda: Involution(16, (5, 3), stride=2, group_channels=4), (2, 16, 11, 9)),
    "2d-stride2-dilation2": (lambda: Involution(16, 3, stride=(2, 1), dilation=2, group_channels=8),
                             (2, 16, 13, 7)),
    "1d": (lambda: Involution1d(16, 5, group_channels=4), (2, 16, 15)),
    "1d-stride2": (lambda: Involution1d(32, 7, stride=2), (2, 32, 15)),
    "1d-causal-stride2": (lambda: Involution1d(16, 5, stride=2, causal=True, group_channels=4),
                          (2, 16, 15)),
}


@pytest.mark.parametrize("name", LAYERS)
def test_compiled_layer_matches_eager_inductor(name):
    """Values and every gradient (input and parameters) of a training step, inductor vs eager, in
    float64 so that inductor's reordered reductions cannot hide a wrong gradient."""
    make, shape = LAYERS[name]
    torch._dynamo.reset()  # earlier compiles of the same forward must not fill dynamo's cache
    from torch._dynamo.testing import CompileCounterWithBackend

    torch.manual_seed(0)
    layer = make().double()
    compiled_layer = copy.deepcopy(layer)  # BatchNorm's running statistics move in each
    counter = CompileCounterWithBackend("inductor")
    compiled = torch.compile(compiled_layer, fullgraph=True, backend=counter)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    out, expected = compiled(x), layer(x)
    assert counter.frame_count >= 1  # inductor compiled it (no silent fallback to eager)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    got = torch.autograd.grad(out.square().sum(), [x, *compiled_layer.parameters()])
    torch.testing.assert_close(got, grads_of(layer, x, expected), rtol=1e-9, atol=1e-9)


@needs_torch((2, 11), "one graph for every size (2.5 and 2.6 recompile when a size's parity changes)")
@pytest.mark.parametrize("name", ["2d", "2d-stride2", "1d-stride2"])
def test_dynamic_shapes_compile_once(name):
    """torch.compile(dynamic=True) over changing batch and spatial sizes: one graph serves all
    (the ops' shape arguments are SymInt, their checks guard instead of specialising)."""
    from torch._dynamo.testing import CompileCounterWithBackend

    make, shape = LAYERS[name]
    torch._dynamo.reset()  # earlier compiles of the same forward must not fill dynamo's cache
    torch.manual_seed(0)
    layer = make().eval()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(layer, backend=counter, dynamic=True, fullgraph=True)
    compiles = []
    for batch, grow in ((2, 0), (3, 5), (4, 2), (5, 9)):
        size = (batch, shape[1], *(s + grow + i for i, s in enumerate(shape[2:])))
        x = torch.randn(size, requires_grad=True)
        out = compiled(x)
        torch.testing.assert_close(out, layer(x))
        torch.testing.assert_close(torch.autograd.grad(out.sum(), x)[0],
                                   torch.autograd.grad(layer(x).sum(), x)[0])
        compiles.append(counter.frame_count)
    # The first call compiles (dynamo may restart its analysis once, for BatchNorm's float
    # constants, and count it twice); no later size compiles again.
    assert compiles[0] in (1, 2) and compiles == compiles[:1] * 4, compiles


def test_compile_rednet_block_fullgraph():
    torch.manual_seed(0)
    block = Bottleneck(32, stride=2)
    x = torch.randn(2, 32, 13, 13, requires_grad=True)
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")
    out, expected = compiled(x), block(x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grads_of(block, x, out), grads_of(block, x, expected))


def test_export_runs():
    torch.manual_seed(0)
    net = small_net().eval()
    x = torch.randn(2, 4, 15, 9)
    program = torch.export.export(net, (x,))
    assert any("involution_cuda" in str(node.target) for node in program.graph.nodes)
    torch.testing.assert_close(program.module()(x), net(x))


# ---- TorchScript / ONNX -----------------------------------------------------------------------

def test_jit_trace_save_load(tmp_path):
    torch.manual_seed(0)
    net = small_net().eval()
    x = torch.randn(2, 4, 15, 9)
    traced = torch.jit.trace(net, (x,))
    traced.save(str(tmp_path / "net.pt"))
    loaded = torch.jit.load(str(tmp_path / "net.pt"))
    other = torch.randn(2, 4, 15, 9)
    torch.testing.assert_close(loaded(other), net(other))


DYNAMO_EXPORTER = needs_torch((2, 11), "torch's dynamo-based ONNX exporter (fails on 2.4 to 2.6)")


@pytest.mark.parametrize("dynamo", [False, pytest.param(True, marks=DYNAMO_EXPORTER)],
                         ids=["torchscript-exporter", "dynamo-exporter"])
def test_onnx_export_runs_in_onnxruntime(tmp_path, dynamo):
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = small_net().eval()
    x = torch.randn(2, 4, 15, 9)
    path = tmp_path / "net.onnx"
    if dynamo:
        pytest.importorskip("onnxscript")
    torch.onnx.export(net, (x,), str(path), input_names=["x"], dynamo=dynamo)
    model = onnx.load(str(path))
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}  # standard operators only
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {"x": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(result), net(x), rtol=1e-4, atol=1e-4)


# ---- distributed data parallel ----------------------------------------------------------------

def _ddp_worker(rank, init_file, data, result_file):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = nn.parallel.DistributedDataParallel(small_net())
    shard = data.chunk(2)[rank]
    model(shard).square().mean().backward()
    if rank == 0:
        torch.save([p.grad for p in model.module.parameters()], result_file)
    dist.barrier()  # both ranks finished before the group is torn down
    dist.destroy_process_group()
    # Skip interpreter teardown: torch's process-group threads occasionally abort there
    # ("terminate called without an active exception") after all work is done and saved.
    os._exit(0)


def test_ddp_two_processes_match_single_process(tmp_path):
    import torch.multiprocessing as mp

    data = torch.randn(4, 4, 15, 9)
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), data, str(tmp_path / "grads.pt")), nprocs=2)
    ddp_grads = torch.load(tmp_path / "grads.pt")
    # DDP averages the gradients of the per-process losses (BatchNorm sees each shard alone).
    torch.manual_seed(0)
    net = small_net()
    for shard in data.chunk(2):
        (net(shard).square().mean() / 2).backward()
    for ddp_grad, parameter in zip(ddp_grads, net.parameters()):
        torch.testing.assert_close(ddp_grad, parameter.grad, rtol=1e-5, atol=1e-6)
