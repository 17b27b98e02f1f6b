"""Budget matching: after depth and width are rounded, the input resolution that lands on the cost target.

Rounding channels to multiples of 8 and blocks up to whole numbers moves a
candidate's measured cost in steps, so (α, β, γ) taken literally often misses
the budget by more than the tolerance. Resolution is the one dimension with
fine steps, so it absorbs the rounding: keep the depth and width multipliers,
and pick the resolution whose *measured* cost (in the budget's metric: FLOPs,
activations or latency) comes closest to the target. The γ actually used
(resolution / base resolution) is recorded as `gamma_eff`.
A network that cannot land inside the tolerance but fits below it is kept at
its closest resolution under the budget ("under budget"), not thrown away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .cost import measure_cost
from .families import get_family
from .metrics import FLOPS, CostMetric
from .families.structure import Structure, built_structure
from .families.user import display_name


def match_resolution(flops_at: Callable[[int], float], target: float, *, start: int, multiple: int = 1,
                     highest: int | None = None) -> int:
    """The multiple of `multiple` whose flops_at(resolution) is closest to `target` (relative error).

    FLOPs and activations never decrease with resolution (every conv's output size is a non-decreasing
    function of its input size), and latency nearly so, so: gallop from `start` to a bracket around the
    target, then bisect. A handful of measurements. Above `highest` (default 64 x start) the target counts as
    out of reach: the largest size tried is returned.
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
            if lo > (highest if highest is not None else 64 * max(start, 1)):
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


@dataclass(frozen=True, kw_only=True)
class MatchedCandidate:
    """One candidate as built: requested multipliers, matched resolution, measured cost, effective coefficients."""

    depth_mult: float
    width_mult: float
    resolution: int
    flops: int
    params: int
    flops_ratio: float  # measured flops / the base network's measured flops
    # What rounding made of α and β. Built-in families: built blocks / base blocks, and the geometric mean over
    # stages of built channels / base channels. Other (user) families: estimates from the built modules, see
    # estimated_depth_width.
    alpha_eff: float | None
    beta_eff: float | None
    gamma_eff: float  # resolution / base resolution
    architecture: str | None  # what was built, at its input size; equal strings train identically (a run's
    # trials record it as their `network` attribute, grouped into network ids N1, N2, ... in reports)
    activations: int = 0  # output elements of conv and linear layers at batch 1
    latency_ms: float | None = None  # median forward time, where the budget is latency (else not measured)
    latency_spread: float | None = None  # that measurement's relative spread (latency.Latency.spread)
    cost_ratio: float = 0.0  # measured cost / the base network's, in the budget's metric (= flops_ratio for FLOPs)
    under_budget: bool = False  # no resolution lands inside the tolerance; kept at the closest size below it

    @property
    def flops_factor_eff(self) -> float | None:
        if self.alpha_eff is None or self.beta_eff is None:
            return None
        return self.alpha_eff * self.beta_eff**2 * self.gamma_eff**2

    def costs(self) -> dict:
        """The four figures every candidate carries, whatever the budget's metric (latency: None if unmeasured)."""
        return {"flops": self.flops, "params": self.params, "activations": self.activations,
                "latency_ms": self.latency_ms}


@dataclass(frozen=True, kw_only=True)
class Reference:
    """The φ = 0 network candidates are measured against, and the metric their budget holds on."""

    family: str
    depth_mult: float
    width_mult: float
    resolution: int
    num_classes: int
    metric: CostMetric = FLOPS
    flops: int
    value: float  # the base network's cost in `metric`

    @classmethod
    def measure(cls, family: str, *, depth_mult: float, width_mult: float, resolution: int, num_classes: int,
                metric: CostMetric = FLOPS) -> "Reference":
        flops = measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                             num_classes=num_classes).flops
        value = metric.value(family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                             num_classes=num_classes)
        return cls(family=family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                   num_classes=num_classes, metric=metric, flops=flops, value=value)

    def value_at(self, *, depth_mult: float, width_mult: float, resolution: int) -> float:
        """A network's cost in the budget's metric."""
        return self.metric.value(self.family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                                 num_classes=self.num_classes)

    def ratio_at(self, *, depth_mult: float, width_mult: float, resolution: int) -> float:
        return self.value_at(depth_mult=depth_mult, width_mult=width_mult, resolution=resolution) / self.value

    def describe(self, *, depth_mult: float, width_mult: float, resolution: int,
                 under_budget: bool = False) -> MatchedCandidate:
        return describe_candidate(self, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                                  under_budget=under_budget)

    def match(self, *, depth_mult: float, width_mult: float, target_ratio: float, start_resolution: int,
              tolerance: float | None = None, multiple: int = 1, highest: int | None = None) -> MatchedCandidate:
        return build_matched(self, depth_mult=depth_mult, width_mult=width_mult, target_ratio=target_ratio,
                             start_resolution=start_resolution, tolerance=tolerance, multiple=multiple,
                             highest=highest)


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


