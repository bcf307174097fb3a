"""python -m involution_cuda.convert: official (mmcls) RedNet checkpoints to plain state dicts."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from involution_cuda.convert import CheckpointError, convert_file, main
from involution_cuda.models import RedNet

ROOT = Path(__file__).resolve().parents[1]


def official_checkpoint(model: RedNet) -> dict:
    """A checkpoint as mmcls saves one: the classifier's tensors under ``backbone.``/``head.``,
    beside a ``meta`` of plain values."""
    state = {}
    for key, value in model.state_dict().items():
        state[("head." if key.startswith("fc.") else "backbone.") + key] = value.clone()
    meta = {"mmcls_version": "0.12.0", "epoch": 130, "iter": 650130, "seed": 0,
            "time": "Fri Mar 19 21:42:56 2021", "exp_name": "rednet26_b32x8_warmup_coslr_imagenet.py",
            "config": "model = dict(type='ImageClassifier', backbone=dict(type='RedNet', depth=26))",
            "CLASSES": [f"class{i}" for i in range(model.num_classes or 0)]}
    return {"meta": meta, "state_dict": state}


def random_model(depth=26, num_classes=10, seed=0):
    torch.manual_seed(seed)
    model = RedNet(depth, num_classes=num_classes, stem_channels=32, base_channels=16)
    for buffer in model.buffers():  # running statistics unlike the initial ones
        if buffer.is_floating_point():
            buffer.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("num_classes", [10, None])
def test_converted_checkpoint_loads_strict_and_equal(tmp_path, num_classes):
    model = random_model(num_classes=num_classes)
    torch.save(official_checkpoint(model), tmp_path / "official.pth")
    depth, classes, count = convert_file(tmp_path / "official.pth", tmp_path / "plain.pth")
    assert (depth, classes, count) == (26, num_classes, len(model.state_dict()))
    # A plain state dict of tensors: loads with weights_only and strict.
    plain = torch.load(tmp_path / "plain.pth", weights_only=True)
    fresh = RedNet(26, num_classes=num_classes, stem_channels=32, base_channels=16)
    fresh.load_state_dict(plain, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_command_line(tmp_path):
    model = random_model(depth=38)
    torch.save(official_checkpoint(model), tmp_path / "official.pth")
    result = subprocess.run(
        [sys.executable, "-m", "involution_cuda.convert", str(tmp_path / "official.pth"),
         str(tmp_path / "plain.pth")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "RedNet-38 (10 classes)" in result.stdout
    plain = torch.load(tmp_path / "plain.pth", weights_only=True)
    assert set(plain) == set(model.state_dict())


def test_backbone_only(tmp_path, capsys):
    torch.save(official_checkpoint(random_model()), tmp_path / "official.pth")
    assert main([str(tmp_path / "official.pth"), str(tmp_path / "backbone.pth"), "--backbone-only"]) == 0
    assert "backbone, no classifier" in capsys.readouterr().out
    plain = torch.load(tmp_path / "backbone.pth", weights_only=True)
    RedNet(26, num_classes=None, stem_channels=32, base_channels=16).load_state_dict(plain, strict=True)


def not_official(tmp_path):
    """(name, content, what the error must say) for files that are no official checkpoint."""
    model = random_model()
    official = official_checkpoint(model)
    other_prefix = {"meta": {}, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}}
    wrong_depth = {"meta": {}, "state_dict": {k: v for k, v in official["state_dict"].items()
                                              if not k.startswith("backbone.layer3.3.")}}
    extra = {"meta": {}, "state_dict": dict(official["state_dict"], **{"backbone.extra": torch.ones(1)})}
    return [
        ("plain.pth", model.state_dict(), "looks like a plain state dict already"),
        ("list.pth", [1, 2, 3], "it holds a list"),
        ("prefix.pth", other_prefix, "keys without those prefixes: 'model.fc.bias'"),
        ("depth.pth", wrong_depth, "(1, 2, 3, 1) bottlenecks, which is no RedNet depth"),
        ("extra.pth", extra, "unexpected 'extra'"),
        ("notensors.pth", {"state_dict": {"backbone.x": 1}}, "'state_dict' is not a dict of tensors"),
    ]


def test_refuses_what_is_not_an_official_checkpoint(tmp_path):
    for name, content, message in not_official(tmp_path):
        torch.save(content, tmp_path / name)
        with pytest.raises(CheckpointError) as error:
            convert_file(tmp_path / name, tmp_path / "out.pth")
        text = str(error.value)
        assert str(tmp_path / name) in text and "official RedNet checkpoint (mmcls format)" in text, text
        assert message in text, text
        assert not (tmp_path / "out.pth").exists()


def test_refuses_a_file_torch_cannot_read(tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    assert main([str(tmp_path / "notes.pth"), str(tmp_path / "out.pth")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'notes.pth'} is not an official RedNet checkpoint" in error
    assert "torch cannot read it" in error
    assert main([str(tmp_path / "missing.pth"), str(tmp_path / "out.pth")]) == 2
    assert "missing.pth" in capsys.readouterr().err


class Opaque:
    """A pickled object that the weights-only loader refuses."""


def test_untrusted_objects_need_trust(tmp_path):
    checkpoint = official_checkpoint(random_model())
    checkpoint["meta"]["hook"] = Opaque()
    torch.save(checkpoint, tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="--trust, or trust=True"):
        convert_file(tmp_path / "official.pth", tmp_path / "out.pth")
    assert convert_file(tmp_path / "official.pth", tmp_path / "out.pth", trust=True)[0] == 26
