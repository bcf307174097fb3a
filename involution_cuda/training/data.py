"""Image-folder data for training without torchvision: PIL decoding, the standard ImageNet crops,
and samplers whose order depends only on the seed and the epoch.

Augmentation draws from a generator seeded by (seed, epoch, image index), not from a global RNG,
so an image is augmented the same way whichever process or loader worker reads it, and a resumed
run sees exactly the images a run without the interruption would have seen.
"""
from __future__ import annotations

import itertools
import math
import os
import random
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

try:
    from PIL import Image
except ImportError:  # pragma: no cover - Pillow is a dependency of training only
    Image = None

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _need_pillow() -> None:
    if Image is None:
        raise ImportError("reading image folders needs Pillow: pip install pillow")


class ImageFolder(Dataset):
    """``root/<class>/**/<image>``: classes are the sorted sub-folder names (as torchvision's
    ImageFolder numbers them), images the files with an image extension, in sorted order.

    Items are ``(image, label)`` with ``image`` a ``uint8`` tensor (3, H, W) from ``transform``
    (a callable ``(PIL image, random.Random) -> PIL image``) or the decoded image itself.
    """

    def __init__(self, root, transform: Optional[Callable] = None, seed: int = 0):
        _need_pillow()
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        self.classes = sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())
        if not self.classes:
            raise ValueError(f"image folder {self.root} has no class sub-folders (expected "
                             f"{self.root}/<class>/<image>)")
        self.class_to_idx = {name: index for index, name in enumerate(self.classes)}
        self.samples: List[Tuple[str, int]] = []
        for name in self.classes:
            for directory, subdirectories, files in sorted(os.walk(self.root / name, followlinks=True)):
                subdirectories.sort()
                self.samples.extend((os.path.join(directory, file), self.class_to_idx[name])
                                    for file in sorted(files) if file.lower().endswith(IMAGE_EXTENSIONS))
        if not self.samples:
            raise ValueError(f"image folder {self.root} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.transform, self.seed, self.epoch = transform, seed, 0
        self.targets = [label for _, label in self.samples]

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose augmentations the next reads draw (before the loader is iterated)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        with Image.open(path) as image:
            image = image.convert("RGB")
        if self.transform is not None:
            image = self.transform(image, random.Random(f"{self.seed}:{self.epoch}:{index}"))
        return to_uint8_tensor(image), label


def to_uint8_tensor(image) -> torch.Tensor:
    """A PIL RGB image as a ``uint8`` tensor (3, H, W)."""
    width, height = image.size
    data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    return data.view(height, width, 3).permute(2, 0, 1).contiguous()


class RandomResizedCrop:
    """The Inception crop (torchvision's ``RandomResizedCrop`` + horizontal flip): a random
    area fraction in ``scale`` and aspect ratio in ``ratio``, resized to ``size``², flipped with
    probability ``flip``."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip: float = 0.5):
        self.size, self.scale, self.ratio, self.flip = size, scale, ratio, flip

    def box(self, width: int, height: int, rng: random.Random) -> Tuple[int, int, int, int]:
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                left, top = rng.randint(0, width - w), rng.randint(0, height - h)
                return left, top, left + w, top + h
        # Fallback: the largest centred crop within the ratio bounds.
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, round(width / self.ratio[0])
        elif aspect > self.ratio[1]:
            w, h = round(height * self.ratio[1]), height
        else:
            w, h = width, height
        left, top = (width - w) // 2, (height - h) // 2
        return left, top, left + w, top + h

    def __call__(self, image, rng: random.Random):
        box = self.box(*image.size, rng)
        image = image.resize((self.size, self.size), Image.BILINEAR, box=box)
        if rng.random() < self.flip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return image


class CenterCrop:
    """Evaluation crop: the shorter side resized to ``size / crop_pct``, then the centred
    ``size``² (0.875: 256 → 224)."""

    def __init__(self, size: int, crop_pct: float = 0.875):
        self.size, self.resize = size, int(math.floor(size / crop_pct))

    def __call__(self, image, rng: Optional[random.Random] = None):
        width, height = image.size
        scale = self.resize / min(width, height)
        # The centred crop, mapped back to the source: one resampling of the needed region.
        w, h = self.size / scale, self.size / scale
        left, top = (width - w) / 2, (height - h) / 2
        return image.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + w, top + h))


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``uint8`` batches (B, 3, H, W) as normalised float32, on the batch's device."""
    mean = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255
    std = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255
    return (images.float() - mean) / std


class TrainSampler(Sampler[int]):
    """A ``DistributedSampler`` (shuffled by ``seed + epoch``, the tail cut so every process
    gets as many images) that can start an epoch part-way, for resuming.

    With ``batch_size = global_batch // world_size`` and a loader that drops the last partial
    batch, step ``k`` of an epoch reads the images ``permutation[k * global_batch:
    (k + 1) * global_batch]`` split among the processes, whatever their number: the same global
    batches as one process with the whole batch.
    """

    def __init__(self, dataset: Dataset, world_size: int, rank: int, seed: int):
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                          shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Epoch ``epoch``, leaving out its first ``skip`` indices of this process."""
        self.sampler.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.sampler) - self.skip


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``, in order: each image evaluated exactly once
    over all processes (``DistributedSampler`` would repeat some to even out the shards)."""

    def __init__(self, size: int, world_size: int, rank: int):
        self.indices = range(rank, size, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
