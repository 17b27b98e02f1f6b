"""Strategies: which work items a study wants, and the candidate a trial of one of them stands for.

A study's work is a set of items, each a candidate's parameters with a seed index (queue.py). A Strategy
answers what differs between a grid, a sampler and a comparison, including its next round once everything
queued is settled (`next_round`: racing seeds, then the refinement round at φ = 2); the run loop (run.py)
does everything else alike for all of them: queue, claim, evaluate, record. Like Optuna's samplers, a
strategy keeps nothing between calls that the study does not hold, so every worker on every machine decides
alike.

Rounds of a grid or sampler study: φ = 1 (every point with seed 0, then racing by network), then, with
refinement on and where φ = 1 left the answer open (engine/networks.py, plan_refinement), the points of the
contending networks built again as their φ = 2 members (items with `"phi": 2`), raced there the same way.

A new strategy is a subclass in a module of its own, registered with `@register` (comparison/study.py's is one): its
mode's checks (`check`), items, rounds, sampler, pruner and outputs are all in it; the loop (run.py) and the
API's `run_search` need no change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import optuna

from ..errors import UserError
from ..racing import FIRST_ROUND, LATER_CONTENDERS, race, race_budget
from ..samplers import PRUNER_FACTORIES, SAMPLER_FACTORIES
from ..scaling import Coefficients, coefficients_from_simplex, grid_candidates, grid_ends, grid_size
from . import queue
from .networks import group_networks, plan_refinement, race_results
from .outputs import Outputs
from .results import candidate_records, coefficients_from_params

#: The refinement round's items carry this parameter (absent: φ = 1, as in every study made before it).
PHI = "phi"
# Guards against a typo running for days (--step 1e-9): the default 2x grid has 36 points, 16x about 1,300.
MAX_GRID_POINTS = 10_000

#: `SearchConfig.mode` -> its strategy, filled by `@register`.
STRATEGIES: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: `cls.mode` now names `cls` (a mode is registered once)."""
    if cls.mode in STRATEGIES:
        raise ValueError(f"strategy mode {cls.mode!r} is already registered")
    STRATEGIES[cls.mode] = cls
    return cls


def strategy_class(mode: str) -> type:
    """The strategy registered for `mode` (UserError for one nobody registered)."""
    try:
        return STRATEGIES[mode]
    except KeyError:
        raise UserError(f"unknown mode {mode!r}; known: {', '.join(sorted(STRATEGIES))}") from None


@dataclass(frozen=True)
class Member:
    """What a grid or sampler trial builds: the proxy scaled by (α, β, γ)^φ at budget^φ. φ = 1 is the search
    itself; φ = 2 is the refinement round, where rounding separates points that built one network at φ = 1."""

    coefficients: Coefficients
    phi: int = 1

    @property
    def key(self) -> tuple:
        c = self.coefficients
        return (c.alpha, c.beta, c.gamma, self.phi)


@dataclass(frozen=True)
class Round:
    """Items a strategy adds once everything queued is settled, and the line every worker's console shows."""

    items: list[tuple[dict, int]]
    note: str


class Stray(Exception):
    """The trial is not an item this strategy wants (another worker emptied the queue first): it steps aside."""


