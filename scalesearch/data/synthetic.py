"""The embedded default data set: procedural 6-class images a 2-core CPU proxy learns in seconds.

Each class is a pair of cues at two scales, both of which survive horizontal flips and small crops
(the trainer's augmentations):

- a fine grating, horizontal or vertical, period 1.6-4 px at 64 px (2-5 px as drawn at the CPU preset's
  80 px). Antialiased downsampling to a candidate's input size fades the gratings near its Nyquist limit,
  and how far it fades them depends on the size all the way up the 2x grid's range (48-62 px): at 42 px
  the proxy reads few of the finest, at 62 px nearly all. So accuracy keeps rising with resolution
  across the candidates instead of levelling off below them;
- a coarse pattern, horizontal bands, vertical bands or a checker of both (square waves, period
  10-20 px): visible at every resolution.

Each cue has a random amplitude per image, its own random colour direction, on a random background colour
with pixel noise.

History (benchmarks/RESULTS.md). Periods 3-6 px drawn at 64 px were readable at every candidate size once
the proxy learned well (zero-initialised residual ends): the 2x grid's candidates all scored 0.90-0.98
within seed noise and 16-epoch training reached 1.000 for all of the top six, so nothing could rank them.
Drawing the finer gratings needs headroom above the largest candidate: at 64 px a 1.6 px period would
alias into a coarser grating readable at any size, hence the 80 px drawing size (ProxyPreset
.synthetic_image_size). A log-uniform amplitude down to 0.03 made long training rank by resolution
without saturating (16 epochs: 0.75 at 56 px, 0.91 at 62 px) but the 4-epoch proxy then barely found the
grating (0.50-0.56); amplitude 0.25-0.5 is found in a few steps. The coarse pattern is sharp-edged and
strong (amplitude 0.16-0.40): as faint sine waves it was a seed lottery, learned in ~190 steps on some
seeds and not others. The earlier shapes-on-stripes design left every proxy near 1/3.
"""

from __future__ import annotations

import math

import torch

from .dataset import ImageData

FINE_ORIENTATIONS = ("h", "v")
COARSE_PATTERNS = ("h", "v", "checker")
SYNTHETIC_CLASSES = [f"fine-{f}-coarse-{c}" for f in FINE_ORIENTATIONS for c in COARSE_PATTERNS]

# Lengths are given at 64 px and scaled with the stored size.
_FINE_PERIOD = (1.6, 4.0)
_FINE_AMPLITUDE = (0.25, 0.5)
_COARSE_PERIOD = (10.0, 20.0)
_COARSE_AMPLITUDE = (0.16, 0.40)
_NOISE = 0.04


def make_synthetic(num_images: int, size: int = 64, seed: int = 0, chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """`num_images` uint8 NCHW images of `size` px and their int64 labels, reproducible from `seed`."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    yy, xx = yy[None], xx[None]  # [1, S, S]
    scale = size / 64.0
    images, labels = [], []
    for start in range(0, num_images, chunk):
        n = min(chunk, num_images - start)
        y = torch.randint(0, len(SYNTHETIC_CLASSES), (n,), generator=g)
        images.append(_chunk(y, yy, xx, scale, g))
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g))[:, None, None]


def _chunk(labels: torch.Tensor, yy: torch.Tensor, xx: torch.Tensor, scale: float, g: torch.Generator) -> torch.Tensor:
    n = len(labels)
    fine_vertical = (labels // len(COARSE_PATTERNS) == 1)[:, None, None]
    coarse = (labels % len(COARSE_PATTERNS))[:, None, None]

    def wave(coord: torch.Tensor, period: tuple[float, float]) -> torch.Tensor:
        p = _uniform(g, n, *period) * scale
        return torch.sin(2 * math.pi * coord / p + _uniform(g, n, 0, 2 * math.pi))

    fine = wave(torch.where(fine_vertical, xx, yy), _FINE_PERIOD)
    # Square waves with a higher floor on amplitude: learned on every seed tried, where faint sine waves were a
    # lottery next to the grating (benchmarks/RESULTS.md).
    horizontal, vertical = torch.sign(wave(yy, _COARSE_PERIOD)), torch.sign(wave(xx, _COARSE_PERIOD))
    pattern = torch.where(coarse == 0, horizontal, torch.where(coarse == 1, vertical, horizontal * vertical))
    background = torch.rand(n, 3, 1, 1, generator=g) * 0.5 + 0.25
    fine_colour = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.4
    coarse_colour = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.4
    img = (background
           + _uniform(g, n, *_FINE_AMPLITUDE)[:, None] * fine_colour * fine[:, None]
           + _uniform(g, n, *_COARSE_AMPLITUDE)[:, None] * coarse_colour * pattern[:, None])
    img = img + _NOISE * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)


def synthetic_data(num_train: int, num_val: int, num_test: int, size: int, seed: int = 0) -> ImageData:
    """The embedded default. Splits come from disjoint generator seeds, so they never overlap."""
    tr_x, tr_y = make_synthetic(num_train, size, seed * 3 + 0)
    va_x, va_y = make_synthetic(num_val, size, seed * 3 + 1)
    te_x, te_y = make_synthetic(num_test, size, seed * 3 + 2) if num_test else (None, None)
    return ImageData("synthetic", tr_x, tr_y, va_x, va_y, len(SYNTHETIC_CLASSES), te_x, te_y,
                     list(SYNTHETIC_CLASSES))
