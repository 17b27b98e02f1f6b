"""How reproducible a measured latency is from one measurement to the next (scalesearch/latency.py).

    python benchmarks/latency_spread.py                          # CPU proxy and its 2x-FLOP versions, 5 each
    python benchmarks/latency_spread.py --runs 10 --batch 8 --json latency_spread.json
    python benchmarks/latency_spread.py --device cuda --batch 64

Each network is measured `--runs` times with measure_latency(cached=False), round-robin over the
networks so a change in the machine's load falls on all of them alike. Per network it prints the median
of the measurements' medians, their min and max, the run-to-run range (max - min) / median, and each
measurement's own spread (interquartile range of its timed repeats / its median). Budgeting on latency
can only tell apart networks whose difference is well above the run-to-run range.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

from scalesearch.cost import measure_cost
from scalesearch.errors import UserError
from scalesearch.latency import (CPU_THREADS, check_latency_batch, check_latency_device, describe_device,
                                 measure_latency)
from scalesearch.proxy import proxy_for


def networks(family: str, device: str) -> list[tuple[str, dict]]:
    """The device's proxy, and the three ways the default 2x grid doubles its FLOPs (plus a balanced one)."""
    proxy = proxy_for(device, family=family)
    w, d, r = proxy.width_mult, proxy.depth_mult, proxy.resolution
    root2 = math.sqrt(2)
    return [
        ("proxy", dict(width_mult=w, depth_mult=d, resolution=r)),
        ("2x depth", dict(width_mult=w, depth_mult=2 * d, resolution=r)),
        ("2x via width", dict(width_mult=w * root2, depth_mult=d, resolution=r)),
        ("2x via resolution", dict(width_mult=w, depth_mult=d, resolution=round(r * root2))),
        ("~2x balanced (1.2/1.1/1.15)", dict(width_mult=w * 1.1, depth_mult=d * 1.2, resolution=round(r * 1.15))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="efficientnet")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=CPU_THREADS, help="CPU threads during a measurement")
    parser.add_argument("--runs", type=int, default=5, help="measurements per network")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    try:
        check_latency_device(args.device)
        check_latency_batch(args.batch)
    except UserError as exc:
        parser.error(str(exc))
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    nets = networks(args.family, args.device)
    medians: dict[str, list[float]] = {name: [] for name, _ in nets}
    spreads: dict[str, list[float]] = {name: [] for name, _ in nets}
    for _ in range(args.runs):
        for name, dims in nets:  # round-robin: drift in the machine's load falls on every network alike
            figure = measure_latency(args.family, **dims, num_classes=args.num_classes, device=args.device,
                                     batch=args.batch, threads=args.threads, cached=False)
            medians[name].append(figure.median_ms)
            spreads[name].append(figure.spread)

    device = describe_device(args.device, threads=args.threads)
    print(f"{args.family}, batch {args.batch}, {args.runs} measurements each, on {device}")
    header = (f"{'network':<28} {'w':>6} {'d':>5} {'px':>4} {'MMAC':>7} {'median ms':>10} {'min':>8} {'max':>8} "
              f"{'range':>6}  own spread of each measurement")
    print(header)
    print("-" * len(header))
    rows = []
    for name, dims in nets:
        cost = measure_cost(args.family, **dims, num_classes=args.num_classes)
        values = medians[name]
        centre = statistics.median(values)
        row = dict(network=name, **dims, macs=cost.flops, median_ms=centre, min_ms=min(values), max_ms=max(values),
                   range=(max(values) - min(values)) / centre, medians_ms=values, spreads=spreads[name])
        rows.append(row)
        own = " ".join(f"{s:.1%}" for s in spreads[name])
        print(f"{name:<28} {dims['width_mult']:>6.3f} {dims['depth_mult']:>5.2f} {dims['resolution']:>4} "
              f"{cost.flops / 1e6:>7.1f} {centre:>10.3f} {min(values):>8.3f} {max(values):>8.3f} "
              f"{row['range']:>6.1%}  {own}")
    print("range = (max - min) / median of the measurements; own spread = IQR of a measurement's repeats / its median")
    if args.json:
        report = dict(family=args.family, device=device, batch=args.batch, runs=args.runs,
                      num_classes=args.num_classes, networks=rows)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
