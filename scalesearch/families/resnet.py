"""ResNet (He et al. 2016) for any width and depth multiplier, with basic or bottleneck blocks.

Width scales the stem and every stage's channels (rounded to multiples of 8 like EfficientNet);
depth scales the blocks per stage (rounded up). At width 1 and depth 1 each base is torchvision's
network exactly (ResNet-V1.5: the stride sits on the bottleneck's 3x3 conv), e.g. ResNet-50 has
25,557,032 parameters with 1000 classes. Written from the paper's table 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .init import init_conv_bn
from .registry import BuiltShape, FamilySpec, OfficialMember, ProxyDims, register
from .rounding import round_channels, round_repeats

STEM_CHANNELS = 64
STAGE_PLANES = (64, 128, 256, 512)  # the paper's conv2_x .. conv5_x widths (before a bottleneck's x4)


@dataclass(frozen=True)
class ResNetLayout:
    """A published ResNet: its block type and blocks per stage."""

    block: str  # "basic" or "bottleneck"
    layers: tuple[int, int, int, int]


LAYOUTS = {
    "resnet18": ResNetLayout("basic", (2, 2, 2, 2)),
    "resnet34": ResNetLayout("basic", (3, 4, 6, 3)),
    "resnet50": ResNetLayout("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetLayout("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetLayout("bottleneck", (3, 8, 36, 3)),
}


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)]


class BasicBlock(nn.Module):
    """Two 3x3 convs; the shortcut projects (1x1 conv + BN) when the shape changes."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int):
        super().__init__()
        cout = planes * self.expansion
        self.branch = nn.Sequential(*conv_bn(cin, planes, 3, stride), nn.ReLU(inplace=True),
                                    *conv_bn(planes, cout, 3))
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    @property
    def residual_end(self) -> nn.BatchNorm2d:
        """The branch's last BatchNorm, zeroed at init (torchvision's `zero_init_residual=True`)."""
        return self.branch[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.branch(x) + self.shortcut(x))


class Bottleneck(BasicBlock):
    """1x1 reduce, 3x3 (carrying the stride, as in torchvision's V1.5), 1x1 expand x4."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int):
        nn.Module.__init__(self)
        cout = planes * self.expansion
        self.branch = nn.Sequential(*conv_bn(cin, planes, 1), nn.ReLU(inplace=True),
                                    *conv_bn(planes, planes, 3, stride), nn.ReLU(inplace=True),
                                    *conv_bn(planes, cout, 1))
        self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        self.act = nn.ReLU(inplace=True)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


@dataclass(frozen=True)
class ResNetStage:
    """One stage in whole channels and blocks: `planes` wide inside, `out_channels` (planes x expansion) out."""

    planes: int
    out_channels: int
    repeats: int
    stride: int  # of the stage's first block


@dataclass(frozen=True)
class ResNetConfig:
    """One network of a ResNet family in whole channels and blocks: what the model is built from, and its shape."""

    block: str  # "basic" or "bottleneck"
    stem: int
    stages: tuple[ResNetStage, ...]

    @property
    def shape(self) -> BuiltShape:
        return BuiltShape.of_stages(self.stem, ((s.out_channels, s.repeats) for s in self.stages))


def resnet_config(layout: ResNetLayout, width_mult: float = 1.0, depth_mult: float = 1.0) -> ResNetConfig:
    """The layout at these multipliers, rounded once; every stage but the first halves the map."""
    expansion = BLOCKS[layout.block].expansion
    stages = []
    for i, (planes, repeats) in enumerate(zip(STAGE_PLANES, layout.layers)):
        planes = round_channels(planes, width_mult)
        stages.append(ResNetStage(planes, planes * expansion, round_repeats(repeats, depth_mult), 2 if i > 0 else 1))
    return ResNetConfig(layout.block, round_channels(STEM_CHANNELS, width_mult), tuple(stages))


class ResNet(nn.Module):
    def __init__(self, config: ResNetConfig, *, num_classes: int = 1000, dropout: float = 0.0):
        super().__init__()
        block = BLOCKS[config.block]
        # Stem: 7x7 stride 2 and a 3x3 max-pool: /4 before the first stage.
        self.stem = nn.Sequential(*conv_bn(3, config.stem, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], config.stem
        for stage in config.stages:
            blocks = []
            for j in range(stage.repeats):
                blocks.append(block(cin, stage.planes, stage.stride if j == 0 else 1))
                cin = stage.out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        # torchvision's ResNet has no dropout; it is offered (default 0, no parameters) for short proxy runs.
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, num_classes))
        init_conv_bn(self)  # the classifier keeps PyTorch's default, as in torchvision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.stages(self.stem(x))).flatten(1))


def resnet_shape(layout: ResNetLayout, *, width_mult: float, depth_mult: float) -> BuiltShape:
    """Blocks and widths (stem, each stage's output) that a ResNet of `layout` builds at these multipliers."""
    return resnet_config(layout, width_mult, depth_mult).shape


def no_dropout(phi: float) -> float:
    return 0.0


#: The published depths, φ = their order; each is built by its own registered family.
OFFICIAL = {name: OfficialMember(index=i, width_mult=1.0, depth_mult=1.0, resolution=224, dropout=0.0,
                                           family=name, name=name)
            for i, name in enumerate(LAYOUTS)}

#: CPU proxies, chosen with benchmarks/proxy_coverage.py so that >= 90% of the default 2x grid can be
#: budget-matched (checked for `resnet` and `resnet18`; the other depths share their block type's).
#: Bottleneck depth 0.3 builds [1, 2, 2, 1] blocks and every α step changes some stage; 0.34 built the
#: same [2, 2, 3, 2] for every α and left 9 of 36 points outside the tolerance. Basic depth 0.75 is
#: ResNet-18's own [2, 2, 2, 2]: from depth 0.5 every α > 1 jumped to it at once.
CPU_PROXIES = {
    "basic": ProxyDims(width_mult=0.25, depth_mult=0.75, resolution=40),
    "bottleneck": ProxyDims(width_mult=0.25, depth_mult=0.3, resolution=40),
}


def _register(name: str, layout: ResNetLayout) -> None:
    def build(width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000, dropout: float = 0.0,
              stochastic_depth: float = 0.0) -> ResNet:
        # stochastic_depth: accepted for a uniform builder call; the published ResNet has none.
        return ResNet(resnet_config(layout, width_mult, depth_mult), num_classes=num_classes, dropout=dropout)

    def shape(*, width_mult: float, depth_mult: float) -> BuiltShape:
        return resnet_shape(layout, width_mult=width_mult, depth_mult=depth_mult)

    register(FamilySpec(name=name, build=build, base_resolution=224, dropout_for_phi=no_dropout,
                        official=OFFICIAL if name == "resnet" else {}, display_prefix=f"{name}-φ",
                        built_shape=shape, cpu_proxy=CPU_PROXIES[layout.block]))


# `resnet` scales ResNet-50 (the usual baseline); each published depth is a family of its own too,
# so `--family resnet18` searches from basic blocks. `--preset resnet` lists all five.
_register("resnet", LAYOUTS["resnet50"])
for _name, _layout in LAYOUTS.items():
    _register(_name, _layout)
