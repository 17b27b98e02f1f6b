"""`--sampler` and `--pruner`: names to Optuna objects. A new sampler or pruner is one line here.

Light on purpose (Optuna is imported inside the factories), so the command line can list and check the
names before anything heavy is loaded.
"""

from __future__ import annotations

from typing import Callable

#: name -> factory(seed, trials) of an Optuna sampler; `trials` is the run's candidate count.
SAMPLER_FACTORIES: dict[str, Callable] = {
    "tpe": lambda seed, trials: _optuna().samplers.TPESampler(seed=seed, n_startup_trials=min(5, trials)),
    "cmaes": lambda seed, trials: _optuna().samplers.CmaEsSampler(seed=seed, n_startup_trials=min(3, trials)),
    "random": lambda seed, trials: _optuna().samplers.RandomSampler(seed=seed),
}

#: name -> factory(epochs) of an Optuna pruner; it judges a candidate after each epoch but the last.
PRUNER_FACTORIES: dict[str, Callable] = {
    "none": lambda epochs: _optuna().pruners.NopPruner(),
    # No warm-up steps: with a few epochs, waiting one would leave nothing to prune.
    "median": lambda epochs: _optuna().pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0),
    # Resource = epochs done. With few epochs Hyperband has one bracket whose first rung is epoch 1.
    "hyperband": lambda epochs: _optuna().pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                  reduction_factor=3),
}


def _optuna():
    import optuna

    return optuna
