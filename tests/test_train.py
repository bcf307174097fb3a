"""python -m involution_cuda.train on a tiny generated image folder: one process trains and
reports; two gloo processes under torchrun with SyncBatchNorm end with the weights of one process
on the same global batch; a resumed run ends exactly as an uninterrupted one; official
checkpoints initialise the model."""
import copy
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

pytest.importorskip("PIL", reason="training reads images with Pillow")

from involution_cuda.convert import main as convert_main  # noqa: E402
from involution_cuda.models import RedNet  # noqa: E402
from involution_cuda.train import main as train_main  # noqa: E402
from involution_cuda.training import (  # noqa: E402
    AllReduceBatchNorm,
    CenterCrop,
    ImageFolder,
    RandomResizedCrop,
    ShardSampler,
    TrainSampler,
    cleanup,
)

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 4
# A small RedNet-26 (stem 32, first-stage width 16: the group width of 16 still divides every
# involution) on 32x32 crops: one step takes well under a second on two cores.
MODEL = ["--model", "rednet26", "--stem-channels", "32", "--base-channels", "16", "--image-size", "32"]
# 64 training images, global batch 16: 4 steps per epoch, 8 in all.
RUN = MODEL + ["--epochs", "2", "--batch-size", "16", "--lr", "0.02", "--no-progress", "--sync-bn"]
needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="needs torch.distributed with gloo")


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """data/{train,val}/class<c>/<i>.png: 16 and 4 noisy 40x36 images per class, each class a
    colour, so that a few steps learn it."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = random.Random(0)
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)][:CLASSES]
    for split, count in (("train", 16), ("val", 4)):
        for label, colour in enumerate(colours):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                image = Image.new("RGB", (40, 36))
                image.putdata([tuple(min(255, max(0, c + rng.randint(-60, 60))) for c in colour)
                               for _ in range(40 * 36)])
                image.save(folder / f"{index:03d}.png")
    return root


def train(data: Path, output: Path, *options: str, processes: int = 1) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "involution_cuda.train", str(data), "--output", str(output),
               *options]
    if processes > 1:
        command[1:3] = ["-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", "-m", "involution_cuda.train"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stdout}\n{result.stderr}"
    return result


def checkpoint(output: Path) -> dict:
    return torch.load(output / "last.pth", map_location="cpu", weights_only=True)


def metrics(output: Path):
    return [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def one_process(image_folder, tmp_path_factory):
    """The reference run: one process, 2 epochs, whole global batch."""
    output = tmp_path_factory.mktemp("one")
    result = train(image_folder, output, *RUN, "--workers", "0")
    return output, result


def test_one_process_trains_and_reports(one_process):
    output, result = one_process
    assert "64 training images in 4 classes, 1 process(es) on cpu, global batch 16, 4 steps per epoch" in result.stdout
    for epoch in (1, 2):
        assert f"epoch {epoch}/2 step {4 * epoch}: train loss" in result.stdout
    assert "val loss" in result.stdout and "top-5" in result.stdout
    first, last = metrics(output)
    for line in (first, last):
        assert math.isfinite(line["train_loss"]) and math.isfinite(line["val_loss"])
        assert 0 <= line["val_top1"] <= line["val_top5"] <= 100
    assert last["train_loss"] < first["train_loss"]  # colour classes: learnt within 8 steps
    saved = checkpoint(output)
    assert (saved["step"], saved["epoch"], saved["global_batch"]) == (8, 2, 16)
    assert saved["classes"] == [f"class{c}" for c in range(CLASSES)]
    # The weights are a plain RedNet state dict.
    RedNet(26, num_classes=CLASSES, stem_channels=32, base_channels=16).load_state_dict(saved["model"])


@needs_gloo
def test_two_processes_match_one_process(one_process, image_folder, tmp_path):
    reference = checkpoint(one_process[0])["model"]
    result = train(image_folder, tmp_path / "two", *RUN, "--workers", "0", processes=2)
    assert "2 process(es) on cpu, global batch 16, 4 steps per epoch" in result.stdout
    two = checkpoint(tmp_path / "two")["model"]
    # Same global batches, same statistics and gradients, summed in another order: each
    # BatchNorm adds two half-batch sums, DDP averages two half-batch gradients, each process
    # runs on one thread, and torch's own convolutions may pick another algorithm for a half
    # batch (this op's kernels give the same bits for any split of the batch). These float32
    # rounding differences grow over the 8 steps to 1e-5 on some hosts and to 2e-3 (running
    # variances) on others; without SyncBatchNorm the runs differ by more than 0.1 (next test).
    for key, value in reference.items():
        if value.is_floating_point():
            torch.testing.assert_close(two[key], value, rtol=5e-3, atol=5e-3, msg=key)
        else:
            assert torch.equal(two[key], value), key
    assert metrics(tmp_path / "two")[-1]["epoch"] == 2


@needs_gloo
def test_two_processes_without_sync_bn_differ(one_process, image_folder, tmp_path):
    """The tolerance above tells SyncBatchNorm from per-process statistics."""
    reference = checkpoint(one_process[0])["model"]
    run = [option for option in RUN if option != "--sync-bn"]
    train(image_folder, tmp_path / "local", *run, "--workers", "0", "--max-steps", "4", processes=2)
    local = checkpoint(tmp_path / "local")["model"]
    assert max((local[k] - v).abs().max().item() for k, v in reference.items()
               if v.is_floating_point()) > 0.1


def test_resumed_run_ends_as_uninterrupted(one_process, image_folder, tmp_path):
    """Stopped at step 3 (mid-epoch, loader workers on), resumed, it ends with the reference
    run's weights, optimizer state and metrics, bit for bit."""
    output = tmp_path / "resumed"
    stopped = train(image_folder, output, *RUN, "--workers", "2", "--max-steps", "3")
    assert "stopped at step 3" in stopped.stdout and checkpoint(output)["step"] == 3
    resumed = train(image_folder, output, *RUN, "--workers", "2", "--resume", str(output / "last.pth"))
    assert "resume: " in resumed.stdout and "at step 3 (epoch 1, step 3 of 4)" in resumed.stdout
    reference, ours = checkpoint(one_process[0]), checkpoint(output)
    assert ours["step"] == reference["step"] == 8
    for key, value in reference["model"].items():
        assert torch.equal(ours["model"][key], value), key
    for index, state in reference["optimizer"]["state"].items():
        assert torch.equal(ours["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"])
    strip = lambda lines: [{k: v for k, v in line.items() if k != "images_per_s"} for line in lines]  # noqa: E731
    assert strip(metrics(output)) == strip(metrics(one_process[0]))


