"""RedNet-26/38/50/101/152 in timm's model registry.

    import involution_cuda.models.timm_registry  # registers rednet26 ... rednet152 (needs timm)
    import timm

    model = timm.create_model("rednet50", num_classes=10)
    backbone = timm.create_model("rednet50", features_only=True, out_indices=(1, 2, 3, 4))
    official = timm.create_model("rednet50", pretrained=True,
                                 pretrained_cfg_overlay=dict(file="rednet50.pth"))

Registration happens when this module is imported, never as a side effect of importing
``involution_cuda`` or ``involution_cuda.models`` (timm and torchvision are large imports, and
optional). :class:`TimmRedNet` is :class:`RedNet` with timm's model interface: ``in_chans``,
``num_classes=0`` for pooled features, ``global_pool``, ``drop_rate``, ``forward_features`` /
``forward_head``, ``reset_classifier``, ``forward_intermediates`` and ``feature_info``. Its state
dict is that of ``RedNet(depth, num_classes=...)``, so plain and official (mmcls) checkpoints load
into it; ``pretrained=True`` with a ``file`` overlay loads either kind.

Features (``features_only=True``): five maps, the stem's (stride 2, 64 channels) and the four
stages' (strides 4, 8, 16, 32), as timm gives for a ResNet; ``out_indices`` picks among them.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Union

try:
    import timm  # noqa: F401
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    from timm.layers import create_classifier
    from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
except ImportError as error:  # pragma: no cover - exercised where timm is absent
    raise ImportError(
        "involution_cuda.models.timm_registry needs timm (pip install timm); the models themselves "
        "need no timm: involution_cuda.models.rednet50()") from error

import torch
import torch.nn.functional as F
from torch import nn

from .rednet import RedNet, convert_official_state_dict

__all__ = ["TimmRedNet", "MODEL_NAMES"]

MODEL_NAMES = ("rednet26", "rednet38", "rednet50", "rednet101", "rednet152")
STAGES = ("layer1", "layer2", "layer3", "layer4")


def take_indices(indices: Optional[Union[int, List[int]]]) -> Tuple[List[int], int]:
    """Feature indices (0: stem, 1-4: stages) from timm's ``indices`` argument (None: all, n:
    the last n, a sequence: those, negative from the end), and the largest."""
    if indices is None:
        taken = list(range(5))
    elif isinstance(indices, int):
        if not 0 < indices <= 5:
            raise ValueError(f"indices must be in 1..5 as a count, got {indices}")
        taken = list(range(5 - indices, 5))
    else:
        taken = [index + 5 if index < 0 else index for index in indices]
    if not taken or not all(0 <= index < 5 for index in taken):
        raise ValueError(f"feature indices must be in -5..4 (0: stem, 1-4: stages), got {indices}")
    return taken, max(taken)


class TimmRedNet(RedNet):
    """:class:`RedNet` with timm's model interface (see the module's documentation).

    Args:
        depth: 26, 38, 50, 101 or 152.
        num_classes: classes of the linear classifier; 0 for none (forward gives pooled features).
        in_chans: input channels.
        global_pool: timm's pooling type (``"avg"``, ``"max"``, ``"avgmax"``, ``"catavgmax"``;
            ``""`` for none, then ``num_classes`` must be 0).
        drop_rate: dropout before the classifier.
        **kwargs: further :class:`RedNet` arguments (``group_channels``, ``stem_channels``,
            ``base_channels``, ``mixer``, ``backend``, ``zero_init_residual``).
    """

    def __init__(self, depth: int = 50, num_classes: int = 1000, in_chans: int = 3,
                 global_pool: str = "avg", drop_rate: float = 0.0, **kwargs: Any):
        super().__init__(depth, num_classes=None, in_channels=in_chans, **kwargs)
        self.num_classes, self.drop_rate, self.grad_checkpointing = num_classes, drop_rate, False
        self.num_features = self.head_hidden_size = self.feature_channels[-1]
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes,
                                                      pool_type=global_pool)
        stem_channels = self.stem[-1].conv.out_channels
        self.feature_info = [dict(num_chs=stem_channels, reduction=2, module="stem")] + [
            dict(num_chs=channels, reduction=4 * 2 ** index, module=STAGES[index])
            for index, channels in enumerate(self.feature_channels)]

    def group_matcher(self, coarse: bool = False) -> Dict[str, str]:
        return dict(stem=r"^stem|maxpool",
                    blocks=r"^layer(\d+)" if coarse else r"^layer(\d+)\.(\d+)")

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each bottleneck's activations in backward instead of keeping them."""
        self.grad_checkpointing = enable

    def get_classifier(self, name_only: bool = False) -> Union[str, nn.Module]:
        return "fc" if name_only else self.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool, self.fc = create_classifier(self.num_features, num_classes,
                                                      pool_type=global_pool)
        self.head_hidden_size = self.num_features * self.global_pool.feat_mult()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (timm's convention; :class:`RedNet`'s method of the same
        name returns the outputs of the stages in ``out_indices``)."""
        x = self.maxpool(self.stem(x))
        for name in STAGES:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(getattr(self, name), x)
            else:
                x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x)
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The feature maps of ``indices`` (0: stem, 1-4: stages), as timm's models give them."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        taken, max_index = take_indices(indices)
        intermediates = []
        x = self.stem(x)
        if 0 in taken:
            intermediates.append(x)
        x = self.maxpool(x)
        for index, name in enumerate(STAGES[:max_index] if stop_early else STAGES, start=1):
            x = getattr(self, name)(x)
            if index in taken:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drops the stages after the last of ``indices`` (and the classifier)."""
        taken, max_index = take_indices(indices)
        for name in STAGES[max_index:]:
            setattr(self, name, nn.Sequential())
        if max_index == 0:
            self.maxpool = nn.Identity()
        if max_index < 4:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or max_index < 4:
            self.reset_classifier(0, "")
        return taken


