"""Budget matching: after depth and width are rounded, the input resolution that lands on the FLOP target.

Rounding channels to multiples of 8 and blocks up to whole numbers moves a
candidate's measured FLOPs in steps, so (α, β, γ) taken literally often misses
the budget by more than the tolerance. Resolution is the one dimension with
fine steps, so it absorbs the rounding: keep the depth and width multipliers,
and pick the resolution whose *measured* FLOPs come closest to the target.
The γ actually used (resolution / base resolution) is recorded as `gamma_eff`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .cost import measure_cost
from .families import get_family


def match_resolution(flops_at: Callable[[int], int], target: float, *, start: int, multiple: int = 1) -> int:
    """The multiple of `multiple` whose flops_at(resolution) is closest to `target` (relative error).

    FLOPs never decrease with resolution (every conv's output size is a
    non-decreasing function of its input size), so: gallop from `start` to a
    bracket around the target, then bisect. A handful of measurements.
    """
    if multiple < 1 or target <= 0:
        raise ValueError("multiple must be >= 1 and target > 0")
    lowest = multiple
    r = max(lowest, int(round(start / multiple)) * multiple)
    if flops_at(r) >= target:
        hi, step = r, multiple
        while hi > lowest and flops_at(max(lowest, hi - step)) >= target:
            hi = max(lowest, hi - step)
            step *= 2
        lo = max(lowest, hi - step)
    else:
        lo, step = r, multiple
        while flops_at(lo + step) < target:
            lo += step
            step *= 2
            if lo > 64 * max(start, 1):
                return lo  # the target is unreachable upwards; the largest tried is the closest
        hi = lo + step
    # Invariant: flops_at(lo) < target <= flops_at(hi), unless lo is the lowest resolution.
    while hi - lo > multiple:
        mid = lo + (hi - lo) // (2 * multiple) * multiple
        if flops_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    candidates = [res for res in (lo, hi) if res >= lowest]
    return min(candidates, key=lambda res: (abs(math.log(flops_at(res) / target)), abs(res - start)))


@dataclass(frozen=True)
class MatchedCandidate:
    """One candidate as built: requested multipliers, matched resolution, measured cost, effective coefficients."""

    depth_mult: float
    width_mult: float
    resolution: int
    flops: int
    params: int
    flops_ratio: float  # measured flops / the base network's measured flops
    alpha_eff: float | None  # what rounding made of α: built blocks / base blocks
    beta_eff: float | None  # geometric mean over stages of built channels / base channels
    gamma_eff: float  # resolution / base resolution
    network: str | None  # the architecture and input size as built; equal strings train identically

    @property
    def flops_factor_eff(self) -> float | None:
        if self.alpha_eff is None or self.beta_eff is None:
            return None
        return self.alpha_eff * self.beta_eff**2 * self.gamma_eff**2


def effective_depth_width(family: str, *, depth_mult: float, width_mult: float, base_depth: float,
                          base_width: float) -> tuple[float | None, float | None]:
    """(α_eff, β_eff) of a network against its base, from the blocks and channels really built."""
    shape_of = get_family(family).built_shape
    if shape_of is None:
        return None, None
    built, base = shape_of(width_mult=width_mult, depth_mult=depth_mult), \
        shape_of(width_mult=base_width, depth_mult=base_depth)
    logs = [math.log(b / a) for a, b in zip(base.widths, built.widths)]
    return built.blocks / base.blocks, math.exp(sum(logs) / len(logs))


def build_matched(family: str, *, depth_mult: float, width_mult: float, target_ratio: float, base_flops: int,
                  base_depth: float, base_width: float, base_resolution: int, start_resolution: int,
                  num_classes: int, multiple: int = 1) -> MatchedCandidate:
    """Keep the depth and width multipliers; choose the resolution that brings measured FLOPs closest to target."""

    def flops_at(resolution: int) -> int:
        return measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                            num_classes=num_classes).flops

    resolution = match_resolution(flops_at, target_ratio * base_flops, start=start_resolution, multiple=multiple)
    return describe_candidate(family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                              base_flops=base_flops, base_depth=base_depth, base_width=base_width,
                              base_resolution=base_resolution, num_classes=num_classes)


def describe_candidate(family: str, *, depth_mult: float, width_mult: float, resolution: int, base_flops: int,
                       base_depth: float, base_width: float, base_resolution: int,
                       num_classes: int) -> MatchedCandidate:
    """Measure a network at a given resolution and state its effective coefficients against the base."""
    cost = measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                        num_classes=num_classes)
    alpha_eff, beta_eff = effective_depth_width(family, depth_mult=depth_mult, width_mult=width_mult,
                                                base_depth=base_depth, base_width=base_width)
    shape_of = get_family(family).built_shape
    network = None
    if shape_of is not None:
        shape = shape_of(width_mult=width_mult, depth_mult=depth_mult)
        network = f"{family} blocks {list(shape.repeats)} widths {list(shape.widths)} at {resolution}px"
    return MatchedCandidate(depth_mult, width_mult, resolution, cost.flops, cost.params, cost.flops / base_flops,
                            alpha_eff, beta_eff, resolution / base_resolution, network)


def match_multiplier(flops_at: Callable[[float], int], target: float, *, start: float,
                     relative_precision: float = 2e-3, limit: float = 64.0) -> float:
    """The multiplier m >= start whose flops_at(m) is closest to `target`, for FLOPs non-decreasing in m.

    For single-dimension baselines (depth only, width only): rounding makes FLOPs a step function of the
    multiplier, so bisect on the multiplier down to `relative_precision` and keep the better side.
    """
    lo = hi = start
    while flops_at(hi) < target:
        lo, hi = hi, hi * 2
        if hi > start * limit:
            return lo  # unreachable: the largest tried is the closest
    if hi == start:
        return start
    while hi - lo > relative_precision * lo:
        mid = (lo + hi) / 2
        if flops_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return min((lo, hi), key=lambda m: abs(math.log(flops_at(m) / target)))
