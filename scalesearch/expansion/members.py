"""Expand coefficients (or a published preset) into a measured model-family table."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from ..budget import match_resolution
from ..cost import measure_cost
from ..errors import UserError
from ..families import DEFAULT_FAMILY, get_family
from ..metrics import FLOPS, CostMetric
from ..scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, Coefficients


@dataclass(frozen=True)
class FamilyMember:
    name: str
    phi: float
    depth_mult: float
    width_mult: float
    resolution: int
    params: int
    flops: int  # multiply-adds
    flops_ratio: float  # flops / flops of the φ = 0 member, measured
    target_ratio: float | None  # (α·β²·γ²)^φ (the metric's law), the ideal; None for a table with no compound rule
    ratio_error: float | None  # cost_ratio / target_ratio - 1: how far rounding moved the member
    dropout: float | None  # None: the family does not say (a user's builder decides)
    activations: int = 0  # output elements of conv and linear layers, batch 1
    latency_ms: float | None = None  # median forward time; measured where the table's metric is latency
    cost_ratio: float | None = None  # the member's cost / the φ = 0 member's, in the table's metric
    # α^φ and β^φ at the ends of the winner's intervals (expand --from a run): what the table rests on
    depth_mult_low: float | None = None
    depth_mult_high: float | None = None
    width_mult_low: float | None = None
    width_mult_high: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def has_interval(self) -> bool:
        return self.depth_mult_low is not None and (self.depth_mult_high - self.depth_mult_low > 1e-9
                                                    or self.width_mult_high - self.width_mult_low > 1e-9)


COLUMNS = tuple(FamilyMember.__dataclass_fields__)


def with_intervals(members: list[FamilyMember], alpha_range, beta_range, *, step_down: bool) -> list[FamilyMember]:
    """Each member with the depth and width multipliers the ends of a run's α and β intervals give at its φ
    (a step down's intervals read upwards, as its coefficients are)."""
    from dataclasses import replace

    def ends(span, phi):
        lo, hi = span
        if step_down:
            lo, hi = 1 / hi, 1 / lo
        return tuple(sorted((lo**phi, hi**phi)))

    out = []
    for m in members:
        (d0, d1), (w0, w1) = ends(alpha_range, m.phi), ends(beta_range, m.phi)
        out.append(replace(m, depth_mult_low=d0, depth_mult_high=d1, width_mult_low=w0, width_mult_high=w1))
    return out


def interval_notes(members: list[FamilyMember], answer: dict) -> list[str]:
    """What the run's intervals mean for the family, one line per member whose depth or width they leave open."""
    (a0, a1), (b0, b1) = answer["alpha_range"], answer["beta_range"]
    head = (f"The run's winner {answer.get('network') or ''} stands for α {a0:.4g}-{a1:.4g}, β {b0:.4g}-{b1:.4g} "
            f"(decided at φ = {answer.get('decided_at_phi') or 1}); the table uses the centre. Across the interval:")
    lines = [f"{m.name} depth x{m.depth_mult_low:.3g}-x{m.depth_mult_high:.3g}, width "
             f"x{m.width_mult_low:.3g}-x{m.width_mult_high:.3g}" for m in members if m.has_interval]
    return [head + " " + "; ".join(lines)] if lines else []


def unseparated_caveat(answer: dict) -> str | None:
    """The head of a family table whose rule the run could not tell from others."""
    if answer.get("separated") is not False or not answer.get("unseparated"):
        return None
    others = ", ".join(f"{u.get('network')} (α {_span(u.get('alpha_range'))}, β {_span(u.get('beta_range'))})"
                       for u in answer["unseparated"])
    return (f"Caveat: the run's winner {answer.get('network')} is NOT separated from {others}: the seeds could not "
            "tell these rules apart, and this table follows only one of them.")


def _span(values) -> str:
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        return "?"
    return f"{lo:.3g}" if abs(hi - lo) < 1e-9 else f"{lo:.3g}-{hi:.3g}"


def member_name(prefix: str, phi: float) -> str:
    return f"{prefix}{int(phi)}" if float(phi).is_integer() else f"{prefix}{phi:g}"


@dataclass(frozen=True)
class _Planned:
    """A member before measurement."""

    name: str
    phi: float
    depth_mult: float
    width_mult: float
    resolution: int
    dropout: float | None
    family: str | None = None  # the registered family that builds it, when not the table's own
    planned_width: float | None = None  # β^φ before --match-budget moved the width (set in __post_init__)

    def __post_init__(self):
        if self.planned_width is None:
            object.__setattr__(self, "planned_width", self.width_mult)


#: How close `--match-budget` brings a member to its target before it tries finer resolution steps.
MATCH_WITHIN = 0.03
_FINER_MULTIPLES = (8, 4, 1)


def _measure_rows(
    family: str,
    members: Iterable[_Planned],
    base: _Planned,
    target_factor: float | None,
    num_classes: int,
    on_member: Callable[[str], None] | None,
    match_multiple: int | None = None,
    *,
    metric: CostMetric = FLOPS,
    on_note: Callable[[str], None] | None = None,
) -> list[FamilyMember]:
    """Measure each member against `base` in `metric`; with `match_multiple`, first move its resolution (in
    steps of that multiple) to the one whose measured cost comes closest to the target ratio, and where that
    misses by more than MATCH_WITHIN, try finer steps (4 px, then 1 px) and say so through `on_note`."""
    def value(m: _Planned, resolution: int) -> float:
        return metric.value(m.family or family, depth_mult=m.depth_mult, width_mult=m.width_mult,
                            resolution=resolution, num_classes=num_classes)

    base_flops = measure_cost(base.family or family, width_mult=base.width_mult, depth_mult=base.depth_mult,
                              resolution=base.resolution, num_classes=num_classes).flops
    base_value = value(base, base.resolution)
    rows, finer, nudged = [], [], []
    for m in members:
        target = target_factor**m.phi if target_factor is not None else None
        resolution = m.resolution
        if match_multiple is not None and target is not None:
            m, resolution, multiple = _match_member(m, target * base_value, value, match_multiple,
                                                    width_exponent=metric.law.width)
            if m.width_mult != m.planned_width:
                nudged.append(f"{m.name} width {m.planned_width:.4g} -> {m.width_mult:.4g} at {resolution}px")
            elif multiple != match_multiple:
                finer.append(f"{m.name} {resolution}px (a multiple of {multiple})")
        cost = measure_cost(m.family or family, width_mult=m.width_mult, depth_mult=m.depth_mult,
                            resolution=resolution, num_classes=num_classes)
        measured = value(m, resolution)  # in the table's metric (measurements are cached)
        ratio, latency = measured / base_value, (measured if metric.name == "latency" else None)
        rows.append(FamilyMember(m.name, m.phi, m.depth_mult, m.width_mult, resolution, cost.params, cost.flops,
                                 cost.flops / base_flops, target, None if target is None else ratio / target - 1.0,
                                 m.dropout, cost.activations, latency, ratio))
        if on_member:
            on_member(m.name)
    if on_note is not None and finer:
        on_note(f"No multiple of {match_multiple} px brings {'these members' if len(finer) > 1 else 'this member'} "
                f"within {MATCH_WITHIN:.0%} of the target, so finer steps were used: " + ", ".join(finer))
    if on_note is not None and nudged:
        on_note(f"No resolution brings {'these members' if len(nudged) > 1 else 'this member'} within "
                f"{MATCH_WITHIN:.0%} of the target (stride-2 layers make the cost jump where the input size crosses "
                "a multiple of 32 px), so the width multiplier was moved by the least that lands: " + ", ".join(nudged))
    return rows


#: How far (relative) `--match-budget` may move a member's width where no resolution lands within MATCH_WITHIN.
MAX_WIDTH_NUDGE = 0.15


def _match_member(m: _Planned, target: float, value: Callable[[_Planned, int], float], multiple: int, *,
                  width_exponent: float) -> tuple[_Planned, int, int]:
    """(member, resolution, multiple used) whose cost is closest to `target`: resolution in steps of `multiple`,
    then finer steps, and only where no resolution comes within MATCH_WITHIN, the width moved by the least
    (up to MAX_WIDTH_NUDGE) that lets one."""
    from dataclasses import replace

    best = None
    for step in [multiple, *(k for k in _FINER_MULTIPLES if k < multiple)]:
        resolution = match_resolution(lambda res: value(m, res), target, start=m.resolution, multiple=step)
        miss = abs(value(m, resolution) / target - 1)
        if best is None or miss < best[2]:
            best = (m, resolution, miss, step)
        if miss <= MATCH_WITHIN:
            return m, resolution, step
    # The target sits in a jump between two neighbouring sizes: from each, the width that would close the gap
    # (cost ∝ width^exponent), tried smallest move first, with 1% steps around it for channel rounding.
    resolution = best[1]
    sides = (resolution, resolution + 1) if value(m, resolution) < target else (resolution - 1, resolution)
    moves = sorted(((target / value(m, r)) ** (1 / width_exponent), r) for r in sides if r >= 1)
    for factor, r in sorted(moves, key=lambda fr: abs(math.log(fr[0]))):
        for tweak in (0, 0.01, -0.01, 0.02, -0.02, 0.03, -0.03):
            width = m.width_mult * factor * (1 + tweak)
            if abs(width / m.width_mult - 1) > MAX_WIDTH_NUDGE:
                continue
            moved = replace(m, width_mult=width)
            if abs(value(moved, r) / target - 1) <= MATCH_WITHIN:
                return moved, r, 1
    return best[0], best[1], best[3]  # nothing lands: the closest found, and target_miss_note says so


def expand_family(
    coefficients: Coefficients,
    phis: Iterable[int],
    family: str = DEFAULT_FAMILY,
    base_resolution: int | None = None,
    num_classes: int = 1000,
    resolution_multiple: int = 8,
    on_member: Callable[[str], None] | None = None,
    *,
    match_budget: bool = False,
    metric: CostMetric = FLOPS,
    on_note: Callable[[str], None] | None = None,
) -> list[FamilyMember]:
    """Members at each φ: depth α^φ, width β^φ, resolution base·γ^φ, each measured.

    With `match_budget`, each member keeps its depth and width multipliers and takes the resolution (a
    multiple of `resolution_multiple`, finer where that cannot come within MATCH_WITHIN) whose measured cost
    in `metric` comes closest to (the law's factor)^φ times φ = 0's. Coefficients of a step down (all <= 1)
    are read as φ = -1 of their step up, so negative φ is always smaller than the base.
    """
    spec = get_family(family)
    base_resolution = base_resolution or spec.base_resolution
    coefficients = coefficients.step_up()
    members = []
    for phi in phis:
        dims = coefficients.scaled(phi, base_resolution, resolution_multiple)
        members.append(_Planned(member_name(spec.display_prefix, phi), phi, dims.depth_mult, dims.width_mult,
                                dims.resolution, spec.dropout_for_phi(phi)))
    base = _Planned("base", 0, 1.0, 1.0, base_resolution, 0.0)
    return _measure_rows(family, members, base, coefficients.factor(metric.law), num_classes, on_member,
                         resolution_multiple if match_budget else None, metric=metric, on_note=on_note)


#: How far a member may land from its FLOP target (α·β²·γ²)^φ before `expand` says so.
TARGET_MISS = 0.10


def target_miss_note(rows: Iterable[FamilyMember], *, match_budget: bool, resolution_multiple: int,
                     tolerance: float = TARGET_MISS) -> str | None:
    """One line naming the members more than `tolerance` off their FLOP target, and what to do; None if none is.

    A table whose members miss (α·β²·γ²)^φ by much is not the family the coefficients describe: rounding of
    depth (whole layers), width (channel multiples) and resolution moved it. Said once, not per member.
    """
    missed = [r for r in rows if r.ratio_error is not None and abs(r.ratio_error) > tolerance]
    if not missed:
        return None
    worst = max(missed, key=lambda r: abs(r.ratio_error))
    who = f"{', '.join(r.name for r in missed)} {'miss' if len(missed) > 1 else 'misses'}"
    what = (f"{who} the target (the scaling law's factor)^φ by more than {tolerance:.0%} (worst {worst.name}: "
            f"{worst.ratio_error:+.1%})")  # one decimal, as the table: "+10%" beside "more than 10%" read wrong
    if not match_budget:
        return (f"{what}, from rounding depth, width and resolution; --match-budget picks each member's "
                "resolution to hit it")
    return (f"{what} even with --match-budget: no multiple of {resolution_multiple} px comes closer; a smaller "
            "--resolution-multiple gives finer steps")


#: Published tables built by a compound rule: their target ratio is that rule's; the others have none.
PRESET_COEFFICIENTS = {"efficientnet": Coefficients(PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA)}


def preset_names() -> list[str]:
    from ..families import family_names

    return [n for n in family_names() if get_family(n).official]


def preset_spec(preset: str):
    """The family holding the published table `preset`; UserError if there is none."""
    if preset not in preset_names():
        raise UserError(f"unknown preset {preset!r}; known: {', '.join(preset_names())}")
    return get_family(preset)


def preset_title(preset: str) -> str:
    if preset in PRESET_COEFFICIENTS:
        return f"{preset} published family (hand-tuned; target ratio uses the paper's α·β²·γ² = 1.92)"
    return f"{preset} published variants (no compound rule: no target ratio)"


def expand_preset(
    preset: str,
    phis: Iterable[int],
    num_classes: int = 1000,
    on_member: Callable[[str], None] | None = None,
    *,
    metric: CostMetric = FLOPS,
) -> list[FamilyMember]:
    """A published table; φ is the member's index (EfficientNet: the B index, l2 is 9; ResNet: 18-152 as 0-4;
    MobileNetV2: widths 0.35-1.4 as -3..2, 1.0 at 0).

    Ratios are against the member at φ = 0 (the smallest where there is none). For EfficientNet,
    target_ratio uses the paper's coefficients (α·β²·γ² = 1.92), so the table shows how far the hand
    tuning strays from the compound rule; the other tables follow no such rule and have no target.
    """
    spec = preset_spec(preset)
    by_index = {m.index: (key, m) for key, m in spec.official.items()}
    missing = [p for p in phis if p not in by_index]
    if missing:
        known = ", ".join(f"{m.index} ({k})" for k, m in spec.official.items())
        raise UserError(f"preset {preset!r} has no member at φ={missing[0]}; it has φ = {known}")
    _, first = by_index[0] if 0 in by_index else by_index[min(by_index)]
    base = _Planned("base", 0, first.depth_mult, first.width_mult, first.resolution, first.dropout, first.family)
    members = [_Planned(m.name or key.upper(), phi, m.depth_mult, m.width_mult, m.resolution, m.dropout, m.family)
               for phi in phis for key, m in [by_index[phi]]]
    coefficients = PRESET_COEFFICIENTS.get(preset)
    return _measure_rows(preset, members, base, coefficients.factor(metric.law) if coefficients else None,
                         num_classes, on_member, metric=metric)
