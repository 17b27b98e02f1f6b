"""Strategies: which work items a study wants, and the candidate a trial of one of them stands for.

A study's work is a set of items, each a candidate's parameters with a seed index (queue.py). A Strategy
answers what differs between a grid, a sampler and a comparison; the run loop (run.py) does everything
else alike for all of them: queue, claim, evaluate, race, record. Like Optuna's samplers, a strategy keeps
nothing between calls that the study does not hold, so every worker on every machine decides alike.

A new strategy is a subclass (here or in a module of its own) and one line in STRATEGIES.
"""

from __future__ import annotations

from typing import ClassVar

import optuna

from ..errors import UserError
from ..samplers import PRUNER_FACTORIES, SAMPLER_FACTORIES
from ..scaling import coefficients_from_simplex, grid_candidates, grid_ends
from . import queue
from .results import candidate_records, coefficients_from_params


class Stray(Exception):
    """The trial is not an item this strategy wants (another worker emptied the queue first): it steps aside."""


class Strategy:
    """What a study wants (`wanted`, `first_items`), what a trial evaluates (`candidate`), how it is
    described in consoles and resume checks (`describe`, `identity`), and which Optuna sampler and pruner it
    uses."""

    mode: ClassVar[str]

    def __init__(self, cfg, exp=None):
        self.cfg, self.exp = cfg, exp

    @property
    def cap(self) -> int:
        """Most seeds a candidate gets."""
        return self.cfg.seed_cap(self.exp.proxy)

    # ------------------------------------------------------------ description

    def describe(self) -> str:
        raise NotImplementedError

    def identity(self) -> dict:
        """What a resumed study must have been run with, besides the experiment's own identity."""
        return {"mode": self.mode}

    @classmethod
    def extreme_multipliers(cls, cfg, proxy) -> list[tuple[float, float]]:
        """(depth, width) of the proxy and of the largest network the study can ask for: checked before training."""
        return [(proxy.depth_mult, proxy.width_mult)]

    # ------------------------------------------------------------ what the study wants

    @property
    def racing(self) -> bool:
        """Extra seeds only for candidates not clearly behind the leader (`--seeds auto`)."""
        return self.cfg.seeds == "auto"

    def first_items(self, trials) -> list[dict]:
        """Parameters of every candidate wanted now, each with seed 0."""
        raise NotImplementedError

    def wants_new_candidate(self, trials) -> bool:
        """Whether to ask the sampler for a candidate beyond the queued ones."""
        return False

    def wanted(self, trials) -> list[tuple[dict, int]]:
        """Every (params, seed) item the study must settle, as far as the trials show now."""
        items = [(p, 0) for p in self.first_items(trials)]
        keys = {queue.item_key(p, s) for p, s in items}
        allowed = {k[0] for k in keys}
        for t in trials:  # items queued earlier (extra seeds, racing rounds) stay wanted until settled
            if queue.trial_outcome(t) == "stray" or not queue.is_queued(t):
                continue
            key = queue.key_of(t)
            if key[0] in allowed and key not in keys:
                keys.add(key)
                items.append((queue.params_of(t), key[1]))
        if not self.racing and self.cap > 1:
            params_of = candidate_params(trials)
            for rec in candidate_records(trials, self.cfg.budget, law=self.cfg.metric.law):
                if 0 in rec.seed_accuracies:
                    params = params_of[rec.params_key]
                    items += [(params, s) for s in range(1, self.cap) if queue.item_key(params, s) not in keys]
        return items

    def first_pass_done(self, trials) -> bool:
        statuses = queue.item_statuses(trials)
        return all(k in statuses and statuses[k].settled for k in (queue.item_key(p, 0)
                                                                   for p in self.first_items(trials)))

    def total(self, trials) -> int:
        """Items the progress bar counts to."""
        return len(self.wanted(trials))

    # ------------------------------------------------------------ one trial

    def candidate(self, trial: optuna.Trial, *, queued: bool) -> object:
        """What `trial` evaluates (passed to the experiment's `evaluate`); Stray if it is not wanted.
        `queued`: the trial was taken from the queue (its parameters fixed), not drawn by the sampler."""
        raise NotImplementedError

    def open_candidates(self, trials) -> list:
        """Candidates known before any trial and not settled yet (a grid's points), to measure in advance."""
        return []

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """Draws new candidates (queued items carry their own parameters; the sampler only sees them pass)."""
        return optuna.samplers.RandomSampler(seed=seed)

    def pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()


def candidate_params(trials) -> dict[tuple, dict]:
    """Each candidate's exact parameters (from its first trial), by its queue identity."""
    out: dict[tuple, dict] = {}
    for t in sorted(trials, key=lambda t: t.number):
        params = queue.params_of(t)
        if params and queue.trial_outcome(t) != "stray":
            out.setdefault(queue.item_key(params, 0)[0], params)
    return out


