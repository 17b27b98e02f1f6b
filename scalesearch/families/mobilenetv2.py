"""MobileNetV2 (Sandler et al. 2018) for any width and depth multiplier.

Width scales every channel count (rounded to multiples of 8, as published), and the last 1x1 conv
(1280) only grows, never shrinks; depth scales the blocks per stage (rounded up). At depth 1 the
widths 0.35-1.4 are torchvision's `mobilenet_v2(width_mult=...)` exactly (1.0: 3,504,872 parameters
with 1000 classes). Written from the paper's table 2.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from .init import init_conv_bn
from .registry import BuiltShape, FamilySpec, OfficialMember, ProxyDims, register
from .rounding import round_channels, round_repeats


@dataclass(frozen=True)
class StageSpec:
    """One row of the paper's table 2: t (expansion), c (channels), n (repeats), s (first stride)."""

    expand_ratio: int
    channels: int
    repeats: int
    stride: int


STAGES = (
    StageSpec(1, 16, 1, 1),
    StageSpec(6, 24, 2, 2),
    StageSpec(6, 32, 3, 2),
    StageSpec(6, 64, 4, 2),
    StageSpec(6, 96, 3, 1),
    StageSpec(6, 160, 3, 2),
    StageSpec(6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def last_channels(width_mult: float) -> int:
    # The paper keeps 1280 for widths below 1 (the classifier needs the features), and scales it above.
    return round_channels(LAST_CHANNELS, max(1.0, width_mult))


@dataclass(frozen=True)
class MobileNetV2Config:
    """One network of the family in whole channels and blocks: what the model is built from, and its shape."""

    stem: int
    stages: tuple[StageSpec, ...]  # table 2's rows with channels and repeats rounded
    head: int  # the last 1x1 conv

    @property
    def shape(self) -> BuiltShape:
        return BuiltShape.of_stages(self.stem, ((s.channels, s.repeats) for s in self.stages), self.head)


def mobilenetv2_config(width_mult: float = 1.0, depth_mult: float = 1.0) -> MobileNetV2Config:
    """Table 2 at these multipliers, rounded once (torchvision's adjusted inverted-residual settings)."""
    stages = tuple(replace(s, channels=round_channels(s.channels, width_mult),
                           repeats=round_repeats(s.repeats, depth_mult)) for s in STAGES)
    return MobileNetV2Config(stem=round_channels(STEM_CHANNELS, width_mult), stages=stages,
                             head=last_channels(width_mult))


class ConvBNReLU6(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """Expand 1x1 (ReLU6), depthwise 3x3 (ReLU6), project 1x1 with no activation (the linear bottleneck)."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        layers: list[nn.Module] = [ConvBNReLU6(cin, hidden, 1)] if expand_ratio != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    @property
    def residual_end(self) -> nn.BatchNorm2d | None:
        """The BatchNorm closing the residual branch (zeroed at init), None without a shortcut."""
        return self.block[-1] if self.use_residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


def _init_linear(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, 0, 0.01)
    nn.init.zeros_(m.bias)


class MobileNetV2(nn.Module):
    def __init__(self, config: MobileNetV2Config, *, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = config.stem
        layers: list[nn.Module] = [ConvBNReLU6(3, cin, 3, 2)]
        for stage in config.stages:
            for i in range(stage.repeats):
                layers.append(InvertedResidual(cin, stage.channels, stage.stride if i == 0 else 1, stage.expand_ratio))
                cin = stage.channels
        head = config.head
        layers.append(ConvBNReLU6(cin, head, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(head, num_classes))
        init_conv_bn(self, linear=_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def build_mobilenetv2(width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000,
                      dropout: float = 0.2, stochastic_depth: float = 0.0) -> MobileNetV2:
    # stochastic_depth: accepted for a uniform builder call; the published MobileNetV2 has none.
    return MobileNetV2(mobilenetv2_config(width_mult, depth_mult), num_classes=num_classes, dropout=dropout)


def mobilenetv2_shape(*, width_mult: float, depth_mult: float) -> BuiltShape:
    """Blocks and widths (stem, each stage, last conv) that build_mobilenetv2(width_mult, depth_mult) builds."""
    return mobilenetv2_config(width_mult, depth_mult).shape


#: The published width multipliers at 224 px; φ orders them with 1.0 at φ = 0.
_WIDTHS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
OFFICIAL = {f"mobilenet_v2_{w:g}": OfficialMember(index=i - 3, width_mult=w, depth_mult=1.0, resolution=224,
                                                         dropout=0.2, name=f"mobilenet_v2_{w:g}")
            for i, w in enumerate(_WIDTHS)}

register(FamilySpec(
    name="mobilenetv2", build=build_mobilenetv2, base_resolution=224, dropout_for_phi=lambda phi: 0.2,
    official=OFFICIAL, display_prefix="MNv2-φ", built_shape=mobilenetv2_shape,
    cpu_proxy=ProxyDims(width_mult=0.35, depth_mult=0.5, resolution=40),
))
