"""One loaded run rendered as Markdown, LaTeX (booktabs), HTML, CSV or JSON.

The cells of each table are formatted once, as plain text (`*_rows` below); each format only escapes
and marks them up, so the five renderings cannot drift apart. JSON and CSV carry full precision (the
study's own floats); the human formats round for reading and say what the numbers are.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Sequence

from ..metrics import FLOP_CONVENTION, FLOP_COUNTER, FLOP_UNIT
from ..engine.networks import POINT_RULE
from ..engine.results import TRIAL_COLUMNS, CandidateRecord
from ..formats import latex_escape, md_escape
from .load import RankedNetwork, RunReport

FORMATS = ("md", "latex", "csv", "json", "html")

#: report.csv: one row per network (ranked ones first: rank within its φ), its interval and the grid points it
#: stands for, then trials.csv's columns of the point that trained it; then every point that was not trained.
CSV_COLUMNS = ("rank", "network", "phi", "alpha_range_low", "alpha_range_high", "beta_range_low", "beta_range_high",
               "gamma_range_low", "gamma_range_high", "points", "trials",
               *(c for c in TRIAL_COLUMNS if c not in ("network", "phi")))

RANKING_HEADERS = ("rank", "network", "φ", "α", "β", "γ", "points", "α eff", "β eff", "γ eff", "res (px)",
                   "cost ratio", "params", "MACs (M)", "acts (k)", "latency (ms)", "val accuracy", "seeds", "note")
NOT_TRAINED_HEADERS = ("trial", "network", "state", "α", "β", "γ", "res (px)", "cost ratio", "reason")
COMPARE_HEADERS = ("arm", "depth", "width", "res (px)", "cost ratio", "val accuracy", "seeds", "verdict")
# Columns of words (left-aligned); the rest are numbers (right-aligned).
RANKING_TEXT, NOT_TRAINED_TEXT, COMPARE_TEXT = {1, 3, 4, 5, 18}, {1, 2, 8}, {0, 7}


# ------------------------------------------------------------------ numbers as text, once for all formats

def _num(value, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def _accuracy(mean, std) -> str:
    if mean is None:
        return "–"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def _int(value) -> str:
    return "–" if value is None else f"{int(value):,}"


def interval(span, spec: str = ".3f") -> str:
    """`1.050–1.300`, or one value where the interval is a point."""
    lo, hi = span
    return format(lo, spec) if abs(hi - lo) < 1e-9 else f"{lo:{spec}}–{hi:{spec}}"


def _points(item: RankedNetwork) -> str:
    """How many grid points build the network, and their trials (the first three, then how many more)."""
    trials = item.network.trials
    shown = ", ".join(str(t) for t in trials[:3]) + (f", +{len(trials) - 3}" if len(trials) > 3 else "")
    return f"{len(trials)}: {shown}"


def ranking_rows(report: RunReport) -> list[list[str]]:
    rows = []
    for item in report.ranking:
        n, r = item.network, item.record
        first_answer = (report.winner or {}).get("refinement", {}) or {}
        if n is report.winner_network:
            note = "winner"
        elif n.phi == 1 and report.phis[0] == 2 and n.network == first_answer.get("phi1_network"):
            note = "the answer at φ = 1, refined"
        else:
            note = "highest mean" if item.rank == 1 else ""
        if r.under_budget:
            note = "; ".join(x for x in (note, r.budget_fit) if x)
        rows.append([str(item.rank), n.network, str(n.phi), interval(n.alpha_range), interval(n.beta_range),
                     interval(n.gamma_range), _points(item), _num(r.alpha_eff), _num(r.beta_eff), _num(r.gamma_eff),
                     _int(r.resolution), _num(r.cost_ratio), _int(r.params),
                     # every network's four costs, whatever the budget's metric (latency: where measured)
                     _num(None if r.flops is None else r.flops / 1e6, ".2f"),
                     _num(None if r.activations is None else r.activations / 1e3, ".1f"), _num(r.latency_ms, ".3f"),
                     _accuracy(n.accuracy, n.accuracy_std), str(n.seeds), note])
    return rows


def ranking_sections(report: RunReport, rows: list[list[str]]) -> list[tuple[int, str, list[list[str]]]]:
    """(φ, heading, rows) per ranking: the decided φ first. One row per distinct network."""
    out = []
    for phi in report.phis:
        mine = [row for item, row in zip(report.ranking, rows) if item.network.phi == phi]
        decided = phi == report.phis[0]
        what = ("the refinement round: the φ = 2 members of the φ = 1 contenders, budget-matched at budget²"
                if phi == 2 else "the search")
        heading = f"Ranking at φ = {phi}: {what}" + (" (the answer)" if decided and len(report.phis) > 1 else "")
        out.append((phi, heading, mine))
    return out


RANKING_INTRO = ("Distinct networks, best first (rank 1 is the winner), one row each: the interval of nominal "
                 "coefficients of the grid points that build it and how many points (with their first trials), "
                 "the effective coefficients of what was built, the measured cost ratio (in the budget's metric) to "
                 "the φ = 0 proxy, parameters, validation accuracy mean ± std over seeds.")


# The ranking is wide; on a paper's page it drops the points, latency and note columns (under-budget networks get
# a † on their rank) and states accuracy in percent, which is what papers print.
LATEX_RANKING_HEADERS = ("rank", "net", "φ", "α", "β", "γ", "α eff", "β eff", "γ eff", "px", "cost ×", "params",
                         "MACs (M)", "acts (k)", "val acc. (%)", "seeds")


def latex_ranking_rows(report: RunReport) -> list[list[str]]:
    rows = []
    for item, row in zip(report.ranking, ranking_rows(report)):
        n = item.network
        rank = str(item.rank) + ("†" if item.record.under_budget else "")  # the caption says: trained under budget
        acc = "–" if n.accuracy is None else f"{100 * n.accuracy:.2f}" + (
            f" ± {100 * n.accuracy_std:.2f}" if n.accuracy_std is not None else "")
        rows.append([rank, *row[1:6], *row[7:15], acc, row[RANKING_HEADERS.index("seeds")]])
    return rows


def not_trained_rows(report: RunReport) -> list[list[str]]:
    return [[str(r.trial), r.network or "–", r.state, _num(r.alpha), _num(r.beta), _num(r.gamma), _int(r.resolution),
             _num(r.cost_ratio), r.reason or r.state] for r in report.not_trained]


def compare_rows(payload: dict) -> list[list[str]]:
    arms = list(payload["arms"])
    rows = []
    for a in arms:
        rows.append([a["name"], _num(a.get("depth_mult")), _num(a.get("width_mult")), _int(a.get("resolution")),
                     _num(a.get("cost_ratio", a.get("flops_ratio"))), _accuracy(a.get("accuracy"), a.get("accuracy_std")),
                     str(a.get("seeds", "")), a.get("verdict", {}).get("text", "")])
    base = payload.get("baseline")
    if base:
        rows.append([f"{base['name']} (unscaled)", _num(base.get("depth_mult")), _num(base.get("width_mult")),
                     _int(base.get("resolution")), _num(base.get("cost_ratio", base.get("flops_ratio"))),
                     _accuracy(base.get("accuracy"), base.get("accuracy_std")), str(base.get("seeds", "")),
                     "reference: the φ = 0 proxy"])
    return rows


def title(report: RunReport) -> str:
    return f"scalesearch report: study {report.study}"


def effective_text(w: dict, spec: str = ".4f") -> str:
    """What was built, as effective coefficients (built / φ = 0 proxy); a φ = 2 member took two steps, so its
    per-step values (the square roots) are what compares with the reported α, β, γ."""
    if w.get("alpha_eff") is None:
        return "effective coefficients not recorded"
    values = [w[k] for k in ("alpha_eff", "beta_eff", "gamma_eff")]
    text = "effective " + ", ".join(f"{n} = {v:{spec}}" for n, v in zip("αβγ", values))
    phi = int(w.get("decided_at_phi") or 1)
    if phi > 1:
        text += f" over {phi} φ steps, per step " + ", ".join(f"{n} = {v ** (1 / phi):{spec}}"
                                                            for n, v in zip("αβγ", values))
    return text


def winner_lines(report: RunReport) -> list[str]:
    """The winner and the verdict, as sentences."""
    w = report.winner
    if w is None:
        return ["No candidate completed: there is no winner."]
    seeds = ", ".join(f"seed {s}: {a:.4f}" for s, a in w["seed_accuracies"].items())
    metric = report.metric
    ratio = w.get("measured_cost_ratio") or w["measured_flops_ratio"]
    latency = f", {w['latency_ms']:.3f} ms" if w.get("latency_ms") is not None else ""
    under = (f" It is {w['budget_fit']}: no resolution landed it within the tolerance, and it beat every "
             "candidate at the budget." if str(w.get("budget_fit", "")).startswith("under") else "")
    lines = [
        f"Winner: network {w['network']}, decided at φ = {w['decided_at_phi']}: the grid points α "
        f"{interval(w['alpha_range'], '.4g')}, β {interval(w['beta_range'], '.4g')} (γ "
        f"{interval(w['gamma_range'], '.4g')}) build it ({len(w['network_trials'])} point(s)). Reported: α = "
        f"{w['alpha']:.4f}, β = {w['beta']:.4f}, γ = {w['gamma']:.4f} ({metric.law.text} = "
        f"{metric.law.factor(w['alpha'], w['beta'], w['gamma']):.3f}; {w['point_rule']}). What was trained: "
        f"{effective_text(w)}.",
        f"Built as depth ×{_num(w['depth_mult'], '.3f')}, width ×{_num(w['width_mult'], '.3f')} at "
        f"{w['resolution']} px: measured {metric.name} ratio {_num(ratio)} to the φ = 0 proxy "
        f"(budget {report.budget:g}x{'²' if w['decided_at_phi'] == 2 else ''} ± {report.tolerance:.0%} in "
        f"{metric.label}); FLOP ratio "
        f"{_num(w['measured_flops_ratio'])}; {_int(w.get('flops'))} multiply-adds, {_int(w.get('params'))} "
        f"parameters, {_int(w.get('activations'))} activations{latency}.{under}",
        f"Validation accuracy {_accuracy(w['accuracy'], w['accuracy_std'])} (mean ± std) over {w['seeds']} "
        f"seed(s) ({seeds})" + (f"; test accuracy {w['test_accuracy']:.4f}" if w["test_accuracy"] is not None
                                else "") + ".",
    ]
    c = w.get("comparison")
    runner = (f"runner-up {c['runner_up_network']} ({_num(c['runner_up_accuracy'], '.4f')})"
              if c else "no runner-up")
    lines.append(f"Verdict of the highest mean against the {runner}: {w['verdict']['text']}.")
    if w.get("highest_mean_network", w["network"]) != w["network"]:
        lines.append(f"The answer is {w['network']}: {w['choice']}.")
    lines += answer_caveats(w)
    return lines


def answer_caveats(w: dict) -> list[str]:
    """What the answer could not resolve, and how the refinement round went: said wherever the answer is."""
    out = []
    if w.get("unseparated"):
        names = ", ".join(f"{u['network']} (α {interval(u['alpha_range'], '.3g')}, β "
                          f"{interval(u['beta_range'], '.3g')}, {u['resolution']} px, {_num(u['accuracy'], '.4f')})"
                          for u in w["unseparated"])
        out.append(f"Not separated: within seed noise of the highest mean (a paired test on 3+ seeds, or less than "
                   f"2√2 seed deviations below it with fewer): {names}; any of these rules is as well supported as "
                   "the answer's.")
    ref = w.get("refinement") or {}
    if ref.get("ran"):
        out.append(f"Refined at φ = 2 ({'; '.join(ref.get('reasons', []))}): {', '.join(ref.get('networks', []))} "
                   f"built again at budget²; at φ = 1 the answer was: {ref.get('phi1_answer', '?')}.")
    elif ref.get("why_not") and ref.get("reasons"):
        out.append(f"Not refined ({'; '.join(ref['reasons'])}): {ref['why_not']}.")
    return out


def provenance_items(report: RunReport) -> list[tuple[str, str]]:
    """(label, value) pairs: how the run was made, as best.json recorded it, and how this report was."""
    p, cfg = report.provenance, report.config
    data, proxy = p.get("data", {}), p.get("proxy", {})
    train = proxy.get("train", {})
    versions = ", ".join(f"{k} {v}" for k, v in p.get("versions", {}).items())
    items = [
        ("study", f"{report.study} in {report.storage}"),
        ("complete", "yes" if report.complete else "no"),
        ("command line", p.get("command_line", "")),
        ("data", f"{data.get('name', '?')}: {data.get('train', '?')} train / {data.get('val', '?')} val / "
                 f"{data.get('test', '?')} test images, {data.get('num_classes', '?')} classes, "
                 f"{data.get('image_size', '?')} px"),
        *([("data subset", "; ".join(
            f"{split}: {s['used']:,} of {s['of']:,} images (--{split}-images {s['asked']:,}, class-stratified, from "
            f"--seed)" for split, s in data["subset"].items()))] if data.get("subset") else []),
        ("data fingerprint", str(data.get("fingerprint", "?"))),
        ("proxy (φ = 0)", f"{proxy.get('name', '?')}: width {proxy.get('width_mult', '?')}, depth "
                          f"{proxy.get('depth_mult', '?')}, {proxy.get('resolution', '?')} px; "
                          f"{train.get('epochs', '?')} epoch(s), batch {train.get('batch_size', '?')}, "
                          f"{train.get('optimizer', '?')} lr {train.get('lr', '?')}"),
        ("search", f"{cfg.get('mode', '?')}, budget {report.budget:g}x ± {report.tolerance:.0%} in measured "
                   f"{report.metric.label} (nominal γ from {report.metric.law.text}), "
                   f"seeds {cfg.get('seeds', '?')}, verdict at alpha = {report.significance:g}, family "
                   f"{cfg.get('family', '?')}, seed {cfg.get('seed', '?')}"),
        ("device", str(p.get("device", "?"))),
        ("versions", versions),
        ("FLOP convention", f"{FLOP_CONVENTION} (the run: {p.get('flop_convention', '?')})"),
    ]
    from ..version import __version__

    items.append(("report", f"written by scalesearch {__version__} from the study's storage; "
                            "config and provenance from best.json"))
    return items


def caption(report: RunReport) -> str:
    """What every table's caption states: FLOP convention, data, budget, seeds."""
    data = report.provenance.get("data", {})
    cost = (f"measured FLOPs, which are multiply-adds (one fused multiply-add = 1 FLOP, {FLOP_COUNTER})"
            if report.metric.is_flops else f"measured {report.metric.label}")
    under = (f"; {len(report.under_budget)} candidate(s) marked under budget († in LaTeX) were trained below it, "
             "where no resolution landed inside") if report.under_budget else ""
    return (f"data set {report.data_name} (fingerprint {data.get('fingerprint', '?')}); budget "
            f"{report.budget:g}x ± {report.tolerance:.0%} in {cost} relative to the φ = 0 proxy; cost ratio in "
            f"that metric; seeds {report.seeds_label}; accuracy is validation mean ± std over seeds{under}")


