"""How a multiplier becomes whole channels and whole blocks: shared by every built-in family."""

from __future__ import annotations

import math


def round_channels(channels: float, width_mult: float, divisor: int = 8) -> int:
    """Scale a channel count and round to a multiple of 8, never losing more than 10%.

    The same rule as torchvision's `_make_divisible` (EfficientNet, MobileNetV2), so width 1.0
    reproduces the published networks and other widths round the way their authors did.
    """
    scaled = channels * width_mult
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth_mult: float) -> int:
    """Scale a stage's block count, rounding up so no stage disappears."""
    # The tiny epsilon keeps 3 * 1.2**2 style products from rounding up through float noise.
    return int(math.ceil(repeats * depth_mult - 1e-9))
