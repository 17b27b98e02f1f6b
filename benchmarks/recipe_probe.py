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

import torch

from scalesearch.data import load_data
from scalesearch.proxy import proxy_for
from scalesearch.train import build_and_train, to_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--depth", type=float, default=0.5)
    ap.add_argument("--resolution", type=int, default=42)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = ap.parse_args()

    torch.set_num_threads(1)  # as a grid trial trains
    proxy = proxy_for("cpu")
    changes = {}
    for pair in args.overrides:
        key, _, value = pair.partition("=")
        if not hasattr(proxy.train, key):
            ap.error(f"TrainConfig has no field {key!r}")
        default = getattr(proxy.train, key)
        changes[key] = value.lower() in ("1", "true", "yes") if isinstance(default, bool) else type(default)(value)
    config = dataclasses.replace(proxy.train, **changes)
    data = load_data(args.data, seed=args.seed, **proxy.data_options())
    splits = to_device(data, args.resolution, torch.device("cpu"))
    result = build_and_train("efficientnet", width_mult=args.width, depth_mult=args.depth, splits=splits,
                             num_classes=data.num_classes, config=config, seed=args.seed)
    print(json.dumps({"width": args.width, "depth": args.depth, "resolution": args.resolution, "seed": args.seed,
                      "overrides": changes, "accuracy": result.accuracy, "seconds": round(result.seconds, 1)}))


if __name__ == "__main__":
    main()
