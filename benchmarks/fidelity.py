"""Does the default search give an answer a second run confirms, and that longer training agrees with?

    python benchmarks/fidelity.py                       # both checks on the default data, CPU preset
    python benchmarks/fidelity.py --only agreement      # (a) only
    python benchmarks/fidelity.py --long-factor 4 --top 6 --long-seeds 2 --jobs 2

The grids run in this process, one worker each. To measure them as users run them, run the two
`scalesearch grid --budget 2x [--seed 1]` commands first with `--out OUT/seed0` and `--out OUT/seed1`:
this script then resumes the finished studies (nothing is trained again) and reads them back.

(a) Two independent default grids (`--seed 0` and `--seed 1`: other generated data, split and
    initialisation). Spearman rank correlation of their accuracies over the distinct networks both
    trained (grid points that rounding builds into one network count once), and where each run's
    winner ranks in the other run.
(b) The proxy's ranking against a long-training ranking of the same candidates: the top `--top`
    candidates of run (a, seed 0) retrained with `--long-factor` times the epochs and `--long-seeds`
    seeds each, on the same data; Spearman between the proxy's and the long ranking.
Targets (issue 7): (a) Spearman >= 0.6 with each winner in the other's top 3; (b) Spearman >= 0.7.
Prints one JSON object (also written to --json) with every number behind the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from scipy import stats

import scalesearch
from scalesearch.engine.objective import Experiment
from scalesearch.engine.strategies import Member
from scalesearch.config import SearchConfig
from scalesearch.scaling import Coefficients


def networks(records) -> list:
    """Trained candidates, one per distinct network (grid points rounding built alike are one experiment),
    best first."""
    seen, out = set(), []
    for r in sorted((r for r in records if r.state == "complete" and r.phi == 1),
                    key=lambda r: (-r.accuracy, r.trial)):
        if r.architecture not in seen:
            seen.add(r.architecture)
            out.append(r)
    return out


def agreement(out_root: Path, epochs: int | None) -> dict:
    runs = {}
    for seed in (0, 1):
        start = time.perf_counter()
        result = scalesearch.grid(seed=seed, out=out_root / f"seed{seed}", epochs=epochs)
        runs[seed] = {"result": result, "seconds": time.perf_counter() - start}
    ranked = {seed: networks(runs[seed]["result"].records) for seed in runs}
    acc = {seed: {r.architecture: r.accuracy for r in ranked[seed]} for seed in runs}
    common = sorted(set(acc[0]) & set(acc[1]))
    rho = stats.spearmanr([acc[0][n] for n in common], [acc[1][n] for n in common])
    order = {seed: [r.architecture for r in ranked[seed]] for seed in runs}
    winners = {seed: ranked[seed][0] for seed in runs}

    def rank_in(other: int, winner) -> int | None:
        return order[other].index(winner.architecture) + 1 if winner.architecture in order[other] else None

    return {
        "common_networks": len(common), "spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
        "winner_seed0": winners[0].coefficients, "winner_seed1": winners[1].coefficients,
        "rank_of_seed0_winner_in_seed1": rank_in(1, winners[0]),
        "rank_of_seed1_winner_in_seed0": rank_in(0, winners[1]),
        "accuracies": {seed: [{"network": r.architecture, **r.coefficients, "resolution": r.resolution,
                               "accuracy": r.accuracy, "seeds": r.seeds} for r in ranked[seed]] for seed in runs},
        "seconds": {seed: runs[seed]["seconds"] for seed in runs},
        "trained": {seed: sum(r.state == "complete" for r in runs[seed]["result"].records) for seed in runs},
        "points": {seed: len(runs[seed]["result"].records) for seed in runs},
        "verdicts": {seed: (runs[seed]["result"].best or {}).get("verdict", {}).get("text") for seed in runs},
        "_records": runs[0]["result"].records,
    }


_WORKER_EXPERIMENT = None


def _long_training(task: tuple) -> tuple[float | None, int]:
    """One long training in a worker process (one thread, as every grid training): validation accuracy, epochs."""
    import torch

    from scalesearch.train import build_and_train

    global _WORKER_EXPERIMENT
    alpha, beta, gamma, seed, factor = task
    torch.set_num_threads(1)
    if _WORKER_EXPERIMENT is None:
        _WORKER_EXPERIMENT = Experiment.prepare(SearchConfig(mode="grid").validated())
    exp = _WORKER_EXPERIMENT
    m = exp.candidate(Member(Coefficients(alpha, beta, gamma)))
    long_cfg = exp.proxy.with_overrides(epochs=exp.proxy.train.epochs * factor).train
    res = build_and_train(exp.config.family, width_mult=m.width_mult, depth_mult=m.depth_mult,
                          splits=exp.splits(m.resolution), num_classes=exp.data.num_classes, config=long_cfg,
                          seed=seed)
    return res.accuracy, long_cfg.epochs


def long_ranking(records, *, top: int, factor: int, seeds: int, jobs: int) -> dict:
    """The top candidates retrained `factor` times longer on `seeds` fresh seeds, `jobs` trainings at a time."""
    from concurrent.futures import ProcessPoolExecutor

    candidates = networks(records)[:top]
    tasks = [(r.alpha, r.beta, r.gamma, 10_000 + s, factor) for r in candidates for s in range(seeds)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(_long_training, tasks))
    accs = [acc for acc, _ in results]
    rows = []
    for i, r in enumerate(candidates):
        mine = accs[i * seeds:(i + 1) * seeds]
        rows.append({"alpha": r.alpha, "beta": r.beta, "resolution": r.resolution, "proxy_accuracy": r.accuracy,
                     "proxy_seeds": r.seeds, "long_accuracy": statistics.fmean(mine), "long_seed_accuracies": mine})
    rho = stats.spearmanr([x["proxy_accuracy"] for x in rows], [x["long_accuracy"] for x in rows])
    return {"candidates": rows, "epochs": results[0][1] if results else None, "seeds": seeds,
            "spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
            "seconds": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/fidelity"))
    ap.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the preset's)")
    ap.add_argument("--only", choices=("agreement", "long"), default=None)
    ap.add_argument("--top", type=int, default=6)
    ap.add_argument("--long-factor", type=int, default=4)
    ap.add_argument("--long-seeds", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=2, help="long trainings at a time, one thread each")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    report: dict = {}
    a = agreement(args.out, args.epochs)
    records = a.pop("_records")
    if args.only != "long":
        report["agreement"] = a
    if args.only != "agreement":
        report["long"] = long_ranking(records, top=args.top, factor=args.long_factor, seeds=args.long_seeds,
                                      jobs=args.jobs)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
