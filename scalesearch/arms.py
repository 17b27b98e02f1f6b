"""The arms of `compare`: compound scaling against depth-only, width-only and resolution-only scaling.

This is the EfficientNet paper's single-dimension experiment on the user's data. Every arm is brought to
the same *measured* FLOP target (budget^φ times the proxy's FLOPs), each in its own way:
- compound: the run's (α, β, γ) raised to φ, with the resolution matched to the target (as in `grid`),
  so at φ = 1 it is the run's winner, network for network;
- depth only / width only: width (or depth) and resolution stay the proxy's; the one multiplier is
  bisected until the rounded network's measured FLOPs are closest to the target;
- resolution only: depth and width stay the proxy's; the resolution (1-pixel steps) closest to the target.
Depth moves FLOPs in coarse steps (one more block at an early stage can add a third of the proxy's cost),
so pure depth or width scaling can miss the tolerance. Then, and only then, the arm keeps its scaled
multiplier and the resolution is trimmed in 1-pixel steps until the measured FLOPs land inside it (the
first size inside, not the one closest to the target: the arm should depart from its definition as
little as it can, and trimming further hid the data's fine cue from it); the arm says so in `note`, and
`within_tolerance` says whether it landed inside budget^φ·(1 ± tolerance).
"""

from __future__ import annotations

from dataclasses import dataclass

from .budget import MatchedCandidate, build_matched, describe_candidate, match_multiplier, match_resolution
from .cost import measure_cost
from .scaling import Coefficients

ARM_NAMES = ("compound", "depth only", "width only", "resolution only")
BASELINE_NAME = "proxy (φ = 0)"


@dataclass(frozen=True)
class Arm:
    name: str
    built: MatchedCandidate
    target_ratio: float
    within_tolerance: bool
    note: str = ""  # how the arm departs from its pure definition, if it had to


def build_arms(family: str, proxy, compound: Coefficients, *, phi: float, budget: float, tolerance: float,
               base_flops: int, num_classes: int) -> list[Arm]:
    """The four arms, in ARM_NAMES order, each measured on the network actually built."""
    target = budget**phi
    base = dict(base_depth=proxy.depth_mult, base_width=proxy.width_mult, base_resolution=proxy.resolution,
                base_flops=base_flops, num_classes=num_classes)

    def flops(*, depth_mult: float, width_mult: float, resolution: int) -> int:
        return measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                            num_classes=num_classes).flops

    scaled = proxy.scaled(Coefficients(compound.alpha**phi, compound.beta**phi, compound.gamma**phi))
    compound_net = build_matched(family, depth_mult=scaled.depth_mult, width_mult=scaled.width_mult,
                                 target_ratio=target, start_resolution=scaled.resolution, **base)

    depth = match_multiplier(lambda m: flops(depth_mult=m, width_mult=proxy.width_mult,
                                             resolution=proxy.resolution),
                             target * base_flops, start=proxy.depth_mult)
    width = match_multiplier(lambda m: flops(depth_mult=proxy.depth_mult, width_mult=m,
                                             resolution=proxy.resolution),
                             target * base_flops, start=proxy.width_mult)
    resolution = match_resolution(lambda r: flops(depth_mult=proxy.depth_mult, width_mult=proxy.width_mult,
                                                  resolution=r),
                                  target * base_flops, start=round(proxy.resolution * target**0.5))
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)

    def single(depth_mult: float, width_mult: float) -> tuple[MatchedCandidate, str]:
        pure = describe_candidate(family, depth_mult=depth_mult, width_mult=width_mult,
                                  resolution=proxy.resolution, **base)
        if lo <= pure.flops_ratio <= hi:
            return pure, ""
        trimmed = _nearest_resolution_inside(lambda r: describe_candidate(
            family, depth_mult=depth_mult, width_mult=width_mult, resolution=r, **base),
            start=proxy.resolution, lo=lo, hi=hi, downwards=pure.flops_ratio > hi)
        if trimmed is None:
            return pure, ""
        return trimmed, (f"resolution {proxy.resolution} -> {trimmed.resolution}px: at the proxy's resolution this "
                         f"multiplier measures {pure.flops_ratio:.3f}x, outside the tolerance")

    def resolution_only() -> tuple[MatchedCandidate, str]:
        net = describe_candidate(family, depth_mult=proxy.depth_mult, width_mult=proxy.width_mult,
                                 resolution=resolution, **base)
        if lo <= net.flops_ratio <= hi:
            return net, ""
        # FLOPs move in steps with resolution (stride-2 layers floor odd sizes): say where the step is.
        other = resolution + 1 if net.flops_ratio < target else max(1, resolution - 1)
        other_ratio = flops(depth_mult=proxy.depth_mult, width_mult=proxy.width_mult, resolution=other) / base_flops
        return net, (f"no resolution lands within the tolerance: {resolution}px measures {net.flops_ratio:.3f}x, "
                     f"{other}px {other_ratio:.3f}x")

    nets = [
        (compound_net, ""),
        single(depth, proxy.width_mult),
        single(proxy.depth_mult, width),
        resolution_only(),
    ]
    return [Arm(name, net, target, lo <= net.flops_ratio <= hi, note)
            for name, (net, note) in zip(ARM_NAMES, nets)]


def _nearest_resolution_inside(describe, *, start: int, lo: float, hi: float, downwards: bool):
    """The candidate at the resolution nearest `start` whose FLOP ratio lies in [lo, hi], stepping 1 px in one
    direction; None if the ratio jumps past the band (FLOPs never decrease with resolution, so none lies further)."""
    step = -1 if downwards else 1
    r = start + step
    while 8 <= r <= 4 * start:
        net = describe(r)
        if lo <= net.flops_ratio <= hi:
            return net
        if (net.flops_ratio < lo) if downwards else (net.flops_ratio > hi):
            return None
        r += step
    return None


def baseline_arm(family: str, proxy, *, base_flops: int, num_classes: int) -> Arm:
    """The unscaled proxy: the reference every arm's gain is measured from (not tested, only shown)."""
    built = describe_candidate(family, depth_mult=proxy.depth_mult, width_mult=proxy.width_mult,
                               resolution=proxy.resolution, base_depth=proxy.depth_mult, base_width=proxy.width_mult,
                               base_resolution=proxy.resolution, base_flops=base_flops, num_classes=num_classes)
    return Arm(BASELINE_NAME, built, 1.0, True)
