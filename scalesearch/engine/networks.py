"""Networks, not grid labels: the points of a study that build one network are one candidate.

Depth is rounded up per stage and channels to multiples of 8, so many (α, β) points build the very same
network (at the CPU proxy's depth 0.5 every α from 1.05 to 1.30 builds one 13-block network). Such points
are trained once and share their results (objective.py); here they are grouped, given one id (`N3`), ranked
once, and described by the interval of nominal coefficients that build them. A network's interval is what
the evidence can say about α and β: any value in it would have trained the same thing.

The answer (`decide`) is decided at the highest φ that trained any network (the refinement round trains the
φ = 2 members of the contenders, where ceil rounding separates more values: strategies.py): the network with
the highest mean accuracy, or, where paired seeds cannot separate others from it, the cheapest of those
(`CHOICE_RULE`); its interval; one point of it by a stated rule (`POINT_RULE`); and the networks the seeds
could not tell from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..racing import MIN_TEST_SEEDS, Verdict, not_clearly_behind, verdict
from ..scaling import FLOPS_LAW, Coefficients, ScalingLaw, coefficients_from_intervals
from .results import CandidateRecord, SeedSummary

#: How the reported α, β, γ follow from the winner's intervals (said in best.json and the reports).
POINT_RULE = ("α and β: the geometric centre of the winning network's interval (the nominal values of the grid "
              "points that build it); γ: solved from the budget's law, so the three obey it exactly")


#: Which network answers when the seeds cannot separate several (said in best.json and the reports).
CHOICE_RULE = ("the network with the highest mean accuracy; where a paired test on 3 or more shared seeds cannot "
               "separate others from it, the cheapest of them in the budget's measured metric (the one-standard-error "
               "rule of model selection: the simplest model the data cannot tell from the best), so that noise between "
               "equally good networks does not pick the answer")


@dataclass
class NetworkRecord(SeedSummary):
    """One distinct network of a study: the points (items) that build it, and its results."""

    network: str  # the id, N1, N2, ... in order of the first point that built it
    phi: int  # the compound coefficient its points were built at (2: the refinement round)
    architecture: str | None
    points: list[CandidateRecord]  # every point that builds it, in trial order
    seed_accuracies: dict[int, float] = field(default_factory=dict)
    test_accuracies: dict[int, float] = field(default_factory=dict)

    @property
    def rep(self) -> CandidateRecord:
        """The point whose trials train it (the first that completed; the others reuse its results)."""
        return next((p for p in self.points if p.state == "complete"), self.points[0])

    @property
    def state(self) -> str:
        return self.rep.state

    @property
    def alpha_range(self) -> tuple[float, float]:
        return _span(p.alpha for p in self.points)

    @property
    def beta_range(self) -> tuple[float, float]:
        return _span(p.beta for p in self.points)

    @property
    def gamma_range(self) -> tuple[float, float]:
        return _span(p.gamma for p in self.points)

    @property
    def trials(self) -> list[int]:
        return [p.trial for p in self.points]

    def label(self) -> str:
        """`N3 (α 1.05-1.3, β 1)`: the id and the interval, as the console and notes name a network."""
        return f"{self.network} (α {_range_text(self.alpha_range)}, β {_range_text(self.beta_range)}" + \
            (f", φ = {self.phi})" if self.phi != 1 else ")")

    def to_dict(self) -> dict:
        """The network's own fields, then its representative point's measured ones (trials.csv's)."""
        rep = self.rep.to_dict()
        for key in ("trial", "alpha", "beta", "gamma", "network", "phi", "seed_accuracies", "test_accuracies",
                    "accuracy", "accuracy_std", "seeds", "test_accuracy"):
            rep.pop(key, None)
        return {"network": self.network, "phi": self.phi, "alpha_range": list(self.alpha_range),
                "beta_range": list(self.beta_range), "gamma_range": list(self.gamma_range),
                "trials": self.trials, "points": len(self.points), "trial": self.rep.trial,
                "accuracy": self.accuracy, "accuracy_std": self.accuracy_std, "seeds": self.seeds,
                "seed_accuracies": {str(s): a for s, a in sorted(self.seed_accuracies.items())},
                "test_accuracy": self.test_accuracy, **rep}


def _span(values) -> tuple[float, float]:
    values = list(values)
    return (min(values), max(values))


def _range_text(span: tuple[float, float]) -> str:
    lo, hi = span
    return f"{lo:.3g}" if abs(hi - lo) < 1e-9 else f"{lo:.3g}-{hi:.3g}"


def group_networks(records: Sequence[CandidateRecord]) -> list[NetworkRecord]:
    """Every network the records built (ids assigned by `candidate_records`), in order of its first point."""
    groups: dict[str, list[CandidateRecord]] = {}
    for r in sorted(records, key=lambda r: r.trial):
        if r.network is not None:
            groups.setdefault(r.network, []).append(r)
    out = []
    for net, points in groups.items():
        n = NetworkRecord(net, points[0].phi, points[0].architecture, points)
        n.seed_accuracies, n.test_accuracies = dict(n.rep.seed_accuracies), dict(n.rep.test_accuracies)
        out.append(n)
    return out


def trained(networks: Sequence[NetworkRecord], phi: int) -> list[NetworkRecord]:
    """Networks of `phi` with a usable result (a network with a failed seed is out: an unstable one is no winner)."""
    return [n for n in networks if n.phi == phi and n.state == "complete" and n.seed_accuracies]


def race_results(networks: Sequence[NetworkRecord], phi: int) -> dict[str, dict[int, float]]:
    """Seed accuracies by network id at `phi`: what racing and the verdict rank."""
    return {n.network: dict(n.seed_accuracies) for n in trained(networks, phi)}


def decided_phi(networks: Sequence[NetworkRecord]) -> int | None:
    """The φ the answer is decided at: the highest one at which any network trained."""
    phis = [n.phi for n in networks if n.state == "complete" and n.seed_accuracies]
    return max(phis) if phis else None


@dataclass(frozen=True)
class Answer:
    """The winning network at the φ it was decided at, its verdict, and what the evidence could not resolve."""

    winner: NetworkRecord  # the answer (CHOICE_RULE)
    verdict: Verdict  # the highest mean against the runner-up
    runner_up: NetworkRecord | None
    phi: int
    unseparated: tuple[NetworkRecord, ...]  # networks the seeds could not tell from the highest mean, best first
    coefficients: Coefficients  # the point of the interval the answer reports (POINT_RULE)
    top: NetworkRecord | None = None  # the highest mean, where the answer is a cheaper network tied with it
    tested: tuple[NetworkRecord, ...] = ()  # the highest mean and those a paired test could not separate from it

    @property
    def separated(self) -> bool:
        return self.verdict.separated

    @property
    def choice(self) -> str:
        """How the answer was picked, in a sentence."""
        if self.top is None:
            return "the highest mean accuracy"
        return (f"the cheapest of {', '.join(n.network for n in self.tested)}: the highest mean "
                f"({self.top.network}, {self.top.accuracy:.4f}) and what a paired test on {MIN_TEST_SEEDS}+ seeds "
                "could not separate from it, by the one-standard-error rule")


def decide(networks: Sequence[NetworkRecord], *, budget: float, law: ScalingLaw = FLOPS_LAW,
           significance: float = 0.05, phi: int | None = None) -> Answer | None:
    """The answer at `phi` (default: the highest φ trained)."""
    phi = decided_phi(networks) if phi is None else phi
    if phi is None:
        return None
    results = race_results(networks, phi)
    v = verdict(results, significance=significance)
    if v is None:
        return None
    by_id = {n.network: n for n in networks}
    top = by_id[v.winner]
    tied = [] if v.separated else [by_id[k] for k in not_clearly_behind(results, significance=significance)[1:]]
    # Only a network a paired test has seen (as many seeds as a verdict needs) may stand in for the top one.
    tested = [n for n in tied if len(set(n.seed_accuracies) & set(top.seed_accuracies)) >= MIN_TEST_SEEDS]
    winner = min([top, *tested], key=lambda n: (_cost(n), -(n.accuracy or 0.0), n.network))
    unseparated = tuple(n for n in [top, *tied] if n is not winner)
    point = coefficients_from_intervals(winner.alpha_range, winner.beta_range, budget, law)
    return Answer(winner, v, by_id.get(v.runner_up) if v.runner_up is not None else None, phi, unseparated, point,
                  top=None if winner is top else top, tested=(top, *tested))


def _cost(n: NetworkRecord) -> float:
    """A network's measured cost in the budget's metric, relative to the proxy (unknown: most expensive)."""
    ratio = n.rep.cost_ratio if n.rep.cost_ratio is not None else n.rep.flops_ratio
    return float("inf") if ratio is None else ratio


def ranked(networks: Sequence[NetworkRecord], phi: int) -> list[NetworkRecord]:
    """Trained networks of `phi`, best first, in the order racing ranks them (rank 1 is the verdict's winner)."""
    from ..racing import ranking

    by_id = {n.network: n for n in networks}
    return [by_id[k] for k in ranking(race_results(networks, phi))]


#: At most this many φ = 1 networks go to the refinement round (the winner and the best of those the seeds could
#: not tell from it), and the resolution-only one where it is among them: a φ = 2 member costs about two φ = 1
#: trainings.
MAX_REFINED = 3


@dataclass(frozen=True)
class RefinementPlan:
    """Which φ = 1 networks the refinement round trains again as their φ = 2 members, and why."""

    reasons: tuple[str, ...]  # empty: the φ = 1 answer needs no refinement
    networks: tuple[NetworkRecord, ...]  # φ = 1 networks whose points are built again at φ = 2
    left_out: tuple[NetworkRecord, ...] = ()  # not separated either, beyond MAX_REFINED

    @property
    def needed(self) -> bool:
        return bool(self.reasons)

    def points(self) -> list[CandidateRecord]:
        return [p for n in self.networks for p in n.points]

    def to_dict(self) -> dict:
        return {"reasons": list(self.reasons), "networks": [n.label() for n in self.networks],
                "left_out": [n.label() for n in self.left_out]}


def plan_refinement(networks: Sequence[NetworkRecord], *, budget: float, law: ScalingLaw = FLOPS_LAW,
                    significance: float = 0.05, step: float = 0.05) -> RefinementPlan:
    """What φ = 1 left open, from its results alone (so every worker plans alike):

    - the winner is not separated from the runner-up: it and the networks the seeds could not tell from it;
    - the winner's α or β interval spans more than one grid step: what α^φ does with it is unknown;
    - the winner scales resolution alone (α = β = 1): expanded, that rule grows B7 to thousands of pixels, so it
      is checked where larger images may give it nothing new.
    At φ = 2 ceil rounding separates points that built one network at φ = 1, and every difference in α or β
    counts twice in the cost."""
    answer = decide(networks, budget=budget, law=law, significance=significance, phi=1)
    if answer is None:
        return RefinementPlan((), ())
    w = answer.winner
    reasons, chosen = [], [w]
    if not answer.separated and answer.unseparated:
        reasons.append(f"{w.network} is not separated from {', '.join(n.network for n in answer.unseparated)}")
        chosen += list(answer.unseparated)
    wide = [name for name, (lo, hi) in (("α", w.alpha_range), ("β", w.beta_range)) if hi - lo > step + 1e-9]
    if wide:
        reasons.append(f"{w.network}'s {' and '.join(wide)} interval spans more than one grid step")
    if _resolution_only(w):
        reasons.append(f"{w.network} scales resolution alone")
        if answer.runner_up is not None and answer.runner_up not in chosen:
            chosen.append(answer.runner_up)
    if not reasons:
        return RefinementPlan((), ())
    going, left = chosen[:MAX_REFINED], chosen[MAX_REFINED:]
    # The resolution-only rule, where the seeds could not rule it out, always goes on: it is the one expand would
    # stretch furthest, and whether more pixels still pay at φ = 2 is the question it leaves.
    going += [n for n in left if _resolution_only(n)]
    return RefinementPlan(tuple(reasons), tuple(going), tuple(n for n in left if n not in going))


def _resolution_only(n: NetworkRecord) -> bool:
    return n.alpha_range == (1.0, 1.0) and n.beta_range == (1.0, 1.0)


def _network_summary(n: NetworkRecord) -> dict:
    """A network as best.json names it beside the winner: id, interval, result."""
    return {"network": n.network, "phi": n.phi, "alpha_range": list(n.alpha_range), "beta_range": list(n.beta_range),
            "trials": n.trials, "resolution": n.rep.resolution, "accuracy": n.accuracy, "seeds": n.seeds,
            "seed_accuracies": {str(s): a for s, a in sorted(n.seed_accuracies.items())}}


def answer_text(answer: Answer) -> str:
    """One line: the rule the answer reports, and what it could not be told apart from."""
    w = answer.winner
    head = f"winner {w.label()}, decided at φ = {answer.phi}"
    if answer.top is not None:
        head += f" ({answer.choice})"
    if answer.separated:
        return f"{head}: separated from the runner-up"
    if not answer.unseparated:
        return f"{head}: no runner-up to test it against"
    return f"{head}: NOT separated from {', '.join(n.label() for n in answer.unseparated)}"


def refinement_summary(networks: Sequence[NetworkRecord], *, refine: bool, budget: float, law: ScalingLaw,
                       significance: float, step: float) -> dict:
    """best.json's `refinement`: whether a φ = 2 round ran, why (or why not), and the φ = 1 answer it refined."""
    plan = plan_refinement(networks, budget=budget, law=law, significance=significance, step=step)
    ran = any(n.phi == 2 for n in networks)
    first = decide(networks, budget=budget, law=law, significance=significance, phi=1)
    out = {"ran": ran, "enabled": refine, **plan.to_dict()}
    if first is not None:
        out["phi1_answer"] = answer_text(first)
        out["phi1_network"] = first.winner.network
        out["phi1_verdict"] = first.verdict.to_dict()
    if not plan.needed:
        out["why_not"] = "the φ = 1 winner is separated, its intervals are one grid step or less, and it does " \
                         "not scale resolution alone"
    elif not ran:
        out["why_not"] = ("off (--no-refine, the default on the CPU: a φ = 2 member trains about twice as long); "
                          "run with --refine to decide this at φ = 2") if not refine else "not started yet"
    return out


def best_payload(records: Sequence[CandidateRecord], *, budget: float, tolerance: float, significance: float,
                 complete: bool, extra: dict, metric=None, refine: bool = False, step: float = 0.05) -> dict | None:
    """best.json: the winning network with its interval and point, its seeds, the verdict, and run facts.

    `alpha, beta, gamma` are the point of the interval (POINT_RULE); `alpha_range`, `beta_range` and
    `gamma_range` the nominal values of the points that build the winner at `decided_at_phi`. The network's own
    figures (`depth_mult` ... `accuracy`) are the network trained at that φ."""
    from ..metrics import FLOPS

    metric = metric or FLOPS
    networks = group_networks(records)
    answer = decide(networks, budget=budget, law=metric.law, significance=significance)
    if answer is None:
        return None
    w, v = answer.winner, answer.verdict
    best, runner = w.rep, answer.runner_up
    comparison = None
    if runner is not None:
        comparison = {"runner_up_trial": runner.rep.trial, "runner_up_network": runner.network,
                      "runner_up_accuracy": runner.accuracy,
                      "runner_up_seed_accuracies": {str(s): a for s, a in sorted(runner.seed_accuracies.items())},
                      "runner_up": runner.rep.coefficients, "runner_up_alpha_range": list(runner.alpha_range),
                      "runner_up_beta_range": list(runner.beta_range), "verdict": v.text}
    c = answer.coefficients
    trained_points = [r for r in records if r.state == "complete"]
    return {
        "alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, "budget": budget,
        "alpha_range": list(w.alpha_range), "beta_range": list(w.beta_range), "gamma_range": list(w.gamma_range),
        "decided_at_phi": answer.phi, "point_rule": POINT_RULE, "choice_rule": CHOICE_RULE, "choice": answer.choice,
        "highest_mean_network": (answer.top or w).network,
        "network": w.network, "network_trials": w.trials, "architecture": w.architecture,
        "separated": answer.separated, "answer": answer_text(answer),
        "unseparated": [_network_summary(n) for n in answer.unseparated],
        "flops_factor": c.alpha * c.beta**2 * c.gamma**2,
        "cost_factor": metric.law.factor(c.alpha, c.beta, c.gamma),  # the law's nominal factor
        "alpha_eff": best.alpha_eff, "beta_eff": best.beta_eff, "gamma_eff": best.gamma_eff,
        "depth_mult": best.depth_mult, "width_mult": best.width_mult, "resolution": best.resolution,
        "measured_flops_ratio": best.flops_ratio, "tolerance": tolerance,
        # The budget's metric, and the winner's four figures whatever that metric is.
        "cost": metric.to_dict(), "measured_cost_ratio": best.cost_ratio, "budget_fit": best.budget_fit,
        "flops": best.flops, "params": best.params, "activations": best.activations, "latency_ms": best.latency_ms,
        "under_budget_candidates": sum(1 for r in trained_points if r.under_budget),
        "accuracy": w.accuracy, "accuracy_std": w.accuracy_std, "test_accuracy": w.test_accuracy,
        "seeds": w.seeds, "seed_accuracies": {str(s): a for s, a in sorted(w.seed_accuracies.items())},
        "trial": best.trial, "complete": complete,
        "verdict": v.to_dict(), "comparison": comparison,
        "refinement": refinement_summary(networks, refine=refine, budget=budget, law=metric.law,
                                         significance=significance, step=step),
        "networks": len([n for n in networks if n.phi == 1]), "trained_networks": len(trained(networks, 1)),
        "completed_candidates": len([r for r in trained_points if r.phi == 1]),
        "candidates": len([r for r in records if r.phi == 1]),
        **extra,
    }