def _checkpoint_filter(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm's ``pretrained_filter_fn``: official (``backbone.``/``head.``) keys to plain ones."""
    return convert_official_state_dict(state_dict)


def _cfg(**kwargs: Any) -> Dict[str, Any]:
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bilinear",
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.0.conv", "classifier": "fc", **kwargs,
    }


default_cfgs = generate_default_cfgs({name: _cfg() for name in MODEL_NAMES})


def _create(variant: str, depth: int, pretrained: bool = False, **kwargs: Any) -> TimmRedNet:
    return build_model_with_cfg(TimmRedNet, variant, pretrained, depth=depth,
                                pretrained_filter_fn=_checkpoint_filter, **kwargs)


@register_model
def rednet26(pretrained: bool = False, **kwargs: Any) -> TimmRedNet:
    """RedNet-26 (Li et al., CVPR 2021, Table 2)."""
    return _create("rednet26", 26, pretrained, **kwargs)


@register_model
def rednet38(pretrained: bool = False, **kwargs: Any) -> TimmRedNet:
    """RedNet-38 (Li et al., CVPR 2021, Table 2)."""
    return _create("rednet38", 38, pretrained, **kwargs)


@register_model
def rednet50(pretrained: bool = False, **kwargs: Any) -> TimmRedNet:
    """RedNet-50 (Li et al., CVPR 2021, Table 2)."""
    return _create("rednet50", 50, pretrained, **kwargs)


@register_model
def rednet101(pretrained: bool = False, **kwargs: Any) -> TimmRedNet:
    """RedNet-101 (Li et al., CVPR 2021, Table 2)."""
    return _create("rednet101", 101, pretrained, **kwargs)


@register_model
def rednet152(pretrained: bool = False, **kwargs: Any) -> TimmRedNet:
    """RedNet-152 (Li et al., CVPR 2021, Table 2)."""
    return _create("rednet152", 152, pretrained, **kwargs)
