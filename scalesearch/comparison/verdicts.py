"""What `compare` says: per-baseline verdicts with a paired test, compare.json / compare.csv, and its figure.

Each baseline is tested against the compound arm on the seeds both completed, two-sided (either may win),
with scipy's paired t-test. With fewer than MIN_TEST_SEEDS seeds the numbers are stated but no verdict is
claimed, the same rule racing follows.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from ..metrics import FLOP_CONVENTION, FLOPS
from ..racing import MIN_TEST_SEEDS, compare_common, test_statistic

#: compare.csv columns: the contract's arm fields, flattened.
CSV_COLUMNS = ("name", "depth_mult", "width_mult", "resolution", "flops", "flops_ratio", "target_ratio",
               "within_tolerance", "params", "activations", "latency_ms", "cost_ratio", "accuracy", "accuracy_std", "seeds", "seed_accuracies",
               "test_accuracy", "state", "verdict")


def baseline_verdict(compound, baseline, *, significance: float) -> dict:
    """The compound arm against one baseline, on the seeds both completed."""
    name = baseline.arm.name
    if compound.state != "complete" or baseline.state != "complete":
        who = "compound" if compound.state != "complete" else name
        return {"text": f"no verdict: the {who} arm did not complete", "better": None, "test": None}
    test = compare_common(compound.seed_accuracies, baseline.seed_accuracies, alternative="two-sided")
    n = len(test.seeds)
    lead = f"compound {100 * test.mean_difference:+.2f} points vs {name} on {n} paired seed(s)"
    if test.p is None:
        why = "one seed, no test" if n < 2 else "identical on every seed"
        return {"text": f"{lead}: no verdict ({why})", "better": None, "test": test.to_dict()}
    numbers = f"{test_statistic(test)}, df = {test.df}, two-sided p = {test.p:.3g}"
    if n < MIN_TEST_SEEDS:
        return {"text": f"{lead}: no verdict ({numbers}; a verdict needs {MIN_TEST_SEEDS}+ seeds)",
                "better": None, "test": test.to_dict()}
    if test.p >= significance:
        return {"text": f"{lead}: no significant difference at alpha = {significance:g} ({numbers})",
                "better": None, "test": test.to_dict()}
    better = "compound" if test.mean_difference > 0 else name
    return {"text": f"{lead}: {better} is better at alpha = {significance:g} ({numbers})", "better": better,
            "test": test.to_dict()}


def _arm_dict(rec) -> dict:
    m = rec.arm.built
    return {
        "name": rec.arm.name, "depth_mult": m.depth_mult, "width_mult": m.width_mult, "resolution": m.resolution,
        "alpha_eff": m.alpha_eff, "beta_eff": m.beta_eff, "gamma_eff": m.gamma_eff,
        "flops": m.flops, "flops_ratio": m.flops_ratio, "target_ratio": rec.arm.target_ratio,
        "within_tolerance": rec.arm.within_tolerance, "note": rec.arm.note, "params": m.params,
        "activations": m.activations, "latency_ms": m.latency_ms, "cost_ratio": m.cost_ratio,
        "accuracy": rec.accuracy, "accuracy_std": rec.accuracy_std, "seeds": len(rec.seed_accuracies),
        "seed_accuracies": {str(s): a for s, a in sorted(rec.seed_accuracies.items())},
        "test_accuracy": (sum(rec.test_accuracies.values()) / len(rec.test_accuracies)
                          if rec.test_accuracies else None),
        "state": rec.state, "reason": rec.reason, "seconds": rec.seconds,
    }


def compare_payload(records: Sequence, setup, *, budget: float, tolerance: float, significance: float, complete: bool,
                    extra: dict, metric=None) -> dict:
    """compare.json: the four arms (compound first) with verdicts, and the unscaled proxy as `baseline`."""
    compound, *baselines = records[:4]
    arms = [{**_arm_dict(compound), "verdict": {"text": "reference arm", "better": None, "test": None}}]
    arms += [{**_arm_dict(rec), "verdict": baseline_verdict(compound, rec, significance=significance)} for rec in baselines]
    c = setup.compound
    return {
        "budget": budget, "phi": setup.phi, "target_ratio": budget**setup.phi, "tolerance": tolerance,
        "compound": {"alpha": c.alpha, "beta": c.beta, "gamma": c.gamma}, "source": setup.source,
        "seeds": list(setup.seeds), "alpha_level": significance, "complete": complete,
        "test": "two-sided paired t-test (scipy.stats.ttest_rel) of the compound arm against each baseline",
        "flop_convention": FLOP_CONVENTION, "cost": (metric or FLOPS).to_dict(), "arms": arms,
        "baseline": _arm_dict(records[4]) if len(records) > 4 else None, **extra,
    }


def payload_csv(payload: dict) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for arm in payload["arms"]:
        row = {k: ("" if arm.get(k) is None else arm.get(k)) for k in CSV_COLUMNS}
        row["seed_accuracies"] = " ".join(f"{s}:{a!r}" for s, a in arm["seed_accuracies"].items())
        row["verdict"] = arm["verdict"]["text"]
        writer.writerow(row)
    return buf.getvalue()


def summary_lines(payload: dict) -> list[str]:
    """The console's table and one verdict line per baseline."""
    metric = payload.get("cost", {}).get("metric", "flops")
    head = {"flops": "FLOPs x", "activations": "acts x", "latency": "latency x"}.get(metric, "cost x")
    lines = [f"{'arm':<16} {'depth':>6} {'width':>6} {'res':>4} {head:>9} {'val acc':>16} seeds"]
    for a in payload["arms"]:
        acc = "-" if a["accuracy"] is None else f"{a['accuracy']:.4f}" + (
            f" ± {a['accuracy_std']:.4f}" if a["accuracy_std"] is not None else "")
        below = _cost_ratio(a) < payload["target_ratio"] * (1 - payload.get("tolerance", 0.1))
        mark = "" if a["within_tolerance"] else " (under budget)" if below else " (outside tolerance)"
        lines.append(f"{a['name']:<16} {a['depth_mult']:>6.3f} {a['width_mult']:>6.3f} {a['resolution']:>4} "
                     f"{_cost_ratio(a):>9.3f} {acc:>16} {a['seeds']}{mark}")
    base = payload.get("baseline")
    if base is not None and base["accuracy"] is not None:
        lines.append(f"{base['name']:<16} {base['depth_mult']:>6.3f} {base['width_mult']:>6.3f} "
                     f"{base['resolution']:>4} {_cost_ratio(base):>9.3f} {base['accuracy']:>16.4f} {base['seeds']}"
                     "  (unscaled reference)")
    lines += [f"{a['name']}: {a['verdict']['text']}" for a in payload["arms"][1:]]
    return lines


