"""The report's figures and `expand --plot`'s family curve (matplotlib, PNG + PDF).

Each function draws from the numbers it is given, writes the files, and returns what it drew
(`Drawn.points`: the data of each marker group as plotted), so tests check the figure, not the input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..metrics import FLOP_COUNTER
from ..plotting import REFERENCE_COLOUR, WINNER_COLOUR, figure_paths, pyplot, save_figure
from ..scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA
from .load import RunReport

#: Figure file suffix -> what it shows (alt texts and captions in the reports).
FIGURE_TITLES = {
    "accuracy-vs-flops": "Validation accuracy against the measured cost the budget held on (multiply-adds, "
                         "activations or latency) of every distinct trained network",
    "alpha-beta": "The α–β plane coloured by validation accuracy (γ implied by the budget), each network's grid "
                  "points boxed and named, the winner's interval marked",
}


@dataclass
class Drawn:
    paths: list[Path]
    points: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)  # marker group -> plotted data


def figure_stem(name: str) -> str:
    """`<name>` made safe for every place a figure is named: \\includegraphics, Markdown links, HTML."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-") or "report"


def _offsets(collection) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in xy) for xy in collection.get_offsets()]


#: (x of a record in the budget's metric, axis label, ratio label) per metric.
_COST_AXES = {
    "flops": (lambda r: r.flops / 1e6, f"measured FLOPs (M multiply-adds, {FLOP_COUNTER})", "FLOP ratio"),
    # None in a study from before --cost, which recorded no activations: such a run has no activation axis.
    "activations": (lambda r: None if r.activations is None else r.activations / 1e6,
                    "measured activations (M output elements of conv and linear layers, batch 1)", "activation ratio"),
    "latency": (lambda r: r.latency_ms, "measured latency (ms, median forward pass)", "latency ratio"),
}