class Strategy:
    """What a study wants (`wanted`, `first_items`), what a trial evaluates (`subject`), how it is
    described in consoles and resume checks (`describe`, `identity`), and which Optuna sampler and pruner it
    uses."""

    mode: ClassVar[str]
    outputs: ClassVar[type] = Outputs  # what the run leaves: trials.csv and best.json (compare: its own files)

    def __init__(self, cfg, exp=None):
        self.cfg, self.exp = cfg, exp

    @property
    def cap(self) -> int:
        """Most seeds a candidate gets."""
        return self.cfg.seed_cap(self.exp.proxy)

    @classmethod
    def check(cls, cfg) -> None:
        """This mode's own checks of a validated config (UserError), before any data are read."""

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

    @property
    def refines(self) -> bool:
        """A φ = 2 round after φ = 1 where the answer is open (the experiment decided it: --refine, device)."""
        return bool(getattr(self.exp, "refine", False))

    def first_items(self, trials) -> list[dict]:
        """Parameters of every candidate wanted now, each with seed 0."""
        raise NotImplementedError

    def wants_new_candidate(self, trials) -> bool:
        """Whether to ask the sampler for a candidate beyond the queued ones."""
        return False

    def wanted(self, trials) -> list[tuple[dict, int]]:
        """Every (params, seed) item the study must settle, as far as the trials show now."""
        firsts = self.first_items(trials)
        items = [(p, 0) for p in firsts]
        keys = {queue.item_key(p, s) for p, s in items}
        allowed = {k[0] for k in keys}
        if self.refines:  # the φ = 2 members of the same points, once the refinement round queued them
            allowed |= {queue.item_key({**p, PHI: 2}, 0)[0] for p in firsts}
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

    def next_round(self, trials) -> Round | None:
        """Called when nothing is waiting or running: racing seeds for the open φ, then the refinement round;
        None when the study has nothing more to add."""
        if not (self.racing or self.refines) or not self.first_pass_done(trials):
            return None
        cfg = self.cfg
        records = candidate_records(trials, cfg.budget, law=cfg.metric.law)
        networks = group_networks(records)
        phi = 2 if any(r.phi == 2 for r in records) else 1  # the round now open (φ = 1 is final once 2 started)
        params_of = candidate_params(trials)
        if self.racing:
            results = race_results(networks, phi)
            spent = sum(len(accs) - 1 for accs in results.values())  # extra trainings this φ's race has had
            rnd = race(results, cap=self.cap, significance=cfg.significance, first_round=FIRST_ROUND,
                       max_contenders=LATER_CONTENDERS, budget=race_budget(self.cap) - spent)
            if rnd.next_items:
                by_id = {n.network: n for n in networks}
                items = [(params_of[by_id[net].rep.params_key], seed) for net, seed in rnd.next_items]
                aside = (f" ({len(rnd.set_aside)} more within noise stay at their seeds: at most "
                         f"{len(rnd.contenders)} race)" if rnd.set_aside else "")
                where = " at φ = 2" if phi == 2 else ""
                return Round(items, f"racing{where}: {len(rnd.contenders)} network(s) not clearly behind the "
                                    f"leader ({', '.join(rnd.contenders)}) get seed(s) up to "
                                    f"{max(s for _, s in rnd.next_items) + 1}{aside}")
        if phi == 1 and self.refines:
            plan = plan_refinement(networks, budget=cfg.budget, law=cfg.metric.law, significance=cfg.significance,
                                   step=cfg.step)
            if plan.needed:
                items = [({**params_of[p.params_key], PHI: 2}, 0) for p in plan.points()]
                left = (f"; {', '.join(n.network for n in plan.left_out)} not separated either, left at φ = 1 "
                        f"(at most {len(plan.networks)} go on)" if plan.left_out else "")
                return Round(items, f"refining at φ = 2 ({'; '.join(plan.reasons)}): the {len(items)} point(s) of "
                                    f"{', '.join(n.network for n in plan.networks)} built again at "
                                    f"{cfg.budget:g}² = {cfg.budget**2:g}x, where rounding separates more{left}")
        return None

    def complete(self, trials) -> bool:
        """Every wanted item settled, and no further round to add (queue invariant I4)."""
        statuses = queue.item_statuses(trials)
        wanted = [queue.item_key(p, s) for p, s in self.wanted(trials)]
        if not self.first_pass_done(trials) or queue.settled_count(statuses, wanted) != len(wanted):
            return False
        rnd = self.next_round(trials)
        return rnd is None or all(queue.item_key(p, s) in statuses and statuses[queue.item_key(p, s)].settled
                                  for p, s in rnd.items)

    def total(self, trials) -> int:
        """Items the progress bar counts to."""
        return len(self.wanted(trials))

    # ------------------------------------------------------------ one trial

    def subject(self, trial: optuna.Trial, *, item: dict | None) -> object:
        """What `trial` evaluates (passed to the experiment's `evaluate`); Stray if it is not wanted.
        `item`: the parameters the trial was queued with (fixed), or None when the sampler draws them."""
        raise NotImplementedError

    def open_candidates(self, trials) -> list:
        """Candidates known before any trial and not settled yet (a grid's points), to measure in advance."""
        return []

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """Draws new candidates (queued items carry their own parameters; the sampler only sees them pass)."""
        return optuna.samplers.RandomSampler(seed=seed)

    def pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        return optuna.pruners.NopPruner()


def _phi(trial: optuna.Trial, item: dict | None) -> int:
    """The φ a queued item is built at (its `phi` parameter, suggested so that Optuna records it too)."""
    return trial.suggest_int(PHI, 1, 2) if item is not None and PHI in item else 1


def candidate_params(trials) -> dict[tuple, dict]:
    """Each candidate's exact parameters (from its first trial), by its queue identity."""
    out: dict[tuple, dict] = {}
    for t in sorted(trials, key=lambda t: t.number):
        params = queue.params_of(t)
        if params and queue.trial_outcome(t) != "stray":
            out.setdefault(queue.item_key(params, 0)[0], params)
    return out


