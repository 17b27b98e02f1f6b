"""A run as a report sees it: how it was made (best.json) and what it found (the study's storage).

Every number comes from the Optuna storage through the same functions the run used to write trials.csv
and best.json (`candidate_records`, `group_networks`, `best_payload`), so a report can never disagree with
the study; best.json contributes only what the storage does not hold: the config and the provenance.
A run from before networks were named is grouped the same way (points of equal dimensions are one network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.networks import NetworkRecord, best_payload, group_networks, ranked
from ..engine.results import CandidateRecord, candidate_records
from ..engine.rundir import open_run_study
from ..engine.storage import redact_url
from ..metrics import FLOPS, CostMetric
from ..rundir import read_run_dir

#: States a candidate is in while its study still has work to do.
UNSETTLED = ("running", "waiting", "interrupted")


@dataclass(frozen=True)
class RankedNetwork:
    """A trained network in the ranking of its φ, with the grid points that build it (one row each network)."""

    rank: int
    network: NetworkRecord

    @property
    def record(self) -> CandidateRecord:
        """The point whose trials trained it: its measured figures are the network's."""
        return self.network.rep


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
    ranking: list[RankedNetwork]  # the decided φ first (rank 1 is the answer), then φ = 1 after a refinement
    networks: list[NetworkRecord] = field(default_factory=list)
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
    def winner_network(self) -> NetworkRecord | None:
        """The answer's network (rank 1, or a cheaper one the seeds could not separate from it: CHOICE_RULE)."""
        if self.winner is None:
            return None
        return next((item.network for item in self.ranking if item.network.network == self.winner["network"]), None)

    @property
    def winner_record(self) -> CandidateRecord | None:
        n = self.winner_network
        return None if n is None else n.rep

    @property
    def phis(self) -> list[int]:
        """The φ of each ranking, the decided one first."""
        return sorted({item.network.phi for item in self.ranking}, reverse=True)

    @property
    def data_name(self) -> str:
        return str(self.provenance.get("data", {}).get("name", self.config.get("data", "?")))

    @property
    def seeds_label(self) -> str:
        """How seeds were chosen ('2', 'auto (up to 3)'), and how many the winner has."""
        policy = self.config.get("seeds", "?")
        return f"{policy}" if self.winner is None else f"{policy} (winner: {self.winner['seeds']})"


def rank_networks(networks: list[NetworkRecord]) -> list[RankedNetwork]:
    """Distinct trained networks, one entry each, ranked within their φ as racing ranks them: the highest φ
    (where the answer was decided, so rank 1 is the verdict's winner) first."""
    out = []
    for phi in sorted({n.phi for n in networks}, reverse=True):
        out += [RankedNetwork(rank, n) for rank, n in enumerate(ranked(networks, phi), start=1)]
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
    run = read_run_dir(run_dir)
    run_dir, best, config = run.path, run.best, run.config
    study = open_run_study(run, storage)
    budget, tolerance, significance, metric = run.budget, run.tolerance, run.significance, run.metric
    records = candidate_records(study.get_trials(deepcopy=False), budget, law=metric.law)
    notes: list[str] = []
    # best.json's flag is the run's own judgement of completeness (it knows what was wanted); a trial
    # still running or waiting in the storage now overrides it (the run was resumed since).
    complete = bool(run.complete) and not any(r.state in UNSETTLED for r in records)
    networks = group_networks(records)
    winner = best_payload(records, budget=budget, tolerance=tolerance, significance=significance, complete=complete,
                          extra={"study": run.study}, metric=metric,
                          refine=bool((best.get("refinement") or {}).get("enabled", config.get("refine"))),
                          step=float(config.get("step", 0.05)))
    if winner is not None and winner["trial"] != run.trial:
        notes.append(f"best.json names trial {run.trial}, but the study now ranks trial {winner['trial']} first "
                     "(it changed after best.json was written); this report follows the study")
    if not complete:
        notes.append("the study is not complete: the winner may change when the run is resumed")
    return RunReport(
        run_dir=run_dir, study=run.study, storage=redact_url(run.storage_url(storage)),
        config=config, provenance=best["provenance"], budget=budget, tolerance=tolerance, significance=significance,
        complete=complete, records=records, winner=winner, ranking=rank_networks(networks), networks=networks,
        comparisons=load_comparisons(run_dir, run.study, notes), notes=notes, metric=metric)
