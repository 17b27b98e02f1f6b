"""From the study's trials to typed candidate records, trials.csv and best.json.

One candidate (a point of the grid, or a sampled point) may have several
trials: one per seed index, plus any repeated attempts. Its record aggregates
the seeds that completed; everything here is computed from the storage alone.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import asdict, dataclass, field
from typing import Sequence

from optuna.trial import FrozenTrial, TrialState

from ..scaling import FLOPS_LAW, Coefficients, ScalingLaw, coefficients_from_simplex, nominal_gamma
from .queue import ItemStatus, item_statuses, params_of

#: trials.csv columns, in order (the interface contract, plus effective coefficients and test accuracy).
TRIAL_COLUMNS = ("trial", "state", "network", "phi", "alpha", "beta", "gamma", "alpha_eff", "beta_eff", "gamma_eff", "depth_mult",
                 "width_mult", "resolution", "flops", "flops_ratio", "params", "activations", "latency_ms",
                 "cost_ratio", "budget_fit", "accuracy", "accuracy_std", "seeds", "seed_accuracies",
                 "test_accuracy", "seconds", "train_seconds", "warmup_seconds", "wall_seconds", "reason", "architecture")

_MEASURED = ("alpha_eff", "beta_eff", "gamma_eff", "depth_mult", "width_mult", "resolution", "flops",
             "flops_ratio", "params", "activations", "latency_ms", "latency_spread", "cost_ratio")


class SeedSummary:
    """Mean, spread and count over a record's `seed_accuracies` (and `test_accuracies`), full precision."""

    seed_accuracies: dict[int, float]
    test_accuracies: dict[int, float]

    @property
    def accuracy(self) -> float | None:
        return statistics.fmean(self.seed_accuracies.values()) if self.seed_accuracies else None

    @property
    def accuracy_std(self) -> float | None:
        return statistics.stdev(self.seed_accuracies.values()) if len(self.seed_accuracies) > 1 else None

    @property
    def seeds(self) -> int:
        return len(self.seed_accuracies)

    @property
    def test_accuracy(self) -> float | None:
        return statistics.fmean(self.test_accuracies.values()) if self.test_accuracies else None


@dataclass
class CandidateRecord(SeedSummary):
    """One candidate as the study knows it: nominal and effective coefficients, cost, seeds, outcome."""

    trial: int  # the first trial of the candidate (its seed-0 attempt)
    state: str  # complete, rejected, pruned, diverged, oom, failed, interrupted, running, waiting
    alpha: float
    beta: float
    gamma: float
    params_key: tuple  # the candidate's identity in the queue (its Optuna parameters)
    alpha_eff: float | None = None
    beta_eff: float | None = None
    gamma_eff: float | None = None
    depth_mult: float | None = None
    width_mult: float | None = None
    resolution: int | None = None
    flops: int | None = None
    flops_ratio: float | None = None
    params: int | None = None
    activations: int | None = None  # output elements of conv and linear layers, batch 1
    latency_ms: float | None = None  # median forward time; measured where the budget is latency
    latency_spread: float | None = None
    cost_ratio: float | None = None  # measured cost / the proxy's, in the budget's metric
    budget_fit: str = ""  # "at budget", "under budget (1.71x)" or "over budget" (rejected); "" before measuring
    phi: int = 1  # the compound coefficient the point was built at (2: the refinement round's members)
    architecture: str | None = None  # the network as built (the trial's `network` attribute); equal: one network
    network: str | None = None  # the id (N1, N2, ...) every point that builds this architecture at this φ shares
    seed_accuracies: dict[int, float] = field(default_factory=dict)  # full precision, by seed index
    test_accuracies: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0  # in the training call (build, warm-up, steps, evaluation), summed over seeds
    train_seconds: float = 0.0  # in training steps only
    warmup_seconds: float = 0.0  # before the first step (device transfer, CUDA-graph warm-up and capture)
    wall_seconds: float = 0.0  # the trials' wall time in the study, start to end: overhead = this - train_seconds
    reason: str = ""

    @property
    def coefficients(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}

    @property
    def under_budget(self) -> bool:
        return self.budget_fit.startswith("under")

    def row(self) -> dict:
        """The trials.csv row: seed accuracies as `seed:accuracy` pairs at full precision."""
        d = {c: getattr(self, c) for c in TRIAL_COLUMNS if c != "seed_accuracies"}
        d["seed_accuracies"] = " ".join(f"{s}:{a!r}" for s, a in sorted(self.seed_accuracies.items()))
        return d

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("params_key")
        d["seed_accuracies"] = {str(s): a for s, a in sorted(self.seed_accuracies.items())}
        d["test_accuracies"] = {str(s): a for s, a in sorted(self.test_accuracies.items())}
        d.update(accuracy=self.accuracy, accuracy_std=self.accuracy_std, seeds=self.seeds,
                 test_accuracy=self.test_accuracy)
        return d


def coefficients_from_params(params: dict, budget: float, *, law: ScalingLaw = FLOPS_LAW) -> Coefficients:
    """Nominal (α, β, γ) of a candidate from its Optuna parameters (grid: α, β; sampler: s1, s2), γ from the
    budget metric's scaling law."""
    if "s1" in params:
        return coefficients_from_simplex(params["s1"], params["s2"], budget, law)
    return Coefficients(params["alpha"], params["beta"], nominal_gamma(params["alpha"], params["beta"], budget, law))