class GridStrategy(Strategy):
    """α and β on a grid (γ solved from the budget), every point queued up front."""

    mode = "grid"

    def describe(self) -> str:
        return f"{len(self.points())} grid points"

    def identity(self) -> dict:
        return {"mode": self.mode, "step": self.cfg.step}

    @classmethod
    def extreme_multipliers(cls, cfg, proxy):
        alpha, beta = grid_ends(cfg.budget, cfg.metric.law)  # the grid's far ends
        return [(proxy.depth_mult, proxy.width_mult), (proxy.depth_mult * alpha, proxy.width_mult * beta)]

    def points(self) -> list[dict]:
        return [{"alpha": c.alpha, "beta": c.beta}
                for c in grid_candidates(self.cfg.budget, self.cfg.step, law=self.cfg.metric.law)]

    def first_items(self, trials) -> list[dict]:
        return self.points()

    def open_candidates(self, trials) -> list:
        statuses = queue.item_statuses(trials)
        return [coefficients_from_params(p, self.cfg.budget, law=self.cfg.metric.law) for p in self.points()
                if not (queue.item_key(p, 0) in statuses and statuses[queue.item_key(p, 0)].settled)]

    def candidate(self, trial: optuna.Trial, *, queued: bool) -> object:
        if not queued:
            raise Stray("not from the grid queue (another worker emptied it)")
        budget, law = self.cfg.budget, self.cfg.metric.law
        (lo_a, hi_a), (lo_b, hi_b) = (sorted((1.0, end)) for end in grid_ends(budget, law))
        return coefficients_from_params({"alpha": trial.suggest_float("alpha", lo_a, hi_a),
                                         "beta": trial.suggest_float("beta", lo_b, hi_b)}, budget, law=law)


class SamplerStrategy(Strategy):
    """Any Optuna sampler (and pruner) on the simplex α·β²·γ² = budget, `--trials` candidates."""

    mode = "search"

    def describe(self) -> str:
        return f"{self.cfg.trials} trials with {self.cfg.sampler}"

    @classmethod
    def extreme_multipliers(cls, cfg, proxy):
        law = cfg.metric.law  # the simplex's corners: all of the budget in depth, or in width
        alpha, beta = cfg.budget ** (1 / law.depth), cfg.budget ** (1 / law.width)
        return [(proxy.depth_mult, proxy.width_mult), (proxy.depth_mult * alpha, proxy.width_mult * beta)]

    def first_items(self, trials) -> list[dict]:
        """Every non-stray seed-0 trial that got as far as its parameters."""
        seen, out = set(), []
        for t in sorted(trials, key=lambda t: t.number):
            if queue.trial_outcome(t) != "stray" and t.params and int(t.user_attrs.get("seed", 0)) == 0:
                key = queue.item_key(queue.params_of(t), 0)
                if key not in seen:
                    seen.add(key)
                    out.append(queue.params_of(t))
        return out

    def wants_new_candidate(self, trials) -> bool:
        return self._drawn(trials) < self.cfg.trials

    def _drawn(self, trials, *, before: int | None = None) -> int:
        """Candidates drawn so far (with their parameters, or being drawn), by trials numbered below `before`."""
        earlier = [t for t in trials if before is None or t.number < before]
        drawing = sum(1 for t in earlier if t.state == optuna.trial.TrialState.RUNNING and not t.params
                      and not queue.is_queued(t))
        return len(self.first_items(earlier)) + drawing

    def first_pass_done(self, trials) -> bool:
        return len(self.first_items(trials)) >= self.cfg.trials and super().first_pass_done(trials)

    def total(self, trials) -> int:
        return max(len(self.wanted(trials)), self.cfg.trials)

    def candidate(self, trial: optuna.Trial, *, queued: bool) -> object:
        # A draw beyond --trials (a peer took the queued item this worker asked for, or drew at the same
        # moment) steps aside; ordered by trial number, so of two such draws the lower one stays.
        if not queued and self._drawn(trial.study.get_trials(deepcopy=False), before=trial.number) >= self.cfg.trials:
            raise Stray(f"--trials {self.cfg.trials} already drawn")
        return coefficients_from_simplex(trial.suggest_float("s1", 0.0, 1.0), trial.suggest_float("s2", 0.0, 1.0),
                                         self.cfg.budget, self.cfg.metric.law)

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return SAMPLER_FACTORIES[self.cfg.sampler](seed, self.cfg.trials)

    def pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        if self.cfg.pruner != "none" and epochs < 2:
            raise UserError(f"--pruner {self.cfg.pruner} needs 2 or more epochs (this proxy trains {epochs}): a "
                            "pruner stops a candidate between epochs; use --epochs 2 or --pruner none")
        return PRUNER_FACTORIES[self.cfg.pruner](epochs)


class CompareStrategy(Strategy):
    """Every arm of the comparison with every seed of its setup: a fixed set of items, no racing."""

    mode = "compare"

    def describe(self) -> str:
        exp = self.exp
        return f"{len(exp.arms) - 1} arms and the unscaled proxy x {len(exp.setup.seeds)} seeds at φ = {exp.setup.phi:g}"

    def identity(self) -> dict:
        return {"mode": self.mode}  # the arms, compound and seeds are the experiment's (CompareExperiment.identity)

    @property
    def racing(self) -> bool:
        return False

    def first_items(self, trials) -> list[dict]:
        return [{"arm": i} for i in range(len(self.exp.arms))]

    def wanted(self, trials) -> list[tuple[dict, int]]:
        return [(p, s) for p in self.first_items(trials) for s in self.exp.setup.seeds]

    def first_pass_done(self, trials) -> bool:
        statuses = queue.item_statuses(trials)
        return all(queue.item_key(p, s) in statuses and statuses[queue.item_key(p, s)].settled
                   for p, s in self.wanted(trials))

    def candidate(self, trial: optuna.Trial, *, queued: bool) -> object:
        if not queued:
            raise Stray("not from the compare queue")
        return self.exp.arms[trial.suggest_int("arm", 0, len(self.exp.arms) - 1)]


#: `SearchConfig.mode` -> its strategy.
STRATEGIES: dict[str, type[Strategy]] = {s.mode: s for s in (GridStrategy, SamplerStrategy, CompareStrategy)}


def strategy_for(cfg, exp=None) -> Strategy:
    return STRATEGIES[cfg.mode](cfg, exp)
