"""A plain VGG-style network, written as a scalesearch user family.

    scalesearch grid --budget 2x --family examples/user_model/vgg.py:build

The contract: build(width_mult, depth_mult, num_classes, **kwargs) -> nn.Module. This file decides
itself how a multiplier becomes channels (a multiple of 8) and convolutions (rounded up);
scalesearch measures the FLOPs of whatever comes back.
"""

import math

from torch import nn

# Optional: the φ = 0 network the search starts from (here: half the base width at 32 px).
SCALESEARCH_PROXY = {"width_mult": 0.5, "depth_mult": 1.0, "resolution": 32}
# Optional: φ = 0's input size in `scalesearch expand` (a CIFAR-sized network).
BASE_RESOLUTION = 32

# (channels, 3x3 convs) per stage; a 2x2 max-pool halves the size after each stage.
STAGES = ((16, 1), (32, 1), (64, 2), (128, 2))


def channels(c: int, width_mult: float) -> int:
    return max(8, int(round(c * width_mult / 8)) * 8)


def build(width_mult: float, depth_mult: float, num_classes: int, dropout: float = 0.1) -> nn.Module:
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"multipliers must be positive, got width {width_mult}, depth {depth_mult}")
    layers, cin = [], 3
    for c, convs in STAGES:
        cout = channels(c, width_mult)
        for _ in range(math.ceil(convs * depth_mult - 1e-9)):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil_mode: small inputs never shrink to 0 pixels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(cin, num_classes))
