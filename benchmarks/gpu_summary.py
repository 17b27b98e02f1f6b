"""One screen from the logs `benchmarks/gpu_check.sh OUT` wrote: figures, targets, met or missed.

    python benchmarks/gpu_summary.py OUT        # also writes OUT/summary.json; exit 3 when a target is missed

Targets (issue 22): CUDA tests green; grid under 300 s wall; median trial overhead (trial wall time less
time in training steps) at most 3 s; φ = 0 validation between 0.6 and 0.9; the grid's networks spread by
at least 5 points; two runs (--seed 0, --seed 1) with Spearman >= 0.6; two trials on one GPU at least 1.5x
the rate of one (or the default of one worker per GPU stands).
"""

from __future__ import annotations

import csv
import json
import re
import statistics
import sys
from pathlib import Path


def steps(out: Path) -> dict[tuple[str, str], dict]:
    """Last `NAME seed=S rc=R seconds=T` line per (name, seed)."""
    found = {}
    path = out / "steps.log"
    for line in path.read_text().splitlines() if path.exists() else []:
        m = re.match(r"(\S+) seed=(\S+) rc=(\d+) seconds=([\d.]+)$", line)
        if m:
            found[(m[1], m[2])] = {"rc": int(m[3]), "seconds": float(m[4])}
    return found


def last_json(path: Path) -> dict | None:
    """The last JSON object in a log (the commands print one, possibly after log lines)."""
    if not path.exists():
        return None
    text = path.read_text()
    decoder = json.JSONDecoder()
    for start in [m.start() for m in re.finditer(r"^\{", text, re.M)][::-1]:
        try:
            return decoder.raw_decode(text[start:])[0]
        except ValueError:
            continue
    return None


def grid_figures(run: Path) -> dict | None:
    rows_path = run / "trials.csv"
    if not rows_path.exists():
        return None
    rows = list(csv.DictReader(rows_path.open()))
    networks = {}
    for r in rows:  # grid points that rounding built into one network count once; φ = 1 only (the search)
        if r["state"] == "complete" and r["accuracy"] and r.get("phi", "1") in ("", "1"):
            key = r.get("architecture") or (f"depth x{round(float(r['alpha_eff']), 6):g} width "
                                            f"x{round(float(r['beta_eff']), 6):g} {r['resolution']}px")
            networks.setdefault(key, float(r["accuracy"]))
    figures = {"points": len(rows), "trained": sum(r["state"] == "complete" for r in rows), "networks": networks}
    if networks:
        figures["spread_points"] = round(100 * (max(networks.values()) - min(networks.values())), 1)
    overheads = trial_overheads(run)
    if overheads:
        figures["trials_timed"] = len(overheads)
        figures["median_overhead_seconds"] = round(statistics.median(o for o, _ in overheads), 2)
        figures["median_train_seconds"] = round(statistics.median(t for _, t in overheads), 2)
    best = run / "best.json"
    if best.exists():
        b = json.loads(best.read_text())
        figures["winner"] = {k: b.get(k) for k in ("network", "alpha", "beta", "alpha_range", "beta_range",
                                                    "decided_at_phi", "resolution", "accuracy", "accuracy_std")}
        figures["complete"] = b.get("complete")
    return figures


def trial_overheads(run: Path) -> list[tuple[float, float]]:
    """(wall - train_seconds, train_seconds) of every trial that trained, read through Optuna."""
    db = run / "study.db"
    if not db.exists():
        return []
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    out = []
    for summary in optuna.get_all_study_summaries(storage):
        for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials:
            train = t.user_attrs.get("train_seconds")
            if train and t.datetime_start and t.datetime_complete:
                wall = (t.datetime_complete - t.datetime_start).total_seconds()
                out.append((wall - train, train))
    return out


def agreement(a: dict, b: dict) -> dict | None:
    shared = sorted(set(a["networks"]) & set(b["networks"]))
    if len(shared) < 3:
        return None
    from scipy.stats import spearmanr

    rho, p = spearmanr([a["networks"][k] for k in shared], [b["networks"][k] for k in shared])
    return {"networks": len(shared), "spearman": round(float(rho), 3), "p": round(float(p), 4)}


