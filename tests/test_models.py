"""RedNet: the paper's sizes, the official parameter names, both uses, both backends, learning."""
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from involution_cuda import Involution
from involution_cuda.models import ARCHITECTURES, RedNet, convert_official_state_dict, rednet50

# Published sizes (paper, Table 2; the official README's table): parameters (millions) and
# multiply-adds (billions) at 224x224.
PAPER = {26: (9.23, 1.73), 38: (12.39, 2.22), 50: (15.54, 2.71), 101: (25.65, 4.74), 152: (33.99, 6.79)}


def count_multiply_adds(model, size=224):
    """Multiply-adds of one forward pass, counted on the meta device by FlopCounterMode (the
    involution ops through their registered formulas), and those of the involution ops alone."""
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, size, size, device="meta"))
    per_op = counter.get_flop_counts()["Global"]
    involution = sum(v for op, v in per_op.items() if "involution_cuda" in str(op))
    return counter.get_total_flops() / 2, involution / 2


# Exact parameter counts (counted once from the models, and equal to the count of the official
# structure, official_rednet_keys). Rounded to 0.01M they are the paper's figures, but for
# RedNet-152: 33.98M, where the official README prints 33.99M (5.4k more than its structure).
PARAMETERS = {26: 9_233_166, 38: 12_386_986, 50: 15_540_806, 101: 25_652_950, 152: 33_984_582}
ROUNDED_MILLIONS = {**{depth: paper[0] for depth, paper in PAPER.items()}, 152: 33.98}


@pytest.mark.parametrize("depth", sorted(PAPER))
def test_parameters_match_paper(depth):
    with torch.device("meta"):
        model = RedNet(depth)
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAMETERS[depth]
    assert round(count / 1e6, 2) == ROUNDED_MILLIONS[depth]
    assert abs(count / 1e6 - PAPER[depth][0]) < 0.006
    official = official_rednet_keys(depth)
    assert count == sum(math.prod(shape) for key, shape in official.items()
                        if not key.endswith(("running_mean", "running_var", "num_batches_tracked")))


@pytest.mark.parametrize("depth", sorted(PAPER))
def test_multiply_adds_near_paper(depth):
    with torch.device("meta"):
        model = RedNet(depth).eval()
    # The involution ops are counted exactly: B*C*Ho*Wo*KH*KW per layer, from each layer's shapes.
    expected = []
    for module in model.modules():
        if isinstance(module, Involution):
            module.register_forward_hook(lambda layer, args, out: expected.append(
                out.numel() * layer.kernel_size[0] * layer.kernel_size[1]))
    total, involution = count_multiply_adds(model)
    assert involution == sum(expected) > 0
    # The paper's counter takes multiply-adds of convolutions and linear layers, but counts the
    # involution's multiplications and additions (unfold formulation: a product, then a sum)
    # separately: twice the op's multiply-adds.
    paper_convention = total + involution
    assert paper_convention / 1e9 == pytest.approx(PAPER[depth][1], rel=0.01)


