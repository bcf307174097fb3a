"""Training support for ``python -m involution_cuda.train``: image-folder data without
torchvision (:mod:`.data`), processes under torchrun and a SyncBatchNorm for CPUs
(:mod:`.distributed`). Needs Pillow (and tqdm for the progress bar)."""
from .data import CenterCrop, ImageFolder, RandomResizedCrop, ShardSampler, TrainSampler, normalize
from .distributed import AllReduceBatchNorm, Context, cleanup, convert_sync_batchnorm, setup

__all__ = ["CenterCrop", "ImageFolder", "RandomResizedCrop", "ShardSampler", "TrainSampler",
           "normalize", "AllReduceBatchNorm", "Context", "cleanup", "convert_sync_batchnorm", "setup"]
