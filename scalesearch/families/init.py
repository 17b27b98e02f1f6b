"""Weight initialisation shared by the built-in families: torchvision's recipe for conv and BatchNorm layers, with
the BatchNorm that closes each residual branch at zero (every block starts as the identity)."""

from __future__ import annotations

from typing import Callable

from torch import nn


def init_conv_bn(model: nn.Module, *, linear: Callable[[nn.Linear], None] | None = None) -> None:
    """Kaiming-normal (fan out) convolutions with zero biases, BatchNorm at identity; `linear` initialises each
    linear layer (None: PyTorch's default, as torchvision's ResNet leaves it). Modules in registration order,
    so a seeded build draws the same numbers as before.

    A network built on the meta device (to count its cost) is left alone: its weights have no values, and
    initialising them would only cost time on every build."""
    if any(p.is_meta for p in model.parameters()):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")  # gain √2: ReLU's, and leaky ReLU's with slope 0
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear is not None:
            linear(m)
    # Zero the BatchNorm that closes each residual branch (Goyal et al. 2017; timm's `zero_init_last`): every
    # block starts as the identity, so a deeper proxy learns as fast as a shallower one in a few hundred steps;
    # without it a grid ranks depth by how slowly it starts.
    for m in model.modules():
        end = getattr(m, "residual_end", None)
        if isinstance(end, nn.BatchNorm2d):
            nn.init.zeros_(end.weight)