def accuracy_vs_flops(report: RunReport, stem: Path) -> Drawn:
    """Mean ± std accuracy of each distinct trained network at its measured cost in the budget's metric (a
    refinement round's φ = 2 networks as squares, at budget²); Pareto front; winner; networks trained under
    budget marked as such."""
    plt = pyplot()
    cost_of, xlabel, ratio_label = _COST_AXES[report.axis_metric.name]
    own_metric = report.axis_metric.name == report.metric.name  # the budget band is in the run's metric only
    distinct = [item.record for item in report.ranking if cost_of(item.record) is not None]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), constrained_layout=True)
    drawn: dict[str, list] = {}
    if distinct:
        x = [cost_of(r) for r in distinct]
        y = [100 * r.accuracy for r in distinct]
        err = [100 * (r.accuracy_std or 0.0) for r in distinct]
        first = [i for i, r in enumerate(distinct) if r.phi == 1]
        bars = ax.errorbar([x[i] for i in first], [y[i] for i in first], yerr=[err[i] for i in first], fmt="o",
                           color="#2471a3", ecolor="#7fb3d5", markersize=5, capsize=3,
                           label="trained network (mean ± std over seeds)", zorder=3)
        drawn["candidates"] = [tuple(float(v) for v in xy) for xy in zip(*bars.lines[0].get_data())]
        refined = [i for i, r in enumerate(distinct) if r.phi == 2]
        if refined:
            sq = ax.errorbar([x[i] for i in refined], [y[i] for i in refined], yerr=[err[i] for i in refined],
                             fmt="s", color="#7d3c98", ecolor="#c39bd3", markersize=5, capsize=3,
                             label="φ = 2 member (refinement round, at budget²)", zorder=3)
            drawn["refined"] = [tuple(float(v) for v in xy) for xy in zip(*sq.lines[0].get_data())]
        under = [r for r in distinct if r.under_budget]
        if under:
            ring = ax.scatter([cost_of(r) for r in under], [100 * r.accuracy for r in under], marker="o", s=110,
                              facecolor="none", edgecolor="#ca6f1e", linewidth=1.4, zorder=4,
                              label=f"under budget: trained below it, no size landed inside ({len(under)})")
            drawn["under_budget"] = _offsets(ring)
        # Pareto front: candidates no cheaper candidate beats on accuracy.
        front, best = [], -math.inf
        for xi, yi in sorted(zip(x, y), key=lambda p: (p[0], -p[1])):
            if yi > best:
                front.append((xi, yi))
                best = yi
        # The front is "the best accuracy at this cost or less": it runs on to the costliest candidate.
        if max(x) > front[-1][0]:
            front.append((max(x), front[-1][1]))
        line, = ax.plot([p[0] for p in front], [p[1] for p in front], drawstyle="steps-post", color="0.35",
                        linestyle="--", linewidth=1, label="Pareto front", zorder=2)
        drawn["pareto"] = [tuple(float(v) for v in xy) for xy in zip(*line.get_data())]
        w = report.winner_record
        star = ax.scatter([cost_of(w)], [100 * w.accuracy], marker="*", s=260, facecolor="none",
                          edgecolor=WINNER_COLOUR, linewidth=1.6, zorder=4,
                          label=f"winner {report.winner_network.network}: {100 * w.accuracy:.1f}%")
        drawn["winner"] = _offsets(star)
        if own_metric:
            base = cost_of(w) / (w.cost_ratio or w.flops_ratio)  # the φ = 0 proxy's cost, as the run measured it
            for phi in sorted({r.phi for r in distinct}):
                target = report.budget**phi
                lo, hi = target * (1 - report.tolerance), target * (1 + report.tolerance)
                ax.axvspan(lo * base, hi * base, color="0.94", zorder=0,
                           label=f"budget {report.budget:g}x{'²' if phi == 2 else ''} ± {report.tolerance:.0%}")
            top = ax.secondary_xaxis("top", functions=(lambda v, b=base: v / b, lambda r, b=base: r * b))
            top.set_xlabel(f"{ratio_label} to the φ = 0 proxy", fontsize=8)
        # Below the axes, not inside: a legend must never cover a candidate.
        fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    else:
        ax.text(0.5, 0.5, "no candidate completed", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel(xlabel if own_metric else f"{xlabel}; the budget was on {report.metric.name}")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{report.study}: accuracy vs cost, data {report.data_name}", fontsize=9)
    ax.grid(alpha=0.3)
    return Drawn(save_figure(fig, figure_paths(stem)), drawn)


def alpha_beta_plane(report: RunReport, stem: Path) -> Drawn:
    """Every candidate at its nominal (α, β): trained ones coloured by accuracy, the others marked by why."""
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), constrained_layout=True)
    drawn: dict[str, list] = {}
    records = [r for r in report.records if r.phi == 1]  # a φ = 2 member sits on its φ = 1 point
    alphas = [r.alpha for r in records] + [PAPER_ALPHA]
    betas = [r.beta for r in records] + [PAPER_BETA]
    pad_a = max(0.02, 0.06 * (max(alphas) - min(alphas)))
    pad_b = max(0.02, 0.06 * (max(betas) - min(betas)))
    xlim = (min(alphas) - pad_a, max(alphas) + pad_a)
    ylim = (min(betas) - pad_b, max(betas) + pad_b)
    # γ is not a free axis: α·β²·γ² = budget fixes it. Faint iso-γ lines show what each point implies.
    ga, gb = np.meshgrid(np.linspace(*xlim, 200), np.linspace(*ylim, 200))
    law = report.metric.law
    gamma = (report.budget / (ga**law.depth * gb**law.width)) ** (1 / law.resolution)
    contours = ax.contour(ga, gb, gamma, levels=8, colors="0.75", linewidths=0.6, zorder=0)
    ax.clabel(contours, fontsize=6, fmt=lambda v: f"γ={v:.2f}")

    trained = [r for r in records if r.state == "complete" and r.accuracy is not None]
    if trained:
        sc = ax.scatter([r.alpha for r in trained], [r.beta for r in trained],
                        c=[100 * r.accuracy for r in trained], cmap="viridis", s=60, edgecolor="k", linewidth=0.4,
                        zorder=3, label="trained")
        fig.colorbar(sc, ax=ax, label="validation accuracy (%, mean over seeds)")
        drawn["trained"] = _offsets(sc)
    groups = (("rejected", "x", "#7f8c8d", "rejected: over the budget at every size, or over --max-params"),
              ("pruned", "v", "#b9770e", "pruned"),
              ("failed", "s", "#922b21", "diverged / out of memory / failed"),
              ("unsettled", "o", "0.6", "not finished"))
    states = {"rejected": ("rejected",), "pruned": ("pruned",), "failed": ("diverged", "oom", "failed", "lost"),
              "unsettled": ("running", "waiting", "interrupted")}
    for name, marker, colour, label in groups:
        members = [r for r in records if r.state in states[name]]
        if not members:
            continue
        # 'x' is a line marker (no face); the others are drawn hollow so a trained point is never hidden.
        colours = {"color": colour} if marker == "x" else {"facecolor": "none", "edgecolor": colour}
        sc = ax.scatter([r.alpha for r in members], [r.beta for r in members], marker=marker, s=50,
                        linewidth=1.2, zorder=3, label=f"{label} ({len(members)})", **colours)
        drawn[name] = _offsets(sc)
    # Each network's grid points, boxed and named: rounding makes every point in a box the same network.
    from matplotlib.patches import Rectangle

    half_a, half_b = 0.35 * _spacing([r.alpha for r in records]), 0.35 * _spacing([r.beta for r in records])
    boxes = []
    for n in report.networks:
        if n.phi != 1 or len(n.points) < 2:
            continue
        (a0, a1), (b0, b1) = n.alpha_range, n.beta_range
        ax.add_patch(Rectangle((a0 - half_a, b0 - half_b), a1 - a0 + 2 * half_a, b1 - b0 + 2 * half_b, fill=False,
                               edgecolor="0.45", linewidth=0.7, linestyle=":", zorder=2))
        ax.annotate(n.network, (a1 + half_a, b1 + half_b), fontsize=6, color="0.3", ha="right", va="bottom")
        boxes.append((n.network, a0, a1, b0, b1))
    drawn["networks"] = boxes
    w, winner = report.winner_record, report.winner_network
    if w is not None and report.winner is not None:
        point = report.winner
        (a0, a1), (b0, b1) = winner.alpha_range, winner.beta_range
        ax.add_patch(Rectangle((a0 - half_a, b0 - half_b), a1 - a0 + 2 * half_a, b1 - b0 + 2 * half_b, fill=False,
                               edgecolor=WINNER_COLOUR, linewidth=1.4, zorder=4,
                               label=f"winner {winner.network}'s interval (decided at φ = {winner.phi})"))
        star = ax.scatter([point["alpha"]], [point["beta"]], marker="*", s=320, facecolor="none",
                          edgecolor=WINNER_COLOUR, linewidth=1.6, zorder=5,
                          label=f"reported α={point['alpha']:.3g}, β={point['beta']:.3g}, γ={point['gamma']:.3g}")
        drawn["winner"] = _offsets(star)
        drawn["winner_interval"] = [(a0, a1, b0, b1)]
    paper_gamma_here = math.sqrt(report.budget / (PAPER_ALPHA * PAPER_BETA**2))
    paper = ax.scatter([PAPER_ALPHA], [PAPER_BETA], marker="P", s=90, color=REFERENCE_COLOUR, zorder=4,
                       label=f"paper α={PAPER_ALPHA}, β={PAPER_BETA} (γ={PAPER_GAMMA} at 1.92x; "
                             f"{paper_gamma_here:.3g} at {report.budget:g}x)")
    drawn["paper"] = _offsets(paper)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("α (depth coefficient, nominal)")
    ax.set_ylabel("β (width coefficient, nominal)")
    ax.set_title(f"{report.study}: α·β²·γ² = {report.budget:g}, γ = √({report.budget:g} / (α·β²))", fontsize=9)
    fig.legend(loc="outside lower center", ncols=2, fontsize=7, frameon=False)
    return Drawn(save_figure(fig, figure_paths(stem)), drawn)


