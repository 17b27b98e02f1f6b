"""What every scalesearch figure shares: a headless pyplot, one look, and atomic PNG + PDF files.

matplotlib draws the figures because it writes both a raster (PNG, for READMEs and HTML) and a vector
file (PDF, for papers) from one drawing; the Agg backend needs no display, so runs on servers plot too.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

#: The formats every figure is written in: PNG to look at, PDF to put in a paper.
FIGURE_SUFFIXES = (".png", ".pdf")

#: Seed-to-seed spread, winner and reference marks look the same in every figure.
WINNER_COLOUR = "#c0392b"
REFERENCE_COLOUR = "0.15"


def pyplot():
    """matplotlib.pyplot on the Agg backend (chosen before pyplot is imported, or it may pick a GUI one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_paths(stem: Path, suffixes: Iterable[str] = FIGURE_SUFFIXES) -> list[Path]:
    """stem + each suffix, appended (a stem such as `run.v2/fig` keeps its dots)."""
    return [stem.with_name(stem.name + s) for s in suffixes]


def save_figure(fig, paths: Iterable[Path], *, dpi: int = 160) -> list[Path]:
    """Write `fig` once per path, in the format its suffix names, atomically; close it; the paths."""
    from .fileio import atomic_write_bytes

    written = []
    try:
        for path in paths:
            buf = io.BytesIO()
            # A fixed creation date keeps the PDF the same bytes for the same data.
            metadata = {"CreationDate": None} if path.suffix.lower() == ".pdf" else None
            fig.savefig(buf, format=path.suffix[1:].lower(), dpi=dpi, metadata=metadata)
            atomic_write_bytes(path, buf.getvalue())
            written.append(path)
    finally:
        pyplot().close(fig)
    return written


def plot_paths(target: Path) -> list[Path]:
    """`--plot FILE`: FILE.png and FILE.pdf, or only the one its suffix names (.png or .pdf)."""
    if target.suffix.lower() in FIGURE_SUFFIXES:
        return [target]
    return figure_paths(target)