def estimated_depth_width(built: Structure, base: Structure) -> tuple[float | None, float | None]:
    """(α_eff, β_eff) of a network whose builder does not say what it built (a user's): estimates.

    The built-in definitions, with the stages found from the modules instead of declared: a stage is the
    weight layers (parametrised conv and linear) that write feature maps of one size. α_eff is their number
    against the base's, β_eff the geometric mean over stages of the ratio of their mean (geometric) output
    widths. A flat classifier (no feature map) is left out of both while any stage has a map: its width is the
    class count, fixed. On the built-in families these land within a few percent of the exact values
    (tests/test_user_network.py checks it).

    Rejected: β_eff as the cost that depth and resolution leave over, sqrt(flops_ratio / (α_eff·γ_eff²)) or
    sqrt(params_ratio / α_eff). Both read added depth as width wherever an added layer costs more than the
    average one: the example VGG at twice the depth and the same width gets β_eff 1.17 from FLOPs and 1.12 from
    parameters (a conv net's parameters sit in its last stage), 1.00 from its stages.
    """
    built_stages, base_stages = dict(built.stages), dict(base.stages)
    common = [size for size in base_stages if size in built_stages]
    mapped = [size for size in common if size != ()]
    common = mapped or common
    if not common:
        return None, None  # nothing at one feature-map size in both: no stage to compare
    alpha_eff = sum(len(built_stages[s]) for s in common) / sum(len(base_stages[s]) for s in common)
    logs = [_mean_log(built_stages[s]) - _mean_log(base_stages[s]) for s in common]
    return alpha_eff, math.exp(sum(logs) / len(logs))


def _mean_log(widths) -> float:
    return sum(math.log(w) for w in widths) / len(widths)


#: Latency barely moves with input size where a small network's time is per-layer overhead: matching on it
#: stops at this multiple of the proxy's resolution instead of chasing the budget to huge images.
LATENCY_RESOLUTION_CAP = 4


def resolution_cap(metric: CostMetric, base_resolution: int) -> int | None:
    """The largest resolution budget matching may pick in `metric` (None: no cap but match_resolution's own)."""
    return LATENCY_RESOLUTION_CAP * base_resolution if metric.name == "latency" else None


def build_matched(ref: Reference, *, depth_mult: float, width_mult: float, target_ratio: float,
                  start_resolution: int, tolerance: float | None = None, multiple: int = 1,
                  highest: int | None = None) -> MatchedCandidate:
    """Keep the depth and width multipliers; choose the resolution whose measured cost is closest to target.

    With `tolerance`, a network whose closest resolution lands outside target·(1 ± tolerance) is moved to the
    largest resolution whose cost stays below the target, and marked `under_budget`: it is cheaper than the
    budget allows, so it can only be a fair winner (it dominates whatever it beats). A network that lands
    above the band even at its smallest size is returned as it is (the caller rejects it).
    """
    def value_at(resolution: int) -> float:
        return ref.value_at(depth_mult=depth_mult, width_mult=width_mult, resolution=resolution)

    target = target_ratio * ref.value
    resolution = match_resolution(value_at, target, start=start_resolution, multiple=multiple, highest=highest)
    if highest is not None and resolution > highest:  # out of reach below `highest`: kept at the largest allowed
        resolution = highest - highest % multiple
    under = False
    if tolerance is not None:
        lo, hi = (1 - tolerance) * target, (1 + tolerance) * target
        if value_at(resolution) > hi:  # the closest size is over the band: the largest one not over the target
            below = resolution
            while below > multiple and value_at(below) > target:
                below -= multiple
            if value_at(below) <= target:
                resolution = below
        # Under budget only if even that size is below the band (it may be inside: log-closest is not band-closest).
        under = value_at(resolution) < lo
    return describe_candidate(ref, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                              under_budget=under)