def _spacing(values: Sequence[float]) -> float:
    """The grid step seen in `values` (the smallest gap between distinct values), for box margins."""
    distinct = sorted(set(round(v, 9) for v in values))
    gaps = [b - a for a, b in zip(distinct, distinct[1:]) if b - a > 1e-9]
    return min(gaps) if gaps else 0.05


def write_report_figures(report: RunReport, directory: Path, name: str) -> list[Drawn]:
    """Both report figures into `directory` as <name>-accuracy-vs-flops.{png,pdf} and <name>-alpha-beta.*."""
    stem = figure_stem(name)
    return [accuracy_vs_flops(report, directory / f"{stem}-accuracy-vs-flops"),
            alpha_beta_plane(report, directory / f"{stem}-alpha-beta")]


def family_curve(members: Sequence, paths: Sequence[Path], title: str) -> Drawn:
    """`expand --plot`: measured multiply-adds and parameters against φ, with the ideal (α·β²·γ²)^φ line."""
    plt = pyplot()
    from matplotlib.ticker import FuncFormatter

    members = sorted(members, key=lambda m: m.phi)
    phis = [m.phi for m in members]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.8), constrained_layout=True)
    flops = left.plot(phis, [m.flops / 1e9 for m in members], "o-", color="#2471a3", label="measured")[0]
    # The ideal member costs (α·β²·γ²)^φ times φ = 0's; each member's own ratio gives φ = 0's cost.
    base = members[0].flops / members[0].flops_ratio
    # The ideal FLOP line exists where the targets are FLOPs (a table in activations or latency has its targets
    # in that metric, not in multiply-adds).
    in_flops = all(m.cost_ratio is None or abs(m.cost_ratio - m.flops_ratio) < 1e-9 for m in members)
    ideal = None
    if in_flops and all(m.target_ratio is not None for m in members):
        ideal = left.plot(phis, [base * m.target_ratio / 1e9 for m in members], "--", color=REFERENCE_COLOUR,
                          linewidth=1, label=r"ideal: φ = 0 × $(\alpha\beta^2\gamma^2)^\phi$")[0]
    params = right.plot(phis, [m.params / 1e6 for m in members], "s-", color="#229954", label="measured")[0]
    for ax, unit in ((left, f"FLOPs (G multiply-adds, {FLOP_COUNTER})"), (right, "parameters (M)")):
        ax.set_yscale("log")  # each φ step multiplies the cost: equal steps on a log axis
        # Plain numbers (0.5, 2, 50) rather than 5×10⁻¹: a reader compares them with a table. Minor ticks
        # are labelled at 2 and 5 only, so the labels of a short axis never run into each other.
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v) + 1e-9)) in (2, 5) else ""))
        ax.set_xlabel("φ (compound coefficient)")
        ax.set_ylabel(unit)
        ax.set_xticks(phis, [f"{m.phi:g}\n{m.name}" for m in members], fontsize=7)
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    left.set_title("cost per member", fontsize=9)
    right.set_title("size per member", fontsize=9)
    fig.suptitle(title, fontsize=9)
    drawn = {"flops": [tuple(map(float, xy)) for xy in zip(*flops.get_data())],
             "params": [tuple(map(float, xy)) for xy in zip(*params.get_data())]}
    if ideal is not None:
        drawn["ideal"] = [tuple(map(float, xy)) for xy in zip(*ideal.get_data())]
    return Drawn(save_figure(fig, paths), drawn)