def main() -> int:
    out = Path(sys.argv[1])
    ran = steps(out)
    report: dict = {"steps": {f"{n} seed {s}": v for (n, s), v in sorted(ran.items())}}
    checks: list[tuple[str, bool | None, str]] = []  # (target, met, figure); met None: not measured

    seeds = sorted({s for (_, s) in ran}) or ["0"]
    for seed in seeds:
        log = out / f"cuda-tests-seed{seed}.log"
        if log.exists():
            tail = log.read_text().strip().splitlines()[-1:] or [""]
            green = "passed" in tail[0] and "failed" not in tail[0] and "error" not in tail[0]
            checks.append((f"CUDA tests (seed {seed} call)", green, tail[0]))
        throughput = last_json(out / f"throughput-seed{seed}.log")
        if throughput:
            report[f"throughput seed {seed}"] = throughput
            checks.append(("trainer vs eager loop >= 2.5x", throughput.get("speedup", 0) >= 2.5,
                           f"{throughput.get('ours_images_per_second')} vs {throughput.get('eager_images_per_second')}"
                           f" img/s = {throughput.get('speedup')}x"))
        phi0 = last_json(out / f"phi0-seed{seed}.log")
        if phi0:
            report[f"phi0 seed {seed}"] = phi0
            acc = phi0.get("accuracy") or 0.0
            checks.append((f"phi = 0 validation in 0.6-0.9 (seed {seed})", 0.6 <= acc <= 0.9,
                           f"{acc:.4f}, {phi0.get('seconds')} s, train {phi0.get('train_seconds')} s"))
        grid = grid_figures(out / f"grid-seed{seed}")
        if grid:
            report[f"grid seed {seed}"] = grid
            wall = ran.get(("grid", seed), {}).get("seconds")
            checks.append((f"grid wall < 300 s (seed {seed})", wall is not None and wall < 300 and bool(grid.get("complete")),
                           f"{wall} s, {grid['trained']}/{grid['points']} trained, complete {grid.get('complete')}"))
            if "median_overhead_seconds" in grid:
                checks.append((f"median trial overhead <= 3 s (seed {seed})", grid["median_overhead_seconds"] <= 3,
                               f"{grid['median_overhead_seconds']} s over {grid['trials_timed']} trainings "
                               f"(median training {grid['median_train_seconds']} s)"))
            if "spread_points" in grid:
                checks.append((f"networks spread >= 5 points (seed {seed})", grid["spread_points"] >= 5,
                               f"{grid['spread_points']} points over {len(grid['networks'])} networks"))
        concurrent = last_json(out / f"concurrent-seed{seed}.log")
        if concurrent:
            report[f"concurrent seed {seed}"] = concurrent
            checks.append(("2 trials on one GPU >= 1.5x one (else keep 1 worker per GPU)",
                           concurrent.get("ratio", 0) >= 1.5,
                           f"{concurrent.get('ratio')}x ({concurrent['together']['images_per_second']} vs "
                           f"{concurrent['alone']['images_per_second']} img/s)"))
    grids = {s: report.get(f"grid seed {s}") for s in ("0", "1")}
    if grids["0"] and grids["1"]:
        agree = agreement(grids["0"], grids["1"])
        report["agreement"] = agree
        checks.append(("two-run Spearman >= 0.6", agree is not None and agree["spearman"] >= 0.6,
                       "fewer than 3 shared networks" if agree is None else
                       f"{agree['spearman']} over {agree['networks']} networks (p {agree['p']})"))
    else:
        checks.append(("two-run Spearman >= 0.6", None, "run again with --seed 1 into the same folder"))

    report["checks"] = [{"target": t, "met": m, "figure": f} for t, m, f in checks]
    (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check summary: {out}")
    for target, met, figure in checks:
        mark = "not measured" if met is None else ("met" if met else "MISSED")
        print(f"  [{mark:>12}] {target}: {figure}")
    return 3 if any(m is False for _, m, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