def official_rednet_keys(depth):
    """The official mmcls RedNet checkpoint's keys and shapes, derived from the official code's
    structure (ConvModule/involution/Bottleneck/ResLayer naming) independently of RedNet."""
    keys = {}

    def conv(name, cin, cout, k, bias=False):
        keys[f"{name}.weight"] = (cout, cin, k, k)
        if bias:
            keys[f"{name}.bias"] = (cout,)

    def bn(name, c):
        keys.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
                     f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})

    def involution(name, c, k):
        conv(f"{name}.conv1.conv", c, c // 4, 1)
        bn(f"{name}.conv1.bn", c // 4)
        conv(f"{name}.conv2.conv", c // 4, k * k * (c // 16), 1, bias=True)

    conv("backbone.stem.0.conv", 3, 32, 3)
    bn("backbone.stem.0.bn", 32)
    involution("backbone.stem.1", 32, 3)
    bn("backbone.stem.2", 32)
    conv("backbone.stem.4.conv", 32, 64, 3)
    bn("backbone.stem.4.bn", 64)
    cin, cout = 64, 256
    for stage, blocks in enumerate(ARCHITECTURES[depth]):
        for b in range(blocks):
            name, mid = f"backbone.layer{stage + 1}.{b}", cout // 4
            conv(f"{name}.conv1", cin if b == 0 else cout, mid, 1)
            bn(f"{name}.bn1", mid)
            involution(f"{name}.conv2", mid, 7)
            bn(f"{name}.bn2", mid)
            conv(f"{name}.conv3", mid, cout, 1)
            bn(f"{name}.bn3", cout)
            if b == 0:
                conv(f"{name}.downsample.0", cin, cout, 1)
                bn(f"{name}.downsample.1", cout)
        cin, cout = cout, cout * 2
    keys["head.fc.weight"], keys["head.fc.bias"] = (1000, 2048), (1000,)
    return keys


def test_rednet50_state_dict_matches_official_keys():
    with torch.device("meta"):
        model = rednet50()
    official = official_rednet_keys(50)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: v for k, v in
                    ((k.replace("backbone.", "").replace("head.", ""), v) for k, v in official.items())}


def test_official_checkpoint_loads_strict():
    checkpoint = {"meta": {}, "state_dict": {
        k: torch.randn(s) if s else torch.tensor(7) for k, s in official_rednet_keys(26).items()}}
    model = RedNet(26)
    model.load_state_dict(convert_official_state_dict(checkpoint), strict=True)
    assert torch.equal(model.fc.weight, checkpoint["state_dict"]["head.fc.weight"])
    assert torch.equal(model.stem[1].conv2.conv.bias, checkpoint["state_dict"]["backbone.stem.1.conv2.conv.bias"])


def tiny(**kwargs):
    return RedNet(26, stem_channels=16, base_channels=8, group_channels=8, **kwargs)


def test_backbone_returns_multiscale_features():
    model = tiny(num_classes=None, out_indices=(0, 2, 3)).eval()
    features = model(torch.randn(2, 3, 65, 47))
    assert [tuple(f.shape) for f in features] == [(2, 32, 17, 12), (2, 128, 5, 3), (2, 256, 3, 2)]


def test_reference_backend_and_conv_mixer():
    torch.manual_seed(0)
    native, reference = tiny(num_classes=5).eval(), tiny(num_classes=5, backend="reference").eval()
    reference.load_state_dict(native.state_dict())
    x = torch.randn(2, 3, 40, 36)
    torch.testing.assert_close(native(x), reference(x), rtol=1e-4, atol=1e-5)
    resnet = tiny(num_classes=5, mixer="conv")
    assert not any(isinstance(m, Involution) for m in resnet.modules())
    # two stem convolutions, the stem mixer and one mixer in each of the 8 bottlenecks
    assert sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in resnet.modules()) == 3 + 8
    assert resnet(x).shape == (2, 5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="depth must be one of"):
        RedNet(34)
    with pytest.raises(ValueError, match="mixer must be one of"):
        RedNet(26, mixer="attention")


def test_tiny_rednet_learns():
    """Four classes told apart by where a bright square sits: the loss falls clearly."""
    torch.manual_seed(0)
    images, labels = torch.randn(64, 3, 32, 32) * 0.5, torch.arange(64) % 4
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[index, :, row * 16 + 4: row * 16 + 12, col * 16 + 4: col * 16 + 12] += 2.0
    model = tiny(num_classes=4, zero_init_residual=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(40):
        batch = torch.arange(16) + 16 * (step % 4)
        loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-8:]) / 8 < 0.5 * sum(losses[:4]) / 4, losses


def test_models_are_reachable_from_the_package_and_imported_lazily():
    code = ("import sys, involution_cuda; assert 'involution_cuda.models' not in sys.modules; "
            "assert involution_cuda.models.rednet26 is not None; "
            "assert 'involution_cuda.models' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
