"""A registry of model families, so search and reports never name a family in code.

`--family` is a registered name (`efficientnet`, `resnet`, `mobilenetv2`, ...) or a user's builder
(`path/to/model.py:build`, `package.module:build`, loaded by `user.py`). `resolve_family` is the one
check every command runs on what was typed; `get_family` is what the library calls afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from torch import nn

from ..errors import UserError


@dataclass(frozen=True)
class OfficialMember:
    """One row of a family's published, hand-tuned table."""

    index: int  # φ-like position in the published family (B index for EfficientNet)
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float
    family: str | None = None  # the registered family that builds it, when not the preset's own (ResNet-18 vs -50)
    name: str | None = None  # display name; default: the table key in capitals (B0)


@dataclass(frozen=True)
class BuiltShape:
    """What rounding actually built: blocks in total and the channel width of each stage."""

    blocks: int
    widths: tuple[int, ...]
    repeats: tuple[int, ...] = ()  # blocks per stage: with widths, the whole architecture


@dataclass(frozen=True)
class ProxyDims:
    """The φ = 0 proxy a family is searched from: multipliers and input size (see scalesearch/proxy.py)."""

    width_mult: float
    depth_mult: float
    resolution: int


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
    #: The proxies this family is searched from (None: the device's default preset).
    cpu_proxy: ProxyDims | None = None
    gpu_proxy: ProxyDims | None = None
    #: SHA-256 of a user family's source: part of the experiment identity and of cost-cache keys.
    source_hash: str | None = None

    @property
    def is_user(self) -> bool:
        return self.source_hash is not None

    @property
    def identity(self) -> str:
        """Names the code that builds the networks: two specs with one identity build the same networks."""
        return self.name if self.source_hash is None else f"{self.name}@sha256:{self.source_hash}"


_FAMILIES: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    if spec.name in _FAMILIES:
        raise ValueError(f"family {spec.name!r} is already registered")
    _FAMILIES[spec.name] = spec
    return spec


def is_user_reference(name: str) -> bool:
    """`file.py:build` or `package.module:build` (a registered name never contains ':')."""
    return ":" in name


def get_family(name: str) -> FamilySpec:
    """A registered family, or the user's builder (loaded once per file content; UserError if it cannot be)."""
    if is_user_reference(name):
        from .user import load_user_family

        return load_user_family(name)
    try:
        return _FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(_FAMILIES))
        raise KeyError(f"unknown family {name!r}; known: {known}") from None


def resolve_family(name: str) -> FamilySpec:
    """Validate `--family` as typed, for every command alike: a known name or a loadable user builder.

    Raises UserError (one line). Whether the builder's networks build and run at the proxy's size is
    checked where that size is known (`user.probe_family`), still before any training.
    """
    name = str(name).strip()
    if not name:
        raise UserError("--family is empty: give a family name or path/to/model.py:build")
    if not is_user_reference(name) and name not in _FAMILIES:
        raise UserError(f"unknown family {name!r}; known: {', '.join(family_names())}, or a builder "
                        "path/to/model.py:build or package.module:build")
    return get_family(name)


def family_names() -> list[str]:
    return sorted(_FAMILIES)
