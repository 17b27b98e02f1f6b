"""How much do seeds of one network differ under a proxy recipe? A few grid networks, several seeds, variants.

    python benchmarks/seed_noise.py '{"ep4": {"epochs": 4}, "ep6": {"epochs": 6}}' --seeds 3 --data-seeds 0,1

Each variant is a set of TrainConfig overrides of the CPU preset. The networks are five of the default 2x grid's
(the unscaled one and a wider one at 64 px, the 13-block one at 56 px, two 15-block ones at 49 px), trained on the
embedded data of each data seed with the grid's training seeds (`training_seed(run_seed, index)`), two trainings
at a time on one thread each. Prints every accuracy, then each network's mean ± std and the pooled seed standard
deviation per variant: the noise a grid's ranking has to see through.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

#: name -> (depth_mult, width_mult, resolution) of the CPU proxy's 2x grid
NETS = {"A a1 b1 64": (0.5, 0.25, 64), "B a1 b1.1 64": (0.5, 0.275, 64), "C a1.05 b1 56": (0.525, 0.25, 56),
        "D a1.35 b1 49": (0.675, 0.25, 49), "E a1.35 b1.05 49": (0.675, 0.2625, 49)}


def job(args):
    variant, overrides, name, data_seed, seed_index = args
    import torch

    from scalesearch.config import training_seed
    from scalesearch.data import load_data
    from scalesearch.proxy import CPU_PROXY
    from scalesearch.train import build_and_train, to_device

    torch.set_num_threads(1)
    depth, width, resolution = NETS[name]
    data = load_data("synthetic", seed=data_seed, **CPU_PROXY.data_options())
    splits = to_device(data, resolution, torch.device("cpu"))
    start = time.time()
    res = build_and_train("efficientnet", depth_mult=depth, width_mult=width, splits=splits,
                          num_classes=data.num_classes, config=replace(CPU_PROXY.train, **overrides),
                          seed=training_seed(run_seed=data_seed, seed_index=seed_index))
    return variant, name, data_seed, seed_index, res.accuracy, time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", help='JSON: {"name": {TrainConfig field: value}}')
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data-seeds", default="0")
    args = ap.parse_args()
    variants = json.loads(args.variants)
    data_seeds = [int(x) for x in args.data_seeds.split(",")]
    jobs = [(v, o, n, d, s) for v, o in variants.items() for n in NETS for d in data_seeds for s in range(args.seeds)]
    out: dict = {}
    with ProcessPoolExecutor(2) as pool:
        for v, n, d, s, acc, secs in pool.map(job, jobs):
            out.setdefault(v, {}).setdefault(n, {}).setdefault(d, []).append(acc)
            print(v, n, "data", d, "seed", s, round(acc, 4), f"{secs:.1f}s", flush=True)
    for v, nets in out.items():
        var = dof = 0.0
        print("==", v)
        for n, by_data in nets.items():
            for d, accs in by_data.items():
                sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
                var, dof = var + sd**2 * (len(accs) - 1), dof + len(accs) - 1
                print(f"  {n:<18} data {d}: {statistics.fmean(accs):.4f} ± {sd:.4f}  {[round(a, 3) for a in accs]}")
        print(f"  pooled seed std {(var / dof) ** 0.5:.4f}" if dof else "  one seed: no spread")


if __name__ == "__main__":
    main()
