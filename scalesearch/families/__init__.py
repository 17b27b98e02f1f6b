"""Model families. Importing this package registers the built-in ones."""

from . import efficientnet  # noqa: F401  (registers "efficientnet")
from .registry import FamilySpec, OfficialMember, family_names, get_family, register

__all__ = ["FamilySpec", "OfficialMember", "family_names", "get_family", "register"]
