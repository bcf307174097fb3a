"""RedNet-26/38/50/101/152 with the official module layout and parameter names.

Structure (official ``RedNet`` backbone, mmcls): a stem of 3×3 conv (stride 2) → 3×3 involution
→ BN → ReLU → 3×3 conv, a 3×3 max pool, then four stages of bottlenecks
(1×1 conv → 7×7 involution, strided in the first block of stages 2-4 → 1×1 conv, 4× expansion)
and, for classification, global average pooling and a linear layer. ``mixer="conv"`` puts a 3×3
convolution where each involution is: the same-depth ResNet baseline of the paper.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..module import ConvModule, Involution

# depth -> bottlenecks per stage (official arch_settings)
ARCHITECTURES: Dict[int, Tuple[int, int, int, int]] = {
    26: (1, 2, 4, 1),
    38: (2, 3, 5, 2),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
MIXERS = ("involution", "conv")


def spatial_mixer(channels: int, kernel_size: int, stride: int, mixer: str, group_channels: int,
                  backend: str) -> nn.Module:
    """The layer that mixes spatially: involution, or the 3×3 convolution it replaced."""
    if mixer == "involution":
        return Involution(channels, kernel_size, stride, group_channels=group_channels,
                          backend=backend)
    return nn.Conv2d(channels, channels, 3, stride, padding=1, bias=False)


class Bottleneck(nn.Module):
    """1×1 conv → BN → ReLU → mixer (strided) → BN → ReLU → 1×1 conv → BN, plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, mixer: str = "involution",
                 group_channels: int = 16, backend: str = "native"):
        super().__init__()
        mid_channels = out_channels // self.expansion
        self.conv1 = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.conv2 = spatial_mixer(mid_channels, 7, stride, mixer, group_channels, backend)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.conv3 = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class RedNet(nn.Module):
    """RedNet of the given depth (26, 38, 50, 101 or 152).

    Args:
        depth: a key of ``ARCHITECTURES``.
        num_classes: classes of the linear classifier; ``None`` makes a backbone whose forward
            returns the feature maps of the stages in ``out_indices`` (strides 4, 8, 16, 32).
        in_channels, stem_channels, base_channels: input channels, stem width (64) and the
            bottleneck width of the first stage (64); the official values are the defaults.
        group_channels: channels per involution group (16 in the paper).
        out_indices: stages whose outputs a backbone returns (default all four).
        mixer: ``"involution"`` (RedNet) or ``"conv"`` (the same network with 3×3 convolutions).
        backend: ``"native"`` (compiled kernels) or ``"reference"`` (unfold) for every involution.
        zero_init_residual: start each block's last BatchNorm at zero (official default).
    """

    def __init__(self, depth: int = 50, num_classes: Optional[int] = 1000, in_channels: int = 3,
                 stem_channels: int = 64, base_channels: int = 64, group_channels: int = 16,
                 out_indices: Sequence[int] = (0, 1, 2, 3), mixer: str = "involution",
                 backend: str = "native", zero_init_residual: bool = True):
        super().__init__()
        if depth not in ARCHITECTURES:
            raise ValueError(f"depth must be one of {sorted(ARCHITECTURES)}, got {depth!r}")
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, got {mixer!r}")
        if not set(out_indices) <= {0, 1, 2, 3}:
            raise ValueError(f"out_indices must be stage indices in 0..3, got {tuple(out_indices)}")
        self.depth, self.num_classes, self.out_indices = depth, num_classes, tuple(out_indices)
        half = stem_channels // 2
        self.stem = nn.Sequential(
            ConvModule(in_channels, half, kernel_size=3, stride=2, padding=1),
            spatial_mixer(half, 3, 1, mixer, group_channels, backend),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            ConvModule(half, stem_channels, kernel_size=3, padding=1),
        )
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels, out_channels = stem_channels, base_channels * Bottleneck.expansion
        self.feature_channels = []
        for index, blocks in enumerate(ARCHITECTURES[depth]):
            stride = 1 if index == 0 else 2
            layer = nn.Sequential(*[
                Bottleneck(channels if b == 0 else out_channels, out_channels,
                           stride if b == 0 else 1, mixer, group_channels, backend)
                for b in range(blocks)
            ])
            self.add_module(f"layer{index + 1}", layer)
            self.feature_channels.append(out_channels)
            channels, out_channels = out_channels, out_channels * 2
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(channels, num_classes)
        self.reset_parameters(zero_init_residual)

    def reset_parameters(self, zero_init_residual: bool = True) -> None:
        """Kaiming-normal convolutions, unit BatchNorm (official ``init_weights``)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    nn.init.zeros_(module.bn3.weight)

    def forward_features(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Outputs of the stages in ``out_indices``."""
        x = self.maxpool(self.stem(x))
        features = []
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
            if index in self.out_indices:
                features.append(x)
        return tuple(features)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        if self.num_classes is None:
            return self.forward_features(x)
        x = self.maxpool(self.stem(x))
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def convert_official_state_dict(checkpoint: dict) -> dict:
    """An official mmcls RedNet checkpoint (or its ``state_dict``) as this module's state dict:
    ``backbone.`` prefixes are dropped and ``head.fc.`` becomes ``fc.``."""
    state = checkpoint.get("state_dict", checkpoint)
    converted = {}
    for key, value in state.items():
        if key.startswith("backbone."):
            converted[key[len("backbone."):]] = value
        elif key.startswith("head."):
            converted[key[len("head."):]] = value
        else:
            converted[key] = value
    return converted


def _factory(depth: int):
    def build(num_classes: Optional[int] = 1000, **kwargs) -> RedNet:
        return RedNet(depth, num_classes=num_classes, **kwargs)

    build.__name__ = f"rednet{depth}"
    build.__doc__ = f"RedNet-{depth} (see :class:`RedNet` for the arguments)."
    return build


rednet26 = _factory(26)
rednet38 = _factory(38)
rednet50 = _factory(50)
rednet101 = _factory(101)
rednet152 = _factory(152)
