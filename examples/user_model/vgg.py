"""A plain VGG-style network, written as a scalesearch user family.

    scalesearch grid --budget 2x --family examples/user_model/vgg.py:build

The contract: build(width_mult, depth_mult, num_classes, **kwargs) -> nn.Module. This file decides
itself how a multiplier becomes channels (a multiple of 4) and convolutions (the total, rounded, shared
out between the stages); scalesearch measures the FLOPs of whatever comes back.
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
    # Multiples of 4, not 8: at the proxy's half width the stages have 8-64 channels, where steps of 8 are
    # coarse (16 channels x 1.19 stays 16; with steps of 4 it is 20).
    return max(8, int(round(c * width_mult / 4)) * 4)


def convs_per_stage(depth_mult: float) -> list[int]:
    """The network's convolutions (6 at depth 1) scaled and rounded as a whole, then shared out in proportion
    to STAGES (largest remainder first), at least one per stage.

    Rounding each stage up instead (1 conv x 1.2 -> 2) would add a conv to every stage at any depth above 1:
    depth 1.2 built 10 convs instead of 7, and `expand` missed its FLOP target by 95% at φ = 1.
    """
    base = [convs for _, convs in STAGES]
    total = max(len(base), round(sum(base) * depth_mult))
    shares = [convs * total / sum(base) for convs in base]
    counts = [max(1, math.floor(share)) for share in shares]
    by_remainder = sorted(range(len(base)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[:max(0, total - sum(counts))]:
        counts[i] += 1
    return counts


def build(width_mult: float, depth_mult: float, num_classes: int, dropout: float = 0.1) -> nn.Module:
    if width_mult <= 0 or depth_mult <= 0:
        raise ValueError(f"multipliers must be positive, got width {width_mult}, depth {depth_mult}")
    layers, cin = [], 3
    for (c, _), convs in zip(STAGES, convs_per_stage(depth_mult)):
        cout = channels(c, width_mult)
        for _ in range(convs):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil_mode: small inputs never shrink to 0 pixels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                         nn.Linear(cin, num_classes))