def describe_candidate(ref: Reference, *, depth_mult: float, width_mult: float, resolution: int,
                       under_budget: bool = False) -> MatchedCandidate:
    """Measure a network at a given resolution and state its costs and effective coefficients against the base."""
    family = ref.family
    cost = measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                        num_classes=ref.num_classes)
    flops_ratio, gamma_eff = cost.flops / ref.flops, resolution / ref.resolution
    latency = None
    if ref.metric.name == "latency":  # its spread is recorded too
        latency = ref.metric.latency(family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                                     num_classes=ref.num_classes)
    value = ref.value_at(depth_mult=depth_mult, width_mult=width_mult, resolution=resolution)  # cached measurements
    shape_of = get_family(family).built_shape
    if shape_of is not None:
        alpha_eff, beta_eff = effective_depth_width(family, depth_mult=depth_mult, width_mult=width_mult,
                                                    base_depth=ref.depth_mult, base_width=ref.width_mult)
        shape = shape_of(width_mult=width_mult, depth_mult=depth_mult)
        architecture = f"{family} blocks {list(shape.repeats)} widths {list(shape.widths)} at {resolution}px"
    else:
        # Both probed at the base's resolution, so that a stage has one feature-map size in both.
        built, base = (built_structure(family, depth_mult=d, width_mult=w, num_classes=ref.num_classes,
                                       probe_resolution=ref.resolution)
                       for d, w in ((depth_mult, width_mult), (ref.depth_mult, ref.width_mult)))
        alpha_eff, beta_eff = estimated_depth_width(built, base)
        architecture = opaque_network_name(family, built, resolution=resolution)
    return MatchedCandidate(depth_mult=depth_mult, width_mult=width_mult, resolution=resolution, flops=cost.flops,
                            params=cost.params, flops_ratio=flops_ratio, alpha_eff=alpha_eff, beta_eff=beta_eff,
                            gamma_eff=gamma_eff, architecture=architecture, activations=cost.activations,
                            latency_ms=None if latency is None else latency.median_ms,
                            latency_spread=None if latency is None else latency.spread,
                            cost_ratio=value / ref.value, under_budget=under_budget)


def opaque_network_name(family: str, built: Structure, *, resolution: int) -> str:
    """`user vgg.py:build 11 weight layers sha256:3f2a9c1b7d4e at 40px`: readable, and equal only for one
    module tree (its digest) at one input size."""
    label = f"user {display_name(family)}" if get_family(family).is_user else family
    return f"{label} {built.weight_layers} weight layers sha256:{built.digest} at {resolution}px"


def match_multiplier(flops_at: Callable[[float], float], target: float, *, start: float,
                     relative_precision: float = 2e-3, limit: float = 64.0) -> float:
    """The multiplier m whose flops_at(m) is closest to `target`, for a cost non-decreasing in m: above `start`
    for a target above flops_at(start), below it otherwise.

    For single-dimension baselines (depth only, width only): rounding makes the cost a step function of the
    multiplier, so bisect on the multiplier down to `relative_precision` and keep the better side.
    """
    if flops_at(start) > target:  # scaling down: bracket from below, then bisect as upwards
        lo = start
        while flops_at(lo) > target:
            lo /= 2
            if lo < start / limit:
                return lo * 2  # unreachable: the smallest tried is the closest
        return _bisect_multiplier(flops_at, target, lo=lo, hi=min(start, lo * 2), precision=relative_precision)
    lo = hi = start
    while flops_at(hi) < target:
        lo, hi = hi, hi * 2
        if hi > start * limit:
            return lo  # unreachable: the largest tried is the closest
    if hi == start:
        return start
    return _bisect_multiplier(flops_at, target, lo=lo, hi=hi, precision=relative_precision)


def _bisect_multiplier(flops_at: Callable[[float], float], target: float, *, lo: float, hi: float,
                       precision: float) -> float:
    """Of a bracket flops_at(lo) < target <= flops_at(hi), the side closest to target once it is narrower than
    `precision` (relative)."""
    while hi - lo > precision * lo:
        mid = (lo + hi) / 2
        if flops_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return min((lo, hi), key=lambda m: abs(math.log(flops_at(m) / target)))
