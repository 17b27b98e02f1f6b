"""A run as a report sees it: how it was made (best.json) and what it found (the study's storage).

Every number comes from the Optuna storage through the same functions the run used to write trials.csv
and best.json (`candidate_records`, `race_results`, `best_payload`), so a report can never disagree with
the study; best.json contributes only what the storage does not hold: the config and the provenance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.results import CandidateRecord, best_payload, candidate_records, race_results
from ..engine.rundir import load_best_json, open_run_study, run_storage_url
from ..engine.storage import redact_url
from ..metrics import FLOPS, CostMetric, metric_from_dict
from ..racing import ranking

#: States a candidate is in while its study still has work to do.
UNSETTLED = ("running", "waiting", "interrupted")


@dataclass(frozen=True)
class RankedCandidate:
    """A trained candidate in the ranking; grid points that rounding built into one network share its rank."""

    rank: int
    record: CandidateRecord
    same_network_as: int | None = None  # the trial whose network (and results) this one shares


@dataclass
class RunReport:
    run_dir: Path
    study: str
    storage: str  # password hidden
    config: dict  # the run's options, as best.json recorded them
    provenance: dict
    budget: float
    tolerance: float
    significance: float  # level of the verdict's test (--alpha-level)
    complete: bool
    records: list[CandidateRecord]
    winner: dict | None  # best.json's payload, recomputed from the storage
    ranking: list[RankedCandidate]
    comparisons: list[dict] = field(default_factory=list)  # compare*.json written by `scalesearch compare`
    notes: list[str] = field(default_factory=list)
    metric: CostMetric = FLOPS  # what the run's budget held on
    axis: CostMetric | None = None  # the figure's cost axis, where `report --cost` asks for another metric

    @property
    def axis_metric(self) -> CostMetric:
        return self.axis or self.metric

    @property
    def under_budget(self) -> list[CandidateRecord]:
        """Trained candidates no resolution landed within the tolerance: trained at the closest size below it."""
        return [r for r in self.records if r.state == "complete" and r.under_budget]

    @property
    def not_trained(self) -> list[CandidateRecord]:
        """Rejected, pruned, failed (and, in an unfinished run, unsettled) candidates, in trial order."""
        return [r for r in self.records if r.state != "complete"]

    @property
    def winner_record(self) -> CandidateRecord | None:
        return self.ranking[0].record if self.ranking else None

    @property
    def data_name(self) -> str:
        return str(self.provenance.get("data", {}).get("name", self.config.get("data", "?")))

    @property
    def seeds_label(self) -> str:
        """How seeds were chosen ('2', 'auto (up to 3)'), and how many the winner has."""
        policy = self.config.get("seeds", "?")
        return f"{policy}" if self.winner is None else f"{policy} (winner: {self.winner['seeds']})"


def rank_candidates(records: list[CandidateRecord]) -> list[RankedCandidate]:
    """Distinct trained networks in the order racing ranks them (so rank 1 is the verdict's winner);
    a grid point that rounding built into an earlier point's network follows it with the same rank."""
    results = race_results(records)
    by_key = {r.params_key: r for r in records}
    twins: dict[str, list[CandidateRecord]] = {}
    raced = set(results)
    for r in records:
        if r.state == "complete" and r.seed_accuracies and r.params_key not in raced and r.network is not None:
            twins.setdefault(r.network, []).append(r)
    out = []
    for rank, key in enumerate(ranking(results), start=1):
        rep = by_key[key]
        out.append(RankedCandidate(rank, rep))
        out += [RankedCandidate(rank, t, rep.trial) for t in twins.get(rep.network, [])]
    return out


def load_comparisons(run_dir: Path, study: str, notes: list[str]) -> list[dict]:
    """compare.json and compare-phi*.json of this run (written by `scalesearch compare --from`)."""
    found = []
    for path in sorted(run_dir.glob("compare*.json")):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            payload["arms"]  # noqa: B018 - presence check
        except (OSError, ValueError, KeyError, TypeError):
            notes.append(f"{path.name} is not a compare.json; left out")
            continue
        if not str(payload.get("study", "")).startswith(study):
            notes.append(f"{path.name} compares another study ({payload.get('study')}); left out")
            continue
        found.append({**payload, "file": path.name})
    return found


def load_run(run_dir: str | Path, *, storage: str | None = None) -> RunReport:
    """Read the run in `run_dir`; UserError (one line) when it is not a run or its study cannot be opened."""
    run_dir = Path(run_dir)
    best = load_best_json(run_dir)
    study = open_run_study(run_dir, best, storage)
    config = dict(best["provenance"]["config"])
    budget = float(best["budget"])
    tolerance = float(config.get("tolerance", best.get("tolerance", 0.1)))
    significance = float(config.get("alpha", best.get("verdict", {}).get("alpha", 0.05)))  # --alpha-level
    metric = metric_from_dict(best.get("cost"))
    records = candidate_records(study.get_trials(deepcopy=False), budget, law=metric.law)
    notes: list[str] = []
    # best.json's flag is the run's own judgement of completeness (it knows what was wanted); a trial
    # still running or waiting in the storage now overrides it (the run was resumed since).
    complete = bool(best.get("complete")) and not any(r.state in UNSETTLED for r in records)
    winner = best_payload(records, budget=budget, tolerance=tolerance, significance=significance, complete=complete,
                          extra={"study": best["study"]}, metric=metric)
    if winner is not None and winner["trial"] != best["trial"]:
        notes.append(f"best.json names trial {best['trial']}, but the study now ranks trial {winner['trial']} first "
                     "(it changed after best.json was written); this report follows the study")
    if not complete:
        notes.append("the study is not complete: the winner may change when the run is resumed")
    return RunReport(
        run_dir=run_dir, study=best["study"], storage=redact_url(run_storage_url(run_dir, best, storage)),
        config=config, provenance=best["provenance"], budget=budget, tolerance=tolerance, significance=significance,
        complete=complete, records=records, winner=winner, ranking=rank_candidates(records),
        comparisons=load_comparisons(run_dir, best["study"], notes), notes=notes, metric=metric)
