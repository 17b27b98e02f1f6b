"""Train one network of the default data's CPU proxy with training-recipe overrides, one thread, one line out.

    python benchmarks/recipe_probe.py --width 0.25 --depth 1.002 --resolution 42 --seed 0 optimizer=sgd lr=0.4

`KEY=VALUE` pairs replace fields of the CPU preset's TrainConfig (scalesearch/train.py: epochs, lr,
optimizer, weight_decay, batch_size, ...); the data set, split and initialisation follow --seed as in
`scalesearch train --seed`. For questions the CLI cannot ask, such as "does the deeper network lose to
φ = 0 under every optimizer?" (benchmarks/RESULTS.md). Run two at a time at most on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from scalesearch.retrain import plan_training, train_one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--depth", type=float, default=0.5)
    ap.add_argument("--resolution", type=int, default=42)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args()

    plan = plan_training(width_mult=args.width, depth_mult=args.depth, resolution=args.resolution, device="cpu",
                             data=args.data)
    changes = {}
    for pair in args.overrides:
        key, _, value = pair.partition("=")
        if not hasattr(plan.proxy.train, key):
            ap.error(f"TrainConfig has no field {key!r}")
        default = getattr(plan.proxy.train, key)
        changes[key] = value.lower() in ("1", "true", "yes") if isinstance(default, bool) else type(default)(value)
    # The same path as `scalesearch train --threads 1`, with the preset's recipe changed.
    plan = dataclasses.replace(plan, proxy=plan.proxy.with_overrides(**changes))
    result = train_one(plan, "efficientnet", args.seed, console=None, show_progress=False, threads=1)
    print(json.dumps({"width": args.width, "depth": args.depth, "resolution": args.resolution, "seed": args.seed,
                      "overrides": changes, "accuracy": result["accuracy"], "seconds": result["seconds"]}))

if __name__ == "__main__":
    main()
