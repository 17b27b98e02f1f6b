"""Aggregate training rate of several trials sharing one GPU, against one trial alone.

    python benchmarks/concurrent_trials.py --jobs 2                  # the φ = 0 GPU proxy, one GPU
    python benchmarks/concurrent_trials.py --jobs 2 --device cpu --images 512 --val 128 --epochs 1 \\
        --resolution 24 --width 0.25 --depth 0.25 --batch 64         # the script itself, on a CPU

Each trial is a process of its own, as `--devices 0 --jobs-per-device N` starts them: it draws the embedded
data on the device, builds the network, then waits at a barrier so that all N train at once. The figure is
images per second of wall time from the barrier to the last trial's end (warm-up, capture and evaluation
included, as in a grid), for N trials at once divided by one trial alone. One JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(args) -> None:
    import torch

    from scalesearch.data import synthetic_data
    from scalesearch.proxy import GPU_PROXY
    from scalesearch.train import TrainConfig, build_and_train, to_device

    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    proxy = GPU_PROXY
    data = synthetic_data(args.images, args.val, 0, proxy.synthetic_image_size, seed=args.index,
                          base_resolution=proxy.synthetic_base_resolution, device=device)
    splits = to_device(data, args.resolution, device)
    config = TrainConfig(**{**proxy.train.__dict__, "epochs": args.epochs, "batch_size": args.batch})
    if device.type == "cuda":
        torch.zeros(1, device=device).add_(1)
        torch.cuda.synchronize()
    Path(args.barrier, f"ready-{args.index}").touch()
    while not Path(args.barrier, "go").exists():
        time.sleep(0.01)
    start = time.time()
    result = build_and_train("efficientnet", width_mult=args.width, depth_mult=args.depth, splits=splits,
                             num_classes=data.num_classes, config=config, seed=args.index)
    end = time.time()
    images = (len(splits.train_y) // min(config.batch_size, len(splits.train_y))) * config.batch_size * args.epochs
    print(json.dumps({"start": start, "end": end, "images": images, "status": result.status,
                      "accuracy": result.accuracy, "train_seconds": result.train_seconds,
                      "warmup_seconds": result.warmup_seconds, "cuda_graph": result.cuda_graph}))


def run_together(args, jobs: int) -> dict:
    """Start `jobs` trials, release them together, and return the aggregate rate."""
    with tempfile.TemporaryDirectory() as barrier:
        cmd = [sys.executable, __file__, "--child", "--barrier", barrier, "--device", args.device,
               "--images", str(args.images), "--val", str(args.val), "--epochs", str(args.epochs),
               "--batch", str(args.batch), "--resolution", str(args.resolution), "--width", str(args.width),
               "--depth", str(args.depth)]
        procs = [subprocess.Popen(cmd + ["--index", str(i)], stdout=subprocess.PIPE, text=True) for i in range(jobs)]
        deadline = time.time() + 600
        while len(list(Path(barrier).glob("ready-*"))) < jobs:
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                for p in procs:
                    p.kill()
                raise SystemExit("a trial process did not get ready")
            time.sleep(0.05)
        Path(barrier, "go").touch()
        printed = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a trial process failed: " + ", ".join(str(p.returncode) for p in procs))
    outs = [json.loads(text.strip().splitlines()[-1]) for text in printed]
    wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    images = sum(o["images"] for o in outs)
    return {"jobs": jobs, "wall_seconds": round(wall, 2), "images": images,
            "images_per_second": round(images / wall, 1), "per_trial_seconds": [round(o["end"] - o["start"], 2)
                                                                               for o in outs],
            "statuses": [o["status"] for o in outs], "cuda_graph": [o["cuda_graph"] for o in outs]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=2, help="trials at once on the one device")
    p.add_argument("--device", default="cuda")
    p.add_argument("--images", type=int, default=None, help="training images per trial (default: the GPU preset's)")
    p.add_argument("--val", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=None, help="default: the GPU preset's")
    p.add_argument("--batch", type=int, default=None, help="default: the GPU preset's")
    p.add_argument("--resolution", type=int, default=None, help="default: the GPU preset's base")
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--depth", type=float, default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--barrier", help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    from scalesearch.proxy import GPU_PROXY

    defaults = {"images": GPU_PROXY.synthetic_sizes[0], "epochs": GPU_PROXY.train.epochs,
                "batch": GPU_PROXY.train.batch_size, "resolution": GPU_PROXY.resolution,
                "width": GPU_PROXY.width_mult, "depth": GPU_PROXY.depth_mult}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    alone = run_together(args, 1)
    together = run_together(args, args.jobs)
    report = {"device": args.device, "config": {k: getattr(args, k) for k in defaults}, "alone": alone,
              "together": together, "ratio": round(together["images_per_second"] / alone["images_per_second"], 2)}
    if args.device == "cuda":
        import torch

        report["device"] = torch.cuda.get_device_name(0)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
