"""The arms of `compare`: compound scaling against depth-only, width-only and resolution-only scaling.

This is the EfficientNet paper's single-dimension experiment on the user's data. Every arm is brought to
the same *measured* cost target (budget^φ times the proxy's cost, in the run's metric: FLOPs, activations
or latency), each in its own way:
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

from ..budget import MatchedCandidate, Reference, match_multiplier, match_resolution, resolution_cap
from ..scaling import Coefficients

ARM_NAMES = ("compound", "depth only", "width only", "resolution only")
BASELINE_NAME = "proxy (φ = 0)"


@dataclass(frozen=True)
class Arm:
    name: str
    built: MatchedCandidate
    target_ratio: float
    within_tolerance: bool
    note: str = ""  # how the arm departs from its pure definition, if it had to


def build_arms(ref: Reference, proxy, compound: Coefficients, *, phi: float, budget: float,
               tolerance: float) -> list[Arm]:
    """The four arms, in ARM_NAMES order, each measured on the network actually built, in `ref`'s metric."""
    target = budget**phi

    def value(*, depth_mult: float, width_mult: float, resolution: int) -> float:
        return ref.value_at(depth_mult=depth_mult, width_mult=width_mult, resolution=resolution)

    scaled = proxy.scaled(Coefficients(compound.alpha**phi, compound.beta**phi, compound.gamma**phi))
    # Matched as the grid matched it (a network no size lands inside is kept under the budget), so at φ = 1 the
    # compound arm is the run's winner, network for network, whatever its budget fit.
    compound_net = ref.match(depth_mult=scaled.depth_mult, width_mult=scaled.width_mult, target_ratio=target,
                             start_resolution=scaled.resolution, tolerance=tolerance,
                             highest=resolution_cap(ref.metric, ref.resolution))

    depth = match_multiplier(lambda m: value(depth_mult=m, width_mult=proxy.width_mult,
                                             resolution=proxy.resolution),
                             target * ref.value, start=proxy.depth_mult)
    width = match_multiplier(lambda m: value(depth_mult=proxy.depth_mult, width_mult=m,
                                             resolution=proxy.resolution),
                             target * ref.value, start=proxy.width_mult)
    resolution = match_resolution(lambda r: value(depth_mult=proxy.depth_mult, width_mult=proxy.width_mult,
                                                  resolution=r),
                                  target * ref.value, start=round(proxy.resolution * target**0.5))
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    name = ref.metric.name

    def single(depth_mult: float, width_mult: float) -> tuple[MatchedCandidate, str]:
        pure = ref.describe(depth_mult=depth_mult, width_mult=width_mult, resolution=proxy.resolution)
        if lo <= pure.cost_ratio <= hi:
            return pure, ""
        trimmed = _nearest_resolution_inside(lambda r: ref.describe(
            depth_mult=depth_mult, width_mult=width_mult, resolution=r),
            start=proxy.resolution, lo=lo, hi=hi, downwards=pure.cost_ratio > hi)
        if trimmed is None:
            return pure, ""
        return trimmed, (f"resolution {proxy.resolution} -> {trimmed.resolution}px: at the proxy's resolution this "
                         f"multiplier measures {pure.cost_ratio:.3f}x in {name}, outside the tolerance")

    def resolution_only() -> tuple[MatchedCandidate, str]:
        net = ref.describe(depth_mult=proxy.depth_mult, width_mult=proxy.width_mult, resolution=resolution)
        if lo <= net.cost_ratio <= hi:
            return net, ""
        # The cost moves in steps with resolution (stride-2 layers floor odd sizes): say where the step is.
        other = resolution + 1 if net.cost_ratio < target else max(1, resolution - 1)
        other_ratio = value(depth_mult=proxy.depth_mult, width_mult=proxy.width_mult, resolution=other) / ref.value
        return net, (f"no resolution lands within the tolerance: {resolution}px measures {net.cost_ratio:.3f}x, "
                     f"{other}px {other_ratio:.3f}x in {name}")

    nets = [
        (compound_net, ""),
        single(depth, proxy.width_mult),
        single(proxy.depth_mult, width),
        resolution_only(),
    ]
    if compound_net.under_budget:
        nets[0] = (compound_net, f"under budget: no size lands within the tolerance; {compound_net.resolution}px is "
                                 f"the closest below it ({compound_net.cost_ratio:.3f}x in {name})")
    return [Arm(name, net, target, lo <= net.cost_ratio <= hi, note)
            for name, (net, note) in zip(ARM_NAMES, nets)]


def _nearest_resolution_inside(describe, *, start: int, lo: float, hi: float, downwards: bool):
    """The candidate at the resolution nearest `start` whose cost ratio lies in [lo, hi], stepping 1 px in one
    direction; None if the ratio jumps past the band (the cost never decreases with resolution, so none lies
    further)."""
    step = -1 if downwards else 1
    r = start + step
    while 8 <= r <= 4 * start:
        net = describe(r)
        if lo <= net.cost_ratio <= hi:
            return net
        if (net.cost_ratio < lo) if downwards else (net.cost_ratio > hi):
            return None
        r += step
    return None


def baseline_arm(ref: Reference) -> Arm:
    """The unscaled proxy: the reference every arm's gain is measured from (not tested, only shown)."""
    return Arm(BASELINE_NAME, ref.describe(depth_mult=ref.depth_mult, width_mult=ref.width_mult,
                                           resolution=ref.resolution), 1.0, True)