@register
class GridStrategy(Strategy):
    """α and β on a grid (γ solved from the budget), every point queued up front."""

    mode = "grid"

    @classmethod
    def check(cls, cfg) -> None:
        points = grid_size(cfg.budget, cfg.step, cfg.metric.law)
        if points > MAX_GRID_POINTS:
            raise UserError(f"--budget {cfg.budget:g}x with --step {cfg.step:g} makes {points:,} grid points "
                            f"(at most {MAX_GRID_POINTS:,} are allowed); raise --step")

    def __init__(self, cfg, exp=None):
        super().__init__(cfg, exp)
        self._groups: dict[tuple, list[dict]] | None = None

    def describe(self) -> str:
        points = self.points()
        if self.exp is None:
            return f"{len(points)} grid points"
        return (f"{len(points)} grid points, which build {len(self._networks())} distinct network(s) (depth rounded "
                "up per stage, channels to multiples of 8): each network trains once and its points share the result")

    def identity(self) -> dict:
        return {"mode": self.mode, "step": self.cfg.step}

    @classmethod
    def extreme_multipliers(cls, cfg, proxy):
        alpha, beta = grid_ends(cfg.budget, cfg.metric.law)  # the grid's far ends
        return [(proxy.depth_mult, proxy.width_mult), (proxy.depth_mult * alpha, proxy.width_mult * beta)]

    def points(self) -> list[dict]:
        return [{"alpha": c.alpha, "beta": c.beta}
                for c in grid_candidates(self.cfg.budget, self.cfg.step, law=self.cfg.metric.law)]

    def _networks(self) -> dict[tuple, list[dict]]:
        """The grid's points grouped by what they build, in grid order (computed once: a pure function of the
        config, not state)."""
        if self._groups is None:
            groups: dict[tuple, list[dict]] = {}
            for p in self.points():
                member = Member(coefficients_from_params(p, self.cfg.budget, law=self.cfg.metric.law))
                groups.setdefault(self.exp.structure_key(member), []).append(p)
            self._groups = groups
        return self._groups

    def first_items(self, trials) -> list[dict]:
        """Every grid point; with an experiment, the first point of each network first, then the others. Queued
        in that order, two workers train two networks at a time, and the other points of a network come after it
        has trained and reuse its result at once, where in grid order a worker often waited for a twin training
        beside it (five or six waits of up to a training each in a default grid)."""
        if self.exp is None:
            return self.points()
        groups = list(self._networks().values())
        return [g[0] for g in groups] + [p for g in groups for p in g[1:]]

    def open_candidates(self, trials) -> list:
        statuses = queue.item_statuses(trials)
        return [Member(coefficients_from_params(p, self.cfg.budget, law=self.cfg.metric.law)) for p in self.points()
                if not (queue.item_key(p, 0) in statuses and statuses[queue.item_key(p, 0)].settled)]

    def subject(self, trial: optuna.Trial, *, item: dict | None) -> object:
        if item is None:
            raise Stray("not from the grid queue (another worker emptied it)")
        budget, law = self.cfg.budget, self.cfg.metric.law
        (lo_a, hi_a), (lo_b, hi_b) = (sorted((1.0, end)) for end in grid_ends(budget, law))
        c = coefficients_from_params({"alpha": trial.suggest_float("alpha", lo_a, hi_a),
                                      "beta": trial.suggest_float("beta", lo_b, hi_b)}, budget, law=law)
        return Member(c, _phi(trial, item))


@register
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
            if queue.trial_outcome(t) != "stray" and t.params and int(t.user_attrs.get("seed", 0)) == 0 \
                    and PHI not in queue.params_of(t):  # a refinement item is a drawn point built again
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

    def subject(self, trial: optuna.Trial, *, item: dict | None) -> object:
        # A draw beyond --trials (a peer took the queued item this worker asked for, or drew at the same
        # moment) steps aside; ordered by trial number, so of two such draws the lower one stays.
        if item is None and \
                self._drawn(trial.study.get_trials(deepcopy=False), before=trial.number) >= self.cfg.trials:
            raise Stray(f"--trials {self.cfg.trials} already drawn")
        c = coefficients_from_simplex(trial.suggest_float("s1", 0.0, 1.0), trial.suggest_float("s2", 0.0, 1.0),
                                      self.cfg.budget, self.cfg.metric.law)
        return Member(c, _phi(trial, item))

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return SAMPLER_FACTORIES[self.cfg.sampler](seed, self.cfg.trials)

    def pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        self.cfg.check_pruner(epochs)
        return PRUNER_FACTORIES[self.cfg.pruner](epochs)


class PerTrialSampler(optuna.samplers.BaseSampler):
    """The strategy's sampler, made anew for each trial with a seed from --seed and the trial's number.

    One fixed seed would make every worker, and every resumed run, replay the same draws; trial numbers are
    unique across workers and machines, so seeding from them keeps a fresh single run reproducible while
    parallel and resumed ones draw new points. (A sampler registered in samplers.py must therefore keep its
    state in the study, as TPE, CMA-ES and random do, not in the instance.)
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.current = make_sampler(cfg, 0)

    def before_trial(self, study, trial) -> None:
        self.current = make_sampler(self.cfg, trial.number * 64)
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.current.reseed_rng()


def make_sampler(cfg, nonce: int) -> optuna.samplers.BaseSampler:
    """The strategy's sampler seeded from --seed and `nonce` (a trial's number, times 64)."""
    return strategy_for(cfg).sampler((cfg.seed * 1_000_003 + nonce) % (2**31 - 1))


def strategy_for(cfg, exp=None) -> Strategy:
    return strategy_class(cfg.mode)(cfg, exp)
