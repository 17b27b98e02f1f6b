"""Which share of the default 2x grid each family's CPU proxy can train (budget-matched, nothing trained).

    python -m benchmarks.proxy_coverage                       # every built-in family (this checkout)
    python -m benchmarks.proxy_coverage --family resnet --width 0.25 --depth 0.3 --resolution 40

Prints, per family, the points whose matched resolution lands within 2x ±10% and the distinct networks.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from scalesearch.coverage import grid_coverage
from scalesearch.families import family_names
from scalesearch.proxy import proxy_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", action="append", help="a family (repeatable); default: all built-in ones")
    parser.add_argument("--width", type=float, help="override the proxy's width multiplier")
    parser.add_argument("--depth", type=float, help="override the proxy's depth multiplier")
    parser.add_argument("--resolution", type=int, help="override the proxy's resolution")
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--step", type=float, default=0.05)
    parser.add_argument("--verbose", action="store_true", help="one line per grid point")
    args = parser.parse_args()
    for family in args.family or family_names():
        proxy = proxy_for("cpu", family=family)
        overrides = {k: v for k, v in (("width_mult", args.width), ("depth_mult", args.depth),
                                       ("resolution", args.resolution)) if v is not None}
        proxy = replace(proxy, **overrides)
        start = time.perf_counter()
        points = grid_coverage(family, proxy, budget=args.budget, step=args.step)
        accepted = [p for p in points if p.accepted]
        networks = {p.built.architecture for p in accepted}
        print(f"{family:<12} proxy width {proxy.width_mult:g} depth {proxy.depth_mult:g} {proxy.resolution}px: "
              f"{len(accepted)}/{len(points)} points within {args.budget:g}x ±10% "
              f"({100 * len(accepted) / len(points):.0f}%), {len(networks)} distinct networks, "
              f"{time.perf_counter() - start:.1f}s")
        if args.verbose:
            for p in points:
                c, m = p.coefficients, p.built
                print(f"    α={c.alpha:.3f} β={c.beta:.3f} -> {m.resolution}px ratio {m.flops_ratio:.3f}"
                      f"{'' if p.accepted else '  REJECTED'}")


if __name__ == "__main__":
    main()
