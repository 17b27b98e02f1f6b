"""`compare` on the engine: four arms x the run's seeds, as work items of a study in the run's storage.

The items are `{"arm": i}` (ARM_NAMES order) with seed indices 0..K-1, queued and claimed exactly like
grid points, so `compare` resumes, survives kills and shares work between processes the same way.
Training seeds are the run's (`--seed` * 1000 + seed index), so at φ = 1 the compound arm is the run's
winner trained with the very same seeds: those results are taken from the run, not trained again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna

from .arms import Arm, baseline_arm, build_arms
from ..fileio import atomic_write_json, atomic_write_text
from ..scaling import Coefficients
from ..engine import queue
from ..engine.objective import Experiment, record_network
from ..engine.results import SeedSummary
from ..engine.outputs import provenance
from ..engine.strategies import Strategy, Stray, register


@dataclass
class CompareSetup:
    """What `compare` is asked: the compound coefficients, φ, seeds, and what the run already measured."""

    compound: Coefficients
    phi: float
    seeds: tuple[int, ...]
    source: str  # where the compound coefficients came from, said in outputs
    run_seed_accuracies: dict[int, float] = field(default_factory=dict)  # the run winner's, by seed index
    run_test_accuracies: dict[int, float] = field(default_factory=dict)
    run_network: tuple | None = None  # (depth_mult, width_mult, resolution) of the run's winner
    run_trial: int | None = None
    run_fingerprint: str | None = None


@dataclass
class CompareExperiment(Experiment):
    setup: CompareSetup | None = None
    arms: list[Arm] = field(default_factory=list)

    @classmethod
    def prepare_compare(cls, config, setup: CompareSetup) -> "CompareExperiment":
        from ..errors import UserError

        base = Experiment.prepare(config)
        if setup.run_fingerprint and base.fingerprint != setup.run_fingerprint:
            raise UserError(f"the data differ from the run's (fingerprint {base.fingerprint}, the run had "
                            f"{setup.run_fingerprint}): compare needs the data the run was searched on")
        exp = cls(**{f: getattr(base, f) for f in ("config", "proxy", "data", "device", "reference",
                                                    "fingerprint", "notes")}, setup=setup)
        exp.arms = build_arms(exp.reference, exp.proxy, setup.compound, phi=setup.phi, budget=config.budget,
                              tolerance=config.tolerance)
        # Last, as item 4: the unscaled proxy with the same seeds, so every gain has a reference.
        exp.arms.append(baseline_arm(exp.reference))
        for arm in exp.arms:
            m = arm.built
            exp.notes.append(f"arm {arm.name}: depth {m.depth_mult:.4g}, width {m.width_mult:.4g}, "
                             f"{m.resolution}px, measured {config.metric.name} ratio {m.cost_ratio:.3f} (target "
                             f"{arm.target_ratio:.3g})" + ("" if arm.within_tolerance else ", OUTSIDE the tolerance")
                             + (f"; {arm.note}" if arm.note else ""))
        return exp

    def identity(self) -> dict:
        ident = super().identity()
        c = self.setup.compound
        # The arms as built: a study must not mix results of differently defined arms.
        arms = [f"{a.name}: {a.built.architecture or (a.built.depth_mult, a.built.width_mult, a.built.resolution)}"
                for a in self.arms]
        return {**ident, "compound": [c.alpha, c.beta, c.gamma], "phi": self.setup.phi,
                "seeds": list(self.setup.seeds), "arms": arms}

    def reuses_run_result(self, arm: Arm, seed_index: int) -> bool:
        """The compound arm at φ = 1 is the run's winner: same network, same seed, same numbers."""
        if arm is not self.arms[0] or seed_index not in self.setup.run_seed_accuracies \
                or self.setup.run_network is None:
            return False
        m = arm.built
        depth, width, resolution = self.setup.run_network
        return (abs(m.depth_mult - depth) < 1e-9 and abs(m.width_mult - width) < 1e-9
                and m.resolution == resolution)

    def evaluate(self, trial: optuna.Trial, arm: Arm, seed_index: int) -> float:
        """Train one arm with one seed (the strategy's candidate is the arm), or take the run's result."""
        trial.set_user_attr("arm", arm.name)
        record_network(trial, arm.built)
        if self.reuses_run_result(arm, seed_index):
            trial.set_user_attr("reason", f"the run's winner (trial {self.setup.run_trial}), same seed: reused")
            trial.set_user_attr("test_accuracy", self.setup.run_test_accuracies.get(seed_index))
            trial.set_user_attr("seconds", 0.0)
            trial.set_user_attr("outcome", "complete")
            return float(self.setup.run_seed_accuracies[seed_index])
        return self.train_and_record(trial, arm.built, seed_index)


@dataclass
class ArmRecord(SeedSummary):
    arm: Arm
    seed_accuracies: dict[int, float]
    test_accuracies: dict[int, float]
    state: str  # complete, failed/diverged/oom, waiting
    reason: str
    seconds: float


