"""The search engine on Optuna: storage, the exactly-once queue, one candidate's objective, results, the loop.

A candidate is one thing throughout: the budget-matched network a trial trains (objective.py matches it; a
strategy's `subject` says which member or arm a trial stands for).

    storage    open the study's RDB storage, hide passwords, lock a run directory
    queue      the exactly-once protocol (its invariants are in its docstring)
    objective  one work item: budget-matched candidate, one seed trained
    results    typed candidate records -> trials.csv, best.json
    strategies what a grid or a sampler study wants, round by round (a mode is a registered Strategy)
    outputs    trials.csv and best.json with their provenance
    run        the loop every worker runs
"""

from .objective import CandidateFailed, Experiment
from .results import TRIAL_COLUMNS, CandidateRecord
from .run import RunResult, run_study
from .storage import open_storage, redact_url

__all__ = ["CandidateFailed", "CandidateRecord", "Experiment", "RunResult", "TRIAL_COLUMNS", "open_storage",
           "redact_url", "run_study"]
