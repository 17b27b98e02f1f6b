"""The embedded default data set: procedural 6-class images a 2-core CPU proxy learns in seconds.

Each class is a pair of cues at two scales, both of which survive horizontal flips and small crops
(the trainer's augmentations):

- a fine grating, horizontal or vertical, period 1.05-2.6 px at the proxy's base resolution (2-5 px as
  drawn at 80 px for the CPU preset's 42 px). Antialiased downsampling to a candidate's input size fades
  the gratings near its Nyquist limit, and how far it fades them depends on the size all the way up the 2x
  grid's range (1.15-1.5x the base): at the base the proxy reads few of the finest, at 1.5x nearly all. So
  accuracy keeps rising with resolution across the candidates instead of levelling off below them;
- a coarse pattern, horizontal bands, vertical bands or a checker of both (square waves, period
  6.6-13 px at the base): visible at every resolution.

Each cue has a random amplitude per image, its own random colour direction, on a random background colour
with pixel noise.

Cue lengths follow the proxy's base resolution, not the drawing size: the φ = 0 proxy sees the same
periods in its own pixels on every device (the CPU preset's 42 px and the GPU preset's 72 px alike), so the
cues that limit it sit at the same distance from its Nyquist limit and neither preset starts saturated.
Drawing at about 1.9x the base keeps the finest grating at 2 px or more, so it cannot alias into a coarser
one before the trainer resizes it. The data can be drawn on the training device, so a GPU run does not wait
for the host to draw it.
"""

from __future__ import annotations

import math

import torch

from .dataset import ImageData

FINE_ORIENTATIONS = ("h", "v")
COARSE_PATTERNS = ("h", "v", "checker")
SYNTHETIC_CLASSES = [f"fine-{f}-coarse-{c}" for f in FINE_ORIENTATIONS for c in COARSE_PATTERNS]

# Lengths are in pixels of a 64 px drawing for a 42 px proxy (the CPU preset's); cue_scale() maps them to
# any drawing size and base resolution.
_REFERENCE_SIZE, _REFERENCE_BASE = 64, 42
_FINE_PERIOD = (1.6, 4.0)
_FINE_AMPLITUDE = (0.25, 0.5)
_COARSE_PERIOD = (10.0, 20.0)
_COARSE_AMPLITUDE = (0.16, 0.40)
_NOISE = 0.04


def cue_scale(size: int, base_resolution: int = _REFERENCE_BASE) -> float:
    """Factor from the reference lengths to pixels of a `size` px drawing for a `base_resolution` px proxy."""
    return size / _REFERENCE_SIZE * (_REFERENCE_BASE / base_resolution)


def make_synthetic(num_images: int, size: int = 64, seed: int = 0, chunk: int = 2048, *,
                   base_resolution: int = _REFERENCE_BASE,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """`num_images` uint8 NCHW images of `size` px and their int64 labels, drawn for a `base_resolution` px
    proxy, reproducible from `seed` on the CPU and on one GPU model (a CUDA generator draws other numbers than
    the CPU's, and its large draws depend on the GPU's number of multiprocessors)."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32, device=device),
                            torch.arange(size, dtype=torch.float32, device=device), indexing="ij")
    yy, xx = yy[None], xx[None]  # [1, S, S]
    scale = cue_scale(size, base_resolution)
    images, labels = [], []
    for start in range(0, num_images, chunk):
        n = min(chunk, num_images - start)
        y = torch.randint(0, len(SYNTHETIC_CLASSES), (n,), generator=g, device=device)
        images.append(_chunk(y, yy, xx, scale, g))
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g, device=g.device))[:, None, None]


def _chunk(labels: torch.Tensor, yy: torch.Tensor, xx: torch.Tensor, scale: float, g: torch.Generator) -> torch.Tensor:
    n = len(labels)
    fine_vertical = (labels // len(COARSE_PATTERNS) == 1)[:, None, None]
    coarse = (labels % len(COARSE_PATTERNS))[:, None, None]

    def wave(coord: torch.Tensor, period: tuple[float, float]) -> torch.Tensor:
        p = _uniform(g, n, *period) * scale
        return torch.sin(2 * math.pi * coord / p + _uniform(g, n, 0, 2 * math.pi))

    fine = wave(torch.where(fine_vertical, xx, yy), _FINE_PERIOD)
    # Square waves with a floor on amplitude, not faint sines: every seed learns them, so seed luck does not rank.
    horizontal, vertical = torch.sign(wave(yy, _COARSE_PERIOD)), torch.sign(wave(xx, _COARSE_PERIOD))
    pattern = torch.where(coarse == 0, horizontal, torch.where(coarse == 1, vertical, horizontal * vertical))
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=g.device)

    background = rand(n, 3, 1, 1) * 0.5 + 0.25
    fine_colour = rand(n, 3, 1, 1) * 0.6 + 0.4
    coarse_colour = rand(n, 3, 1, 1) * 0.6 + 0.4
    img = (background
           + _uniform(g, n, *_FINE_AMPLITUDE)[:, None] * fine_colour * fine[:, None]
           + _uniform(g, n, *_COARSE_AMPLITUDE)[:, None] * coarse_colour * pattern[:, None])
    img = img + _NOISE * torch.randn(img.shape, generator=g, device=g.device)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def synthetic_data(num_train: int, num_val: int, num_test: int, size: int, seed: int = 0, *,
                   base_resolution: int = _REFERENCE_BASE, device: torch.device | str = "cpu") -> ImageData:
    """The embedded default. Splits come from disjoint generator seeds, so they never overlap."""
    def split(n: int, split_seed: int):
        return make_synthetic(n, size, split_seed, base_resolution=base_resolution, device=device)

    tr_x, tr_y = split(num_train, seed * 3 + 0)
    va_x, va_y = split(num_val, seed * 3 + 1)
    te_x, te_y = split(num_test, seed * 3 + 2) if num_test else (None, None)
    return ImageData("synthetic", tr_x, tr_y, va_x, va_y, len(SYNTHETIC_CLASSES), te_x, te_y,
                     list(SYNTHETIC_CLASSES))
