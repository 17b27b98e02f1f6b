"""Does the default search give an answer a second run confirms, and that longer training agrees with?

    python benchmarks/fidelity.py                       # both checks on the default data, CPU preset
    python benchmarks/fidelity.py --only agreement      # (a) only
    python benchmarks/fidelity.py --long-factor 4 --top 6 --long-seeds 2

(a) Two independent default grids (`--seed 0` and `--seed 1`: other generated data, split and
    initialisation). Spearman rank correlation of their accuracies over the grid points both trained,
    and where each run's winner ranks in the other run.
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
from scalesearch.config import SearchConfig
from scalesearch.scaling import Coefficients


def point(record) -> tuple[float, float]:
    return round(record.alpha, 6), round(record.beta, 6)


def ranked(records) -> list:
    done = [r for r in records if r.state == "complete"]
    return sorted(done, key=lambda r: -r.accuracy)


def agreement(out_root: Path, epochs: int | None) -> dict:
    runs = {}
    for seed in (0, 1):
        start = time.perf_counter()
        result = scalesearch.grid(seed=seed, out=out_root / f"seed{seed}", epochs=epochs)
        runs[seed] = {"result": result, "seconds": time.perf_counter() - start}
    acc = {seed: {point(r): r.accuracy for r in ranked(runs[seed]["result"].records)} for seed in runs}
    common = sorted(set(acc[0]) & set(acc[1]))
    rho = stats.spearmanr([acc[0][p] for p in common], [acc[1][p] for p in common])
    order = {seed: [point(r) for r in ranked(runs[seed]["result"].records)] for seed in runs}
    winners = {seed: order[seed][0] for seed in runs}
    return {
        "common_points": len(common), "spearman": float(rho.statistic), "spearman_p": float(rho.pvalue),
        "winner_seed0": winners[0], "winner_seed1": winners[1],
        "rank_of_seed0_winner_in_seed1": order[1].index(winners[0]) + 1 if winners[0] in order[1] else None,
        "rank_of_seed1_winner_in_seed0": order[0].index(winners[1]) + 1 if winners[1] in order[0] else None,
        "seconds": {seed: runs[seed]["seconds"] for seed in runs},
        "trained": {seed: sum(r.state == "complete" for r in runs[seed]["result"].records) for seed in runs},
        "points": {seed: len(runs[seed]["result"].records) for seed in runs},
        "verdicts": {seed: (runs[seed]["result"].best or {}).get("verdict", {}).get("text") for seed in runs},
        "_records": runs[0]["result"].records,
    }


def long_ranking(records, *, top: int, factor: int, seeds: int) -> dict:
    from scalesearch.train import build_and_train

    candidates = ranked(records)[:top]
    cfg = SearchConfig(mode="grid").validated()
    exp = Experiment.prepare(cfg)
    long_cfg = exp.proxy.with_overrides(epochs=exp.proxy.train.epochs * factor).train
    rows = []
    for r in candidates:
        m = exp.candidate(Coefficients(r.alpha, r.beta, r.gamma))
        accs = []
        for s in range(seeds):
            res = build_and_train(cfg.family, width_mult=m.width_mult, depth_mult=m.depth_mult,
                                  splits=exp.splits(m.resolution), num_classes=exp.data.num_classes,
                                  config=long_cfg, seed=10_000 + s)
            accs.append(res.accuracy)
        rows.append({"alpha": r.alpha, "beta": r.beta, "resolution": m.resolution, "proxy_accuracy": r.accuracy,
                     "long_accuracy": statistics.fmean(accs), "long_seed_accuracies": accs})
    rho = stats.spearmanr([x["proxy_accuracy"] for x in rows], [x["long_accuracy"] for x in rows])
    return {"candidates": rows, "epochs": long_cfg.epochs, "seeds": seeds, "spearman": float(rho.statistic),
            "spearman_p": float(rho.pvalue)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/fidelity"))
    ap.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the preset's)")
    ap.add_argument("--only", choices=("agreement", "long"), default=None)
    ap.add_argument("--top", type=int, default=6)
    ap.add_argument("--long-factor", type=int, default=4)
    ap.add_argument("--long-seeds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    report: dict = {}
    a = agreement(args.out, args.epochs)
    records = a.pop("_records")
    if args.only != "long":
        report["agreement"] = a
    if args.only != "agreement":
        report["long"] = long_ranking(records, top=args.top, factor=args.long_factor, seeds=args.long_seeds)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