def candidate_records(trials: Sequence[FrozenTrial], budget: float, *,
                      law: ScalingLaw = FLOPS_LAW) -> list[CandidateRecord]:
    """Every candidate in the study, in order of its first trial."""
    statuses = item_statuses(trials)
    by_candidate: dict[tuple, list[ItemStatus]] = {}
    for key, status in statuses.items():
        by_candidate.setdefault(key[0], []).append(status)
    first_trial: dict[tuple, FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        params = params_of(t)
        if params and not t.user_attrs.get("stray"):
            first_trial.setdefault(statuses_key(params), t)
    records = []
    for cand, items in by_candidate.items():
        first = first_trial[cand]
        params = params_of(first)
        c = coefficients_from_params(params, budget, law=law)
        rec = CandidateRecord(first.number, "waiting", c.alpha, c.beta, c.gamma, cand, phi=int(params.get("phi", 1)))
        _fill(rec, items, trials)
        records.append(rec)
    records.sort(key=lambda r: r.trial)
    _name_networks(records)
    _share_network_results(records)
    return records


def _name_networks(records: Sequence[CandidateRecord]) -> None:
    """N1, N2, ...: one id per (φ, architecture), numbered in order of the first point that built it."""
    ids: dict[tuple, str] = {}
    for r in records:  # in trial order
        if r.architecture is not None:
            r.network = ids.setdefault((r.phi, r.architecture), f"N{len(ids) + 1}")


def _share_network_results(records: Sequence[CandidateRecord]) -> None:
    """Grid points that rounding built into one network show that network's seeds, all of them.

    Only the first grid point of a network races (engine/networks.py); without this its twins would keep
    the one seed they reused and trials.csv would list one network under two different accuracies.
    """
    first: dict[str, CandidateRecord] = {}
    for r in records:  # in trial order
        if r.state != "complete" or r.network is None:
            continue
        rep = first.setdefault(r.network, r)
        if rep is not r:
            r.seed_accuracies = dict(rep.seed_accuracies)
            r.test_accuracies = dict(rep.test_accuracies)
            r.reason = f"same network as trial {rep.trial}: result reused"


def statuses_key(params: dict) -> tuple:
    from .queue import item_key

    return item_key(params, 0)[0]


def _fill(rec: CandidateRecord, items: list[ItemStatus], trials: Sequence[FrozenTrial]) -> None:
    mine = [t for t in trials if not t.user_attrs.get("stray") and statuses_key(params_of(t)) == rec.params_key]
    measured = next((t for t in mine if "flops" in t.user_attrs), None)
    if measured is not None:
        for name in _MEASURED:
            setattr(rec, name, measured.user_attrs.get(name))
        rec.architecture = measured.user_attrs.get("network") or _dimensions(rec)
        if rec.cost_ratio is None:  # a study from before --cost: its budget was FLOPs
            rec.cost_ratio = rec.flops_ratio
        attrs = measured.user_attrs
        reason = attrs.get("reason", "")
        if attrs.get("outcome") == "rejected" and "--max-params" not in reason:
            # Over the band at every size; a study from before under-budget training also rejected networks
            # below the band ("no resolution brings ... within"), which its ratio tells apart.
            rec.budget_fit = "over budget" if "at every resolution" in reason else "outside the tolerance"
        elif attrs.get("under_budget"):
            rec.budget_fit = f"under budget ({rec.cost_ratio:.2f}x)"
        else:
            rec.budget_fit = "at budget"
    problems, pending, open_ = [], False, False
    for status in sorted(items, key=lambda s: s.key[1]):
        seed, t = status.key[1], status.trial
        if t is not None:
            for name in ("seconds", "train_seconds", "warmup_seconds"):
                setattr(rec, name, getattr(rec, name) + float(t.user_attrs.get(name) or 0.0))
            if t.datetime_start is not None and t.datetime_complete is not None:
                rec.wall_seconds += (t.datetime_complete - t.datetime_start).total_seconds()
        if status.outcome == "complete":
            rec.seed_accuracies[seed] = float(t.value)
            if seed == 0 and "same_network_as" in t.user_attrs:
                rec.reason = t.user_attrs.get("reason", "")
            if t.user_attrs.get("test_accuracy") is not None:
                rec.test_accuracies[seed] = float(t.user_attrs["test_accuracy"])
        elif status.settled:
            problems.append(status.outcome)
            prefix = f"seed {seed}: " if seed else ""
            rec.reason = rec.reason or prefix + (status.reason or status.outcome)
        elif status.outcome == "pending":
            pending = True
        else:
            open_ = True
    if problems:
        rec.state = problems[0]
    elif pending:
        rec.state = "running" if any(t.state == TrialState.RUNNING for t in mine) else "waiting"
    elif open_:
        rec.state = "interrupted"
    else:
        rec.state = "complete"


def _dimensions(rec: CandidateRecord) -> str:
    """A study from before networks were named recorded the dimensions alone: equal ones are one network (a point
    that recorded none is a network of its own)."""
    if None in (rec.depth_mult, rec.width_mult, rec.resolution):
        return f"point {rec.params_key}"
    return f"depth {rec.depth_mult:g} width {rec.width_mult:g} at {rec.resolution}px"


def rows_to_csv(records: Sequence[CandidateRecord]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TRIAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: ("" if v is None else v) for k, v in r.row().items()})
    return buf.getvalue()
