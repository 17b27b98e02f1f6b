"""Model families. Importing this package registers the built-in ones."""

from . import efficientnet, mobilenetv2, resnet  # noqa: F401  (register their families)
from .registry import (DEFAULT_FAMILY, BuiltShape, FamilySpec, OfficialMember, ProxyDims, family_names, get_family, register,
                       resolve_family)

__all__ = ["DEFAULT_FAMILY", "BuiltShape", "FamilySpec", "OfficialMember", "ProxyDims", "family_names", "get_family", "register",
           "resolve_family"]
