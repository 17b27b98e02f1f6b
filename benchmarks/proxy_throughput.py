"""Training images/s of the B0 proxy: our trainer (whole-step CUDA graph) vs a plain eager loop.

    python benchmarks/proxy_throughput.py                      # one GPU: 64 px, batch 512, bf16
    python benchmarks/proxy_throughput.py --device cpu --batch 32 --resolution 32 --images 1024 --epochs 1

Both sides train the same architecture on the same device-resident data in the
same process; the ratio is what issue 3 judges (target >= 2.5x on one H100).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from scalesearch.data import ImageData, augment_batch, make_synthetic
from scalesearch.families import get_family
from scalesearch.train import TrainConfig, _normalise, to_device, train_proxy


def eager_baseline(splits, width, depth, classes, batch, steps, device) -> float:
    """The loop most people write: torch.optim.SGD, autocast, channels_last, one launch per op."""
    torch.manual_seed(0)
    model = get_family("efficientnet").build(width, depth, classes).to(device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    n = len(splits.train_y)

    def step(i):
        idx = torch.randint(0, n, (batch,), device=device)
        x = _normalise(augment_batch(splits.train_x[idx], 4), on_cuda)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):
            loss = F.cross_entropy(model(x), splits.train_y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(5):  # warm-up: cuDNN autotuning, allocator
        step(i)
    if on_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    if on_cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--images", type=int, default=40960)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--depth", type=float, default=1.0)
    args = p.parse_args()
    device = torch.device(args.device)
    # Drawn on the device: the CPU would take longer to draw them than the GPU to train on them.
    x, y = make_synthetic(args.images, args.resolution, seed=0, device=device)
    vx, vy = make_synthetic(max(args.batch, 1024), args.resolution, seed=1, device=device)
    splits = to_device(ImageData("bench", x, y, vx, vy, 6), args.resolution, device)
    steps = args.images // args.batch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    eager = eager_baseline(splits, args.width, args.depth, 6, args.batch, steps, device)
    eager_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    model = get_family("efficientnet").build(args.width, args.depth, 6)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=0.05, bn_recalibration_images=args.batch)
    result = train_proxy(model, splits, cfg, seed=0)
    ours_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None

    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "resolution": args.resolution, "batch": args.batch,
        "width": args.width, "depth": args.depth, "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "eager_images_per_second": round(eager), "ours_images_per_second": round(result.images_per_second),
        "speedup": round(result.images_per_second / eager, 2), "cuda_graph": result.cuda_graph,
        "ours_warmup_capture_seconds": round(result.warmup_seconds, 3), "ours_status": result.status,
        "eager_peak_gib": eager_peak and round(eager_peak, 2), "ours_peak_gib": ours_peak and round(ours_peak, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