def arm_records(trials, exp: CompareExperiment) -> list[ArmRecord]:
    statuses = queue.item_statuses(trials)
    out = []
    for i, arm in enumerate(exp.arms):
        accs, tests, problems, reason, seconds, pending = {}, {}, [], "", 0.0, False
        for s in exp.setup.seeds:
            status = statuses.get(queue.item_key({"arm": i}, s))
            if status is None or not status.settled:
                pending = True
                continue
            t = status.trial
            if t is not None:
                seconds += float(t.user_attrs.get("seconds") or 0.0)
                reason = reason or t.user_attrs.get("reason", "")
            if status.outcome == "complete":
                accs[s] = float(t.value)
                if t.user_attrs.get("test_accuracy") is not None:
                    tests[s] = float(t.user_attrs["test_accuracy"])
            else:
                problems.append(status.outcome)
                reason = f"seed {s}: " + (status.reason or status.outcome)
        state = problems[0] if problems else ("waiting" if pending else "complete")
        out.append(ArmRecord(arm, accs, tests, state, reason, seconds))
    return out


class CompareOutputs:
    """compare.json (the contract's `{"arms": [...]}`), compare.csv and the figure, from the storage alone."""

    FILES = "compare.json, compare.csv, and the figure once complete"

    def __init__(self, cfg, exp: CompareExperiment):
        self.cfg, self.exp = cfg, exp
        self.extra = {"study": cfg.study_name, "provenance": provenance(exp)}

    def write(self, study: optuna.Study, complete: bool):
        from .verdicts import compare_payload, payload_csv, write_figure

        records = arm_records(study.get_trials(deepcopy=False), self.exp)
        payload = compare_payload(records, self.exp.setup, budget=self.cfg.budget, tolerance=self.cfg.tolerance,
                                  significance=self.cfg.significance, complete=complete, extra=self.extra,
                                  metric=self.cfg.metric)
        stem = self.cfg.out_dir / output_stem(self.exp.setup.phi, cost=self.cfg.cost)
        # Not with_suffix: for φ = 0.5 it would cut "compare-phi0.5" down to "compare-phi0.json".
        atomic_write_json(stem.with_name(stem.name + ".json"), payload)
        atomic_write_text(stem.with_name(stem.name + ".csv"), payload_csv(payload))
        if complete:
            write_figure(payload, stem)
        return records, payload


def output_suffix(cost: str) -> str:
    """A comparison in another metric than FLOPs is a study and a set of files of its own."""
    return "" if cost == "flops" else f"-{cost}"


def output_stem(phi: float, *, cost: str = "flops") -> str:
    return f"compare{output_suffix(cost)}" + ("" if phi == 1 else f"-phi{phi:g}")


def paper_compound(budget: float) -> Coefficients:
    """The paper's (1.2, 1.1, 1.15) moved onto `budget`: the same direction, α·β²·γ² = budget."""
    import math

    from ..scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA

    s = math.log(budget) / math.log(PAPER_ALPHA * PAPER_BETA**2 * PAPER_GAMMA**2)
    return Coefficients(PAPER_ALPHA**s, PAPER_BETA**s, PAPER_GAMMA**s)


def read_run(run_dir, *, storage: str | None):
    """(the run directory, its candidate records read from its study) of a finished run."""
    from ..errors import UserError
    from ..rundir import read_run_dir
    from ..engine.results import candidate_records
    from ..engine.rundir import open_run_study

    run = read_run_dir(run_dir)
    if not run.complete:
        raise UserError(f"the run in {run_dir} is not complete (its winner may still change): finish it by "
                        "running its command again, then compare")
    study = open_run_study(run, storage)
    return run, candidate_records(study.get_trials(deepcopy=False), run.budget, law=run.metric.law)


def setup_from_run(run, records: list, *, phi: float, seeds: int | None) -> CompareSetup:
    """Compound = the run's winner; seeds = the winner's seed indices (at least MIN_TEST_SEEDS), or `seeds`."""
    from ..racing import MIN_TEST_SEEDS

    winner = next(r for r in records if r.trial == run.trial)
    run_seeds = sorted(winner.seed_accuracies)
    chosen = tuple(range(seeds)) if seeds is not None else tuple(sorted(set(run_seeds) | set(range(MIN_TEST_SEEDS))))
    return CompareSetup(
        compound=run.coefficients, phi=phi, seeds=chosen, source=f"the winner of study {run.study} (trial {winner.trial})",
        run_seed_accuracies=dict(winner.seed_accuracies), run_test_accuracies=dict(winner.test_accuracies),
        run_network=(winner.depth_mult, winner.width_mult, winner.resolution), run_trial=winner.trial,
        run_fingerprint=(run.best.get("provenance", {}).get("data") or {}).get("fingerprint"))


@register
class CompareStrategy(Strategy):
    """Every arm of the comparison with every seed of its setup: a fixed set of items, no racing."""

    mode = "compare"
    outputs = CompareOutputs

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

    def subject(self, trial: optuna.Trial, *, item: dict | None) -> object:
        if item is None:
            raise Stray("not from the compare queue")
        return self.exp.arms[trial.suggest_int("arm", 0, len(self.exp.arms) - 1)]
