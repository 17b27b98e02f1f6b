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
class Coefficients:
    """Depth (α), width (β) and resolution (γ) growth per step of φ."""

    alpha: float
    beta: float
    gamma: float

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if value < 1.0:
                raise ValueError(f"{name} must be >= 1 (scaling never shrinks a dimension), got {value:g}")

    @property
    def flops_factor(self) -> float:
        """α·β²·γ²: the ideal FLOP growth of one φ step."""
        return self.alpha * self.beta**2 * self.gamma**2

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


def gamma_for_budget(alpha: float, beta: float, budget: float) -> float:
    """γ that makes α·β²·γ² equal the budget exactly."""
    return math.sqrt(budget / (alpha * beta**2))


def coefficients_from_simplex(s1: float, s2: float, budget: float) -> Coefficients:
    """Map (s1, s2) in [0, 1]² onto coefficients with α·β²·γ² = budget exactly.

    α takes the share s1 of log(budget); β² and γ² split the rest by s2. This
    builds the equality constraint into the parametrisation, so samplers never
    propose an infeasible point and all three stay >= 1.
    """
    for name, s in (("s1", s1), ("s2", s2)):
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {s}")
    rest = 1.0 - s1
    return Coefficients(
        alpha=budget**s1,
        beta=budget ** (rest * s2 / 2.0),
        gamma=budget ** (rest * (1.0 - s2) / 2.0),
    )


def _steps(upper: float, step: float) -> int:
    """How many values 1, 1 + step, ... stay <= upper (the epsilon: (1.3 - 1) / 0.1 is 2.9999999999999996)."""
    return int(math.floor((upper - 1.0) / step + 1e-9)) + 1


def grid_size(budget: float, step: float) -> int:
    """Points `grid_candidates(budget, step)` returns, without building them (α·β² ≤ budget holds at its
    default upper ends, so none is dropped)."""
    return _steps(budget**0.5, step) * _steps(budget**0.25, step)


def grid_candidates(
    budget: float,
    step: float = 0.05,
    alpha_max: float | None = None,
    beta_max: float | None = None,
) -> list[Coefficients]:
    """α and β stepped from 1 by `step`; γ solved exactly; all three >= 1.

    The default upper ends follow the paper's small grid around its result:
    α up to budget^0.5 (1.41 for 2x) and β up to budget^0.25 (1.19 for 2x).
    """
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    alpha_max = budget**0.5 if alpha_max is None else alpha_max
    beta_max = budget**0.25 if beta_max is None else beta_max
    eps = 1e-9
    out = []
    # Integer stepping avoids float drift (1.0 + 3*0.05 must print as 1.15).
    for i in range(_steps(alpha_max, step)):
        alpha = round(1.0 + i * step, 10)
        for j in range(_steps(beta_max, step)):
            beta = round(1.0 + j * step, 10)
            if alpha * beta**2 > budget + eps:
                continue
            out.append(Coefficients(alpha, beta, max(1.0, gamma_for_budget(alpha, beta, budget))))
    return out


_BUDGET_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*[xX]?\s*$")


def parse_budget(text: str | float) -> float:
    """`2x`, `2`, `1.5x` -> FLOP factor of one φ step (must be > 1)."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = _BUDGET_RE.match(text)
        if not match:
            raise ValueError(f"cannot read budget {text!r}: write a factor such as 2x, 2 or 1.5x")
        value = float(match.group(1))
    if not math.isfinite(value) or value <= 1.0:
        raise ValueError(f"budget must be > 1 (the FLOP factor of one φ step), got {text!r}")
    return value


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