def official_checkpoint(model: RedNet) -> dict:
    """An mmcls checkpoint of ``model``: ``backbone.``/``head.`` keys beside a ``meta``."""
    state = {("head." if k.startswith("fc.") else "backbone.") + k: v.clone()
             for k, v in model.state_dict().items()}
    return {"meta": {"mmcls_version": "0.12.0", "epoch": 130, "CLASSES": []}, "state_dict": state}


def parameters_equal(saved: dict, model: RedNet, skip=()):
    for name, parameter in model.named_parameters():
        if not name.startswith(skip):
            assert torch.equal(saved[name], parameter.detach()), name


def test_init_from_official_checkpoint(image_folder, tmp_path):
    """An official 1000-class checkpoint, converted, then read by --init: the backbone's
    parameters are those of the checkpoint (a zero learning rate keeps them), the classifier
    starts anew for the folder's 4 classes. The official file itself works as --init too."""
    torch.manual_seed(3)
    official = RedNet(26, num_classes=1000, stem_channels=32, base_channels=16)
    torch.save(official_checkpoint(official), tmp_path / "official.pth")
    assert convert_main([str(tmp_path / "official.pth"), str(tmp_path / "plain.pth")]) == 0
    frozen = ["--lr", "0", "--weight-decay", "0", "--max-steps", "1", "--workers", "0"]
    result = train(image_folder, tmp_path / "plain", *RUN, *frozen, "--init", str(tmp_path / "plain.pth"))
    assert "classifier of 1000 classes, the model 4: a new classifier starts" in result.stdout
    parameters_equal(checkpoint(tmp_path / "plain")["model"], official, skip=("fc.",))
    # Same number of classes: the classifier is loaded as well, straight from the official file.
    torch.manual_seed(4)
    official = RedNet(26, num_classes=CLASSES, stem_channels=32, base_channels=16)
    torch.save(official_checkpoint(official), tmp_path / "official4.pth")
    result = train(image_folder, tmp_path / "direct", *RUN, *frozen, "--init", str(tmp_path / "official4.pth"))
    assert "new classifier" not in result.stdout
    parameters_equal(checkpoint(tmp_path / "direct")["model"], official)
    # And evaluation alone, of those weights.
    result = train(image_folder, tmp_path / "eval", *MODEL, "--eval-only", "--batch-size", "8",
                   "--workers", "0", "--init", str(tmp_path / "official4.pth"))
    assert "val loss" in result.stdout and "(16 images)" in result.stdout


