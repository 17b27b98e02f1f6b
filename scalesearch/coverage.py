"""How much of a grid a proxy can train: every point budget-matched, without training anything.

A grid point is trained only if some input resolution brings the rounded network's measured FLOPs
within budget·(1 ± tolerance) of the proxy's (see budget.py). Whether that happens depends on the
proxy's width, depth and resolution, so each family's CPU proxy is chosen with this check.
"""

from __future__ import annotations

from dataclasses import dataclass

from .budget import MatchedCandidate, Reference
from .scaling import Coefficients, grid_candidates


@dataclass(frozen=True)
class GridPoint:
    coefficients: Coefficients
    built: MatchedCandidate
    accepted: bool  # within budget·(1 ± tolerance): it would be trained


def grid_coverage(family: str, proxy, *, budget: float = 2.0, step: float = 0.05, tolerance: float = 0.1,
                  num_classes: int = 6) -> list[GridPoint]:
    """Every point of the grid `scalesearch grid --budget B --step S` would queue, matched as it would be."""
    ref = Reference.measure(family, depth_mult=proxy.depth_mult, width_mult=proxy.width_mult,
                            resolution=proxy.resolution, num_classes=num_classes)
    lo, hi = budget * (1 - tolerance), budget * (1 + tolerance)
    points = []
    for c in grid_candidates(budget, step):
        dims = proxy.scaled(c)
        m = ref.match(depth_mult=dims.depth_mult, width_mult=dims.width_mult, target_ratio=budget,
                      start_resolution=dims.resolution)
        points.append(GridPoint(c, m, lo <= m.flops_ratio <= hi))
    return points
