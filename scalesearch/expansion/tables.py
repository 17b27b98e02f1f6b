"""Family tables in the formats papers and scripts want: CSV, Markdown, LaTeX, JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Sequence

from ..formats import latex_escape
from ..metrics import FLOP_CONVENTION
from .members import COLUMNS, FamilyMember

FORMATS = ("table", "csv", "md", "latex", "json")  # `expand --format`; "table" is the console's


def to_csv(rows: Sequence[FamilyMember]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(r.to_dict())
    return buf.getvalue()


def to_json(rows: Sequence[FamilyMember], meta: dict) -> str:
    return json.dumps({**meta, "flop_convention": FLOP_CONVENTION, "members": [r.to_dict() for r in rows]},
                      indent=2) + "\n"


def _number(value: float | None, spec: str, scale: float = 1.0, suffix: str = "") -> str:
    """A cell for a value a table may not have (a published table's target, a user family's dropout)."""
    return "-" if value is None else f"{scale * value:{spec}}{suffix}"


def _shows_cost_ratio(rows: Sequence[FamilyMember]) -> bool:
    """A table whose metric is not FLOPs shows the ratio its targets are in beside the FLOP ratio."""
    return any(r.cost_ratio is not None and abs(r.cost_ratio - r.flops_ratio) > 1e-9 for r in rows)


def _shows_latency(rows: Sequence[FamilyMember]) -> bool:
    return any(r.latency_ms is not None for r in rows)


def _shows_interval(rows: Sequence[FamilyMember]) -> bool:
    """A table from a run whose winner stands for an interval of α or β shows each member's span."""
    return any(r.has_interval for r in rows)


def _span(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None else (f"{lo:.3f}" if hi - lo < 5e-4 else f"{lo:.3f}-{hi:.3f}")


def _display_headers(rows: Sequence[FamilyMember]) -> list[str]:
    return ["name", "phi", "depth", "width", *(["depth (interval)", "width (interval)"] if _shows_interval(rows)
                                               else []), "res", "params", "flops (MAC)", "acts",
            *(["latency (ms)"] if _shows_latency(rows) else []), "flops ratio",
            *(["cost ratio"] if _shows_cost_ratio(rows) else []), "target ratio", "off by", "dropout"]


def _display_cells(r: FamilyMember, rows: Sequence[FamilyMember]) -> list[str]:
    return [
        r.name, f"{r.phi:g}", f"{r.depth_mult:.3f}", f"{r.width_mult:.3f}",
        *([_span(r.depth_mult_low, r.depth_mult_high), _span(r.width_mult_low, r.width_mult_high)]
          if _shows_interval(rows) else []), str(r.resolution), f"{r.params / 1e6:.2f}M", f"{r.flops / 1e9:.3f}G", f"{r.activations / 1e6:.2f}M",
        *([_number(r.latency_ms, ".3f")] if _shows_latency(rows) else []), f"{r.flops_ratio:.2f}",
        *([_number(r.cost_ratio, ".2f")] if _shows_cost_ratio(rows) else []), _number(r.target_ratio, ".2f"),
        _number(r.ratio_error, "+.1f", 100, "%"), _number(r.dropout, ".1f"),
    ]


def to_markdown(rows: Sequence[FamilyMember], title: str, notes: Sequence[str] = (), caveats: Sequence[str] = ()) -> str:
    headers = _display_headers(rows)
    lines = [f"> {c}" for c in caveats] + ([""] if caveats else [])  # at the head: what the rule rests on
    lines += [f"<!-- {title}. flops: {FLOP_CONVENTION}; acts: output elements of conv and linear layers, batch 1. -->",
             "| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(_display_cells(r, rows)) + " |" for r in rows]
    lines += [""] + [f"Note: {n}" for n in notes] if notes else []  # how members departed from the plain rule
    return "\n".join(lines) + "\n"


def to_latex(rows: Sequence[FamilyMember], title: str, notes: Sequence[str] = (), caveats: Sequence[str] = ()) -> str:
    """A booktabs table; needs only \\usepackage{booktabs} in the preamble."""
    latency, cost, spans = _shows_latency(rows), _shows_cost_ratio(rows), _shows_interval(rows)
    head = ["Model", r"$\phi$", "Depth", "Width", *(["Depth (interval)", "Width (interval)"] if spans else []),
            "Resolution", "Params (M)", "MACs (B)", "Acts (M)",
            *(["Latency (ms)"] if latency else []), "FLOPs ratio", *(["Cost ratio"] if cost else []),
            "Target", "Off by (\\%)", "Dropout"]
    body = []
    for r in rows:
        body.append(" & ".join([
            latex_escape(r.name), f"{r.phi:g}", f"{r.depth_mult:.3f}", f"{r.width_mult:.3f}",
            *([latex_escape(_span(r.depth_mult_low, r.depth_mult_high).replace("-", "–")),
               latex_escape(_span(r.width_mult_low, r.width_mult_high).replace("-", "–"))] if spans else []),
            str(r.resolution),
            f"{r.params / 1e6:.2f}", f"{r.flops / 1e9:.3f}", f"{r.activations / 1e6:.2f}",
            *([_number(r.latency_ms, ".3f")] if latency else []), f"{r.flops_ratio:.2f}",
            *([_number(r.cost_ratio, ".2f")] if cost else []), _number(r.target_ratio, ".2f"),
            _number(r.ratio_error, "+.1f", 100), _number(r.dropout, ".1f"),
        ]) + r" \\")
    caption = latex_escape("".join(f"{c} " for c in caveats) + f"{title}. MACs: multiply-adds at batch 1 (one fused multiply-add = 1 FLOP); Acts: "
                           "output elements of conv and linear layers at batch 1; both measured on the rounded "
                           "network; ratios are relative to φ = 0." + "".join(f" {n}" for n in notes))
    return "\n".join([
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{caption}}}",
        r"\label{tab:scalesearch-family}",
        r"\end{table}",
    ]) + "\n"


def render(rows: Sequence[FamilyMember], fmt: str, title: str, meta: dict) -> str:
    if fmt == "csv":
        return to_csv(rows)
    notes = meta.get("notes", ())  # what expand said beside the table (matching, caps): part of the table
    caveats = meta.get("caveats", ())  # what the rule could not be told apart from: at the table's head
    if fmt == "md":
        return to_markdown(rows, title, notes, caveats)
    if fmt == "latex":
        return to_latex(rows, title, notes, caveats)
    if fmt == "json":
        return to_json(rows, meta)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def rich_table(rows: Sequence[FamilyMember], title: str):
    from rich.table import Table

    table = Table(title=title, caption=f"flops: {FLOP_CONVENTION}", caption_justify="left")
    headers = _display_headers(rows)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    off_by = headers.index("off by")
    for r in rows:
        cells = _display_cells(r, rows)
        # Members whose rounding moved them more than 10% off the ideal ratio deserve a second look.
        if r.ratio_error is not None and abs(r.ratio_error) > 0.10:
            cells[off_by] = f"[yellow]{cells[off_by]}[/yellow]"
        table.add_row(*cells)
    return table