def test_errors_name_the_problem(image_folder, tmp_path, capsys):
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    base = [str(image_folder), "--output", str(tmp_path / "out"), *MODEL, "--workers", "0",
            "--batch-size", "16"]
    assert train_main(base + ["--init", str(tmp_path / "notes.pth")]) == 2
    assert f"{tmp_path / 'notes.pth'} is not an official RedNet checkpoint" in capsys.readouterr().err
    assert train_main(base + ["--batch-size", "128"]) == 2  # the last --batch-size counts
    assert "has 64 images, fewer than one global batch (128)" in capsys.readouterr().err
    assert train_main([str(tmp_path / "nowhere"), *MODEL]) == 2
    assert "nowhere/train does not exist" in capsys.readouterr().err
    torch.save(RedNet(26, num_classes=CLASSES, stem_channels=32, base_channels=16).state_dict(),
               tmp_path / "plain.pth")
    assert train_main(base + ["--resume", str(tmp_path / "plain.pth")]) == 2
    assert "is not a checkpoint of python -m involution_cuda.train" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_training_runs(image_folder, tmp_path):
    """--compile with --amp and --channels-last (minutes: inductor compiles forward and backward)."""
    result = train(image_folder, tmp_path / "compiled", *RUN, "--workers", "0", "--compile", "--amp",
                   "--channels-last", "--max-steps", "4")
    assert math.isfinite(metrics(tmp_path / "compiled")[0]["train_loss"]), result.stdout


def test_amp_and_channels_last_train(image_folder, tmp_path):
    """bfloat16 autocast on the CPU, NHWC model and inputs."""
    train(image_folder, tmp_path / "amp", *RUN, "--workers", "0", "--amp", "--channels-last",
          "--max-steps", "4")
    line = metrics(tmp_path / "amp")[0]
    assert math.isfinite(line["train_loss"]) and 0 <= line["val_top1"] <= 100
    weight = checkpoint(tmp_path / "amp")["model"]["stem.0.conv.weight"]
    assert weight.dtype == torch.float32


# -- the pieces -------------------------------------------------------------------------------

def test_global_batches_do_not_depend_on_the_number_of_processes():
    dataset = list(range(103))  # not a multiple of the batch or of the processes
    batch = 12

    def global_batches(world):
        per_rank = []
        for rank in range(world):
            sampler = TrainSampler(dataset, world, rank, seed=5)
            sampler.set_epoch(2)
            indices = list(sampler)
            local = batch // world
            per_rank.append([indices[i:i + local] for i in range(0, len(indices) - local + 1, local)])
        return [sorted(sum(parts, [])) for parts in zip(*per_rank)]

    reference = global_batches(1)
    assert len(reference) == 103 // batch
    for world in (2, 3, 4):
        assert global_batches(world) == reference
    # Another epoch, another order; a skipped start continues the same order.
    sampler = TrainSampler(dataset, 2, 1, seed=5)
    sampler.set_epoch(3)
    whole = list(sampler)
    assert sorted(whole) != whole
    sampler.set_epoch(3, skip=10)
    assert list(sampler) == whole[10:] and len(sampler) == len(whole) - 10


