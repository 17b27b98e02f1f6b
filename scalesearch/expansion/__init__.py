"""`scalesearch expand`: coefficients (given, from a run, or the paper's) or a published preset, expanded into a
family of measured members, and everything said and written about it.

    members   the members: depth, width and resolution per φ, each measured (FLOPs, parameters, activations)
    sources   where the coefficients come from: options, a run's best.json, or the paper
    tables    the family table in CSV, Markdown, LaTeX, JSON and on the console
    export    one JSON config per member, and the network built back from one
"""

from .members import COLUMNS, FamilyMember, expand_family, expand_preset
from .tables import to_csv, to_json, to_latex, to_markdown

__all__ = ["COLUMNS", "FamilyMember", "expand_family", "expand_preset", "to_csv", "to_json", "to_latex",
           "to_markdown"]