def _cost_ratio(arm: dict) -> float:
    """The arm's measured ratio in the comparison's metric (FLOPs in a compare.json from before --cost)."""
    return arm["cost_ratio"] if arm.get("cost_ratio") is not None else arm["flops_ratio"]


def _metric_word(payload: dict) -> str:
    return {"flops": "FLOPs", "activations": "activations", "latency": "latency"}.get(
        payload.get("cost", {}).get("metric", "flops"), "cost")


def write_figure(payload: dict, stem: Path) -> list[Path]:
    """Accuracy of each arm (mean ± std, every seed as a dot) at its measured FLOP ratio: PNG and PDF."""
    from ..plotting import FIGURE_SUFFIXES, pyplot, save_figure

    plt = pyplot()
    arms = payload["arms"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    colours = ["#c0392b", "#2471a3", "#229954", "#b7950b"]
    for i, a in enumerate(arms):
        seeds = [100 * v for v in a["seed_accuracies"].values()]
        if seeds:
            ax.scatter([i] * len(seeds), seeds, s=14, color=colours[i % 4], alpha=0.5, zorder=3)
        if a["accuracy"] is not None:
            err = 100 * a["accuracy_std"] if a["accuracy_std"] is not None else 0
            ax.errorbar(i, 100 * a["accuracy"], yerr=err, fmt="D" if i == 0 else "o", color=colours[i % 4],
                        markersize=8, capsize=5, zorder=4)
    base = payload.get("baseline")
    if base is not None and base["accuracy"] is not None:
        ax.axhline(100 * base["accuracy"], color="0.4", linestyle="--", linewidth=1,
                   label=f"unscaled proxy (φ = 0, {base['resolution']}px): {100 * base['accuracy']:.1f}%")
        # Below the axes: inside, "best" still landed on an arm's point.
        fig.legend(loc="outside lower center", fontsize=7, frameon=False)
    word = _metric_word(payload)
    labels = [f"{a['name']}\n{a['resolution']}px, x{_cost_ratio(a):.2f} {word}" for a in arms]
    ax.set_xticks(range(len(arms)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(arms) - 0.4)
    ax.set_ylabel("validation accuracy (%)")
    c = payload["compound"]
    ax.set_title(f"Compound (α={c['alpha']:.3g}, β={c['beta']:.3g}, γ={c['gamma']:.3g}) vs one dimension, "
                 f"φ = {payload['phi']:g}, {payload['target_ratio']:.3g}x {word}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    # As the x label, not text inside the axes, where it ran over the baseline's line.
    ax.set_xlabel(f"arm at its measured {word} (mean ± std over {len(payload['seeds'])} seeds; dots: single seeds)",
                  fontsize=8)
    return save_figure(fig, [stem.with_name(stem.name + s) for s in FIGURE_SUFFIXES])
