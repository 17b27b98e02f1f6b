"""EfficientNet (Tan & Le 2019) for any width and depth multiplier.

The stage table and the two rounding helpers reproduce the reference PyTorch
implementation's architecture exactly (B0 5,288,548 and B7 66,347,960
parameters with 1000 classes); the module is written from the paper's table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import nn

from .init import init_conv_bn
from .registry import BuiltShape, FamilySpec, OfficialMember, register
from .rounding import round_channels, round_repeats  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class StageSpec:
    """One row of the paper's B0 table: MBConv blocks sharing a shape."""

    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    repeats: int


#: EfficientNet-B0, stages 2-8 of the paper's table 1.
B0_STAGES = (
    StageSpec(1, 3, 1, 32, 16, 1),
    StageSpec(6, 3, 2, 16, 24, 2),
    StageSpec(6, 5, 2, 24, 40, 2),
    StageSpec(6, 3, 2, 40, 80, 3),
    StageSpec(6, 5, 1, 80, 112, 3),
    StageSpec(6, 5, 2, 112, 192, 4),
    StageSpec(6, 3, 1, 192, 320, 1),
)
STEM_CHANNELS = 32
HEAD_FACTOR = 4  # head width = 4 x last stage width (1280 for B0)


@dataclass(frozen=True)
class EfficientNetConfig:
    """One network of the family in whole channels and blocks: what the model is built from, and its shape."""

    stem: int
    stages: tuple[StageSpec, ...]  # the table's rows with channels and repeats rounded
    head: int

    @property
    def shape(self) -> BuiltShape:
        return BuiltShape.of_stages(self.stem, ((s.out_channels, s.repeats) for s in self.stages), self.head)


def efficientnet_config(width_mult: float = 1.0, depth_mult: float = 1.0,
                        stages: tuple[StageSpec, ...] = B0_STAGES) -> EfficientNetConfig:
    """The stage table at these multipliers, rounded once (torchvision's adjusted MBConv settings)."""
    rounded = tuple(replace(s, in_channels=round_channels(s.in_channels, width_mult),
                            out_channels=round_channels(s.out_channels, width_mult),
                            repeats=round_repeats(s.repeats, depth_mult)) for s in stages)
    return EfficientNetConfig(stem=round_channels(STEM_CHANNELS, width_mult), stages=rounded,
                              head=HEAD_FACTOR * rounded[-1].out_channels)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(inplace=True) if act else nn.Identity(),
        )


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = torch.sigmoid(self.expand(self.act(self.reduce(scale))))
        return x * scale


class StochasticDepth(nn.Module):
    """Drop the whole residual branch per sample with probability p (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        # One Bernoulli per sample; dividing by keep preserves the expectation.
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise kxk, squeeze-excite, project 1x1."""

    def __init__(self, cin: int, cout: int, expand_ratio: int, kernel: int, stride: int, drop_path: float):
        super().__init__()
        hidden = cin * expand_ratio
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [
            ConvBNAct(hidden, hidden, kernel, stride, groups=hidden),
            # The squeeze width follows the block's *input* channels, as in the paper's code.
            SqueezeExcite(hidden, max(1, cin // 4)),
            ConvBNAct(hidden, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout
        self.drop_path = StochasticDepth(drop_path) if self.use_residual else nn.Identity()

    @property
    def residual_end(self) -> nn.BatchNorm2d | None:
        """The BatchNorm closing the residual branch (zeroed at init), None without a shortcut."""
        return self.block[-1][1] if self.use_residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_residual:
            out = x + self.drop_path(out)
        return out


def _init_linear(m: nn.Linear) -> None:
    bound = 1.0 / math.sqrt(m.out_features)
    nn.init.uniform_(m.weight, -bound, bound)
    nn.init.zeros_(m.bias)


class EfficientNet(nn.Module):
    def __init__(
        self,
        config: EfficientNetConfig,
        num_classes: int = 1000,
        dropout: float = 0.2,
        stochastic_depth: float = 0.2,
    ):
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, config.stem, 3, stride=2)]

        total_blocks, block_index = sum(stage.repeats for stage in config.stages), 0
        for stage in config.stages:
            cin, cout = stage.in_channels, stage.out_channels
            blocks = []
            for i in range(stage.repeats):
                # Deeper blocks are dropped more often: rate grows linearly with block index.
                drop = stochastic_depth * block_index / total_blocks
                blocks.append(
                    MBConv(cin if i == 0 else cout, cout, stage.expand_ratio, stage.kernel,
                           stage.stride if i == 0 else 1, drop)
                )
                block_index += 1
            layers.append(nn.Sequential(*blocks))

        head = config.head
        layers.append(ConvBNAct(config.stages[-1].out_channels, head, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(head, num_classes))
        self.num_blocks = total_blocks
        init_conv_bn(self, linear=_init_linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(x)


def build_efficientnet(
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    num_classes: int = 1000,
    dropout: float = 0.2,
    stochastic_depth: float = 0.2,
) -> EfficientNet:
    return EfficientNet(efficientnet_config(width_mult, depth_mult), num_classes, dropout, stochastic_depth)


def efficientnet_shape(*, width_mult: float, depth_mult: float, stages: tuple[StageSpec, ...] = B0_STAGES) -> BuiltShape:
    """Blocks and widths (stem, each stage, head) that build_efficientnet(width_mult, depth_mult) builds."""
    return efficientnet_config(width_mult, depth_mult, stages).shape


def efficientnet_dropout(phi: float) -> float:
    """Dropout grows with size as in the official table: 0.2 at B0/B1 up to 0.5 from B6 on."""
    return float(min(0.5, max(0.2, 0.2 + 0.1 * math.floor((phi) / 2 + 1e-9))))


#: The official hand-tuned family (width, depth, resolution, dropout), not α^φ.
OFFICIAL = {
    "b0": OfficialMember(index=0, width_mult=1.0, depth_mult=1.0, resolution=224, dropout=0.2),
    "b1": OfficialMember(index=1, width_mult=1.0, depth_mult=1.1, resolution=240, dropout=0.2),
    "b2": OfficialMember(index=2, width_mult=1.1, depth_mult=1.2, resolution=260, dropout=0.3),
    "b3": OfficialMember(index=3, width_mult=1.2, depth_mult=1.4, resolution=300, dropout=0.3),
    "b4": OfficialMember(index=4, width_mult=1.4, depth_mult=1.8, resolution=380, dropout=0.4),
    "b5": OfficialMember(index=5, width_mult=1.6, depth_mult=2.2, resolution=456, dropout=0.4),
    "b6": OfficialMember(index=6, width_mult=1.8, depth_mult=2.6, resolution=528, dropout=0.5),
    "b7": OfficialMember(index=7, width_mult=2.0, depth_mult=3.1, resolution=600, dropout=0.5),
    "b8": OfficialMember(index=8, width_mult=2.2, depth_mult=3.6, resolution=672, dropout=0.5),
    "l2": OfficialMember(index=9, width_mult=4.3, depth_mult=5.3, resolution=800, dropout=0.5),
}

register(
    FamilySpec(
        name="efficientnet",
        build=build_efficientnet,
        base_resolution=224,
        dropout_for_phi=efficientnet_dropout,
        official=OFFICIAL,
        display_prefix="B",
        built_shape=efficientnet_shape,
    )
)
