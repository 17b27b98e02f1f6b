"""A registry of model families, so search and reports never name a family in code.

`--family` is a registered name (`efficientnet`, `resnet`, `mobilenetv2`, ...) or a user's builder
(`path/to/model.py:build`, `package.module:build`, loaded by `user.py`). `resolve_family` is the one
check every command runs on what was typed; `get_family` is what the library calls afterwards.
"""

from __future__ import annotations

from ..errors import UserError
from .spec import BuiltShape, FamilySpec, OfficialMember, ProxyDims
from .user import load_user_family

__all__ = ["DEFAULT_FAMILY", "BuiltShape", "FamilySpec", "OfficialMember", "ProxyDims", "family_names", "get_family",
           "is_user_reference", "register", "resolve_family"]


DEFAULT_FAMILY = "efficientnet"  # --family when none is given
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
