"""Expand coefficients (or a published preset) into a measured model-family table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable

from .budget import match_resolution
from .cost import measure_cost
from .errors import UserError
from .families import get_family
from .scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, Coefficients


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
    target_ratio: float | None  # (α·β²·γ²)^φ, the ideal; None for a published table with no compound rule
    ratio_error: float | None  # flops_ratio / target_ratio - 1: how far rounding moved the member
    dropout: float | None  # None: the family does not say (a user's builder decides)

    def to_dict(self) -> dict:
        return asdict(self)


COLUMNS = tuple(FamilyMember.__dataclass_fields__)


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


def _measure_rows(
    family: str,
    members: Iterable[_Planned],
    base: _Planned,
    target_factor: float | None,
    num_classes: int,
    on_member: Callable[[str], None] | None,
    match_multiple: int | None = None,
) -> list[FamilyMember]:
    """Measure each member against `base`; with `match_multiple`, first move its resolution (in steps of that
    multiple) to the one whose measured FLOPs come closest to the target ratio."""
    base_flops = measure_cost(base.family or family, width_mult=base.width_mult, depth_mult=base.depth_mult,
                              resolution=base.resolution, num_classes=num_classes).flops
    rows = []
    for m in members:
        target = target_factor**m.phi if target_factor is not None else None
        resolution = m.resolution
        if match_multiple is not None and target is not None:
            def flops_at(r: int, m=m) -> int:
                return measure_cost(family, width_mult=m.width_mult, depth_mult=m.depth_mult, resolution=r,
                                    num_classes=num_classes).flops

            resolution = match_resolution(flops_at, target * base_flops, start=m.resolution,
                                          multiple=match_multiple)
        cost = measure_cost(m.family or family, width_mult=m.width_mult, depth_mult=m.depth_mult,
                            resolution=resolution, num_classes=num_classes)
        ratio = cost.flops / base_flops
        rows.append(FamilyMember(m.name, m.phi, m.depth_mult, m.width_mult, resolution, cost.params, cost.flops,
                                 ratio, target, None if target is None else ratio / target - 1.0, m.dropout))
        if on_member:
            on_member(m.name)
    return rows


def expand_family(
    coefficients: Coefficients,
    phis: Iterable[int],
    family: str = "efficientnet",
    base_resolution: int | None = None,
    num_classes: int = 1000,
    resolution_multiple: int = 8,
    on_member: Callable[[str], None] | None = None,
    *,
    match_budget: bool = False,
) -> list[FamilyMember]:
    """Members at each φ: depth α^φ, width β^φ, resolution base·γ^φ, each measured.

    With `match_budget`, each member keeps its depth and width multipliers and takes the resolution
    (a multiple of `resolution_multiple`) whose measured FLOPs come closest to (α·β²·γ²)^φ times φ = 0's.
    """
    spec = get_family(family)
    base_resolution = base_resolution or spec.base_resolution
    members = []
    for phi in phis:
        dims = coefficients.scaled(phi, base_resolution, resolution_multiple)
        members.append(_Planned(member_name(spec.display_prefix, phi), phi, dims.depth_mult, dims.width_mult,
                                dims.resolution, spec.dropout_for_phi(phi)))
    base = _Planned("base", 0, 1.0, 1.0, base_resolution, 0.0)
    return _measure_rows(family, members, base, coefficients.flops_factor, num_classes, on_member,
                         resolution_multiple if match_budget else None)


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
    what = (f"{who} the FLOP target (α·β²·γ²)^φ by more than {tolerance:.0%} (worst {worst.name}: "
            f"{worst.ratio_error:+.1%})")  # one decimal, as the table: "+10%" beside "more than 10%" read wrong
    if not match_budget:
        return (f"{what}, from rounding depth, width and resolution; --match-budget picks each member's "
                "resolution to hit it")
    return (f"{what} even with --match-budget: no multiple of {resolution_multiple} px comes closer; a smaller "
            "--resolution-multiple gives finer steps")


#: Published tables built by a compound rule: their target ratio is that rule's; the others have none.
PRESET_COEFFICIENTS = {"efficientnet": Coefficients(PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA)}


def preset_names() -> list[str]:
    from .families import family_names

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
    return _measure_rows(preset, members, base, coefficients.flops_factor if coefficients else None, num_classes,
                         on_member)
