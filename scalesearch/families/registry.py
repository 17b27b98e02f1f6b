"""A registry of model families, so search and reports never name a family in code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from torch import nn


@dataclass(frozen=True)
class OfficialMember:
    """One row of a family's published, hand-tuned table."""

    index: int  # φ-like position in the published family (B index for EfficientNet)
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float


@dataclass(frozen=True)
class BuiltShape:
    """What rounding actually built: blocks in total and the channel width of each stage."""

    blocks: int
    widths: tuple[int, ...]
    repeats: tuple[int, ...] = ()  # blocks per stage: with widths, the whole architecture


@dataclass(frozen=True)
class FamilySpec:
    name: str
    #: build(width_mult, depth_mult, num_classes, dropout, stochastic_depth) -> nn.Module
    build: Callable[..., nn.Module]
    base_resolution: int
    #: Dropout of the member at compound coefficient φ.
    dropout_for_phi: Callable[[float], float]
    official: Mapping[str, OfficialMember] = field(default_factory=dict)
    #: How members are named in tables: B0, B1, ... (negative φ gives "B-1").
    display_prefix: str = "φ"
    #: built_shape(width_mult=..., depth_mult=...) -> BuiltShape, for effective coefficients; None if unknown.
    built_shape: Callable[..., BuiltShape] | None = None


_FAMILIES: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    if spec.name in _FAMILIES:
        raise ValueError(f"family {spec.name!r} is already registered")
    _FAMILIES[spec.name] = spec
    return spec


def get_family(name: str) -> FamilySpec:
    try:
        return _FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(_FAMILIES))
        raise KeyError(f"unknown family {name!r}; known: {known}") from None


def family_names() -> list[str]:
    return sorted(_FAMILIES)
