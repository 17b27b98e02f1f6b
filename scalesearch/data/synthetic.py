"""The embedded default data set: procedural 6-class images (kept as is; to be replaced)."""

from __future__ import annotations

import torch

from .dataset import ImageData

SYNTHETIC_TEXTURES = ("hstripes", "vstripes")
SYNTHETIC_SHAPES = ("disc", "ring", "cross")
SYNTHETIC_CLASSES = [f"{shape}-on-{texture}" for texture in SYNTHETIC_TEXTURES for shape in SYNTHETIC_SHAPES]


def make_synthetic(num_images: int, size: int = 64, seed: int = 0, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Procedural 6-class images where resolution, receptive field and capacity each matter.

    The class is (orientation of fine background stripes) x (shape of a large object):
    - the stripes have a 5-pixel period at 64 px and low contrast, so they fade
      when the input is downsampled: finer inputs pay off;
    - the object (disc, ring or cross, 20-32 px across at 64 px) can only be
      told apart by a receptive field that spans it: depth pays off;
    - colours, contrast, positions, sizes, a distractor blob and pixel noise vary
      per image: capacity (width) pays off.
    Every label survives horizontal flips and small crops, the trainer's augmentations.
    """
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for start in range(0, num_images, chunk):
        n = min(chunk, num_images - start)
        x, y = _synthetic_chunk(n, size, g)
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def _rand(g, n, lo, hi):
    return (lo + (hi - lo) * torch.rand(n, generator=g))[:, None, None]


def _synthetic_chunk(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    s = size / 64.0  # lengths below are given at 64 px and scaled
    labels = torch.randint(0, len(SYNTHETIC_CLASSES), (n,), generator=g)
    horizontal = (labels < len(SYNTHETIC_SHAPES))[:, None, None]
    shape = (labels % len(SYNTHETIC_SHAPES))[:, None, None]

    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    yy, xx = yy[None], xx[None]  # [1, S, S]

    # Background: a random colour carrying low-contrast stripes of a 5 px period.
    period = 5.0 * s
    coord = torch.where(horizontal, yy, xx) + _rand(g, n, 0, period)
    stripes = (((coord % period) < period / 2).float() - 0.5)[:, None]  # [n, 1, S, S], +-0.5
    bg = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.2
    contrast = torch.rand(n, 3, 1, 1, generator=g) * 0.25 + 0.15
    img = bg + contrast * stripes

    def paste(mask, colour):
        nonlocal img
        img = torch.where(mask[:, None], colour, img)

    # A smaller distractor blob (an ellipse) that is none of the class shapes.
    cy, cx = _rand(g, n, 6 * s, size - 6 * s), _rand(g, n, 6 * s, size - 6 * s)
    ry, rx = _rand(g, n, 2 * s, 5 * s), _rand(g, n, 2 * s, 5 * s)
    paste(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1, torch.rand(n, 3, 1, 1, generator=g))

    # The object: radius 10-16 px, placed fully inside the image, solid colour.
    r = _rand(g, n, 10 * s, 16 * s)
    oy = r + 1 + (size - 2 * r - 2) * torch.rand(n, 1, 1, generator=g)
    ox = r + 1 + (size - 2 * r - 2) * torch.rand(n, 1, 1, generator=g)
    dy, dx = (yy - oy).abs(), (xx - ox).abs()
    dist = (dy**2 + dx**2).sqrt()
    bar = r * 0.35
    inside = torch.where(shape == 0, dist <= r,
                         torch.where(shape == 1, (dist <= r) & (dist >= r * 0.55),
                                     ((dy <= bar) & (dx <= r)) | ((dx <= bar) & (dy <= r))))
    paste(inside, torch.rand(n, 3, 1, 1, generator=g))

    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels


def synthetic_data(num_train: int, num_val: int, num_test: int, size: int, seed: int = 0) -> ImageData:
    """The embedded default. Splits come from disjoint generator seeds, so they never overlap."""
    tr_x, tr_y = make_synthetic(num_train, size, seed * 3 + 0)
    va_x, va_y = make_synthetic(num_val, size, seed * 3 + 1)
    te_x, te_y = make_synthetic(num_test, size, seed * 3 + 2) if num_test else (None, None)
    return ImageData("synthetic", tr_x, tr_y, va_x, va_y, len(SYNTHETIC_CLASSES), te_x, te_y,
                     list(SYNTHETIC_CLASSES))
