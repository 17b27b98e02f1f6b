"""Model families. Importing this package registers the built-in ones."""

from . import efficientnet  # noqa: F401  (registers "efficientnet")
from .registry import BuiltShape, FamilySpec, OfficialMember, family_names, get_family, register

__all__ = ["BuiltShape", "FamilySpec", "OfficialMember", "family_names", "get_family", "register"]
