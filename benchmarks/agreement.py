"""Do two independent runs give the same answer? Pairs of default grids, compared network by network.

    python benchmarks/agreement.py --out /tmp/agree                  # pairs 0/1, 2/3, 4/5 of the default grid
    python benchmarks/agreement.py --out /tmp/agree --pairs 0/1 -- --refine   # extra grid options after --

Each seed is run as a user runs it (`scalesearch grid --budget 2x --seed S --out OUT/seedS`, timed), or read back
if OUT/seedS already holds a complete run (nothing is trained again). `--seed` changes the generated data, the
validation split and every initialisation, so a pair is two independent experiments on the same question.

For each pair:
- the two winners: the same network (equal architecture as built), or how far apart their intervals of
  nominal α and β are (0 where they overlap), in grid steps;
- Spearman between the two runs' mean accuracies over the φ = 1 networks both trained (networks are matched by
  what was built, not by their ids, which are per-run labels).
Target (issue 28): winners the same or within one grid step in every pair, median Spearman >= 0.85.
Prints a table and one JSON object (also written to OUT/agreement.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scipy import stats


def run_grid(out: Path, seed: int, extra: list[str]) -> float | None:
    """Run the default grid for `seed` unless OUT holds a complete one; its wall seconds (None: read back)."""
    best = out / "best.json"
    if best.is_file() and json.loads(best.read_text()).get("complete"):
        return None
    start = time.perf_counter()
    subprocess.run(["scalesearch", "grid", "--budget", "2x", "--seed", str(seed), "--out", str(out), *extra],
                   check=True, stdout=subprocess.DEVNULL, stderr=(out.parent / f"seed{seed}.log").open("w"))
    return time.perf_counter() - start


def read_run(out: Path) -> dict:
    """The run's networks (from its study, as `report` reads it) and its answer (best.json)."""
    from scalesearch.engine.networks import group_networks, trained
    from scalesearch.engine.results import candidate_records
    from scalesearch.engine.rundir import open_run_study
    from scalesearch.rundir import read_run_dir

    run = read_run_dir(out)
    best = run.best
    records = candidate_records(open_run_study(run).get_trials(deepcopy=False), run.budget, law=run.metric.law)
    networks = group_networks(records)
    winner = next(n for n in networks if n.network == best["network"])
    return {"best": best, "phi1": {n.architecture: n for n in trained(networks, 1)}, "winner": winner}


def interval_gap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """How far apart two intervals are (0 where they overlap)."""
    return max(0.0, max(a[0], b[0]) - min(a[1], b[1]))


def compare_pair(x: dict, y: dict, step: float) -> dict:
    wx, wy = x["winner"], y["winner"]
    gap = max(interval_gap(wx.alpha_range, wy.alpha_range), interval_gap(wx.beta_range, wy.beta_range))
    common = sorted(set(x["phi1"]) & set(y["phi1"]))
    rho = stats.spearmanr([x["phi1"][a].accuracy for a in common], [y["phi1"][a].accuracy for a in common])
    return {"same_winner": wx.architecture == wy.architecture and wx.phi == wy.phi,
            "winner_gap_steps": round(gap / step, 6), "within_one_step": gap <= step + 1e-9,
            "common_networks": len(common), "spearman": float(rho.statistic)}


def describe(run: dict) -> str:
    w, best = run["winner"], run["best"]
    return (f"{w.label()} {w.rep.resolution}px {w.accuracy:.4f} (φ = {best['decided_at_phi']}, "
            f"{'separated' if best['separated'] else 'not separated'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--pairs", default="0/1,2/3,4/5")
    ap.add_argument("--step", type=float, default=0.05, help="the grid step the runs used")
    ap.add_argument("extra", nargs="*", help="grid options, after --")
    args = ap.parse_args()
    pairs = [tuple(int(s) for s in p.split("/")) for p in args.pairs.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    seconds, runs = {}, {}
    for seed in sorted({s for p in pairs for s in p}):
        seconds[seed] = run_grid(args.out / f"seed{seed}", seed, args.extra)
        runs[seed] = read_run(args.out / f"seed{seed}")
    rows = []
    for a, b in pairs:
        row = {"pair": f"{a}/{b}", **compare_pair(runs[a], runs[b], args.step),
               "winner_a": describe(runs[a]), "winner_b": describe(runs[b])}
        rows.append(row)
        apart = "same network" if row["same_winner"] else f"{row['winner_gap_steps']:g} grid step(s) apart"
        print(f"seeds {a}/{b}: winners {row['winner_a']} | {row['winner_b']}; {apart}; "
              f"Spearman {row['spearman']:.3f} over {row['common_networks']} networks")
    median = statistics.median(r["spearman"] for r in rows)
    ok = all(r["same_winner"] or r["within_one_step"] for r in rows) and median >= 0.85
    summary = {"pairs": rows, "median_spearman": median, "target_met": ok,
               "seconds": {str(k): v for k, v in seconds.items()}, "options": args.extra}
    print(f"median Spearman {median:.3f}; winners same or within one grid step in every pair: "
          f"{all(r['same_winner'] or r['within_one_step'] for r in rows)}; target met: {ok}")
    print("wall seconds per run (None: read back): " + ", ".join(f"{k}: {v if v is None else round(v, 1)}"
                                                               for k, v in seconds.items()))
    (args.out / "agreement.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    sys.exit(0 if ok else 3)


if __name__ == "__main__":
    main()
