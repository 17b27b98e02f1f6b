"""Compound-scaling arithmetic: coefficients, budgets, φ ranges and grids.

Pure math on purpose (no torch import), so the CLI can validate input and
plan a search before anything heavy is loaded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The EfficientNet paper's grid-search result (Tan & Le 2019, section 3.3).
PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA = 1.2, 1.1, 1.15


@dataclass(frozen=True)
class ScalingLaw:
    """How a cost grows with depth, width and resolution: cost ∝ d^depth · w^width · r^resolution.

    FLOPs grow as d·w²·r² (the paper's α·β²·γ²); activations, the output elements of conv and linear layers
    (Dollár et al. 2021), as d·w·r²: a width step adds channels once to a layer's output, twice to its FLOPs.
    """

    depth: float
    width: float
    resolution: float
    text: str  # the step's factor as the tables write it

    def factor(self, alpha: float, beta: float, gamma: float) -> float:
        return alpha**self.depth * beta**self.width * gamma**self.resolution


FLOPS_LAW = ScalingLaw(1.0, 2.0, 2.0, "α·β²·γ²")
ACTIVATIONS_LAW = ScalingLaw(1.0, 1.0, 2.0, "α·β·γ²")


@dataclass(frozen=True)
class Coefficients:
    """Depth (α), width (β) and resolution (γ) change per step of φ: all >= 1 (a step up, the paper's), or
    all <= 1 (a step down, found with a budget below 1)."""

    alpha: float
    beta: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value:g}")
        values = (self.alpha, self.beta, self.gamma)
        if min(values) < 1.0 < max(values):
            raise ValueError(f"α, β, γ must all be >= 1 (a step up) or all <= 1 (a step down), got "
                             f"{self.alpha:g}, {self.beta:g}, {self.gamma:g}: compound scaling moves every "
                             "dimension the same way")

    @property
    def flops_factor(self) -> float:
        """α·β²·γ²: the ideal FLOP growth of one φ step."""
        return FLOPS_LAW.factor(self.alpha, self.beta, self.gamma)

    def factor(self, law: ScalingLaw) -> float:
        """The ideal growth of one φ step of the cost that follows `law`."""
        return law.factor(self.alpha, self.beta, self.gamma)

    @property
    def scales_down(self) -> bool:
        return max(self.alpha, self.beta, self.gamma) <= 1.0 and min(self.alpha, self.beta, self.gamma) < 1.0

    def step_up(self) -> "Coefficients":
        """The same step read upwards: a step down (α, β, γ <= 1) is φ = -1 of (1/α, 1/β, 1/γ)."""
        if not self.scales_down:
            return self
        return Coefficients(1.0 / self.alpha, 1.0 / self.beta, 1.0 / self.gamma)

    def scaled(self, phi: float, base_resolution: int, resolution_multiple: int = 8) -> "ScaledDims":
        """Multipliers and input size of the member at compound coefficient φ."""
        return ScaledDims(
            depth_mult=self.alpha**phi,
            width_mult=self.beta**phi,
            resolution=round_resolution(base_resolution * self.gamma**phi, resolution_multiple),
        )


@dataclass(frozen=True, kw_only=True)
class ScaledDims:
    depth_mult: float
    width_mult: float
    resolution: int


def round_resolution(resolution: float, multiple: int = 8) -> int:
    """Nearest multiple of `multiple` (at least one multiple)."""
    if multiple < 1:
        raise ValueError(f"resolution multiple must be >= 1, got {multiple}")
    return max(multiple, int(round(resolution / multiple)) * multiple)


def gamma_for_budget(alpha: float, beta: float, budget: float, law: ScalingLaw = FLOPS_LAW) -> float:
    """γ that makes the law's factor (α·β²·γ² for FLOPs) equal the budget exactly."""
    return (budget / (alpha**law.depth * beta**law.width)) ** (1.0 / law.resolution)


def nominal_gamma(alpha: float, beta: float, budget: float, law: ScalingLaw = FLOPS_LAW) -> float:
    """γ of a grid point: solved from the budget, and never past 1 the wrong way (a point whose α and β alone
    spend the budget keeps the base resolution)."""
    gamma = gamma_for_budget(alpha, beta, budget, law)
    return max(1.0, gamma) if budget >= 1 else min(1.0, gamma)


def coefficients_from_intervals(alpha_range: tuple[float, float], beta_range: tuple[float, float], budget: float,
                                law: ScalingLaw = FLOPS_LAW) -> Coefficients:
    """One point of a network's interval (engine/networks.py, POINT_RULE): α and β at the geometric centre of
    their intervals, γ solved from the law so that the three obey it exactly (as a grid point's γ is: kept at 1
    where α and β alone would overspend). The centre, not an end: any value in the interval trained the same
    network, so the evidence favours none of them."""
    alpha = math.sqrt(alpha_range[0] * alpha_range[1])
    beta = math.sqrt(beta_range[0] * beta_range[1])
    return Coefficients(alpha, beta, nominal_gamma(alpha, beta, budget, law))


def coefficients_from_simplex(s1: float, s2: float, budget: float, law: ScalingLaw = FLOPS_LAW) -> Coefficients:
    """Map (s1, s2) in [0, 1]² onto coefficients whose law factor (α·β²·γ² for FLOPs) equals the budget exactly.

    α takes the share s1 of log(budget); width and resolution split the rest by s2. This builds the equality
    constraint into the parametrisation, so samplers never propose an infeasible point, and all three stay on
    the budget's side of 1 (>= 1 for a budget above 1, <= 1 below).
    """
    for name, s in (("s1", s1), ("s2", s2)):
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {s}")
    rest = 1.0 - s1
    return Coefficients(
        alpha=budget ** (s1 / law.depth),
        beta=budget ** (rest * s2 / law.width),
        gamma=budget ** (rest * (1.0 - s2) / law.resolution),
    )


def _steps(span: float, step: float) -> int:
    """How many values 1, 1 ± step, ... stay within `span` of 1 (the epsilon: (1.3 - 1) / 0.1 is 2.999...)."""
    return int(math.floor(span / step + 1e-9)) + 1


def grid_ends(budget: float, law: ScalingLaw = FLOPS_LAW) -> tuple[float, float]:
    """The grid's far ends of α and β: each may spend half the budget's log alone (the paper's small grid
    around its result: α up to 1.41 and β up to 1.19 for 2x FLOPs; 0.71 and 0.84 for 0.5x)."""
    return budget ** (0.5 / law.depth), budget ** (0.5 / law.width)


def grid_size(budget: float, step: float, law: ScalingLaw = FLOPS_LAW) -> int:
    """Points `grid_candidates(budget, step, law=law)` returns, without building them (at the default far ends
    no point is dropped)."""
    alpha_end, beta_end = grid_ends(budget, law)
    return _steps(abs(alpha_end - 1.0), step) * _steps(abs(beta_end - 1.0), step)


def grid_candidates(
    budget: float,
    step: float = 0.05,
    alpha_max: float | None = None,
    beta_max: float | None = None,
    *,
    law: ScalingLaw = FLOPS_LAW,
) -> list[Coefficients]:
    """α and β stepped from 1 by `step` towards the budget (up for a budget above 1, down below it); γ solved
    from the law; all three on the budget's side of 1.

    `alpha_max`/`beta_max` override the far ends (`grid_ends`); below 1 they are the smallest values.
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    if budget == 1:
        raise ValueError("a budget of 1 has nothing to search")
    alpha_end, beta_end = grid_ends(budget, law)
    alpha_end = alpha_end if alpha_max is None else alpha_max
    beta_end = beta_end if beta_max is None else beta_max
    sign = 1.0 if budget > 1 else -1.0
    eps = 1e-9
    out = []
    # Integer stepping avoids float drift (1.0 + 3*0.05 must print as 1.15).
    for i in range(_steps(abs(alpha_end - 1.0), step)):
        alpha = round(1.0 + sign * i * step, 10)
        for j in range(_steps(abs(beta_end - 1.0), step)):
            beta = round(1.0 + sign * j * step, 10)
            spent = alpha**law.depth * beta**law.width
            if (spent > budget + eps) if budget > 1 else (spent < budget - eps):
                continue
            out.append(Coefficients(alpha, beta, nominal_gamma(alpha, beta, budget, law)))
    return out


_BUDGET_RE = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*[xX]?\s*$")


#: Budgets outside [MIN_BUDGET, 1) ∪ (1, ...] are refused: below it the proxy shrinks to a few pixels.
MIN_BUDGET = 0.1


def parse_budget(text: str | float) -> float:
    """`2x`, `2`, `1.5x`, `0.5x` -> the cost factor of one φ step: above 1 scales up, below 1 (down to
    MIN_BUDGET) scales down."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _BUDGET_RE.match(text)
        if not match:
            raise ValueError(f"cannot read budget {text!r}: write a factor such as 2x, 2 or 1.5x")
        value = float(match.group(1))
    check_budget(value, text)
    return value


def check_budget(value: float, text: object = None) -> None:
    """ValueError unless `value` is a budget a search can take."""
    shown = repr(text) if text is not None else f"{value:g}"
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"budget must be > 0 (a cost factor: 2x scales up, 0.5x down), got {shown}")
    if value == 1.0:
        raise ValueError(f"budget 1x asks for the network it starts from: write a factor above 1 to scale up "
                         f"or below 1 to scale down, got {shown}")
    if value < MIN_BUDGET:
        raise ValueError(f"budget {shown} is below {MIN_BUDGET:g}x: the proxy would shrink to a few pixels; "
                         "search 0.5x and reach smaller networks with expand's negative φ")


_COUNT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)\s*$")
_COUNT_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_count(text: str | int) -> int:
    """`5000000`, `5M`, `1.5M`, `200k` -> a whole count >= 1 (parameters, for `--max-params`)."""
    if isinstance(text, int):
        value = text
    else:
        match = _COUNT_RE.match(str(text))
        if not match:
            raise ValueError(f"cannot read {text!r}: write a count such as 5000000, 5M or 200k")
        value = round(float(match.group(1)) * _COUNT_UNITS[match.group(2).lower()])
    if value < 1:
        raise ValueError(f"must be at least 1, got {text!r}")
    return int(value)


_INT = r"[-+]?\d+"


def parse_phi(text: str) -> list[int]:
    """`3`, `1..7` (inclusive), `0,2,4`, `-2..7` or a mix such as `0,2..4` -> sorted unique φ."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("φ is empty: write e.g. 3, 1..7 or 0,2,4")
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if re.fullmatch(_INT, part):
            values.add(int(part))
            continue
        match = re.fullmatch(rf"({_INT})\s*\.\.\s*({_INT})", part)
        if not match:
            raise ValueError(f"cannot read φ {part!r}: write e.g. 3, 1..7, -2..7 or 0,2,4")
        lo, hi = int(match.group(1)), int(match.group(2))
        if lo > hi:
            raise ValueError(f"φ range {part!r} is reversed: write {hi}..{lo}")
        values.update(range(lo, hi + 1))
    return sorted(values)
