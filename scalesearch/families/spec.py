"""What a family is: the data the registry holds and user.py builds, kept apart from both so neither imports the
other for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from torch import nn


@dataclass(frozen=True, kw_only=True)
class OfficialMember:
    """One row of a family's published, hand-tuned table."""

    index: int  # φ-like position in the published family (B index for EfficientNet)
    depth_mult: float
    width_mult: float
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

    @classmethod
    def of_stages(cls, stem: int, stages: Iterable[tuple[int, int]], head: int | None = None) -> BuiltShape:
        """The shape of a stem's width, each stage's (output width, blocks), and a head conv's width if any."""
        stages = tuple(stages)
        repeats = tuple(blocks for _, blocks in stages)
        widths = (stem, *(width for width, _ in stages)) + (() if head is None else (head,))
        return cls(sum(repeats), widths, repeats)


@dataclass(frozen=True, kw_only=True)
class ProxyDims:
    """The φ = 0 proxy a family is searched from: multipliers and input size (see scalesearch/proxy.py)."""

    depth_mult: float
    width_mult: float
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
