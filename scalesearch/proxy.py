"""Proxy presets: the small network every candidate is scaled from, chosen by device.

The base resolution is chosen with the measured-FLOP check in mind: stride-2
layers floor odd sizes, so FLOPs move in steps with resolution and only some
bases let the 2x grid land inside the ±10% tolerance.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, replace

from .families.registry import DEFAULT_FAMILY
from .scaling import Coefficients, ScaledDims
from .train import TrainConfig


@dataclass(frozen=True, kw_only=True)
class ProxyPreset:
    name: str
    depth_mult: float
    width_mult: float
    resolution: int  # input size of the φ = 0 proxy
    image_size: int  # size the data set is stored at (>= the largest candidate's resolution)
    synthetic_sizes: tuple[int, int, int]  # train, validation, test images of the embedded data
    synthetic_image_size: int  # size the embedded data is drawn at (headroom above the largest candidate)
    synthetic_base_resolution: int  # the base its cues are sized for (the device preset's, whatever the family)
    train: TrainConfig
    seed_cap: int  # most seeds a candidate gets while racing (--seeds auto)

    def scaled(self, c: Coefficients) -> ScaledDims:
        """The proxy at φ = 1: depth and width multipliers, and the nominal resolution rounded to a pixel.

        Resolution is rounded to 1 px, not 8: at proxy sizes a multiple of 8 would swamp γ.
        """
        return ScaledDims(depth_mult=self.depth_mult * c.alpha, width_mult=self.width_mult * c.beta,
                          resolution=max(8, int(round(self.resolution * c.gamma))))

    def refine_resolution(self, budget: float) -> int:
        """The largest input a refinement round (φ = 2, budget²) can ask for: all of budget² in resolution
        (γ = budget), rounded up to a multiple of 8."""
        return int(math.ceil(self.resolution * max(1.0, budget) / 8) * 8)

    def data_options(self, *, largest_resolution: int | None = None) -> dict:
        """The sizes `load_data` needs for this preset (image files, and the embedded data's own size and the
        base resolution its cues follow). `largest_resolution`: image files are decoded at least that large, so
        that a larger input gets real pixels (the refinement round's). The embedded data is drawn at about twice
        its base already: its finest cue is 2 px there, so a larger drawing would add nothing to see."""
        return {"image_size": max(self.image_size, largest_resolution or 0), "synthetic_sizes": self.synthetic_sizes,
                "synthetic_image_size": self.synthetic_image_size,
                "synthetic_base_resolution": self.synthetic_base_resolution}

    def for_budget(self, budget: float) -> "ProxyPreset":
        """The φ = 0 network a search at `budget` scales from: the preset itself for a budget above 1; below 1,
        the preset at resolution / √budget, so that the candidates land near the size the preset was chosen for
        (and its data are stored at). Scaled down from the preset itself, a 0.5x CPU candidate needs about 30 px,
        where one pixel crosses a stride-2 step (32 -> 33 px changes every feature map at once) and no grid point
        lands within ±10% (benchmarks/RESULTS.md, issue 24). The raised φ = 0 network is a reference whose cost
        is measured; a grid never trains it."""
        if budget >= 1:
            return self
        return replace(self, resolution=int(round(self.resolution / math.sqrt(budget))))

    def with_overrides(self, *, width_mult: float | None = None, depth_mult: float | None = None,
                       resolution: int | None = None, **train_overrides) -> "ProxyPreset":
        """The preset with the user's knobs (None: the preset's): the φ = 0 network's width, depth and input size,
        and training settings (epochs, batch_size, lr). A larger input gets its data stored larger in proportion,
        so the 2x grid's candidates still see real pixels."""
        proxy = self
        shape = {k: v for k, v in (("width_mult", width_mult), ("depth_mult", depth_mult)) if v is not None}
        if shape:
            proxy = replace(proxy, **shape)
        if resolution is not None and resolution != proxy.resolution:
            stored = int(math.ceil(proxy.image_size * resolution / proxy.resolution / 8) * 8)
            proxy = replace(proxy, resolution=resolution, image_size=max(proxy.image_size, stored),
                            synthetic_image_size=max(proxy.synthetic_image_size, stored))
        overrides = {k: v for k, v in train_overrides.items() if v is not None}
        return replace(proxy, train=replace(proxy.train, **overrides)) if overrides else proxy


#: Two CPU cores, a grid within 10 minutes, so a proxy gets only a few hundred training steps.
#: AdamW, not SGD: SGD with Nesterov momentum barely moves a width-0.25 network in so few steps.
#: Batch 64: batch 128 leaves too few steps, batch 32 spends too long on per-step overhead.
#: 42 px, not 40: at 40 px more of the default 2x grid has no resolution within 2x ±10%.
#: No weight decay, label smoothing or dropout: every proxy still underfits, so regularisers only slow it.
#: 5 epochs, not 4: after 4 a deep proxy's accuracy was a lottery (seeds of one network 0.66-0.90) that reordered
#: the grid run to run; 5 and 6 cut the seed spread to a third (6 does not fit the 6-minute grid with racing).
#: 2,000 validation images, not 1,000: at 0.97 the binomial spread of 1,000 was half a network's seed spread.
#: Three seeds at most while racing: a fourth does not fit the 6-minute grid.
CPU_PROXY = ProxyPreset(
    name="cpu", width_mult=0.25, depth_mult=0.5, resolution=42, image_size=64,
    synthetic_sizes=(3000, 2000, 1000), synthetic_image_size=80, synthetic_base_resolution=42,
    train=TrainConfig(epochs=5, batch_size=64, lr=0.011, optimizer="adamw", weight_decay=0.0, label_smoothing=0.0,
                      dropout=0.0),
    seed_cap=3,
)

#: One GPU: full-width B0 at 72 px (a base at which nearly all of the default 2x grid budget-matches), batch 512
#: in one CUDA graph per step.
#: Cues sized for the 72 px base, as the CPU preset's are for 42 px: φ = 0 must not read every image, or nothing ranks.
#: 24,000 images for 6 epochs: a 2x candidate trains in seconds, so the 2x grid with racing fits in minutes.
GPU_PROXY = ProxyPreset(
    name="gpu", width_mult=1.0, depth_mult=1.0, resolution=72, image_size=112,
    synthetic_sizes=(24000, 4000, 4000), synthetic_image_size=138, synthetic_base_resolution=72,
    train=TrainConfig(epochs=5, batch_size=512, lr=0.05),
    seed_cap=3,
)


def proxy_for(device_type: str, *, family: str = DEFAULT_FAMILY) -> ProxyPreset:
    """The device's preset, with the family's own φ = 0 network where it states one.

    Each built-in family's CPU proxy is chosen so that at least 90% of the default 2x grid can be
    budget-matched (benchmarks/proxy_coverage.py); the training recipe is the device's.
    """
    from .families import get_family

    preset = GPU_PROXY if device_type == "cuda" else CPU_PROXY
    spec = get_family(family)
    dims = spec.gpu_proxy if device_type == "cuda" else spec.cpu_proxy
    if dims is None:
        return preset
    return replace(preset, width_mult=dims.width_mult, depth_mult=dims.depth_mult, resolution=dims.resolution)
