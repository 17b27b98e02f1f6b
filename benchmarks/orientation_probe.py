"""A capacity cue tried for issue 7: the default data with its coarse pattern replaced by oriented gratings.

    python benchmarks/orientation_probe.py --orientations 12 --coarse-amplitude 0.16 0.40 -- \
        --width 0.437 --seed 0

The coarse pattern (bands / checker) becomes a square-wave grating at one of N orientations spread over
180 degrees, and each coarse class owns every third orientation (neighbours always belong to different
classes; the sets are closed under horizontal flips, as the trainer flips). Telling 15-degree steps apart
takes many orientation-tuned filters, a job for width or depth rather than pixels. The fine grating, the
colours and the noise are the default data's. Everything after `--` goes to benchmarks/recipe_probe.py
(network, seed, recipe overrides), which trains through the same code as `scalesearch train --threads 1`.

The variant is applied by replacing the default generator's per-chunk function for this process only; the
product's data are untouched. Figures and the decision: benchmarks/RESULTS.md, last section.
"""

from __future__ import annotations

import argparse
import math
import runpy
import sys
from pathlib import Path

import torch

import scalesearch.data.synthetic as synthetic


def orientation_sets(count: int) -> torch.Tensor:
    """[3, count // 3] angles in degrees: orientation k goes to class k mod 3, mirrored past 90 degrees."""
    sets: list[list[float]] = [[], [], []]
    for k in range(count):
        mirrored = k if k <= count // 2 else count - k  # a flip maps angle k to count - k: same class
        sets[mirrored % 3].append(180.0 * k / count)
    size = min(len(s) for s in sets)
    if any(len(s) != size for s in sets):
        raise SystemExit(f"--orientations {count}: the three classes would get unequal sets")
    return torch.tensor(sets)


def make_chunk(angles: torch.Tensor, coarse_amplitude: tuple[float, float], fine_amplitude: tuple[float, float],
               fine_period: tuple[float, float]):
    def uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(n, generator=g))[:, None, None]

    def chunk(labels, yy, xx, scale, g):
        n = len(labels)
        classes = len(synthetic.COARSE_PATTERNS)

        def wave(coord, period):
            p = uniform(g, n, *period) * scale
            return torch.sin(2 * math.pi * coord / p + uniform(g, n, 0, 2 * math.pi))

        fine = wave(torch.where((labels // classes == 1)[:, None, None], xx, yy), fine_period)
        pick = torch.randint(0, angles.shape[1], (n,), generator=g)
        theta = (angles[labels % classes, pick] * math.pi / 180)[:, None, None]
        pattern = torch.sign(wave(xx * torch.cos(theta) + yy * torch.sin(theta), synthetic._COARSE_PERIOD))
        background = torch.rand(n, 3, 1, 1, generator=g) * 0.5 + 0.25
        fine_colour = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.4
        coarse_colour = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.4
        img = (background + uniform(g, n, *fine_amplitude)[:, None] * fine_colour * fine[:, None]
               + uniform(g, n, *coarse_amplitude)[:, None] * coarse_colour * pattern[:, None])
        img = img + synthetic._NOISE * torch.randn(img.shape, generator=g)
        return (img.clamp(0, 1) * 255).round().to(torch.uint8)

    return chunk


def main() -> None:
    argv = sys.argv[1:]
    ours, rest = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orientations", type=int, default=12, help="angles over 180 degrees (a multiple of 6)")
    ap.add_argument("--coarse-amplitude", type=float, nargs=2, default=(0.16, 0.40), metavar=("LO", "HI"))
    ap.add_argument("--fine-amplitude", type=float, nargs=2, default=synthetic._FINE_AMPLITUDE,
                    metavar=("LO", "HI"), help="0 0 leaves only the coarse cue (accuracy then tops out at 0.5)")
    ap.add_argument("--fine-period", type=float, nargs=2, default=synthetic._FINE_PERIOD, metavar=("LO", "HI"),
                    help="px at 64 px; below 3.05 a grating is finer than the 42 px proxy can sample")
    args = ap.parse_args(ours)
    synthetic._chunk = make_chunk(orientation_sets(args.orientations), tuple(args.coarse_amplitude),
                                  tuple(args.fine_amplitude), tuple(args.fine_period))
    probe = Path(__file__).with_name("recipe_probe.py")
    sys.argv = [str(probe), *rest]
    runpy.run_path(str(probe), run_name="__main__")


if __name__ == "__main__":
    main()
