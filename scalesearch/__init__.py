"""Compound scaling search: find α, β, γ on your data and expand them into a model family.

    import scalesearch
    result = scalesearch.grid(budget=2.0)          # the same as `scalesearch grid --budget 2x`
    members = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=range(1, 8))
    scalesearch.report_run(from_run="runs/grid-2x", format="latex", out="paper/search.tex")
"""

from .errors import UserError
from .version import __version__
__all__ = ["UserError", "build_model", "compare", "expand", "grid", "measure_cost", "plot_family", "report_run",
           "search"]


def __getattr__(name: str):
    # Lazy: `import scalesearch` (and the CLI's argument checks) must not pay for importing torch.
    if name in ("grid", "search", "expand", "compare", "report_run", "plot_family", "build_model"):
        from . import api

        return getattr(api, name)
    if name == "measure_cost":
        from .cost import measure_cost

        return measure_cost
    raise AttributeError(f"module 'scalesearch' has no attribute {name!r}")
