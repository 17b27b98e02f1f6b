"""The on-device input pipeline: resizing and augmentation of uint8 batches already on the GPU."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_on_device(images: torch.Tensor, resolution: int, device: torch.device, chunk: int = 4096) -> torch.Tensor:
    """uint8 NCHW -> uint8 at `resolution`, on `device`. Antialiased, so fine detail truly goes at low res."""
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(device, non_blocking=True)
        if x.shape[-1] != resolution:
            x = F.interpolate(x.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
        out.append(x)
    return torch.cat(out)


def augment_batch(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crop (reflect-padded by `pad`) and horizontal flip, per sample, on x's device.

    Shapes and control flow are static, so this can live inside a CUDA graph.
    """
    n, c, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
        rows = (oy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
        x = padded.gather(2, rows)
        cols = (ox + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
        x = x.gather(3, cols)
    flip = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)
