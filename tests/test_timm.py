"""RedNet in timm's registry (involution_cuda.models.timm_registry): create_model, feature
extraction, official checkpoints through pretrained_cfg_overlay. Skips where timm cannot be
imported (a CPU torch with PyPI's torchvision cannot); scripts/check_timm.sh runs it where it can."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from involution_cuda.models import RedNet

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("rednet26", "rednet38", "rednet50", "rednet101", "rednet152")

try:
    import timm

    import involution_cuda.models.timm_registry as timm_registry
    TIMM_ERROR = None
except Exception as error:  # timm absent, or torchvision unusable with this torch
    timm = timm_registry = None
    TIMM_ERROR = f"{type(error).__name__}: {error}"

needs_timm = pytest.mark.skipif(timm is None, reason=f"timm cannot be imported ({TIMM_ERROR})")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_models_import_without_timm():
    """Importing the package and its models imports no timm, and the registry module, where timm
    is missing, says what it needs."""
    result = run_python(
        "import sys\n"
        "import involution_cuda, involution_cuda.models\n"
        "assert 'timm' not in sys.modules and 'torchvision' not in sys.modules, 'timm imported'\n"
        "sys.modules['timm'] = None  # as if timm were not installed\n"
        "try:\n"
        "    import involution_cuda.models.timm_registry\n"
        "except ImportError as error:\n"
        "    print(error)\n")
    assert result.returncode == 0, result.stderr
    assert "involution_cuda.models.timm_registry needs timm (pip install timm)" in result.stdout


@needs_timm
def test_all_depths_registered_with_paper_sizes():
    assert set(NAMES) <= set(timm.list_models("rednet*"))
    for name in NAMES:
        assert timm.is_model(name)
        with torch.device("meta"):
            model = timm.create_model(name)
            reference = RedNet(int(name[len("rednet"):]))
        assert isinstance(model, timm_registry.TimmRedNet)
        assert model.pretrained_cfg["architecture"] == name
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert shapes == {k: v.shape for k, v in reference.state_dict().items()}


@needs_timm
def test_create_model_classifier_trains():
    model = timm.create_model("rednet50", num_classes=10)
    assert model.num_classes == 10 and model.get_classifier().out_features == 10
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert out.shape == (2, 10)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    # Same network as RedNet: a RedNet state dict loads strict and gives the same logits.
    plain = RedNet(50, num_classes=10).eval()
    model.load_state_dict(plain.state_dict(), strict=True)
    torch.testing.assert_close(model.eval()(x), plain(x))


@needs_timm
def test_pooled_features_and_reset_classifier():
    model = timm.create_model("rednet26", num_classes=0, in_chans=1).eval()
    x = torch.randn(2, 1, 64, 64)
    assert model(x).shape == (2, 2048)
    assert model.forward_features(x).shape == (2, 2048, 2, 2)
    model.reset_classifier(5)
    assert model(x).shape == (2, 5)
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 2048)


@needs_timm
def test_gradient_checkpointing_same_gradients():
    torch.manual_seed(0)
    model = timm.create_model("rednet26", num_classes=3, zero_init_residual=False)
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for checkpointing in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(checkpointing)
        model(x).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain)


@needs_timm
@pytest.mark.parametrize("feature_cls", [None, "getter"])
def test_features_only(feature_cls):
    kwargs = {} if feature_cls is None else {"feature_cls": feature_cls}
    features = timm.create_model("rednet50", features_only=True, **kwargs).eval()
    assert features.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert features.feature_info.reduction() == [2, 4, 8, 16, 32]
    x = torch.randn(2, 3, 64, 64)
    maps = features(x)
    assert [tuple(m.shape) for m in maps] == [(2, c, 64 // r, 64 // r) for c, r in
                                             zip([64, 256, 512, 1024, 2048], [2, 4, 8, 16, 32])]
    # The stage maps are those of the RedNet backbone with the same weights.
    backbone = RedNet(50, num_classes=None).eval()
    state = features.state_dict()
    state = {k[len("model."):] if k.startswith("model.") else k: v for k, v in state.items()}
    backbone.load_state_dict(state, strict=True)
    for mine, theirs in zip(maps[1:], backbone(x)):
        torch.testing.assert_close(mine, theirs)


@needs_timm
def test_features_out_indices():
    features = timm.create_model("rednet26", features_only=True, out_indices=(2, 4))
    assert features.feature_info.channels() == [512, 2048]
    assert [m.shape[1] for m in features(torch.randn(1, 3, 64, 64))] == [512, 2048]
    model = timm.create_model("rednet26").eval()
    final, intermediates = model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=2)
    assert [m.shape[1] for m in intermediates] == [1024, 2048] and final.shape[1] == 2048


def official_checkpoint(model: RedNet) -> dict:
    """An mmcls checkpoint of ``model``: ``backbone.``/``head.`` keys beside a ``meta``."""
    state = {("head." if k.startswith("fc.") else "backbone.") + k: v.clone()
             for k, v in model.state_dict().items()}
    return {"meta": {"mmcls_version": "0.12.0", "epoch": 130}, "state_dict": state}


@needs_timm
def test_pretrained_from_official_checkpoint(tmp_path):
    torch.manual_seed(1)
    trained = RedNet(26).eval()
    for buffer in trained.buffers():
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    torch.save(official_checkpoint(trained), tmp_path / "rednet26.pth")
    overlay = dict(file=str(tmp_path / "rednet26.pth"))
    model = timm.create_model("rednet26", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(model(x), trained(x))
    # Another number of classes: timm keeps the backbone and starts a new classifier.
    tuned = timm.create_model("rednet26", pretrained=True, pretrained_cfg_overlay=overlay, num_classes=7)
    assert tuned.fc.out_features == 7
    assert torch.equal(tuned.stem[0].conv.weight, trained.stem[0].conv.weight)