def test_shards_cover_each_image_once():
    shards = [list(ShardSampler(10, 3, rank)) for rank in range(3)]
    assert sorted(sum(shards, [])) == list(range(10))


def test_image_folder_and_deterministic_augmentation(image_folder):
    folder = ImageFolder(image_folder / "train", RandomResizedCrop(24), seed=1)
    assert folder.classes == [f"class{c}" for c in range(CLASSES)] and len(folder) == 64
    assert folder.samples[0][0].endswith("class0/000.png") and folder.targets[-1] == CLASSES - 1
    image, label = folder[17]
    assert image.dtype == torch.uint8 and image.shape == (3, 24, 24) and label == 1
    assert torch.equal(folder[17][0], image)  # the same (seed, epoch, index): the same crop
    folder.set_epoch(1)
    assert any(not torch.equal(folder[i][0], ImageFolder(image_folder / "train", RandomResizedCrop(24),
                                                         seed=1)[i][0]) for i in range(8))
    evaluation = ImageFolder(image_folder / "val", CenterCrop(32))
    assert evaluation[0][0].shape == (3, 32, 32)


def test_all_reduce_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8))
    converted = AllReduceBatchNorm.convert(copy.deepcopy(plain))
    assert isinstance(converted[1], AllReduceBatchNorm)
    assert set(converted.state_dict()) == set(plain.state_dict())
    x = torch.randn(4, 3, 9, 9)
    torch.testing.assert_close(converted(x), plain(x))


def _sync_bn_process(rank: int, folder: str, x: torch.Tensor, grad: torch.Tensor) -> None:
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=2)
    try:
        layer = AllReduceBatchNorm(x.shape[1], momentum=0.3).double()
        with torch.no_grad():
            layer.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
            layer.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
        part = x.chunk(2)[rank].clone().requires_grad_()
        out = layer(part)
        out.backward(grad.chunk(2)[rank])
        torch.save((out.detach(), part.grad, layer.weight.grad, layer.bias.grad,
                    layer.running_mean, layer.running_var), f"{folder}/result{rank}.pt")
    finally:
        cleanup()
    # Done, results saved: end here. cleanup() leaves a gloo group to the process's exit, and
    # torch's teardown of it at interpreter exit aborted once in CI ("terminate called without
    # an active exception") after the work was done; what this test checks is in the files.
    os._exit(0)


@needs_gloo
def test_all_reduce_batchnorm_across_processes_is_batchnorm_of_the_whole_batch(tmp_path):
    """Two gloo processes with half a batch each give the outputs, input gradients, parameter
    gradients (summed over the processes: DDP averages them) and running statistics of
    BatchNorm on the whole batch, in float64."""
    import torch.multiprocessing as mp

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 4, 3, generator=generator, dtype=torch.float64) * 3 + 1
    grad = torch.randn(6, 5, 4, 3, generator=generator, dtype=torch.float64)
    context = mp.get_context("spawn")
    processes = [context.Process(target=_sync_bn_process, args=(rank, str(tmp_path), x, grad))
                 for rank in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=300)
        assert process.exitcode == 0
    results = [torch.load(tmp_path / f"result{rank}.pt", weights_only=True) for rank in range(2)]
    reference = torch.nn.BatchNorm2d(5, momentum=0.3).double()
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        reference.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(2))
    whole = x.clone().requires_grad_()
    out = reference(whole)
    out.backward(grad)
    close = dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(torch.cat([results[0][0], results[1][0]]), out.detach(), **close)
    torch.testing.assert_close(torch.cat([results[0][1], results[1][1]]), whole.grad, **close)
    torch.testing.assert_close(results[0][2] + results[1][2], reference.weight.grad, **close)
    torch.testing.assert_close(results[0][3] + results[1][3], reference.bias.grad, **close)
    for rank in range(2):
        torch.testing.assert_close(results[rank][4], reference.running_mean, **close)
        torch.testing.assert_close(results[rank][5], reference.running_var, **close)