# ------------------------------------------------------------------ JSON and CSV: full precision

def _ranked_dict(item: RankedNetwork) -> dict:
    return {"rank": item.rank, **item.network.to_dict()}


def to_json(report: RunReport, figures: Sequence[Path] = ()) -> str:
    payload = {
        "study": report.study, "storage": report.storage, "run_dir": str(report.run_dir),
        "complete": report.complete, "flop_convention": FLOP_CONVENTION, "cost": report.metric.to_dict(),
        "budget": report.budget, "tolerance": report.tolerance, "alpha_level": report.significance,
        "seeds_policy": report.config.get("seeds"), "point_rule": POINT_RULE,
        "winner": report.winner,
        "ranking": [_ranked_dict(item) for item in report.ranking],
        "not_trained": [r.to_dict() for r in report.not_trained],
        "comparisons": report.comparisons,
        "provenance": report.provenance,
        "figures": [p.name for p in figures],
        "notes": report.notes,
    }
    return json.dumps(payload, indent=2) + "\n"


def to_csv(report: RunReport) -> str:
    """One row per ranked network (its interval, points, and the trained point's trials.csv columns), then
    every point that was not trained."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()

    def write(record: CandidateRecord, extra: dict) -> None:
        row = {**{k: v for k, v in record.row().items() if k not in ("network", "phi")}, **extra}
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

    for item in report.ranking:
        n = item.network
        write(item.record, {"rank": item.rank, "network": n.network, "phi": n.phi,
                            "alpha_range_low": n.alpha_range[0], "alpha_range_high": n.alpha_range[1],
                            "beta_range_low": n.beta_range[0], "beta_range_high": n.beta_range[1],
                            "gamma_range_low": n.gamma_range[0], "gamma_range_high": n.gamma_range[1],
                            "points": len(n.points), "trials": " ".join(str(t) for t in n.trials),
                            "accuracy": n.accuracy, "accuracy_std": n.accuracy_std, "seeds": n.seeds})
    for record in report.not_trained:
        write(record, {"network": record.network, "phi": record.phi, "points": 1, "trials": str(record.trial)})
    return buf.getvalue()


# ------------------------------------------------------------------ Markdown

def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], text_columns: set[int]) -> list[str]:
    lines = ["| " + " | ".join(md_escape(h) for h in headers) + " |",
             "|" + "|".join("---" if i in text_columns else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return lines


def to_markdown(report: RunReport, figures: Sequence[Path] = ()) -> str:
    out = [f"# {md_escape(title(report))}", "",
           md_escape(_sentence(caption(report))),
           ""]
    out += [f"> Note: {md_escape(n)}" for n in report.notes] + ([""] if report.notes else [])
    out += ["## Winner", "", *[md_escape(line) + "  " for line in winner_lines(report)], ""]
    for _, heading, rows in ranking_sections(report, ranking_rows(report)) or [(1, "Ranking", [])]:
        out += [f"## {md_escape(heading)}", "", md_escape(RANKING_INTRO), ""]
        out += _md_table(RANKING_HEADERS, rows, RANKING_TEXT) + [""]
    out.pop()
    out += ["", "## Not trained: rejected, pruned, failed", ""]
    rows = not_trained_rows(report)
    out += (_md_table(NOT_TRAINED_HEADERS, rows, NOT_TRAINED_TEXT) if rows else ["None: every candidate trained."])
    for payload in report.comparisons:
        out += ["", f"## Compound vs one dimension ({md_escape(payload['file'])})", "",
                md_escape(_compare_summary(payload)), ""]
        out += _md_table(COMPARE_HEADERS, compare_rows(payload), COMPARE_TEXT)
    if figures:
        out += ["", "## Figures", ""]
        out += [f"![{md_escape(alt)}]({_md_link(p)})" for p, alt in _figure_alts(figures, ".png")]
    out += ["", "## Provenance", ""]
    out += [f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in provenance_items(report)]
    return "\n".join(out) + "\n"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _md_link(path: Path) -> str:
    # Our figure names are plain (see figures.figure_stem); angle brackets keep any other name one link.
    return f"<{path.name}>"


def _compare_summary(payload: dict) -> str:
    c = payload["compound"]
    return (f"The compound coefficients (α = {c['alpha']:.4f}, β = {c['beta']:.4f}, γ = {c['gamma']:.4f}, from "
            f"{payload.get('source', '?')}) against depth-only, width-only and resolution-only scaling at the same "
            f"measured target, {payload['target_ratio']:.3g}x "
            f"{payload.get('cost', {}).get('label', 'multiply-adds')} (φ = {payload['phi']:g}), seeds "
            f"{', '.join(str(s) for s in payload.get('seeds', []))}; verdicts: {payload.get('test', '')}, alpha = "
            f"{payload.get('alpha_level', '?')}" + ("" if payload.get("complete", True) else
                                                      "; NOT complete, some arms are unsettled") + ".")


def _figure_alts(figures: Sequence[Path], suffix: str) -> list[tuple[Path, str]]:
    from .figures import FIGURE_TITLES

    out = []
    for p in figures:
        if p.suffix != suffix:
            continue
        alt = next((t for key, t in FIGURE_TITLES.items() if p.stem.endswith(key)), p.stem)
        out.append((p, alt))
    return out


# ------------------------------------------------------------------ LaTeX (booktabs, pdflatex)

def _latex_table(headers: Sequence[str], rows: Sequence[Sequence[str]], spec: str, caption_text: str,
                 label: str, colsep: str = "3pt") -> list[str]:
    # \footnotesize and narrow column gaps, local to the float: the ranking is wide, and a resizebox
    # would need a package beyond booktabs.
    return [r"\begin{table}[htbp]", r"\centering", r"\footnotesize", rf"\setlength{{\tabcolsep}}{{{colsep}}}",
            rf"\caption{{{latex_escape(caption_text)}}}", rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
            " & ".join(latex_escape(h) for h in headers) + r" \\", r"\midrule",
            *[" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows],
            r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]


def to_latex(report: RunReport, figures: Sequence[Path] = ()) -> str:
    """A LaTeX fragment: needs \\usepackage{booktabs}; the figures appear when graphicx is loaded too."""
    cap = caption(report)
    out = [f"% {latex_escape(title(report))}: generated by scalesearch report from the study's storage.",
           r"% Needs \usepackage{booktabs}; figures need \usepackage{graphicx} and their PDF files beside this file.",
           rf"\section*{{{latex_escape(title(report))}}}", ""]
    out += [latex_escape(f"Note: {n}.") + "\n" for n in report.notes]
    out += [latex_escape(" ".join(winner_lines(report))), ""]
    for phi, heading, rows in ranking_sections(report, latex_ranking_rows(report)):
        out += _latex_table(LATEX_RANKING_HEADERS, rows, "rl" + "r" * (len(LATEX_RANKING_HEADERS) - 2),
                            f"{heading}, study {report.study}. Distinct networks, best first (rank 1 is the winner), "
                            f"one row each: the interval of nominal α, β, γ of the grid points that build it, the "
                            f"effective coefficients of what was built, the measured cost ratio (in the budget's "
                            f"metric) to the φ = 0 proxy, parameters, and validation accuracy in percent. "
                            f"{_sentence(cap)}", f"tab:scalesearch-ranking-phi{phi}", colsep="2pt")
    rows = not_trained_rows(report)
    if rows:
        out += _latex_table(NOT_TRAINED_HEADERS, rows, "rllrrrrrp{0.30\\linewidth}",
                            f"Candidates that were not trained, or whose training ended early, with the reason. "
                            f"{_sentence(cap)}", "tab:scalesearch-not-trained")
    for i, payload in enumerate(report.comparisons):
        out += _latex_table(COMPARE_HEADERS, compare_rows(payload), "lrrrrrrp{0.32\\linewidth}",
                            f"{_compare_summary(payload)} FLOPs are {FLOP_UNIT}; data set "
                            f"{report.data_name}.", f"tab:scalesearch-compare-{i}")
    for path, alt in _figure_alts(figures, ".pdf"):
        out += [r"\ifdefined\includegraphics", r"\begin{figure}[htbp]", r"\centering",
                # Our figure file names are plain (letters, digits, '-'): safe inside \includegraphics.
                rf"\includegraphics[width=\linewidth]{{{path.name}}}",
                rf"\caption{{{latex_escape(alt)}. {latex_escape(_sentence(cap))}}}",
                rf"\label{{fig:scalesearch-{path.stem.rsplit('-', 2)[-1]}}}", r"\end{figure}", r"\fi", ""]
    # description, not itemize: itemize's bullet needs a font (TS1) that pdflatex may only have as a bitmap.
    # \sloppy: paths and command lines break at the \allowbreak points rather than run into the margin.
    out += [r"\paragraph{Provenance.}", r"\begingroup\sloppy", r"\begin{description}"]
    out += [rf"\item[{{{latex_escape(k)}:}}] {_latex_breakable(v)}" for k, v in provenance_items(report)]
    out += [r"\end{description}", r"\endgroup", ""]
    return "\n".join(out)


def _latex_breakable(text: str) -> str:
    """Escaped text that may break after '/', '-', '_', '=' and inside long tokens (paths, fingerprints)."""
    out, run = [], 0
    for c in str(text):
        out.append(latex_escape(c))
        run = 0 if c == " " else run + 1
        if c in "/-_=," or run >= 24:
            out.append(r"\allowbreak{}")
            run = 0
    return "".join(out)


# ------------------------------------------------------------------ HTML: one self-contained file

_CSS = """body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}caption{text-align:left;padding:.4rem 0;color:#555}
th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right}th{border-bottom:2px solid #333}
td.text,th.text{text-align:left}tr.winner{background:#fdebd0}img{max-width:100%}
.note{background:#fff3cd;padding:.5rem}dt{font-weight:bold}dd{margin:0 0 .5rem 1rem;word-break:break-all}"""


def _html_table(headers, rows, text_columns: set[int], caption_text: str, winner_row: int | None = None) -> str:
    e = html.escape
    head = "".join(f'<th class="{"text" if i in text_columns else "num"}">{e(h)}</th>'
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cls = ' class="winner"' if r == winner_row else ""
        cells = "".join(f'<td class="{"text" if i in text_columns else "num"}">{e(c)}</td>' for i, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return (f"<table><caption>{e(caption_text)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def to_html(report: RunReport, figures: Sequence[Path] = ()) -> str:
    import base64

    e = html.escape
    cap = caption(report)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title(report))}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title(report))}</h1>",
             f"<p>{e(_sentence(cap))}</p>"]
    parts += [f'<p class="note">Note: {e(n)}</p>' for n in report.notes]
    parts += ["<h2>Winner</h2>", *[f"<p>{e(line)}</p>" for line in winner_lines(report)]]
    for i, (_, heading, rows) in enumerate(ranking_sections(report, ranking_rows(report))):
        parts += [f"<h2>{e(heading)}</h2>", _html_table(RANKING_HEADERS, rows, RANKING_TEXT,
                                                        f"{RANKING_INTRO} {_sentence(cap)}", 0 if i == 0 else None)]
    parts += ["<h2>Not trained: rejected, pruned, failed</h2>"]
    rows = not_trained_rows(report)
    parts += [_html_table(NOT_TRAINED_HEADERS, rows, NOT_TRAINED_TEXT, _sentence(cap)) if rows else "<p>None: every candidate trained.</p>"]
    for payload in report.comparisons:
        parts += [f"<h2>Compound vs one dimension ({e(payload['file'])})</h2>", f"<p>{e(_compare_summary(payload))}</p>",
                  _html_table(COMPARE_HEADERS, compare_rows(payload), COMPARE_TEXT, _sentence(cap))]
    pngs = _figure_alts(figures, ".png")
    if pngs:
        parts.append("<h2>Figures</h2>")
        for path, alt in pngs:
            # Embedded, so the report is one file that can be mailed or attached as it is.
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            parts.append(f'<figure><img alt="{e(alt)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{e(alt)}</figcaption></figure>")
    parts += ["<h2>Provenance</h2>", "<dl>"]
    parts += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in provenance_items(report)]
    parts += ["</dl>", "</body></html>", ""]
    return "\n".join(parts)


def render(report: RunReport, fmt: str, figures: Sequence[Path] = ()) -> str:
    if fmt == "md":
        return to_markdown(report, figures)
    if fmt == "latex":
        return to_latex(report, figures)
    if fmt == "html":
        return to_html(report, figures)
    if fmt == "csv":
        return to_csv(report)
    if fmt == "json":
        return to_json(report, figures)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")

